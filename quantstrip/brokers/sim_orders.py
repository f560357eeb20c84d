"""The simulated broker's value types: IB's fixed-tier commission and an order as it works."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from quantstrip.brokers.events import OrderRequest

CENT = Decimal("0.01")


@dataclass(frozen=True)
class FixedTierCommission:
    """IB's fixed pricing: per share, with a minimum and a cap as a fraction of trade value."""

    per_share: Decimal = Decimal("0.005")
    minimum: Decimal = Decimal("1.00")
    max_fraction: Decimal = Decimal("0.01")

    def __call__(self, qty: Decimal, price: Decimal, multiplier: Decimal) -> Decimal:
        value = qty * price * multiplier
        fee = max(qty * self.per_share, self.minimum)
        fee = min(fee, value * self.max_fraction) if value > 0 else fee
        return fee.quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass
class SimOrder:
    request: OrderRequest
    broker_order_id: str
    seq: int
    status: str = "Submitted"
    filled: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    active: bool = True
    triggered: bool = False
    submitted_at: datetime | None = None
    children: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.request.qty - self.filled

    @property
    def working(self) -> bool:
        return self.status in ("Submitted", "PreSubmitted", "PartiallyFilled")
