"""Exact fixed-point units: every quantity, price and money amount is stored as integer micros.

Floats from broker APIs are converted through their shortest decimal repr, so 101.23 becomes
101230000 micros exactly; NaN and infinities are rejected with the field named.

Rounding has one rule, `ROUNDING` (half up: ties away from zero, as SQL's ROUND and a
bookkeeper do), and money is rounded to the cent in one place, `money()`. The SQL views round
the same way in integer arithmetic (migration 0009), so the report, the SQL editor and Excel
agree on every half cent.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from quantstrip import clock
from quantstrip.errors import ValidationError

MICROS = 1_000_000
ROUNDING = ROUND_HALF_UP
_QUANTUM = Decimal("0.000001")
CENT = Decimal("0.01")

Number = Decimal | int | float | str


def to_micros(value: Number, field: str = "value") -> int:
    """Convert a number to integer micros, rounding half up at the sixth decimal."""
    return to_scaled(value, MICROS, field)


NANOS = 1_000_000_000  # FX rates: a micro is too coarse for weak currencies (JPY/USD 0.0066725)


def to_nanos(value: Number, field: str = "value") -> int:
    """Convert a number (an FX rate) to integer nanos, rounding half up at the ninth decimal."""
    return to_scaled(value, NANOS, field)


def to_scaled(value: Number, scale: int, field: str = "value") -> int:
    """`value` times `scale` as an exact integer, rounded half up; floats through their repr."""
    if isinstance(value, bool):
        raise ValidationError(field, f"expected a number, got {value!r}")
    if isinstance(value, int):
        return value * scale
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValidationError(field, f"must be a finite number, got {value!r}")
        value = repr(value)
    try:
        dec = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError, TypeError):
        raise ValidationError(field, f"not a number: {value!r}") from None
    if not dec.is_finite():
        raise ValidationError(field, f"must be a finite number, got {value!r}")
    return int((dec * scale).quantize(Decimal(1), rounding=ROUNDING))


def from_micros(micros: int | None) -> Decimal | None:
    """Integer micros back to an exact Decimal (None stays None)."""
    if micros is None:
        return None
    return (Decimal(micros) / MICROS).quantize(_QUANTUM)


def mul_micros(*factors: int) -> int:
    """Product of micros values, itself in micros, rounded half up (exact integer arithmetic)."""
    result = 1
    for factor in factors:
        result *= factor
    scale = MICROS ** (len(factors) - 1)
    return div_round(result, scale)


def div_round(numerator: int, denominator: int) -> int:
    """Integer division rounded half up (ties away from zero), for splitting amounts without
    float error: a commission shared pro rata, a product of micros back to micros."""
    if denominator == 0:
        raise ZeroDivisionError("division by zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def money(micros: int | Decimal) -> Decimal:
    """An amount of integer micros (or an exact Decimal of micros, e.g. an average) as currency
    rounded half up to the cent: the one place money is rounded for people to read."""
    return (Decimal(micros) / MICROS).quantize(CENT, rounding=ROUNDING)


TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def utc_text(moment: datetime | str | None = None, field: str = "time") -> str:
    """A moment as canonical UTC text. Naive datetimes are taken to be UTC already."""
    if moment is None:
        moment = clock.now()
    elif isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(field, f"not an ISO-8601 time: {moment!r}") from None
    elif not isinstance(moment, datetime):
        raise ValidationError(field, f"expected a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_utc(text: str) -> datetime:
    """Canonical UTC text back to an aware datetime."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def now_text() -> str:
    return utc_text(None)
