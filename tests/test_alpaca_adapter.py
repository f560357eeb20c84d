"""Alpaca through alpaca-py against a local REST stand-in; trade updates into the database."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from quantstrip.brokers import InstrumentSpec, OrderRequest, Recorder
from quantstrip.brokers.alpaca import AlpacaBroker
from quantstrip.db.handler import Database

NOW = "2025-03-04T15:02:15.123456Z"


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

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.posted.append(
                    {"path": self.path, "body": body, "key": self.headers.get("APCA-API-KEY-ID")}
                )
                payload = json.dumps(order_json(body["client_order_id"], "accepted")).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def alpaca() -> Iterator[AlpacaStandIn]:
    stand_in = AlpacaStandIn()
    threading.Thread(target=stand_in.server.serve_forever, daemon=True).start()
    yield stand_in
    stand_in.server.shutdown()


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
