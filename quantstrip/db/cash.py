"""Cash events: money that moves without a fill (dividends, tax, interest, fees, transfers)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from quantstrip.db.connection import transaction
from quantstrip.db.records import CashEventRecord
from quantstrip.db.units import Number, now_text, to_micros, utc_text
from quantstrip.db.validate import currency_code, optional_micros
from quantstrip.errors import ValidationError

CASH_KINDS = frozenset(
    {
        "dividend",
        "payment_in_lieu",
        "withholding_tax",
        "interest",
        "fee",
        "commission_adjustment",
        "deposit",
        "withdrawal",
        "fx_conversion",  # one leg of a currency conversion (migration 0013)
        "other",
    }
)


class CashLedger:
    """Part of `Database`: cash events, stored once per broker transaction id."""

    conn: sqlite3.Connection

    if TYPE_CHECKING:  # provided by ReferenceData

        def ensure_account(self, broker: str, account_code: str, **extra: Any) -> int: ...

    def record_cash_event(
        self,
        *,
        broker: str,
        account: str,
        broker_txn_id: str,
        kind: str,
        currency: str,
        amount: Number,
        event_time: Any,
        fx_rate_to_base: Number | None = None,
        instrument_id: int | None = None,
        description: str = "",
    ) -> tuple[CashEventRecord, bool]:
        """Store a cash event once: (its row, whether this call created it)."""
        if not broker_txn_id:
            raise ValidationError("broker_txn_id", "must not be empty")
        if kind not in CASH_KINDS:
            raise ValidationError("kind", f"must be one of {sorted(CASH_KINDS)}, got {kind!r}")
        currency = currency_code(currency)
        amount_m = to_micros(amount, "amount")
        rate_m = optional_micros(fx_rate_to_base, "fx_rate_to_base")
        if rate_m is not None and rate_m <= 0:
            raise ValidationError("fx_rate_to_base", f"must be positive, got {fx_rate_to_base}")
        when = utc_text(event_time, "event_time")
        account_id = self.ensure_account(broker, account)
        with transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO cash_events (broker, account_id, broker_txn_id, kind, currency, "
                "amount_micros, fx_rate_to_base_micros, instrument_id, event_time, description, "
                "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (broker, account_id, broker_txn_id) DO NOTHING",
                (
                    broker,
                    account_id,
                    str(broker_txn_id),
                    kind,
                    currency,
                    amount_m,
                    rate_m,
                    instrument_id,
                    when,
                    description,
                    now_text(),
                ),
            )
            created = cursor.rowcount == 1
            row = self.conn.execute(
                "SELECT * FROM cash_events WHERE broker = ? AND account_id = ? "
                "AND broker_txn_id = ?",
                (broker, account_id, str(broker_txn_id)),
            ).fetchone()
        return CashEventRecord.from_row(row), created
