"""Executes one notebook run with papermill, in a child process of the daemon's fork server.

`import papermill` costs about two seconds, so the daemon preloads this module in a
multiprocessing fork server once; each run is then a fast fork of that server with a fresh
kernel. The child makes itself a process-group leader so the daemon can enforce the whole-run
wall-clock limit by killing the group (papermill's own `execution_timeout` is per cell), kernel
included. The child records its own outcome in `client_runs`, so a run that finishes while the
daemon restarts is still recorded.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import papermill  # preloaded in the fork server: the point of this module

from quantstrip import clock
from quantstrip.daemon.states import RunStatus

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# papermill tags the cell it inserts; it is not one of the author's cells.
INJECTED_TAG = "injected-parameters"
ERROR_TAG = "papermill-error-cell-tag"
KERNEL_START_TIMEOUT_S = 60


def kernel_for(requested: str | None) -> str:
    """The configured kernel, else the project's 'quantstrip' kernel if registered, else the
    interpreter's own 'python3' (ipykernel's native kernel runs in this same venv)."""
    if requested:
        return requested
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        if "quantstrip" in KernelSpecManager().find_kernel_specs():
            return "quantstrip"
    except Exception:
        pass
    return "python3"


def source_cell_number(output_path: Path, cell_index: int) -> int:
    """1-based position of the failing cell in the author's notebook (as Jupyter shows it),
    not counting the parameters cell papermill injected."""
    try:
        import nbformat

        nb = nbformat.read(output_path, as_version=4)
        # `cell_index` counts the cells papermill executed; the error banners it adds to the
        # output afterwards are not among them.
        executed = [c for c in nb.cells if ERROR_TAG not in c.get("metadata", {}).get("tags", [])]
        injected = sum(
            1
            for cell in executed[:cell_index]
            if INJECTED_TAG in cell.get("metadata", {}).get("tags", [])
        )
        return cell_index - injected + 1
    except Exception:
        return cell_index + 1


def _take_run(spec: dict[str, Any]) -> bool:
    """Mark the claimed run as started by this process, unless a daemon that restarted since
    the claim has taken it back (it runs the slot again itself): one of the two, never both."""
    from quantstrip.db.connection import transaction
    from quantstrip.db.handler import Database

    with contextlib.closing(Database(spec["database"])) as db, transaction(db.conn):
        taken = db.conn.execute(
            "UPDATE client_runs SET pid = ? WHERE id = ? AND status = ? "
            "AND (pid IS NULL OR pid = ?)",
            (os.getpid(), spec["run_id"], str(RunStatus.RUNNING), os.getpid()),
        ).rowcount
    return bool(taken)


def _kernel_ready_at(spec: dict[str, Any]) -> Any:
    """A run launched ahead of its slot starts its fresh kernel now and waits for the slot, so
    the first cell runs at the scheduled time rather than a kernel start later. Returns the
    kernel's manager (papermill uses it instead of starting one; this run shuts it down)."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=kernel_for(spec.get("kernel")))
    km.start_kernel(cwd=spec["cwd"])
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=KERNEL_START_TIMEOUT_S)
    finally:
        kc.stop_channels()
    delay = float(spec["start_at"]) - clock.epoch()
    if delay > 0:
        time.sleep(delay)
    return km


def execute_run(spec: dict[str, Any]) -> None:
    """Entry point of the run child. Exit status 0 = success, 1 = the notebook failed."""
    os.setsid()
    os.environ.update(spec["env"])
    log_path = Path(spec["log_path"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115

    import logging

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    from papermill.exceptions import PapermillExecutionError

    from quantstrip.db.handler import Database
    from quantstrip.db.units import now_text

    if not _take_run(spec):
        print(f"run {spec['run_id']} was taken over by a restarted daemon: not running it")
        return
    output = Path(spec["output_path"])
    output.parent.mkdir(parents=True, exist_ok=True)
    status, error, error_cell, tb = RunStatus.SUCCESS, None, None, None
    print(f"run {spec['run_id']} of {spec['client']}: {spec['input_path']} -> {output}")
    km = None
    started = clock.monotonic()
    try:
        if spec.get("start_at"):
            km = _kernel_ready_at(spec)
            started = clock.monotonic()
        papermill.execute_notebook(
            spec["input_path"],
            str(output),
            parameters=spec["parameters"],
            kernel_name=kernel_for(spec.get("kernel")),
            cwd=spec["cwd"],
            progress_bar=False,
            log_output=True,
            request_save_on_cell_execute=True,
            execution_timeout=spec.get("cell_timeout_s"),
            km=km,
        )
    except PapermillExecutionError as exc:
        status = RunStatus.FAILED
        error = f"{exc.ename}: {exc.evalue}"
        error_cell = source_cell_number(output, exc.cell_index)
        tb = ANSI.sub("", "\n".join(exc.traceback))
    except BaseException as exc:
        status = RunStatus.FAILED
        error = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc()
    finally:
        if km is not None:
            with contextlib.suppress(Exception):
                km.shutdown_kernel(now=True)
    print(f"run {spec['run_id']} ended: {status} {error or ''}")
    with contextlib.closing(Database(spec["database"])) as db:
        db.update(
            "client_runs",
            spec["run_id"],
            status=str(status),
            ended_at=now_text(),
            duration_s=round(clock.monotonic() - started, 3),
            output_path=str(output) if output.exists() else None,
            error=error,
            error_cell=error_cell,
            traceback=tb,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    if status != RunStatus.SUCCESS:
        sys.exit(1)
