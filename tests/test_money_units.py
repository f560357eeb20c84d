"""One rounding rule for money: half up (ties away from zero), exact, in quantstrip.db.units."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from quantstrip.db.units import div_round, money, mul_micros, to_micros


def test_half_cents_round_away_from_zero() -> None:
    # Binary floats put 8,061.275 just below the tie and 0.125 exactly on it: round() gives
    # 8,061.27 and 0.12 (half even). Money rounds the exact micros, half up.
    assert money(8_061_275_000) == Decimal("8061.28")
    assert money(125_000) == Decimal("0.13")
    assert money(-2_675_000) == Decimal("-2.68")
    assert money(-125_000) == Decimal("-0.13")
    assert money(4_999) == Decimal("0.00")
    assert money(Decimal(25_000) / 2) == Decimal("0.01")  # an exact average of micros


def test_integer_division_ties_go_away_from_zero() -> None:
    assert div_round(5, 2) == 3
    assert div_round(-5, 2) == -3
    assert div_round(7, 2) == 4  # half even would give 4 too; 5/2 is the telling case
    assert div_round(5, -2) == -3
    assert div_round(4, 3) == 1
    assert mul_micros(500_000, 1) == 1  # 0.5 x 0.000001 = half a micro: up
    assert to_micros("0.0000005") == 1
    assert to_micros("-0.0000005") == -1


@given(st.integers(-(10**30), 10**30), st.integers(1, 10**20))
def test_div_round_equals_decimal_half_up(numerator: int, denominator: int) -> None:
    # Decimal's default 28 digits are not enough for 10^30: compare with exact integers.
    quotient, remainder = divmod(abs(numerator), denominator)
    expected = quotient + (2 * remainder >= denominator)
    expected = expected if numerator >= 0 else -expected
    assert div_round(numerator, denominator) == expected
    if abs(numerator) < 10**20:
        exact = Decimal(numerator) / Decimal(denominator)
        assert expected == int(exact.quantize(Decimal(1), rounding="ROUND_HALF_UP"))
