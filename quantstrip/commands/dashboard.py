"""`quantstrip up`: the daemon (unless already running) and the dashboard, one URL printed."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys

from quantstrip.daemon.control import ControlClient
from quantstrip.dashboard.server import HOME_PAGE, free_port, start
from quantstrip.paths import init_workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser("up", help="start the daemon and the dashboard; print the URL")
    up.add_argument("--port", type=int, help="dashboard port (default: settings dashboard.port)")
    up.add_argument("--no-daemon", action="store_true", help="do not start the daemon")
    up.set_defaults(func=run_up)


def _start_daemon(ws) -> subprocess.Popen[bytes] | None:  # type: ignore[no-untyped-def]
    if ControlClient().available():
        print("daemon: already running")
        return None
    out = ws.logs / "process" / "daemon.out"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "quantstrip", "daemon"],
            cwd=ws.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    print(f"daemon: started (pid {process.pid})")
    return process


def run_up(args: argparse.Namespace) -> int:
    from quantstrip import settings

    ws = init_workspace()
    daemon = None if args.no_daemon else _start_daemon(ws)
    # --port 0: any free port (tests and several workspaces on one machine)
    port = settings.get("dashboard.port", 8888) if args.port is None else args.port
    server = start(port=port or free_port())
    print(f"\nQuantstrip dashboard: {server.url(HOME_PAGE)}")
    print(f"JupyterLab (IDE):     {server.url('/lab')}\n(Ctrl-C stops the dashboard)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.process.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
        if daemon is not None and daemon.poll() is None:
            daemon.terminate()
            daemon.wait(30)
    return 0
