"""The Tradier adapter (docs/new-broker.md's worked example) against a local stand-in of
Tradier's brokerage REST API, recording into a real database."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from support.http_stand_in import QuietHandler, loopback_server, serving

from quantstrip.brokers import InstrumentSpec, OrderRequest, Recorder
from quantstrip.brokers.tradier import TradierBroker, TradierError
from quantstrip.db.handler import Database

TOKEN = "tradier-token-1"
ACCOUNT = "VA000001"
AAPL = InstrumentSpec("AAPL")


class TradierStandIn:
    """Tradier as documented: bearer token, form-encoded order entry, orders that report an
    executed quantity (no executions), and XML-shaped JSON (one item unwrapped, none "null")."""

    def __init__(self) -> None:
        self.orders: dict[int, dict[str, Any]] = {}
        self.ids = itertools.count(257459)
        self.positions: list[dict[str, Any]] = []
        stand_in = self

        class Handler(QuietHandler):
            def _authorised(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.send_body(b"Invalid Access Token", "text/plain", 401)
                    return False
                return True

            def _form(self) -> dict[str, str]:
                length = int(self.headers.get("Content-Length") or 0)
                return {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}

            def do_GET(self) -> None:
                if self._authorised():
                    url = urlparse(self.path)
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    code, body = stand_in.get(url.path, query)
                    self.send_json(body, code)

            def do_POST(self) -> None:
                if self._authorised():
                    code, body = stand_in.place(self._form())
                    self.send_json(body, code)

            def do_PUT(self) -> None:
                if self._authorised():
                    order_id = int(urlparse(self.path).path.rsplit("/", 1)[-1])
                    code, body = stand_in.change(order_id, self._form())
                    self.send_json(body, code)

            def do_DELETE(self) -> None:
                if self._authorised():
                    order_id = int(urlparse(self.path).path.rsplit("/", 1)[-1])
                    code, body = stand_in.cancel(order_id)
                    self.send_json(body, code)

        self.server = loopback_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    @staticmethod
    def xmlish(items: list[dict[str, Any]], outer: str, inner: str) -> dict[str, Any]:
        if not items:
            return {outer: "null"}
        return {outer: {inner: items[0] if len(items) == 1 else items}}

    def place(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("type") in ("limit", "stop_limit") and not form.get("price"):
            return 400, {"errors": {"error": ["Price is required for limit orders"]}}
        if float(form["quantity"]) % 1:
            return 400, {"errors": {"error": ["Invalid quantity: must be a whole number"]}}
        order_id = next(self.ids)
        self.orders[order_id] = {
            "id": order_id,
            "type": form["type"],
            "symbol": form["symbol"],
            "side": form["side"],
            "quantity": float(form["quantity"]),
            "status": "open",
            "duration": form["duration"],
            "price": float(form["price"]) if form.get("price") else None,
            "avg_fill_price": 0.0,
            "exec_quantity": 0.0,
            "last_fill_price": 0.0,
            "last_fill_quantity": 0.0,
            "remaining_quantity": float(form["quantity"]),
            "create_date": "2025-03-04T15:00:00.000Z",
            "transaction_date": "2025-03-04T15:00:00.000Z",
            "class": "equity",
            "tag": form.get("tag"),
        }
        return 200, {"order": {"id": order_id, "status": "ok", "partner_id": "x"}}

    def get(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == f"/v1/accounts/{ACCOUNT}/orders":
            return 200, self.xmlish(list(self.orders.values()), "orders", "order")
        if path == f"/v1/accounts/{ACCOUNT}/positions":
            return 200, self.xmlish(self.positions, "positions", "position")
        if path == f"/v1/accounts/{ACCOUNT}/balances":
            return 200, {"balances": {"total_equity": 25000.5, "total_cash": 20000.25}}
        if path == "/v1/markets/history":
            bar = {"open": 100, "high": 103, "low": 99, "volume": 5}
            days = [
                {"date": "2025-03-03", **bar, "close": 101},
                {"date": "2025-03-04", **bar, "close": 102},
            ]
            return 200, self.xmlish(days if query.get("symbol") == "AAPL" else [], "history", "day")
        return 404, {"errors": {"error": ["not found"]}}

    def change(self, order_id: int, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        order = self.orders.get(order_id)
        if order is None or order["status"] not in ("open", "partially_filled"):
            return 400, {"errors": {"error": ["Order is not open"]}}
        if form.get("price"):
            order["price"] = float(form["price"])
        return 200, {"order": {"id": order_id, "status": "ok"}}

    def cancel(self, order_id: int) -> tuple[int, dict[str, Any]]:
        order = self.orders.get(order_id)
        if order is None or order["status"] not in ("open", "partially_filled"):
            return 400, {"errors": {"error": ["Order is not open"]}}
        order["status"] = "canceled"
        return 200, {"order": {"id": order_id, "status": "ok"}}

    def fill(self, order_id: int, qty: float, price: float, when: str) -> None:
        order = self.orders[order_id]
        value = order["avg_fill_price"] * order["exec_quantity"] + qty * price
        order["exec_quantity"] += qty
        order["avg_fill_price"] = value / order["exec_quantity"]
        order["last_fill_price"], order["last_fill_quantity"] = price, qty
        order["remaining_quantity"] = order["quantity"] - order["exec_quantity"]
        order["status"] = "filled" if order["remaining_quantity"] == 0 else "partially_filled"
        order["transaction_date"] = when

    def reject(self, order_id: int, reason: str) -> None:
        self.orders[order_id].update(status="rejected", reason_description=reason)


@pytest.fixture
def tradier() -> Iterator[TradierStandIn]:
    stand_in = TradierStandIn()
    with serving(stand_in.server):
        yield stand_in


def _broker(tradier: TradierStandIn, db: Database) -> TradierBroker:
    broker = TradierBroker(token=TOKEN, account_id=ACCOUNT, base_url=tradier.url)
    broker.subscribe(Recorder(db))
    broker.connect()
    return broker


def _order_id(db: Database, client_order_id: str) -> int:
    return int(db.order_by_client_id(client_order_id).broker_order_id)


def test_polled_fills_become_executions_once(tradier, tmp_path: Path) -> None:
    with Database(tmp_path / "q.db") as db:
        broker = _broker(tradier, db)
        oid = broker.submit(OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="200", strategy="t"))
        tradier.fill(_order_id(db, oid), 4, 199.5, "2025-03-04T15:01:00.000Z")
        assert broker.poll() == 1 and broker.poll() == 0
        # Two fills between polls come as one, at their average price.
        tradier.fill(_order_id(db, oid), 3, 199.8, "2025-03-04T15:02:00.000Z")
        tradier.fill(_order_id(db, oid), 3, 200.0, "2025-03-04T15:03:00.000Z")
        assert broker.poll() == 1
        rows = db.query("SELECT exec_id, strategy, qty, price FROM v_executions ORDER BY 1")
        assert [tuple(r) for r in rows] == [
            (f"{_order_id(db, oid)}-10", "t", 6.0, 199.9),
            (f"{_order_id(db, oid)}-4", "t", 4.0, 199.5),
        ]
        assert db.order_by_client_id(oid).status == "Filled"
        sent = tradier.orders[_order_id(db, oid)]
        assert (sent["tag"], sent["type"], sent["price"]) == (oid, "limit", 200.0)


def test_a_restart_stores_only_the_fills_made_since(tradier, tmp_path: Path) -> None:
    with Database(tmp_path / "q.db") as db:
        first = _broker(tradier, db)
        oid = first.submit(OrderRequest(AAPL, "BUY", 10, strategy="r"))
        tradier.fill(_order_id(db, oid), 4, 100, "2025-03-04T15:01:00.000Z")
        first.poll()
        tradier.fill(_order_id(db, oid), 6, 101, "2025-03-04T15:05:00.000Z")  # while down
        restarted = _broker(tradier, db)
        assert restarted.poll() == 1
        assert db.query("SELECT SUM(qty) FROM v_executions")[0][0] == 10.0
        assert db.query("SELECT price FROM v_executions WHERE qty = 6")[0][0] == 101.0


def test_cancel_modify_open_orders_and_a_rejection_with_its_reason(tradier, tmp_path) -> None:
    with Database(tmp_path / "q.db") as db:
        broker = _broker(tradier, db)
        resting = broker.submit(OrderRequest(AAPL, "BUY", 5, "LMT", limit_price="90"))
        other = broker.submit(OrderRequest(AAPL, "BUY", 5, "LMT", limit_price="91"))
        rejected = broker.submit(OrderRequest(AAPL, "SELL", 5, "LMT", limit_price="300"))
        assert {o.client_order_id for o in broker.open_orders()} == {resting, other, rejected}
        broker.modify(resting, limit_price=Decimal("92"))
        assert tradier.orders[_order_id(db, resting)]["price"] == 92.0
        broker.cancel(other)
        tradier.reject(_order_id(db, rejected), "Sell order exceeds position")
        broker.poll()
        assert [o.client_order_id for o in broker.open_orders()] == [resting]
        assert db.order_by_client_id(other).status == "Cancelled"
        assert [tuple(r) for r in db.query(
            "SELECT status, status_message FROM v_orders WHERE client_order_id = ?", (rejected,)
        )] == [("Rejected", "Sell order exceeds position")]  # fmt: skip
        with pytest.raises(TradierError, match="Order is not open"):
            broker.cancel(other)


def test_errors_positions_balances_and_bars(tradier, tmp_path: Path) -> None:
    with Database(tmp_path / "q.db") as db:
        broker = _broker(tradier, db)
        with pytest.raises(TradierError, match="must be a whole number"):
            broker.submit(OrderRequest(AAPL, "BUY", "1.5", "LMT", limit_price="1"))
        assert db.query("SELECT COUNT(*) FROM orders")[0][0] == 0  # refused: nothing recorded
        assert broker.positions() == []  # Tradier's "null"
        tradier.positions = [{"symbol": "AAPL", "quantity": 10.0, "cost_basis": 1995.0}]
        (position,) = broker.positions()  # one position comes unwrapped
        assert (position.qty, position.avg_cost) == (Decimal(10), Decimal("199.5"))
        assert broker.account_values()["NetLiquidation"] == Decimal("25000.5")
        bars = broker.historical_bars(AAPL, start=datetime(2025, 3, 1, tzinfo=UTC))
        assert [(b.time.day, b.close) for b in bars] == [(3, 101), (4, 102)]
        with pytest.raises(TradierError, match="no 1 day bars for MSFT"):
            broker.historical_bars(InstrumentSpec("MSFT"))
    wrong = TradierBroker(token="nope", account_id=ACCOUNT, base_url=tradier.url)
    with pytest.raises(TradierError, match="401") as refused:
        wrong.connect()
    assert "nope" not in str(refused.value)
