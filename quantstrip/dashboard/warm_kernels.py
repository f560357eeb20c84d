"""Dashboard page kernels forked from a warm starter (warm_starter.py) instead of started cold.

Every Voila page gets a new kernel, and a cold kernel spent 1-2 s importing before the page's
first line ran: most of what separated the dashboard's pages from "interactive at once". The
other ways out were worse for an operator: Voila's preheated kernels run each page before anyone
asks (a pool of kernels per page, figures as old as the pool, more kernels than open tabs), and
caching the pages' figures would show an old book. Forking keeps each page's kernel its own and
its figures computed when the page is opened; only the imports are done in advance.

The kernelspec `quantstrip-page` (jupyter_config/data/kernels/) names this provisioner; the
dashboard's and the viewer's pages use it. Its kernels keep no input history
(`--HistoryManager.enabled=False`): a page's cells are its notebook's, and the history was an
SQLite write in ~/.ipython on every page load. Anything the starter cannot do (it is down and will
not start, it refuses) is logged as an error and the kernel is started cold, as before: a page
must open even when its kernel cannot be warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import IO, Any

import psutil
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner

log = logging.getLogger("quantstrip.dashboard")
READY_TIMEOUT_S = 120.0


class StarterUnavailable(RuntimeError):
    """The warm starter is not running and could not be started, or refused a request."""


class ForkedKernelProcess:
    """What LocalProvisioner needs of a Popen, for a kernel the starter forked (so not this
    process's child: its end is seen by its process entry, and its exit code is unknown)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._process = psutil.Process(pid)  # remembers the start time: immune to pid reuse
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                alive = self._process.status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                alive = False
            if not alive:
                self.returncode = 1  # ended; the starter reaped it and kept no code
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with contextlib.suppress(psutil.NoSuchProcess):  # already reaped by the starter
            self._process.wait(timeout)
        return self.poll() or 0

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):  # ended meanwhile, as Popen allows
                self._process.send_signal(signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


STARTER_COMMAND = (sys.executable, "-m", "quantstrip.dashboard.warm_starter")


class WarmStarter:
    """The starter process of this server, started on first use, restarted if it died."""

    def __init__(self, command: tuple[str, ...] = STARTER_COMMAND) -> None:
        self.command = command
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        """The running starter's process id (None before its first use or once stopped)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def _running(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        process = subprocess.Popen(
            list(self.command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        try:
            ready = _reply(process.stdout, READY_TIMEOUT_S)
        except StarterUnavailable:
            process.kill()
            process.wait(5)
            raise
        if "ready" not in ready:
            process.kill()
            process.wait(5)
            raise StarterUnavailable(f"the warm kernel starter said {ready!r}")
        self._process = process
        return process

    def warm_up(self) -> None:
        """Start the starter now (in a thread) so the first page does not wait for it."""

        def start() -> None:
            try:
                with self._lock:
                    self._running()
            except Exception as exc:  # the first page will start its kernel cold, and say so
                log.error("the warm kernel starter did not start: %s", exc)

        threading.Thread(target=start, name="warm-starter", daemon=True).start()

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str) -> int:
        with self._lock:
            process = self._running()
            assert process.stdin is not None
            try:
                process.stdin.write(json.dumps({"argv": argv, "env": env, "cwd": cwd}) + "\n")
                process.stdin.flush()
                reply = _reply(process.stdout, READY_TIMEOUT_S)
            except (OSError, StarterUnavailable) as exc:
                # Gone, or out of step with its replies: a new one is started next time.
                process.kill()
                process.wait(5)
                self._process = None
                raise StarterUnavailable(f"the warm kernel starter failed: {exc}") from exc
        if "pid" not in reply:
            raise StarterUnavailable(f"the warm kernel starter refused: {reply.get('error')}")
        return int(reply["pid"])

    def stop(self) -> None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                assert self._process.stdin is not None
                self._process.stdin.close()  # the starter ends at end of input
                try:
                    self._process.wait(10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
            self._process = None


def _reply(stream: IO[str] | None, timeout_s: float) -> dict[str, Any]:
    """One reply line of the starter, within `timeout_s`."""
    assert stream is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not result:
        raise StarterUnavailable(f"the warm kernel starter did not answer in {timeout_s:.0f}s")
    if not result[0]:
        raise StarterUnavailable("the warm kernel starter ended (see the server's log)")
    return dict(json.loads(result[0]))


STARTER = WarmStarter()


class WarmProvisioner(LocalProvisioner):  # type: ignore[misc]
    """LocalProvisioner whose kernels are forked by the warm starter."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        env = dict(kwargs.get("env") or os.environ)
        cwd = str(kwargs.get("cwd") or os.getcwd())
        try:
            pid = await asyncio.to_thread(STARTER.spawn, cmd, env, cwd)
        except StarterUnavailable as exc:
            log.error("page kernel started cold: %s", exc)
            return await super().launch_kernel(cmd, **kwargs)  # type: ignore[no-any-return]
        self.process = ForkedKernelProcess(pid)
        self.pid = pid
        self.pgid = pid  # the kernel leads its own session (warm_starter._become_kernel)
        self.cwd = cwd
        return self.connection_info  # type: ignore[no-any-return]
