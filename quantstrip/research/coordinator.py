"""Run a sweep: plan it, skip what already finished, run the rest on Dask, store as runs end.

The coordinator (this process: the CLI, or a notebook's kernel) is the only writer of the
sweep's results; workers return each run's outcome as data. Cancelling (Ctrl-C, the kernel's
interrupt button, or the Research page's Cancel, which leaves a request file the coordinator
polls) sets a Dask Event: runs not yet started return at once, running ones have their kernel
ended by their watcher; the coordinator waits for them (bounded), records the runs that were
cut off as cancelled, and only then closes its connection. Nothing keeps running on the cluster.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from quantstrip import clock
from quantstrip.paths import workspace
from quantstrip.research import cluster as clusters
from quantstrip.research.metrics import METRICS
from quantstrip.research.plan import SweepPlan, make_plan
from quantstrip.research.results import Outcome, Sweep
from quantstrip.research.runner import NOT_STARTED, RunTask, execute_run
from quantstrip.research.states import RunStatus, SweepState
from quantstrip.research.store import SweepStore, research_root

POLL_S = 0.5
CANCEL_GRACE_S = 60.0
DEFAULT_TIME_LIMIT_S = 3600.0


def _row(plan: SweepPlan, result: dict[str, Any], run_seed: int) -> dict[str, pd.DataFrame]:
    """The three tables' rows for one finished attempt."""
    point = next(r for r in plan.runs if r.key == result["key"])
    attempt = uuid.uuid4().hex
    figures = result["figures"]
    row: dict[str, Any] = {
        "sweep": plan.name,
        "key": result["key"],
        "attempt": attempt,
        "number": result["number"],
        "status": result["status"],
        "error": result["error"],
        **point.parameters,
        "seed": run_seed,
        **{m: figures.get(m) for m in METRICS},
    }
    windows = pd.DataFrame(result["windows"])
    for prefix, segment in (("is", "train"), ("oos", "test")):
        part = windows[windows["segment"] == segment] if not windows.empty else windows
        for metric in METRICS:
            row[f"{prefix}_{metric}"] = (
                float(part[metric].astype(float).mean()) if len(part) else None
            )
    row.update(
        notebook_hash=plan.source.digest,
        source=str(plan.source.path),
        started_at=result["started_at"],
        finished_at=clock.now().isoformat(timespec="milliseconds"),
        duration_s=result["duration_s"],
        worker=result["worker"],
        kernel_pid=result.get("kernel_pid"),
        database=result["database"],
        output=result["output"],
        parameters=json.dumps(point.injected, sort_keys=True, default=str),
        traceback=result["traceback"],
    )
    results = pd.DataFrame([row])
    for metric in METRICS:
        results[metric] = results[metric].astype("float64")
    results["trades"] = results["trades"].astype("Int64")
    equity = pd.DataFrame(result["equity"], columns=["date", "equity"])
    equity.insert(0, "attempt", attempt)
    equity.insert(0, "key", result["key"])
    equity["date"] = pd.to_datetime(equity["date"])
    if not windows.empty:
        windows.insert(0, "attempt", attempt)
        windows.insert(0, "key", result["key"])
    return {"results": results, "equity": equity, "windows": windows}


def _progress(total: int, enabled: bool | str, name: str) -> Any:
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"sweep {name}", unit="run", file=sys.stderr)


