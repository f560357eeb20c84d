"""One sweep run, executed on a Dask worker.

The run gets a directory of its own under the sweep's (`runs/<key>/`), which is also the data
directory (`QUANTSTRIP_HOME`) of its kernel: `workspace().simulation_database` and
`workspace().database` there are the run's files, so a notebook cannot reach production or
another run through the workspace. papermill executes the notebook with the run's parameters
in a warm kernel (see `kernels`); its metrics are then read from the run's database with the
portfolio report's functions. A watcher thread ends the kernel when the sweep is cancelled,
when the run exceeds its time limit or when the kernel's memory exceeds the limit; the run is
then recorded as cancelled or failed, with the reason.

Everything crosses the wire as plain data (`RunTask` in, a dict out), so any worker that has
Quantstrip installed can run it: the in-process cluster, or `dask worker` processes elsewhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import shutil
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from quantstrip import clock
from quantstrip.research.states import RunStatus

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
WATCH_INTERVAL_S = 0.5
NOT_STARTED = "cancelled before it started"


@dataclass(frozen=True)
class RunTask:
    sweep: str
    key: str
    number: int
    parameters: dict[str, Any]  # the swept values
    injected: dict[str, Any]  # what papermill injects: the swept values and seed/start/end
    seed: int
    source: Any  # StrategySource
    sweep_dir: str
    horizon: tuple[str | None, str | None]
    folds: list[dict[str, str]] = field(default_factory=list)
    settings_path: str | None = None
    workspace_root: str | None = None
    kernel: str | None = None
    fresh_kernel: bool = False
    memory_limit: int | None = None  # bytes, the kernel and its children
    time_limit_s: float | None = None
    cancel_event: str | None = None  # the Dask Event the sweep sets to cancel


class _Watch:
    """Ends the kernel (process group) on cancel, time limit or memory limit."""

    def __init__(self, task: RunTask, event: Any = None) -> None:
        self.task = task
        self.pid: int | None = None
        self.reason: tuple[RunStatus, str] | None = None
        self._done = threading.Event()
        self._started: float | None = None  # when the notebook began executing
        self._event = event  # the sweep's cancel Event (distributed.Event), if any
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"watch-{task.key[:8]}", daemon=True)

    def __enter__(self) -> _Watch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.thread.join(timeout=10)

    def cancelled(self) -> bool:
        if self._event is None:
            return False
        try:
            return bool(self._event.is_set())
        except Exception:
            return False

    def attach(self, pid: int | None) -> None:
        """The run's kernel is `pid` and the notebook starts now (the time limit counts from
        here, not from a kernel start slowed by a loaded machine); if the run was cancelled
        while its kernel started, end it now."""
        with self._lock:
            self.pid = pid
            self._started = clock.monotonic()
            if self.reason is not None:
                self._kill()

    def _run(self) -> None:
        while not self._done.wait(WATCH_INTERVAL_S):
            reason = self._check()
            if reason is not None:
                with self._lock:
                    self.reason = reason
                    self._kill()
                return

    def _check(self) -> tuple[RunStatus, str] | None:
        if self.cancelled():
            return RunStatus.CANCELLED, "cancelled"
        limit = self.task.time_limit_s
        if limit and self._started is not None and clock.monotonic() - self._started > limit:
            return RunStatus.FAILED, f"time limit: the run took longer than {limit:g} s"
        if self.task.memory_limit and self.pid:
            used = _tree_rss(self.pid)
            if used > self.task.memory_limit:
                return (
                    RunStatus.FAILED,
                    f"memory limit: the kernel used {used / 2**20:.0f} MiB "
                    f"(limit {self.task.memory_limit / 2**20:.0f} MiB)",
                )
        return None

    def _kill(self) -> None:
        if not self.pid:
            return
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(self.pid)
            for process in [*parent.children(recursive=True), parent]:
                with contextlib.suppress(psutil.Error):
                    process.kill()


def _tree_rss(pid: int) -> int:
    try:
        parent = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
    except psutil.Error:
        return 0


def _error_text(exc: BaseException) -> tuple[str, str]:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return f"{exc.ename}: {exc.evalue}", ANSI.sub("", "\n".join(exc.traceback))
    return f"{type(exc).__name__}: {exc}", traceback.format_exc()


_thread = threading.local()


def execute_run(task: RunTask) -> dict[str, Any]:
    """Run one point of the sweep; never raises for a failing strategy (the outcome is data).

    The run executes in a context of its worker thread's own: Dask hands a task the context
    variables of the code that scheduled it, and jupyter_client / nbclient keep their event
    loop in one (`jupyter_core.utils`), so a sweep started from a notebook (whose kernel runs
    a loop) would otherwise drive this thread's kernels with the kernel's running loop. One
    context per thread also keeps the loop a warm kernel was started with for its next run.
    """
    # The worker's client (for the cancel Event) and name are found through Dask's context.
    event = None
    if task.cancel_event:
        with contextlib.suppress(Exception):
            from distributed import Event, get_client

            event = Event(task.cancel_event, client=get_client())
    worker = _worker_name()
    context = getattr(_thread, "context", None)
    if context is None:
        context = _thread.context = contextvars.Context()
    return context.run(_execute, task, event, worker)


def _execute(task: RunTask, event: Any, worker: str) -> dict[str, Any]:
    import papermill

    from quantstrip.db.handler import Database
    from quantstrip.research import kernels
    from quantstrip.research.metrics import run_metrics, window_metrics

    started_at, started = clock.now().isoformat(timespec="seconds"), clock.monotonic()
    run_dir = Path(task.sweep_dir) / "runs" / task.key
    # A retried run starts from nothing: an earlier attempt's fills must not count twice.
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    database = run_dir / "simulation.db"
    Database(database).close()  # exists (migrated) even if the strategy never trades
    source = task.source
    original_dir = source.path.parent
    cwd = str(original_dir if original_dir.is_dir() else run_dir)
    if source.kind == "module":
        module_path = run_dir / "strategy.py"
        module_path.write_text(source.text)
        notebook = source.notebook(module_path, list(task.injected))
    else:
        notebook = source.notebook()
    env = {
        "QUANTSTRIP_HOME": str(run_dir),
        "QUANTSTRIP_DATABASE": str(database),
        "QUANTSTRIP_MODE": "simulation",
        "QUANTSTRIP_SWEEP": task.sweep,
        "QUANTSTRIP_RUN": task.key,
    }
    if task.workspace_root:
        env["QUANTSTRIP_WORKSPACE"] = task.workspace_root
    if task.settings_path and Path(task.settings_path).is_file():
        env["QUANTSTRIP_SETTINGS"] = task.settings_path
    output = run_dir / "output.ipynb"
    status, error, tb = RunStatus.SUCCESS, None, None
    kernels.register_engine()
    name = kernels.kernel_name_for(notebook, task.kernel)
    watch = _Watch(task, event)
    try:
        if watch.cancelled():
            raise _Cancelled
        with (
            watch,
            kernels.POOL.kernel(
                name, env, cwd, task.seed, Path(task.sweep_dir) / "kernels.log", task.fresh_kernel
            ) as kernel,
        ):
            watch.attach(kernel.pid)
            if watch.reason is not None:
                raise _Cancelled
            papermill.execute_notebook(
                notebook,
                str(output),
                parameters=task.injected,
                engine_name=kernels.ENGINE,
                kernel_name=name,
                language=_language(notebook),
                km=kernel.km,
                progress_bar=False,
                log_output=False,
                request_save_on_cell_execute=True,
            )
    except _Cancelled:
        status, error = RunStatus.CANCELLED, NOT_STARTED
    except Exception as exc:
        status = RunStatus.FAILED
        error, tb = _error_text(exc)
    if watch.reason is not None and error != NOT_STARTED:  # the watcher ended the kernel
        status, error = watch.reason
    figures: dict[str, Any] = {}
    equity: list[tuple[str, float]] = []
    windows: list[dict[str, Any]] = []
    if status is RunStatus.SUCCESS:
        try:
            figures, curve = run_metrics(database, task.horizon)
            equity = [(str(day.date()), float(value)) for day, value in curve.items()]
            windows = window_metrics(database, task.folds)
        except Exception as exc:
            status = RunStatus.FAILED
            error, tb = _error_text(exc)
            error = f"metrics: {error}"
    return {
        "key": task.key,
        "number": task.number,
        "status": status.value,
        "error": error,
        "traceback": tb,
        "started_at": started_at,
        "duration_s": round(clock.monotonic() - started, 3),
        "worker": worker,
        "kernel_pid": watch.pid,
        "database": str(database),
        "output": str(output) if output.exists() else None,
        "figures": figures,
        "equity": equity,
        "windows": windows,
    }


def _language(notebook: Any) -> str:
    """papermill picks its parameter translator by language; notebooks saved by some tools
    name none, and a Python kernel is what a sweep runs."""
    metadata = notebook.get("metadata", {})
    return str(
        metadata.get("kernelspec", {}).get("language")
        or metadata.get("language_info", {}).get("name")
        or "python"
    )


class _Cancelled(Exception):
    pass


def _worker_name() -> str:
    with contextlib.suppress(Exception):
        from distributed import get_worker

        return str(get_worker().address)
    return f"pid {os.getpid()}"
