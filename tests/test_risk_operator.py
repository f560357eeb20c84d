"""The operator's commands against real client processes run by a real daemon: `quantstrip
flatten` leaves zero positions and zero open orders in the database, `halt` cancels orders and
stops the client, and the state survives the client's restart."""

from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from support.daemon import DaemonHandle, wait_until, write_module_client

from quantstrip.brokers.risk import controls, operator, watcher
from quantstrip.brokers.sim import SimBroker
from quantstrip.db.handler import Database

TRADER = """
from quantstrip import ClientBase, clock, db_handler
from quantstrip.brokers import InstrumentSpec, OrderRefused, OrderRequest, Recorder
from quantstrip.brokers.sim import SimBroker


class Trader(ClientBase):
    def __init__(self):
        super().__init__()
        self.broker = SimBroker(account="SIM-T")
        self.broker.subscribe(Recorder(db_handler.database(), client_name=self.name))
        self.spec = InstrumentSpec("AAPL")
        self.n = 0
        self.scheduler.every(1).seconds.do(self.tick)

    def tick(self):
        self.n += 1
        self.broker.on_quote("AAPL", 100 + self.n % 3, clock.now())
        try:
            if self.n == 2:
                self.broker.submit(OrderRequest(self.spec, "BUY", 100, strategy="trend"))
            if self.n == 3:
                self.broker.submit(
                    OrderRequest(self.spec, "BUY", 10, "LMT", limit_price=50, strategy="trend")
                )
            if self.n > 6:  # keeps trying to buy: refused once entries are stopped
                self.broker.submit(OrderRequest(self.spec, "BUY", 1, strategy="trend"))
        except OrderRefused as exc:
            self.log.warning("refused: %s", exc)
"""


