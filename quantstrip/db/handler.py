"""`Database`: every read and write of the lifecycle tables goes through here.

Writes are short `BEGIN IMMEDIATE` transactions. `record_execution` is idempotent on the
broker's exec id and applies the fill to its position in the same transaction, so a crash can
never leave an execution without its position event (or the reverse).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from quantstrip.db.connection import connect, transaction
from quantstrip.db.migrate import migrate
from quantstrip.db.positions import METHODS, Fill, Lot, PositionState
from quantstrip.db.records import (
    LEDGER_TABLES,
    RECORDS,
    Account,
    AccountSnapshot,
    ClientEvent,
    Commission,
    Execution,
    Instrument,
    Order,
    OrderEvent,
    Position,
    Record,
    Strategy,
    StrategyEvent,
)
from quantstrip.db.units import Number, now_text, to_micros, utc_text
from quantstrip.errors import AppendOnlyError, NotFoundError, ValidationError

SIDES = {"BUY": "BUY", "BOT": "BUY", "B": "BUY", "SELL": "SELL", "SLD": "SELL", "S": "SELL"}
ORDER_TYPES = {"MKT", "LMT", "STP", "STP LMT"}
TERMINAL_STATUSES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive", "Rejected"})
MAX_PAGE = 10_000


def normalise_side(side: object) -> str:
    if not isinstance(side, str) or side.strip().upper() not in SIDES:
        raise ValidationError("side", f"must be BUY or SELL, got {side!r}")
    return SIDES[side.strip().upper()]


def positive_micros(value: Number, field: str) -> int:
    micros = to_micros(value, field)
    if micros <= 0:
        raise ValidationError(field, f"must be greater than zero, got {value!r}")
    return micros


def price_micros(value: Number | None, field: str, *, required: bool = True) -> int | None:
    if value is None:
        if required:
            raise ValidationError(field, "is required")
        return None
    if isinstance(value, float) and math.isnan(value):
        raise ValidationError(field, "must be a finite number, got nan")
    micros = to_micros(value, field)
    if micros < 0:
        raise ValidationError(field, f"must not be negative, got {value!r}")
    return micros


def split_ib_exec_id(exec_id: str) -> tuple[str, int]:
    """IB corrections change only the suffix after the last '.': base id and correction number."""
    base, dot, suffix = exec_id.rpartition(".")
    if dot and base:
        try:
            return base, int(suffix, 16)
        except ValueError:
            pass
    return exec_id, 0


@dataclass(frozen=True)
class ExecutionInput:
    """A fill as a broker reports it, in natural units."""

    broker: str
    account: str
    exec_id: str
    strategy: str | int
    instrument_id: int
    side: str
    qty: Number
    price: Number
    exec_time: Any
    order_id: int | None = None
    client_order_id: str | None = None
    base_exec_id: str | None = None
    correction_number: int | None = None
    liquidity: str = ""
    exchange: str = ""


@dataclass(frozen=True)
class ExecutionResult:
    execution: Execution
    created: bool
    superseded: Execution | None = None


@dataclass(frozen=True)
class Page:
    rows: list[Record]
    total: int
    limit: int
    offset: int


class Database:
    """One connection to one lifecycle database. Not shared across processes (open one each)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = connect(self.path, read_only=read_only)
        if not read_only:
            migrate(self.conn)
        self._strategy_ids: dict[str, int] = {}
        self._account_ids: dict[tuple[str, str], int] = {}
        self._instrument_cache: dict[int, Instrument] = {}

    def close(self) -> None:
        self.conn.close()

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

    # ---- reference data -----------------------------------------------------------------
    def ensure_account(self, broker: str, account_code: str, **extra: Any) -> int:
        key = (broker, account_code)
        if key in self._account_ids:
            return self._account_ids[key]
        if not account_code:
            raise ValidationError("account", "must not be empty")
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR IGNORE INTO accounts (broker, account_code, name, base_currency, "
                "created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    broker,
                    account_code,
                    extra.get("name"),
                    extra.get("base_currency", "USD"),
                    now_text(),
                ),
            )
            row = self.conn.execute(
                "SELECT id FROM accounts WHERE broker = ? AND account_code = ?", key
            ).fetchone()
        self._account_ids[key] = int(row[0])
        return self._account_ids[key]

    def ensure_strategy(
        self, name: str, *, position_method: str = "fifo", description: str = ""
    ) -> int:
        if name in self._strategy_ids:
            return self._strategy_ids[name]
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("strategy", "name must be a non-empty string")
        if position_method not in METHODS:
            raise ValidationError("position_method", f"must be one of {METHODS}")
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR IGNORE INTO strategies (name, description, position_method, "
                "created_at) VALUES (?, ?, ?, ?)",
                (name, description, position_method, now_text()),
            )
            row = self.conn.execute("SELECT id FROM strategies WHERE name = ?", (name,)).fetchone()
        self._strategy_ids[name] = int(row[0])
        return self._strategy_ids[name]

    def strategy_id(self, strategy: str | int) -> int:
        if isinstance(strategy, int) and not isinstance(strategy, bool):
            if self.conn.execute("SELECT 1 FROM strategies WHERE id = ?", (strategy,)).fetchone():
                return strategy
            raise ValidationError("strategy", f"unknown strategy id {strategy}")
        if isinstance(strategy, str):
            return self.ensure_strategy(strategy)
        raise ValidationError("strategy", f"expected a name or id, got {strategy!r}")

    def ensure_instrument(
        self,
        symbol: str,
        *,
        sec_type: str = "STK",
        exchange: str = "SMART",
        currency: str = "USD",
        multiplier: Number = 1,
        primary_exchange: str | None = None,
        local_symbol: str | None = None,
        expiry: str = "",
        strike: Number = 0,
        option_right: str = "",
        broker: str | None = None,
        broker_contract_id: str | int | None = None,
    ) -> int:
        """The id of an instrument, created on first sight; a broker id is linked to it."""
        if not isinstance(symbol, str) or not symbol.strip():
            raise ValidationError("symbol", "must be a non-empty string")
        mult = positive_micros(multiplier, "multiplier")
        strike_m = to_micros(strike, "strike")
        key = (symbol, sec_type, exchange, currency, expiry, strike_m, option_right)
        with transaction(self.conn):
            if broker and broker_contract_id not in (None, ""):
                row = self.conn.execute(
                    "SELECT instrument_id FROM instrument_broker_ids "
                    "WHERE broker = ? AND broker_contract_id = ?",
                    (broker, str(broker_contract_id)),
                ).fetchone()
                if row:
                    return int(row[0])
            self.conn.execute(
                "INSERT OR IGNORE INTO instruments (symbol, sec_type, exchange, currency, expiry, "
                "strike_micros, option_right, multiplier_micros, primary_exchange, local_symbol, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*key, mult, primary_exchange, local_symbol, now_text()),
            )
            instrument_id = int(
                self.conn.execute(
                    "SELECT id FROM instruments WHERE symbol = ? AND sec_type = ? AND exchange = ? "
                    "AND currency = ? AND expiry = ? AND strike_micros = ? AND option_right = ?",
                    key,
                ).fetchone()[0]
            )
            if broker and broker_contract_id not in (None, ""):
                self.conn.execute(
                    "INSERT OR IGNORE INTO instrument_broker_ids VALUES (?, ?, ?)",
                    (instrument_id, broker, str(broker_contract_id)),
                )
        return instrument_id

    def instrument(self, instrument_id: int) -> Instrument:
        cached = self._instrument_cache.get(instrument_id)
        if cached is not None:
            return cached
        if isinstance(instrument_id, bool) or not isinstance(instrument_id, int):
            raise ValidationError("instrument_id", f"expected an integer id, got {instrument_id!r}")
        row = self.conn.execute(
            "SELECT * FROM instruments WHERE id = ?", (instrument_id,)
        ).fetchone()
        if row is None:
            raise ValidationError("instrument_id", f"unknown instrument {instrument_id}")
        found = Instrument.from_row(row)
        self._instrument_cache[instrument_id] = found
        return found

    def instrument_by_broker_id(self, broker: str, broker_contract_id: str | int) -> Instrument:
        row = self.conn.execute(
            "SELECT i.* FROM instruments i JOIN instrument_broker_ids b ON b.instrument_id = i.id "
            "WHERE b.broker = ? AND b.broker_contract_id = ?",
            (broker, str(broker_contract_id)),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no instrument for {broker} contract {broker_contract_id}")
        return Instrument.from_row(row)

    # ---- orders ---------------------------------------------------------------------------
    def record_order(
        self,
        *,
        client_order_id: str,
        instrument_id: int,
        broker: str,
        order_type: str,
        side: str,
        qty: Number,
        strategy: str | int | None = None,
        account: str | None = None,
        limit_price: Number | None = None,
        stop_price: Number | None = None,
        tif: str = "DAY",
        status: str = "PendingSubmit",
        broker_order_id: str | int | None = None,
        broker_client_id: str | int | None = None,
        perm_id: str | int | None = None,
        parent_order_id: int | None = None,
        oca_group: str | None = None,
        client_name: str | None = None,
        order_ref: str | None = None,
        created_at: Any = None,
    ) -> Order:
        """Create an order (idempotent on client_order_id) and its first status event."""
        if not client_order_id:
            raise ValidationError("client_order_id", "must not be empty")
        order_type = str(order_type).upper()
        if order_type not in ORDER_TYPES:
            raise ValidationError("order_type", f"must be one of {sorted(ORDER_TYPES)}")
        side = normalise_side(side)
        qty_m = positive_micros(qty, "qty")
        limit_m = price_micros(
            limit_price, "limit_price", required=order_type in {"LMT", "STP LMT"}
        )
        stop_m = price_micros(stop_price, "stop_price", required=order_type in {"STP", "STP LMT"})
        self.instrument(instrument_id)
        strategy_id = self.strategy_id(strategy) if strategy is not None else None
        account_id = self.ensure_account(broker, account) if account else None
        when = utc_text(created_at, "created_at")
        existing = self.conn.execute(
            "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        if existing:
            return Order.from_row(existing)
        with transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO orders (client_order_id, strategy_id, account_id, instrument_id, "
                "broker, broker_order_id, broker_client_id, perm_id, parent_order_id, oca_group, "
                "order_type, side, qty_micros, limit_price_micros, stop_price_micros, tif, status, "
                "client_name, order_ref, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    client_order_id,
                    strategy_id,
                    account_id,
                    instrument_id,
                    broker,
                    _text(broker_order_id),
                    _text(broker_client_id),
                    _text(perm_id),
                    parent_order_id,
                    oca_group,
                    order_type,
                    side,
                    qty_m,
                    limit_m,
                    stop_m,
                    tif,
                    status,
                    client_name,
                    order_ref,
                    when,
                    when,
                ),
            )
            order_id = int(cursor.lastrowid or 0)
            self._append_order_event(order_id, status, 0, qty_m, None, "", when)
        return self.order(order_id)

    def order(self, order_id: int) -> Order:
        row = self.conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"orders has no row with id {order_id}")
        return Order.from_row(row)

    def order_by_client_id(self, client_order_id: str) -> Order | None:
        row = self.conn.execute(
            "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return Order.from_row(row) if row else None

    def find_order(
        self,
        broker: str,
        *,
        perm_id: str | int | None = None,
        broker_order_id: str | int | None = None,
        broker_client_id: str | int | None = None,
    ) -> Order | None:
        """Look an order up by what a broker reports: perm id first, then order id + client id."""
        if perm_id not in (None, "", 0, "0"):
            row = self.conn.execute(
                "SELECT * FROM orders WHERE broker = ? AND perm_id = ?", (broker, str(perm_id))
            ).fetchone()
            if row:
                return Order.from_row(row)
        if broker_order_id not in (None, ""):
            row = self.conn.execute(
                "SELECT * FROM orders WHERE broker = ? AND broker_order_id = ? "
                "AND (broker_client_id IS ? OR ? IS NULL) ORDER BY id DESC LIMIT 1",
                (broker, str(broker_order_id), _text(broker_client_id), _text(broker_client_id)),
            ).fetchone()
            if row:
                return Order.from_row(row)
        return None

    def update_order(self, order_id: int, **values: Any) -> Order:
        """Change an order's broker ids or terms (a modify); status has its own call."""
        allowed = {
            "broker_order_id",
            "broker_client_id",
            "perm_id",
            "oca_group",
            "parent_order_id",
            "qty",
            "limit_price",
            "stop_price",
            "tif",
            "order_ref",
        }
        unknown = set(values) - allowed
        if unknown:
            raise ValidationError(sorted(unknown)[0], "cannot be changed on an order")
        columns: dict[str, Any] = {}
        for name, value in values.items():
            if name == "qty":
                columns["qty_micros"] = positive_micros(value, "qty")
            elif name in {"limit_price", "stop_price"}:
                columns[f"{name}_micros"] = price_micros(value, name, required=False)
            elif name in {"broker_order_id", "broker_client_id", "perm_id"}:
                columns[name] = _text(value)
            else:
                columns[name] = value
        columns["updated_at"] = now_text()
        assignments = ", ".join(f"{c} = ?" for c in columns)
        with transaction(self.conn):
            changed = self.conn.execute(
                f"UPDATE orders SET {assignments} WHERE id = ?", [*columns.values(), order_id]
            ).rowcount
        if not changed:
            raise NotFoundError(f"orders has no row with id {order_id}")
        return self.order(order_id)

    def update_order_status(
        self,
        order_id: int,
        status: str,
        *,
        filled_qty: Number | None = None,
        remaining_qty: Number | None = None,
        avg_fill_price: Number | None = None,
        message: str = "",
        event_time: Any = None,
    ) -> Order:
        """Append a status event; the order row keeps the latest. Exact repeats are dropped."""
        if not status:
            raise ValidationError("status", "must not be empty")
        filled_m = to_micros(filled_qty, "filled_qty") if filled_qty is not None else None
        remaining_m = (
            to_micros(remaining_qty, "remaining_qty") if remaining_qty is not None else None
        )
        avg_m = price_micros(avg_fill_price, "avg_fill_price", required=False)
        when = utc_text(event_time, "event_time")
        with transaction(self.conn):
            current = self.order(order_id)
            if current.status in TERMINAL_STATUSES and status not in TERMINAL_STATUSES:
                # A late or replayed update (a partial fill after Filled) must not reopen it.
                return current
            filled_m = current.filled_qty_micros if filled_m is None else filled_m
            filled_m = max(filled_m, current.filled_qty_micros)
            avg_m = current.avg_fill_price_micros if avg_m in (None, 0) else avg_m
            last = self.conn.execute(
                "SELECT status, filled_qty_micros, remaining_qty_micros, message FROM order_events "
                "WHERE order_id = ? ORDER BY id DESC LIMIT 1",
                (order_id,),
            ).fetchone()
            same = last is not None and (
                last["status"],
                last["filled_qty_micros"],
                last["remaining_qty_micros"],
                last["message"],
            ) == (status, filled_m, remaining_m, message)
            if not same:
                self._append_order_event(
                    order_id, status, filled_m, remaining_m, avg_m, message, when
                )
            self.conn.execute(
                "UPDATE orders SET status = ?, filled_qty_micros = ?, avg_fill_price_micros = ?, "
                "updated_at = ? WHERE id = ?",
                (status, filled_m, avg_m, now_text(), order_id),
            )
        return self.order(order_id)

    def _append_order_event(
        self,
        order_id: int,
        status: str,
        filled_m: int,
        remaining_m: int | None,
        avg_m: int | None,
        message: str,
        when: str,
    ) -> None:
        self.conn.execute(
            "INSERT INTO order_events (order_id, status, filled_qty_micros, remaining_qty_micros, "
            "avg_fill_price_micros, message, event_time, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (order_id, status, filled_m, remaining_m, avg_m, message, when, now_text()),
        )

    def order_events(self, order_id: int) -> list[OrderEvent]:
        rows = self.conn.execute(
            "SELECT * FROM order_events WHERE order_id = ? ORDER BY id", (order_id,)
        ).fetchall()
        return [OrderEvent.from_row(r) for r in rows]

    # ---- executions, commissions, positions -------------------------------------------------
    def _validate_execution(self, fill: ExecutionInput) -> dict[str, Any]:
        if not fill.broker:
            raise ValidationError("broker", "must not be empty")
        if not fill.exec_id or not isinstance(fill.exec_id, str):
            raise ValidationError("exec_id", "must be a non-empty string")
        if not fill.account:
            raise ValidationError("account", "must not be empty")
        side = normalise_side(fill.side)
        qty_m = positive_micros(fill.qty, "qty")
        px_m = price_micros(fill.price, "price")
        instrument = self.instrument(fill.instrument_id)
        base, correction = fill.base_exec_id, fill.correction_number
        if base is None:
            base, parsed = (
                (fill.exec_id, 0) if fill.broker != "ib" else split_ib_exec_id(fill.exec_id)
            )
            correction = parsed if correction is None else correction
        return {
            "side": side,
            "qty_micros": qty_m,
            "price_micros": px_m,
            "instrument": instrument,
            "exec_time": utc_text(fill.exec_time, "exec_time"),
            "base_exec_id": base,
            "correction_number": int(correction or 0),
        }

    def record_execution(self, fill: ExecutionInput) -> ExecutionResult:
        """Store a fill once and apply it to its position, atomically.

        A repeated exec id returns the stored row untouched. A higher correction number of the
        same base exec id supersedes the earlier fill and the position is rebuilt; a lower one
        (arriving late) is stored as already superseded.
        """
        checked = self._validate_execution(fill)
        with transaction(self.conn):
            return self._record_execution_locked(fill, checked)

    def record_executions(self, fills: Sequence[ExecutionInput]) -> list[ExecutionResult]:
        """Many fills in one transaction (all or none), each validated before any write."""
        checked = [self._validate_execution(f) for f in fills]
        with transaction(self.conn):
            return [
                self._record_execution_locked(f, c) for f, c in zip(fills, checked, strict=True)
            ]

    def _record_execution_locked(self, fill: ExecutionInput, c: dict[str, Any]) -> ExecutionResult:
        account_id = self.ensure_account(fill.broker, fill.account)
        existing = self.conn.execute(
            "SELECT * FROM executions WHERE broker = ? AND account_id = ? AND exec_id = ?",
            (fill.broker, account_id, fill.exec_id),
        ).fetchone()
        if existing:
            return ExecutionResult(Execution.from_row(existing), created=False)
        strategy_id = self.strategy_id(fill.strategy)
        order_id = fill.order_id
        if order_id is None and fill.client_order_id:
            order = self.order_by_client_id(fill.client_order_id)
            order_id = order.id if order else None
        active = self.conn.execute(
            "SELECT * FROM executions WHERE broker = ? AND account_id = ? AND base_exec_id = ? "
            "AND superseded_by IS NULL",
            (fill.broker, account_id, c["base_exec_id"]),
        ).fetchone()
        prior = Execution.from_row(active) if active else None
        late_version = prior is not None and prior.correction_number >= c["correction_number"]
        cursor = self.conn.execute(
            "INSERT INTO executions (broker, account_id, exec_id, base_exec_id, correction_number, "
            "superseded_by, order_id, strategy_id, instrument_id, side, qty_micros, price_micros, "
            "exec_time, liquidity, exchange, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fill.broker,
                account_id,
                fill.exec_id,
                c["base_exec_id"],
                c["correction_number"],
                prior.id if late_version and prior else None,
                order_id,
                strategy_id,
                fill.instrument_id,
                c["side"],
                c["qty_micros"],
                c["price_micros"],
                c["exec_time"],
                fill.liquidity or "",
                fill.exchange or "",
                now_text(),
            ),
        )
        execution_id = int(cursor.lastrowid or 0)
        self.conn.execute(
            "UPDATE commissions SET execution_id = ? WHERE broker = ? AND exec_id = ? "
            "AND execution_id IS NULL",
            (execution_id, fill.broker, fill.exec_id),
        )
        execution = self._execution(execution_id)
        if late_version:
            return ExecutionResult(execution, created=True)
        if prior is not None:
            self.conn.execute(
                "UPDATE executions SET superseded_by = ? WHERE id = ?", (execution_id, prior.id)
            )
            self._rebuild_position(prior.strategy_id, prior.account_id, prior.instrument_id)
            if (prior.strategy_id, prior.account_id, prior.instrument_id) != (
                strategy_id,
                account_id,
                fill.instrument_id,
            ):
                self._rebuild_position(strategy_id, account_id, fill.instrument_id)
            return ExecutionResult(execution, created=True, superseded=self._execution(prior.id))
        self._apply_to_position(execution)
        return ExecutionResult(execution, created=True)

    def _execution(self, execution_id: int) -> Execution:
        row = self.conn.execute("SELECT * FROM executions WHERE id = ?", (execution_id,)).fetchone()
        return Execution.from_row(row)

    def execution_by_exec_id(self, broker: str, exec_id: str) -> Execution | None:
        row = self.conn.execute(
            "SELECT * FROM executions WHERE broker = ? AND exec_id = ? ORDER BY id LIMIT 1",
            (broker, exec_id),
        ).fetchone()
        return Execution.from_row(row) if row else None

    def record_commission(
        self,
        *,
        broker: str,
        exec_id: str,
        commission: Number,
        currency: str = "USD",
        broker_realized_pnl: Number | None = None,
    ) -> Commission:
        """Store the commission of one fill, before or after the fill itself; repeats are no-ops."""
        if not exec_id:
            raise ValidationError("exec_id", "must not be empty")
        commission_m = to_micros(commission, "commission")
        pnl_m = None
        # IB sends 1.7976931348623157e308 (UNSET_DOUBLE) when it has no realised PnL.
        unset = isinstance(broker_realized_pnl, float) and abs(broker_realized_pnl) > 1e300
        if broker_realized_pnl is not None and not unset:
            pnl_m = to_micros(broker_realized_pnl, "broker_realized_pnl")
        with transaction(self.conn):
            execution = self.execution_by_exec_id(broker, exec_id)
            self.conn.execute(
                "INSERT OR IGNORE INTO commissions (broker, exec_id, execution_id, "
                "commission_micros, currency, broker_realized_pnl_micros, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    broker,
                    exec_id,
                    execution.id if execution else None,
                    commission_m,
                    currency or "USD",
                    pnl_m,
                    now_text(),
                ),
            )
            row = self.conn.execute(
                "SELECT * FROM commissions WHERE broker = ? AND exec_id = ?", (broker, exec_id)
            ).fetchone()
        return Commission.from_row(row)

    def _load_state(self, strategy_id: int, account_id: int, instrument_id: int) -> PositionState:
        method = self.conn.execute(
            "SELECT position_method FROM strategies WHERE id = ?", (strategy_id,)
        ).fetchone()[0]
        multiplier = self.instrument(instrument_id).multiplier_micros
        state = PositionState(method=method, multiplier_micros=multiplier)
        pos = self.conn.execute(
            "SELECT realized_pnl_micros, cost_basis_micros FROM positions "
            "WHERE strategy_id = ? AND account_id = ? AND instrument_id = ?",
            (strategy_id, account_id, instrument_id),
        ).fetchone()
        if pos is None:
            return state
        state.realized_pnl_micros = pos["realized_pnl_micros"]
        lots = self.conn.execute(
            "SELECT execution_id, open_time, qty_micros, price_micros, cost_basis_micros "
            "FROM position_lots WHERE strategy_id = ? AND account_id = ? AND instrument_id = ? "
            "ORDER BY id",
            (strategy_id, account_id, instrument_id),
        ).fetchall()
        state.lots = [Lot(*lot) for lot in lots]
        return state

    def _apply_to_position(self, execution: Execution, state: PositionState | None = None) -> None:
        key = (execution.strategy_id, execution.account_id, execution.instrument_id)
        last = self.conn.execute(
            "SELECT last_exec_time FROM positions WHERE strategy_id = ? AND account_id = ? "
            "AND instrument_id = ?",
            key,
        ).fetchone()
        if state is None and last is not None and last[0] > execution.exec_time:
            # A fill older than what the position has seen (caught up after a reconnect):
            # FIFO order matters, so replay the whole position in time order.
            self._rebuild_position(*key)
            return
        replaying = state is not None  # inside _rebuild_position, which refreshes at its end
        state = state or self._load_state(*key)
        fill = Fill(
            execution.id,
            execution.side,
            execution.qty_micros,
            execution.price_micros,
            state.multiplier_micros,
            execution.exec_time,
        )
        event, closures = state.apply(fill)
        self.conn.execute(
            "INSERT INTO position_events (execution_id, strategy_id, account_id, instrument_id, "
            "qty_before_micros, qty_after_micros, avg_cost_before_micros, avg_cost_after_micros, "
            "cost_basis_before_micros, cost_basis_after_micros, realized_pnl_gross_micros, method, "
            "event_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                execution.id,
                *key,
                event.qty_before_micros,
                event.qty_after_micros,
                event.avg_cost_before_micros,
                event.avg_cost_after_micros,
                event.cost_basis_before_micros,
                event.cost_basis_after_micros,
                event.realized_pnl_gross_micros,
                state.method,
                execution.exec_time,
            ),
        )
        self.conn.executemany(
            "INSERT INTO position_closures (closing_execution_id, opening_execution_id, "
            "strategy_id, account_id, instrument_id, direction, qty_micros, entry_time, "
            "entry_price_micros, exit_time, exit_price_micros, realized_pnl_gross_micros) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    execution.id,
                    c.opening_execution_id,
                    *key,
                    c.direction,
                    c.qty_micros,
                    c.entry_time,
                    c.entry_price_micros,
                    c.exit_time,
                    c.exit_price_micros,
                    c.realized_pnl_gross_micros,
                )
                for c in closures
            ],
        )
        self._store_state(key, state, execution.exec_time)
        if not replaying:
            self._refresh_capital_if_stale(execution.strategy_id)

    def _refresh_capital_if_stale(self, strategy_id: int) -> None:
        """A fill older than the strategy's newest event (on another instrument, so its own
        position needed no replay) leaves the running capital stale: recompute it now."""
        row = self.conn.execute(
            "SELECT stale FROM agg_strategy_capital WHERE strategy_id = ?", (strategy_id,)
        ).fetchone()
        if row is not None and row[0]:
            self._refresh_capital(strategy_id)

    def _store_state(self, key: tuple[int, int, int], state: PositionState, last_time: str) -> None:
        self.conn.execute(
            "DELETE FROM position_lots "
            "WHERE strategy_id = ? AND account_id = ? AND instrument_id = ?",
            key,
        )
        self.conn.executemany(
            "INSERT INTO position_lots (strategy_id, account_id, instrument_id, execution_id, "
            "open_time, qty_micros, price_micros, cost_basis_micros) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    *key,
                    lot.execution_id,
                    lot.open_time,
                    lot.qty_micros,
                    lot.price_micros,
                    lot.cost_basis_micros,
                )
                for lot in state.lots
            ],
        )
        self.conn.execute(
            "INSERT INTO positions (strategy_id, account_id, instrument_id, qty_micros, "
            "cost_basis_micros, avg_cost_micros, realized_pnl_micros, method, last_exec_time, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (strategy_id, account_id, instrument_id) DO UPDATE SET "
            "qty_micros = excluded.qty_micros, cost_basis_micros = excluded.cost_basis_micros, "
            "avg_cost_micros = excluded.avg_cost_micros, "
            "realized_pnl_micros = excluded.realized_pnl_micros, method = excluded.method, "
            "last_exec_time = excluded.last_exec_time, updated_at = excluded.updated_at",
            (
                *key,
                state.qty_micros,
                state.cost_basis_micros,
                state.avg_cost_micros,
                state.realized_pnl_micros,
                state.method,
                last_time,
                now_text(),
            ),
        )

    def _rebuild_position(
        self, strategy_id: int, account_id: int, instrument_id: int, *, refresh: bool = True
    ) -> None:
        """Replay one position's active fills in time order, inside the caller's transaction.

        `refresh=False` leaves the strategy's capital aggregate to the caller (rebuilding many
        positions of one strategy refreshes it once, at the end)."""
        key = (strategy_id, account_id, instrument_id)
        where = "strategy_id = ? AND account_id = ? AND instrument_id = ?"
        for table in ("position_events", "position_closures", "position_lots", "positions"):
            self.conn.execute(f"DELETE FROM {table} WHERE {where}", key)
        rows = self.conn.execute(
            f"SELECT * FROM executions WHERE {where} AND superseded_by IS NULL "
            "ORDER BY exec_time, id",
            key,
        ).fetchall()
        if not rows:
            if refresh:
                self._refresh_capital(strategy_id)
            return
        method = self.conn.execute(
            "SELECT position_method FROM strategies WHERE id = ?", (strategy_id,)
        ).fetchone()[0]
        state = PositionState(method, self.instrument(instrument_id).multiplier_micros)
        for row in rows:
            self._apply_to_position(Execution.from_row(row), state)
        if refresh:
            self._refresh_capital(strategy_id)

    def _refresh_capital(self, strategy_id: int) -> None:
        """Recompute a strategy's deployed-capital aggregate after its events were replaced.

        The insert trigger keeps it incrementally while events arrive in time order; a rebuild
        deletes and replays events, which marks the row stale until this runs.
        """
        # One index-driven pass over this strategy's running capital (v_capital_running): its
        # newest row carries the peak of all rows; the grouped v_capital_recomputed would
        # compute every strategy's.
        row = self.conn.execute(
            "SELECT capital_micros, MAX(capital_micros) OVER () AS peak_micros, event_time, id "
            "FROM v_capital_running WHERE strategy_id = ? "
            "ORDER BY event_time DESC, id DESC LIMIT 1",
            (strategy_id,),
        ).fetchone()
        values = tuple(row) if row else (0, None, "", 0)
        self.conn.execute(
            "INSERT INTO agg_strategy_capital (strategy_id, capital_micros, peak_micros, "
            "last_event_time, last_event_id, stale) VALUES (?, ?, ?, ?, ?, 0) "
            "ON CONFLICT (strategy_id) DO UPDATE SET capital_micros = excluded.capital_micros, "
            "peak_micros = excluded.peak_micros, last_event_time = excluded.last_event_time, "
            "last_event_id = excluded.last_event_id, stale = 0",
            (strategy_id, *values),
        )

    def rebuild_positions(self) -> None:
        """Recompute every position from the executions (a repair and a check)."""
        with transaction(self.conn):
            keys = self.conn.execute(
                "SELECT DISTINCT strategy_id, account_id, instrument_id FROM executions"
            ).fetchall()
            self.conn.execute("DELETE FROM position_events")
            self.conn.execute("DELETE FROM position_closures")
            self.conn.execute("DELETE FROM position_lots")
            self.conn.execute("DELETE FROM positions")
            for key in keys:
                self._rebuild_position(*key, refresh=False)
            for strategy_id in {key[0] for key in keys}:
                self._refresh_capital(strategy_id)

    def positions(
        self, *, strategy: str | int | None = None, include_flat: bool = False
    ) -> list[Position]:
        sql, params = "SELECT * FROM positions", []
        clauses = []
        if strategy is not None:
            clauses.append("strategy_id = ?")
            params.append(self.strategy_id(strategy))
        if not include_flat:
            clauses.append("qty_micros <> 0")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = self.conn.execute(sql + " ORDER BY strategy_id, account_id, instrument_id", params)
        return [Position.from_row(r) for r in rows.fetchall()]

    # ---- strategy events, snapshots, platform tables -------------------------------------------
    def insert_strategy_event(
        self,
        strategy_id: str | int,
        symbol: str,
        event_type: str,
        value: float | Decimal | None = None,
        payload: dict[str, Any] | None = None,
        event_time: Any = None,
    ) -> StrategyEvent:
        """A strategy's own record of what it decided (signal, rebalance...), for later analysis."""
        if not event_type:
            raise ValidationError("event_type", "must not be empty")
        if value is not None:
            value = float(value)
            if math.isnan(value) or math.isinf(value):
                raise ValidationError("value", f"must be a finite number, got {value!r}")
        try:
            payload_text = json.dumps(payload or {}, default=str, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ValidationError("payload", f"not JSON-serialisable: {exc}") from None
        sid = self.strategy_id(strategy_id)
        with transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO strategy_events (strategy_id, symbol, event_type, value, payload, "
                "event_time) VALUES (?, ?, ?, ?, ?, ?)",
                (sid, symbol or "", event_type, value, payload_text, utc_text(event_time)),
            )
        return StrategyEvent.from_row(
            self.conn.execute(
                "SELECT * FROM strategy_events WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
        )

    def record_account_snapshot(
        self,
        *,
        broker: str,
        account: str,
        net_liquidation: Number | None,
        cash: Number | None,
        currency: str = "USD",
        snapshot_time: Any = None,
    ) -> AccountSnapshot:
        account_id = self.ensure_account(broker, account)
        nl = to_micros(net_liquidation, "net_liquidation") if net_liquidation is not None else None
        cash_m = to_micros(cash, "cash") if cash is not None else None
        with transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO account_snapshots (account_id, net_liquidation_micros, cash_micros, "
                "currency, snapshot_time) VALUES (?, ?, ?, ?, ?)",
                (account_id, nl, cash_m, currency, utc_text(snapshot_time, "snapshot_time")),
            )
        return AccountSnapshot.from_row(
            self.conn.execute(
                "SELECT * FROM account_snapshots WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
        )

    def record_client_event(
        self, client_name: str, event_type: str, message: str = "", traceback: str | None = None
    ) -> ClientEvent:
        with transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO client_events (client_name, event_type, message, traceback, "
                "created_at) VALUES (?, ?, ?, ?, ?)",
                (client_name, event_type, message, traceback, now_text()),
            )
        return ClientEvent.from_row(
            self.conn.execute(
                "SELECT * FROM client_events WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
        )

    def strategy(self, name: str) -> Strategy | None:
        row = self.conn.execute("SELECT * FROM strategies WHERE name = ?", (name,)).fetchone()
        return Strategy.from_row(row) if row else None

    def account(self, broker: str, account_code: str) -> Account | None:
        row = self.conn.execute(
            "SELECT * FROM accounts WHERE broker = ? AND account_code = ?", (broker, account_code)
        ).fetchone()
        return Account.from_row(row) if row else None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Read-only ad-hoc SQL over tables and views (used by tests and tools)."""
        return self.conn.execute(sql, params).fetchall()


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
