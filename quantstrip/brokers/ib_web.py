"""Interactive Brokers Client Portal Web API through ibind, with OAuth 1.0a from settings.

The session is kept alive (`tickle` every `keepalive_s`) and re-established when IB drops it
(`ib_web_session.py`); once it is back, orders and fills are polled again. Order statuses come
from polling `iserver/account/orders` (`poll_orders`): each change of one of our orders becomes
an OrderStatusEvent.

The Web API asks confirmation questions before some orders ("no market data", "price far from
the last trade"...). Which ones Quantstrip answers yes to is explicit (`DEFAULT_ANSWERS`, or the
caller's own mapping); any other question refuses the order instead of guessing.
Fills come from polling `iserver/account/trades` (`poll_executions`): each becomes a canonical
ExecutionEvent, and the database stores each IB exec id once however often it is polled.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

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
)
from quantstrip.brokers.ib_web_session import KeepAlive
from quantstrip.errors import ConfigError, QuantstripError

os.environ.setdefault("IBIND_LOG_TO_FILE", "False")
os.environ.setdefault("IBIND_LOG_TO_CONSOLE", "False")

from ibind import IbkrClient, QuestionType
from ibind import OrderRequest as WebOrder

BROKER = "ib"
DEFAULT_ANSWERS: dict[QuestionType | str, bool] = {
    QuestionType.MISSING_MARKET_DATA: True,
    QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True,
    QuestionType.ORDER_VALUE_LIMIT: True,
    QuestionType.STOP_ORDER_RISKS: True,
    QuestionType.MARKET_ORDER_CONFIRMATION: True,
}
ORDER_TYPES = {"MKT": "MKT", "LMT": "LMT", "STP": "STP", "STP LMT": "STOP_LIMIT"}


class WebApiError(QuantstripError):
    """The Client Portal Web API refused a request or answered something unusable."""


def oauth_config_from_settings() -> Any:
    """ibind's OAuth 1.0a configuration from `brokers.ib_web` settings and encrypted secrets."""
    from ibind.oauth.oauth1a import OAuth1aConfig

    from quantstrip import settings

    web = settings.platform().brokers.ib_web
    needed = {
        "access_token_secret": "brokers.ib_web.access_token_secret",
        "dh_prime": "brokers.ib_web.dh_prime",
        "encryption_key": "brokers.ib_web.encryption_key",
        "signature_key": "brokers.ib_web.signature_key",
    }
    values: dict[str, str] = {}
    for field, secret_name in needed.items():
        secret = settings.get_secret(secret_name)
        if secret is None:
            raise ConfigError(
                f"{secret_name}: secret not set (quantstrip secrets set {secret_name})"
            )
        values[field] = secret.reveal()
    if not web.consumer_key or not web.access_token:
        raise ConfigError("brokers.ib_web.consumer_key and access_token must be set for OAuth")
    return OAuth1aConfig(
        oauth_rest_url=web.base_url,
        access_token=web.access_token,
        consumer_key=web.consumer_key,
        realm=web.realm,
        init_brokerage_session=True,
        **values,
    )