def sweep(
    source: str | Path,
    grid: dict[str, Any] | list[str] | None = None,
    *,
    symbols: str | list[str] | None = None,
    windows: str | None = None,
    sample: int | None = None,
    seed: int | None = None,
    start: str | date | None = None,
    end: str | date | None = None,
    name: str | None = None,
    cluster: str | None = None,
    workers: int | None = None,
    memory_limit: str | None = None,
    time_limit_s: float | None = DEFAULT_TIME_LIMIT_S,
    kernel: str | None = None,
    fresh_kernels: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> Sweep:
    """Run `source` (a notebook, or `module.py[:function]`) over a parameter grid.

    `grid` is {"fast": [5, 10], "slow": range(50, 201, 25)} or the CLI's ["fast=5,10",
    "slow=50:200:25"]. Returns the stored `Sweep` (its `results()` hold every run, this call's
    and earlier ones'); `outcome` says what this call ran and skipped.
    """
    plan = make_plan(
        source, grid, symbols=symbols, windows=windows, sample=sample, seed=seed,
        start=start, end=end, name=name,
    )  # fmt: skip
    config = clusters.from_settings(cluster, workers, memory_limit)
    store = SweepStore.named(plan.name)
    with store.coordinating():
        outcome, interrupted = _coordinate(plan, store, config, progress, say, time_limit_s,
                                           kernel, fresh_kernels)  # fmt: skip
    if interrupted:
        raise KeyboardInterrupt
    return Sweep(store, store.manifest(), outcome)


def _coordinate(
    plan: SweepPlan,
    store: SweepStore,
    config: clusters.ClusterConfig,
    progress: bool,
    say: Callable[[str], None],
    time_limit_s: float | None,
    kernel: str | None,
    fresh_kernels: bool,
) -> tuple[Outcome, bool]:
    store.clear_cancel()
    finished = store.finished_keys()
    todo = [r for r in plan.runs if r.key not in finished]
    outcome = Outcome(skipped=len(plan.runs) - len(todo))
    now = clock.now().isoformat(timespec="seconds")
    created = now
    with contextlib.suppress(Exception):
        created = store.manifest().get("created_at", now)
    manifest = {
        **plan.describe(),
        "created_at": created,
        "updated_at": now,
        "state": SweepState.RUNNING.value,
        "cluster": config.address or "local",
    }
    store.save_manifest(manifest)
    say(
        f"sweep {plan.name}: {len(plan.runs)} runs of {plan.source.path.name}"
        + (f", {outcome.skipped} already finished (skipped)" if outcome.skipped else "")
    )
    started = clock.monotonic()
    state = SweepState.INTERRUPTED  # unless the runs below end normally or are cancelled
    interrupted = False
    try:
        if todo:
            state, interrupted = _run_all(plan, todo, config, store, outcome, progress, say,
                                          time_limit_s, kernel, fresh_kernels)  # fmt: skip
        else:
            state = SweepState.FINISHED
    finally:
        outcome.seconds = round(clock.monotonic() - started, 3)
        store.compact()
        results = store.read("results")
        current = (
            results[results["notebook_hash"] == plan.source.digest] if len(results) else results
        )
        store.update_manifest(
            state=state.value,
            updated_at=clock.now().isoformat(timespec="seconds"),
            succeeded=int((current["status"] == "success").sum()) if len(current) else 0,
            failed=int((current["status"] == "failed").sum()) if len(current) else 0,
            scheduler=None,
            dashboard=None,
        )
        store.clear_cancel()
    say(
        f"sweep {plan.name}: {outcome.ran} ran ({outcome.failed} failed, {outcome.cancelled} "
        f"cancelled), {outcome.skipped} skipped, in {outcome.seconds:.1f} s; results: "
        f"{store.directory / 'results.parquet'}"
    )
    return outcome, interrupted


def _run_all(
    plan: SweepPlan,
    todo: list,
    config: clusters.ClusterConfig,
    store: SweepStore,
    outcome: Outcome,
    progress: bool,
    say: Callable[[str], None],
    time_limit_s: float | None,
    kernel: str | None,
    fresh_kernels: bool,
) -> tuple[SweepState, bool]:
    from distributed import Event

    from quantstrip.settings import settings_path

    event_name = f"quantstrip-cancel-{plan.name}-{uuid.uuid4().hex[:8]}"
    base = RunTask(
        sweep=plan.name,
        key="",
        number=0,
        parameters={},
        injected={},
        seed=plan.seed,
        source=plan.source,
        sweep_dir=str(store.directory),
        horizon=plan.period,
        folds=[{k: str(v) for k, v in vars(f).items()} for f in plan.folds],
        settings_path=str(settings_path()),
        workspace_root=str(workspace().root),
        kernel=kernel,
        fresh_kernel=fresh_kernels,
        memory_limit=config.memory_limit,
        time_limit_s=time_limit_s,
        cancel_event=event_name,
    )
    with clusters.connect(config) as connection:
        outcome.dashboard = connection.dashboard
        say(connection.note)
        store.update_manifest(scheduler=connection.address, dashboard=connection.dashboard)
        client = connection.client
        cancel = Event(event_name, client=client)
        seeds: dict[str, int] = {}
        futures = []
        for run in todo:
            run_seed = _seed_of(run.injected, plan.seed)
            seeds[run.key] = run_seed
            task = replace(base, key=run.key, number=run.number, parameters=run.parameters,
                           injected=run.injected, seed=run_seed)  # fmt: skip
            futures.append(
                client.submit(
                    execute_run, task, key=f"qs-run-{run.key}-{uuid.uuid4().hex[:6]}", pure=False
                )
            )
        bar = _progress(len(futures), progress, plan.name)
        arrivals = _arrivals(futures, client)
        pending, state, interrupted = set(futures), SweepState.FINISHED, False
        try:
            while pending:
                done = _next_done(arrivals, POLL_S)
                pending -= done
                _collect(done, plan, store, outcome, seeds, bar)
                if pending and store.cancel_requested():
                    say(f"sweep {plan.name}: cancel requested")
                    state = SweepState.CANCELLED
                    break
        except KeyboardInterrupt:
            state, interrupted = SweepState.CANCELLED, True
            say(f"sweep {plan.name}: interrupted, cancelling the cluster's tasks")
        if state is SweepState.CANCELLED:
            # Queued runs return at once, running ones once their watcher ended the kernel.
            cancel.set()
            deadline = clock.monotonic() + CANCEL_GRACE_S
            while pending and clock.monotonic() < deadline:
                done = _next_done(arrivals, POLL_S)
                pending -= done
                _collect(done, plan, store, outcome, seeds, bar)
            if pending:
                client.cancel(list(pending), force=True)
            with contextlib.suppress(Exception):
                cancel.clear()
        if bar is not None:
            bar.close()
    if config.local:
        from quantstrip.research.kernels import POOL

        POOL.shutdown()  # the local worker's kernels are this process's children
    return state, interrupted


def _arrivals(futures: list, client: Any) -> queue.Queue:
    """Futures as they finish, fed from a thread, so the loop can wait with a timeout (to
    notice a cancel request) without polling every future."""
    from distributed import as_completed

    arrivals: queue.Queue = queue.Queue()
    finished = as_completed(futures, loop=client.loop)

    def feed() -> None:
        with contextlib.suppress(Exception):
            for future in finished:
                arrivals.put(future)

    threading.Thread(target=feed, name="sweep-arrivals", daemon=True).start()
    return arrivals


def _next_done(arrivals: queue.Queue, timeout: float) -> set:
    try:
        done = {arrivals.get(timeout=timeout)}
    except queue.Empty:
        return set()
    while True:
        try:
            done.add(arrivals.get_nowait())
        except queue.Empty:
            return done


def _seed_of(injected: dict[str, Any], default: int) -> int:
    value = injected.get("seed", default)
    return value if isinstance(value, int) else abs(hash(str(value))) % 2**31


def _collect(done, plan, store, outcome, seeds, bar) -> None:  # type: ignore[no-untyped-def]
    for future in done:
        try:
            result = future.result()
        except Exception as exc:  # the task itself broke (worker died, cannot unpickle...)
            key = future.key.split("-")[2]
            run = next(r for r in plan.runs if r.key == key)
            result = {
                "key": key, "number": run.number, "status": RunStatus.FAILED.value,
                "error": f"{type(exc).__name__}: {exc}", "traceback": None, "started_at": None,
                "duration_s": None, "worker": None, "kernel_pid": None, "database": None,
                "output": None,
                "figures": {}, "equity": [], "windows": [],
            }  # fmt: skip
        if result["status"] == RunStatus.CANCELLED.value and result["error"] == NOT_STARTED:
            continue  # never ran: nothing to record, a new start of the sweep runs it
        store.add(result["key"], _row(plan, result, seeds[result["key"]]))
        outcome.ran += 1
        outcome.failed += result["status"] == RunStatus.FAILED.value
        outcome.cancelled += result["status"] == RunStatus.CANCELLED.value
        if bar is not None:
            bar.update(1)
            if outcome.failed:
                bar.set_postfix(failed=outcome.failed)


def root() -> Path:
    return research_root()
