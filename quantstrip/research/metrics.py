"""A run's figures, from the same functions as the portfolio report.

Net PnL, Sharpe, Sortino, maximum drawdown, trades and win rate are the `Portfolio` row of
`portfolio_report` on the run's own database (so a sweep and the report can never disagree).
Two figures the report does not have are computed here from the shared views, over the same
days as the report (`report.equity.index`) and the same capital base:

- exposure: the share of those days that ended with a position open (any instrument);
- turnover: traded notional (`v_executions.notional`) over the capital base, per year
  (x 252 / days), so windows of different lengths compare.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from quantstrip.analytics import connect, portfolio_report
from quantstrip.analytics.metrics import PORTFOLIO, TRADING_DAYS, capital_for

METRICS = (
    "net_pnl",
    "sharpe",
    "sortino",
    "max_drawdown",
    "trades",
    "win_rate",
    "exposure",
    "turnover",
)
REPORT_METRICS = METRICS[:6]
# Larger is better for every metric but these (a deeper drawdown is worse; turnover costs).
LOWER_IS_BETTER = frozenset({"max_drawdown", "turnover"})

Horizon = tuple[date | str | None, date | str | None]


def _value(value: Any) -> float | int | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _capital(report) -> float:  # type: ignore[no-untyped-def]
    """The report's own capital base: equity before any PnL (the sum over its strategies)."""
    equity, pnl = report.equity[PORTFOLIO], report.daily_pnl.sum(axis=1)
    if len(equity):
        return float(equity.iloc[0] - pnl.iloc[0])
    return float(sum(capital_for(s) for s in report.daily_pnl.columns)) or 1.0


def _exposure_and_turnover(db_path: Path, report) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    days = report.equity.index
    if len(days) == 0:
        return 0.0, 0.0
    first, last = days.min().date(), days.max().date()
    conn = connect(db_path)
    try:
        positions = conn.execute(
            "SELECT strategy, symbol, date, qty_after FROM v_position_history "
            "WHERE date <= ? ORDER BY event_time, position_event_id",
            [last],
        ).df()
        traded = conn.execute(
            "SELECT COALESCE(SUM(ABS(notional)), 0) FROM v_executions "
            "WHERE exec_date BETWEEN ? AND ?",
            [first, last],
        ).fetchone()[0]
    finally:
        conn.close()
    exposure = 0.0
    if not positions.empty:
        held = (
            positions.assign(date=pd.to_datetime(positions["date"]))
            .groupby(["date", "strategy", "symbol"])["qty_after"]
            .last()
            .unstack(["strategy", "symbol"])
        )
        # Carry each day's closing position forward over days without events, from before the
        # first day of the horizon too.
        held = held.reindex(held.index.union(days)).ffill().fillna(0.0).loc[days]
        exposure = float((held.abs() > 0).any(axis=1).mean())
    turnover = float(traded) / _capital(report) * TRADING_DAYS / len(days)
    return exposure, turnover


def run_metrics(db_path: Path, horizon: Horizon = (None, None)) -> tuple[dict[str, Any], pd.Series]:
    """The run's metrics over `horizon` and its daily equity (the report's Portfolio column)."""
    report = portfolio_report(db_path, horizon=_horizon(horizon))
    stats = report.stats.loc[PORTFOLIO]
    figures: dict[str, Any] = {name: _value(stats[name]) for name in REPORT_METRICS}
    figures["trades"] = int(figures["trades"] or 0)
    figures["exposure"], figures["turnover"] = _exposure_and_turnover(db_path, report)
    return figures, report.equity[PORTFOLIO]


def _horizon(horizon: Horizon) -> str | tuple:
    return "all" if horizon == (None, None) else horizon


def window_metrics(db_path: Path, folds: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Per walk-forward fold: the run's metrics over its train window (in-sample) and over its
    test window (out-of-sample), each exactly what the report shows for those custom dates."""
    rows = []
    for fold in folds:
        for segment in ("train", "test"):
            start, end = fold[f"{segment}_start"], fold[f"{segment}_end"]
            figures, _ = run_metrics(db_path, (start, end))
            rows.append(
                {
                    "fold": int(fold["number"]),
                    "segment": segment,
                    "start": start,
                    "end": end,
                    **figures,
                }
            )
    return rows
