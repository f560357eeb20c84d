"""Notebook runs, the daemon's side: slots, run specs and the fork server that runs papermill.

The daemon never imports papermill itself (about two seconds, on every daemon start). A
multiprocessing fork server preloads `quantstrip.daemon.nbexec` (which imports papermill) once;
each run is a fork of that server, so starting a run costs milliseconds and still gets a fresh
kernel. `run_child` is the picklable entry point the daemon hands to the fork server: it lives
here, in a module that is cheap to import, and finds `nbexec` already loaded in the child.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("quantstrip.daemon")

RUNNER_MODULE = "quantstrip.daemon.nbexec"

_context: Any = None


@dataclass
class NotebookRun:
    """A run in progress, as the daemon tracks it."""

    run_id: int
    process: Any  # multiprocessing.Process (forked from the fork server); None while starting
    started: float  # monotonic
    scheduled_for: str | None
    output_path: Path
    deadline: float | None  # monotonic; the whole-run wall-clock limit
    killed_reason: str | None = None  # "status:message" once the daemon killed it
    pending: Future[Any] | None = None  # the start of `process`, off the main loop


def run_child(spec: dict[str, Any]) -> None:
    """Runs in the forked child: execute the notebook (see nbexec.execute_run)."""
    from quantstrip.daemon.nbexec import execute_run

    execute_run(spec)


def context() -> Any:
    """The fork-server multiprocessing context, with papermill preloaded in the server."""
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([RUNNER_MODULE])
        _context = ctx
    return _context


def start_fork_server() -> None:
    """Start the server now (no-op if it runs), so its one-time import happens while nothing is
    due rather than delaying the first run."""
    context()
    try:
        from multiprocessing import forkserver

        forkserver.ensure_running()
    except Exception:
        log.exception("fork server did not start; it will be retried at the first run")


def start_run(spec: dict[str, Any]) -> Any:
    process = context().Process(
        target=run_child, args=(spec,), name=f"run-{spec['client']}-{spec['run_id']}"
    )
    process.start()
    return process
