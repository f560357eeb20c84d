"""The Client Portal Web API adapter (ibind) against a local stand-in of the documented API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from support.http_stand_in import QuietHandler, loopback_server, serving
from support.ib_oauth import DH_PRIME, OAuthParty

from quantstrip import settings
from quantstrip.brokers import InstrumentSpec, OrderRequest, Recorder
from quantstrip.brokers.ib_web import IbWebBroker, WebApiError, oauth_config_from_settings
from quantstrip.db.handler import Database
from quantstrip.errors import ConfigError

AAPL = InstrumentSpec("AAPL", broker_contract_id="265598")
POSITIONS = [
    {
        "acctId": "DU123",
        "conid": 265598,
        "contractDesc": "AAPL",
        "position": 10.0,
        "avgCost": 99.0,
        "currency": "USD",
    }
]
TRADE = {
    "execution_id": "0000e0d5.67c6f0a1.01.01",
    "symbol": "AAPL",
    "side": "B",
    "size": 10,
    "price": "198.95",
    "conid": "265598",
    "trade_time_r": 1741100535000,
    "commission": "1.00",
    "account": "DU123",
    "order_ref": "wb-7f3a",
}
QUESTION = (
    "You are submitting an order without market data. We strongly recommend against this as it "
    "may result in erroneous and unexpected trades. Are you sure you want to submit this order?"
)


class WebApiStandIn:
    """The documented Web API: orders, trades, and a brokerage session IB can drop (then
    `tickle` says unauthenticated, or answers 401) until `ssodh/init` re-establishes it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, object]] = []
        self.live_orders: list[dict] = []
        self.trades: list[dict] = [TRADE]
        self.session_ok = True
        self.refuse_with_401 = False
        self.init_allowed = True
        self.tickles = 0
        self.inits = 0
        stand_in = self

        class Handler(QuietHandler):
            def session(self, path: str) -> bool:
                """Answer the session endpoints; False if the path is not one."""
                if path == "/v1/api/tickle":
                    stand_in.tickles += 1
                    if not stand_in.session_ok and stand_in.refuse_with_401:
                        self.send_json({"error": "not authenticated"}, 401)
                        return True
                    status = {"authenticated": stand_in.session_ok, "connected": True}
                    self.send_json({"session": "s1", "iserver": {"authStatus": status}})
                    return True
                if path == "/v1/api/iserver/auth/ssodh/init":
                    stand_in.inits += 1
                    if not stand_in.init_allowed:
                        self.send_json({"error": "not authenticated"}, 401)
                        return True
                    stand_in.session_ok = True
                    self.send_json({"authenticated": True, "connected": True, "competing": False})
                    return True
                return False

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                stand_in.seen.append(("GET", path, None))
                if path == "/v1/api/iserver/account/orders":
                    self.send_json({"orders": stand_in.live_orders, "snapshot": True})
                elif path == "/v1/api/portfolio/DU123/positions/0":
                    self.send_json(POSITIONS)
                elif path == "/v1/api/iserver/marketdata/history":
                    self.send_json(
                        {
                            "symbol": "AAPL",
                            "data": [
                                {
                                    "o": 100,
                                    "c": 101,
                                    "h": 102,
                                    "l": 99,
                                    "v": 1000,
                                    "t": 1741104000000,
                                }
                            ],
                        }
                    )
                elif path == "/v1/api/iserver/account/trades/":
                    self.send_json(stand_in.trades)
                else:
                    self.send_json({"error": "not found"}, 404)

            def do_POST(self) -> None:
                path = urlparse(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                stand_in.seen.append(("POST", path, body))
                if self.session(path):
                    return
                if path == "/v1/api/iserver/account/DU123/orders":
                    self.send_json([{"id": "q-1", "message": [QUESTION], "messageIds": ["o354"]}])
                elif path == "/v1/api/iserver/reply/q-1":
                    self.send_json([{"order_id": "1234567", "order_status": "Submitted"}])
                else:
                    self.send_json({})

            def do_DELETE(self) -> None:
                stand_in.seen.append(("DELETE", urlparse(self.path).path, None))
                self.send_json({"msg": "Request was submitted", "order_id": 1234567})

        self.server = loopback_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/api/"


@pytest.fixture
def web_api() -> Iterator[WebApiStandIn]:
    stand_in = WebApiStandIn()
    with serving(stand_in.server):
        yield stand_in


@pytest.fixture
def broker(web_api: WebApiStandIn, workspace: Path) -> Iterator[IbWebBroker]:
    settings._reset_for_tests()
    adapter = IbWebBroker(url=web_api.url, account_id="DU123", use_oauth=False)
    adapter.connect()
    yield adapter
    adapter.disconnect()


def test_positions_and_history(broker: IbWebBroker) -> None:
    (position,) = broker.positions()
    assert (position.instrument.symbol, position.qty, position.avg_cost) == ("AAPL", 10, 99)
    (bar,) = broker.historical_bars(AAPL)
    assert (bar.open, bar.close, bar.volume) == (100, 101, 1000)


def test_order_confirmation_is_answered_and_the_order_recorded(broker, web_api, tmp_path) -> None:
    with Database(tmp_path / "q.db") as db:
        broker.subscribe(Recorder(db))
        oid = broker.submit(OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="99", strategy="web"))
        order = db.order_by_client_id(oid)
        assert order is not None and order.broker_order_id == "1234567"
        posted = [s for s in web_api.seen if s[0] == "POST"]
        assert posted[0][2]["orders"][0]["cOID"] == oid
        assert posted[1][1] == "/v1/api/iserver/reply/q-1" and posted[1][2] == {"confirmed": True}
        broker.cancel(oid)
        assert ("DELETE", "/v1/api/iserver/account/DU123/order/1234567", None) in web_api.seen


