"""OS processes of the clients: spawn, find again after a daemon restart, adopt, reap, kill.

Every client process leads its own session and process group (`start_new_session`, or
`os.setsid()` in a notebook run), so a stop or kill reaches its children too (a job's
subprocesses, a notebook's kernel) and the daemon's own death does not take the clients with it.
Each process has a pid file under `<data dir>/run/` holding its pid *and* create time: a later
daemon touches a pid only if both match, never a recycled pid.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from quantstrip.client import heartbeat
from quantstrip.client.runner import crash_path, exit_path
from quantstrip.daemon.states import ClientKind

log = logging.getLogger("quantstrip.daemon")

ORPHAN_GRACE_S = 3.0
LOG_TAIL_LINES = 40
MODULE, NOTEBOOK = ClientKind.MODULE, ClientKind.NOTEBOOK  # pid files: <client>.<kind>.pid


class AdoptedProcess:
    """A client process started by a previous daemon, with the part of Popen's interface the
    supervisor uses. Not being its parent, the daemon learns its exit status from the runner's
    exit file (or its crash file); a process that died without either was killed (-SIGKILL)."""

    def __init__(self, name: str, proc: psutil.Process) -> None:
        self.name = name
        self.pid = proc.pid
        self._proc = proc
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            if self._proc.is_running() and self._proc.status() != psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            pass
        self.returncode = self._exit_status()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        with contextlib.suppress(psutil.Error):
            self._proc.wait(timeout)
        return self.poll()

    def _exit_status(self) -> int:
        for path, key in ((exit_path(self.name), "code"), (crash_path(self.name), None)):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if int(data.get("pid", 0)) == self.pid:
                return int(data[key]) if key else 1
        return -signal.SIGKILL


class AdoptedRun:
    """A notebook run child left by a previous daemon, with the part of multiprocessing's
    Process interface the daemon uses. The child records its own outcome in `client_runs`."""

    def __init__(self, proc: psutil.Process) -> None:
        self.pid = proc.pid
        self._proc = proc
        self.exitcode: int | None = None

    def is_alive(self) -> bool:
        try:
            return self._proc.is_running() and self._proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(psutil.Error):
            self._proc.wait(timeout)

    def kill(self) -> None:
        with contextlib.suppress(psutil.Error):
            self._proc.kill()

    def close(self) -> None:
        """Nothing to release: the process was never ours."""


class NeverStarted:
    """Stands for a run process that failed to start (the fork server refused)."""

    pid = 0
    exitcode: int | None = None

    def is_alive(self) -> bool:
        return False

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""

    def kill(self) -> None:
        """Nothing to kill."""

    def close(self) -> None:
        """Nothing to release."""


def signature_text(signature: tuple[Any, ...]) -> str:
    return json.dumps(signature, default=str)


def pid_file(name: str, kind: str) -> Path:
    return heartbeat.run_dir() / f"{name}.{kind}.pid"


def write_pid_file(path: Path, pid: int, **extra: Any) -> None:
    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.Error:
        create_time = None
    heartbeat.write_json_atomic(path, {"pid": pid, "create_time": create_time, **extra})


def same_process(pid: int, create_time: float | None) -> psutil.Process | None:
    """The live process with this pid *and* create time (never a recycled pid)."""
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 0.05:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


@dataclass
class Leftover:
    """A live client process a previous daemon left, found through its pid file."""

    proc: psutil.Process
    path: Path
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return MODULE if self.path.name.endswith(f".{MODULE}.pid") else NOTEBOOK


def leftovers() -> list[Leftover]:
    """Live processes named by pid files; stale pid files (process gone or recycled) removed."""
    found = []
    for path in sorted(heartbeat.run_dir().glob("*.pid")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        proc = same_process(int(data.get("pid", 0)), data.get("create_time"))
        if proc is None or not data.get("client"):
            path.unlink(missing_ok=True)
            continue
        found.append(Leftover(proc, path, data))
    return found


def killpg(pid: int, sig: int) -> None:
    if pid <= 0:  # killpg(0) would signal the daemon's own group
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_processes(found: list[tuple[psutil.Process, Path]]) -> None:
    """SIGTERM each process group, SIGKILL what is left after a grace period; drop pid files."""
    for proc, path in found:
        log.warning("stopping %s (pid %s) left by a previous daemon", path.name, proc.pid)
        killpg(proc.pid, signal.SIGTERM)
    if found:
        _, alive = psutil.wait_procs([p for p, _ in found], timeout=ORPHAN_GRACE_S)
        for proc in alive:
            killpg(proc.pid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=ORPHAN_GRACE_S)
    for _, path in found:
        path.unlink(missing_ok=True)


def kill_run_process(process: Any) -> None:
    """SIGKILL a run: its process group, the child itself (in case it is killed before its first
    instruction made it a group leader), and its kernel with the kernel's own group.

    jupyter_client starts every kernel in a session of its own, outside the run's group: killed
    with the group only, the kernel ran on (it ends when its parent poller notices, about a
    second later, or never) and went on executing the notebook's cells after the daemon had
    recorded the run as killed."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        process.kill()
    for child in descendants:
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(child.pid) == child.pid:  # a kernel leads its own group
                killpg(child.pid, signal.SIGKILL)
            child.kill()


def spawn_runner(
    name: str,
    entry_file: Path,
    entry_class: str | None,
    heartbeat_interval_s: float,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
) -> subprocess.Popen[bytes]:
    """Start `python -m quantstrip.client.runner` for one module client, in its own session,
    its raw output appended to `log_path`."""
    cmd = [
        sys.executable,
        "-m",
        "quantstrip.client.runner",
        "--name",
        name,
        "--file",
        str(entry_file),
        "--heartbeat-interval",
        str(heartbeat_interval_s),
    ]
    if entry_class:
        cmd += ["--class", entry_class]
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


def read_crash(name: str) -> dict[str, Any]:
    """What the runner wrote about its fatal error (error text, traceback), if anything."""
    try:
        return dict(json.loads(crash_path(name).read_text()))
    except (OSError, ValueError):
        return {}


def process_log(logs: Path, name: str) -> Path:
    """Raw stdout/stderr of a client's processes (what logging did not catch: a segfault,
    print()). Kept out of logs/*.log, which belongs to the logger's per-client streams."""
    path = logs / "process" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
