"""Mark-to-market: unrealised PnL at the end of each day, and a report on total PnL.

Definitions (shown on the portfolio page):
- a day ends at midnight in the trading day's zone (`risk.day_zone`);
- the position held at a day's end is the state after the last position event before it
  (quantity and exact cost basis), read from `agg_position_quarters` (migration 0014: the state
  at every quarter hour with events, kept by the writer's triggers), so the work grows with the
  days shown, not with the executions (every zone's midnight is a quarter hour in UTC);
- the mark is the last mark before the day's end; unrealised = quantity x mark x multiplier,
  less the cost basis (added back for a short): the same formula as `v_unrealised_pnl`;
- a held position whose latest mark is older than `STALE_DAYS` days at a day's end (or that has
  no mark at all) is counted in `stale` for that day and valued at the cost basis (no unrealised
  PnL): the page says how many days and positions that affects;
- total PnL of a day = realised net PnL of the day (`v_daily_pnl`, by UTC day of the fills) +
  the change in unrealised PnL since the previous day's end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from quantstrip.analytics.connection import cursor
from quantstrip.analytics.currency import CurrencyError
from quantstrip.analytics.metrics import (
    PERIODS_PER_YEAR,
    PORTFOLIO,
    PortfolioReport,
    capitals,
    period_sums,
    risk_table,
)
from quantstrip.db.units import MICROS, money, utc_text

STALE_DAYS = 4  # a weekend and a holiday
# The risk figures that change with the basis (the drawdown's dates with its depth).
RISK_COLUMNS = (
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_pct",
    "drawdown_peak",
    "drawdown_trough",
    "drawdown_recovery",
)


# Per strategy and day end: the positions held then (agg_position_quarters, read once, only the
# chosen strategies' rows), valued at the last mark before the day end; $days, $ends and
# $stale_before are parallel lists, $names the strategies.
UNREALISED_BY_DAY = """
WITH day_grid AS (
    SELECT UNNEST($days::DATE[]) AS day, UNNEST($ends::VARCHAR[]) AS day_end,
           UNNEST($stale_before::VARCHAR[]) AS stale_before
),
wanted AS (SELECT UNNEST($names::VARCHAR[]) AS name),
quarters AS MATERIALIZED (
    SELECT q.strategy_id, q.account_id, q.instrument_id, q.quarter_end, q.qty_micros,
           q.basis_micros
    FROM agg_position_quarters q
    JOIN strategies s ON s.id = q.strategy_id
    WHERE s.name IN (SELECT name FROM wanted)
),
keys AS (SELECT DISTINCT strategy_id, account_id, instrument_id FROM quarters),
grid AS (SELECT k.*, d.day, d.day_end, d.stale_before FROM keys k, day_grid d),
held AS (
    SELECT g.strategy_id, g.instrument_id, g.day, g.day_end, g.stale_before,
           q.qty_micros AS qty, q.basis_micros AS basis
    FROM grid g ASOF JOIN quarters q
      ON g.strategy_id = q.strategy_id AND g.account_id = q.account_id
     AND g.instrument_id = q.instrument_id AND g.day_end >= q.quarter_end
    WHERE q.qty_micros <> 0
),
marked AS (
    SELECT h.*, m.price_micros, m.mark_time
    FROM held h ASOF LEFT JOIN marks m
      ON h.instrument_id = m.instrument_id AND h.day_end > m.mark_time
),
valued AS (
    SELECT mk.strategy_id, mk.day,
           mk.price_micros IS NULL OR mk.mark_time < mk.stale_before AS stale,
           (mk.qty / 1e6) * (mk.price_micros / 1e6) * (i.multiplier_micros / 1e6)
             - (CASE WHEN mk.qty > 0 THEN mk.basis ELSE -mk.basis END) / 1e6
             AS unrealised
    FROM marked mk JOIN instruments i ON i.id = mk.instrument_id
)
SELECT s.name AS strategy, v.day,
       SUM(CASE WHEN v.stale THEN 0 ELSE v.unrealised END) AS unrealised,
       SUM(CASE WHEN v.stale THEN 1 ELSE 0 END) AS stale
