"""Journal rows: what strategies decided, what happened to clients, account snapshots."""

from __future__ import annotations

import json
import math
import sqlite3
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from quantstrip.db.connection import transaction
from quantstrip.db.records import AccountSnapshot, ClientEvent, StrategyEvent
from quantstrip.db.units import Number, now_text, utc_text
from quantstrip.db.validate import optional_micros
from quantstrip.errors import ValidationError


class Journal:
    """Part of `Database`: strategy events, client events and account snapshots."""

    conn: sqlite3.Connection

    if TYPE_CHECKING:  # provided by ReferenceData

        def strategy_id(self, strategy: str | int) -> int: ...
        def ensure_account(self, broker: str, account_code: str, **extra: Any) -> int: ...

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
        nl = optional_micros(net_liquidation, "net_liquidation")
        cash_m = optional_micros(cash, "cash")
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
