"""Fixtures for the client and daemon tests: a real `quantstrip daemon` process per test.

`daemon` starts `python -m quantstrip daemon` in the test's workspace and talks to it through
the real control API. Clients are written as real `clients/<name>/client.toml` folders with short
heartbeat and backoff settings so the suite stays fast. Teardown stops the daemon and kills
anything a test left behind (clients of a SIGKILLed daemon), found through the daemon's pid files.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
import tomlkit

from quantstrip.daemon.control import ClientStatus, ControlClient, socket_path
from quantstrip.db.handler import Database
from quantstrip.paths import workspace as current_workspace

FAST = {
    "stop_timeout_s": 2.0,
    "restart": {"backoff_s": 0.2, "max_backoff_s": 1.0, "max_restarts": 3, "window_s": 60.0},
    "heartbeat": {"interval_s": 0.5, "timeout_s": 3.0, "startup_timeout_s": 10.0},
}


TICKER = """
from pathlib import Path
from quantstrip import ClientBase

class Ticker(ClientBase):
    def __init__(self):
        super().__init__()
        self.display_name = "Ticker"
        self.scheduler.every(1).seconds.do(self.job)

    def job(self):
        with open(Path(__file__).with_name("ticks.txt"), "a") as f:
            f.write("tick\\n")

    def on_stop(self):
        Path(__file__).with_name("stopped.txt").write_text("clean stop")
"""


def ticks(root: Path, name: str) -> int:
    """How many times the TICKER client named `name` has fired."""
    path = root / "clients" / name / "ticks.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_until(
    condition: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition"
) -> Any:
    """Poll `condition` until truthy (returned) or fail after `timeout_s` (bounded loop)."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # transient (file being written, daemon starting)
            last_error = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last_error})")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def write_client_toml(client: str, /, **config: Any) -> Path:
    directory = current_workspace().clients / client
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "client.toml"
    path.write_text(tomlkit.dumps(config))
    return path


def write_module_client(name: str, source: str, **config: Any) -> Path:
    """A module client: `source` is the module text (dedented); FAST settings unless given."""
    directory = current_workspace().clients / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return write_client_toml(
        name, **_merge({"kind": "module", "entry": f"{name}.py", **FAST}, config)
    )


PARAMETERS = "client_name = ''\nscheduled_for = ''\nrun_time = ''\nmode = ''\nrun_id = 0"


def write_notebook_client(
    name: str, cells: list[str], parameters_cell: str = PARAMETERS, **config: Any
) -> Path:
    """A notebook client whose first cell is the tagged parameters cell."""
    directory = current_workspace().clients / name
    directory.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell(parameters_cell)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells)]
    nbformat.write(nb, directory / f"{name}.ipynb")
    return write_client_toml(
        name,
        **_merge({"kind": "notebook", "entry": f"{name}.ipynb", "kernel": "python3"}, config),
    )


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class DaemonHandle:
    """One daemon process under test, plus helpers to look at what it did."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ws = current_workspace()
        self.proc: subprocess.Popen[bytes] | None = None
        self.control = ControlClient(socket_path(self.ws.home), timeout_s=20)
        self.log_path = root / "daemon-test.log"

    def start(self, timeout_s: float = 60.0) -> DaemonHandle:
        # The environment as it is now: fixtures set up after this one (mail) may have added to it.
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "quantstrip", "daemon"],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._up, timeout_s, "the daemon's control API")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
        return self.control.available()

    def log(self) -> str:
        """The daemon's output and its log stream (logs/daemon.log once the logger is set up)."""
        out = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        stream = self.ws.logs / "daemon.log"
        return out + (stream.read_text(errors="replace") if stream.exists() else "")

    def stop(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL the daemon only: its clients live on in their own sessions."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def statuses(self) -> dict[str, ClientStatus]:
        return {s.name: s for s in self.control.list_clients(fallback_to_db=False)}

    def status(self, name: str) -> ClientStatus:
        return self.statuses()[name]

    def wait_state(self, name: str, state: str, timeout_s: float = 30.0) -> ClientStatus:
        return wait_until(
            lambda: (s := self.status(name)).state == state and s,
            timeout_s,
            f"{name} to be {state}",
        )

    def wait_heartbeat(self, name: str, timeout_s: float = 30.0) -> ClientStatus:
        return wait_until(
            lambda: (s := self.status(name)).state == "running" and s.last_heartbeat and s,
            timeout_s,
            f"{name} to run and beat",
        )

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with Database(self.ws.database, read_only=True) as db:
            return [dict(r) for r in db.query(sql, params)]

    def events(self, name: str, event_type: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM client_events WHERE client_name = ?"
        params: tuple[Any, ...] = (name,)
        if event_type:
            sql += " AND event_type = ?"
            params += (event_type,)
        return self.query(sql + " ORDER BY id", params)

    def runs(self, name: str) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM client_runs WHERE client_name = ? ORDER BY id", (name,))

    def cleanup(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.stop(30)
            if self.proc is not None:
                self.proc.kill()
                self.proc.wait(10)
        run_dir = self.ws.home / "run"
        for pid_file in run_dir.glob("*.pid") if run_dir.is_dir() else []:
            with contextlib.suppress(Exception):
                data = json.loads(pid_file.read_text())
                proc = psutil.Process(int(data["pid"]))
                if abs(proc.create_time() - float(data["create_time"])) < 0.05:
                    os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def daemon(workspace: Path) -> Iterator[DaemonHandle]:
    """A daemon for this test's workspace (call `.start()` once clients are written)."""
    handle = DaemonHandle(workspace)
    try:
        yield handle
    finally:
        handle.cleanup()
