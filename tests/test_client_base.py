"""ClientBase in this process: a failing job is contained, an overrunning job stops the
heartbeat, and the runner finds the client class in a file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import wait_until

from quantstrip import ClientBase
from quantstrip.brokers.risk import controls, watcher
from quantstrip.brokers.sim import SimBroker
from quantstrip.client.runner import find_client_classes, load_client_class
from quantstrip.db.handler import Database
from quantstrip.errors import ConfigError

pytestmark = pytest.mark.timeout(60)


class Flaky(ClientBase):
    def __init__(self) -> None:
        super().__init__(name="flaky")
        self.calls = 0
        self.errors: list[BaseException] = []
        self.stopped = False
        self.scheduler.every(1).seconds.do(self.job)

    def job(self) -> None:
        self.calls += 1
        if self.calls == 1:
            raise ValueError("no quotes for SPY")

    def on_error(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def on_stop(self) -> None:
        self.stopped = True


def run_in_thread(client: ClientBase, beats: list[float] | None = None) -> threading.Thread:
    import time

    def beat(_: ClientBase) -> None:
        if beats is not None:
            beats.append(time.monotonic())

    thread = threading.Thread(
        target=client.run, kwargs={"heartbeat": beat, "heartbeat_interval_s": 0.1}, daemon=True
    )
    thread.start()
    return thread


def test_failing_job_is_recorded_and_the_client_keeps_running(workspace: Path) -> None:
    client = Flaky()
    thread = run_in_thread(client)
    try:
        wait_until(lambda: client.calls >= 2, 15, "a second run after the failure")
    finally:
        client.stop()
        thread.join(10)
    assert not thread.is_alive() and client.stopped
    assert [str(e) for e in client.errors] == ["no quotes for SPY"]
    assert client.jobs_failed == 1 and client.jobs_run >= 2
    events = Database(workspace / "var" / "quantstrip.db").query(
        "SELECT * FROM client_events WHERE client_name = 'flaky' AND event_type = 'job_error'"
    )
    assert len(events) == 1
    assert "ValueError: no quotes for SPY" in events[0]["message"]
    assert "raise ValueError" in events[0]["traceback"]


def test_a_job_over_its_time_limit_withholds_the_heartbeat(workspace: Path) -> None:
    release = threading.Event()

    class Slow(ClientBase):
        def __init__(self) -> None:
            super().__init__(name="slow")
            self.job_timeout_s = 0.3
            self.scheduler.every(1).seconds.do(self.job)

        def job(self) -> None:
            release.wait(20)

    client = Slow()
    beats: list[float] = []
    thread = run_in_thread(client, beats)
    try:
        wait_until(client.overdue_jobs, 15, "the job to overrun")
        count = len(beats)
        release.wait(0.6)
        assert len(beats) == count, "beats continued while a job was stuck"
        release.set()
        wait_until(lambda: len(beats) > count, 10, "beats to resume")
    finally:
        release.set()
        client.stop()
        thread.join(10)


def test_runner_finds_the_client_class(tmp_path: Path) -> None:
    source = """
from quantstrip import ClientBase
import quantstrip

class Helper:
    pass

class Mine(ClientBase):
    pass

class Other(quantstrip.ClientBase):
    pass
"""
    assert find_client_classes(source) == ["Mine", "Other"]
    path = tmp_path / "two.py"
    path.write_text(source)
    with pytest.raises(ConfigError, match="2 ClientBase subclasses"):
        load_client_class(path, None, "two")
    assert load_client_class(path, "Other", "two").__name__ == "Other"
    with pytest.raises(ConfigError, match="not a ClientBase"):
        load_client_class(path, "Helper", "two")


class Guarded(ClientBase):
    """A client with a guarded broker, as every trading client has: its risk watcher polls the
    database for the operator's actions on a thread of its own."""

    def __init__(self) -> None:
        super().__init__(name="guarded")
        self.broker = SimBroker(account="SIM-G")


@pytest.fixture
def guarded(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Guarded]:
    monkeypatch.setenv("QUANTSTRIP_CLIENT", "guarded")  # as the daemon starts it
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    client = Guarded()
    assert [w.path for w in watcher.running()] == [controls.database_path()]
    yield client
    client.close()


def watcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "risk-watcher"]


def test_a_stopped_client_ends_its_risk_watcher(guarded: Guarded) -> None:
    """Its broker still referenced (the client object lives on in the process that ran it),
    the watcher must not poll on, nor stay listed as a live guard for the operator's flatten."""
    wait_until(lambda: controls.live_guards() != [], 30, "the watcher's first presence")
    thread = run_in_thread(guarded)
    wait_until(lambda: guarded.scheduler.running, 30, "the client's scheduler")
    guarded.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert watcher.running() == [] and watcher_threads() == []
    assert controls.live_guards() == []


def test_a_closed_client_ends_its_risk_watcher(guarded: Guarded) -> None:
    """A client built and driven without `run()` (an example in a test, a notebook) is closed."""
    guarded.close()
    assert watcher.running() == [] and watcher_threads() == []
    guarded.close()  # twice is harmless