def cli(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantstrip.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def book(root: Path) -> tuple[float, int]:
    """(position in AAPL, open orders) in the simulation database the client records into."""
    with Database(root / "var" / "simulation.db", read_only=True) as db:
        held = db.query("SELECT COALESCE(SUM(qty_micros), 0) FROM positions")[0][0] / 1e6
        working = db.query(
            "SELECT COUNT(*) FROM orders WHERE status IN "
            "('PendingSubmit', 'PreSubmitted', 'Submitted', 'PartiallyFilled')"
        )[0][0]
    return held, working


@pytest.mark.slow
def test_flatten_leaves_zero_positions_and_zero_open_orders(
    workspace: Path, daemon: DaemonHandle
) -> None:
    write_module_client("trader", TRADER)
    daemon.start()
    daemon.wait_heartbeat("trader")
    wait_until(
        lambda: (workspace / "var" / "simulation.db").exists() and book(workspace) == (100.0, 1),
        60,
        "a position of 100 and a working limit order",
    )
    status = cli(workspace, "risk", "status")
    assert "trader" in status.stdout  # the guarded client is listed
    flattened = cli(workspace, "flatten", "--all", "--reason", "end of test")
    assert flattened.returncode == 0, flattened.stdout + flattened.stderr
    assert "trader: done" in flattened.stdout
    # (the client keeps buying 1 a second: the position may have grown past 100 by now)
    assert "cancelled 1 order" in flattened.stdout
    assert re.search(r"closing 1 position\(s\) at market: SELL 1\d\d AAPL", flattened.stdout)
    wait_until(lambda: book(workspace) == (0.0, 0), 60, "a flat book")
    # Entries stay stopped: the client's later buys are refused and recorded, the book stays flat.
    with Database(workspace / "var" / "simulation.db", read_only=True) as db:
        wait_until(
            lambda: (
                db.query("SELECT COUNT(*) FROM strategy_events WHERE event_type = 'risk_refused'")[
                    0
                ][0]
                > 0
            ),
            30,
            "a refused entry",
        )
    assert book(workspace) == (0.0, 0)
    assert "stop_entries" in cli(workspace, "risk", "status").stdout
    # The state survives a restart of the client.
    pid_before = daemon.status("trader").pid
    refused_before = len(daemon.events("trader", "risk_refused"))
    daemon.control.restart("trader")
    wait_until(lambda: daemon.status("trader").pid not in (None, pid_before), 60, "a new process")
    wait_until(
        lambda: len(daemon.events("trader", "risk_refused")) > refused_before + 1,
        60,
        "refusals after the restart",
    )
    assert book(workspace) == (0.0, 0)
    assert cli(workspace, "resume", "--all").returncode == 0


@pytest.mark.slow
def test_halt_cancels_orders_and_stops_the_client(workspace: Path, daemon: DaemonHandle) -> None:
    write_module_client("trader", TRADER)
    daemon.start()
    wait_until(
        lambda: (workspace / "var" / "simulation.db").exists() and book(workspace) == (100.0, 1),
        60,
        "a position of 100 and a working limit order",
    )
    halted = cli(workspace, "halt", "trader", "--reason", "runaway")
    assert halted.returncode == 0, halted.stdout + halted.stderr
    assert "trader: done" in halted.stdout and "trader: stop requested" in halted.stdout
    daemon.wait_state("trader", "stopped", 60)
    assert book(workspace) == (100.0, 0)  # orders cancelled, the position kept
    resumed = cli(workspace, "resume", "trader")
    assert "trading active" in resumed.stdout


def test_a_client_answers_the_operator_only_in_the_workspace_its_broker_was_made_in(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process whose workspace changes after it made a guarded broker (an example client run
    in a test, a notebook) must not claim to be a guarded client in the new workspace: there the
    operator's flatten waited 30 s on it and reported 'no answer' (CI: 'daily_signal (pid N): no
    answer within 30 s', the pytest process's own watcher in the next test's workspace). Its
    watcher ends, and leaves the list of guarded processes, when its last guard is gone."""
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    monkeypatch.setenv("QUANTSTRIP_CLIENT", "mover")
    first = controls.database_path()
    broker = SimBroker(account="SIM-M")
    listener = watcher.start()
    other = tmp_path / "other"
    monkeypatch.setenv("QUANTSTRIP_WORKSPACE", str(other))
    monkeypatch.setenv("QUANTSTRIP_HOME", str(other / "var"))
    from quantstrip.paths import init_workspace

    init_workspace()
    second = controls.database_path()
    assert second != first
    controls.request_action(controls.ALL, "cancel_orders", requested_by="test", path=second)
    listener.tick()
    assert [g.client for g in controls.live_guards(path=first)] == ["mover"]
    assert controls.live_guards(path=second) == []
    assert controls.results(1, path=second) == []
    del broker
    gc.collect()
    wait_until(lambda: not listener.is_alive(), 30, "the watcher to end with its last guard")
    assert controls.live_guards(path=first) == []


GUARDED_CLIENT = """
from quantstrip import ClientBase
from quantstrip.brokers.sim import SimBroker


class Guarded(ClientBase):
    def __init__(self):
        super().__init__()
        self.broker = SimBroker(account="SIM-D")


Guarded().run(heartbeat_interval_s=0.2)
"""


@pytest.mark.timeout(180)
def test_flatten_reports_a_client_that_has_just_died_at_once(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guarded client is killed (its presence row still fresh, its process a zombie not yet
    reaped by its parent): flatten says it has ended instead of waiting out the timeout."""
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    env = {**os.environ, "QUANTSTRIP_CLIENT": "doomed", "QUANTSTRIP_MODE": "simulation"}
    process = subprocess.Popen([sys.executable, "-c", GUARDED_CLIENT], cwd=workspace, env=env)
    try:
        wait_until(
            lambda: [g.pid for g in controls.live_guards()] == [process.pid],
            60,
            "the client's watcher to report its presence",
        )
        process.send_signal(signal.SIGKILL)
        wait_until(lambda: psutil.Process(process.pid).status() == "zombie", 30, "its death")
        # Ten minutes for an answer: only noticing the death lets this end in time.
        outcome = operator.flatten(controls.ALL, reason="test", wait_s=600)
    finally:
        process.kill()
        process.wait(30)
    assert not outcome.ok
    assert f"doomed (pid {process.pid}): its process has ended" in outcome.text
    assert controls.live_guards() == []  # no longer listed as a guarded client
