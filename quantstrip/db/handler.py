"""`Database`: every read and write of the lifecycle tables goes through here.

The facade is composed of parts with one job each, so clients keep one flat API
(`db.record_execution(...)`, `db_handler.insert_strategy_event(...)`):
  reference.py       accounts, strategies, instruments
  orders.py          orders and their status history
  executions.py      fills and commissions (idempotency, corrections)
  position_store.py  positions from fills (position_rows.py: the rows; position_replay.py: a
                     late fill or a correction; positions.py: the arithmetic)
  journal.py         strategy events, client events, account snapshots
  cash.py            cash events (dividends, tax, interest, fees, transfers)
  fx.py              FX rates to base for fills the broker gave none
and this module adds the connection and generic CRUD over the platform tables. Writes are short
`BEGIN IMMEDIATE` transactions (`db/connection.py`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantstrip.db.cash import CashLedger
from quantstrip.db.connection import BUSY_TIMEOUT_MS, ThreadConnections, transaction
from quantstrip.db.executions import ExecutionInput, ExecutionLedger, ExecutionResult
from quantstrip.db.fx import FxRates
from quantstrip.db.journal import Journal
from quantstrip.db.migrate import migrate
from quantstrip.db.orders import OrderBook
from quantstrip.db.position_store import PositionStore
from quantstrip.db.records import LEDGER_TABLES, RECORDS, Record
from quantstrip.db.reference import ReferenceData
from quantstrip.db.units import now_text
from quantstrip.db.validate import normalise_side, positive_micros, price_micros
from quantstrip.errors import AppendOnlyError, NotFoundError, ValidationError

__all__ = [
    "Database",
    "ExecutionInput",
    "ExecutionResult",
    "Page",
    "normalise_side",
    "positive_micros",
    "price_micros",
]

MAX_PAGE = 10_000


@dataclass(frozen=True)
class Page:
    rows: list[Record]
    total: int
    limit: int
    offset: int


class Database(
    ReferenceData, OrderBook, ExecutionLedger, PositionStore, Journal, CashLedger, FxRates
):
    """One lifecycle database, usable from any number of threads of one process.

    Each thread works on its own connection (`conn` is the calling thread's), so each thread's
    transaction is its own: a client's job and its broker's event thread write side by side
    without joining, committing or rolling back each other's work. Not shared across processes
    (open one each).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        create_strategies: bool = True,
        busy_timeout_s: float = BUSY_TIMEOUT_MS / 1000,
    ) -> None:
        """`create_strategies=False` refuses writes naming a strategy nobody created (with
        `ensure_strategy`); `db_handler` opens the production record that way.
        `busy_timeout_s`: how long a write waits for another writer before "database is
        locked"."""
        self.path = Path(path)
        self.create_strategies = create_strategies
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = ThreadConnections(
            self.path, read_only=read_only, busy_timeout_s=busy_timeout_s
        )
        if not read_only:
            migrate(self.conn)

    @property
    def conn(self) -> sqlite3.Connection:
        """The calling thread's connection (opened on first use)."""
        return self._connections.get()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Group several writes of this thread into one transaction: all or none.

        Writes of other threads are not part of it; they wait for it to end.
        """
        with transaction(self.conn) as conn:
            yield conn

    def close(self) -> None:
        self._connections.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- generic CRUD -------------------------------------------------------------------
    def _record_type(self, table: str) -> type[Record]:
        if table not in RECORDS:
            raise ValidationError("table", f"unknown table {table!r}")
        return RECORDS[table]

    def _check_columns(self, table: str, names: Iterable[str]) -> None:
        known = set(self._record_type(table).columns())
        for name in names:
            if name not in known:
                raise ValidationError(name, f"no such column in {table}")

    def get(self, table: str, row_id: int) -> Record:
        cls = self._record_type(table)
        row = self.conn.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"{table} has no row with id {row_id}")
        return cls.from_row(row)

    def select(
        self,
        table: str,
        where: dict[str, Any] | None = None,
        *,
        order_by: str = "id",
        descending: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> Page:
        """Rows matching equality filters (a list value means IN), one page at a time."""
        cls = self._record_type(table)
        where = where or {}
        order_column = order_by
        self._check_columns(table, [*where, order_column])
        if not 0 < limit <= MAX_PAGE:
            raise ValidationError("limit", f"must be between 1 and {MAX_PAGE}")
        if offset < 0:
            raise ValidationError("offset", "must not be negative")
        clauses, params = [], []
        for column, value in where.items():
            if value is None:
                clauses.append(f"{column} IS NULL")
            elif isinstance(value, list | tuple | set):
                values = list(value)
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})" if values else "0")
                params.extend(values)
            else:
                clauses.append(f"{column} = ?")
                params.append(value)
        condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        total = self.conn.execute(f"SELECT COUNT(*) FROM {table}{condition}", params).fetchone()[0]
        direction = "DESC" if descending else "ASC"
        rows = self.conn.execute(
            f"SELECT * FROM {table}{condition} ORDER BY {order_column} {direction} "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        return Page([cls.from_row(r) for r in rows], total, limit, offset)

    def all(self, table: str, where: dict[str, Any] | None = None, **kw: Any) -> list[Record]:
        """Every matching row (paged internally)."""
        out: list[Record] = []
        offset = 0
        while True:
            page = self.select(table, where, limit=MAX_PAGE, offset=offset, **kw)
            out.extend(page.rows)
            offset += len(page.rows)
            if offset >= page.total or not page.rows:
                return out

    def insert(self, table: str, **values: Any) -> Record:
        self._refuse_ledger(table, "insert")
        self._check_columns(table, values)
        if "created_at" in self._record_type(table).columns():
            values.setdefault("created_at", now_text())
        if "updated_at" in self._record_type(table).columns():
            values.setdefault("updated_at", now_text())
        columns = ", ".join(values)
        with transaction(self.conn):
            cursor = self.conn.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(values))})",
                list(values.values()),
            )
        return self.get(table, int(cursor.lastrowid or 0))

    def update(self, table: str, row_id: int, **values: Any) -> Record:
        self._refuse_ledger(table, "update")
        self._check_columns(table, values)
        if "id" in values:
            raise ValidationError("id", "cannot be changed")
        if "updated_at" in self._record_type(table).columns():
            values.setdefault("updated_at", now_text())
        assignments = ", ".join(f"{c} = ?" for c in values)
        with transaction(self.conn):
            changed = self.conn.execute(
                f"UPDATE {table} SET {assignments} WHERE id = ?", [*values.values(), row_id]
            ).rowcount
        if not changed:
            raise NotFoundError(f"{table} has no row with id {row_id}")
        return self.get(table, row_id)

    def delete(self, table: str, row_id: int) -> None:
        self._refuse_ledger(table, "delete")
        self._record_type(table)
        with transaction(self.conn):
            changed = self.conn.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,)).rowcount
        if not changed:
            raise NotFoundError(f"{table} has no row with id {row_id}")

    @staticmethod
    def _refuse_ledger(table: str, operation: str) -> None:
        if table in LEDGER_TABLES:
            raise AppendOnlyError(
                f"{table} is part of the trade ledger: {operation} is refused; use the record_* "
                "operations (corrections supersede, they never edit)"
            )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Read-only ad-hoc SQL over tables and views (used by tests and tools)."""
        return self.conn.execute(sql, params).fetchall()