def test_an_unexpected_question_refuses_the_order(web_api, workspace) -> None:
    settings._reset_for_tests()
    strict = IbWebBroker(url=web_api.url, account_id="DU123", use_oauth=False, answers={})
    strict.connect()
    with pytest.raises(ValueError, match=r"No answer found for question"):
        strict.submit(OrderRequest(AAPL, "BUY", 1, strategy="web"))
    strict.disconnect()


def test_polled_fills_are_stored_once_with_their_commission(broker, tmp_path) -> None:
    with Database(tmp_path / "q.db") as db:
        broker.subscribe(Recorder(db))
        assert broker.poll_executions() == 1
        assert broker.poll_executions() == 1
        rows = db.query("SELECT exec_id, side, qty, price, commission FROM v_executions")
        assert [tuple(r) for r in rows] == [("0000e0d5.67c6f0a1.01.01", "BUY", 10.0, 198.95, 1.0)]


def test_oauth_configuration_comes_from_settings_and_secrets(workspace, monkeypatch) -> None:
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings._reset_for_tests()
    settings.set("brokers.ib_web.consumer_key", "TESTCONS")
    settings.set("brokers.ib_web.access_token", "token-abc")
    with pytest.raises(ConfigError, match="access_token_secret"):
        oauth_config_from_settings()
    for name in ("access_token_secret", "dh_prime", "encryption_key", "signature_key"):
        settings.set_secret(f"brokers.ib_web.{name}", f"value-of-{name}")
    config = oauth_config_from_settings()
    assert (config.consumer_key, config.access_token) == ("TESTCONS", "token-abc")
    assert config.access_token_secret == "value-of-access_token_secret"
    text = settings.settings_path().read_text()
    assert "value-of-" not in text


