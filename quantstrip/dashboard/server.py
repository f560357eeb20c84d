"""Start the one Jupyter server behind the dashboard (JupyterLab + Voila pages).

The server binds 127.0.0.1 with a token kept encrypted in the vault and handed over through a
pipe (launch_secret), so no kernel's environment carries it; `--allow-root` is added when running
as root (Jupyter refuses root otherwise, and CI runs as root).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from quantstrip import clock
from quantstrip.dashboard.launch_secret import spawn_with_secret
from quantstrip.paths import workspace

HOME_PAGE = "/voila/render/reports/home.ipynb"


@dataclass
class DashboardServer:
    process: subprocess.Popen[bytes]
    port: int
    token: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = HOME_PAGE) -> str:
        return f"{self.base_url}{path}?token={self.token}"

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def config_dir() -> Path:
    """jupyter_config/ of the workspace, else the one shipped beside the package."""
    local = workspace().root / "jupyter_config"
    if (local / "jupyter_server_config.py").exists():
        return local
    return Path(__file__).resolve().parents[2] / "jupyter_config"


def dashboard_token() -> str:
    from quantstrip import settings

    existing = settings.get_secret("dashboard.token")
    if existing is not None:
        return existing.reveal()
    token = secrets.token_urlsafe(24)
    settings.set_secret("dashboard.token", token)
    return token


def port_free(port: int) -> bool:
    """Whether a server could listen on `port` now (with SO_REUSEADDR, as Tornado binds: a
    port just left by a stopped server, its connections in TIME_WAIT, is free to it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    port: int | None = None,
    token: str | None = None,
    log_path: Path | None = None,
    timeout_s: float = 120.0,
) -> DashboardServer:
    ws = workspace()
    token = token or dashboard_token()
    if not port or not port_free(port):
        port = free_port()
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(config_dir()),
        JUPYTER_PATH=os.pathsep.join(
            p for p in (str(config_dir() / "data"), os.environ.get("JUPYTER_PATH", "")) if p
        ),
        QUANTSTRIP_WORKSPACE=str(ws.root),
        QUANTSTRIP_HOME=str(ws.home),
    )
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log_path = log_path or ws.logs / "process" / "dashboard.out"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env.pop("QUANTSTRIP_DASHBOARD_TOKEN", None)
    with open(log_path, "ab") as log:
        process = spawn_with_secret(
            command,
            token,
            env,
            cwd=ws.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DashboardServer(process, port, token)
    try:
        deadline = clock.monotonic() + timeout_s
        while clock.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the Jupyter server exited with {process.returncode}; see {log_path}"
                )
            try:
                with urllib.request.urlopen(
                    f"{server.base_url}/api/status?token={token}", timeout=2
                ):
                    return server
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
    except BaseException:
        server.stop()  # interrupted while starting (SIGTERM, Ctrl-C): leave no orphan
        raise
    server.stop()
    raise RuntimeError(f"the Jupyter server did not answer within {timeout_s:.0f}s; see {log_path}")
