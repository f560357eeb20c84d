"""Order-state reconciliation: the database's open orders against what TWS knows.

Run on every connect and reconnect, when TWS's link to IB comes back, and periodically. TWS
answers reqAllOpenOrders (every client's open orders, with their status) and reqCompletedOrders
(orders filled, cancelled or rejected today, with the quantity filled). For each order the
database still has open:
- open at TWS and placed by this client id: adopted, so `open_orders()`, `cancel()` and
  `modify()` work after a restart (the maps are rebuilt from the database row: orderRef is the
  client order id, permId ties it to TWS);
- completed at TWS: its final status and filled quantity are recorded (a fill made while we were
  disconnected, a bracket sibling cancelled meanwhile);
- unknown to TWS: reported once (an ErrorEvent) and left as it is; nothing is invented.
Statuses of open orders need no work here: TWS sends them with reqAllOpenOrders and the adapter
records every status TWS sends.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ib_async import Trade

from quantstrip.brokers.events import (
    TERMINAL_STATUSES,
    ErrorEvent,
    InstrumentSpec,
    OrderRequest,
    OrderStatusEvent,
    decimal,
)
from quantstrip.brokers.ib.mapping import BROKER

if TYPE_CHECKING:
    from quantstrip.brokers.ib.adapter import IbBroker
    from quantstrip.db.handler import Database

log = logging.getLogger(__name__)
MICRO = Decimal(1_000_000)


@dataclass
class Reconciliation:
    checked: int = 0
    adopted: list[str] = field(default_factory=list)  # client order ids now in our maps
    completed: list[str] = field(default_factory=list)  # final status taken from TWS
    unknown: list[str] = field(default_factory=list)  # open here, unknown to TWS


def open_orders_in(db: Database, accounts: list[str]) -> list[dict[str, Any]]:
    """The IB orders the database holds open, with their instrument, for these accounts."""
    terminal = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
    rows = db.query(
        "SELECT o.*, s.name AS strategy_name, a.account_code, p.client_order_id AS parent_ref, "
        "b.broker_contract_id AS conid FROM orders o "
        "LEFT JOIN strategies s ON s.id = o.strategy_id "
        "LEFT JOIN accounts a ON a.id = o.account_id "
        "LEFT JOIN orders p ON p.id = o.parent_order_id "
        "LEFT JOIN instrument_broker_ids b ON b.instrument_id = o.instrument_id AND b.broker = ? "
        f"WHERE o.broker = ? AND o.status NOT IN ({terminal}) ORDER BY o.id",
        (BROKER, BROKER),
    )
    return [dict(r) for r in rows if not accounts or r["account_code"] in (None, "", *accounts)]


def request_from_row(db: Database, row: dict[str, Any]) -> OrderRequest:
    """The canonical request an order row was made from (to list, cancel or modify it)."""
    instrument = db.instrument(row["instrument_id"])

    def amount(column: str) -> Decimal | None:
        return None if row.get(column) is None else Decimal(row[column]) / MICRO

    good_till = row.get("good_till")
    return OrderRequest(
        InstrumentSpec(
            instrument.symbol,
            sec_type=instrument.sec_type,
            exchange=instrument.exchange,
            currency=instrument.currency,
            multiplier=Decimal(instrument.multiplier_micros) / MICRO,
            broker_contract_id=row.get("conid"),
            primary_exchange=instrument.primary_exchange,
            expiry=instrument.expiry,
            strike=Decimal(instrument.strike_micros) / MICRO,
            option_right=instrument.option_right,
        ),
        row["side"],
        Decimal(row["qty_micros"]) / MICRO,
        row["order_type"],
        limit_price=amount("limit_price_micros"),
        stop_price=amount("stop_price_micros"),
        tif=row["tif"],
        strategy=row.get("strategy_name") or "unattributed",
        client_order_id=row["client_order_id"],
        oca_group=row.get("oca_group"),
        parent_client_order_id=row.get("parent_ref"),
        client_name=row.get("client_name"),
        trail_amount=amount("trail_amount_micros"),
        trail_percent=amount("trail_percent_micros"),
        good_till=datetime.fromisoformat(f"{good_till}+00:00") if good_till else None,
    )


def _match(row: dict[str, Any], trades: list[Trade]) -> Trade | None:
    for trade in trades:
        order = trade.order
        if row.get("perm_id") and str(order.permId) == row["perm_id"]:
            return trade
        if order.orderRef and order.orderRef == row["client_order_id"]:
            return trade
        if (
            order.orderId > 0
            and row.get("broker_order_id") == str(order.orderId)
            and row.get("broker_client_id") == str(order.clientId)
        ):
            return trade
    return None


def completion_event(row: dict[str, Any], trade: Trade, text: str = "") -> OrderStatusEvent:
    """What TWS's completed order says about a database order: final status and quantities,
    and TWS's completion text ('Cancelled by Trader'...) unless it only repeats the fill."""
    order, state = trade.order, trade.orderStatus
    filled = decimal(order.filledQuantity or 0, "filledQuantity")
    total = decimal(order.totalQuantity or 0, "totalQuantity") or Decimal(row["qty_micros"]) / MICRO
    return OrderStatusEvent(
        BROKER,
        state.status,
        filled,
        max(total - filled, Decimal(0)),
        client_order_id=row["client_order_id"],
        perm_id=str(order.permId) if order.permId else None,
        message="" if text.startswith("Filled Size") else text,
    )


