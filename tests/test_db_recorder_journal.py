"""A broker event the database cannot take (locked, full, read-only) is never lost: the recorder
appends it to a durable journal under the data directory, alerts, and replays it (on the next
event, periodically, at start), in order. Real SQLite failures, a real SMTP server."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from quantstrip import db_handler
from quantstrip.brokers.events import (
    AccountValueEvent,
    CommissionEvent,
    ExecutionEvent,
    InstrumentSpec,
    OrderPlacedEvent,
    OrderRequest,
    OrderStatusEvent,
)
from quantstrip.brokers.recorder import Recorder
from quantstrip.brokers.sim import SimBroker
from quantstrip.db.handler import Database

T0 = datetime(2025, 1, 2, 15, 0, tzinfo=UTC)
AAPL = InstrumentSpec("AAPL")


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_for_alert(smtp_server, text: str) -> str:
    """The plain text of this test's alert mail containing `text`. Each test waits for the
    alerts it causes: they are sent from a background thread, and one still running after its
    test reached the next test's SMTP server."""
    found: list[str] = []

    def arrived() -> bool:
        found[:] = [
            m.get_body(("plain",)).get_content()
            for m in smtp_server.messages
            if text in m.get_body(("plain",)).get_content()
        ]
        return bool(found)

    wait_for(arrived, f"the alert mail about {text!r}")
    return found[0]


def fill(n: int, strategy: str | None = "s") -> list[ExecutionEvent | CommissionEvent]:
    exec_id = f"E{n}"
    side = "BUY" if n % 2 == 0 else "SELL"
    return [
        ExecutionEvent(
            "sim",
            "ACC",
            exec_id,
            AAPL,
            side,
            Decimal(10),
            Decimal(100 + n),
            T0.replace(minute=n),
            strategy=strategy,
        ),
        CommissionEvent("sim", exec_id, Decimal("1.25")),
    ]


def stored(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT e.exec_id, c.commission_micros FROM executions e "
            "LEFT JOIN commissions c ON c.execution_id = e.id ORDER BY e.exec_id"
        ).fetchall()
    finally:
        conn.close()


def journal_files(home: Path) -> list[Path]:
    return sorted((home / "journal").glob("*.jsonl"))


def pending_lines(home: Path) -> int:
    return sum(1 for f in journal_files(home) for line in f.read_text().splitlines() if line)


@pytest.fixture
def sim_db(mail_workspace: Path):
    db = Database(mail_workspace / "var" / "simulation.db", busy_timeout_s=0.3)
    db.ensure_strategy("s")
    yield db
    db.close()


