"""What the blotter and the home page show, read from a ledger database (read-only).

Two books: production (the workspace database: paper and live clients, imports) and simulation
(the database simulation-mode clients record into). Every figure comes from the shared views:
unrealised PnL, market value and exposure from `v_unrealised_pnl`, fills from `v_executions`.
Staleness of a mark is decided by `quantstrip.brokers.marks` (the same rule the risk guard uses);
a stale or missing mark is flagged and its position left out of the totals, never valued
silently.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from quantstrip import clock
from quantstrip.brokers.marks import age_s, max_age_s
from quantstrip.db.units import utc_text
from quantstrip.paths import workspace

OPEN_STATUSES = ("PendingSubmit", "PreSubmitted", "Submitted", "PartiallyFilled", "ApiPending")
REJECTED_STATUSES = ("Rejected", "Inactive")


def books() -> dict[str, Path]:
    """The books there are to show: production always, simulation once it exists."""
    ws = workspace()
    found = {"production": ws.database}
    if ws.simulation_database.exists():
        found["simulation"] = ws.simulation_database
    return found


@contextmanager
def reading(book: str = "production") -> Iterator[sqlite3.Connection | None]:
    """A read-only connection (`common.read_ledger`: mode=ro and a reads-only authorizer)."""
    from quantstrip.dashboard.common import read_ledger

    path = books().get(book)
    if path is None or not path.exists():
        yield None
        return
    with read_ledger(None if path == workspace().database else path) as conn:
        yield conn


def day_zone() -> str:
    from quantstrip import settings

    return settings.platform().risk.day_zone


def day_start(now: datetime | None = None, zone: str | None = None) -> datetime:
    """Midnight today in the trading day's zone (`risk.day_zone`)."""
    local = (now or clock.now()).astimezone(ZoneInfo(zone or day_zone()))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _frame(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> pd.DataFrame:
    cursor = conn.execute(sql, params)
    columns = [c[0] for c in cursor.description]
    return pd.DataFrame([tuple(r) for r in cursor.fetchall()], columns=columns)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


OPEN_ORDERS_SQL = f"""
SELECT o.id, o.created_at, o.client_name AS client, s.name AS strategy, a.account_code AS account,
       i.symbol, o.side, o.qty_micros / 1e6 AS qty, o.filled_qty_micros / 1e6 AS filled,
       o.order_type AS type, o.limit_price_micros / 1e6 AS limit_price,
       o.stop_price_micros / 1e6 AS stop_price, o.tif, o.status, o.broker,
       (SELECT e.message FROM order_events e WHERE e.order_id = o.id AND e.message <> ''
        ORDER BY e.id DESC LIMIT 1) AS last_message,
       o.updated_at
FROM orders o
JOIN instruments i ON i.id = o.instrument_id
LEFT JOIN strategies s ON s.id = o.strategy_id
LEFT JOIN accounts a ON a.id = o.account_id
WHERE o.status IN ({_in(OPEN_STATUSES)})
ORDER BY o.created_at
"""

REJECTED_SQL = f"""
SELECT o.updated_at, o.client_name AS client, s.name AS strategy, i.symbol, o.side,
       o.qty_micros / 1e6 AS qty, o.order_type AS type, o.status,
       (SELECT e.message FROM order_events e WHERE e.order_id = o.id AND e.message <> ''
        ORDER BY e.id DESC LIMIT 1) AS broker_message
FROM orders o
JOIN instruments i ON i.id = o.instrument_id
LEFT JOIN strategies s ON s.id = o.strategy_id
WHERE o.status IN ({_in(REJECTED_STATUSES)}) AND o.updated_at >= ?
ORDER BY o.updated_at DESC
"""

REFUSED_SQL = """
SELECT e.event_time, json_extract(e.payload, '$.client') AS client, s.name AS strategy, e.symbol,
       json_extract(e.payload, '$.side') AS side, json_extract(e.payload, '$.qty') AS qty,
       json_extract(e.payload, '$.rule') AS rule, json_extract(e.payload, '$.reason') AS reason
FROM strategy_events e JOIN strategies s ON s.id = e.strategy_id
WHERE e.event_type = 'risk_refused' AND e.event_time >= ?
ORDER BY e.event_time DESC, e.id DESC
"""

EXECUTIONS_SQL = """
SELECT x.exec_time, o.client_name AS client, x.strategy, x.account, x.symbol, x.side, x.qty,
       x.price, x.notional, x.commission, x.exec_id
FROM v_executions x LEFT JOIN orders o ON o.client_order_id = x.client_order_id
WHERE x.exec_time >= ?
ORDER BY x.exec_time DESC
"""

POSITIONS_SQL = """
SELECT u.account, u.strategy, u.symbol, u.qty, u.avg_cost, u.mark_price, u.mark_time,
       u.mark_source, u.market_value, u.unrealised_pnl, u.exposure, u.currency,
       (SELECT group_concat(DISTINCT o.client_name) FROM orders o
        WHERE o.strategy_id = u.strategy_id AND o.client_name IS NOT NULL) AS client
FROM v_unrealised_pnl u
ORDER BY u.account, u.strategy, u.symbol
"""


def open_orders(conn: sqlite3.Connection, now: datetime | None = None) -> pd.DataFrame:
    frame = _frame(conn, OPEN_ORDERS_SQL)
    now = now or clock.now()
    frame["age_s"] = [age_s(t, now) for t in frame["created_at"]]
    return frame


def rejected_today(conn: sqlite3.Connection, since: datetime) -> pd.DataFrame:
    return _frame(conn, REJECTED_SQL, (utc_text(since),))


def refused_today(conn: sqlite3.Connection, since: datetime) -> pd.DataFrame:
    return _frame(conn, REFUSED_SQL, (utc_text(since),))


def executions_today(conn: sqlite3.Connection, since: datetime) -> pd.DataFrame:
    return _frame(conn, EXECUTIONS_SQL, (utc_text(since),))


def positions(
    conn: sqlite3.Connection, now: datetime | None = None, limit_s: float | None = None
) -> pd.DataFrame:
    """Open positions with their mark, value and unrealised PnL, and whether the mark is fresh."""
    frame = _frame(conn, POSITIONS_SQL)
    now = now or clock.now()
    limit_s = max_age_s() if limit_s is None else limit_s
    ages = [None if t is None else age_s(t, now) for t in frame["mark_time"]]
    frame["mark_age_s"] = ages
    frame["fresh"] = [a is not None and a <= limit_s for a in ages]
    return frame


@dataclass(frozen=True)
class Summary:
    open_orders: int
    fills_today: int
    positions: int
    unrealised: float  # over positions with a fresh mark
    market_value: float
    exposure: float
    stale: int  # positions without a fresh mark (left out of the three sums above)
    refused_today: int
    rejected_today: int


def summarise(
    orders: pd.DataFrame,
    fills: pd.DataFrame,
    held: pd.DataFrame,
    refused: pd.DataFrame,
    rejected: pd.DataFrame,
) -> Summary:
    fresh = held[held["fresh"]] if not held.empty else held
    return Summary(
        open_orders=len(orders),
        fills_today=len(fills),
        positions=len(held),
        unrealised=float(fresh["unrealised_pnl"].sum()) if not fresh.empty else 0.0,
        market_value=float(fresh["market_value"].sum()) if not fresh.empty else 0.0,
        exposure=float(fresh["exposure"].sum()) if not fresh.empty else 0.0,
        stale=int(len(held) - len(fresh)),
        refused_today=len(refused),
        rejected_today=len(rejected),
    )


def summary(book: str = "production", now: datetime | None = None) -> Summary | None:
    """The home page's line about a book (None: no database yet)."""
    now = now or clock.now()
    since = day_start(now)
    with reading(book) as conn:
        if conn is None:
            return None
        return summarise(
            open_orders(conn, now),
            executions_today(conn, since),
            positions(conn, now),
            refused_today(conn, since),
            rejected_today(conn, since),
        )
