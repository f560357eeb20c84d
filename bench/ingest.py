"""Executions per second through `record_execution` (one per transaction, and batched) beside a
bare sqlite3 INSERT of the same rows into an equivalent plain table, measured in the same run.

The ratio is the price of what the handler adds: validation, idempotency on the exec id,
commission linking and the position engine updating positions in the same transaction.
Usage: python bench/ingest.py [executions] (default 20,000).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from quantstrip.db.connection import connect
from quantstrip.db.handler import Database, ExecutionInput

BATCH = 500


def rows(count: int, instrument: int) -> list[ExecutionInput]:
    return [
        ExecutionInput(
            "sim",
            "ACC",
            f"e{i}",
            f"s{i % 10}",
            instrument,
            "BUY" if (i // 2) % 2 == 0 else "SELL",
            1 + i % 7,
            f"{100 + (i % 13) / 8:.3f}",
            f"2025-01-02T{10 + i // 3_600_000:02d}:{i // 60_000 % 60:02d}:{i // 1000 % 60:02d}."
            f"{i % 1000:03d}Z",
        )
        for i in range(count)
    ]


def bench_handler(folder: Path, fills: list[ExecutionInput], batched: bool) -> float:
    with Database(folder / f"handler-{batched}.db") as db:
        db.ensure_instrument("AAPL")
        start = time.perf_counter()
        if batched:
            for i in range(0, len(fills), BATCH):
                db.record_executions(fills[i : i + BATCH])
        else:
            for fill in fills:
                db.record_execution(fill)
        return time.perf_counter() - start


def bench_bare(folder: Path, fills: list[ExecutionInput], batched: bool) -> float:
    conn = connect(folder / f"bare-{batched}.db")
    conn.execute(
        "CREATE TABLE fills (id INTEGER PRIMARY KEY, exec_id TEXT UNIQUE, strategy TEXT, "
        "instrument INTEGER, side TEXT, qty TEXT, price TEXT, exec_time TEXT)"
    )
    values = [
        (f.exec_id, f.strategy, f.instrument_id, f.side, str(f.qty), str(f.price), f.exec_time)
        for f in fills
    ]
    sql = (
        "INSERT INTO fills (exec_id, strategy, instrument, side, qty, price, exec_time) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    start = time.perf_counter()
    if batched:
        for i in range(0, len(values), BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, values[i : i + BATCH])
            conn.execute("COMMIT")
    else:
        for value in values:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, value)
            conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        fills = rows(count, 1)
        for batched in (False, True):
            handler = bench_handler(folder, fills, batched)
            bare = bench_bare(folder, fills, batched)
            label = f"batched x{BATCH}" if batched else "one per transaction"
            print(
                f"{label:22} record_execution {count / handler:10,.0f}/s   "
                f"bare sqlite3 {count / bare:10,.0f}/s   ratio bare/handler {handler / bare:5.1f}x"
            )
    print(f"sqlite {sqlite3.sqlite_version}, {count:,} executions")


if __name__ == "__main__":
    main()
