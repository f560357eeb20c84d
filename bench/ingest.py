"""Speed of the ledger's write path, each figure beside a baseline measured in the same run.

Cases (medians of 3 where a case is short enough to repeat):
  throughput   fills/s through `record_execution` (one per transaction) and `record_executions`
               (batches of 500) vs bare sqlite3 INSERTs of the same rows into the real
               `executions` table, same connection settings (WAL, synchronous=NORMAL).
               Goals: >= 0.5x bare one per transaction, >= 0.3x bare batched.
               Also shown, the floor: bare sqlite3 writing every row the handler writes per
               fill (execution, position event, closures, lots, position row; the aggregate
               triggers on) with no reads and no Python arithmetic: the best any handler on
               this schema can do.
  lots         cost of a fill when its position holds 5,000 open lots vs 1 open lot.
               Goal: <= 2x.
  late         a fill older than its strategy's newest event (on another instrument, so its own
               position needs no replay) vs an in-order fill, at 100,000 position events
               (250 a day). Goal: <= 2x. Also shown: half the history late (informational).
  reorder      a fill arriving 10 fills late into a position of 10,000 fills (catching up
               after a reconnect). Goal: <= 10 ms. Also shown: 5,000 fills late (informational).
  processes    8 processes x 2,000 fills into one file, wall clock. Goal: < 60 s.

Usage: python bench/ingest.py [case ...] [--count N] [--timeout S] [--cpu]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from quantstrip.db.connection import connect
from quantstrip.db.handler import Database, ExecutionInput
from quantstrip.db.units import to_micros, utc_text

BATCH = 500
REPEATS = 3
T0 = datetime(2025, 1, 2, tzinfo=UTC)


class CLOCK:
    """Wall-clock time by default; `--cpu` measures this process's CPU time instead, which a
    machine shared with other work (a load average far above its cores) disturbs much less.
    The processes case always uses wall-clock time."""

    now = time.perf_counter


def stamp(second: float) -> str:
    """Fill times: `second` seconds after 2025-01-02 00:00 UTC, microsecond resolution."""
    moment = T0 + timedelta(microseconds=round(second * 1_000_000))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_db(path: Path, strategies: list[str]) -> Database:
    db = Database(path)
    for name in strategies:
        db.ensure_strategy(name)
    return db


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---- throughput ----
def flow(count: int, instrument: int, prefix: str = "e") -> list[ExecutionInput]:
    """Fills on one instrument over ten strategies, alternating pairs of buys and sells."""
    return [
        ExecutionInput(
            "sim",
            "ACC",
            f"{prefix}{i}",
            f"s{i % 10}",
            instrument,
            "BUY" if (i // 2) % 2 == 0 else "SELL",
            1 + i % 7,
            f"{100 + (i % 13) / 8:.3f}",
            stamp(i / 1000),
        )
        for i in range(count)
    ]


def handler_run(path: Path, count: int, batched: bool) -> float:
    with new_db(path, [f"s{i}" for i in range(10)]) as db:
        fills = flow(count, db.ensure_instrument("AAPL"))
        start = CLOCK.now()
        if batched:
            for i in range(0, len(fills), BATCH):
                db.record_executions(fills[i : i + BATCH])
        else:
            for fill in fills:
                db.record_execution(fill)
        return CLOCK.now() - start


def bare_run(path: Path, count: int, batched: bool) -> float:
    """The same rows straight into the real executions table (ids resolved beforehand)."""
    with new_db(path, [f"s{i}" for i in range(10)]) as db:
        instrument = db.ensure_instrument("AAPL")
        account = db.ensure_account("sim", "ACC")
        strategies = {f"s{i}": db.strategy_id(f"s{i}") for i in range(10)}
        fills = flow(count, instrument)
    conn = connect(path)
    values = [
        (
            "sim",
            account,
            f.exec_id,
            f.exec_id,
            strategies[str(f.strategy)],
            instrument,
            f.side,
            to_micros(f.qty),
            to_micros(f.price),
            utc_text(f.exec_time),
            utc_text(None),
        )
        for f in fills
    ]
    sql = (
        "INSERT INTO executions (broker, account_id, exec_id, base_exec_id, strategy_id, "
        "instrument_id, side, qty_micros, price_micros, exec_time, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    start = CLOCK.now()
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
    elapsed = CLOCK.now() - start
    conn.close()
    return elapsed


def floor_rows(path: Path, count: int) -> list[list[tuple[str, tuple]]]:
    """What the handler writes for each fill of `flow`, as plain statements: the execution, its
    position event, its closures, the open lots it opens, shrinks or closes, and its position
    row. Taken from a handler run (untimed), so the rows are the handler's own."""
    with new_db(path, [f"s{i}" for i in range(10)]) as db:
        instrument = db.ensure_instrument("AAPL")
        db.record_executions(flow(count, instrument))
        conn = db.conn
        executions = conn.execute(
            f"SELECT {EXECUTION_COLUMNS} FROM executions ORDER BY id"
        ).fetchall()
        events = {
            r[0]: tuple(r)
            for r in conn.execute(f"SELECT {EVENT_COLUMNS} FROM position_events").fetchall()
        }
        closures: dict[int, list[tuple]] = {}
        for r in conn.execute(f"SELECT {CLOSURE_COLUMNS} FROM position_closures ORDER BY id"):
            closures.setdefault(r[0], []).append(tuple(r))
    open_qty: dict[int, int] = {}
    realised: dict[tuple, int] = {}
    plan = []
    for execution in executions:
        ops: list[tuple[str, tuple]] = [(INSERT_EXECUTION, tuple(execution))]
        event = events[execution[0]]
        ops.append((INSERT_EVENT, event))
        key = event[1:4]
        for closure in closures.get(execution[0], []):
            ops.append((INSERT_CLOSURE, closure))
            opening, qty = closure[1], closure[6]
            open_qty[opening] -= qty
            if open_qty[opening] == 0:
                ops.append((DELETE_LOT, (opening,)))
            else:
                ops.append((UPDATE_LOT, (open_qty[opening], open_qty[opening] * 100, opening)))
        qty_before, qty_after = event[4], event[5]
        if abs(qty_after) > abs(qty_before) or qty_before * qty_after < 0:
            opened = abs(qty_after) if qty_before * qty_after <= 0 else qty_after - qty_before
            open_qty[execution[0]] = abs(opened)
            ops.append(
                (
                    INSERT_LOT,
                    (
                        execution[0],
                        *key,
                        execution[0],
                        execution[9],
                        abs(opened),
                        execution[8],
                        event[9],
                    ),
                )
            )
        realised[key] = realised.get(key, 0) + event[10]
        ops.append(
            (
                UPSERT_POSITION,
                (
                    *key,
                    qty_after,
                    event[9],
                    event[7],
                    realised[key],
                    "FIFO",
                    execution[9],
                    execution[11],
                ),
            )
        )
        plan.append(ops)
    return plan


