"""The IB adapter end to end: the unmodified ib_async client talks to the TWS-protocol test
server over 127.0.0.1, and the recorder stores what happens in a real SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from support.ib import Ledger, wait_for
from support.tws_server import TwsServer

from quantstrip.brokers import BracketRequest, InstrumentSpec, OrderRequest
from quantstrip.brokers.ib import IbBroker, IbError

AAPL = InstrumentSpec("AAPL", broker_contract_id="265598")


def test_market_order_fills_and_its_later_commission_is_linked(ib) -> None:
    broker, ledger = ib
    oid = broker.submit(OrderRequest(AAPL, "BUY", 10, strategy="ibtest"))
    wait_for(
        lambda: ledger.count("SELECT COUNT(*) FROM commissions WHERE execution_id IS NOT NULL"),
        "commission",
    )
    assert ledger.rows("SELECT strategy, side, qty, price, commission FROM v_executions") == [
        ("ibtest", "BUY", 10.0, 100.0, 1.0)
    ]
    wait_for(lambda: ledger.status(oid) == "Filled", "order filled")
    assert broker.positions()[0].qty == 10
    assert broker.account_values()["NetLiquidation"] == Decimal("100000.00")


def test_bracket_filled_in_parts_then_take_profit_cancels_stop(ib, tws: TwsServer) -> None:
    broker, ledger = ib
    entry = OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="99", strategy="brk")
    parent, take, stop = broker.submit_bracket(BracketRequest(entry, "105", "95"))
    wait_for(lambda: ledger.status(take) == "PreSubmitted", "children held")
    tws.move_price(98.5, max_qty=4)
    tws.move_price(98.5)
    wait_for(lambda: ledger.status(parent) == "Filled", "parent filled in two parts")
    wait_for(lambda: ledger.status(take) == "Submitted", "children active")
    tws.move_price(106.0, max_qty=6)
    tws.move_price(106.0)
    wait_for(lambda: ledger.status(stop) == "Cancelled", "stop loss cancelled")
    assert ledger.status(take) == "Filled"
    fills = ledger.rows("SELECT side, qty, price FROM v_executions ORDER BY execution_id")
    assert fills == [
        ("BUY", 4.0, 99.0),
        ("BUY", 6.0, 99.0),
        ("SELL", 6.0, 105.0),
        ("SELL", 4.0, 105.0),
    ]
    wait_for(lambda: ledger.count("SELECT COUNT(*) FROM commissions") == 4, "four commissions")
    gross = ledger.rows("SELECT SUM(gross_pnl) FROM v_round_trips")[0][0]
    assert round(gross, 2) == 60.0
    parent_id = ledger.rows("SELECT id FROM orders WHERE client_order_id = ?", (parent,))[0][0]
    assert ledger.count("SELECT COUNT(*) FROM orders WHERE parent_order_id = ?", (parent_id,)) == 2


def test_commission_before_its_execution_and_duplicate_execdetails(ib, tws: TwsServer) -> None:
    broker, ledger = ib
    tws.commission_first = True
    broker.submit(OrderRequest(AAPL, "BUY", 5, strategy="dup"))
    wait_for(lambda: ledger.count("SELECT COUNT(*) FROM executions"), "fill")
    tws.replay_last_execution()
    tws.replay_last_execution()

    # A round trip on the same connection: its answer comes after the replays, and ib_async
    # handles messages in order, so both replays have reached the recorder when it returns
    # (a fixed sleep here could pass before they arrived).
    async def server_time() -> object:
        return await broker.ib.reqCurrentTimeAsync()

    assert broker._run(server_time(), timeout_s=15) is not None
    assert ledger.count("SELECT COUNT(*) FROM executions") == 1
    assert ledger.count("SELECT COUNT(*) FROM commissions WHERE execution_id IS NOT NULL") == 1


def test_an_ib_correction_supersedes_the_original_fill(ib, tws: TwsServer) -> None:
    broker, ledger = ib
    broker.submit(OrderRequest(AAPL, "BUY", 10, strategy="corr"))
    original = wait_for(lambda: ledger.rows("SELECT exec_id FROM executions"), "fill")[0][0]
    corrected = tws.correct(original, 99.5)
    wait_for(lambda: ledger.count("SELECT COUNT(*) FROM executions") == 2, "correction stored")
    assert ledger.rows("SELECT exec_id, price FROM v_executions") == [(corrected, 99.5)]
    assert ledger.rows("SELECT avg_cost FROM v_positions") == [(99.5,)]


def test_fills_during_a_disconnect_are_caught_up_once(ib, tws: TwsServer) -> None:
    broker, ledger = ib
    broker.submit(OrderRequest(AAPL, "BUY", 3, strategy="gap"))
    resting = broker.submit(OrderRequest(AAPL, "SELL", 3, "LMT", limit_price="120", strategy="gap"))
    wait_for(lambda: ledger.count("SELECT COUNT(*) FROM executions") == 1, "first fill")
    wait_for(lambda: ledger.status(resting) == "Submitted", "the limit order resting at TWS")
    order_id = int(broker.trades[resting].order.orderId)
    tws.go_down()  # the connection drops; TWS refuses new ones meanwhile
    wait_for(lambda: not broker.is_connected(), "the drop noticed")
    tws.fill(order_id, 3, 120.0, client_id=7)  # nobody is connected to hear it
    tws.come_up()
    wait_for(lambda: broker.reconnects >= 1, "reconnect", timeout_s=30)
    wait_for(lambda: ledger.count("SELECT COUNT(*) FROM executions") == 2, "gap fill caught up")
    assert ledger.count("SELECT COUNT(DISTINCT exec_id) FROM executions") == 2
    gross = ledger.rows("SELECT gross_pnl, strategy FROM v_round_trips")
    assert gross == [(60.0, "gap")]


def test_historical_bars_and_an_error_that_is_raised_not_empty(ib) -> None:
    broker, _ = ib
    bars = broker.historical_bars(AAPL, bar_size="5 mins", duration="1 D")
    assert len(bars) == 5 and all(b.time.tzinfo is not None for b in bars)
    with pytest.raises(IbError, match="162"):
        broker.historical_bars(AAPL, bar_size="7 mins", duration="1 D")


def test_pacing_waits_between_identical_requests() -> None:
    from quantstrip.brokers.ib import HistoricalPacer

    pacer = HistoricalPacer(identical_s=15, window_s=600, limit=2)
    pacer.record(("a",), 0.0)
    assert pacer.wait_time(("a",), 5.0) == 10.0
    assert pacer.wait_time(("b",), 5.0) == 0.0
    pacer.record(("b",), 6.0)
    assert pacer.wait_time(("c",), 7.0) == 593.0


SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from support.tws_server import TwsServer
    from quantstrip.brokers import InstrumentSpec, OrderRequest, Recorder
    from quantstrip.brokers.ib import IbBroker
    from quantstrip.db.handler import Database
    tws = TwsServer().start()
    db = Database(sys.argv[1])
    broker = IbBroker(host="127.0.0.1", port=tws.port, client_id=3, timeout_s=5)
    broker.subscribe(Recorder(db))
    broker.connect()
    broker.submit(OrderRequest(InstrumentSpec("AAPL", broker_contract_id="265598"), "BUY", 1))
    for _ in range(100):
        if db.query("SELECT COUNT(*) FROM executions")[0][0]:
            break
        time.sleep(0.05)
    print(db.query("SELECT exec_time FROM executions")[0][0])
    broker.close(); tws.stop()
    """
)


