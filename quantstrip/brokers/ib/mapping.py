"""Between Quantstrip's canonical values and ib_async's: contracts, orders and IB's errors."""

from __future__ import annotations

from decimal import Decimal

from ib_async import Contract, LimitOrder, MarketOrder, Order, StopLimitOrder, StopOrder

from quantstrip.brokers.events import InstrumentSpec, OrderRequest, decimal
from quantstrip.errors import QuantstripError

BROKER = "ib"
UNSET = 1.7976931348623157e308


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


def order_for(request: OrderRequest, account: str) -> Order:
    qty = float(request.qty)
    if request.order_type == "MKT":
        order: Order = MarketOrder(request.side, qty)
    elif request.order_type == "LMT":
        order = LimitOrder(request.side, qty, float(request.limit_price or 0))
    elif request.order_type == "STP":
        order = StopOrder(request.side, qty, float(request.stop_price or 0))
    else:
        order = StopLimitOrder(
            request.side, qty, float(request.limit_price or 0), float(request.stop_price or 0)
        )
    order.orderRef = request.client_order_id
    order.tif = request.tif
    order.account = account
    if request.oca_group:
        order.ocaGroup = request.oca_group
    return order
