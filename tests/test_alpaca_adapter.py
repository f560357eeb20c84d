"""Alpaca through alpaca-py against a local REST stand-in; trade updates into the database."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from alpaca.common.exceptions import APIError
from support.alpaca import AlpacaTradingStandIn
from support.http_stand_in import QuietHandler, loopback_server, serving

from quantstrip.brokers import BracketRequest, InstrumentSpec, OrderRequest, Recorder
from quantstrip.brokers.alpaca import AlpacaBroker
from quantstrip.db.handler import Database
from quantstrip.errors import ConfigError, NotFoundError

NOW = "2025-03-04T15:02:15.123456Z"
E1 = "00000000-0000-4000-8000-000000000001"  # Alpaca's execution ids are UUIDs
E2 = "00000000-0000-4000-8000-000000000002"


def order_json(
    client_order_id: str,
    status: str,
    filled: str = "0",
    avg: str | None = None,
    order_id: str | None = None,
) -> dict:
    return {
        "id": order_id or str(uuid.uuid4()),
        "client_order_id": client_order_id,
        "created_at": NOW,
        "updated_at": NOW,
        "submitted_at": NOW,
        "asset_id": str(uuid.uuid4()),
        "symbol": "AAPL",
        "asset_class": "us_equity",
        "qty": "10",
        "filled_qty": filled,
        "filled_avg_price": avg,
        "order_class": "simple",
        "order_type": "market",
        "type": "market",
        "side": "buy",
        "time_in_force": "day",
        "status": status,
        "extended_hours": False,
    }


class AlpacaStandIn:
    def __init__(self) -> None:
        self.posted: list[dict] = []
        stand_in = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.posted.append(
                    {"path": self.path, "body": body, "key": self.headers.get("APCA-API-KEY-ID")}
                )
                self.send_json(order_json(body["client_order_id"], "accepted"))

        self.server = loopback_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def alpaca() -> Iterator[AlpacaStandIn]:
    stand_in = AlpacaStandIn()
    with serving(stand_in.server):
        yield stand_in


def test_order_submitted_over_rest_and_fills_from_trade_updates_stored_once(alpaca, tmp_path: Path):
    broker = AlpacaBroker(api_key="PKTEST", secret_key="secret", url_override=alpaca.url)
    broker.connect()
    with Database(tmp_path / "q.db") as db:
        broker.subscribe(Recorder(db))
        oid = broker.submit(OrderRequest(InstrumentSpec("AAPL"), "BUY", 10, strategy="alp"))
        assert alpaca.posted[0]["path"] == "/v2/orders"
        assert alpaca.posted[0]["body"]["client_order_id"] == oid
        assert alpaca.posted[0]["key"] == "PKTEST"
        alpaca_id = db.order_by_client_id(oid).broker_order_id
        partial = {
            "event": "partial_fill",
            "execution_id": str(uuid.uuid4()),
            "timestamp": NOW,
            "price": "198.95",
            "qty": "4",
            "position_qty": "4",
            "order": order_json(oid, "partially_filled", "4", "198.95", alpaca_id),
        }
        fill = {
            "event": "fill",
            "execution_id": str(uuid.uuid4()),
            "timestamp": NOW,
            "price": "199.05",
            "qty": "6",
            "position_qty": "10",
            "order": order_json(oid, "filled", "10", "199.01", alpaca_id),
        }
        for update in (partial, fill, fill, partial):  # duplicates and a late replay
            broker.on_trade_update(update)
        rows = db.query("SELECT strategy, qty, price FROM v_executions ORDER BY price")
        assert [tuple(r) for r in rows] == [("alp", 4.0, 198.95), ("alp", 6.0, 199.05)]
        assert db.order_by_client_id(oid).status == "Filled"
        assert db.positions()[0].qty == 10


class TradeUpdateServer:
    """Alpaca's trade-update websocket on 127.0.0.1, as its documentation describes it.

    Authenticates the client, acknowledges `listen`, then plays one script per connection; a
    script ending with "drop" closes the socket without a goodbye, as a network failure would.
    """

    def __init__(self, scripts: list[list[dict | str]], key: str, secret: str) -> None:
        self.scripts = scripts
        self.key, self.secret = key, secret
        self.connections = 0
        self.auth_failures = 0
        self.ready = threading.Event()
        self.done = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    async def handle(self, ws) -> None:
        auth = json.loads(await ws.recv())
        data = auth.get("data", {})
        if data.get("key_id") != self.key or data.get("secret_key") != self.secret:
            self.auth_failures += 1
            await ws.send(
                json.dumps({"stream": "authorization", "data": {"status": "unauthorized"}})
            )
            return
        await ws.send(
            json.dumps(
                {
                    "stream": "authorization",
                    "data": {"status": "authorized", "action": "authenticate"},
                }
            )
        )
        listen = json.loads(await ws.recv())
        assert listen == {"action": "listen", "data": {"streams": ["trade_updates"]}}
        await ws.send(json.dumps({"stream": "listening", "data": {"streams": ["trade_updates"]}}))
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        for step in script:
            if step == "drop":
                ws.transport.abort()  # no close frame: the client sees a broken connection
                return
            await ws.send(json.dumps({"stream": "trade_updates", "data": step}))
        self.done.set()
        await asyncio.Event().wait()  # keep the connection open until the server stops

    def run(self) -> None:
        from websockets.asyncio.server import serve

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop = asyncio.Event()
            async with serve(self.handle, "127.0.0.1", 0) as server:
                self.port = next(iter(server.sockets)).getsockname()[1]
                self.ready.set()
                await self.stop.wait()

        asyncio.run(main())

    def shutdown(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)


def _update(event: str, exec_id: str, qty: str, price: str, order: dict) -> dict:
    return {
        "event": event,
        "execution_id": exec_id,
        "timestamp": NOW,
        "price": price,
        "qty": qty,
        "position_qty": qty,
        "order": order,
    }


def test_trade_updates_over_the_real_stream_survive_a_drop_and_replay(alpaca, tmp_path: Path):
    broker = AlpacaBroker(api_key="PKTEST", secret_key="s3cret", url_override=alpaca.url)
    broker.connect()
    with Database(tmp_path / "q.db") as db:
        broker.subscribe(Recorder(db))
        oid = broker.submit(OrderRequest(InstrumentSpec("AAPL"), "BUY", 10, strategy="alp"))
        alpaca_id = db.order_by_client_id(oid).broker_order_id
        first = _update(
            "partial_fill",
            E1,
            "4",
            "198.95",
            order_json(oid, "partially_filled", "4", "198.95", alpaca_id),
        )
        second = _update(
            "fill", E2, "6", "199.05", order_json(oid, "filled", "10", "199.01", alpaca_id)
        )
        # Connection 1: the partial fill, then the network drops. Connection 2 (after the
        # SDK's own reconnect): the partial fill replayed, the final fill, and a duplicate.
        server = TradeUpdateServer([[first, "drop"], [first, second, second]], "PKTEST", "s3cret")
        threading.Thread(target=server.run, daemon=True).start()
        assert server.ready.wait(10)
        broker.stream_url = f"ws://127.0.0.1:{server.port}/stream"
        broker.start_trade_updates()
        try:
            assert server.done.wait(30), "the stream never reconnected"
            for _ in range(200):  # bounded: the last update is being recorded
                if db.order_by_client_id(oid).status == "Filled":
                    break
                threading.Event().wait(0.05)
        finally:
            broker.disconnect()
            server.shutdown()
        assert server.connections == 2 and server.auth_failures == 0
        rows = db.query("SELECT exec_id, qty, price FROM v_executions ORDER BY exec_id")
        assert [tuple(r) for r in rows] == [(E1, 4.0, 198.95), (E2, 6.0, 199.05)]
        assert db.order_by_client_id(oid).status == "Filled"
        assert db.positions()[0].qty == 10


class BarsStandIn:
    """Alpaca's market-data endpoint: two pages of daily bars for AAPL, nothing for others."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        stand_in = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                stand_in.requests.append({"path": url.path, **query})
                if self.headers.get("APCA-API-KEY-ID") != "PKTEST":
                    self.send_json({"message": "forbidden."}, 403)
                    return
                if query.get("symbols") != "AAPL":
                    self.send_json({"bars": {}, "next_page_token": None})
                    return
                page = query.get("page_token")
                bar = {
                    "o": 100.0,
                    "h": 102.5,
                    "l": 99.5,
                    "c": 101.25,
                    "v": 12000,
                    "n": 40,
                    "vw": 101,
                }
                if page is None:
                    body = {
                        "bars": {"AAPL": [{"t": "2025-01-02T05:00:00Z", **bar}]},
                        "next_page_token": "p2",
                    }
                else:
                    body = {
                        "bars": {"AAPL": [{"t": "2025-01-03T05:00:00Z", **bar, "c": 102.0}]},
                        "next_page_token": None,
                    }
                self.send_json(body)

        self.server = loopback_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def bars_server() -> Iterator[BarsStandIn]:
    stand_in = BarsStandIn()
    with serving(stand_in.server):
        yield stand_in