class OAuthWebApi:
    """The Web API behind IB's OAuth 1.0a: nothing answers without a valid signature."""

    def __init__(self, party: OAuthParty) -> None:
        self.party = party
        self.seen: list[tuple[str, str, str]] = []  # method, path, outcome
        stand_in = self

        class Handler(QuietHandler):
            def _handle(self, method: str) -> None:
                path = urlparse(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                url = f"{stand_in.origin}{path}"
                authorization = self.headers.get("Authorization", "")
                try:
                    if path == "/v1/api/oauth/live_session_token":
                        answer = stand_in.party.issue_live_session_token(url, authorization)
                    else:
                        stand_in.party.check_request(method, url, authorization)
                        answer = stand_in.answer(method, path)
                except PermissionError as refused:
                    stand_in.seen.append((method, path, f"refused: {refused}"))
                    self.send_json({"error": str(refused)}, 401)
                    return
                stand_in.seen.append((method, path, "ok"))
                self.send_json(answer)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = loopback_server(Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.url = f"{self.origin}/v1/api/"

    @staticmethod
    def answer(method: str, path: str) -> object:
        if path == "/v1/api/iserver/auth/ssodh/init":
            return {"authenticated": True, "connected": True, "competing": False}
        if path == "/v1/api/portfolio/DU123/positions/0":
            return POSITIONS
        return {}


@pytest.fixture
def oauth_party() -> OAuthParty:
    return OAuthParty()


@pytest.fixture
def oauth_api(oauth_party: OAuthParty) -> Iterator[OAuthWebApi]:
    stand_in = OAuthWebApi(oauth_party)
    with serving(stand_in.server):
        yield stand_in


def _configure_oauth(party: OAuthParty, url: str, signature_pem: str | None = None) -> None:
    settings._reset_for_tests()
    settings.set("brokers.ib_web.base_url", url)
    settings.set("brokers.ib_web.account_id", "DU123")
    settings.set("brokers.ib_web.consumer_key", party.consumer_key)
    settings.set("brokers.ib_web.access_token", party.access_token)
    settings.set("brokers.ib_web.realm", "test_realm")
    secrets = {
        "access_token_secret": party.encrypted_token_secret,
        "dh_prime": DH_PRIME,
        "encryption_key": party.encryption_pem,
        "signature_key": signature_pem or party.signature_pem,
    }
    for name, value in secrets.items():
        settings.set_secret(f"brokers.ib_web.{name}", value)


def test_oauth_handshake_then_signed_requests(oauth_api, oauth_party, workspace, monkeypatch):
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    _configure_oauth(oauth_party, oauth_api.url)
    broker = IbWebBroker(use_oauth=True)  # everything from settings and secrets
    broker.connect()
    try:
        positions = broker.positions()
    finally:
        broker.disconnect()
    assert [(p.instrument.symbol, p.qty) for p in positions] == [("AAPL", 10)]
    outcomes = [(m, p, o) for m, p, o in oauth_api.seen]
    # The live session token first (RSA-SHA256 + Diffie-Hellman), then the brokerage session
    # and the positions, each accepted only because its HMAC-SHA256 signature verified.
    assert outcomes[0] == ("POST", "/v1/api/oauth/live_session_token", "ok")
    assert ("POST", "/v1/api/iserver/auth/ssodh/init", "ok") in outcomes
    assert ("GET", "/v1/api/portfolio/DU123/positions/0", "ok") in outcomes
    assert not [o for o in outcomes if o[2] != "ok"]
    # No credential in plain text anywhere in the workspace.
    for path in workspace.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert oauth_party.encrypted_token_secret.encode() not in data, path
            assert b"PRIVATE KEY" not in data, path


def test_oauth_with_the_wrong_signature_key_is_refused(
    oauth_api, oauth_party, workspace, monkeypatch
):
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    impostor = OAuthParty(token_secret=oauth_party.token_secret)
    _configure_oauth(oauth_party, oauth_api.url, signature_pem=impostor.signature_pem)
    broker = IbWebBroker(use_oauth=True)
    with pytest.raises(WebApiError, match=r"OAuth handshake with .* failed"):
        broker.connect()
    assert oauth_api.seen[0] == (
        "POST",
        "/v1/api/oauth/live_session_token",
        "refused: bad RSA-SHA256 signature",
    )
    assert len([s for s in oauth_api.seen if s[2] == "ok"]) == 0


def test_order_status_events_follow_the_web_api(broker, web_api, tmp_path) -> None:
    with Database(tmp_path / "q.db") as db:
        broker.subscribe(Recorder(db))
        oid = broker.submit(OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="99", strategy="web"))
        row = {"orderId": 1234567, "status": "Submitted", "filledQuantity": 0}
        web_api.live_orders = [{**row, "remainingQuantity": 10, "order_ref": oid}]
        assert broker.poll_orders() == 1
        assert broker.poll_orders() == 0  # nothing changed: nothing recorded twice
        web_api.live_orders = [
            {**row, "status": "Filled", "filledQuantity": 10, "remainingQuantity": 0,
             "avgPrice": "98.90", "order_ref": oid}
        ]  # fmt: skip
        assert broker.poll_orders() == 1
        order = db.order_by_client_id(oid)
        assert (order.status, order.filled_qty_micros) == ("Filled", 10_000_000)
        statuses = [e.status for e in db.order_events(order.id)]
        assert statuses == ["PendingSubmit", "Submitted", "Filled"]


def _wait(predicate, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("how", ["unauthenticated", "401"])
def test_the_session_is_kept_alive_and_re_established(web_api, workspace, tmp_path, how):
    settings._reset_for_tests()
    adapter = IbWebBroker(url=web_api.url, account_id="DU123", use_oauth=False, keepalive_s=0.1)
    with Database(tmp_path / "q.db") as db:
        adapter.subscribe(Recorder(db))
        adapter.connect()
        try:
            _wait(lambda: web_api.tickles >= 3, "the session tickled")
            assert db.query("SELECT COUNT(*) FROM executions")[0][0] == 0
            web_api.session_ok, web_api.init_allowed = False, False  # IB drops the session
            web_api.refuse_with_401 = how == "401"
            _wait(lambda: web_api.inits >= 2, "attempts to re-establish it")
            web_api.init_allowed = True
            _wait(lambda: adapter.keepalive.restored == 1, "the session back")
            _wait(
                lambda: db.query("SELECT COUNT(*) FROM executions")[0][0] == 1,
                "the fills made meanwhile fetched",
            )
            assert not adapter.keepalive.lost
            keepalive = adapter.keepalive
        finally:
            adapter.disconnect()
        assert not keepalive._thread.is_alive()  # it ends with the adapter
