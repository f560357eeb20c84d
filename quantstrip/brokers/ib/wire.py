"""What TWS sends, translated into canonical events at the wire.

The adapter listens to ib_async's wrapper methods (called once per message TWS sends), not to
ib_async's events, because ib_async invents some: `PendingCancel` on cancelOrder, `Cancelled`
when an order error arrives, `ValidationError` for a warning, and it fires no execDetailsEvent
for fills of orders it has not seen (another client's order before the master saw it, fills
replayed by reqExecutions). Here:
- every orderStatus TWS sends becomes an OrderStatusEvent, and nothing else does;
- every execDetails (live or replayed) an ExecutionEvent, every commission report a
  CommissionEvent (the database stores each exec id once, in either order);
- an openOrder with new terms for one of our orders an OrderModifiedEvent (a modify TWS took);
- an error for an order id is linked to that order: a rejection (201, 203, 10289...) records
  `Rejected` with the reason, a warning (404, 399, a refused modify...) records the reason on
  the order and leaves its state alone; both are also ErrorEvents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ib_async import Contract, Execution, Order

from quantstrip.brokers.events import (
    TERMINAL_STATUSES,
    CommissionEvent,
    ErrorEvent,
    ExecutionEvent,
    OrderModifiedEvent,
    OrderStatusEvent,
    decimal,
    utc,
)
from quantstrip.brokers.ib.ids import split_exec_id
from quantstrip.brokers.ib.mapping import (
    BROKER,
    CANCEL_CONFIRMED,
    NOTICES,
    REJECTIONS,
    UNSET,
    spec_for,
    terms_of,
)

if TYPE_CHECKING:
    from quantstrip.brokers.ib.adapter import IbBroker

log = logging.getLogger(__name__)


def _tap(wrapper: Any, name: str, after: Callable[..., None]) -> None:
    """Call `after` with a wrapper method's arguments once ib_async has handled the message."""
    original = getattr(wrapper, name)

    def tapped(*args: Any) -> None:
        original(*args)
        try:
            after(*args)
        except Exception:
            log.exception("IB %s could not be translated: %r", name, args)

    setattr(wrapper, name, tapped)


def install(broker: IbBroker) -> None:
    wrapper = broker.ib.wrapper
    _tap(wrapper, "orderStatus", lambda *a: _order_status(broker, *a))
    _tap(wrapper, "openOrder", lambda *a: _open_order(broker, *a))
    _tap(wrapper, "execDetails", lambda *a: _exec_details(broker, *a))
    _tap(wrapper, "commissionReport", lambda report: _commission(broker, report))
    _tap(wrapper, "completedOrder", lambda *a: _completed_order(broker, *a))
    original_error = wrapper.error

    def error(request_id: int, code: int, message: str, advanced: str = "") -> None:
        # Whether the id is a pending request must be known before ib_async ends it.
        is_request = request_id in wrapper._futures
        original_error(request_id, code, message, advanced)
        try:
            _error(broker, request_id, code, message, is_request)
        except Exception:
            log.exception("IB error %s could not be translated", code)

    wrapper.error = error


def _order_ref(broker: IbBroker, client_id: int, order_id: int, perm_id: int) -> str | None:
    wrapper = broker.ib.wrapper
    trade = wrapper.trades.get(wrapper.orderKey(client_id, order_id, perm_id))
    if trade is None and perm_id:
        trade = wrapper.permId2Trade.get(perm_id)
    return (trade.order.orderRef or None) if trade is not None else None


def _order_status(
    broker: IbBroker,
    order_id: int,
    status: str,
    filled: float,
    remaining: float,
    avg_fill_price: float,
    perm_id: int,
    parent_id: int,
    last_fill_price: float,
    client_id: int,
    why_held: str,
    mkt_cap_price: float = 0.0,
) -> None:
    ref = _order_ref(broker, client_id, order_id, perm_id)
    event = OrderStatusEvent(
        BROKER,
        status,
        decimal(filled or 0, "filled"),
        decimal(remaining or 0, "remaining"),
        decimal(avg_fill_price, "avgFillPrice") if avg_fill_price else None,
        client_order_id=ref,
        broker_order_id=str(order_id),
        broker_client_id=str(client_id),
        perm_id=str(perm_id) if perm_id else None,
        message=f"held: {why_held}" if why_held else "",
    )
    if ref is not None:
        broker.last_status[ref] = event
    broker.emit(event)


