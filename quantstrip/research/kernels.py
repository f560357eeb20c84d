"""Warm Jupyter kernels for sweep runs, and the papermill engine that runs a notebook in one.

Starting a kernel and importing pandas, DuckDB and Quantstrip in it costs seconds, often more
than the run itself. A worker therefore keeps its kernels between runs: before each run a
preamble clears the user namespace (`%reset`), points the kernel's environment at the run's own
data directory, changes to the run's working directory, seeds `random` and numpy's global
generator with the run's seed and forgets modules imported from the strategy's own folder (so
an edited helper is imported afresh). Modules installed in the environment stay imported: that
is the saving. A fresh kernel runs the same preamble, so a run's result does not depend on
which runs its kernel executed before (the cluster test checks this: two different schedulers,
identical results). A kernel that failed, was cancelled or has served `MAX_RUNS_PER_KERNEL`
runs is shut down instead of reused; `fresh_kernels=True` starts one per run.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_core.utils import run_sync

MAX_RUNS_PER_KERNEL = 50
START_TIMEOUT_S = 120.0
ENGINE = "quantstrip-sweep"

PREAMBLE = """
get_ipython().reset(new_session=True, aggressive=False)
import os as _qs_os, random as _qs_random, sys as _qs_sys
_qs_os.environ.update({env})
_qs_os.chdir({cwd})
if {cwd} not in _qs_sys.path:
    _qs_sys.path.insert(0, {cwd})
_qs_random.seed({seed})
if "numpy" in _qs_sys.modules:
    _qs_sys.modules["numpy"].random.seed({seed} % 2**32)
for _qs_name, _qs_module in list(_qs_sys.modules.items()):
    _qs_file = getattr(_qs_module, "__file__", None) or ""
    if _qs_file.startswith({cwd} + _qs_os.sep) and not _qs_file.startswith(_qs_sys.prefix):
        del _qs_sys.modules[_qs_name]
for _qs_name in ("quantstrip.db_handler",):
    if _qs_name in _qs_sys.modules:
        _qs_sys.modules[_qs_name].reset()
