"""Acceptance of the write path under load and under kills, on one real SQLite file:
- 8 processes x 2,000 fills, each process also writing strategy events from a second thread:
  nothing lost, nothing duplicated, no "database is locked", every fill under its own strategy
  and account, aggregates equal to a recomputation from the executions;
- a writer SIGKILLed in the middle of a batch, 20 times: the file passes integrity_check and no
  execution is left without its position consequences."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.aggregates import assert_aggregates_match

from quantstrip.db.handler import Database

WORKER = r"""
import sys, threading
from quantstrip.db.handler import Database, ExecutionInput
path, worker, fills, events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
db = Database(path)
strategy = f"strategy{worker}"
db.ensure_strategy(strategy)
instrument = db.ensure_instrument(f"SYM{worker % 3}")
failures = []

def signals():  # the client's own job, on its own thread
    try:
        for i in range(events):
            db.insert_strategy_event(strategy, f"SYM{worker % 3}", "signal", i, {"n": i})
    except BaseException as exc:
        failures.append(exc)

thread = threading.Thread(target=signals)
thread.start()
for i in range(fills):  # the broker's fills, one transaction each
    db.record_execution(ExecutionInput(
        "sim", f"ACC{worker}", f"w{worker}-{i}", strategy, instrument,
        "BUY" if (i // 3) % 2 == 0 else "SELL", 1 + i % 5, f"{100 + (i % 17) / 4:.2f}",
        f"2025-01-02T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{worker:06d}Z",
    ))
thread.join()
if failures:
    raise failures[0]
"""


@pytest.mark.timeout(1800)
def test_eight_processes_with_two_threads_each_lose_duplicate_and_misfile_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.db"
    Database(path).close()
    workers, fills, events = 8, 2000, 1000
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(w), str(fills), str(events)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=1500)
        assert proc.returncode == 0, err
        assert "locked" not in err
    with Database(path) as db:
        count = lambda sql: db.query(sql)[0][0]  # noqa: E731
        assert count("SELECT COUNT(*) FROM executions") == workers * fills
        assert count("SELECT COUNT(DISTINCT exec_id) FROM executions") == workers * fills
        assert count("SELECT COUNT(*) FROM position_events") == workers * fills
        assert count("SELECT COUNT(*) FROM strategy_events") == workers * events
        assert count("SELECT COUNT(DISTINCT strategy_id || '-' || value) FROM strategy_events") == (
            workers * events
        )
        misfiled = count(
            "SELECT COUNT(*) FROM executions e JOIN strategies s ON s.id = e.strategy_id "
            "JOIN accounts a ON a.id = e.account_id "
            "WHERE s.name <> 'strategy' || substr(e.exec_id, 2, instr(e.exec_id, '-') - 2) "
            "OR a.account_code <> 'ACC' || substr(e.exec_id, 2, instr(e.exec_id, '-') - 2)"
        )
        assert misfiled == 0
        assert_aggregates_match(db)
        incremental = [tuple(r) for r in db.query("SELECT * FROM positions ORDER BY 1, 2, 3")]
        db.rebuild_positions()
        rebuilt = [tuple(r) for r in db.query("SELECT * FROM positions ORDER BY 1, 2, 3")]
        assert [r[:8] for r in rebuilt] == [r[:8] for r in incremental]


KILLED = r"""
import sys
from quantstrip.db.handler import Database, ExecutionInput
path, run = sys.argv[1], int(sys.argv[2])
db = Database(path)
instruments = [db.ensure_instrument(s) for s in ("AAA", "BBB")]
for batch in range(1_000_000):
    fills = []
    for i in range(40):
        n = batch * 40 + i
        # every seventh fill is older than the ones before it: replays run when killed too
        second = n - 30 if n % 7 == 6 else n
        fills.append(ExecutionInput(
            "sim", "ACC", f"r{run}-{n}", f"s{n % 2}", instruments[n % 2],
            "BUY" if (n // 4) % 3 else "SELL", 1 + n % 6, f"{50 + n % 13}.25",
            f"2025-02-{1 + run:02d}T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:"
            f"{second % 60:02d}Z",
        ))
    db.record_executions(fills)
    print(batch, flush=True)
"""


@pytest.mark.timeout(1200)
def test_a_writer_killed_mid_batch_twenty_times_leaves_every_fill_with_its_consequences(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.db"
    Database(path).close()
    for run in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED, str(path), str(run)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        committed, deadline = -1, time.monotonic() + 300
        while committed < 1 + run % 3 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed = int(line)
        # The writer goes straight on with its next batch: killed in the middle of it.
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert committed >= 1, proc.stderr.read() if proc.stderr else ""
        conn = sqlite3.connect(path)
        stored = conn.execute(
            "SELECT COUNT(*) FROM executions WHERE exec_id LIKE ?", (f"r{run}-%",)
        ).fetchone()[0]
        conn.close()
        assert stored % 40 == 0 and stored >= (committed + 1) * 40  # whole batches only
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    orphans = conn.execute(
        "SELECT COUNT(*) FROM executions e LEFT JOIN position_events p ON p.execution_id = e.id "
        "WHERE e.superseded_by IS NULL AND p.id IS NULL"
    ).fetchone()[0]
    assert orphans == 0
    conn.close()
    with Database(path) as db:
        assert_aggregates_match(db)
        before = {
            table: sorted(tuple(r) for r in db.query(sql))
            for table, sql in {
                "positions": "SELECT strategy_id, account_id, instrument_id, qty_micros, "
                "cost_basis_micros, realized_pnl_micros FROM positions",
                "lots": "SELECT execution_id, qty_micros, cost_basis_micros FROM position_lots",
            }.items()
        }
        db.rebuild_positions()
        after = {
            table: sorted(tuple(r) for r in db.query(sql))
            for table, sql in {
                "positions": "SELECT strategy_id, account_id, instrument_id, qty_micros, "
                "cost_basis_micros, realized_pnl_micros FROM positions",
                "lots": "SELECT execution_id, qty_micros, cost_basis_micros FROM position_lots",
            }.items()
        }
        assert after == before
