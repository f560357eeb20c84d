"""FX rates to an account's base currency, for fills whose broker gave none (migration 0013).

A fill's rate is its own (the broker's, e.g. IB Flex fxRateToBase) when it has one; otherwise the
latest `fx_rates` row for its currency and base on or before its UTC day (`v_fill_fx`). A rate is
never guessed: a fill with neither is counted as unconverted in `v_pnl_by_currency`.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import date, datetime
from decimal import Decimal

from quantstrip.db.connection import transaction
from quantstrip.db.units import NANOS, Number, now_text
from quantstrip.db.validate import currency_code, fx_rate_nanos
from quantstrip.errors import ConflictError, ValidationError

log = logging.getLogger(__name__)


def _day(value: date | str, field: str = "day") -> str:
    if isinstance(value, datetime):
        raise ValidationError(field, f"expected a day, got the moment {value!r}")
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValidationError(field, f"expected a day 'YYYY-MM-DD', got {value!r}") from None


class FxRates:
    """Part of `Database`: the rates table a fill without its own rate converts by."""

    conn: sqlite3.Connection

    def record_fx_rate(
        self,
        currency: str,
        base_currency: str,
        day: date | str,
        rate: Number,
        *,
        source: str = "",
    ) -> bool:
        """Store the rate (base units per unit of `currency`) that applies from `day` on.

        Returns whether this call stored it; the same rate again is a no-op, another rate for
        the same currency, base and day raises `ConflictError` (the stored one stands). Bad
        input (an unknown code, a rate that is not positive) raises `ValidationError` and
        stores nothing."""
        code = currency_code(currency)
        base = currency_code(base_currency, "base_currency")
        if code == base:
            raise ValidationError("currency", f"a rate from {code} to itself is always 1")
        when = _day(day)
        nanos = fx_rate_nanos(rate, "rate")
        assert nanos is not None
        with transaction(self.conn):
            stored = self.conn.execute(
                "SELECT rate_nanos FROM fx_rates WHERE currency = ? AND base_currency = ? "
                "AND day = ?",
                (code, base, when),
            ).fetchone()
            if stored is not None:
                if stored[0] == nanos:
                    return False
                message = (
                    f"the {code}/{base} rate of {when} is stored as {Decimal(stored[0]) / NANOS}; "
                    f"{Decimal(nanos) / NANOS} is refused (the stored rate stands)"
                )
                log.error("conflict: %s", message)
                raise ConflictError(message)
            self.conn.execute(
                "INSERT INTO fx_rates (currency, base_currency, day, rate_nanos, source, "
                "recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
                (code, base, when, nanos, source, now_text()),
            )
        return True

    def fx_rate(self, currency: str, base_currency: str, day: date | str) -> Decimal | None:
        """The rates table's rate on `day` (its latest on or before it), or None: no guess."""
        code = currency_code(currency)
        base = currency_code(base_currency, "base_currency")
        if code == base:
            return Decimal(1)
        row = self.conn.execute(
            "SELECT rate_nanos FROM fx_rates WHERE currency = ? AND base_currency = ? "
            "AND day <= ? ORDER BY day DESC LIMIT 1",
            (code, base, _day(day)),
        ).fetchone()
        return None if row is None else Decimal(row[0]) / NANOS
