"""How the portfolio page presents a report: statistics formatted for reading, annualised
ratios withheld below a minimum history, and the conventions behind every number."""

from __future__ import annotations

import html
import math

import pandas as pd

from quantstrip.analytics.metrics import PERIODS_PER_YEAR, PORTFOLIO, PortfolioReport, capital_for

# Sharpe and Sortino are annualised: over a few months of daily returns they are noise (a
# Sortino of 4,782 on three months with almost no losing day). Below half a year of history, and
# below 12 periods at the report's frequency, they are shown as n/a.
MIN_PERIODS = {"D": 126, "W": 26, "M": 12}
NA = "n/a"

MONEY_COLUMNS = (
    "total_pnl",
    "unrealised_pnl",
    "net_pnl",
    "gross_pnl",
    "commission",
    "max_drawdown",
    "avg_win",
    "avg_loss",
)
PERCENT_COLUMNS = ("max_drawdown_pct", "win_rate", "return_on_capital")
REALISED_COLUMNS = [
    "net_pnl",
    "gross_pnl",
    "commission",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_pct",
    "trades",
    "win_rate",
    "avg_win",
    "avg_loss",
    "profit_factor",
    "return_on_capital",
]
TOTAL_COLUMNS = ["total_pnl", "unrealised_pnl", *REALISED_COLUMNS]


def periods_in(report: PortfolioReport) -> int:
    """How many periods of the report's frequency the horizon covers."""
    if report.daily_pnl.empty:
        return 0
    if report.frequency == "D":
        return len(report.daily_pnl)
    rule = {"W": "W-FRI", "M": "ME"}[report.frequency]
    return len(report.daily_pnl.resample(rule).sum())


def ratios_shown(report: PortfolioReport) -> bool:
    return periods_in(report) >= MIN_PERIODS[report.frequency]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _money(value: object) -> str:
    return "" if _missing(value) else f"{float(value):,.2f}"  # type: ignore[arg-type]


def _percent(value: object) -> str:
    return "" if _missing(value) else f"{float(value):.1%}"  # type: ignore[arg-type]


def _ratio(value: object) -> str:
    return NA if _missing(value) else f"{float(value):,.2f}"  # type: ignore[arg-type]


def stats_frame(report: PortfolioReport, basis: str) -> pd.DataFrame:
    """The statistics table as text: no 'None', no 'nan', ratios n/a where not meaningful."""
    columns = TOTAL_COLUMNS if basis == "total" else REALISED_COLUMNS
    frame = report.stats.reindex(columns=columns).reset_index()
    show_ratios = ratios_shown(report)
    out = pd.DataFrame({"strategy": frame["strategy"]})
    for column in columns:
        values = frame[column]
        if column in MONEY_COLUMNS:
            out[column] = values.map(_money)
        elif column in PERCENT_COLUMNS:
            out[column] = values.map(_percent)
        elif column in ("sharpe", "sortino"):
            out[column] = values.map(_ratio) if show_ratios else NA
        elif column == "profit_factor":
            out[column] = values.map(_ratio)
        else:
            out[column] = values.map(lambda v: "" if _missing(v) else f"{int(v):,}")
    return out


def conventions_html(report: PortfolioReport, basis: str, zone: str, stale_days: int = 0) -> str:
    names = [n for n in report.stats.index if n != PORTFOLIO]
    capital = {name: capital_for(name) for name in names}
    capital_text = ", ".join(f"{html.escape(n)} {c:,.0f}" for n, c in capital.items())
    periods = MIN_PERIODS[report.frequency]
    unit = {"D": "trading days", "W": "weeks", "M": "months"}[report.frequency]
    lines = [
        currency_html(report),
        f"<li><b>Base capital</b>: {capital_text or 'none'}; the portfolio's is their sum "
        f"({sum(capital.values()):,.0f}). Set <code>reporting.capital.&lt;strategy&gt;</code> or "
        "<code>reporting.default_capital</code> (100,000). Returns = PnL / base capital.</li>",
        "<li><b>Realised PnL</b>: closing fills' gross PnL less every commission, by the UTC "
        "calendar day of the fill (<code>v_strategy_days</code>).</li>",
    ]
    if report.withheld:
        names = ", ".join(name.replace("_", " ") for name in report.withheld)
        lines.append(
            f'<li class="qs-error">Some amounts are in other currencies than '
            f"{html.escape(report.currency or 'base')}: {names} are kept in the instruments' "
            "currencies and are not shown.</li>"
        )
    if basis == "total":
        lines.append(
            "<li><b>Unrealised PnL</b>: open positions at each day's end, midnight in "
            f"<b>{html.escape(zone)}</b> (<code>risk.day_zone</code>), valued at the last mark "
            "before it, less their cost basis (the formula of <code>v_unrealised_pnl</code>). "
            "Total PnL of a day = realised + change in unrealised.</li>"
        )
        if stale_days:
            lines.append(
                f'<li class="qs-error">On {stale_days} day(s) a held position had no mark from '
                "the last 4 days: it is valued at cost on those days (no unrealised PnL).</li>"
            )
    lines.append(
        f"<li><b>Sharpe, Sortino</b>: annualised (√{PERIODS_PER_YEAR[report.frequency]}), "
        f"risk-free 0; shown once the horizon holds {periods} {unit} ({periods_in(report)} "
        "here), n/a before.</li>"
    )
    return (
        f'<details class="qs-conventions" open><summary>Conventions</summary><ul>'
        f"{''.join(lines)}</ul></details>"
    )


def currency_html(report: PortfolioReport) -> str:
    """The conventions line saying what currency the figures are in."""
    if report.currency is None:
        return "<li><b>Currency</b>: no account yet.</li>"
    code = html.escape(report.currency)
    how = (
        "each amount converted at its own fill's or commission's stored rate to base, half up"
        if report.foreign_amounts
        else "every amount was in it already"
    )
    return f"<li><b>Currency</b>: in {code}, account base; {how}.</li>"


def empty_message(report: PortfolioReport, first: str, last: str) -> str:
    return (
        f'<p class="qs-empty"><i>No fills between {html.escape(first)} and {html.escape(last)} '
        "for the chosen strategies: nothing to report in this window.</i></p>"
    )
