"""Orders and their status history: created once per client order id, then only appended to."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from quantstrip.db.connection import transaction
from quantstrip.db.records import Instrument, Order, OrderEvent
from quantstrip.db.units import Number, now_text, utc_text
from quantstrip.db.validate import (
    ORDER_TYPES,
    TERMINAL_STATUSES,
    normalise_side,
    optional_micros,
    optional_text,
    positive_micros,
    price_micros,
)
from quantstrip.errors import NotFoundError, ValidationError


class OrderBook:
    """Part of `Database`: orders, order status events, lookups by the ids brokers report."""

    conn: sqlite3.Connection

    if TYPE_CHECKING:  # provided by ReferenceData

        def instrument(self, instrument_id: int) -> Instrument: ...
        def strategy_id(self, strategy: str | int) -> int: ...
        def ensure_account(self, broker: str, account_code: str, **extra: Any) -> int: ...

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
        trail_amount: Number | None = None,
        trail_percent: Number | None = None,
        good_till: Any = None,
    ) -> Order:
        """Create an order (idempotent on client_order_id) and its first status event.

        A TRAIL order trails by an amount or a percentage (one of them); `good_till` is the
        expiry of a GTD order."""
        if not client_order_id:
            raise ValidationError("client_order_id", "must not be empty")
        order_type = str(order_type).upper()
        if order_type not in ORDER_TYPES:
            raise ValidationError("order_type", f"must be one of {sorted(ORDER_TYPES)}")
        side = normalise_side(side)
        qty_m = positive_micros(qty, "qty")
        limit_m = price_micros(
            limit_price, "limit_price", required=order_type in {"LMT", "STP LMT", "LOC"}
        )
        stop_m = price_micros(stop_price, "stop_price", required=order_type in {"STP", "STP LMT"})
        trail_m = price_micros(trail_amount, "trail_amount", required=False)
        trail_pct_m = price_micros(trail_percent, "trail_percent", required=False)
        if order_type == "TRAIL" and (trail_m is None) == (trail_pct_m is None):
            raise ValidationError("trail_amount", "a TRAIL order needs a trail amount or percent")
        good_till_text = utc_text(good_till, "good_till") if good_till is not None else None
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
                "client_name, order_ref, created_at, updated_at, trail_amount_micros, "
                "trail_percent_micros, good_till) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    client_order_id,
                    strategy_id,
                    account_id,
                    instrument_id,
                    broker,
                    optional_text(broker_order_id),
                    optional_text(broker_client_id),
                    optional_text(perm_id),
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
                    trail_m,
                    trail_pct_m,
                    good_till_text,
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
                (
                    broker,
                    str(broker_order_id),
                    optional_text(broker_client_id),
                    optional_text(broker_client_id),
                ),
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
            "trail_amount",
            "trail_percent",
            "good_till",
        }
        unknown = set(values) - allowed
        if unknown:
            raise ValidationError(sorted(unknown)[0], "cannot be changed on an order")
        columns: dict[str, Any] = {}
        for name, value in values.items():
            if name == "qty":
                columns["qty_micros"] = positive_micros(value, "qty")
            elif name in {"limit_price", "stop_price", "trail_amount", "trail_percent"}:
                columns[f"{name}_micros"] = price_micros(value, name, required=False)
            elif name == "good_till":
                columns[name] = utc_text(value, name) if value is not None else None
            elif name in {"broker_order_id", "broker_client_id", "perm_id"}:
                columns[name] = optional_text(value)
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
        filled_m = optional_micros(filled_qty, "filled_qty")
        remaining_m = optional_micros(remaining_qty, "remaining_qty")
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