@pytest.mark.real_clock  # the stamp comes from a child process's real clock
def test_execution_times_are_utc_on_a_new_york_host(tmp_path: Path, workspace: Path) -> None:
    before = datetime.now(UTC).replace(tzinfo=None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "ny.db"), str(Path(__file__).parent)],
        env={**os.environ, "TZ": "America/New_York"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    stored = datetime.strptime(result.stdout.strip(), "%Y-%m-%d %H:%M:%S.%f")
    assert (
        before - timedelta(seconds=5)
        <= stored
        <= datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=5)
    )


def test_the_ib_example_client_trades_and_reconciles(
    tws: TwsServer, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util
    import shutil

    from quantstrip import db_handler, settings

    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    monkeypatch.setenv("QUANTSTRIP_MODE", "paper")
    monkeypatch.setenv("QUANTSTRIP_CLIENT", "ib_example")
    monkeypatch.setenv(
        "QUANTSTRIP_CLIENT_PARAMETERS", '{"symbol": "AAPL", "conid": "265598", "quantity": 10}'
    )
    settings._reset_for_tests()
    settings.set("brokers.ib", {"host": "127.0.0.1", "port": tws.port, "client_id": 11})
    source = Path(__file__).resolve().parents[1] / "clients" / "ib_example"
    shutil.copytree(source, workspace / "clients" / "ib_example")
    spec = importlib.util.spec_from_file_location(
        "ib_example", workspace / "clients" / "ib_example" / "ib_example.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    client = module.IbExample()
    client.on_start()
    try:
        parent, _take, _stop = client.enter()
        ledger = Ledger(workspace / "var" / "quantstrip.db")
        entry = float(client.broker.requests[parent].limit_price)
        tws.move_price(entry - 0.5)
        wait_for(lambda: ledger.status(parent) == "Filled", "entry filled")
        summary = client.reconcile()
        assert summary["differences (db, ib)"] == {}
        assert summary["positions at IB"] == {"AAPL": 10}
        assert ledger.rows("SELECT strategy FROM v_positions") == [("ib_example",)]
    finally:
        client.on_stop()
        db_handler.close()
        settings._reset_for_tests()


def test_master_client_id_option_connects_as_the_master(
    tws: TwsServer, workspace: Path, monkeypatch
) -> None:
    from quantstrip import settings

    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings._reset_for_tests()
    with pytest.raises(IbError, match="master_client_id"):
        IbBroker(host="127.0.0.1", port=tws.port, master=True)
    settings.set("brokers.ib.master_client_id", 99)
    broker = IbBroker(host="127.0.0.1", port=tws.port, master=True, timeout_s=5)
    broker.connect()
    try:
        assert [f for f in tws.inbound if f[0] == "71"][-1][2] == "99"
    finally:
        broker.close()
        settings._reset_for_tests()


def test_a_call_on_a_closed_adapter_fails_at_once_naming_why(workspace: Path) -> None:
    """After close() the adapter's loop thread is gone: a call waited out its timeout (three
    times the broker's) for a TimeoutError, and left a coroutine never awaited."""
    broker = IbBroker(host="127.0.0.1", port=9, client_id=7, timeout_s=2)  # never connected
    broker.close()
    with pytest.raises(IbError, match="closed"):
        broker.reconcile()
    broker.close()  # closing again is harmless
    with pytest.raises(IbError, match="closed"):
        broker.catch_up()
