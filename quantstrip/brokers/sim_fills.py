"""How the simulated broker fills: the price a bar gives an order, how much a bar can take, and
a position after a fill. Pure functions of their arguments (no clock, no events), so the fill
rules read in one place and are the same for every caller.

Orders fill strictly after they were submitted: a market order takes the next bar's open,
limits and stops fill when the bar crosses them (at the open when the bar gaps through).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from quantstrip.brokers.events import Bar
from quantstrip.brokers.sim_orders import SimOrder

PRICE_STEP = Decimal("0.0001")


def bar_capacity(
    bar: Bar, max_fill_qty: Decimal | None, max_volume_fraction: Decimal | None
) -> Decimal | None:
    """The most a bar can fill across all orders (None: unlimited)."""
    limits = []
    if max_fill_qty is not None:
        limits.append(max_fill_qty)
    if max_volume_fraction is not None and bar.volume > 0:
        limits.append((bar.volume * max_volume_fraction).to_integral_value(ROUND_DOWN))
    return min(limits) if limits else None


def slipped(price: Decimal, side: str, slippage: Decimal) -> Decimal:
    """The price moved against the order by `slippage` (a fraction)."""
    if not slippage:
        return price
    adjusted = price * (1 + slippage) if side == "BUY" else price * (1 - slippage)
    return adjusted.quantize(PRICE_STEP, rounding=ROUND_HALF_EVEN)


def fill_price(order: SimOrder, bar: Bar, slippage: Decimal) -> Decimal | None:
    """The price this bar fills the order at, or None. A stop the bar crosses is marked
    triggered on the order (a stop limit then works as a limit)."""
    request = order.request
    if order.submitted_at is not None and bar.time <= order.submitted_at:
        return None  # never fill on the bar the order was decided on
    buy = request.side == "BUY"
    if request.order_type == "MKT":
        return slipped(bar.open, request.side, slippage)
    if request.order_type in ("STP", "STP LMT") and not order.triggered:
        stop = request.stop_price
        assert stop is not None
        if (buy and bar.high >= stop) or (not buy and bar.low <= stop):
            order.triggered = True
            trigger_price = max(bar.open, stop) if buy else min(bar.open, stop)
            if request.order_type == "STP":
                return slipped(trigger_price, request.side, slippage)
            limit = request.limit_price
            assert limit is not None
            if (buy and trigger_price <= limit) or (not buy and trigger_price >= limit):
                return trigger_price
            return None
        return None
    if request.order_type == "STP":
        return slipped(bar.open, request.side, slippage)
    limit = request.limit_price
    assert limit is not None
    if buy and bar.low <= limit:
        return min(bar.open, limit)
    if not buy and bar.high >= limit:
        return max(bar.open, limit)
    return None


def position_after(
    position: tuple[Decimal, Decimal], signed: Decimal, price: Decimal, multiplier: Decimal
) -> tuple[Decimal, Decimal]:
    """(quantity, cost basis) after a fill of `signed` quantity (negative: sold): adding keeps
    the average, reducing takes its share of the basis off, flipping starts a new basis."""
    held, basis = position
    if held == 0 or (held > 0) == (signed > 0):
        held, basis = held + signed, basis + abs(signed) * price * multiplier
    else:
        closing = min(abs(signed), abs(held))
        basis -= basis * closing / abs(held)
        held += signed
        if held != 0 and (held > 0) == (signed > 0):  # flipped
            basis = abs(held) * price * multiplier
    return held, basis if held else Decimal(0)
