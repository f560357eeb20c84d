"""Tradier (REST, https://documentation.tradier.com/brokerage-api): the worked example of
docs/new-broker.md, mapping one more broker onto the canonical events.

Tradier knows orders, not executions: an order reports the quantity executed so far
(`exec_quantity`) and its last fill (`last_fill_quantity` at `last_fill_price`). `poll()` reads
the account's orders and turns each increase of an order's executed quantity into one fill,
whose exec id is `<order id>-<executed quantity after it>`: the same fill always gets the same
id, so polling twice, or after a restart, stores it once. Our client order id travels as the
order's `tag`. Tradier's JSON is XML turned into JSON: a list of one comes as the object
itself and an empty list as the string "null"; `_many` undoes both.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from quantstrip import clock
from quantstrip.brokers.base import Broker
from quantstrip.brokers.events import (
    AccountValueEvent,
    Bar,
    BracketRequest,
    BrokerPosition,
    CommissionEvent,
    ExecutionEvent,
    InstrumentSpec,
    OrderPlacedEvent,
    OrderRequest,
    OrderStatusEvent,
    decimal,
)
from quantstrip.errors import ConfigError, QuantstripError

log = logging.getLogger(__name__)

BROKER = "tradier"
TYPES = {"MKT": "market", "LMT": "limit", "STP": "stop", "STP LMT": "stop_limit"}
DURATIONS = {"DAY": "day", "GTC": "gtc"}
STATUS = {
    "pending": "PendingSubmit",
    "open": "Submitted",
    "partially_filled": "Submitted",
    "filled": "Filled",
    "canceled": "Cancelled",
    "expired": "Cancelled",
    "rejected": "Rejected",
    "error": "Rejected",
}
OPEN = {"pending", "open", "partially_filled"}


class TradierError(QuantstripError):
    """Tradier refused a request; the message is Tradier's."""


def _many(value: Any, key: str) -> list[dict[str, Any]]:
    """Tradier's {"orders": {"order": [...]}} that is a dict for one item and "null" for none."""
    if not isinstance(value, dict):
        return []
    items = value.get(key)
    if items in (None, "null"):
        return []
    return items if isinstance(items, list) else [items]


