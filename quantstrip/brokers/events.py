"""Value types and canonical events shared by every broker adapter.

Prices and quantities are Decimals (converted from broker floats through their shortest repr),
times are aware UTC datetimes. Requests validate themselves on construction, so a bad order is
refused before it reaches any broker.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from quantstrip import clock
from quantstrip.errors import ValidationError

ORDER_TYPES = ("MKT", "LMT", "STP", "STP LMT", "TRAIL", "MOC", "LOC")
# DAY, good till cancelled, immediate or cancel, fill or kill, good till date, at the opening.
TIME_IN_FORCE = ("DAY", "GTC", "IOC", "FOK", "GTD", "OPG")
SIDES = ("BUY", "SELL")
TERMINAL_STATUSES = frozenset({"Filled", "Cancelled", "Inactive", "ApiCancelled", "Rejected"})


def decimal(value: object, field_name: str) -> Decimal:
    """A finite Decimal from an int, str, float or Decimal; the field is named on failure."""
    if isinstance(value, bool) or value is None:
        raise ValidationError(field_name, f"expected a number, got {value!r}")
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValidationError(field_name, f"must be a finite number, got {value!r}")
        value = repr(value)
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError(field_name, f"not a number: {value!r}") from None
    if not result.is_finite():
        raise ValidationError(field_name, f"must be a finite number, got {value!r}")
    return result


def utc(moment: datetime | None = None) -> datetime:
    moment = moment or clock.now()
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def new_client_order_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class InstrumentSpec:
    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    multiplier: Decimal = Decimal(1)
    broker_contract_id: str | None = None
    primary_exchange: str | None = None
    expiry: str = ""
    strike: Decimal = Decimal(0)
    option_right: str = ""

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValidationError("symbol", "must not be empty")
        object.__setattr__(self, "multiplier", decimal(self.multiplier, "multiplier"))
        if self.multiplier <= 0:
            raise ValidationError("multiplier", "must be greater than zero")


@dataclass(frozen=True)
class OrderRequest:
    """What a strategy asks for. `client_order_id` is ours and follows the order everywhere."""

    instrument: InstrumentSpec
    side: str
    qty: Decimal
    order_type: str = "MKT"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    tif: str = "DAY"
    strategy: str = "default"
    client_order_id: str = field(default_factory=new_client_order_id)
    oca_group: str | None = None
    parent_client_order_id: str | None = None
    client_name: str | None = None
    trail_amount: Decimal | None = None  # TRAIL: the stop trails the price by this amount...
    trail_percent: Decimal | None = None  # ...or by this percentage of it
    good_till: datetime | None = None  # GTD: when the order expires (timezone-aware)

    def __post_init__(self) -> None:
        side = str(self.side).upper()
        if side not in SIDES:
            raise ValidationError("side", f"must be BUY or SELL, got {self.side!r}")
        object.__setattr__(self, "side", side)
        order_type = str(self.order_type).upper()
        if order_type not in ORDER_TYPES:
            raise ValidationError("order_type", f"must be one of {ORDER_TYPES}")
        object.__setattr__(self, "order_type", order_type)
        qty = decimal(self.qty, "qty")
        if qty <= 0:
            raise ValidationError("qty", f"must be greater than zero, got {self.qty!r}")
        object.__setattr__(self, "qty", qty)
        for name, needed in (
            ("limit_price", order_type in ("LMT", "STP LMT")),
            ("stop_price", order_type in ("STP", "STP LMT")),
        ):
            value = getattr(self, name)
            if value is None:
                if needed:
                    raise ValidationError(name, f"is required for a {order_type} order")
                continue
            price = decimal(value, name)
            if price <= 0:
                raise ValidationError(name, f"must be greater than zero, got {value!r}")
            object.__setattr__(self, name, price)
        if not self.strategy:
            raise ValidationError("strategy", "must not be empty")
        self._check_terms(order_type)

    def _check_terms(self, order_type: str) -> None:
        """Trailing, on-close and time-in-force terms that only make sense together."""
        tif = str(self.tif).upper()
        if tif not in TIME_IN_FORCE:
            raise ValidationError("tif", f"must be one of {TIME_IN_FORCE}, got {self.tif!r}")
        object.__setattr__(self, "tif", tif)
        if order_type == "LOC" and self.limit_price is None:
            raise ValidationError("limit_price", "is required for a LOC order")
        for name in ("trail_amount", "trail_percent"):
            value = getattr(self, name)
            if value is None:
                continue
            if order_type != "TRAIL":
                raise ValidationError(name, f"applies to TRAIL orders, not {order_type}")
            number = decimal(value, name)
            if number <= 0:
                raise ValidationError(name, f"must be greater than zero, got {value!r}")
            object.__setattr__(self, name, number)
        if order_type == "TRAIL" and (self.trail_amount is None) == (self.trail_percent is None):
            raise ValidationError(
                "trail_amount", "a TRAIL order needs trail_amount or trail_percent"
            )
        if order_type in ("MOC", "LOC") and tif != "DAY":
            raise ValidationError("tif", f"a {order_type} order is a DAY order, not {tif}")
        if tif == "GTD" and self.good_till is None:
            raise ValidationError("good_till", "is required for a GTD order")
        if self.good_till is not None:
            if tif != "GTD":
                raise ValidationError("good_till", f"applies to GTD orders, not {tif}")
            if not isinstance(self.good_till, datetime) or self.good_till.tzinfo is None:
                raise ValidationError("good_till", "must be a timezone-aware datetime")
            object.__setattr__(self, "good_till", self.good_till.astimezone(UTC))


@dataclass(frozen=True)
class BracketRequest:
    """Entry plus take-profit and stop-loss that act as one unit (children are OCA siblings)."""

    entry: OrderRequest
    take_profit_price: Decimal
    stop_loss_price: Decimal

    def __post_init__(self) -> None:
        take = decimal(self.take_profit_price, "take_profit_price")
        stop = decimal(self.stop_loss_price, "stop_loss_price")
        reference = self.entry.limit_price or self.entry.stop_price
        if self.entry.side == "BUY" and not stop < take:
            raise ValidationError("stop_loss_price", "must be below take_profit_price for a buy")
        if self.entry.side == "SELL" and not take < stop:
            raise ValidationError("stop_loss_price", "must be above take_profit_price for a sell")
        if reference is not None and self.entry.side == "BUY" and not stop < reference < take:
            raise ValidationError("entry", "a buy entry must lie between stop loss and take profit")
        if reference is not None and self.entry.side == "SELL" and not take < reference < stop:
            raise ValidationError(
                "entry", "a sell entry must lie between take profit and stop loss"
            )
        object.__setattr__(self, "take_profit_price", take)
        object.__setattr__(self, "stop_loss_price", stop)

    def legs(self) -> tuple[OrderRequest, OrderRequest, OrderRequest]:
        """Parent, take-profit and stop-loss requests, linked by parent id and one OCA group."""
        exit_side = "SELL" if self.entry.side == "BUY" else "BUY"
        oca = f"OCA-{self.entry.client_order_id}"
        common = {
            "instrument": self.entry.instrument,
            "side": exit_side,
            "qty": self.entry.qty,
            "strategy": self.entry.strategy,
            "tif": "GTC",
            "oca_group": oca,
            "parent_client_order_id": self.entry.client_order_id,
            "client_name": self.entry.client_name,
        }
        take = OrderRequest(
            order_type="LMT",
            limit_price=self.take_profit_price,
            client_order_id=f"{self.entry.client_order_id}-tp",
            **common,
        )
        stop = OrderRequest(
            order_type="STP",
            stop_price=self.stop_loss_price,
            client_order_id=f"{self.entry.client_order_id}-sl",
            **common,
        )
        return self.entry, take, stop


@dataclass(frozen=True)
class Bar:
    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        for name in ("open", "high", "low", "close", "volume"):
            object.__setattr__(self, name, decimal(getattr(self, name), name))
        if not (self.low <= min(self.open, self.close) and max(self.open, self.close) <= self.high):
            raise ValidationError("bar", f"inconsistent OHLC at {self.time}: {self}")
        object.__setattr__(self, "time", utc(self.time))


@dataclass(frozen=True)
class BrokerPosition:
    account: str
    instrument: InstrumentSpec
    qty: Decimal
    avg_cost: Decimal


@dataclass(frozen=True)
class OrderPlacedEvent:
    """An order accepted by the adapter for transmission (creates the order row)."""

    broker: str
    account: str
    request: OrderRequest
    broker_order_id: str | None = None
    broker_client_id: str | None = None
    perm_id: str | None = None
    time: datetime = field(default_factory=utc)


@dataclass(frozen=True)
class OrderModifiedEvent:
    """The broker accepted new terms for a live order (a modify it acknowledged)."""

    broker: str
    client_order_id: str
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    time: datetime = field(default_factory=utc)


@dataclass(frozen=True)
class OrderStatusEvent:
    broker: str
    status: str
    filled: Decimal
    remaining: Decimal
    avg_fill_price: Decimal | None = None
    client_order_id: str | None = None
    broker_order_id: str | None = None
    broker_client_id: str | None = None
    perm_id: str | None = None
    message: str = ""
    time: datetime = field(default_factory=utc)


@dataclass(frozen=True)
class ExecutionEvent:
    """A fill. `base_exec_id` and `correction_number` are set by an adapter whose broker corrects
    fills by re-sending them under a related id (IB: `brokers/ib/ids.py`): the fill group and this
    version's number. The ledger supersedes an earlier version only if it is the same fill
    (account, instrument, side, order); without them every exec id is a fill of its own."""

    broker: str
    account: str
    exec_id: str
    instrument: InstrumentSpec
    side: str
    qty: Decimal
    price: Decimal
    time: datetime
    client_order_id: str | None = None
    broker_order_id: str | None = None
    broker_client_id: str | None = None
    perm_id: str | None = None
    strategy: str | None = None
    liquidity: str = ""
    exchange: str = ""
    base_exec_id: str | None = None
    correction_number: int = 0
    # The broker's rate from the fill's currency to the account's base currency, when it says
    # (IB Flex fxRateToBase); stored with the fill for reporting in base (migration 0013).
    fx_rate_to_base: Decimal | None = None


@dataclass(frozen=True)
class CommissionEvent:
    broker: str
    exec_id: str
    commission: Decimal
    currency: str = "USD"
    realized_pnl: Decimal | None = None


@dataclass(frozen=True)
class PositionEvent:
    broker: str
    account: str
    instrument: InstrumentSpec
    qty: Decimal
    avg_cost: Decimal


@dataclass(frozen=True)
class AccountValueEvent:
    broker: str
    account: str
    net_liquidation: Decimal | None
    cash: Decimal | None
    currency: str = "USD"
    time: datetime = field(default_factory=utc)


@dataclass(frozen=True)
class CashEvent:
    """Cash that moved without a fill (a statement's dividend, tax, interest, fee, transfer).

    `txn_id` is the broker's id for it (stored once); `amount` is signed, money in positive, in
    `currency`; `fx_rate_to_base` the broker's rate to the account's base currency."""

    broker: str
    account: str
    txn_id: str
    kind: str  # dividend, payment_in_lieu, withholding_tax, interest, fee, ... (db/cash.py)
    currency: str
    amount: Decimal
    time: datetime
    fx_rate_to_base: Decimal | None = None
    instrument: InstrumentSpec | None = None
    description: str = ""


@dataclass(frozen=True)
class ErrorEvent:
    broker: str
    code: int
    message: str
    client_order_id: str | None = None
    time: datetime = field(default_factory=utc)


BrokerEvent = (
    OrderPlacedEvent
    | OrderModifiedEvent
    | OrderStatusEvent
    | ExecutionEvent
    | CommissionEvent
    | PositionEvent
    | AccountValueEvent
    | CashEvent
    | ErrorEvent
)
