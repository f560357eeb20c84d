"""Alpaca through alpaca-py: the same canonical events as every other broker.

Orders go through the REST TradingClient (paper by default). Fills arrive as trade updates
(`fill` / `partial_fill` events of the trading stream, `start_trade_updates()` runs alpaca-py's
TradingStream in a thread, reconnecting by itself); each carries Alpaca's execution id, which
becomes the canonical exec id, so a replayed or duplicated update is stored once. Every time the
stream (re)connects, the fills made since the last one recorded are fetched from the account
activities (a gap in the stream loses nothing), with the fees Alpaca reports there (cash
events). Alpaca charges no commission on US equities: a zero CommissionEvent is emitted so the
fill is complete.

Alpaca gives orders ids of its own: a bracket's exit legs, and the replacement a modify creates
(the replaced order is dead). Both are mapped to our client order ids, so exit fills belong to
the bracket's strategy and `cancel()` after `modify()` cancels the live replacement.
`open_orders()` asks Alpaca which orders are open. Bars come from the market-data API
(StockHistoricalDataClient). Every URL can be overridden, which is how the tests point the
unmodified SDK at servers on 127.0.0.1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca.data.historical import StockHistoricalDataClient
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import (
    StopLossRequest,
    TakeProfitRequest,
)

from quantstrip.brokers import alpaca_activities as activities
from quantstrip.brokers import alpaca_data as market_data
from quantstrip.brokers.alpaca_activities import STATUS
from quantstrip.brokers.alpaca_data import BAR_SIZES
from quantstrip.brokers.alpaca_orders import order_request
from quantstrip.brokers.alpaca_stream import TradeUpdates
from quantstrip.brokers.base import Broker
from quantstrip.brokers.events import (
    Bar,
    BracketRequest,
    BrokerPosition,
    CommissionEvent,
    ExecutionEvent,
    InstrumentSpec,
    OrderModifiedEvent,
    OrderPlacedEvent,
    OrderRequest,
    OrderStatusEvent,
    decimal,
    utc,
)
from quantstrip.brokers.marks import MarkEvent
from quantstrip.errors import ConfigError, NotFoundError

log = logging.getLogger(__name__)

BROKER = "alpaca"
__all__ = ["BAR_SIZES", "BROKER", "AlpacaBroker"]


class AlpacaBroker(Broker):
    name = BROKER

    def __init__(
        self,
        *,
        account: str = "alpaca-paper",
        api_key: str | None = None,
        secret_key: str | None = None,
        paper: bool = True,
        url_override: str | None = None,
        stream_url: str | None = None,
        data_url: str | None = None,
    ) -> None:
        super().__init__()
        self.account = account
        self._key, self._secret = api_key, secret_key
        self.paper = paper
        self.url_override = url_override
        self.stream_url = stream_url
        self.data_url = data_url
        self.client: TradingClient | None = None
        self._updates = TradeUpdates(self)
        self._orders: dict[str, OrderRequest] = {}  # our client order id -> request
        self._alpaca_ids: dict[str, str] = {}  # our client order id -> the live Alpaca id
        self._ours: dict[str, str] = {}  # any Alpaca id (legs, replacements) -> our id
        self._last_fill: datetime | None = None

    @classmethod
    def from_settings(cls, **kw: Any) -> AlpacaBroker:
        from quantstrip import settings

        alpaca = settings.platform().brokers.alpaca
        secret = settings.get_secret("brokers.alpaca.secret_key")
        if not alpaca.key_id or secret is None:
            raise ConfigError(
                "brokers.alpaca.key_id and the secret brokers.alpaca.secret_key must be set"
            )
        return cls(
            api_key=alpaca.key_id,
            secret_key=secret.reveal(),
            paper=alpaca.paper,
            url_override=alpaca.base_url,
            stream_url=alpaca.stream_url,
            data_url=alpaca.data_url,
            **kw,
        )

    def connect(self) -> None:
        self.client = TradingClient(
            self._key, self._secret, paper=self.paper, url_override=self.url_override
        )

    def disconnect(self) -> None:
        self.stop_trade_updates()
        self.client = None

    # ---- trade-update stream --------------------------------------------------------------
    def start_trade_updates(self) -> None:
        """Stream fills and order updates into canonical events, in a background thread
        (alpaca-py's TradingStream, reconnecting by itself; each (re)connect catches up on what
        the gap missed). Events are delivered under the broker's emit lock."""
        if not self._key or not self._secret:
            raise ConfigError("Alpaca trade updates need an API key id and secret key")
        self._updates.start(self._key, self._secret)

    def stop_trade_updates(self, timeout: float = 10.0) -> None:
        self._updates.stop(timeout)

    def _api(self) -> TradingClient:
        if self.client is None:
            raise ConfigError("not connected: call connect() first")
        return self.client

    def _track(self, request: OrderRequest, order: Any) -> None:
        """Remember an order Alpaca accepted (or created for us) and record it."""
        alpaca_id = str(order.id)
        self._orders[request.client_order_id] = request
        self._alpaca_ids[request.client_order_id] = alpaca_id
        self._ours[alpaca_id] = request.client_order_id
        self.emit(OrderPlacedEvent(BROKER, self.account, request, broker_order_id=alpaca_id))
        filled = decimal(order.filled_qty or 0, "filled_qty")
        self.emit(
            OrderStatusEvent(
                BROKER,
                STATUS.get(str(order.status.value), str(order.status.value)),
                filled,
                request.qty - filled,
                client_order_id=request.client_order_id,
                broker_order_id=alpaca_id,
            )
        )

    def _send(self, request: OrderRequest, alpaca_request: Any) -> Any:
        order = self._api().submit_order(alpaca_request)
        self._track(request, order)
        return order

    def submit(self, request: OrderRequest) -> str:
        self._send(request, order_request(request))
        return request.client_order_id

    def submit_bracket(self, bracket: BracketRequest) -> tuple[str, str, str]:
        """One bracket order at Alpaca; its take-profit (limit) and stop-loss (stop) legs, which
        Alpaca creates with ids of its own, are recorded as our take and stop orders."""
        parent, take, stop = bracket.legs()
        order = self._send(
            parent,
            order_request(
                parent,
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=float(bracket.take_profit_price)),
                stop_loss=StopLossRequest(stop_price=float(bracket.stop_loss_price)),
            ),
        )
        for leg in order.legs or []:
            kind = str(getattr(leg.type, "value", leg.type) or "")
            self._track(take if kind == "limit" else stop, leg)
        return parent.client_order_id, take.client_order_id, stop.client_order_id

    def _live_id(self, client_order_id: str) -> str:
        if client_order_id not in self._alpaca_ids:
            raise NotFoundError(f"unknown order {client_order_id}")
        return self._alpaca_ids[client_order_id]

    def cancel(self, client_order_id: str) -> None:
        self._api().cancel_order_by_id(self._live_id(client_order_id))

    def modify(
        self,
        client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None:
        """Alpaca replaces the order with a new one (new id; the old one is dead): the
        replacement becomes the live order behind our client order id."""
        from alpaca.trading.requests import ReplaceOrderRequest

        replacement = self._api().replace_order_by_id(
            self._live_id(client_order_id),
            ReplaceOrderRequest(
                qty=int(qty) if qty is not None else None,
                limit_price=float(limit_price) if limit_price is not None else None,
                stop_price=float(stop_price) if stop_price is not None else None,
            ),
        )
        new_id = str(replacement.id)
        self._alpaca_ids[client_order_id] = new_id
        self._ours[new_id] = client_order_id
        terms = {
            "qty": decimal(qty, "qty") if qty is not None else None,
            "limit_price": decimal(limit_price, "limit_price") if limit_price is not None else None,
            "stop_price": decimal(stop_price, "stop_price") if stop_price is not None else None,
        }
        changed = {k: v for k, v in terms.items() if v is not None}
        request = self._orders.get(client_order_id)
        if request is not None:
            self._orders[client_order_id] = replace(request, **changed)
        self.emit(OrderModifiedEvent(BROKER, client_order_id, **changed))

    def open_orders(self) -> Sequence[OrderRequest]:
        """Our orders Alpaca reports open (bracket legs included)."""
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        listed = self._api().get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True))
        found = []
        for order in listed:
            for one in [order, *(order.legs or [])]:
                ours = self._ours.get(str(one.id))
                if ours in self._orders and self._alpaca_ids.get(ours) == str(one.id):
                    found.append(self._orders[ours])
        return found

    def positions(self) -> Sequence[BrokerPosition]:
        return [
            BrokerPosition(
                self.account,
                InstrumentSpec(p.symbol),
                decimal(p.qty, "qty"),
                decimal(p.avg_entry_price, "avg_entry_price"),
            )
            for p in self._api().get_all_positions()
        ]

    def account_values(self) -> dict[str, Decimal]:
        account = self._api().get_account()
        return {
            "NetLiquidation": decimal(account.equity, "equity"),
            "TotalCashValue": decimal(account.cash, "cash"),
        }

    def latest_price(self, instrument: InstrumentSpec) -> MarkEvent | None:
        """Alpaca's last trade for the symbol (market-data API), as a mark; None when it has
        none for the symbol. An HTTP or authentication error is raised."""
        return market_data.latest_mark(self._data_client(), self.name, instrument)

    def historical_bars(
        self,
        instrument: InstrumentSpec,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        bar_size: str = "1 day",
    ) -> list[Bar]:
        """Bars from Alpaca's market-data API; an empty answer is an error, not an empty list."""
        return market_data.bars(self._data_client(), instrument, start, end, bar_size)

    def _data_client(self) -> StockHistoricalDataClient:
        return StockHistoricalDataClient(self._key, self._secret, url_override=self.data_url)

    def on_trade_update(self, update: TradeUpdate | dict[str, Any]) -> None:
        """Map one trade update (stream message) to canonical events."""
        if isinstance(update, dict):
            update = TradeUpdate(**update)
        order = update.order
        client_order_id = self._ours.get(str(order.id), order.client_order_id)
        request = self._orders.get(client_order_id)
        event = str(update.event.value if hasattr(update.event, "value") else update.event)
        if event in ("fill", "partial_fill") and update.execution_id is not None:
            spec = request.instrument if request else InstrumentSpec(str(order.symbol))
            exec_id = str(update.execution_id)
            moment = utc(update.timestamp)
            self.emit(
                ExecutionEvent(
                    BROKER,
                    self.account,
                    exec_id,
                    spec,
                    "BUY" if order.side == OrderSide.BUY else "SELL",
                    decimal(update.qty, "qty"),
                    decimal(update.price, "price"),
                    moment,
                    client_order_id=client_order_id,
                    broker_order_id=str(order.id),
                    strategy=request.strategy if request else None,
                )
            )
            self.emit(CommissionEvent(BROKER, exec_id, Decimal(0)))
            self._last_fill = max(self._last_fill or moment, moment)
        filled = decimal(order.filled_qty or 0, "filled_qty")
        total = decimal(order.qty or 0, "qty")
        self.emit(
            OrderStatusEvent(
                BROKER,
                STATUS.get(str(order.status.value), str(order.status.value)),
                filled,
                max(total - filled, Decimal(0)),
                avg_fill_price=decimal(order.filled_avg_price, "filled_avg_price")
                if order.filled_avg_price
                else None,
                client_order_id=client_order_id,
                broker_order_id=str(order.id),
                time=utc(update.timestamp),
            )
        )

    # ---- catching up after a gap in the stream --------------------------------------------
    def catch_up(self, since: datetime | None = None) -> int:
        """Emit the fills Alpaca lists since `since` (default: the last fill recorded), with
        the order states they leave, and the fees it reports; each is stored once. The number
        of fills listed (`alpaca_activities`)."""
        return activities.catch_up(self, since)
