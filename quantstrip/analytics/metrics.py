"""Portfolio and per-strategy metrics, computed from the shared views.

Money is exact: the views' amounts are read back as integer micros (exact below 2^32 units a
row), summed and accumulated as integers, and rounded to the cent once, half up, by
`units.money` (the rule the views and the SQL editor use), so a total of 8,061.275 is 8,061.28
in the report, the SQL editor and Excel alike.

Definitions (money in the accounts' base currency, days are UTC calendar days of fills):
- currency: every amount converted to base at its own fill's or commission's stored rate, half
  up (migration 0018); the report refuses amounts without a rate and accounts of different base
  currencies (`currency.MissingRateError`, `currency.CurrencyError`), and withholds the figures
  still kept in the instruments' currencies when another currency than base is among its rows
  (`PortfolioReport.withheld`).
- daily net PnL: `v_daily_pnl.net_pnl`, realised gross PnL of the day's closing fills less every
  commission paid that day. Business days without fills count as 0.
- capital base: `reporting.capital.<strategy>` from settings, else `reporting.default_capital`
  (100,000); the portfolio's base is the sum over the strategies shown.
- equity: capital base + cumulative daily net PnL. Drawdown: equity minus its running peak;
  maximum drawdown is the deepest point (depth in currency and as a fraction of the peak), with
  its peak date, trough date and recovery date (first date back at the peak; None if not yet).
- daily return: daily net PnL / capital base (a fixed base, so returns add up to total PnL).
  Period returns at the report's frequency (D, W, M) are sums of the daily ones.
- Sharpe: mean(period return) / std(period return, ddof=1) * sqrt(N), N = 252 (daily), 52
  (weekly) or 12 (monthly) periods a year; risk-free rate 0.
- Sortino: mean(period return) / sqrt(mean(min(return, 0)^2)) * sqrt(N).
- per strategy and for the portfolio, over the horizon's days: net, gross and commission, round
  trips (trades), win rate, average win and loss, profit factor, peak capital and return on
  capital are `v_performance`, the one definition Excel and the SQL editor read too (as
  v_strategy_stats and v_portfolio_stats); `strategy_stats` runs it over the horizon. Peak
  capital counts what a strategy carried into the horizon; the portfolio's is the most the
  strategies held together on any one day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from quantstrip import clock
from quantstrip.analytics.connection import cursor, shared_ledger
from quantstrip.analytics.currency import LOCAL_CURRENCY_COLUMNS, report_currency
from quantstrip.analytics.strategy_stats import load_days, strategy_stats
from quantstrip.db.units import MICROS, money, to_micros

TRADING_DAYS = 252
PERIODS_PER_YEAR = {"D": TRADING_DAYS, "W": 52, "M": 12}
RESAMPLE_RULES = {"D": "D", "W": "W-FRI", "M": "ME"}
DEFAULT_CAPITAL = 100_000.0
PORTFOLIO = "Portfolio"
Horizon = str | tuple[date | str | None, date | str | None]


@dataclass(frozen=True)
class Drawdown:
    depth: float
    depth_fraction: float
    peak: date | None
    trough: date | None
    recovery: date | None


def resolve_horizon(horizon: Horizon, today: date | None = None) -> tuple[date | None, date | None]:
    today = today or clock.now().date()
    if isinstance(horizon, tuple):
        start, end = horizon
        return (
            date.fromisoformat(start) if isinstance(start, str) else start,
            date.fromisoformat(end) if isinstance(end, str) else end,
        )
    key = horizon.lower()
    if key == "all":
        return None, None
    if key == "ytd":
        return date(today.year, 1, 1), None
    if key == "1y":
        return today - timedelta(days=365), None
    if key == "3m":
        return today - timedelta(days=91), None
    raise ValueError(f"horizon: expected all, ytd, 1y, 3m or (start, end), got {horizon!r}")


def capital_for(strategy: str) -> float:
    return capitals([strategy])[strategy]


def capitals(strategies: list[str]) -> dict[str, float]:
    """Each strategy's capital base, reading the settings once (as the file states them:
    `settings_file.peek` loads no pydantic, which would cost the report page 0.3-0.5 s)."""
    from quantstrip.settings_file import peek

    try:
        default = float(peek("reporting.default_capital", DEFAULT_CAPITAL))
        configured = peek("reporting.capital", {})
        configured = configured if isinstance(configured, dict) else {}
        return {name: float(configured.get(name, default)) for name in strategies}
    except Exception:
        return dict.fromkeys(strategies, DEFAULT_CAPITAL)


def sharpe(returns: pd.Series, periods_per_year: int = TRADING_DAYS) -> float | None:
    if len(returns) < 2:
        return None
    std = float(returns.std(ddof=1))
    return None if std == 0 else float(returns.mean()) / std * math.sqrt(periods_per_year)


def sortino(returns: pd.Series, periods_per_year: int = TRADING_DAYS) -> float | None:
    if len(returns) < 2:
        return None
    downside = math.sqrt(float((np.minimum(returns.to_numpy(), 0.0) ** 2).mean()))
    if downside == 0:
        return None
    return float(returns.mean()) / downside * math.sqrt(periods_per_year)


def period_sums(daily: pd.DataFrame, frequency: str) -> pd.DataFrame:
    """Daily PnL or returns summed into the report's periods (returns add up too: the capital
    base is fixed)."""
    if frequency == "D" or daily.empty:
        return daily
    return daily.resample(RESAMPLE_RULES[frequency]).sum()


def max_drawdown(equity: pd.Series) -> Drawdown:
    """The deepest fall of an equity curve in currency units (read back as exact micros)."""
    return max_drawdown_micros(pd.Series(np.rint(equity.to_numpy() * MICROS), index=equity.index))


def max_drawdown_micros(equity_micros: pd.Series) -> Drawdown:
    """The deepest fall of an equity curve given in integer micros (exact: no float sums)."""
    if equity_micros.empty:
        return Drawdown(0.0, 0.0, None, None, None)
    equity = equity_micros.astype("int64")
    peaks = equity.cummax()
    drawdown = equity - peaks
    trough = drawdown.idxmin()
    depth = int(drawdown.loc[trough])
    if depth == 0:
        return Drawdown(0.0, 0.0, None, None, None)
    peak_value = int(peaks.loc[trough])
    peak = equity.loc[:trough][equity.loc[:trough] == peak_value].index[-1]
    after = equity.loc[trough:]
    recovered = after[after >= peak_value]
    recovery = recovered.index[0] if not recovered.empty else None
    return Drawdown(
        float(money(-depth)),
        -depth / peak_value if peak_value else 0.0,
        _as_date(peak),
        _as_date(trough),
        _as_date(recovery) if recovery is not None else None,
    )


def risk_table(
    equity_micros: pd.DataFrame, periodic: pd.DataFrame, periods_per_year: int
) -> pd.DataFrame:
    """Sharpe, Sortino and maximum drawdown of every column at once (numpy, one pass each):
    the same definitions as sharpe(), sortino() and max_drawdown_micros()."""
    returns = periodic.to_numpy(dtype="float64")
    count = len(returns)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = returns.mean(axis=0) if count else np.zeros(returns.shape[1])
        std = returns.std(axis=0, ddof=1) if count > 1 else np.zeros(returns.shape[1])
        downside = np.sqrt((np.minimum(returns, 0.0) ** 2).mean(axis=0)) if count else mean
        scale = math.sqrt(periods_per_year)
        sharpes = np.where((count > 1) & (std != 0), mean / std * scale, np.nan)
        sortinos = np.where((count > 1) & (downside != 0), mean / downside * scale, np.nan)
    values = equity_micros.to_numpy(dtype="int64")
    dates = equity_micros.index
    peaks = np.maximum.accumulate(values, axis=0) if len(values) else values
    falls = values - peaks
    rows = []
    for j, name in enumerate(equity_micros.columns):
        row: dict[str, object] = {"strategy": name, "sharpe": sharpes[j], "sortino": sortinos[j]}
        trough = int(falls[:, j].argmin()) if len(values) else 0
        depth = -int(falls[trough, j]) if len(values) else 0
        if depth == 0:
            row.update(max_drawdown=0.0, max_drawdown_pct=0.0, drawdown_peak=None)
            row.update(drawdown_trough=None, drawdown_recovery=None)
        else:
            top = int(peaks[trough, j])
            peak = int(np.flatnonzero(values[: trough + 1, j] == top)[-1])
            back = np.flatnonzero(values[trough:, j] >= top)
            row.update(
                max_drawdown=float(money(depth)),
                max_drawdown_pct=depth / top if top else 0.0,
                drawdown_peak=_as_date(dates[peak]),
                drawdown_trough=_as_date(dates[trough]),
                drawdown_recovery=_as_date(dates[trough + int(back[0])]) if len(back) else None,
            )
        rows.append(row)
    table = pd.DataFrame(rows).set_index("strategy")
    return table.astype({"sharpe": object, "sortino": object}).where(table.notna(), None)


def _as_date(value: object) -> date:
    return pd.Timestamp(value).date()


@dataclass
class PortfolioReport:
    start: date | None
    end: date | None
    frequency: str
    stats: pd.DataFrame  # one row per strategy plus PORTFOLIO
    daily_pnl: pd.DataFrame  # business days x strategies, net PnL
    equity: pd.DataFrame  # business days x (strategies + PORTFOLIO)
    drawdown: pd.DataFrame
    returns: pd.DataFrame
    trade_counts: pd.DataFrame  # per strategy: trades, wins, losses, win_sum, loss_sum
    currency: str | None = None  # the accounts' base currency every money figure is in
    foreign_amounts: int = 0  # amounts converted to it from another currency
    withheld: tuple[str, ...] = ()  # stats columns not shown: not in base (LOCAL_CURRENCY_COLUMNS)

    def resampled_pnl(self) -> pd.DataFrame:
        """Net PnL per period at the report's frequency (D, W or M)."""
        return period_sums(self.daily_pnl, self.frequency)

    def charts(self) -> dict[str, object]:
        """The four Altair charts by name: equity, drawdown, returns, strategies."""
        from quantstrip.analytics import charts

        return {
            "equity": charts.equity_chart(self),
            "drawdown": charts.drawdown_chart(self),
            "returns": charts.return_histogram(self),
            "strategies": charts.strategy_bars(self),
        }

    def chart_svgs(self) -> dict[str, str]:
        """The same charts as self-contained SVG (for e-mail and files)."""
        from quantstrip.analytics.charts import to_svg

        return {name: to_svg(chart) for name, chart in self.charts().items()}


