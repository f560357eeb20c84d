"""Between Quantstrip's canonical values and ib_async's: contracts, orders, statuses, errors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ib_async import Contract, Order

from quantstrip.brokers.events import InstrumentSpec, OrderRequest, decimal
from quantstrip.errors import QuantstripError

BROKER = "ib"
UNSET = 1.7976931348623157e308

# What IB's error codes mean for an order (https://ibkrcampus.com/.../tws-api-error-codes).
# A rejection ends the order; a warning is recorded on it and changes nothing.
REJECTIONS = frozenset({200, 201, 203, 321, 10289, 10293})
ORDER_WARNINGS = frozenset({104, 105, 110, 161, 329, 399, 404, 434, 10147, 10148})
CANCEL_CONFIRMED = 202  # "Order Canceled - reason:" follows the Cancelled status TWS sends
# TWS's link to IB's servers (the socket to TWS stays up meanwhile).
LINK_LOST = frozenset({1100, 2110})
LINK_RESTORED_DATA_LOST = 1101
LINK_RESTORED = 1102
CLIENT_ID_IN_USE = 326
# Farm status notices TWS sends on every connect: information, not errors.
NOTICES = frozenset({2104, 2106, 2107, 2108, 2119, 2158})


class IbError(QuantstripError):
    """IB refused a request or failed to answer it; `code` is IB's error code when known."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message if code is None else f"IB error {code}: {message}")


def contract_for(spec: InstrumentSpec) -> Contract:
    return Contract(
        conId=int(spec.broker_contract_id or 0),
        symbol=spec.symbol,
        secType=spec.sec_type,
        exchange=spec.exchange,
        primaryExchange=spec.primary_exchange or "",
        currency=spec.currency,
        lastTradeDateOrContractMonth=spec.expiry,
        strike=float(spec.strike),
        right=spec.option_right,
        multiplier="" if spec.multiplier == 1 else str(spec.multiplier),
    )


def spec_for(contract: Contract) -> InstrumentSpec:
    return InstrumentSpec(
        contract.symbol,
        sec_type=contract.secType or "STK",
        exchange=contract.exchange or "SMART",
        currency=contract.currency or "USD",
        multiplier=Decimal(contract.multiplier or 1),
        broker_contract_id=str(contract.conId) if contract.conId else None,
        expiry=contract.lastTradeDateOrContractMonth or "",
        strike=decimal(contract.strike or 0, "strike"),
        option_right=contract.right or "",
    )


def _price(value: Decimal | None) -> float:
    return UNSET if value is None else float(value)


def ib_time(moment: datetime) -> str:
    """An aware datetime as IB's unambiguous UTC form, 'yyyymmdd-hh:mm:ss'."""
    return moment.astimezone(UTC).strftime("%Y%m%d-%H:%M:%S")


def order_for(request: OrderRequest, account: str) -> Order:
    """The ib_async Order for a canonical request (order type, prices, time in force, OCA)."""
    order = Order(
        action=request.side,
        totalQuantity=float(request.qty),
        orderType=request.order_type,
        lmtPrice=_price(request.limit_price),
        auxPrice=_price(request.stop_price),
        tif=request.tif,
        orderRef=request.client_order_id,
        account=account,
    )
    if request.order_type == "TRAIL":
        order.auxPrice = _price(request.trail_amount)
        order.trailingPercent = _price(request.trail_percent)
    if request.good_till is not None:
        order.goodTillDate = request.good_till.strftime("%Y%m%d %H:%M:%S UTC")
    if request.oca_group:
        order.ocaGroup = request.oca_group
        order.ocaType = 1  # cancel the group's other orders, with block (overfill protection)
    return order


def terms_of(order: Order) -> dict[str, Decimal | None]:
    """An order's changeable terms as TWS reports them (None where unset)."""

    def value(number: float, name: str) -> Decimal | None:
        return None if number in (UNSET, None) or number == 0 else decimal(number, name)

    trailing = order.orderType == "TRAIL"
    return {
        "qty": value(order.totalQuantity, "totalQuantity"),
        "limit_price": value(order.lmtPrice, "lmtPrice"),
        "stop_price": None if trailing else value(order.auxPrice, "auxPrice"),
        "trail_amount": value(order.auxPrice, "auxPrice") if trailing else None,
        "trail_percent": value(order.trailingPercent, "trailingPercent") if trailing else None,
    }


def base_currency_values(rows: Sequence[Any], account: str) -> tuple[str, dict[str, Decimal]]:
    """An account's base currency and its NetLiquidation and TotalCashValue in it.

    TWS sends both in the account's base currency (EUR for a EUR account), besides rows per
    currency and 'BASE' totals; the base is the currency NetLiquidation comes in."""
    mine = [v for v in rows if v.account == account]
    net = [v for v in mine if v.tag == "NetLiquidation" and v.currency not in ("", "BASE")]
    base = net[0].currency if net else "BASE"
    values: dict[str, Decimal] = {}
    for tag in ("NetLiquidation", "TotalCashValue"):
        for currency in (base, "BASE"):
            found = [v for v in mine if v.tag == tag and v.currency == currency]
            if found:
                values[tag] = decimal(found[0].value, tag)
                break
    return base, values
