"""What the blotter and the home page show, read from a ledger database (read-only).

Two books: production (the workspace database: paper and live clients, imports) and simulation
(the database simulation-mode clients record into). Every figure comes from the shared views:
unrealised PnL, market value and exposure from `v_unrealised_pnl`, fills from `v_executions`.
Staleness of a mark is decided by `quantstrip.brokers.marks` (the same rule the risk guard uses);
a stale or missing mark is flagged and its position left out of the totals, never valued
silently.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from quantstrip import clock, settings_file
from quantstrip.brokers.marks import age_s
from quantstrip.db.units import utc_text
from quantstrip.paths import workspace

if TYPE_CHECKING:  # the home page's summary needs no frames: pandas loads with the blotter
    import pandas as pd

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
    """A read-only connection (`ledger.read_ledger`: mode=ro and a reads-only authorizer)."""
    from quantstrip.dashboard.ledger import read_ledger

    path = books().get(book)
    if path is None or not path.exists():
        yield None
        return
    with read_ledger(None if path == workspace().database else path) as conn:
        yield conn


def day_zone() -> str:
    return settings_file.day_zone()


def day_start(now: datetime | None = None, zone: str | None = None) -> datetime:
    """Midnight today in the trading day's zone (`risk.day_zone`)."""
    local = (now or clock.now()).astimezone(ZoneInfo(zone or day_zone()))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Rows:
    """A query's result as plain rows: the blotter draws its tables from these without pandas
    (importing it costs the page's kernel about a third of a second)."""

    columns: list[str]
    rows: list[dict[str, Any]]

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)


def _rows(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> Rows:
    cursor = conn.execute(sql, params)
    columns = [c[0] for c in cursor.description]
    return Rows(columns, [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()])


def _count(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM ({sql})", params).fetchone()[0])


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


def open_order_rows(conn: sqlite3.Connection, now: datetime | None = None) -> Rows:
    found = _rows(conn, OPEN_ORDERS_SQL)
    now = now or clock.now()
    for row in found.rows:
        row["age_s"] = age_s(row["created_at"], now)
    return Rows([*found.columns, "age_s"], found.rows)


def rejected_rows(conn: sqlite3.Connection, since: datetime) -> Rows:
    return _rows(conn, REJECTED_SQL, (utc_text(since),))


def refused_rows(conn: sqlite3.Connection, since: datetime) -> Rows:
    return _rows(conn, REFUSED_SQL, (utc_text(since),))


def execution_rows(conn: sqlite3.Connection, since: datetime) -> Rows:
    return _rows(conn, EXECUTIONS_SQL, (utc_text(since),))


def open_orders(conn: sqlite3.Connection, now: datetime | None = None) -> pd.DataFrame:
    return open_order_rows(conn, now).frame()


def rejected_today(conn: sqlite3.Connection, since: datetime) -> pd.DataFrame:
    return rejected_rows(conn, since).frame()


def refused_today(conn: sqlite3.Connection, since: datetime) -> pd.DataFrame:
    return refused_rows(conn, since).frame()


def executions_today(conn: sqlite3.Connection, since: datetime) -> pd.DataFrame:
    return execution_rows(conn, since).frame()


def _positions(
    conn: sqlite3.Connection, now: datetime | None, limit_s: float | None
) -> tuple[list[str], list[dict[str, Any]]]:
    cursor = conn.execute(POSITIONS_SQL)
    columns = [c[0] for c in cursor.description]
    rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    now = now or clock.now()
    # Read for display (quantstrip.settings_file): a page's book loads no pydantic.
    limit_s = settings_file.mark_max_age_s() if limit_s is None else limit_s
    for row in rows:
        age = None if row["mark_time"] is None else age_s(row["mark_time"], now)
        row["mark_age_s"] = age
        row["fresh"] = age is not None and age <= limit_s
    return [*columns, "mark_age_s", "fresh"], rows


def position_rows(
    conn: sqlite3.Connection, now: datetime | None = None, limit_s: float | None = None
) -> list[dict[str, Any]]:
    """Open positions with their mark, value and unrealised PnL, and whether the mark is fresh."""
    return _positions(conn, now, limit_s)[1]


def positions(
    conn: sqlite3.Connection, now: datetime | None = None, limit_s: float | None = None
) -> pd.DataFrame:
    """`position_rows` as a frame (the blotter's tables)."""
    import pandas as pd

    columns, rows = _positions(conn, now, limit_s)
    return pd.DataFrame(rows, columns=columns)


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


def _total(rows: list[dict[str, Any]], column: str) -> float:
    """The sum of a column over rows, a missing value counting as nothing."""
    values = (r[column] for r in rows)
    return float(sum(v for v in values if v is not None and not math.isnan(v)))


def _summary(
    orders: int, fills: int, held: list[dict[str, Any]], refused: int, rejected: int
) -> Summary:
    fresh = [r for r in held if r["fresh"]]
    return Summary(
        open_orders=orders,
        fills_today=fills,
        positions=len(held),
        unrealised=_total(fresh, "unrealised_pnl"),
        market_value=_total(fresh, "market_value"),
        exposure=_total(fresh, "exposure"),
        stale=len(held) - len(fresh),
        refused_today=refused,
        rejected_today=rejected,
    )


def summarise(
    orders: pd.DataFrame,
    fills: pd.DataFrame,
    held: pd.DataFrame,
    refused: pd.DataFrame,
    rejected: pd.DataFrame,
) -> Summary:
    """The summary of the blotter's frames (the same figures as `summary`)."""
    rows = held.to_dict("records") if not held.empty else []
    return _summary(len(orders), len(fills), rows, len(refused), len(rejected))


def summarise_rows(
    orders: Rows, fills: Rows, held: list[dict[str, Any]], refused: Rows, rejected: Rows
) -> Summary:
    """The summary of the blotter's rows (the same figures as `summary` and `summarise`)."""
    return _summary(len(orders.rows), len(fills.rows), held, len(refused.rows), len(rejected.rows))


def summary(book: str = "production", now: datetime | None = None) -> Summary | None:
    """The home page's line about a book (None: no database yet)."""
    now = now or clock.now()
    since = day_start(now)
    with reading(book) as conn:
        if conn is None:
            return None
        # Counted and summed from rows: the home page shows no table and loads no pandas.
        stamp = (utc_text(since),)
        return _summary(
            _count(conn, OPEN_ORDERS_SQL),
            _count(conn, EXECUTIONS_SQL, stamp),
            position_rows(conn, now),
            _count(conn, REFUSED_SQL, stamp),
            _count(conn, REJECTED_SQL, stamp),
        )