def _daily(conn, days: str, start: date | None):
    """Each strategy's net PnL per day with fills, in exact integer micros (the REAL is within
    half a micro of them below 2^32 units)."""
    since = " AND date >= ?" if start else ""
    return conn.execute(
        "SELECT strategy, date, CAST(ROUND(net_pnl * 1e6) AS BIGINT) AS net_micros "
        f"FROM {days} WHERE fills > 0{since}",
        [start] if start else [],
    ).df()


STAT_COLUMNS = [
    "net_pnl",
    "gross_pnl",
    "commission",
    "trades",
    "wins",
    "losses",
    "win_rate",
    "avg_win",
    "avg_loss",
    "profit_factor",
    "peak_capital",
    "return_on_capital",
]


def portfolio_report(
    db_path: str | Path | None = None,
    horizon: Horizon = "all",
    strategies: list[str] | None = None,
    frequency: str = "D",
    today: date | None = None,
) -> PortfolioReport:
    if frequency not in ("D", "W", "M"):
        raise ValueError(f"frequency: expected D, W or M, got {frequency!r}")
    start, end = resolve_horizon(horizon, today)
    ledger = shared_ledger(db_path)
    conn = cursor(db_path)
    try:
        days = load_days(conn, end, strategies)
        currency = report_currency(conn, days, start, ledger.path, strategies)
        daily = _daily(conn, days, start)
        figures = strategy_stats(conn, ledger.path, start, end, strategies, source=days)
    finally:
        conn.close()
    # Vectorised over the strategy-days (130k at 50 strategies x 10 years): iterating them in
    # Python cost more than reading them.
    dates = pd.DatetimeIndex(pd.to_datetime(daily["date"]), name=None)
    strategy_of = pd.Index(daily["strategy"].astype(object))
    names = sorted(strategy_of.unique()) if strategies is None else list(strategies)
    if daily.empty:
        index = pd.DatetimeIndex([], name="date")
    else:
        first = pd.Timestamp(start or dates.min())
        last = pd.Timestamp(end or dates.max())
        index = pd.bdate_range(first, last).union(dates.unique())
    # Daily net PnL in integer micros: the equity curve and drawdowns are exact integer sums.
    # Each (strategy, day) is one row of the view, so the cells are placed, not summed.
    cells = np.zeros((len(index), len(names)), dtype="int64")
    rows = index.get_indexer(dates)
    columns = pd.Index(names, dtype=object).get_indexer(strategy_of)
    chosen = columns >= 0
    cells[rows[chosen], columns[chosen]] = daily["net_micros"].to_numpy(dtype="int64")[chosen]
    pnl_micros = pd.DataFrame(cells, index=index, columns=pd.Index(names, name="strategy"))
    capital = {
        name: to_micros(base, f"reporting.capital.{name}") for name, base in capitals(names).items()
    }
    base = pd.Series(capital, dtype="int64")
    equity_micros = pnl_micros.cumsum() + base
    equity_micros[PORTFOLIO] = pnl_micros.sum(axis=1).cumsum() + sum(capital.values())
    pnl = pnl_micros / MICROS
    equity = equity_micros / MICROS
    drawdown = (equity_micros - equity_micros.cummax()) / MICROS
    returns = pnl_micros / base
    returns[PORTFOLIO] = pnl_micros.sum(axis=1) / (sum(capital.values()) or 1)
    periodic, per_year = period_sums(returns, frequency), PERIODS_PER_YEAR[frequency]
    everyone = [*names, PORTFOLIO]
    figures = figures.reindex(everyone)[STAT_COLUMNS]
    for column in ("net_pnl", "gross_pnl", "commission", "peak_capital"):
        figures[column] = figures[column].fillna(0.0)
    for column in ("trades", "wins", "losses"):
        figures[column] = figures[column].fillna(0).astype("int64")
    withheld: tuple[str, ...] = ()
    if currency.foreign_amounts:
        withheld = LOCAL_CURRENCY_COLUMNS
        figures[list(withheld)] = None
    stats = figures.join(risk_table(equity_micros, periodic, per_year))
    trade_counts = figures.loc[names, ["trades", "wins", "losses"]]
    return PortfolioReport(
        start,
        end,
        frequency,
        stats,
        pnl,
        equity,
        drawdown,
        returns,
        trade_counts,
        currency.code,
        currency.foreign_amounts,
        withheld,
    )
