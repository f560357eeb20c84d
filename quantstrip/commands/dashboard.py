"""`quantstrip up`: the daemon (unless already running), the operator's dashboard and the viewer
server; prints the operator's URLs and each active viewer's, then watches over both servers.

Revoking a viewer (`quantstrip viewer revoke NAME`, from any shell) takes effect at once for new
requests (the viewer server checks the vault on each one); `up` also restarts the viewer server
when it sees a token revoked or rotated, which closes the pages that viewer still had open.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

from quantstrip import clock
from quantstrip.daemon.control import ControlClient
from quantstrip.dashboard.server import HOME_PAGE, DashboardServer, free_port, start
from quantstrip.paths import init_workspace

WATCH_S = 1.0


def register(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser("up", help="start the daemon and the dashboard; print the URL")
    up.add_argument("--port", type=int, help="dashboard port (default: settings dashboard.port)")
    up.add_argument(
        "--viewer-port", type=int, help="viewer server port (default 8889; 0: any free port)"
    )
    up.add_argument("--no-daemon", action="store_true", help="do not start the daemon")
    up.add_argument("--no-viewer", action="store_true", help="do not start the viewer server")
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


class ViewerWatch:
    """The viewer server and the viewer tokens it was started with."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: DashboardServer | None = None
        self.tokens: dict[str, str] = {}
        self.vault_stamp: tuple[int, int] | None = None

    def _vault_changed(self) -> bool:
        from quantstrip.paths import workspace

        try:
            stat = (workspace().secrets / "vault.json").stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        changed, self.vault_stamp = stamp != self.vault_stamp, stamp
        return changed

    def start(self, restart: bool = False) -> None:
        from quantstrip.dashboard import viewers
        from quantstrip.dashboard.viewer_server import start_viewer

        self._vault_changed()
        self.tokens = viewers.active()
        self.server = start_viewer(port=self.port, same_port=restart)
        self.port = self.server.port  # keep the same port across restarts

    def print_urls(self) -> None:
        from quantstrip.dashboard.viewer_server import viewer_url

        assert self.server is not None
        if not self.tokens:
            print("Viewers:              none active (quantstrip viewer add NAME)")
        for name, token in sorted(self.tokens.items()):
            print(f"Viewer {name!r} (reports only): {viewer_url(self.server, token)}")

    def check(self) -> None:
        """Restart the server when a token it knew was revoked or rotated, or when it died."""
        from quantstrip.dashboard import viewers

        if self.server is None:
            return
        died = self.server.process.poll() is not None
        if not died and not self._vault_changed():
            return
        current = viewers.active()
        ended = sorted(n for n, t in self.tokens.items() if current.get(n) != t)
        if not (ended or died):
            self.tokens = current
            return
        self.server.stop()
        why = f"viewer {', '.join(ended)} revoked" if ended else "viewer server exited"
        try:
            self.start(restart=True)
        except RuntimeError as exc:
            self.server = None
            print(f"{why}; the viewer server did not start again: {exc}", flush=True)
            return
        print(f"{why}: viewer server restarted, its open pages closed", flush=True)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def run_up(args: argparse.Namespace) -> int:
    from quantstrip import settings
    from quantstrip.dashboard import viewers

    ws = init_workspace()
    # Migrations run here (and at init and daemon start); pages only ever read.
    from quantstrip.db.handler import Database

    Database(ws.database).close()
    daemon = None if args.no_daemon else _start_daemon(ws)
    # --port 0: any free port (tests and several workspaces on one machine)
    port = settings.get("dashboard.port", 8888) if args.port is None else args.port
    server = start(port=port or free_port())
    watch = None
    if not args.no_viewer:
        viewers.ensure_default()
        viewer_port = 8889 if args.viewer_port is None else args.viewer_port
        watch = ViewerWatch(viewer_port or free_port())
        watch.start()
    print(f"\nQuantstrip dashboard: {server.url(HOME_PAGE)}")
    print(f"JupyterLab (IDE):     {server.url('/lab')}")
    if watch is not None:
        watch.print_urls()
    print("(Ctrl-C stops the dashboard)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while server.process.poll() is None:
            if watch is not None:
                watch.check()
            deadline = clock.monotonic() + WATCH_S
            while clock.monotonic() < deadline and server.process.poll() is None:
                time.sleep(0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if watch is not None:
            watch.stop()
        server.stop()
        if daemon is not None and daemon.poll() is None:
            daemon.terminate()
            daemon.wait(30)
    return 0
