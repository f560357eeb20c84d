"""The viewer server: a standalone Voila on its own 127.0.0.1 port serving reports/viewer/ only.

Sharing reports must not share the IDE. The operator's Jupyter server carries Lab, terminals,
the contents API, /files and kernels on demand; the viewer server has none of them, because
standalone Voila has none: it renders the notebooks under its root and relays widget messages
to each page's kernel (never an execute request). Its root holds only the viewer pages
(dashboard.VIEWER_PAGES), its kernels run with QUANTSTRIP_ROLE=viewer, and every request is
signed in against the vault's active viewers (viewer_auth.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from quantstrip import clock
from quantstrip.dashboard.roles import ROLE_ENV, VIEWER
from quantstrip.dashboard.server import DashboardServer, config_dir, free_port, port_free
from quantstrip.paths import workspace

VIEWER_HOME = "/voila/render/home.ipynb"


def viewer_root() -> Path:
    """reports/viewer of the workspace, else the one shipped beside the package."""
    local = workspace().root / "reports" / "viewer"
    if (local / "home.ipynb").exists():
        return local
    return Path(__file__).resolve().parents[2] / "reports" / "viewer"


def start_viewer(
    port: int | None = None,
    log_path: Path | None = None,
    timeout_s: float = 120.0,
    same_port: bool = False,
) -> DashboardServer:
    """Start the viewer server; its `token` is empty (each viewer signs in with their own).
    `same_port`: a restart keeps the address the viewers were given (waits for it to be free)."""
    ws = workspace()
    if port and same_port:
        deadline = clock.monotonic() + timeout_s
        while not port_free(port):
            if clock.monotonic() > deadline:
                raise RuntimeError(f"port {port} of the viewer server stays taken")
            time.sleep(0.2)
    if not port or not port_free(port):
        port = free_port()
    configs = config_dir()
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(configs / "viewer"),
        JUPYTER_PATH=os.pathsep.join(
            p for p in (str(configs / "data"), os.environ.get("JUPYTER_PATH", "")) if p
        ),
        QUANTSTRIP_WORKSPACE=str(ws.root),
        QUANTSTRIP_HOME=str(ws.home),
        **{ROLE_ENV: VIEWER},
    )
    for name in ("QUANTSTRIP_DASHBOARD_TOKEN", "QUANTSTRIP_TOKEN_FD"):
        env.pop(name, None)
    command = [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", str(viewer_root())]
    log_path = log_path or ws.logs / "process" / "viewer.out"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=viewer_root(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DashboardServer(process, port, "")
    try:
        deadline = clock.monotonic() + timeout_s
        while clock.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the viewer server exited with {process.returncode}; see {log_path}"
                )
            try:
                with urllib.request.urlopen(f"{server.base_url}/login", timeout=2):
                    return server
            except urllib.error.HTTPError:
                return server  # it answers
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
    except BaseException:
        server.stop()  # interrupted while starting (SIGTERM, Ctrl-C): leave no orphan
        raise
    server.stop()
    raise RuntimeError(f"the viewer server did not answer within {timeout_s:.0f}s; see {log_path}")


def viewer_url(server: DashboardServer, token: str, path: str = VIEWER_HOME) -> str:
    return f"{server.base_url}{path}?token={token}"
