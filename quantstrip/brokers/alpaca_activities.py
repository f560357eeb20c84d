"""Alpaca's account activities as canonical events: the catch-up after a stream gap, and fees.

Trade updates on the stream carry each fill once, live; a fill made while the stream was down
is only in the account activities (`GET /v2/account/activities/FILL`, paged, oldest first
with `direction=asc`). An activity's id is `<time>::<execution id>`, the execution id being the
one the trade update carried, so a fill replayed here is stored once. Fees are activities too
(FEE, CFEE for crypto, PTC pass-through charges): recorded as cash events, never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from quantstrip import clock
from quantstrip.brokers.events import (
    CashEvent,
    CommissionEvent,
    ExecutionEvent,
    InstrumentSpec,
    OrderStatusEvent,
    decimal,
    utc,
)

if TYPE_CHECKING:
    from quantstrip.brokers.alpaca import AlpacaBroker

log = logging.getLogger(__name__)

BROKER = "alpaca"
FEE_TYPES = ("FEE", "CFEE", "PTC")
# Alpaca order statuses in the canonical (IB-like) words.
STATUS = {
    "new": "Submitted",
    "accepted": "Submitted",
    "pending_new": "PendingSubmit",
    "partially_filled": "PartiallyFilled",
    "filled": "Filled",
    "canceled": "Cancelled",
    "expired": "Cancelled",
    "rejected": "Rejected",
    "replaced": "Submitted",
}


def pages(client: Any, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every activity of a paged activities listing (Alpaca pages by the last id seen)."""
    params = {**params, "direction": "asc", "page_size": 100}
    while True:
        batch = client.get(path, params) or []
        yield from batch
        if len(batch) < params["page_size"]:
            return
        params["page_token"] = batch[-1]["id"]


def execution_id(activity_id: str) -> str:
    return activity_id.split("::", 1)[-1]


def fill_event(activity: dict[str, Any], account: str, request: Any) -> ExecutionEvent:
    """A FILL activity as the ExecutionEvent its trade update would have given."""
    return ExecutionEvent(
        BROKER,
        account,
        execution_id(str(activity["id"])),
        request.instrument if request else InstrumentSpec(str(activity["symbol"])),
        "BUY" if str(activity["side"]).lower() == "buy" else "SELL",
        decimal(activity["qty"], "qty"),
        decimal(activity["price"], "price"),
        utc(datetime.fromisoformat(str(activity["transaction_time"]).replace("Z", "+00:00"))),
        client_order_id=request.client_order_id if request else None,
        broker_order_id=str(activity["order_id"]),
        strategy=request.strategy if request else None,
    )


def fee_event(activity: dict[str, Any], account: str) -> CashEvent:
    moment: Any = activity.get("transaction_time") or activity.get("date")
    if isinstance(moment, str) and "T" in moment:
        when = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    else:
        when = datetime.combine(date.fromisoformat(str(moment)), time(), tzinfo=UTC)
    amount = decimal(activity.get("net_amount") or 0, "net_amount")
    symbol = activity.get("symbol")
    return CashEvent(
        BROKER,
        account,
        str(activity["id"]),
        "fee",
        "USD",
        amount if amount <= 0 else -amount,  # a fee is money out
        utc(when),
        instrument=InstrumentSpec(str(symbol)) if symbol else None,
        description=f"{activity['activity_type']}: {activity.get('description') or ''}".strip(),
    )


def _since(broker: AlpacaBroker) -> datetime:
    """The last fill recorded (this process's, else the ledger's); a day ago at most."""
    if broker._last_fill is not None:
        return broker._last_fill
    db = broker.ledger()
    if db is not None:
        row = db.query(
            "SELECT MAX(e.exec_time) FROM executions e JOIN accounts a ON a.id = e.account_id "
            "WHERE e.broker = ? AND a.account_code = ?",
            (BROKER, broker.account),
        )
        if row and row[0][0]:
            return datetime.fromisoformat(f"{row[0][0]}+00:00")
    return clock.now() - timedelta(days=1)


def catch_up(broker: AlpacaBroker, since: datetime | None = None) -> int:
    """The fills Alpaca lists since `since` (default: the broker's last fill), each with the
    order state it leaves, and the fees Alpaca reports; emitted through the broker."""
    start = since or _since(broker)
    client = broker._api()
    params = {"after": start.astimezone(UTC).isoformat().replace("+00:00", "Z")}
    fills = 0
    for activity in pages(client, "/account/activities/FILL", params):
        ours = broker._ours.get(str(activity.get("order_id")))
        request = broker._orders.get(ours or "")
        broker.emit(fill_event(activity, broker.account, request))
        broker.emit(CommissionEvent(BROKER, execution_id(str(activity["id"])), Decimal(0)))
        if request is not None:  # the order's state after this fill, as Alpaca lists it
            status = str(activity.get("order_status") or "")
            broker.emit(
                OrderStatusEvent(
                    BROKER,
                    STATUS.get(status, status),
                    decimal(activity.get("cum_qty") or 0, "cum_qty"),
                    decimal(activity.get("leaves_qty") or 0, "leaves_qty"),
                    client_order_id=request.client_order_id,
                    broker_order_id=str(activity["order_id"]),
                )
            )
        fills += 1
    fee_params = {**params, "activity_types": ",".join(FEE_TYPES)}
    for activity in pages(client, "/account/activities", fee_params):
        broker.emit(fee_event(activity, broker.account))
    return fills