def reconcile_rows(
    rows: list[dict[str, Any]],
    open_trades: list[Trade],
    completed: list[Trade],
    *,
    own_client_id: int,
    adopt: Any,
    emit: Any,
    reported: set[str],
    texts: dict[int, str],
) -> Reconciliation:
    """Compare database rows with TWS's answers; adopt ours, record completions, report the
    unknown (each once per adapter: `reported`)."""
    result = Reconciliation(checked=len(rows))
    for row in rows:
        coid = row["client_order_id"]
        trade = _match(row, open_trades)
        if trade is not None:
            if trade.order.clientId == own_client_id or row.get("broker_client_id") == str(
                own_client_id
            ):
                adopt(row, trade)
                result.adopted.append(coid)
            continue
        done = _match(row, completed)
        if done is not None:
            emit(completion_event(row, done, texts.get(done.order.permId, "")))
            result.completed.append(coid)
            continue
        result.unknown.append(coid)
        if coid not in reported:
            reported.add(coid)
            emit(
                ErrorEvent(
                    BROKER,
                    0,
                    f"order {coid} is open in the database but TWS lists it neither open nor "
                    "completed (placed on another day or another login?): left as it is",
                    client_order_id=coid,
                )
            )
    return result


class Reconciler:
    """Runs reconciliation for one adapter, on its event loop."""

    def __init__(self, broker: IbBroker) -> None:
        self.broker = broker
        self.reported: set[str] = set()  # unknown orders already reported

    async def run(self) -> Reconciliation:
        broker, ib = self.broker, self.broker.ib
        open_trades = await ib.reqAllOpenOrdersAsync()
        completed = await ib.reqCompletedOrdersAsync(False)
        for trade in ib.openTrades():  # ib_async's trade objects are new after a reconnect
            ref = trade.order.orderRef
            if ref in broker.requests and trade.order.clientId == broker.client_id:
                broker.trades[ref] = trade
        db = broker.ledger()
        if db is None:
            return Reconciliation()

        def adopt(row: dict[str, Any], trade: Trade) -> None:
            ref = row["client_order_id"]
            if ref not in broker.requests:
                broker.requests[ref] = request_from_row(db, row)
            broker.trades[ref] = trade

        def emit(event: Any) -> None:
            if isinstance(event, OrderStatusEvent) and event.client_order_id:
                broker.last_status[event.client_order_id] = event  # open_orders() follows
            broker.emit(event)

        result = reconcile_rows(
            open_orders_in(db, ib.managedAccounts()),
            open_trades,
            completed,
            own_client_id=broker.client_id,
            adopt=adopt,
            emit=emit,
            reported=self.reported,
            texts=broker.completion_texts,
        )
        if result.completed or result.unknown:
            log.info(
                "IB reconciliation: %d open in the database; completed at TWS %s; unknown %s",
                result.checked,
                result.completed,
                result.unknown,
            )
        return result

    async def periodically(self, interval_s: float) -> None:
        from quantstrip.brokers.ib.connection import LinkState

        while True:
            await asyncio.sleep(interval_s)
            if self.broker.state != LinkState.CONNECTED:
                continue
            try:
                await self.run()
            except Exception:
                log.exception("IB periodic reconciliation failed")