def test_daily_bars_come_from_the_market_data_api_across_pages(bars_server) -> None:
    broker = AlpacaBroker(api_key="PKTEST", secret_key="s", data_url=bars_server.url)
    bars = broker.historical_bars(
        InstrumentSpec("AAPL"), start=datetime(2025, 1, 1, tzinfo=UTC), bar_size="1 day"
    )
    assert [b.close for b in bars] == [Decimal("101.25"), Decimal("102")]
    assert bars[0].time == datetime(2025, 1, 2, 5, tzinfo=UTC)
    assert bars_server.requests[0]["path"] == "/v2/stocks/bars"
    assert bars_server.requests[0]["timeframe"] == "1Day"
    assert len(bars_server.requests) == 2  # the second page was fetched


def test_bars_errors_are_raised_not_returned_empty(bars_server) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    broker = AlpacaBroker(api_key="PKTEST", secret_key="s", data_url=bars_server.url)
    with pytest.raises(NotFoundError, match="no 1 day bars for MSFT"):
        broker.historical_bars(InstrumentSpec("MSFT"), start=start)
    with pytest.raises(ConfigError, match="bar_size"):
        broker.historical_bars(InstrumentSpec("AAPL"), start=start, bar_size="3 days")
    wrong_key = AlpacaBroker(api_key="PKWRONG", secret_key="s", data_url=bars_server.url)
    with pytest.raises(APIError, match="forbidden"):
        wrong_key.historical_bars(InstrumentSpec("AAPL"), start=start)


