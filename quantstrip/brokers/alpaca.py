"""Alpaca through alpaca-py: the same canonical events as every other broker.

Orders go through the REST TradingClient (paper by default). Fills arrive as trade updates
(`fill` / `partial_fill` events of the trading stream, `start_trade_updates()` runs alpaca-py's
TradingStream in a thread, reconnecting by itself); each carries Alpaca's execution id, which
becomes the canonical exec id, so a replayed or duplicated update is stored once. Alpaca charges
no commission on US equities: a zero CommissionEvent is emitted so the fill is complete. Bars
come from the market-data API (StockHistoricalDataClient). Every URL can be overridden, which is
how the tests point the unmodified SDK at servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)
from alpaca.trading.stream import TradingStream

from quantstrip.brokers.base import Broker
from quantstrip.brokers.events import (
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
    utc,
)
from quantstrip.errors import ConfigError, NotFoundError

log = logging.getLogger(__name__)

BROKER = "alpaca"
BAR_SIZES = {
    "1 min": TimeFrame(1, TimeFrameUnit.Minute),
    "5 mins": TimeFrame(5, TimeFrameUnit.Minute),
    "15 mins": TimeFrame(15, TimeFrameUnit.Minute),
    "30 mins": TimeFrame(30, TimeFrameUnit.Minute),
    "1 hour": TimeFrame(1, TimeFrameUnit.Hour),
    "1 day": TimeFrame(1, TimeFrameUnit.Day),
    "1 week": TimeFrame(1, TimeFrameUnit.Week),
}
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


def _tif(tif: str) -> TimeInForce:
    return TimeInForce.GTC if tif.upper() == "GTC" else TimeInForce.DAY


def _side(side: str) -> OrderSide:
    return OrderSide.BUY if side == "BUY" else OrderSide.SELL


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
        self._stream: TradingStream | None = None
        self._stream_thread: threading.Thread | None = None
        self._orders: dict[str, OrderRequest] = {}
        self._alpaca_ids: dict[str, str] = {}

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
        """Stream fills and order updates into the canonical events, in a background thread.

        alpaca-py's TradingStream authenticates, listens to `trade_updates` and reconnects with
        backoff after a drop; updates replayed after a reconnect are stored once (by execution
        id). Events are delivered under the broker's emit lock, so a recorder sharing this
        broker with the client's own thread never sees two transactions at once.
        """
        if self._stream_thread is not None and self._stream_thread.is_alive():
            return
        if not self._key or not self._secret:
            raise ConfigError("Alpaca trade updates need an API key id and secret key")
        stream = TradingStream(
            self._key, self._secret, paper=self.paper, url_override=self.stream_url
        )

        async def deliver(update: TradeUpdate) -> None:
            try:
                self.on_trade_update(update)
            except Exception:  # one bad message must not stop the stream
                log.exception("Alpaca trade update could not be mapped: %r", update)

        stream.subscribe_trade_updates(deliver)
        self._stream = stream
        self._stream_thread = threading.Thread(
            target=stream.run, name="alpaca-trade-updates", daemon=True
        )
        self._stream_thread.start()

    def stop_trade_updates(self, timeout: float = 10.0) -> None:
        stream, thread = self._stream, self._stream_thread
        self._stream, self._stream_thread = None, None
        if stream is None or thread is None:
            return
        for _ in range(int(timeout * 20)):  # the stream's loop exists once run() has started
            if stream._loop is not None or not thread.is_alive():
                break
            thread.join(0.05)
        if stream._loop is not None and stream._loop.is_running():
            # stop_ws() alone is noticed only when a receive times out (5 s); closing the socket
            # as well ends the receive at once and the SDK's loop sees it should not reconnect.
            async def stop() -> None:
                await stream.stop_ws()
                await stream.close()

            asyncio.run_coroutine_threadsafe(stop(), stream._loop).result(timeout)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("Alpaca trade-update stream did not stop within %.0f s", timeout)

    def _api(self) -> TradingClient:
        if self.client is None:
            raise ConfigError("not connected: call connect() first")
        return self.client

    def _request(self, request: OrderRequest, **extra: Any) -> Any:
        common = {
            "symbol": request.instrument.symbol,
            "qty": float(request.qty),
            "side": _side(request.side),
            "time_in_force": _tif(request.tif),
            "client_order_id": request.client_order_id,
            **extra,
        }
        if request.order_type == "MKT":
            return MarketOrderRequest(**common)
        if request.order_type == "LMT":
            return LimitOrderRequest(limit_price=float(request.limit_price or 0), **common)
        if request.order_type == "STP":
            return StopOrderRequest(stop_price=float(request.stop_price or 0), **common)
        return StopLimitOrderRequest(
            limit_price=float(request.limit_price or 0),
            stop_price=float(request.stop_price or 0),
            **common,
        )

    def _send(self, request: OrderRequest, alpaca_request: Any) -> str:
        order = self._api().submit_order(alpaca_request)
        self._orders[request.client_order_id] = request
        self._alpaca_ids[request.client_order_id] = str(order.id)
        self.emit(OrderPlacedEvent(BROKER, self.account, request, broker_order_id=str(order.id)))
        self.emit(
            OrderStatusEvent(
                BROKER,
                STATUS.get(str(order.status.value), str(order.status.value)),
                decimal(order.filled_qty or 0, "filled_qty"),
                request.qty - decimal(order.filled_qty or 0, "filled_qty"),
                client_order_id=request.client_order_id,
                broker_order_id=str(order.id),
            )
        )
        return request.client_order_id

    def submit(self, request: OrderRequest) -> str:
        return self._send(request, self._request(request))

    def submit_bracket(self, bracket: BracketRequest) -> tuple[str, str, str]:
        parent, take, stop = bracket.legs()
        self._send(
            parent,
            self._request(
                parent,
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=float(bracket.take_profit_price)),
                stop_loss=StopLossRequest(stop_price=float(bracket.stop_loss_price)),
            ),
        )
        # Alpaca creates the legs server-side; their fills arrive as trade updates of the legs.
        self._orders[take.client_order_id] = take
        self._orders[stop.client_order_id] = stop
        return parent.client_order_id, take.client_order_id, stop.client_order_id

    def cancel(self, client_order_id: str) -> None:
        self._api().cancel_order_by_id(self._alpaca_ids[client_order_id])

    def modify(
        self,
        client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None:
        from alpaca.trading.requests import ReplaceOrderRequest

        self._api().replace_order_by_id(
            self._alpaca_ids[client_order_id],
            ReplaceOrderRequest(
                qty=int(qty) if qty is not None else None,
                limit_price=float(limit_price) if limit_price is not None else None,
                stop_price=float(stop_price) if stop_price is not None else None,
            ),
        )

    def open_orders(self) -> Sequence[OrderRequest]:
        return list(self._orders.values())

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

    def historical_bars(
        self,
        instrument: InstrumentSpec,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        bar_size: str = "1 day",
    ) -> list[Bar]:
        """Bars from Alpaca's market-data API; an empty answer is an error, not an empty list."""
        timeframe = BAR_SIZES.get(bar_size)
        if timeframe is None:
            raise ConfigError(f"bar_size: expected one of {sorted(BAR_SIZES)}, got {bar_size!r}")
        client = StockHistoricalDataClient(self._key, self._secret, url_override=self.data_url)
        response = client.get_stock_bars(
            StockBarsRequest(
                symbol_or_symbols=instrument.symbol, timeframe=timeframe, start=start, end=end
            )
        )
        rows = response.data.get(instrument.symbol, []) if hasattr(response, "data") else []
        if not rows:
            raise NotFoundError(
                f"Alpaca returned no {bar_size} bars for {instrument.symbol} "
                f"between {start} and {end}"
            )
        return [
            Bar(
                utc(row.timestamp),
                decimal(row.open, "open"),
                decimal(row.high, "high"),
                decimal(row.low, "low"),
                decimal(row.close, "close"),
                decimal(row.volume, "volume"),
            )
            for row in rows
        ]

    def on_trade_update(self, update: TradeUpdate | dict[str, Any]) -> None:
        """Map one trade update (stream message) to canonical events."""
        if isinstance(update, dict):
            update = TradeUpdate(**update)
        order = update.order
        client_order_id = order.client_order_id
        request = self._orders.get(client_order_id)
        event = str(update.event.value if hasattr(update.event, "value") else update.event)
        if event in ("fill", "partial_fill") and update.execution_id is not None:
            spec = request.instrument if request else InstrumentSpec(str(order.symbol))
            exec_id = str(update.execution_id)
            self.emit(
                ExecutionEvent(
                    BROKER,
                    self.account,
                    exec_id,
                    spec,
                    "BUY" if order.side == OrderSide.BUY else "SELL",
                    decimal(update.qty, "qty"),
                    decimal(update.price, "price"),
                    utc(update.timestamp),
                    client_order_id=client_order_id,
                    broker_order_id=str(order.id),
                    strategy=request.strategy if request else None,
                )
            )
            self.emit(CommissionEvent(BROKER, exec_id, Decimal(0)))
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