FROM valued v JOIN strategies s ON s.id = v.strategy_id
GROUP BY ALL
"""


@dataclass(frozen=True)
class Unrealised:
    values: pd.DataFrame  # day x strategy: unrealised PnL at the day's end
    stale: pd.DataFrame  # day x strategy: held positions valued without a recent mark
    zone: str


def day_ends(days: pd.DatetimeIndex, zone: str) -> list[str]:
    """UTC text of the end of each day (next midnight in the zone). Positions are kept per UTC
    quarter hour, so a midnight off a quarter hour (a zone's local mean time before ~1970) is
    refused rather than valued from the wrong quarter."""
    tz = ZoneInfo(zone)
    ends = [datetime.combine(d.date() + timedelta(days=1), time(0), tzinfo=tz) for d in days]
    for end in ends:
        utc = end.astimezone(ZoneInfo("UTC"))
        if utc.minute % 15 or utc.second or utc.microsecond:
            raise ValueError(
                f"day zone {zone}: midnight of {end.date()} is {utc:%H:%M:%S} UTC, not on a "
                "quarter hour; positions are kept per quarter hour"
            )
    return [utc_text(end) for end in ends]


def unrealised_by_day(
    days: pd.DatetimeIndex,
    strategies: list[str],
    zone: str,
    db_path: str | Path | None = None,
) -> Unrealised:
    """Unrealised PnL per strategy at the end of each of `days` (see the module docstring)."""
    empty = pd.DataFrame(0.0, index=days, columns=strategies)
    if len(days) == 0 or not strategies:
        return Unrealised(empty, empty.astype(int), zone)
    ends = day_ends(days, zone)
    stale_before = [
        utc_text(
            datetime.combine(
                d.date() + timedelta(days=1 - STALE_DAYS), time(0), tzinfo=ZoneInfo(zone)
            )
        )
        for d in days
    ]
    conn = cursor(db_path)
    try:
        rows = conn.execute(
            UNREALISED_BY_DAY,
            {
                "days": [d.date() for d in days],
                "ends": ends,
                "stale_before": stale_before,
                "names": strategies,
            },
        ).df()
    finally:
        conn.close()
    if rows.empty:
        return Unrealised(empty, empty.astype(int), zone)
    rows["day"] = pd.to_datetime(rows["day"])
    values = (
        rows.pivot_table(index="day", columns="strategy", values="unrealised", aggfunc="sum")
        .reindex(index=days, columns=strategies)
        .fillna(0.0)
    )
    stale = (
        rows.pivot_table(index="day", columns="strategy", values="stale", aggfunc="sum")
        .reindex(index=days, columns=strategies)
        .fillna(0)
        .astype(int)
    )
    return Unrealised(values, stale, zone)


def total_pnl_report(
    report: PortfolioReport, zone: str, db_path: str | Path | None = None
) -> tuple[PortfolioReport, Unrealised]:
    """The same report on total PnL: each day's realised net PnL plus the change in unrealised
    PnL since the previous day's end. Trade statistics (closed round trips) are unchanged.

    Positions are valued in their instruments' currencies: a report with amounts in another
    currency than base raises `CurrencyError` rather than add them to base figures."""
    if report.foreign_amounts:
        raise CurrencyError(
            f"total PnL: unrealised PnL is valued in the instruments' currencies, not converted "
            f"to {report.currency or 'the base currency'}; the realised report is in base"
        )
    days = report.daily_pnl.index
    names = list(report.daily_pnl.columns)
    if len(days) == 0:
        return report, unrealised_by_day(days, names, zone, db_path)
    before = pd.bdate_range(end=days[0] - timedelta(days=1), periods=1)
    grid = before.union(days)
    unrealised = unrealised_by_day(grid, names, zone, db_path)
    change = unrealised.values.diff().loc[days]
    if report.start is None:  # all history: nothing was held before the first day
        change.iloc[0] = unrealised.values.loc[days[0]]
    pnl = report.daily_pnl + change
    capital = capitals(names)
    equity = pnl.cumsum() + pd.Series(capital)
    equity[PORTFOLIO] = pnl.sum(axis=1).cumsum() + sum(capital.values())
    returns = pnl / pd.Series(capital)
    returns[PORTFOLIO] = pnl.sum(axis=1) / (sum(capital.values()) or 1.0)
    periodic = period_sums(returns, report.frequency)
    per_year = PERIODS_PER_YEAR[report.frequency]
    # Every column at once (fifty strategies over ten years took 0.6 s one by one), in micros:
    # money is rounded half up once (units.money), the drawdown measured on exact integers.
    pnl_micros = np.rint(pnl.to_numpy() * MICROS).astype("int64")
    totals = [*pnl_micros.sum(axis=0).tolist(), int(pnl_micros.sum())]
    ending = np.rint(unrealised.values.loc[days[-1]].to_numpy() * MICROS).astype("int64")
    open_now = [*ending.tolist(), int(ending.sum())]
    everyone = [*names, PORTFOLIO]
    equity_micros = pd.DataFrame(
        np.rint(equity.to_numpy() * MICROS).astype("int64"), index=days, columns=everyone
    )
    risk = risk_table(equity_micros, periodic, per_year)
    stats = report.stats.copy()
    stats["total_pnl"] = pd.Series([float(money(m)) for m in totals], index=everyone)
    stats["unrealised_pnl"] = pd.Series([float(money(m)) for m in open_now], index=everyone)
    for column in RISK_COLUMNS:
        stats[column] = risk[column]
    stale = unrealised.stale.loc[days]
    total = replace(
        report,
        stats=stats,
        daily_pnl=pnl,
        equity=equity,
        drawdown=equity - equity.cummax(),
        returns=returns,
    )
    return total, Unrealised(unrealised.values.loc[days], stale, zone)


def stale_summary(unrealised: Unrealised) -> tuple[int, int]:
    """(days with a stale valuation, largest number of stale positions on one day)."""
    per_day = unrealised.stale.sum(axis=1)
    return int((per_day > 0).sum()), int(per_day.max()) if len(per_day) else 0