class IbWebBroker(Broker):
    name = BROKER

    def __init__(
        self,
        *,
        url: str | None = None,
        account_id: str | None = None,
        use_oauth: bool | None = None,
        answers: dict[QuestionType | str, bool] | None = None,
        client: IbkrClient | None = None,
        keepalive_s: float | None = 60.0,
    ) -> None:
        super().__init__()
        from quantstrip import settings

        web = settings.platform().brokers.ib_web
        self.url = url or web.base_url
        self.account_id = account_id or web.account_id
        self.use_oauth = web.use_oauth if use_oauth is None else use_oauth
        self.answers = dict(DEFAULT_ANSWERS if answers is None else answers)
        self.client = client
        self.conids: dict[str, str] = {}
        self._orders: dict[str, OrderRequest] = {}
        self._broker_ids: dict[str, str] = {}
        self._ours: dict[str, str] = {}  # IB order id -> our client order id
        self._last: dict[str, tuple[str, Decimal]] = {}  # our id -> (status, filled) last seen
        self.keepalive_s = keepalive_s
        self.keepalive: KeepAlive | None = None

    def connect(self) -> None:
        if self.client is not None:
            return
        self._open()
        if self.keepalive_s:
            self.keepalive = KeepAlive(
                self.client,
                use_oauth=self.use_oauth,
                interval_s=self.keepalive_s,
                on_restored=self._restored,
            )
            self.keepalive.start()

    def _restored(self) -> None:
        """The session is back: what happened meanwhile is fetched."""
        self.poll_orders()
        self.poll_executions()

    def _open(self) -> None:
        try:
            self.client = IbkrClient(
                url=self.url,
                account_id=self.account_id,
                use_oauth=self.use_oauth,
                # Under OAuth ibind takes its URL from the OAuth configuration, not `url`.
                oauth_config=(
                    oauth_config_from_settings().copy(oauth_rest_url=self.url)
                    if self.use_oauth
                    else None
                ),
                auto_register_shutdown=False,
                max_retries=2,
                timeout=15,
            )
        except (ConfigError, WebApiError):
            raise
        except Exception as exc:  # ibind's ExternalBrokerError, RuntimeError on a bad LST...
            how = "OAuth handshake" if self.use_oauth else "connection"
            raise WebApiError(f"Web API {how} with {self.url} failed: {exc}") from exc

    def disconnect(self) -> None:
        if self.keepalive is not None:
            self.keepalive.stop()
            self.keepalive = None
        if self.client is not None:
            self.client.close()
            self.client = None

    def _api(self) -> IbkrClient:
        if self.client is None:
            raise WebApiError("not connected: call connect() first")
        return self.client

    def _conid(self, spec: InstrumentSpec) -> str:
        conid = spec.broker_contract_id or self.conids.get(spec.symbol)
        if not conid:
            raise WebApiError(f"{spec.symbol}: the Web API needs its IB conid (broker_contract_id)")
        return str(conid)

    def _web_order(self, request: OrderRequest, parent: str | None = None) -> WebOrder:
        return WebOrder(
            conid=self._conid(request.instrument),
            side=request.side,
            quantity=float(request.qty),
            order_type=ORDER_TYPES[request.order_type],
            acct_id=self.account_id,
            price=float(request.limit_price) if request.limit_price is not None else None,
            aux_price=float(request.stop_price) if request.stop_price is not None else None,
            coid=request.client_order_id,
            parent_id=parent,
            tif=request.tif,
        )

    def _place(self, requests: list[OrderRequest], web_orders: list[WebOrder]) -> list[str]:
        result = self._api().place_order(web_orders, self.answers, account_id=self.account_id)
        replies = result.data if isinstance(result.data, list) else [result.data]
        ids = [str(r.get("order_id")) for r in replies if isinstance(r, dict) and r.get("order_id")]
        if len(ids) != len(requests):
            raise WebApiError(f"order not accepted: {replies!r}")
        for request, broker_id in zip(requests, ids, strict=True):
            self._orders[request.client_order_id] = request
            self._broker_ids[request.client_order_id] = broker_id
            self._ours[broker_id] = request.client_order_id
            self.emit(OrderPlacedEvent(BROKER, self.account_id, request, broker_order_id=broker_id))
        return [r.client_order_id for r in requests]

    def submit(self, request: OrderRequest) -> str:
        return self._place([request], [self._web_order(request)])[0]

    def submit_bracket(self, bracket: BracketRequest) -> tuple[str, str, str]:
        parent, take, stop = bracket.legs()
        orders = [
            self._web_order(parent),
            self._web_order(take, parent.client_order_id),
            self._web_order(stop, parent.client_order_id),
        ]
        ids = self._place([parent, take, stop], orders)
        return ids[0], ids[1], ids[2]

    def cancel(self, client_order_id: str) -> None:
        broker_id = self._broker_ids.get(client_order_id)
        if broker_id is None:
            raise WebApiError(f"unknown order {client_order_id}")
        self._api().cancel_order(broker_id, account_id=self.account_id)

    def modify(
        self,
        client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None:
        request = self._orders.get(client_order_id)
        if request is None:
            raise WebApiError(f"unknown order {client_order_id}")
        changed = OrderRequest(
            request.instrument,
            request.side,
            qty or request.qty,
            request.order_type,
            limit_price=limit_price or request.limit_price,
            stop_price=stop_price or request.stop_price,
            tif=request.tif,
            strategy=request.strategy,
            client_order_id=request.client_order_id,
        )
        self._api().modify_order(
            self._broker_ids[client_order_id],
            self._web_order(changed),
            self.answers,
            account_id=self.account_id,
        )
        self._orders[client_order_id] = changed

    def open_orders(self) -> Sequence[OrderRequest]:
        return list(self._orders.values())

    def positions(self) -> Sequence[BrokerPosition]:
        rows = self._api().positions(account_id=self.account_id).data or []
        out = []
        for row in rows:
            symbol = str(row.get("contractDesc") or row.get("ticker") or row.get("conid"))
            self.conids[symbol] = str(row.get("conid"))
            spec = InstrumentSpec(symbol, broker_contract_id=str(row.get("conid")))
            out.append(
                BrokerPosition(
                    str(row.get("acctId", self.account_id)),
                    spec,
                    decimal(row.get("position", 0), "position"),
                    decimal(row.get("avgCost", 0), "avgCost"),
                )
            )
        return out

    def account_values(self) -> dict[str, Decimal]:
        data = self._api().portfolio_summary(account_id=self.account_id).data or {}
        values = {}
        for key, name in (
            ("netliquidation", "NetLiquidation"),
            ("totalcashvalue", "TotalCashValue"),
        ):
            entry = data.get(key) or {}
            if "amount" in entry:
                values[name] = decimal(entry["amount"], key)
        return values

    def historical_bars(
        self,
        instrument: InstrumentSpec,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        bar_size: str = "1d",
    ) -> list[Bar]:
        data = (
            self._api()
            .marketdata_history_by_conid(
                self._conid(instrument), bar=bar_size, period="1y", outside_rth=False
            )
            .data
        )
        if not isinstance(data, dict) or "data" not in data:
            raise WebApiError(f"history for {instrument.symbol} failed: {data!r}")
        bars = [
            Bar(
                datetime.fromtimestamp(b["t"] / 1000, UTC),
                b["o"],
                b["h"],
                b["l"],
                b["c"],
                b.get("v", 0),
            )
            for b in data["data"]
        ]
        return [
            b for b in bars if (start is None or b.time >= start) and (end is None or b.time <= end)
        ]

    def poll_orders(self) -> int:
        """Emit a status event for each of our orders whose status or fill changed since the
        last poll (the Web API lists the day's live and finished orders); how many changed."""
        data = self._api().live_orders(force=False, account_id=self.account_id).data or {}
        changed = 0
        for row in data.get("orders", []) if isinstance(data, dict) else []:
            broker_id = str(row.get("orderId"))
            ours = self._ours.get(broker_id) or row.get("order_ref") or None
            if ours is None:
                continue
            status = str(row.get("status") or "")
            filled = decimal(row.get("filledQuantity") or 0, "filledQuantity")
            if self._last.get(ours) == (status, filled):
                continue
            self._last[ours] = (status, filled)
            average = row.get("avgPrice")
            self.emit(
                OrderStatusEvent(
                    BROKER,
                    status,
                    filled,
                    decimal(row.get("remainingQuantity") or 0, "remainingQuantity"),
                    decimal(average, "avgPrice") if average not in (None, "", 0) else None,
                    client_order_id=ours,
                    broker_order_id=broker_id,
                )
            )
            changed += 1
        return changed

    def poll_executions(self, days: int = 1) -> int:
        """Emit every fill the Web API reports (the database dedupes by exec id); returns count."""
        trades = self._api().trades(days=str(days), account_id=self.account_id).data or []
        for trade in trades:
            exec_id = str(trade["execution_id"])
            side = "BUY" if str(trade.get("side", "")).upper().startswith("B") else "SELL"
            spec = InstrumentSpec(
                str(trade["symbol"]), broker_contract_id=str(trade.get("conid") or "")
            )
            self.emit(
                ExecutionEvent(
                    BROKER,
                    str(trade.get("account", self.account_id)),
                    exec_id,
                    spec,
                    side,
                    decimal(trade["size"], "size"),
                    decimal(trade["price"], "price"),
                    datetime.fromtimestamp(int(trade["trade_time_r"]) / 1000, UTC),
                    client_order_id=trade.get("order_ref") or None,
                )
            )
            if trade.get("commission") not in (None, ""):
                self.emit(
                    CommissionEvent(BROKER, exec_id, decimal(trade["commission"], "commission"))
                )
        return len(trades)
