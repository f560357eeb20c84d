"""The daemon: one process, one main loop that ties the parts together.

The loop (a tick every 0.2 s) owns all client state; the control API's threads only queue
commands for it (`commands`), so there is no locking around client state. Each tick it re-reads
the registry (`clients/*/client.toml`, the single source of truth about clients), polls every
client (`module_clients`: processes and heartbeats; `notebook_clients`: slots and runs) and
mirrors each into the database (`mirror`). Alerts go out on their own thread (`alerts`).

On start the daemon looks at what a previous (SIGKILLed) daemon left running, found through pid
files checked against the process create time (`processes`). A module client whose files have
not changed since it was started is adopted: it keeps running (a strategy is not restarted
because its supervisor was). Everything else (changed or disabled clients, notebook runs) is
stopped; unfinished runs are marked 'interrupted'. A client the previous daemon had given up on
(crash loop) stays 'crashed', and a crash loop in progress keeps its spent budget
(`restart_policy`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from typing import Any

from quantstrip import clock
from quantstrip.client import services
from quantstrip.daemon import processes, registry, restart_policy
from quantstrip.daemon.alerts import AlertWorker
from quantstrip.daemon.commands import Commands
from quantstrip.daemon.control import ControlServer, socket_path
from quantstrip.daemon.managed import Managed
from quantstrip.daemon.mirror import Mirror, gave_up
from quantstrip.daemon.module_clients import ModuleClients
from quantstrip.daemon.notebook_clients import NotebookClients
from quantstrip.daemon.notebook_downtime import DAEMON_STOPPED
from quantstrip.daemon.registry import ClientConfig, InvalidClient
from quantstrip.daemon.states import ClientKind, ClientState, EventType, RunStatus, StopReason
from quantstrip.db.handler import Database
from quantstrip.errors import ConfigError
from quantstrip.paths import Workspace, init_workspace, workspace

log = logging.getLogger("quantstrip.daemon")

TICK_S = 0.2
RELOAD_EVERY_S = 1.0
SHUTDOWN_POLL_S = 0.05


class Daemon:
    def __init__(self, ws: Workspace | None = None) -> None:
        self.ws = init_workspace(ws or workspace())
        self.clients: dict[str, Managed] = {}
        self.commands = Commands(self)
        self._stopping = False
        self._lock_file: Any = None
        self._last_reload = 0.0
        self.server: ControlServer | None = None
        self.alerts: AlertWorker | None = None

    # ---- lifecycle --------------------------------------------------------------------------
    def acquire_lock(self) -> None:
        path = self.ws.home / "daemon.lock"
        self._lock_file = open(path, "a+")  # noqa: SIM115  (held for the daemon's lifetime)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "?"
            raise ConfigError(
                f"another daemon (pid {holder}) is running for {self.ws.home}"
            ) from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()

    def run(self) -> int:
        services.setup_daemon_logging()
        self.acquire_lock()
        self.db = Database(self.ws.database)
        self.mirror = Mirror(self.db)
        self.alerts = AlertWorker()
        self.modules = ModuleClients(self.ws, self.mirror, self.alert, self._after_requested_stop)
        self.notebooks = NotebookClients(self.ws, self.db, self.mirror, self.alert)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self._cleanup_orphans()
        self.server = ControlServer(socket_path(self.ws.home), self.commands.handle)
        self.server.start()
        log.info("daemon %s started for %s", os.getpid(), self.ws.root)
        try:
            self.reload(initial=True)
            self.modules.stop_unadopted()
            self.notebooks.stop_unadopted(
                {m.run.run_id for m in self.clients.values() if m.run is not None}
            )
            # Runs that died with a killed daemon were closed just now: their slots too follow
            # the missed policy (those a graceful stop interrupted were settled by the reload).
            for m in self.clients.values():
                if m.kind == ClientKind.NOTEBOOK and m.trigger and m.enabled and not m.user_stopped:
                    try:
                        self.notebooks.resume_interrupted(m, clock.now())
                    except Exception:
                        log.exception("settling %s's interrupted runs failed", m.name)
            while not self._stopping:
                started = clock.monotonic()
                self.tick()
                self.commands.drain(wait_s=max(0.0, TICK_S - (clock.monotonic() - started)))
        finally:
            self._shutdown()
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def tick(self) -> None:
        if clock.monotonic() - self._last_reload >= RELOAD_EVERY_S:
            try:
                self.reload()
            except Exception:
                log.exception("registry reload failed (retrying in %s s)", RELOAD_EVERY_S)
        self.commands.drain()
        for m in list(self.clients.values()):
            try:
                self._poll(m)
                self.mirror.write(m)
            except Exception:
                log.exception("supervising %s failed (daemon keeps running)", m.name)

    def _poll(self, m: Managed) -> None:
        if m.kind == ClientKind.MODULE:
            self.modules.poll(m)
        else:
            self.notebooks.poll(m)

    def _shutdown(self) -> None:
        log.info("daemon stopping: stopping clients")
        for m in list(self.clients.values()):
            if m.proc is not None and m.proc.poll() is None:
                self.modules.begin_stop(m, StopReason.SHUTDOWN)
            if m.run is not None:
                self.notebooks.kill(m, RunStatus.INTERRUPTED, DAEMON_STOPPED)
        deadline = clock.monotonic() + max(
            [m.cfg.stop_timeout_s for m in self.clients.values() if m.valid] or [1.0]
        )
        while clock.monotonic() < deadline + 1:
            for m in [m for m in list(self.clients.values()) if m.proc is not None]:
                self.modules.poll(m)
            if not any(m.proc for m in self.clients.values()):
                break
            time.sleep(SHUTDOWN_POLL_S)
        for m in list(self.clients.values()):
            self.modules.kill_now(m)
            if m.run is not None:
                self.notebooks.poll(m)
            if m.state not in (ClientState.DISABLED, ClientState.INVALID, ClientState.CRASHED):
                m.state = ClientState.STOPPED
            self.mirror.write(m)
        if self.server:
            self.server.close()
        if self.alerts:
            self.alerts.close()
        self.db.close()
        log.info("daemon stopped")

    def alert(self, name: str, message: str, tb: str | None = None) -> None:
        if self.alerts is not None:
            m = self.clients.get(name)
            to = m.config.recipients if m and isinstance(m.config, ClientConfig) else None
            self.alerts.send(name, message, tb, to=to or None)

    # ---- registry ---------------------------------------------------------------------------
    def reload(self, initial: bool = False) -> None:
        self._last_reload = clock.monotonic()
        files = {p.parent.name: p for p in registry.client_files(self.ws.clients)}
        for name, m in list(self.clients.items()):
            if name not in files and m.stop_reason != StopReason.REMOVED:
                log.info("client %s removed from the registry", name)
                self.mirror.event(name, EventType.REMOVED, "client.toml removed")
                self._retire(m)
        for name, path in files.items():
            m = self.clients.get(name)
            if m is not None and registry.signature(m.config) == m.signature:
                continue
            config = registry.load_or_invalid(path)  # a bad file: that client invalid, not us
            sig = registry.signature(config)
            if m is None:
                m = Managed(name=name, config=config, signature=sig)
                self.clients[name] = m
                if initial:
                    self._restore(m)
                    self._hold_if_halted(m)
                self.apply_config(m, initial=initial)
            else:
                log.info("client %s changed on disk: reloading", name)
                m.config, m.signature = config, sig
                m.restart_times.clear()  # a changed client gets a fresh crash-loop budget
                self.mirror.event(name, EventType.RELOADED, "client.toml or entry changed")
                if m.proc is not None:
                    m.pending_reload = True
                    self.modules.begin_stop(m, StopReason.RELOAD)
                else:
                    self.apply_config(m)

    def _hold_if_halted(self, m: Managed) -> None:
        """A client the operator halted (itself or everyone) is not started by a new daemon.
        `halt` stops it with a user stop, which lasts until `start` or a daemon restart: after a
        reboot it started again (refused every order, alerting each time). The halt is in the
        database and outlives the daemon; the client stays stopped, with an event saying why,
        until the operator resumes trading and starts it."""
        from quantstrip.brokers.risk.controls import states
        from quantstrip.brokers.risk.rules import TradingState

        try:
            held = [s for s in states(m.name, self.ws.database) if s.state == TradingState.HALTED]
        except Exception:  # the client's broker guard still refuses orders under a halt
            log.exception("could not read the operator's controls for %s", m.name)
            self.alert(m.name, "could not read the operator's controls at daemon start")
            return
        if not held:
            return
        m.user_stopped = True
        why = f" ({held[0].reason})" if held[0].reason else ""
        self.mirror.event(
            m.name,
            EventType.HELD_HALTED,
            f"not started: trading is halted for {held[0].label}{why}; "
            f"`quantstrip resume` lifts it, then `quantstrip clients start {m.name}`",
        )

    def _restore(self, m: Managed) -> None:
        """What a previous daemon recorded about this client that must outlive it: the restart
        budget it spent and whether it gave up (crash loop) on these same files."""
        row = self.mirror.saved(m.name)
        if row is None or not m.valid or m.kind != "module":
            return
        m.restart_times = restart_policy.load_times(row, processes.signature_text(m.signature))
        m.restart_count = int(row.get("restart_count") or 0) if m.restart_times else 0
        if gave_up(row, m):
            m.state = ClientState.CRASHED
            m.last_error = row.get("last_error")
            m.last_error_traceback = row.get("last_error_traceback")
            m.restart_count = int(row.get("restart_count") or 0)

    def _retire(self, m: Managed) -> None:
        """The client's folder is gone: stop it (asynchronously) and forget it."""
        if m.run is not None:
            self.notebooks.kill(m, RunStatus.INTERRUPTED, "client removed")
        if m.proc is not None:
            self.modules.begin_stop(m, StopReason.REMOVED)
            return
        self._forget(m)

    def _forget(self, m: Managed) -> None:
        m.state = ClientState.REMOVED
        self.mirror.write(m)
        self.clients.pop(m.name, None)

    def apply_config(self, m: Managed, initial: bool = False) -> None:
        """Bring a client in line with its (new) config; it is not running right now."""
        m.pending_reload = False
        if isinstance(m.config, InvalidClient):
            m.state = ClientState.INVALID
            m.last_error = m.config.error
            m.last_error_traceback = None
            m.trigger = m.next_fire = None
            log.error("client %s is invalid: %s", m.name, m.config.error)
            self.mirror.event(m.name, EventType.INVALID, m.config.error)
            return
        if m.last_error and m.state == ClientState.INVALID:
            m.last_error = None
        if not m.cfg.enabled:
            m.state = ClientState.DISABLED
            m.trigger = m.next_fire = None
            return
        if m.kind == ClientKind.MODULE:
            if m.user_stopped:
                m.state = ClientState.STOPPED
            elif m.state == ClientState.CRASHED and initial:
                if not self.modules.adopt(m):
                    log.warning("client %s stays crashed (crash loop before restart)", m.name)
            elif not self.modules.adopt(m):
                self.modules.spawn(m)
            return
        self.notebooks.configure(m, initial=initial)

    def _after_requested_stop(self, m: Managed, reason: StopReason) -> None:
        if reason == StopReason.REMOVED:
            self._forget(m)
        elif reason == StopReason.RELOAD:
            self.apply_config(m)
        elif reason == StopReason.RESTART:
            self.modules.spawn(m)
        elif reason == StopReason.DISABLE:
            m.state = ClientState.DISABLED
        else:
            m.state = ClientState.STOPPED

    def _cleanup_orphans(self) -> None:
        """Sort what a previous daemon left running: module clients and notebook runs become
        candidates for adoption (what is not adopted is stopped after the registry is read)."""
        for found in processes.leftovers():
            client = str(found.data["client"])
            if found.kind == processes.MODULE:
                self.modules.adoptable[client] = found
            else:
                self.notebooks.adoptable[client] = found


def run_daemon() -> int:
    return Daemon().run()