def test_fills_a_locked_database_refused_are_journaled_alerted_and_replayed_in_order(
    mail_workspace: Path, sim_db: Database, smtp_server
) -> None:
    broker = SimBroker(account="ACC", seed=1)
    broker.subscribe(Recorder(sim_db, client_name="journal_test"))
    for event in fill(0):
        broker.emit(event)
    locker = sqlite3.connect(sim_db.path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    for n in (1, 2, 3):
        for event in fill(n):
            broker.emit(event)  # never raises into the broker's event thread
    files = journal_files(mail_workspace / "var")
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    entries = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [e["event"]["fields"]["exec_id"] for e in entries] == [
        f"E{n}" for n in (1, 1, 2, 2, 3, 3)
    ]
    assert "locked" in entries[0]["error"]
    assert "locked" in wait_for_alert(smtp_server, "journal")
    locker.execute("ROLLBACK")
    locker.close()
    for event in fill(4):
        broker.emit(event)  # queues behind the journal and wakes the replayer
    expected = [(f"E{n}", 1_250_000) for n in range(5)]
    wait_for(lambda: stored(sim_db.path) == expected, "the replay in order")
    wait_for(lambda: pending_lines(mail_workspace / "var") == 0, "the journal to empty")


def test_a_full_database_journals_until_it_has_room_again(
    mail_workspace: Path, sim_db: Database, smtp_server
) -> None:
    recorder = Recorder(sim_db, client_name="journal_test")
    for event in fill(0):
        recorder(event)
    pages = sim_db.conn.execute("PRAGMA page_count").fetchone()[0]
    sim_db.conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL on growth
    n = 0
    while n < 2000 and not journal_files(mail_workspace / "var"):  # until the file is full
        n += 1
        for event in fill(n):
            recorder(event)
    assert pending_lines(mail_workspace / "var") > 0
    assert "full" in journal_files(mail_workspace / "var")[0].read_text()
    sim_db.conn.execute("PRAGMA max_page_count = 1073741823")
    for event in fill(n + 1):
        recorder(event)
    wait_for(lambda: len(stored(sim_db.path)) == n + 2, "the replay")
    wait_for(lambda: pending_lines(mail_workspace / "var") == 0, "the journal to empty")
    assert "full" in wait_for_alert(smtp_server, "journal")


def test_events_a_read_only_database_refused_are_replayed_when_the_recorder_starts_again(
    mail_workspace: Path, sim_db: Database, smtp_server
) -> None:
    read_only = Database(sim_db.path, read_only=True)
    recorder = Recorder(read_only, client_name="journal_test", unattributed_strategy="s")
    for n in range(3):
        for event in fill(n):
            recorder(event)
    read_only.close()
    assert stored(sim_db.path) == []
    assert pending_lines(mail_workspace / "var") == 6
    Recorder(sim_db, client_name="journal_test")  # the client's next start
    wait_for(lambda: len(stored(sim_db.path)) == 3, "the replay at start")
    wait_for(lambda: pending_lines(mail_workspace / "var") == 0, "the journal to empty")
    wait_for_alert(smtp_server, "journal")


def test_the_journal_is_replayed_periodically_without_waiting_for_another_event(
    mail_workspace: Path, sim_db: Database, smtp_server
) -> None:
    recorder = Recorder(sim_db, client_name="journal_test", replay_interval_s=0.2)
    locker = sqlite3.connect(sim_db.path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    for event in fill(0):
        recorder(event)
    assert stored(sim_db.path) == []
    locker.execute("ROLLBACK")
    locker.close()
    wait_for(lambda: len(stored(sim_db.path)) == 1, "the periodic replay")
    wait_for(lambda: pending_lines(mail_workspace / "var") == 0, "the journal to empty")
    assert "locked" in wait_for_alert(smtp_server, "journal")


def test_a_conflicting_fill_is_kept_for_a_human_alerted_and_not_retried(
    mail_workspace: Path, sim_db: Database, smtp_server
) -> None:
    recorder = Recorder(sim_db, client_name="journal_test")
    recorder(fill(0)[0])
    bad = ExecutionEvent("sim", "ACC", "E0", AAPL, "SELL", Decimal(999), Decimal(1), T0)
    recorder(bad)
    assert "SELL 999" in wait_for_alert(smtp_server, "E0")
    rejected = recorder.journal.rejected()
    assert [entry.event for entry in rejected] == [bad]
    for event in fill(1):
        recorder(event)  # later events are stored normally
    assert [r[0] for r in stored(sim_db.path)] == ["E0", "E1"]
    assert len(recorder.journal.rejected()) == 1


def test_a_fill_naming_an_unknown_strategy_in_the_production_record_is_kept_unattributed(
    mail_workspace: Path, smtp_server
) -> None:
    db = db_handler.database()  # the production record refuses unknown strategy names
    recorder = Recorder(db, client_name="journal_test")
    recorder(fill(0, strategy="momentun")[0])
    assert [tuple(r) for r in db.query("SELECT exec_id, strategy FROM v_executions")] == [
        ("E0", "unattributed")
    ]
    wait_for_alert(smtp_server, "momentun")


def test_every_recorded_event_kind_survives_the_journal_unchanged(mail_workspace: Path) -> None:
    from quantstrip.brokers.event_journal import EventJournal

    request = OrderRequest(AAPL, "BUY", Decimal("10.5"), "LMT", limit_price=Decimal("99.99"))
    events = [
        *fill(0),
        OrderPlacedEvent("sim", "ACC", request, broker_order_id="7", time=T0),
        OrderStatusEvent("sim", "Filled", Decimal(10), Decimal(0), Decimal("99.5"), time=T0),
        AccountValueEvent("sim", "ACC", Decimal("100000.01"), None, time=T0),
        ExecutionEvent(
            "ib",
            "U1",
            "a.02",
            InstrumentSpec("ES", "FUT", "CME", multiplier=Decimal(50)),
            "BUY",
            Decimal(1),
            Decimal("5000.25"),
            T0,
            base_exec_id="a",
            correction_number=2,
        ),
    ]
    journal = EventJournal(mail_workspace / "var" / "journal" / "roundtrip.jsonl")
    for event in events:
        journal.append(event, "database is locked")
    assert [entry.event for entry in EventJournal(journal.path).pending()] == events
