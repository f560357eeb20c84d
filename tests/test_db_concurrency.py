"""Concurrent writers and a writer killed mid-stream, on one real SQLite file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from support.processes import run_at_once

from quantstrip.db.handler import Database

WRITER = r"""
import sys
from quantstrip.db.handler import Database, ExecutionInput
path, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = Database(path)
instrument = db.ensure_instrument(f"SYM{worker % 3}")
for i in range(count):
    side = "BUY" if (i // 3) % 2 == 0 else "SELL"
    db.record_execution(ExecutionInput(
        "sim", f"ACC{worker % 2}", f"w{worker}-{i}", f"strategy{worker % 4}", instrument, side,
        1 + i % 5, f"{100 + (i % 17) / 4:.2f}",
        f"2025-01-02T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
    ))
    if len(sys.argv) > 4:
        print(i, flush=True)
"""


def snapshot(db: Database) -> list[tuple]:
    return [
        tuple(r)
        for r in db.query(
            "SELECT strategy_id, account_id, instrument_id, qty_micros, cost_basis_micros, "
            "realized_pnl_micros FROM positions ORDER BY 1, 2, 3"
        )
    ]


def test_eight_processes_writing_concurrently_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    Database(path).close()
    # 8 x 500: every writer still waits on the others hundreds of times (8 x 2000 took five
    # minutes of SQLite busy-handler sleeps on a loaded 2-core machine for the same check).
    workers, per_worker = 8, 500
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(w), str(per_worker)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert "locked" not in err
    with Database(path) as db:
        assert db.query("SELECT COUNT(*) FROM executions")[0][0] == workers * per_worker
        assert (
            db.query("SELECT COUNT(DISTINCT exec_id) FROM executions")[0][0] == workers * per_worker
        )
        assert db.query("SELECT COUNT(*) FROM position_events")[0][0] == workers * per_worker
        incremental = snapshot(db)
        db.rebuild_positions()
        assert snapshot(db) == incremental


def test_a_writer_killed_mid_stream_leaves_a_consistent_database(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    Database(path).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "0", "100000", "report"],
        stdout=subprocess.PIPE,
        text=True,
    )
    committed = -1
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    while committed < 300 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert committed >= 300
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
    assert stored >= committed + 1  # every reported commit is there (maybe one more)
    orphans = conn.execute(
        "SELECT COUNT(*) FROM executions e LEFT JOIN position_events p ON p.execution_id = e.id "
        "WHERE p.id IS NULL"
    ).fetchone()[0]
    assert orphans == 0
    assert conn.execute("SELECT COUNT(*) FROM position_events").fetchone()[0] == stored


CREATOR = r"""
import sys, time
from quantstrip.db.handler import Database, ExecutionInput
path, worker, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
time.sleep(max(0.0, start_at - time.monotonic()))  # every process opens the new file at once
db = Database(path)
instrument = db.ensure_instrument("SPY")
db.record_execution(ExecutionInput(
    "sim", "ACC", f"first-{worker}", f"s{worker}", instrument, "BUY", 1, "100",
    "2025-01-02T15:00:00Z",
))
"""


def test_processes_creating_the_same_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    # Two clients in simulation mode start together and both create var/simulation.db.
    path = tmp_path / "simulation.db"
    run_at_once(CREATOR, [[str(path), str(w)] for w in range(6)])
    with Database(path) as db:
        assert db.query("SELECT COUNT(*) FROM executions")[0][0] == 6
        assert db.query("PRAGMA journal_mode")[0][0] == "wal"
        assert db.query("PRAGMA integrity_check")[0][0] == "ok"
