"""The control API's commands, handled on the daemon's main loop.

The control server's threads only queue a request and wait for the answer; the main loop
answers between ticks (`Commands.drain`), so every change of client state happens on one thread.
`ControlClient` (in `control`) is the public side of this and keeps its methods stable.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
from typing import TYPE_CHECKING, Any

from quantstrip import clock
from quantstrip.daemon import registry
from quantstrip.daemon.control import ControlError
from quantstrip.daemon.managed import Managed
from quantstrip.daemon.mirror import status
from quantstrip.daemon.states import (
    ClientKind,
    ClientState,
    EventType,
    RunStatus,
    RunTrigger,
    StopReason,
)
from quantstrip.errors import QuantstripError

if TYPE_CHECKING:
    from quantstrip.daemon.supervisor import Daemon

log = logging.getLogger("quantstrip.daemon")

REPLY_TIMEOUT_S = 15.0
Request = tuple[str, dict[str, Any], "queue.Queue[tuple[bool, Any]]"]


class Commands:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._queue: queue.Queue[Request] = queue.Queue()

    def handle(self, op: str, request: dict[str, Any]) -> Any:
        """Called on a control API thread: hand the command to the main loop and wait."""
        reply: queue.Queue[tuple[bool, Any]] = queue.Queue()
        self._queue.put((op, request, reply))
        try:
            ok, value = reply.get(timeout=REPLY_TIMEOUT_S)
        except queue.Empty:
            raise ControlError(f"daemon busy: {op} not handled in time") from None
        if not ok:
            raise value
        return value

    def drain(self, wait_s: float = 0.0) -> None:
        """Answer queued commands; with `wait_s`, also wait that long for one (the loop's idle
        time), so a control request is served at once instead of at the next tick."""
        deadline = clock.monotonic() + wait_s
        while True:
            try:
                remaining = deadline - clock.monotonic()
                if remaining > 0:
                    op, request, reply = self._queue.get(timeout=remaining)
                else:
                    op, request, reply = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                reply.put((True, self.run(op, request)))
            except QuantstripError as exc:
                reply.put((False, exc))
            except Exception as exc:
                log.exception("command %s failed", op)
                reply.put((False, ControlError(f"{type(exc).__name__}: {exc}")))

    def run(self, op: str, request: dict[str, Any]) -> Any:
        d = self.daemon
        if op == "ping":
            return {"pid": os.getpid(), "workspace": str(d.ws.root)}
        if op == "list":
            return [status(m).as_dict() for _, m in sorted(d.clients.items())]
        if op == "reload":
            d.reload()
            return {"clients": len(d.clients)}
        name = str(request.get("name", ""))
        m = d.clients.get(name)
        if m is None:
            raise ControlError(f"no client named {name!r}")
        if op in ("enable", "disable"):
            registry.set_enabled(name, op == "enable", d.ws.clients)
            d.mirror.event(name, EventType(f"{op}d"), "via control API")
            d.reload()
            m = d.clients[name]
            if op == "disable" and m.proc is not None:
                m.pending_reload = False
                d.modules.begin_stop(m, StopReason.DISABLE)
            if op == "disable" and m.run is not None:
                d.notebooks.kill(m, RunStatus.INTERRUPTED, "client disabled")
            return {"name": name, "state": m.state}
        if not m.valid:
            raise ControlError(f"client {name} is invalid: {m.last_error}")
        if not m.enabled:
            raise ControlError(f"client {name} is disabled: enable it first")
        handlers = {
            "start": self._start,
            "stop": self._stop,
            "restart": self._restart,
            "run_now": self._run_now,
        }
        if op not in handlers:
            raise ControlError(f"unknown op {op!r}")
        return handlers[op](m) or {"name": name, "state": m.state}

    def _start(self, m: Managed) -> None:
        m.user_stopped = False
        m.restart_times.clear()  # an explicit start is a fresh crash-loop budget
        if m.kind == ClientKind.MODULE and m.proc is None:
            self.daemon.modules.spawn(m)
        elif m.kind == ClientKind.NOTEBOOK and m.state in (
            ClientState.STOPPED,
            ClientState.CRASHED,
        ):
            self.daemon.apply_config(m)

    def _stop(self, m: Managed) -> None:
        d = self.daemon
        m.user_stopped = True
        d.mirror.event(m.name, EventType.STOP_REQUESTED, "via control API")
        if m.kind == ClientKind.MODULE:
            if m.proc is not None:
                d.modules.begin_stop(m, StopReason.STOP)
            else:
                m.state = ClientState.STOPPED
            return
        if m.run is not None:
            d.notebooks.kill(m, RunStatus.INTERRUPTED, "stopped via control API")
        m.state = ClientState.STOPPED

    def _restart(self, m: Managed) -> None:
        d = self.daemon
        m.user_stopped = False
        m.restart_times.clear()
        if m.kind == ClientKind.MODULE:
            if m.proc is not None:
                d.modules.begin_stop(m, StopReason.RESTART)
            else:
                d.modules.spawn(m)
            return
        if m.run is not None:
            d.notebooks.kill(m, RunStatus.INTERRUPTED, "restarted via control API")
        d.apply_config(m)

    def _run_now(self, m: Managed) -> dict[str, Any]:
        d = self.daemon
        if m.kind == ClientKind.MODULE:
            if m.proc is None:
                raise ControlError(f"client {m.name} is not running")
            os.kill(m.proc.pid, signal.SIGUSR1)
            d.mirror.event(m.name, EventType.RUN_NOW, "all jobs fired via control API")
            return {"name": m.name, "state": m.state}
        if m.run is not None:
            raise ControlError(f"client {m.name} is already running (run {m.run.run_id})")
        run_id = d.notebooks.launch(m, None, RunTrigger.MANUAL)
        return {"name": m.name, "state": m.state, "run_id": run_id}
