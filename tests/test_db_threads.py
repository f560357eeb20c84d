"""Several threads of one process writing through one `Database` (the example clients' pattern:
the client's jobs write strategy events while the broker's event thread records fills): every
write lands, under its own strategy, and no thread's transaction swallows another's."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from quantstrip import db_handler
from quantstrip.db.connection import transaction
from quantstrip.db.handler import Database, ExecutionInput


def run_threads(targets: list[Callable[[], None]], timeout_s: float = 240.0) -> list[BaseException]:
    """Start every target at once; return what each raised (all must finish in time)."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrapped(target: Callable[[], None]) -> None:
        barrier.wait()
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s)
        assert not thread.is_alive(), "a writer thread did not finish"
    return errors


def test_strategy_events_and_fills_from_two_threads_through_db_handler_all_land(
    workspace: Path,
) -> None:
    db = db_handler.database()
    db.ensure_strategy("signals")
    db.ensure_strategy("fills")
    instrument = db.ensure_instrument("AAPL")
    events, fills = 3000, 400

    def client_job() -> None:
        for i in range(events):
            db_handler.insert_strategy_event("signals", "AAPL", "signal", i)

    def broker_thread() -> None:
        for i in range(fills):
            db_handler.record_execution(
                ExecutionInput(
                    "sim",
                    "ACC",
                    f"x{i}",
                    "fills",
                    instrument,
                    "BUY" if i % 2 else "SELL",
                    1,
                    "100",
                    f"2025-01-02T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
                )
            )
            db_handler.record_commission(broker="sim", exec_id=f"x{i}", commission="0.5")

    assert run_threads([client_job, broker_thread]) == []
    with Database(workspace / "var" / "quantstrip.db") as check:
        assert check.query("SELECT COUNT(*) FROM strategy_events")[0][0] == events
        assert check.query("SELECT COUNT(*) FROM executions")[0][0] == fills
        assert check.query("SELECT COUNT(*) FROM position_events")[0][0] == fills
        linked = "SELECT COUNT(*) FROM commissions WHERE execution_id IS NOT NULL"
        assert check.query(linked)[0][0] == fills


def test_eight_threads_recording_fills_lose_none_and_attribute_each_to_its_strategy(
    tmp_path: Path,
) -> None:
    workers, per_worker = 8, 200
    with Database(tmp_path / "q.db") as db:
        instrument = db.ensure_instrument("SPY")
        for w in range(workers):
            db.ensure_strategy(f"strategy{w}")

        def writer(w: int) -> Callable[[], None]:
            def run() -> None:
                for i in range(per_worker):
                    db.record_execution(
                        ExecutionInput(
                            "sim",
                            f"ACC{w}",
                            f"w{w}-{i}",
                            f"strategy{w}",
                            instrument,
                            "BUY" if (i // 2) % 2 == 0 else "SELL",
                            1 + i % 3,
                            "50",
                            f"2025-01-02T11:{i // 60 % 60:02d}:{i % 60:02d}Z",
                        )
                    )

            return run

        assert run_threads([writer(w) for w in range(workers)]) == []
        misplaced = db.query(
            "SELECT COUNT(*) FROM executions e JOIN strategies s ON s.id = e.strategy_id "
            "JOIN accounts a ON a.id = e.account_id "
            "WHERE s.name <> 'strategy' || substr(e.exec_id, 2, instr(e.exec_id, '-') - 2) "
            "OR a.account_code <> 'ACC' || substr(e.exec_id, 2, instr(e.exec_id, '-') - 2)"
        )[0][0]
        assert db.query("SELECT COUNT(*) FROM executions")[0][0] == workers * per_worker
        assert db.query("SELECT COUNT(*) FROM position_events")[0][0] == workers * per_worker
        assert misplaced == 0


def test_a_rollback_in_one_thread_does_not_take_another_threads_write_with_it(
    tmp_path: Path,
) -> None:
    with Database(tmp_path / "q.db") as db:
        db.ensure_strategy("s")
        inside, written = threading.Event(), threading.Event()

        def failing_batch() -> None:
            with pytest.raises(RuntimeError), transaction(db.conn):
                db.insert_strategy_event("s", "AAPL", "rolled back")
                inside.set()
                # Give the other thread its chance to write while this transaction is open
                # (with a connection per thread it waits for this one to end).
                written.wait(2)
                raise RuntimeError("the batch fails")

        def other_write() -> None:
            assert inside.wait(30)
            db.insert_strategy_event("s", "AAPL", "kept")
            written.set()

        assert run_threads([failing_batch, other_write]) == []
        assert [r[0] for r in db.query("SELECT event_type FROM strategy_events")] == ["kept"]


def test_each_thread_has_its_own_connection_and_transaction(tmp_path: Path) -> None:
    with Database(tmp_path / "q.db") as db:
        seen: list[object] = []

        def look() -> None:
            seen.append(db.conn)
            assert not db.conn.in_transaction

        with db.transaction():
            assert db.conn.in_transaction
            assert run_threads([look]) == []
        assert seen[0] is not db.conn
