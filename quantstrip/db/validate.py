"""Input checks shared by every write: sides, order types, micros; each failure names its field.

Checks run before a transaction opens, so bad input is refused without touching stored data.
"""

from __future__ import annotations

import math

from quantstrip.db.units import Number, to_micros
from quantstrip.errors import ValidationError

SIDES = {"BUY": "BUY", "BOT": "BUY", "B": "BUY", "SELL": "SELL", "SLD": "SELL", "S": "SELL"}
ORDER_TYPES = {"MKT", "LMT", "STP", "STP LMT", "TRAIL", "MOC", "LOC"}
TERMINAL_STATUSES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive", "Rejected"})


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


def optional_text(value: object) -> str | None:
    """A broker id as stored: text, or NULL when absent or empty."""
    if value is None or value == "":
        return None
    return str(value)
