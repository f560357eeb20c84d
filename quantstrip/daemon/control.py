"""The daemon's control API and `ControlClient`, used by the CLI and the dashboard.

Transport: a unix socket, mode 0600, in the data directory (`<home>/daemon.sock`); only the
owning user can connect, and the server double-checks the peer's uid (SO_PEERCRED), so there is
no token to leak and nothing listens on the network. Protocol: one JSON request line, one JSON
response line, per connection: `{"op": "list"}` -> `{"ok": true, "result": [...]}`.

When the daemon is down, `ControlClient.list_clients()` falls back to the `clients` table the
daemon mirrors its state into, so the monitor still shows the last known state and history.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import socketserver
import struct
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from quantstrip import clock
from quantstrip.errors import QuantstripError
from quantstrip.paths import workspace

OPS = ("ping", "list", "start", "stop", "restart", "enable", "disable", "run_now", "reload")
MAX_REQUEST = 64 * 1024
# sun_path holds 108 bytes; deeper data dirs get a private directory under /tmp instead.
MAX_SOCKET_PATH = 100


class DaemonUnavailable(QuantstripError):
    """The daemon is not running (or its socket cannot be reached)."""


class ControlError(QuantstripError):
    """The daemon refused a command (unknown client, invalid client...)."""


@dataclass
class ClientStatus:
    """One client as the dashboard shows it. Times are UTC text, as everywhere in the DB."""

    name: str
    kind: str  # module | notebook
    state: str  # a `states.ClientState` value
    enabled: bool
    pid: int | None = None
    started_at: str | None = None
    last_heartbeat: str | None = None
    heartbeat_age_s: float | None = None
    next_run: str | None = None
    last_error: str | None = None
    last_error_traceback: str | None = None
    restart_count: int = 0
    display_name: str | None = None
    mode: str | None = None
    schedule: str | None = None
    missed_policy: str | None = None  # notebooks: skip | run_once | run_all (catch-up)
    last_job: list[Any] | None = None  # modules: [name, succeeded, epoch end] of the last job
    daemon_running: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClientStatus:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def socket_path(home: Path | None = None) -> Path:
    home = home or workspace().home
    path = home / "daemon.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
    private = Path(tempfile.gettempdir()) / f"quantstrip-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    os.chmod(private, 0o700)
    return private / f"{digest}.sock"


# ---- server -------------------------------------------------------------------------------
Handler = Callable[[str, dict[str, Any]], Any]


class _RequestHandler(socketserver.StreamRequestHandler):
    server: ControlServer

    def handle(self) -> None:
        try:
            creds = self.request.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
            )
            _, uid, _ = struct.unpack("3i", creds)
            if uid != os.getuid():
                self._reply({"ok": False, "error": "permission denied"})
                return
            line = self.rfile.readline(MAX_REQUEST)
            request = json.loads(line or b"{}")
            op = request.get("op")
            if op not in OPS:
                self._reply({"ok": False, "error": f"unknown op {op!r}"})
                return
            result = self.server.handler(op, request)
            self._reply({"ok": True, "result": result})
        except QuantstripError as exc:
            self._reply({"ok": False, "error": str(exc)})
        except Exception as exc:  # never let one bad request kill the server thread
            self._reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})

    def _reply(self, payload: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(payload, default=str).encode() + b"\n")


class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, handler: Handler) -> None:
        self.handler = handler
        self.path = path
        path.unlink(missing_ok=True)
        old_umask = os.umask(0o177)  # the socket is created 0600: no window where others connect
        try:
            super().__init__(str(path), _RequestHandler)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self._thread = threading.Thread(target=self.serve_forever, name="control-api", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.path.unlink(missing_ok=True)


# ---- client -------------------------------------------------------------------------------
class ControlClient:
    """Talks to the running daemon. Every command returns promptly; stop/restart are
    asynchronous (they begin a graceful stop), so poll `list_clients()` for the outcome."""

    def __init__(self, path: Path | None = None, timeout_s: float = 10.0) -> None:
        self.path = path or socket_path()
        self.timeout_s = timeout_s

    def _call(self, op: str, **args: Any) -> Any:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            try:
                sock.connect(str(self.path))
            except OSError as exc:
                raise DaemonUnavailable(f"daemon not reachable at {self.path}: {exc}") from None
            sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise DaemonUnavailable(f"daemon did not answer {op!r} in {self.timeout_s} s") from None
        finally:
            sock.close()
        if not data:
            raise DaemonUnavailable("daemon closed the connection without answering")
        reply = json.loads(data)
        if not reply.get("ok"):
            raise ControlError(reply.get("error", "unknown error"))
        return reply.get("result")

    def available(self) -> bool:
        try:
            self._call("ping")
            return True
        except (DaemonUnavailable, ControlError):
            return False

    def list_clients(self, fallback_to_db: bool = True) -> list[ClientStatus]:
        """Live state from the daemon; if it is down, the last state mirrored in the database
        (with `daemon_running=False`)."""
        try:
            return [ClientStatus.from_dict(d) for d in self._call("list")]
        except DaemonUnavailable:
            if not fallback_to_db:
                raise
            return clients_from_db()

    def start(self, name: str) -> dict[str, Any]:
        return dict(self._call("start", name=name))

    def stop(self, name: str) -> dict[str, Any]:
        return dict(self._call("stop", name=name))

    def restart(self, name: str) -> dict[str, Any]:
        return dict(self._call("restart", name=name))

    def enable(self, name: str) -> dict[str, Any]:
        return dict(self._call("enable", name=name))

    def disable(self, name: str) -> dict[str, Any]:
        return dict(self._call("disable", name=name))

    def run_now(self, name: str) -> dict[str, Any]:
        return dict(self._call("run_now", name=name))

    def reload(self) -> dict[str, Any]:
        return dict(self._call("reload"))


def clients_from_db(db_path: Path | None = None) -> list[ClientStatus]:
    """The `clients` mirror, read-only, for when the daemon is down: the last recorded state
    (after a graceful daemon stop that is 'stopped'; after a crash of the daemon, what it last
    saw), flagged `daemon_running=False`, with `removed` clients left out."""
    from quantstrip.daemon.states import ClientState
    from quantstrip.db.connection import connect
    from quantstrip.db.units import parse_utc

    path = db_path or workspace().database
    if not path.exists():
        return []
    # One read-only connection, not the ledger's Database: importing that (its records and
    # writers) cost the monitor page a quarter of a second for this one SELECT.
    conn = connect(path, read_only=True)
    try:
        rows = conn.execute(
            "SELECT * FROM clients WHERE state <> ? ORDER BY name", (str(ClientState.REMOVED),)
        ).fetchall()
    finally:
        conn.close()
    now = clock.now()
    out = []
    for row in rows:
        beat = row["last_heartbeat"]
        age = (now - parse_utc(beat)).total_seconds() if beat else None
        out.append(
            ClientStatus(
                name=row["name"],
                kind=row["kind"],
                state=row["state"],
                enabled=bool(row["enabled"]),
                pid=None,
                started_at=row["started_at"],
                last_heartbeat=beat,
                heartbeat_age_s=age,
                next_run=row["next_run"],
                last_error=row["last_error"],
                last_error_traceback=row["last_error_traceback"],
                restart_count=row["restart_count"],
                daemon_running=False,
            )
        )
    return out