EXECUTION_COLUMNS = (
    "id, broker, account_id, exec_id, base_exec_id, strategy_id, instrument_id, side, "
    "price_micros, exec_time, qty_micros, recorded_at, currency"
)
INSERT_EXECUTION = (
    f"INSERT INTO executions ({EXECUTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
EVENT_COLUMNS = (
    "execution_id, strategy_id, account_id, instrument_id, qty_before_micros, qty_after_micros, "
    "avg_cost_before_micros, avg_cost_after_micros, cost_basis_before_micros, "
    "cost_basis_after_micros, realized_pnl_gross_micros, method, event_time"
)
INSERT_EVENT = (
    f"INSERT INTO position_events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
CLOSURE_COLUMNS = (
    "closing_execution_id, opening_execution_id, strategy_id, account_id, instrument_id, "
    "direction, qty_micros, entry_time, entry_price_micros, exit_time, exit_price_micros, "
    "realized_pnl_gross_micros"
)
INSERT_CLOSURE = (
    f"INSERT INTO position_closures ({CLOSURE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_LOT = (
    "INSERT INTO position_lots (id, strategy_id, account_id, instrument_id, execution_id, "
    "open_time, qty_micros, price_micros, cost_basis_micros) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UPSERT_POSITION = (
    "INSERT INTO positions (strategy_id, account_id, instrument_id, qty_micros, "
    "cost_basis_micros, avg_cost_micros, realized_pnl_micros, method, last_exec_time, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (strategy_id, account_id, instrument_id) DO UPDATE SET "
    "qty_micros = excluded.qty_micros, cost_basis_micros = excluded.cost_basis_micros, "
    "avg_cost_micros = excluded.avg_cost_micros, "
    "realized_pnl_micros = excluded.realized_pnl_micros, "
    "last_exec_time = excluded.last_exec_time, updated_at = excluded.updated_at"
)


UPDATE_LOT = "UPDATE position_lots SET qty_micros = ?, cost_basis_micros = ? WHERE id = ?"
DELETE_LOT = "DELETE FROM position_lots WHERE id = ?"
FLOOR_ORDER = (
    INSERT_EXECUTION,
    INSERT_EVENT,
    INSERT_CLOSURE,
    INSERT_LOT,
    UPDATE_LOT,
    DELETE_LOT,
    UPSERT_POSITION,
)


def floor_run(folder: Path, name: str, count: int, batched: bool) -> float:
    """The floor of the design: bare sqlite3 writing the rows the handler writes per fill
    (execution, position event, closures, lots, position row; triggers on, same settings),
    with no reads, no validation and no position arithmetic."""
    plan = floor_rows(folder / f"{name}-source.db", count)
    path = folder / f"{name}.db"
    with new_db(path, [f"s{i}" for i in range(10)]) as db:  # the same ids as the source
        db.ensure_instrument("AAPL")
        db.ensure_account("sim", "ACC")
    conn = connect(path)
    step = BATCH if batched else 1
    start = CLOCK.now()
    for i in range(0, len(plan), step):
        conn.execute("BEGIN IMMEDIATE")
        if batched:  # one executemany per statement, in an order that keeps references whole
            grouped: dict[str, list[tuple]] = {sql: [] for sql in FLOOR_ORDER}
            for ops in plan[i : i + step]:
                for sql, params in ops:
                    grouped[sql].append(params)
            for sql, rows in grouped.items():
                if rows:
                    conn.executemany(sql, rows)
        else:
            for sql, params in plan[i]:
                conn.execute(sql, params)
        conn.execute("COMMIT")
    elapsed = CLOCK.now() - start
    conn.close()
    return elapsed


def case_throughput(folder: Path, count: int) -> None:
    for batched in (False, True):
        handler = median(
            [handler_run(folder / f"h{batched}{r}.db", count, batched) for r in range(REPEATS)]
        )
        bare = median(
            [bare_run(folder / f"b{batched}{r}.db", count, batched) for r in range(REPEATS)]
        )
        floor = median(
            [floor_run(folder, f"f{batched}{r}", count, batched) for r in range(REPEATS)]
        )
        label = f"batched x{BATCH}" if batched else "one per transaction"
        goal = 0.3 if batched else 0.5
        print(
            f"throughput {label:20} handler {count / handler:9,.0f}/s  bare {count / bare:9,.0f}/s"
            f"  ratio {bare / handler:5.2f}x of bare (goal >= {goal}x)"
        )
        print(
            f"  floor    {label:20} rows only {count / floor:7,.0f}/s  ratio {bare / floor:5.2f}x"
            f" of bare (the most the design allows); handler {floor / handler:5.2f}x of floor"
        )


# ---- cost at many open lots ----
def per_fill_ms(db: Database, fills: list[ExecutionInput]) -> float:
    times = []
    for fill in fills:
        start = CLOCK.now()
        db.record_execution(fill)
        times.append(CLOCK.now() - start)
    return median(times) * 1000


def lots_run(path: Path, lots: int, measured: int = 200) -> float:
    """Median cost of a fill on a long position of `lots` open FIFO lots: each measured pair
    closes the oldest lot (a sell of 1) and opens a new one (a buy of 1)."""
    with new_db(path, ["s"]) as db:
        instrument = db.ensure_instrument("AAPL")
        opening = [
            ExecutionInput("sim", "ACC", f"o{i}", "s", instrument, "BUY", 1, "100", stamp(i))
            for i in range(lots)
        ]
        for i in range(0, lots, BATCH):
            db.record_executions(opening[i : i + BATCH])
        fills = [
            ExecutionInput(
                "sim",
                "ACC",
                f"m{i}",
                "s",
                instrument,
                "SELL" if i % 2 == 0 else "BUY",
                1,
                "101",
                stamp(lots + i),
            )
            for i in range(measured)
        ]
        return per_fill_ms(db, fills)


def case_lots(folder: Path) -> None:
    one = median([lots_run(folder / f"l1-{r}.db", 1) for r in range(REPEATS)])
    many = median([lots_run(folder / f"l5000-{r}.db", 5000) for r in range(REPEATS)])
    print(
        f"open lots  per fill at 1 lot {one:7.3f} ms   at 5,000 lots {many:7.3f} ms   "
        f"ratio {many / one:6.2f}x (goal <= 2x)"
    )


# ---- a late fill at 100k events ----
def late_run(
    path: Path, events: int, behind: int, spacing_s: float, measured: int = 20
) -> tuple[float, float]:
    """In-order vs late fills of one strategy holding `events` position events on 20 instruments,
    `spacing_s` apart. Each late fill is `behind` events older than the strategy's newest and goes
    to an instrument of its own (its position needs no replay; the strategy's capital does)."""
    with new_db(path, ["s"]) as db:
        instruments = [db.ensure_instrument(f"SYM{i}") for i in range(20)]
        history = [
            ExecutionInput(
                "sim",
                "ACC",
                f"h{i}",
                "s",
                instruments[i % 20],
                "BUY" if (i // 20) % 2 == 0 else "SELL",
                1 + i % 3,
                f"{100 + i % 11}",
                stamp(i * spacing_s),
            )
            for i in range(events)
        ]
        for i in range(0, events, BATCH):
            db.record_executions(history[i : i + BATCH])
        late_instrument = db.ensure_instrument("LATE")
        normal_ms, late_ms = [], []
        for i in range(measured):
            newest = events + i  # index of the in-order fill about to be recorded
            in_order = ExecutionInput(
                "sim",
                "ACC",
                f"n{i}",
                "s",
                instruments[0],
                "BUY",
                1,
                "100",
                stamp(newest * spacing_s),
            )
            late = ExecutionInput(
                "sim",
                "ACC",
                f"l{i}",
                "s",
                late_instrument,
                "BUY",
                1,
                "100",
                stamp((newest - behind + 0.5) * spacing_s),
            )
            normal_ms.append(per_fill_ms(db, [in_order]))
            late_ms.append(per_fill_ms(db, [late]))
        return median(normal_ms), median(late_ms)


def case_late(folder: Path, events: int) -> None:
    spacing = 86_400 / 250  # 250 fills a day: 100,000 events are 400 days of history
    normal, late = late_run(folder / "late.db", events, 10, spacing)
    print(
        f"late fill  at {events:,} events: in order {normal:7.3f} ms   10 events late "
        f"{late:8.3f} ms   ratio {late / normal:6.2f}x (goal <= 2x)"
    )
    normal, late = late_run(folder / "late-deep.db", events, events // 2, spacing, measured=5)
    print(
        f"late fill  at {events:,} events: in order {normal:7.3f} ms   {events // 2:,} events "
        f"late {late:8.3f} ms   ratio {late / normal:6.2f}x (informational)"
    )


# ---- an out-of-order fill in a long position ----
def reorder_run(path: Path, fills: int, behind: int, measured: int = 5) -> float:
    """A position of `fills` fills (250 a day); each measured fill arrives `behind` fills
    late."""
    spacing = 86_400 / 250
    with new_db(path, ["s"]) as db:
        instrument = db.ensure_instrument("AAPL")
        history = [
            ExecutionInput(
                "sim",
                "ACC",
                f"h{i}",
                "s",
                instrument,
                "BUY" if (i // 3) % 2 == 0 else "SELL",
                1 + i % 4,
                f"{100 + i % 9}",
                stamp(i * spacing),
            )
            for i in range(fills)
        ]
        for i in range(0, fills, BATCH):
            db.record_executions(history[i : i + BATCH])
        late = [
            ExecutionInput(
                "sim",
                "ACC",
                f"r{i}",
                "s",
                instrument,
                "BUY",
                1,
                "100",
                stamp((fills - behind) * spacing + i + 0.5),
            )
            for i in range(measured)
        ]
        return per_fill_ms(db, late)


def case_reorder(folder: Path, fills: int) -> None:
    near = reorder_run(folder / "reorder-near.db", fills, 10)
    deep = reorder_run(folder / "reorder-deep.db", fills, fills // 2, measured=3)
    print(
        f"reorder    10 fills late into {fills:,} fills {near:8.2f} ms (goal <= 10 ms)   "
        f"{fills // 2:,} fills late {deep:8.2f} ms (informational)"
    )


# ---- eight processes ----
WRITER = r"""
import sys
from quantstrip.db.handler import Database, ExecutionInput
path, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = Database(path)
db.ensure_strategy(f"strategy{worker}")
instrument = db.ensure_instrument(f"SYM{worker % 3}")
for i in range(count):
    db.record_execution(ExecutionInput(
        "sim", f"ACC{worker}", f"w{worker}-{i}", f"strategy{worker}", instrument,
        "BUY" if (i // 3) % 2 == 0 else "SELL", 1 + i % 5, f"{100 + (i % 17) / 4:.2f}",
        f"2025-01-02T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
    ))
"""


def case_processes(folder: Path, workers: int, per_worker: int, timeout: float) -> None:
    path = folder / "procs.db"
    Database(path).close()
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(w), str(per_worker)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    finished = True
    for proc in procs:
        remaining = max(0.1, timeout - (time.perf_counter() - start))
        try:
            proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            finished = False
    elapsed = time.perf_counter() - start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    conn = connect(path)
    stored = conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
    conn.close()
    total = workers * per_worker
    outcome = f"{elapsed:6.1f} s" if finished else f"did not finish in {timeout:.0f} s"
    print(
        f"processes  {workers} x {per_worker:,} fills: {outcome}, {stored:,}/{total:,} stored, "
        f"{stored / elapsed:7,.0f} fills/s (goal < 60 s)"
    )


CASES: dict[str, Callable[[Path, argparse.Namespace], None]] = {
    "throughput": lambda folder, a: case_throughput(folder, a.count),
    "lots": lambda folder, a: case_lots(folder),
    "late": lambda folder, a: case_late(folder, a.events),
    "reorder": lambda folder, a: case_reorder(folder, a.position),
    "processes": lambda folder, a: case_processes(folder, 8, 2000, a.timeout),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"any of {', '.join(CASES)} (default: all)")
    parser.add_argument("--count", type=int, default=20_000, help="fills per throughput run")
    parser.add_argument("--events", type=int, default=100_000, help="history of the late case")
    parser.add_argument("--position", type=int, default=10_000, help="fills of the reorder case")
    parser.add_argument("--timeout", type=float, default=600, help="processes case limit (s)")
    parser.add_argument("--cpu", action="store_true", help="measure CPU time, not wall time")
    args = parser.parse_args()
    if args.cpu:
        CLOCK.now = time.process_time
    print(f"clock: {'process CPU time' if args.cpu else 'wall time'}")
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    for name in args.cases or list(CASES):
        with tempfile.TemporaryDirectory() as folder:
            CASES[name](Path(folder), args)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
