"""Alpaca's trading REST API on 127.0.0.1, stateful and as strict as Alpaca where it matters:

- a bracket order gets two legs with ids and client order ids of Alpaca's own making;
- a replace (PATCH) creates a new order with a new id; the old one is `replaced` and can no
  longer be cancelled (DELETE answers 422, as Alpaca does for an order that is not cancelable);
- `GET /v2/orders?status=open` lists only open orders (legs nested);
- fills are listed as account activities (`/v2/account/activities/FILL`, `after`, paged, ids
  `<time>::<execution id>`), and fees as FEE/CFEE/PTC activities.
`fill()` makes a fill and returns the trade update the stream would carry for it.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

from support.http_stand_in import QuietHandler, loopback_server

OPEN = {"new", "accepted", "held", "partially_filled", "pending_new", "pending_replace"}
STAMP = "2025-03-04T15:02:15.123456Z"


def order_json(client_order_id: str, status: str = "accepted", **fields: Any) -> dict[str, Any]:
    body = {
        "id": str(uuid.uuid4()),
        "client_order_id": client_order_id,
        "created_at": STAMP,
        "updated_at": STAMP,
        "submitted_at": STAMP,
        "asset_id": str(uuid.uuid4()),
        "symbol": "AAPL",
        "asset_class": "us_equity",
        "qty": "10",
        "filled_qty": "0",
        "filled_avg_price": None,
        "order_class": "simple",
        "order_type": "market",
        "type": "market",
        "side": "buy",
        "time_in_force": "day",
        "status": status,
        "extended_hours": False,
    }
    body.update(fields)
    return body


class AlpacaTradingStandIn:
    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.activities: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        stand_in = self

        class Handler(QuietHandler):
            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def do_POST(self) -> None:
                stand_in.requests.append(("POST", urlparse(self.path).path))
                self.send_json(stand_in.create(self._body()))

            def do_PATCH(self) -> None:
                path = urlparse(self.path).path
                stand_in.requests.append(("PATCH", path))
                answer, code = stand_in.replace(path.rsplit("/", 1)[-1], self._body())
                self.send_json(answer, code)

            def do_DELETE(self) -> None:
                path = urlparse(self.path).path
                stand_in.requests.append(("DELETE", path))
                answer, code = stand_in.cancel(path.rsplit("/", 1)[-1])
                if code == 204:
                    self.send_response(204)
                    self.end_headers()
                else:
                    self.send_json(answer, code)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                stand_in.requests.append(("GET", url.path))
                self.send_json(stand_in.get(url.path, query))

        self.server = loopback_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    # ---- the API --------------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("type", "market")
        order = order_json(
            body["client_order_id"],
            qty=str(int(float(body.get("qty", 0)))),
            side=body.get("side", "buy"),
            type=kind,
            order_type=kind,
            limit_price=body.get("limit_price"),
            stop_price=body.get("stop_price"),
            time_in_force=body.get("time_in_force", "day"),
            order_class=body.get("order_class", "simple"),
            symbol=body.get("symbol", "AAPL"),
        )
        with self.lock:
            self.orders[order["id"]] = order
            if body.get("order_class") == "bracket":
                exit_side = "sell" if order["side"] == "buy" else "buy"
                legs = [
                    self._leg(
                        order, exit_side, "limit", limit_price=body["take_profit"]["limit_price"]
                    ),
                    self._leg(order, exit_side, "stop", stop_price=body["stop_loss"]["stop_price"]),
                ]
                order["legs"] = legs
        return order

    def _leg(self, parent: dict[str, Any], side: str, kind: str, **prices: Any) -> dict[str, Any]:
        leg = order_json(
            uuid.uuid4().hex,  # Alpaca names the legs itself
            "held",
            qty=parent["qty"],
            side=side,
            type=kind,
            order_type=kind,
            order_class="bracket",
            time_in_force=parent["time_in_force"],
            **prices,
        )
        self.orders[leg["id"]] = leg
        return leg

    def replace(self, order_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        with self.lock:
            old = self.orders.get(order_id)
            if old is None or old["status"] not in OPEN:
                return {"code": 42210000, "message": "order is not replaceable"}, 422
            new = {**old, "id": str(uuid.uuid4()), "client_order_id": uuid.uuid4().hex}
            new.update({k: str(v) for k, v in body.items() if v is not None})
            new.update(status="accepted", replaces=order_id)
            old.update(status="replaced", replaced_by=new["id"])
            self.orders[new["id"]] = new
        return new, 200

    def cancel(self, order_id: str) -> tuple[dict[str, Any], int]:
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                return {"code": 40410000, "message": "order not found"}, 404
            if order["status"] not in OPEN:
                return {"code": 42210000, "message": "order is not cancelable"}, 422
            order["status"] = "canceled"
        return {}, 204

    def get(self, path: str, query: dict[str, str]) -> Any:
        with self.lock:
            if path == "/v2/orders":
                listed = [
                    o for o in self.orders.values() if o["status"] in OPEN and not self._is_leg(o)
                ]
                return [{**o, "legs": o.get("legs")} for o in listed]
            after = query.get("after", "")
            if path == "/v2/account/activities/FILL":
                chosen = [a for a in self.activities if a["activity_type"] == "FILL"]
                chosen = [a for a in chosen if a["transaction_time"] > after]
            elif path == "/v2/account/activities":
                types = set(query.get("activity_types", "").split(","))
                chosen = [a for a in self.activities if a["activity_type"] in types]
            else:
                return {"message": "not found"}
            token = query.get("page_token")
            if token:
                chosen = chosen[[a["id"] for a in chosen].index(token) + 1 :]
            return chosen[: int(query.get("page_size", "100"))]

    def _is_leg(self, order: dict[str, Any]) -> bool:
        return any(order in (o.get("legs") or []) for o in self.orders.values())

    # ---- scripted market ------------------------------------------------------------------
    def fill(self, order_id: str, qty: int, price: str, when: str) -> dict[str, Any]:
        """A fill of `qty` at `price`: recorded as an activity; the trade update for it."""
        with self.lock:
            order = self.orders[order_id]
            filled = int(order["filled_qty"]) + qty
            order["filled_qty"] = str(filled)
            order["filled_avg_price"] = price
            order["status"] = "filled" if filled >= int(order["qty"]) else "partially_filled"
            execution = str(uuid.uuid4())
            self.activities.append(
                {
                    "id": f"{when.replace('-', '').replace(':', '')[:15]}000::{execution}",
                    "activity_type": "FILL",
                    "transaction_time": when,
                    "type": "fill" if order["status"] == "filled" else "partial_fill",
                    "price": price,
                    "qty": str(qty),
                    "side": order["side"],
                    "symbol": order["symbol"],
                    "leaves_qty": str(int(order["qty"]) - filled),
                    "order_id": order_id,
                    "cum_qty": str(filled),
                    "order_status": order["status"],
                }
            )
            if order["status"] == "filled":
                self._settle(order)
            return {
                "event": "fill" if order["status"] == "filled" else "partial_fill",
                "execution_id": execution,
                "timestamp": when,
                "price": price,
                "qty": str(qty),
                "position_qty": str(filled),
                "order": dict(order),
            }

    def _settle(self, order: dict[str, Any]) -> None:
        """A filled bracket parent releases its legs; a filled leg cancels the other."""
        for parent in self.orders.values():
            legs = parent.get("legs") or []
            if parent is order:
                for leg in legs:
                    leg["status"] = "new"
            elif order in legs:
                for leg in legs:
                    if leg is not order and leg["status"] in OPEN:
                        leg["status"] = "canceled"

    def fee(self, kind: str, amount: str, symbol: str | None, when: str) -> None:
        with self.lock:
            self.activities.append(
                {
                    "id": f"{when[:10].replace('-', '')}000000000::{uuid.uuid4()}",
                    "activity_type": kind,
                    "date": when[:10],
                    "net_amount": amount,
                    "description": {"FEE": "REG/TAF fee", "CFEE": "crypto fee"}.get(kind, kind),
                    "symbol": symbol,
                    "status": "executed",
                }
            )