# ---- order identity at Alpaca: bracket legs, replacements, open orders, fees, gaps ----------
@pytest.fixture
def trading() -> Iterator[AlpacaTradingStandIn]:
    stand_in = AlpacaTradingStandIn()
    with serving(stand_in.server):
        yield stand_in


def _broker(trading: AlpacaTradingStandIn, db: Database, **kw: object) -> AlpacaBroker:
    broker = AlpacaBroker(api_key="PKTEST", secret_key="s3cret", url_override=trading.url, **kw)
    broker.connect()
    broker.subscribe(Recorder(db))
    return broker


def test_bracket_exit_fills_are_attributed_to_the_strategy(trading, tmp_path: Path) -> None:
    with Database(tmp_path / "q.db") as db:
        broker = _broker(trading, db)
        entry = OrderRequest(
            InstrumentSpec("AAPL"), "BUY", 10, "LMT", limit_price="99", strategy="brk"
        )
        parent, take, _stop = broker.submit_bracket(BracketRequest(entry, "105", "95"))
        parent_id = db.order_by_client_id(parent).broker_order_id
        take_id = db.order_by_client_id(take).broker_order_id
        broker.on_trade_update(trading.fill(parent_id, 10, "99", "2025-03-04T15:00:00Z"))
        broker.on_trade_update(trading.fill(take_id, 10, "105", "2025-03-04T16:00:00Z"))
        rows = db.query("SELECT strategy, side, qty, price FROM v_executions ORDER BY price")
        assert [tuple(r) for r in rows] == [
            ("brk", "BUY", 10.0, 99.0),
            ("brk", "SELL", 10.0, 105.0),
        ]
        assert db.order_by_client_id(take).status == "Filled"
        assert db.positions() == []


