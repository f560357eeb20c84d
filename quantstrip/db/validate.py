"""Input checks shared by every write: sides, order types, micros; each failure names its field.

Checks run before a transaction opens, so bad input is refused without touching stored data.
"""

from __future__ import annotations

import functools
import math
import re
from decimal import InvalidOperation

from babel.numbers import list_currencies

from quantstrip.db.units import MICROS, Number, mul_micros, to_micros, to_nanos
from quantstrip.errors import ValidationError

SIDES = {"BUY": "BUY", "BOT": "BUY", "B": "BUY", "SELL": "SELL", "SLD": "SELL", "S": "SELL"}
ORDER_TYPES = {"MKT", "LMT", "STP", "STP LMT", "TRAIL", "MOC", "LOC"}
TERMINAL_STATUSES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive", "Rejected"})

# The micros columns are SQLite INTEGERs: signed 64 bits. A larger number would fail deep in the
# write with a raw OverflowError (or decimal.InvalidOperation); it is refused up front instead.
MAX_MICROS = 2**63 - 1
MAX_UNITS = MAX_MICROS // MICROS  # 9,223,372,036,854


def micros(value: Number, field: str) -> int:
    """A number as integer micros that fit the ledger's columns; the field is named on failure."""
    try:
        result = to_micros(value, field)
    except (InvalidOperation, OverflowError):
        raise ValidationError(field, f"{value!r} is too large for the ledger") from None
    if abs(result) > MAX_MICROS:
        raise ValidationError(
            field, f"{value!r} is too large for the ledger (at most {MAX_UNITS:,} in magnitude)"
        )
    return result


_CURRENCY = re.compile(r"^[A-Z]{3}$")


@functools.cache
def _known_currencies() -> frozenset[str]:
    """ISO 4217 codes as CLDR knows them (Babel's data), including IB's offshore CNH."""
    return frozenset(list_currencies())


def currency_code(value: object, field: str = "currency") -> str:
    """A known ISO 4217 code, upper case: a typo ('EUE') is refused, never stored as a currency
    no rate will ever match."""
    code = value.strip().upper() if isinstance(value, str) else value
    if not isinstance(code, str) or not _CURRENCY.match(code):
        raise ValidationError(field, f"expected a three-letter currency code, got {value!r}")
    if code not in _known_currencies():
        raise ValidationError(field, f"unknown currency code {value!r} (not in ISO 4217)")
    return code


def fx_rate_nanos(value: Number | None, field: str = "fx_rate_to_base") -> int | None:
    """An FX rate (base units per unit of a currency) as integer nanos; it must be positive."""
    if value is None:
        return None
    try:
        rate = to_nanos(value, field)
    except (InvalidOperation, OverflowError):
        raise ValidationError(field, f"{value!r} is too large") from None
    if rate <= 0:
        raise ValidationError(field, f"must be a positive rate (nine decimals), got {value!r}")
    if rate > MAX_MICROS:
        raise ValidationError(field, f"{value!r} is too large for a rate")
    return rate


def optional_micros(value: Number | None, field: str) -> int | None:
    return None if value is None else micros(value, field)


def notional_micros(qty_micros: int, price_micros: int, multiplier_micros: int) -> int:
    """qty x price x multiplier, refused when it would not fit the cost-basis columns."""
    notional = mul_micros(qty_micros, price_micros, multiplier_micros)
    if notional > MAX_MICROS:
        raise ValidationError(
            "notional",
            f"qty x price x multiplier = {notional // MICROS:,} is too large for the ledger "
            f"(at most {MAX_UNITS:,})",
        )
    return notional


def normalise_side(side: object) -> str:
    if not isinstance(side, str) or side.strip().upper() not in SIDES:
        raise ValidationError("side", f"must be BUY or SELL, got {side!r}")
    return SIDES[side.strip().upper()]


def positive_micros(value: Number, field: str) -> int:
    result = micros(value, field)
    if result <= 0:
        raise ValidationError(field, f"must be greater than zero, got {value!r}")
    return result


def price_micros(value: Number | None, field: str, *, required: bool = True) -> int | None:
    if value is None:
        if required:
            raise ValidationError(field, "is required")
        return None
    if isinstance(value, float) and math.isnan(value):
        raise ValidationError(field, "must be a finite number, got nan")
    result = micros(value, field)
    if result < 0:
        raise ValidationError(field, f"must not be negative, got {value!r}")
    return result


def optional_text(value: object) -> str | None:
    """A broker id as stored: text, or NULL when absent or empty."""
    if value is None or value == "":
        return None
    return str(value)
