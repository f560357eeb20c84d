"""The operator's actions, carried out by a guard on its own broker connection.

- cancel orders: every working order of the client at this broker;
- flatten: cancel orders first (a working exit would otherwise double the close), then close
  each open position of the client's strategies at market;
- refresh marks: a price for everything the client holds or has orders in.

Each returns a line of text for the operator. The guard's orders bypass the checks (a flatten
must pass a halt) but are otherwise ordinary orders: the recorder stores them and their fills.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from quantstrip.brokers.events import OrderRequest, new_client_order_id
from quantstrip.brokers.risk import exposure
from quantstrip.brokers.risk.guard import current_client

if TYPE_CHECKING:
    from quantstrip.brokers.risk.guard import RiskGuard


def _owned(guard: RiskGuard, request: OrderRequest) -> bool:
    client = current_client()
    return client is None or request.client_name in (None, client)


def cancel_orders(guard: RiskGuard) -> str:
    broker = guard.broker
    cancelled, failed = [], []
    with guard.inside():
        for request in list(broker.open_orders()):
            if not _owned(guard, request):
                continue
            try:
                broker.cancel(request.client_order_id)
                cancelled.append(request.client_order_id)
            except Exception as exc:
                failed.append(f"{request.client_order_id}: {exc}")
    text = f"{broker.name}: cancelled {len(cancelled)} order(s)"
    if failed:
        raise RuntimeError(f"{text}; could not cancel {len(failed)}: {'; '.join(failed)}")
    return text


def flatten(guard: RiskGuard) -> str:
    broker = guard.broker
    cancelled = cancel_orders(guard)
    ledger = broker.ledger()
    account = str(getattr(broker, "account", "") or "") or None
    closing: list[tuple[OrderRequest, str]] = []
    if ledger is not None:
        conn = ledger.conn
        for held in exposure.holdings(conn, broker.name, account=account, client=current_client()):
            spec = exposure.spec_for(conn, held.instrument_id, broker.name)
            closing.append((_closing_order(spec, held.qty, held.strategy), held.account))
    else:
        for position in broker.positions():
            closing.append((_closing_order(position.instrument, position.qty, "flatten"), ""))
    sent = []
    with guard.inside():
        for request, _account in closing:
            broker.submit(request)
            sent.append(f"{request.side} {request.qty:f} {request.instrument.symbol}")
    closed = f"closing {len(sent)} position(s) at market" + (f": {', '.join(sent)}" if sent else "")
    return f"{cancelled}; {closed}"


def _closing_order(spec: object, qty: Decimal, strategy: str) -> OrderRequest:
    return OrderRequest(
        spec,  # type: ignore[arg-type]
        "SELL" if qty > 0 else "BUY",
        abs(qty),
        "MKT",
        strategy=strategy,
        client_order_id=f"flatten-{new_client_order_id()}",
        client_name=current_client(),
    )


def refresh_marks(guard: RiskGuard) -> str:
    broker = guard.broker
    ledger = broker.ledger()
    specs = {o.instrument for o in broker.open_orders()}
    if ledger is not None:
        account = str(getattr(broker, "account", "") or "") or None
        for held in exposure.holdings(
            ledger.conn, broker.name, account=account, client=current_client()
        ):
            specs.add(exposure.spec_for(ledger.conn, held.instrument_id, broker.name))
    else:
        specs |= {p.instrument for p in broker.positions()}
    with guard.inside():
        marks = broker.snapshot_marks(sorted(specs, key=lambda s: s.symbol))
    return f"{broker.name}: {len(marks)} mark(s) of {len(specs)} instrument(s)"


ACTIONS = {"flatten": flatten, "cancel_orders": cancel_orders, "refresh_marks": refresh_marks}