def _open_order(broker: IbBroker, order_id: int, contract: Contract, order: Order, state: Any):
    ref = order.orderRef
    request = broker.requests.get(ref) if ref else None
    if request is None or order.whatIf:
        return
    terms = terms_of(order)
    changed = {
        name: value
        for name, value in terms.items()
        if value is not None
        and getattr(request, name) is not None
        and getattr(request, name) != value
    }
    if changed:
        broker.requests[ref] = replace(request, **changed)
        broker.emit(OrderModifiedEvent(BROKER, ref, **changed))


def execution_event(broker: IbBroker, contract: Contract, execution: Execution) -> ExecutionEvent:
    known = broker.requests.get(execution.orderRef or "")
    moment = execution.time
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    group, version = split_exec_id(execution.execId)  # a correction supersedes its version
    return ExecutionEvent(
        broker=BROKER,
        account=execution.acctNumber or broker.account,
        exec_id=execution.execId,
        base_exec_id=group,
        correction_number=version,
        instrument=spec_for(contract),
        side="BUY" if execution.side in ("BOT", "BUY") else "SELL",
        qty=decimal(execution.shares, "shares"),
        price=decimal(execution.price, "price"),
        time=moment.astimezone(UTC),
        client_order_id=execution.orderRef or None,
        strategy=known.strategy if known else None,
        broker_order_id=str(execution.orderId),
        broker_client_id=str(execution.clientId),
        perm_id=str(execution.permId) if execution.permId else None,
        liquidity={1: "ADDED", 2: "REMOVED"}.get(execution.lastLiquidity, ""),
        exchange=execution.exchange,
    )


def _exec_details(broker: IbBroker, request_id: int, contract: Contract, execution: Execution):
    broker.emit(execution_event(broker, contract, execution))


def _commission(broker: IbBroker, report: Any) -> None:
    pnl = report.realizedPNL
    broker.emit(
        CommissionEvent(
            BROKER,
            report.execId,
            decimal(report.commission, "commission"),
            report.currency or "USD",
            None if not pnl or abs(pnl) >= UNSET / 2 else decimal(pnl, "realizedPNL"),
        )
    )


def _completed_order(broker: IbBroker, contract: Contract, order: Order, state: Any) -> None:
    if order.permId:
        broker.completion_texts[order.permId] = state.completedStatus or ""


def _error(broker: IbBroker, request_id: int, code: int, message: str, is_request: bool) -> None:
    if code in NOTICES or is_request:
        return  # farm notices; a request's error is raised to its caller
    ref = _order_ref(broker, broker.client_id, request_id, 0) if request_id > 0 else None
    if ref is None:
        if request_id == -1 or code != CANCEL_CONFIRMED:
            broker.emit(ErrorEvent(BROKER, code, message))
        return
    if code == CANCEL_CONFIRMED:
        return  # TWS sends the Cancelled status itself
    reason = f"{code}: {message}"
    last = broker.last_status.get(ref)
    acknowledged = last is not None and last.status != "PendingSubmit"
    request = broker.requests.get(ref)
    if code in REJECTIONS or (code == 110 and not acknowledged):
        qty = request.qty if request else Decimal(0)
        filled = last.filled if last else Decimal(0)
        status = OrderStatusEvent(
            BROKER, "Rejected", filled, qty - filled, client_order_id=ref, message=reason
        )
    elif last is not None and last.status in TERMINAL_STATUSES:
        status = replace(last, message=reason, time=utc())
    else:
        qty = request.qty if request else Decimal(0)
        base = last or OrderStatusEvent(BROKER, "PendingSubmit", Decimal(0), qty)
        status = replace(base, client_order_id=ref, message=reason, time=utc())
    broker.last_status[ref] = replace(status, message="")
    broker.emit(status)
    broker.emit(ErrorEvent(BROKER, code, message, client_order_id=ref))
