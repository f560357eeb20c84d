"""Portfolio and per-strategy metrics, computed from the shared views.

Definitions (all in the account currency, days are UTC calendar days of fills):
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
- trades: closed round trips (`v_round_trips`, counted per exit day in `v_daily_trades`)
  exiting in the horizon; win rate = share with
  net PnL > 0; profit factor = sum of winning net PnL / |sum of losing net PnL|.
- return on invested capital: net PnL in the horizon / peak capital deployed
  (`v_return_on_capital.peak_capital`, all history).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from quantstrip import clock
from quantstrip.analytics.connection import connect

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
    from quantstrip import settings

    try:
        default = float(settings.get("reporting.default_capital", DEFAULT_CAPITAL))
        return float(settings.get(f"reporting.capital.{strategy}", default))
    except Exception:
        return DEFAULT_CAPITAL


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
    if equity.empty:
        return Drawdown(0.0, 0.0, None, None, None)
    peaks = equity.cummax()
    drawdown = equity - peaks
    trough = drawdown.idxmin()
    depth = float(drawdown.loc[trough])
    if depth == 0:
        return Drawdown(0.0, 0.0, None, None, None)
    peak_value = float(peaks.loc[trough])
    peak = equity.loc[:trough][equity.loc[:trough] == peak_value].index[-1]
    after = equity.loc[trough:]
    recovered = after[after >= peak_value]
    recovery = recovered.index[0] if not recovered.empty else None
    return Drawdown(
        round(-depth, 2),
        -depth / peak_value if peak_value else 0.0,
        _as_date(peak),
        _as_date(trough),
        _as_date(recovery) if recovery is not None else None,
    )


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


def _load(conn, start: date | None, end: date | None, strategies: list[str] | None):
    clauses, params = [], []
    if start:
        clauses.append("date >= ?")
        params.append(start)
    if end:
        clauses.append("date <= ?")
        params.append(end)
    if strategies:
        clauses.append(f"strategy IN ({', '.join('?' * len(strategies))})")
        params.extend(strategies)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    daily = conn.execute(
        f"SELECT strategy, date, gross_pnl, commission, net_pnl, fills FROM v_daily_pnl{where}",
        params,
    ).df()
    # Round-trip counts come from the trigger-kept daily aggregate (v_daily_trades), which
    # equals counting v_round_trips by exit date without touching a million round trips.
    trips = conn.execute(
        "SELECT strategy, SUM(trades) AS trades, SUM(wins) AS wins, SUM(losses) AS losses, "
        "SUM(win_pnl) AS win_sum, SUM(loss_pnl) AS loss_sum "
        f"FROM v_daily_trades{where} GROUP BY strategy",
        params,
    ).df()
    roc = conn.execute("SELECT strategy, peak_capital FROM v_return_on_capital").df()
    return daily, trips, roc


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
    conn = connect(db_path)
    try:
        daily, trips, roc = _load(conn, start, end, strategies)
    finally:
        conn.close()
    names = sorted(set(daily["strategy"])) if strategies is None else list(strategies)
    if daily.empty:
        index = pd.DatetimeIndex([], name="date")
    else:
        first = pd.Timestamp(start or daily["date"].min())
        last = pd.Timestamp(end or daily["date"].max())
        fill_days = pd.DatetimeIndex(pd.to_datetime(daily["date"]).unique())
        index = pd.bdate_range(first, last, name="date").union(fill_days)
    pnl = (
        daily.assign(date=pd.to_datetime(daily["date"]))
        .pivot_table(index="date", columns="strategy", values="net_pnl", aggfunc="sum")
        .reindex(index=index, columns=names)
        .fillna(0.0)
    )
    capital = {name: capital_for(name) for name in names}
    equity = pnl.cumsum() + pd.Series(capital)
    equity[PORTFOLIO] = pnl.sum(axis=1).cumsum() + sum(capital.values())
    returns = pnl / pd.Series(capital)
    returns[PORTFOLIO] = pnl.sum(axis=1) / (sum(capital.values()) or 1.0)
    drawdown = equity - equity.cummax()
    periodic, per_year = period_sums(returns, frequency), PERIODS_PER_YEAR[frequency]
    peaks = dict(zip(roc["strategy"], roc["peak_capital"], strict=True))
    # One grouped sum per table; the loop below only looks rows up.
    everyone = [*names, PORTFOLIO]
    money_columns = ["net_pnl", "gross_pnl", "commission"]
    money = daily.groupby("strategy")[money_columns].sum()
    money.loc[PORTFOLIO] = daily[money_columns].sum()
    money = money.reindex(everyone, fill_value=0.0)
    count_columns = ["trades", "wins", "losses", "win_sum", "loss_sum"]
    counts = trips.groupby("strategy")[count_columns].sum()
    counts.loc[PORTFOLIO] = trips[count_columns].sum()
    counts = counts.reindex(everyone, fill_value=0)
    rows = []
    for name in everyone:
        in_scope, scope = money.loc[name], counts.loc[name]
        count, wins, losses = (int(scope[c]) for c in ("trades", "wins", "losses"))
        win_sum, loss_sum = float(scope["win_sum"]), float(scope["loss_sum"])
        net = round(float(in_scope["net_pnl"]), 2)
        peak_capital = (
            sum(peaks.get(n, 0.0) for n in names) if name == PORTFOLIO else peaks.get(name, 0.0)
        )
        dd = max_drawdown(equity[name])
        rows.append(
            {
                "strategy": name,
                "net_pnl": net,
                "gross_pnl": round(float(in_scope["gross_pnl"]), 2),
                "commission": round(float(in_scope["commission"]), 2),
                "sharpe": sharpe(periodic[name], per_year),
                "sortino": sortino(periodic[name], per_year),
                "max_drawdown": dd.depth,
                "max_drawdown_pct": dd.depth_fraction,
                "drawdown_peak": dd.peak,
                "drawdown_trough": dd.trough,
                "drawdown_recovery": dd.recovery,
                "trades": count,
                "win_rate": (wins / count) if count else None,
                "avg_win": round(win_sum / wins, 2) if wins else None,
                "avg_loss": round(loss_sum / losses, 2) if losses else None,
                "profit_factor": (win_sum / -loss_sum) if losses and loss_sum else None,
                "return_on_capital": (net / peak_capital) if peak_capital else None,
            }
        )
    stats = pd.DataFrame(rows).set_index("strategy")
    return PortfolioReport(start, end, frequency, stats, pnl, equity, drawdown, returns, trips)