def _time(text: str | None) -> datetime:
    if not text:
        return clock.now()  # pragma: no cover - Tradier always dates an order
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class TradierBroker(Broker):
    name = BROKER

    def __init__(self, *, token: str, account_id: str, base_url: str, timeout_s: float = 15):
        super().__init__()
        if not token or not account_id:
            raise ConfigError("Tradier needs an access token and an account id")
        self._token = token
        self.account = account_id
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._orders: dict[str, OrderRequest] = {}  # our client order id -> request
        self._ids: dict[str, str] = {}  # our client order id -> Tradier order id
        # Tradier order id -> (executed quantity, its value at the average price) last seen
        self._executed: dict[str, tuple[Decimal, Decimal]] = {}
        self._status: dict[str, str] = {}  # Tradier order id -> status seen

    def __repr__(self) -> str:
        return f"TradierBroker(account={self.account!r}, base_url={self.base_url!r})"

    # ---- HTTP ------------------------------------------------------------------------------
    def _call(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.base_url}{path}"
        data = None
        if method in ("POST", "PUT"):
            data = query.encode()
        elif query:
            url = f"{url}?{query}"
        request = urllib.request.Request(
            url,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            try:
                errors = json.loads(body).get("errors", {}).get("error", body)
            except (ValueError, AttributeError):
                errors = body
            message = "; ".join(errors) if isinstance(errors, list) else str(errors)
            raise TradierError(f"{method} {path}: HTTP {exc.code}: {message}") from None

    def _orders_path(self, order_id: str | None = None) -> str:
        base = f"/v1/accounts/{self.account}/orders"
        return f"{base}/{order_id}" if order_id else base

    # ---- lifecycle ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Check the token and the account (Tradier has no session to open)."""
        self.account_values()

    def disconnect(self) -> None:
        pass

    # ---- orders ------------------------------------------------------------------------------
    def submit(self, request: OrderRequest) -> str:
        if request.order_type not in TYPES or request.tif not in DURATIONS:
            raise ConfigError(
                f"Tradier takes {sorted(TYPES)} orders DAY or GTC, not "
                f"{request.order_type} {request.tif}"
            )
        answer = self._call(
            "POST",
            self._orders_path(),
            {
                "class": "equity",
                "symbol": request.instrument.symbol,
                "side": request.side.lower(),
                "quantity": str(request.qty),
                "type": TYPES[request.order_type],
                "duration": DURATIONS[request.tif],
                "price": str(request.limit_price) if request.limit_price is not None else None,
                "stop": str(request.stop_price) if request.stop_price is not None else None,
                "tag": request.client_order_id,
            },
        )
        order_id = str((answer or {}).get("order", {}).get("id", ""))
        if not order_id:
            raise TradierError(f"order not accepted: {answer!r}")
        self._orders[request.client_order_id] = request
        self._ids[request.client_order_id] = order_id
        self.emit(OrderPlacedEvent(BROKER, self.account, request, broker_order_id=order_id))
        return request.client_order_id

    def submit_bracket(self, bracket: BracketRequest) -> tuple[str, str, str]:
        raise ConfigError("Tradier's OTOCO orders are not mapped yet: place the legs yourself")

    def _id(self, client_order_id: str) -> str:
        if client_order_id not in self._ids:
            raise TradierError(f"unknown order {client_order_id}")
        return self._ids[client_order_id]

    def cancel(self, client_order_id: str) -> None:
        self._call("DELETE", self._orders_path(self._id(client_order_id)))

    def modify(
        self,
        client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None:
        if qty is not None:
            raise ConfigError("Tradier cannot change an order's quantity: cancel and replace it")
        self._call(
            "PUT",
            self._orders_path(self._id(client_order_id)),
            {
                "price": str(limit_price) if limit_price is not None else None,
                "stop": str(stop_price) if stop_price is not None else None,
            },
        )

    def open_orders(self) -> Sequence[OrderRequest]:
        listed = self._call("GET", self._orders_path())
        mine = {v: k for k, v in self._ids.items()}
        return [
            self._orders[mine[str(o["id"])]]
            for o in _many(listed.get("orders") if listed else None, "order")
            if o.get("status") in OPEN and str(o["id"]) in mine
        ]

    # ---- polling: statuses and fills ---------------------------------------------------------
    def poll(self) -> int:
        """Read the account's orders; emit each new fill and status change. New fills count."""
        listed = self._call("GET", self._orders_path())
        fills = 0
        for order in _many(listed.get("orders") if listed else None, "order"):
            fills += self._on_order(order)
        return fills

    def _on_order(self, order: dict[str, Any]) -> int:
        order_id = str(order["id"])
        ours = order.get("tag") or None
        request = self._orders.get(ours or "")
        executed = decimal(order.get("exec_quantity") or 0, "exec_quantity")
        average = order.get("avg_fill_price")
        value = executed * decimal(average or 0, "avg_fill_price")
        if order_id not in self._executed:
            self._executed[order_id] = self._recorded(order_id)
        before, value_before = self._executed[order_id]
        fills = 0
        if executed > before:  # one fill per increase; its id is stable across polls
            qty = executed - before
            # Several fills between two polls come as one, at their average price (exact: from
            # the order's average before and after, not its last fill's price).
            price = ((value - value_before) / qty).quantize(Decimal("0.000001"))
            exec_id = f"{order_id}-{executed.normalize():f}"
            self.emit(
                ExecutionEvent(
                    BROKER,
                    self.account,
                    exec_id,
                    request.instrument if request else InstrumentSpec(str(order["symbol"])),
                    "BUY" if str(order.get("side", "")).startswith("buy") else "SELL",
                    qty,
                    price.normalize(),
                    _time(order.get("transaction_date")),
                    client_order_id=ours,
                    broker_order_id=order_id,
                    strategy=request.strategy if request else None,
                )
            )
            self.emit(CommissionEvent(BROKER, exec_id, Decimal(0)))
            self._executed[order_id] = (executed, value)
            fills = 1
        status = str(order.get("status", ""))
        if status != self._status.get(order_id) or fills:
            self._status[order_id] = status
            self.emit(
                OrderStatusEvent(
                    BROKER,
                    STATUS.get(status, status),
                    executed,
                    decimal(order.get("remaining_quantity") or 0, "remaining_quantity"),
                    decimal(average, "avg_fill_price") if average else None,
                    client_order_id=ours,
                    broker_order_id=order_id,
                    message=str(order.get("reason_description") or ""),
                    time=_time(order.get("transaction_date")),
                )
            )
        return fills

    def _recorded(self, order_id: str) -> tuple[Decimal, Decimal]:
        """What the ledger already holds of an order's fills (quantity, value): after a
        restart, only the fills made since are new."""
        db = self.ledger()
        if db is None:
            return Decimal(0), Decimal(0)
        row = db.query(
            "SELECT COALESCE(SUM(qty_micros), 0), COALESCE(SUM(qty_micros * price_micros), 0) "
            "FROM executions WHERE broker = ? AND exec_id LIKE ? AND superseded_by IS NULL",
            (BROKER, f"{order_id}-%"),
        )[0]
        return Decimal(row[0]) / 10**6, Decimal(row[1]) / 10**12

    # ---- account and data --------------------------------------------------------------------
    def positions(self) -> Sequence[BrokerPosition]:
        answer = self._call("GET", f"/v1/accounts/{self.account}/positions")
        out = []
        for p in _many(answer.get("positions") if answer else None, "position"):
            qty = decimal(p["quantity"], "quantity")
            cost = decimal(p.get("cost_basis") or 0, "cost_basis")
            out.append(
                BrokerPosition(self.account, InstrumentSpec(str(p["symbol"])), qty, cost / qty)
            )
        return out

    def account_values(self) -> dict[str, Decimal]:
        balances = (self._call("GET", f"/v1/accounts/{self.account}/balances") or {}).get(
            "balances"
        ) or {}
        if not balances:
            raise TradierError("no balances for the account")
        return {
            "NetLiquidation": decimal(balances["total_equity"], "total_equity"),
            "TotalCashValue": decimal(balances["total_cash"], "total_cash"),
        }

    def snapshot(self) -> AccountValueEvent:
        values = self.account_values()
        event = AccountValueEvent(
            BROKER, self.account, values["NetLiquidation"], values["TotalCashValue"]
        )
        self.emit(event)
        return event

    def historical_bars(
        self,
        instrument: InstrumentSpec,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        bar_size: str = "1 day",
    ) -> list[Bar]:
        intervals = {"1 day": "daily", "1 week": "weekly", "1 month": "monthly"}
        if bar_size not in intervals:
            raise ConfigError(f"bar_size: Tradier history has {sorted(intervals)}")
        answer = self._call(
            "GET",
            "/v1/markets/history",
            {
                "symbol": instrument.symbol,
                "interval": intervals[bar_size],
                "start": start.date().isoformat() if start else None,
                "end": end.date().isoformat() if end else None,
            },
        )
        days = _many(answer.get("history") if answer else None, "day")
        if not days:
            raise TradierError(f"no {bar_size} bars for {instrument.symbol}")
        return [
            Bar(
                datetime.fromisoformat(d["date"]).replace(tzinfo=UTC),
                d["open"],
                d["high"],
                d["low"],
                d["close"],
                d.get("volume", 0),
            )
            for d in days
        ]
