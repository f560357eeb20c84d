"""Marks: prices from the brokers (SimBroker's last bar, Alpaca's last trade over its market-data
API), stored through the recorder with time and source, the newest kept per instrument; a stale
mark is never used to value an order; running clients refresh them on a schedule and on demand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from support.daemon import DaemonHandle, wait_until, write_module_client
from support.http_stand_in import QuietHandler, loopback_server, serving

from quantstrip.brokers import InstrumentSpec, Recorder
from quantstrip.brokers.alpaca import AlpacaBroker
from quantstrip.brokers.marks import is_stale, latest_stored
from quantstrip.brokers.sim import SimBroker
from quantstrip.db.handler import Database

T0 = datetime(2031, 3, 4, 15, 0, tzinfo=UTC)
AAPL = InstrumentSpec("AAPL")


class LatestTrades:
    """Alpaca's market-data API: the latest trade of AAPL, nothing for other symbols."""

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
                trades = {}
                if query.get("symbols") == "AAPL":
                    trades["AAPL"] = {
                        "t": "2031-03-04T14:59:58.5Z",
                        "x": "V",
                        "p": 187.42,
                        "s": 100,
                        "c": ["@"],
                        "i": 7,
                        "z": "C",
                    }
                self.send_json({"trades": trades})

        self.server = loopback_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def market_data() -> Iterator[LatestTrades]:
    stand_in = LatestTrades()
    with serving(stand_in.server):
        yield stand_in


def test_alpaca_last_trade_becomes_a_stored_mark(market_data, tmp_path: Path) -> None:
    broker = AlpacaBroker(api_key="PKTEST", secret_key="s", data_url=market_data.url)
    with Database(tmp_path / "ledger.db") as db:
        broker.subscribe(Recorder(db))
        (mark,) = broker.snapshot_marks([AAPL, InstrumentSpec("NOPE")])
        instrument = db.query("SELECT id FROM instruments WHERE symbol = 'AAPL'")[0][0]
        stored = latest_stored(db.conn, instrument)
    assert market_data.requests[0]["path"] == "/v2/stocks/trades/latest"
    assert mark.price == Decimal("187.42") and mark.source == "alpaca"
    assert stored is not None and stored.price == Decimal("187.42")
    assert stored.time == datetime(2031, 3, 4, 14, 59, 58, 500000, tzinfo=UTC)
    assert not is_stale(stored.time, T0, 900) and is_stale(stored.time, T0 + timedelta(hours=1))


def test_newest_mark_wins_whatever_order_they_arrive_in(tmp_path: Path) -> None:
    sim = SimBroker(account="S")
    with Database(tmp_path / "ledger.db") as db:
        sim.subscribe(Recorder(db))
        sim.on_quote("AAPL", "101", T0)
        sim.snapshot_marks([AAPL])
        sim.snapshot_marks([AAPL])  # the same observation twice: stored once
        late = SimBroker(account="S")
        late.subscribe(Recorder(db))
        late.on_quote("AAPL", "99", T0 - timedelta(minutes=5))
        late.snapshot_marks([AAPL])  # an older price arriving later does not replace it
        instrument = db.query("SELECT id FROM instruments WHERE symbol = 'AAPL'")[0][0]
        assert db.query("SELECT COUNT(*) FROM marks")[0][0] == 2
        stored = latest_stored(db.conn, instrument)
    assert stored is not None and stored.price == Decimal("101") and stored.source == "sim"


HOLDER = """
from quantstrip import ClientBase, clock, db_handler
from quantstrip.brokers import InstrumentSpec, OrderRequest, Recorder
from quantstrip.brokers.sim import SimBroker


class Holder(ClientBase):
    def __init__(self):
        super().__init__()
        self.broker = SimBroker(account="SIM-H")
        self.broker.subscribe(Recorder(db_handler.database(), client_name=self.name))
        self.n = 0
        self.scheduler.every(1).seconds.do(self.tick)

    def tick(self):
        self.n += 1
        self.broker.on_quote("MSFT", 300 + self.n, clock.now())
        if self.n == 2:
            self.broker.submit(OrderRequest(InstrumentSpec("MSFT"), "BUY", 5, strategy="hold"))
"""


@pytest.mark.slow
def test_running_clients_refresh_marks_on_schedule_and_on_demand(
    workspace: Path, daemon: DaemonHandle
) -> None:
    from quantstrip import settings
    from quantstrip.brokers.risk import operator

    settings.set("risk.marks", {"interval_s": 2})
    write_module_client("holder", HOLDER)
    daemon.start()
    sim_db = workspace / "var" / "simulation.db"

    def marks() -> int:
        if not sim_db.exists():
            return 0
        with Database(sim_db, read_only=True) as db:
            return int(db.query("SELECT COUNT(*) FROM marks")[0][0])

    wait_until(lambda: marks() >= 2, 60, "scheduled marks of the position")
    settings.set("risk.marks", {"interval_s": 0})  # on demand only from now on
    outcome = operator.refresh_marks(wait_s=30)
    assert outcome.ok and "holder: done: sim: 1 mark(s) of 1 instrument(s)" in outcome.text