del _qs_os, _qs_random, _qs_sys, _qs_name
"""


class KernelError(RuntimeError):
    """The kernel did not start, or died before the notebook ran."""


@dataclass
class WarmKernel:
    """An AsyncKernelManager driven from one worker thread's event loop (`run_sync`): nbclient
    needs the async manager to notice a kernel that died (a blocking client waits forever on a
    dead kernel's reply), and its futures belong to the loop of the thread that started it."""

    km: Any  # jupyter_client.AsyncKernelManager
    name: str
    thread: str
    runs: int = 0

    @property
    def pid(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return getattr(process, "pid", None)

    def alive(self) -> bool:
        try:
            return bool(run_sync(self.km.is_alive)())
        except Exception:
            return False

    def prepare(self, env: dict[str, str], cwd: str, seed: int) -> None:
        """Run the preamble (see the module docstring); raises KernelError if the kernel fails."""
        code = PREAMBLE.format(env=repr(dict(env)), cwd=repr(cwd), seed=int(seed))
        client = self.km.client()
        client.start_channels()
        try:
            run_sync(client.wait_for_ready)(timeout=START_TIMEOUT_S)
            reply = run_sync(client.execute_interactive)(
                code, silent=True, store_history=False, timeout=START_TIMEOUT_S, output_hook=_quiet
            )
        except Exception as exc:
            raise KernelError(f"kernel preamble failed: {type(exc).__name__}: {exc}") from exc
        finally:
            client.stop_channels()
        if reply["content"].get("status") != "ok":
            content = reply["content"]
            raise KernelError(
                f"kernel preamble failed: {content.get('ename')}: {content.get('evalue')}"
            )

    def shutdown(self) -> None:
        """Shut the kernel down; from another thread than its own (the pool's final shutdown)
        the process is killed instead of talking to it through another thread's loop."""
        if threading.current_thread().name == self.thread:
            with contextlib.suppress(Exception):
                run_sync(self.km.shutdown_kernel)(now=True)
        pid = self.pid
        if pid:
            with contextlib.suppress(Exception):
                import psutil

                process = psutil.Process(pid)
                for child in [*process.children(recursive=True), process]:
                    with contextlib.suppress(psutil.Error):
                        child.kill()
                psutil.wait_procs([process], timeout=10)
        with contextlib.suppress(Exception):
            self.km.cleanup_connection_file()


def _quiet(message: dict) -> None:
    """Preamble output is not shown anywhere (it prints nothing unless it fails)."""


class KernelPool:
    """Idle warm kernels of this worker process, by thread and kernel name. A worker with
    several threads runs several kernels at once, each used by one run at a time and always
    from the thread that started it (its event loop)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._idle: dict[tuple[str, str], list[WarmKernel]] = {}
        self._kernels: list[WarmKernel] = []

    def _start(self, name: str, env: dict[str, str], cwd: str, log: Path) -> WarmKernel:
        from jupyter_client import AsyncKernelManager

        km = AsyncKernelManager(kernel_name=name)
        log.parent.mkdir(parents=True, exist_ok=True)
        # The kernel's own stderr (start-up warnings, a crash message) goes to a log file, not
        # into the sweep's progress bar.
        with open(log, "ab") as stream:
            try:
                run_sync(km.start_kernel)(
                    cwd=cwd, env={**os.environ, **env}, stdout=stream, stderr=stream
                )
            except Exception as exc:
                raise KernelError(f"kernel {name!r} did not start: {exc}") from exc
        kernel = WarmKernel(km, name, threading.current_thread().name)
        with self._lock:
            self._kernels.append(kernel)
        return kernel

    @contextlib.contextmanager
    def kernel(
        self, name: str, env: dict[str, str], cwd: str, seed: int, log: Path, fresh: bool
    ) -> Iterator[WarmKernel]:
        """A prepared kernel for one run. The run marks it `reusable` by leaving normally; an
        exception (failed or cancelled run) shuts it down."""
        kernel = None
        slot = (threading.current_thread().name, name)
        if not fresh:
            with self._lock:
                while self._idle.get(slot):
                    candidate = self._idle[slot].pop()
                    if candidate.alive():
                        kernel = candidate
                        break
                    self._forget(candidate)
        if kernel is None:
            kernel = self._start(name, env, cwd, log)
        try:
            kernel.prepare(env, cwd, seed)
            yield kernel
        except BaseException:
            self._forget(kernel)
            raise
        kernel.runs += 1
        if fresh or kernel.runs >= MAX_RUNS_PER_KERNEL or not kernel.alive():
            self._forget(kernel)
        else:
            with self._lock:
                self._idle.setdefault(slot, []).append(kernel)

    def _forget(self, kernel: WarmKernel) -> None:
        kernel.shutdown()
        with self._lock:
            if kernel in self._kernels:
                self._kernels.remove(kernel)

    def shutdown(self) -> None:
        with self._lock:
            kernels, self._kernels, self._idle = list(self._kernels), [], {}
        for kernel in kernels:
            kernel.shutdown()

    def __len__(self) -> int:
        with self._lock:
            return len(self._kernels)


POOL = KernelPool()


def register_engine() -> None:
    """Register the papermill engine that runs in a given kernel manager (idempotent)."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger

    if ENGINE in papermill_engines._engines:
        return

    class WarmKernelEngine(NBClientEngine):
        """papermill's nbclient engine, in a kernel that was started (and is kept) by us.
        nbclient leaves a kernel it does not own running, but also its client's channels
        open: they are closed here after every run."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):  # type: ignore[no-untyped-def]
            client = PapermillNotebookClient(
                nb_man,
                km=kwargs["km"],
                kernel_name=kernel_name,
                timeout=kwargs.get("execution_timeout"),
                startup_timeout=kwargs.get("start_timeout", 60),
                log=logger,
                log_output=kwargs.get("log_output", False),
                stdout_file=kwargs.get("stdout_file"),
                stderr_file=kwargs.get("stderr_file"),
            )
            try:
                return client.execute()
            finally:
                if client.kc is not None:
                    with contextlib.suppress(Exception):
                        client.kc.stop_channels()

    papermill_engines.register(ENGINE, WarmKernelEngine)


def kernel_name_for(notebook: dict[str, Any], requested: str | None) -> str:
    """The requested kernel, else the notebook's own when installed, else the project's
    'quantstrip' kernel, else 'python3' (ipykernel in this same environment)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if requested:
        return requested
    installed = KernelSpecManager().find_kernel_specs()
    own = notebook.get("metadata", {}).get("kernelspec", {}).get("name")
    for name in (own, "quantstrip", "python3"):
        if name and name in installed:
            return str(name)
    return "python3"


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