def test_cancel_after_modify_targets_the_live_replacement(trading, tmp_path: Path) -> None:
    with Database(tmp_path / "q.db") as db:
        broker = _broker(trading, db)
        oid = broker.submit(
            OrderRequest(InstrumentSpec("AAPL"), "BUY", 10, "LMT", limit_price="99")
        )
        first = db.order_by_client_id(oid).broker_order_id
        broker.modify(oid, limit_price=Decimal("98.5"))
        assert db.order_by_client_id(oid).limit_price_micros == 98_500_000
        broker.cancel(oid)  # Alpaca refuses to cancel the replaced order (422)
        cancelled = [path for method, path in trading.requests if method == "DELETE"]
        assert len(cancelled) == 1 and first not in cancelled[0]
        assert trading.orders[cancelled[0].rsplit("/", 1)[-1]]["status"] == "canceled"


def test_open_orders_lists_only_the_open_ones(trading, tmp_path: Path) -> None:
    with Database(tmp_path / "q.db") as db:
        broker = _broker(trading, db)
        spec = InstrumentSpec("AAPL")
        resting = broker.submit(OrderRequest(spec, "BUY", 10, "LMT", limit_price="90"))
        filled = broker.submit(OrderRequest(spec, "BUY", 10))
        cancelled = broker.submit(OrderRequest(spec, "BUY", 10, "LMT", limit_price="91"))
        broker.on_trade_update(
            trading.fill(db.order_by_client_id(filled).broker_order_id, 10, "100", NOW)
        )
        broker.cancel(cancelled)
        assert [o.client_order_id for o in broker.open_orders()] == [resting]


def test_fees_are_recorded_where_alpaca_reports_them(trading, tmp_path: Path) -> None:
    with Database(tmp_path / "q.db") as db:
        broker = _broker(trading, db)
        trading.fee("FEE", "-0.02", "AAPL", "2025-03-04T20:00:00Z")
        trading.fee("CFEE", "-1.25", "BTCUSD", "2025-03-04T20:00:00Z")
        broker.catch_up(since=datetime(2025, 3, 4, tzinfo=UTC))
        broker.catch_up(since=datetime(2025, 3, 4, tzinfo=UTC))  # stored once
        rows = db.query("SELECT kind, amount, symbol FROM v_cash_events ORDER BY amount")
        assert [tuple(r) for r in rows] == [("fee", -1.25, "BTCUSD"), ("fee", -0.02, "AAPL")]


def test_a_fill_made_while_the_stream_was_down_is_caught_up_once(trading, tmp_path: Path):
    with Database(tmp_path / "q.db") as db:
        broker = _broker(trading, db)
        oid = broker.submit(OrderRequest(InstrumentSpec("AAPL"), "BUY", 10, strategy="gap"))
        alpaca_id = db.order_by_client_id(oid).broker_order_id
        first = trading.fill(alpaca_id, 4, "198.95", "2025-03-04T15:02:15Z")
        # Connection 1 carries the first fill, then drops; the second fill happens while the
        # stream is down and connection 2 never mentions it: only the activities list it.
        server = TradeUpdateServer([[first, "drop"], []], "PKTEST", "s3cret")
        threading.Thread(target=server.run, daemon=True).start()
        assert server.ready.wait(10)
        broker.stream_url = f"ws://127.0.0.1:{server.port}/stream"
        trading.fill(alpaca_id, 6, "199.05", "2025-03-04T15:03:00Z")
        broker.start_trade_updates()
        try:
            for _ in range(400):  # bounded: the catch-up after the reconnect records it
                if db.order_by_client_id(oid).status == "Filled" and server.connections == 2:
                    break
                threading.Event().wait(0.05)
        finally:
            broker.disconnect()
            server.shutdown()
        rows = db.query("SELECT strategy, qty, price FROM v_executions ORDER BY price")
        assert [tuple(r) for r in rows] == [("gap", 4.0, 198.95), ("gap", 6.0, 199.05)]
        assert db.order_by_client_id(oid).filled_qty_micros == 10_000_000
