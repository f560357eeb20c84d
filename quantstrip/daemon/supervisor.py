"""The daemon: supervises module clients, schedules notebook clients, serves the control API.

One process, one main loop (a tick every 0.2 s) that owns all state; the control API's thread
only queues commands for it, so there is no locking around client state. Per client:

- module clients run as `python -m quantstrip.client.runner` in their own session/process group
  (`start_new_session`), raw stdout/stderr to `logs/process/<name>.log` (its log stream, from
  `quantstrip.logger`, is `logs/<name>.log`). A crash is recorded with its traceback, alerted,
  and restarted after an exponential backoff until the crash-loop limit
  (`restart.max_restarts` within `restart.window_s`) leaves it 'crashed'. A silent heartbeat
  (`heartbeat.timeout_s`) means hung: SIGTERM, then SIGKILL after `stop_timeout_s`, then the
  restart policy applies.
- notebook clients fire on their trigger; each run first claims its slot with an INSERT into
  `client_runs` (UNIQUE (client_name, scheduled_for)), so no slot runs twice across restarts.
- state is mirrored into the `clients` table and every transition into `client_events`.

On start the daemon looks at what a previous (SIGKILLed) daemon left running, found through pid
files checked against the process create time (a recycled pid is never touched). A module client
whose files have not changed since it was started is adopted: it keeps running (a strategy is
not restarted because its supervisor was) and is supervised through its heartbeat and pid like
any other. Everything else (changed or disabled clients, notebook runs, which report to the
parent that launched them) is stopped; unfinished runs are marked 'interrupted'.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from quantstrip import clock
from quantstrip.client import heartbeat, services
from quantstrip.client.runner import crash_path, exit_path
from quantstrip.daemon import notebooks, registry
from quantstrip.daemon.control import ClientStatus, ControlError, ControlServer, socket_path
from quantstrip.daemon.notebooks import NotebookRun
from quantstrip.daemon.registry import ClientConfig, InvalidClient
from quantstrip.db.handler import Database
from quantstrip.db.units import now_text, parse_utc, utc_text
from quantstrip.errors import ConfigError, QuantstripError
from quantstrip.paths import Workspace, init_workspace, workspace

log = logging.getLogger("quantstrip.daemon")

TICK_S = 0.2
RELOAD_EVERY_S = 1.0
ORPHAN_GRACE_S = 3.0
LOG_TAIL_LINES = 40


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


def _signature_text(signature: tuple[Any, ...]) -> str:
    return json.dumps(signature, default=str)


@dataclass
class Managed:
    """Runtime state of one client, owned by the main loop."""

    name: str
    config: ClientConfig | InvalidClient
    signature: tuple[Any, ...]
    state: str = "stopped"
    proc: subprocess.Popen[bytes] | AdoptedProcess | None = None
    started_at: str | None = None
    started_epoch: float | None = None
    stop_reason: str | None = None
    stop_deadline: float | None = None
    killed: bool = False
    restart_times: deque[float] = field(default_factory=deque)
    restart_count: int = 0
    next_restart_at: float | None = None
    last_heartbeat: float | None = None
    next_run: str | None = None
    last_error: str | None = None
    last_error_traceback: str | None = None
    user_stopped: bool = False
    pending_reload: bool = False
    trigger: Any = None
    next_fire: datetime | None = None
    run: NotebookRun | None = None
    mirrored: dict[str, Any] | None = None
    reported_name: str | None = None  # display_name the running client reported
    warned_jobs: set[tuple[int, str, float]] = field(default_factory=set)  # long jobs reported

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def valid(self) -> bool:
        return isinstance(self.config, ClientConfig)

    @property
    def enabled(self) -> bool:
        return isinstance(self.config, ClientConfig) and self.config.enabled


DIGEST_CHECK_MAX_S = 60.0


def _digest_check_s() -> float:
    """How often to look for due digests: every minute, or faster for short intervals."""
    try:
        from quantstrip import settings

        interval_s = settings.platform().email.digest_interval_minutes * 60
    except Exception:
        return DIGEST_CHECK_MAX_S
    return min(DIGEST_CHECK_MAX_S, max(1.0, interval_s / 2))


class AlertWorker:
    """Sends alerts off the main loop: an SMTP server that hangs must not stall supervision.

    Between alerts it sends the digests that are due (queued messages and repeated alerts), so
    they go out on time even when no client calls `email_manager.flush()`.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, str, str | None, list[str] | None] | None] = (
            queue.Queue()
        )
        self._thread = threading.Thread(target=self._work, name="alerts", daemon=True)
        self._thread.start()

    def send(
        self, client: str, message: str, tb: str | None = None, to: list[str] | None = None
    ) -> None:
        self._queue.put((client, message, tb, to))

    def _work(self) -> None:
        next_digest = clock.monotonic() + _digest_check_s()
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, next_digest - clock.monotonic()))
            except queue.Empty:
                services.send_due_digests()
                next_digest = clock.monotonic() + _digest_check_s()
                continue
            if item is None:
                return
            client, message, tb, to = item
            services.send_error_alert(client, message, tb, to=to)

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)


def _pid_file(name: str, kind: str) -> Path:
    return heartbeat.run_dir() / f"{name}.{kind}.pid"


def _write_pid_file(path: Path, pid: int, **extra: Any) -> None:
    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.Error:
        create_time = None
    heartbeat.write_json_atomic(path, {"pid": pid, "create_time": create_time, **extra})


def _stop_processes(found: list[tuple[psutil.Process, Path]]) -> None:
    """SIGTERM each process group, SIGKILL what is left after a grace period; drop pid files."""
    for proc, path in found:
        log.warning("stopping %s (pid %s) left by a previous daemon", path.name, proc.pid)
        _killpg(proc.pid, signal.SIGTERM)
    if found:
        _, alive = psutil.wait_procs([p for p, _ in found], timeout=ORPHAN_GRACE_S)
        for proc in alive:
            _killpg(proc.pid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=ORPHAN_GRACE_S)
    for _, path in found:
        path.unlink(missing_ok=True)


def _same_process(pid: int, create_time: float | None) -> psutil.Process | None:
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


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _kill_run_process(process: Any) -> None:
    """SIGKILL a run's process group (the run child and its kernel); the child itself too, in
    case it is killed before its first instruction made it a group leader."""
    _killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        process.kill()


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


class Daemon:
    def __init__(self, ws: Workspace | None = None) -> None:
        self.ws = init_workspace(ws or workspace())
        self.clients: dict[str, Managed] = {}
        self.commands: queue.Queue[tuple[str, dict[str, Any], queue.Queue[Any]]] = queue.Queue()
        self._stopping = False
        self._lock_file: Any = None
        self._client_ids: dict[str, int] = {}
        self._last_reload = 0.0
        self.db: Database | None = None
        self.server: ControlServer | None = None
        self.alerts: AlertWorker | None = None
        # Module clients a previous daemon left running, by name: (process, its pid file data).
        self._adoptable: dict[str, tuple[psutil.Process, dict[str, Any]]] = {}

    def process_log(self, name: str) -> Path:
        """Raw stdout/stderr of a client's processes (what logging did not catch: a segfault,
        print()). Kept out of logs/*.log, which belongs to the logger's per-client streams."""
        path = self.ws.logs / "process" / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

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
        self.alerts = AlertWorker()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self._load_client_ids()
        self._cleanup_orphans()
        self.server = ControlServer(socket_path(self.ws.home), self._handle_request)
        self.server.start()
        log.info("daemon %s started for %s", os.getpid(), self.ws.root)
        try:
            self._reload(initial=True)
            self._stop_unadopted()
            while not self._stopping:
                started = clock.monotonic()
                self.tick()
                self._drain_commands(wait_s=max(0.0, TICK_S - (clock.monotonic() - started)))
        finally:
            self._shutdown()
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def tick(self) -> None:
        now = clock.monotonic()
        if now - self._last_reload >= RELOAD_EVERY_S:
            try:
                self._reload()
            except Exception:
                log.exception("registry reload failed (retrying in %s s)", RELOAD_EVERY_S)
        self._drain_commands()
        for m in list(self.clients.values()):
            try:
                if m.kind == "module":
                    self._poll_module(m)
                else:
                    self._poll_notebook(m)
                self._mirror(m)
            except Exception:
                log.exception("supervising %s failed (daemon keeps running)", m.name)

    def _shutdown(self) -> None:
        log.info("daemon stopping: stopping clients")
        for m in list(self.clients.values()):
            if m.proc is not None and m.proc.poll() is None:
                self._begin_stop(m, "shutdown")
            if m.run is not None:
                self._kill_run(m, "interrupted", "daemon stopped")
        deadline = clock.monotonic() + max(
            [m.config.stop_timeout_s for m in self.clients.values() if m.valid] or [1.0]
        )
        while clock.monotonic() < deadline + 1:
            pending = [m for m in list(self.clients.values()) if m.proc is not None]
            for m in pending:
                self._poll_module(m)
            if not any(m.proc for m in self.clients.values()):
                break
            time.sleep(0.05)
        for m in list(self.clients.values()):
            if m.proc is not None:
                _killpg(m.proc.pid, signal.SIGKILL)
                m.proc.wait(5)
                self._on_exit(m, m.proc.returncode)
            if m.run is not None:
                self._poll_notebook(m)
            if m.state not in ("disabled", "invalid"):
                m.state = "stopped"
            self._mirror(m)
        if self.server:
            self.server.close()
        if self.alerts:
            self.alerts.close()
        if self.db:
            self.db.close()
        log.info("daemon stopped")

    # ---- registry ---------------------------------------------------------------------------
    def _reload(self, initial: bool = False) -> None:
        self._last_reload = clock.monotonic()
        files = {p.parent.name: p for p in registry.client_files(self.ws.clients)}
        for name, m in list(self.clients.items()):
            if name not in files and m.stop_reason != "removed":
                log.info("client %s removed from the registry", name)
                self._event(name, "removed", "client.toml removed")
                self._retire(m)
        for name, path in files.items():
            m = self.clients.get(name)
            if m is not None and registry.signature(m.config) == m.signature:
                continue
            try:
                config: ClientConfig | InvalidClient = registry.load_client(path)
            except ConfigError as exc:
                kind, entry = registry._peek_kind(path)
                config = InvalidClient(name, path, str(exc), kind, entry)
            sig = registry.signature(config)
            if m is None:
                m = Managed(name=name, config=config, signature=sig)
                self.clients[name] = m
                self._apply_config(m, initial=initial)
            else:
                log.info("client %s changed on disk: reloading", name)
                m.config, m.signature = config, sig
                self._event(name, "reloaded", "client.toml or entry changed")
                if m.proc is not None:
                    m.pending_reload = True
                    self._begin_stop(m, "reload")
                else:
                    self._apply_config(m)

    def _retire(self, m: Managed) -> None:
        """The client's folder is gone: stop it (asynchronously) and forget it."""
        if m.run is not None:
            self._kill_run(m, "interrupted", "client removed")
        if m.proc is not None:
            self._begin_stop(m, "removed")
            return
        self._forget(m)

    def _forget(self, m: Managed) -> None:
        m.state = "removed"
        self._mirror(m)
        self.clients.pop(m.name, None)

    def _apply_config(self, m: Managed, initial: bool = False) -> None:
        """Bring a client in line with its (new) config; it is not running right now."""
        m.pending_reload = False
        if isinstance(m.config, InvalidClient):
            m.state = "invalid"
            m.last_error = m.config.error
            m.last_error_traceback = None
            m.trigger = m.next_fire = None
            log.error("client %s is invalid: %s", m.name, m.config.error)
            self._event(m.name, "invalid", m.config.error)
            return
        cfg = m.config
        if m.last_error and m.state == "invalid":
            m.last_error = None
        if not cfg.enabled:
            m.state = "disabled"
            m.trigger = m.next_fire = None
            return
        if cfg.kind == "module":
            m.restart_times.clear()  # a changed client gets a fresh crash-loop budget
            if m.user_stopped:
                m.state = "stopped"
            elif not self._adopt(m):
                self._spawn(m)
            return
        notebooks.start_fork_server()  # idempotent; papermill loads while nothing is due
        m.trigger = cfg.trigger()
        now = clock.now()
        m.next_fire = m.trigger.get_next_fire_time(None, now) if m.trigger else None
        m.state = "running" if m.run else "stopped" if m.user_stopped else "scheduled"
        if initial and m.trigger and cfg.missed.policy == "run_once" and not m.user_stopped:
            self._run_missed(m, now)

    def _run_missed(self, m: Managed, now: datetime) -> None:
        """The latest slot inside the grace window, if nobody ran it, runs once now."""
        assert isinstance(m.config, ClientConfig)
        latest = notebooks.latest_missed_slot(m.trigger, now, m.config.missed.grace_s)
        if latest is None:
            return
        assert self.db is not None
        slot = utc_text(latest)
        done = self.db.query(
            "SELECT 1 FROM client_runs WHERE client_name = ? AND scheduled_for = ?", (m.name, slot)
        )
        if not done:
            log.info("client %s missed its %s run: running it once now", m.name, slot)
            self._event(m.name, "missed_run", f"running missed slot {slot} once")
            self._launch_run(m, slot, "missed")

    # ---- module clients ---------------------------------------------------------------------
    def _spawn(self, m: Managed) -> None:
        cfg = m.config
        assert isinstance(cfg, ClientConfig)
        beat_file = heartbeat.heartbeat_path(m.name)
        beat_file.unlink(missing_ok=True)
        crash_path(m.name).unlink(missing_ok=True)
        env = dict(
            os.environ,
            QUANTSTRIP_CLIENT=m.name,
            QUANTSTRIP_MODE=cfg.mode,
            QUANTSTRIP_HOME=str(self.ws.home),
            QUANTSTRIP_WORKSPACE=str(self.ws.root),
            QUANTSTRIP_CLIENT_TZ=cfg.tz,
            QUANTSTRIP_CLIENT_PARAMETERS=json.dumps(cfg.parameters, default=str),
            QUANTSTRIP_CLIENT_RECIPIENTS=json.dumps(cfg.recipients),
        )
        env.pop("QUANTSTRIP_JOB_TIMEOUT_S", None)
        if cfg.time_limit_s:
            env["QUANTSTRIP_JOB_TIMEOUT_S"] = str(cfg.time_limit_s)
        cmd = [
            sys.executable,
            "-m",
            "quantstrip.client.runner",
            "--name",
            m.name,
            "--file",
            str(cfg.entry_file),
            "--heartbeat-interval",
            str(cfg.heartbeat.interval_s),
        ]
        if cfg.entry_class:
            cmd += ["--class", cfg.entry_class]
        with open(self.process_log(m.name), "ab") as out:
            m.proc = subprocess.Popen(
                cmd,
                cwd=cfg.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _write_pid_file(
            _pid_file(m.name, "module"),
            m.proc.pid,
            client=m.name,
            signature=_signature_text(m.signature),
        )
        m.state = "running"
        m.started_at = now_text()
        m.started_epoch = clock.epoch()
        m.stop_reason = m.stop_deadline = None
        m.killed = False
        m.next_restart_at = None
        m.last_heartbeat = None
        log.info("client %s started (pid %s)", m.name, m.proc.pid)
        self._event(m.name, "started", f"pid {m.proc.pid}")

    def _adopt(self, m: Managed) -> bool:
        """Take over the process a previous daemon started for this client, if its files are
        unchanged since; otherwise it is left for `_stop_unadopted`."""
        found = self._adoptable.get(m.name)
        if found is None:
            return False
        proc, data = found
        if data.get("signature") != _signature_text(m.signature):
            log.info("client %s changed while the daemon was down: restarting it", m.name)
            return False
        del self._adoptable[m.name]
        m.proc = AdoptedProcess(m.name, proc)
        m.state = "running"
        m.started_epoch = proc.create_time()
        m.started_at = utc_text(datetime.fromtimestamp(m.started_epoch, UTC))
        m.stop_reason = m.stop_deadline = None
        m.killed = False
        m.next_restart_at = None
        m.last_heartbeat = None
        log.info("client %s adopted (pid %s, running since %s)", m.name, proc.pid, m.started_at)
        self._event(m.name, "adopted", f"pid {proc.pid} kept running across a daemon restart")
        return True

    def _stop_unadopted(self) -> None:
        """Stop what the previous daemon left that is not adopted (changed, disabled, removed)."""
        leftovers, self._adoptable = self._adoptable, {}
        _stop_processes(
            [(proc, _pid_file(name, "module")) for name, (proc, _) in leftovers.items()]
        )

    def _begin_stop(self, m: Managed, reason: str) -> None:
        """SIGTERM the client's process group; SIGKILL follows after stop_timeout_s."""
        if m.proc is None:
            return
        if m.stop_reason is None or reason in ("shutdown", "hung"):
            m.stop_reason = reason
        if m.stop_deadline is None:
            timeout = m.config.stop_timeout_s if m.valid else 10.0
            m.stop_deadline = clock.monotonic() + timeout
            _killpg(m.proc.pid, signal.SIGTERM)
        m.state = "stopping"

    def _poll_module(self, m: Managed) -> None:
        now = clock.monotonic()
        if m.proc is not None:
            code = m.proc.poll()
            if code is not None:
                self._on_exit(m, code)
                return
            if m.stop_deadline is not None:
                if now >= m.stop_deadline and not m.killed:
                    log.warning("client %s ignored SIGTERM: SIGKILL", m.name)
                    _killpg(m.proc.pid, signal.SIGKILL)
                    m.killed = True
                return
            self._check_heartbeat(m)
        elif (
            m.state == "restarting"
            and m.next_restart_at is not None
            and now >= m.next_restart_at
            and m.enabled
            and not m.user_stopped
        ):
            self._spawn(m)

    def _check_heartbeat(self, m: Managed) -> None:
        assert m.proc is not None and isinstance(m.config, ClientConfig)
        beat = heartbeat.read_beat(heartbeat.heartbeat_path(m.name))
        if beat is not None and beat.pid == m.proc.pid:
            m.last_heartbeat = beat.time
            m.next_run = beat.next_run
            m.reported_name = beat.display_name
            self._check_long_job(m, beat)
        policy = m.config.heartbeat
        if m.last_heartbeat is None:
            since, limit, what = (
                m.started_epoch or clock.epoch(),
                policy.startup_timeout_s,
                "startup",
            )
        else:
            since, limit, what = m.last_heartbeat, policy.timeout_s, "heartbeat"
        age = clock.epoch() - since
        if age > limit:
            cause = (
                "stuck before its first beat (imports, __init__ or on_start)"
                if what == "startup"
                else "hung main loop or a job over its time limit"
            )
            message = f"no heartbeat for {age:.1f} s ({what} timeout {limit:g} s): {cause}"
            log.error("client %s hung: %s", m.name, message)
            m.last_error = f"hung: {message}"
            m.last_error_traceback = _tail(self.process_log(m.name))
            self._event(m.name, "hung", message, m.last_error_traceback)
            self._alert(m.name, f"client {m.name} hung and is being restarted: {message}")
            self._begin_stop(m, "hung")

    def _check_long_job(self, m: Managed, beat: heartbeat.Beat) -> None:
        """Report, once per job run, a job running longer than the client's job_warn_s."""
        assert isinstance(m.config, ClientConfig)
        if not beat.longest_job:
            return
        name, seconds, started = beat.longest_job
        key = (beat.pid, str(name), round(float(started), 3))
        if float(seconds) <= m.config.job_warn_s or key in m.warned_jobs:
            return
        m.warned_jobs.add(key)
        message = (
            f"job {name} has been running for {float(seconds):.0f} s "
            f"(job_warn_s {m.config.job_warn_s:g} s); it is left running"
        )
        log.warning("client %s: %s", m.name, message)
        self._event(m.name, "long_job", message)
        self._alert(m.name, f"client {m.name}: {message}")

    def _on_exit(self, m: Managed, code: int) -> None:
        assert m.proc is not None
        pid = m.proc.pid
        _killpg(pid, signal.SIGKILL)  # leftovers of the group (a job's subprocesses)
        m.proc = None
        m.warned_jobs.clear()  # keyed by pid: none can match the next process
        _pid_file(m.name, "module").unlink(missing_ok=True)
        reason, m.stop_reason, m.stop_deadline = m.stop_reason, None, None
        m.next_run = None
        if reason in ("stop", "shutdown", "reload", "restart", "disable", "removed"):
            self._event(m.name, "stopped", f"pid {pid} exited with status {code} ({reason})")
            log.info("client %s stopped (%s, status %s)", m.name, reason, code)
            if reason == "removed":
                self._forget(m)
            elif reason == "reload":
                self._apply_config(m)
            elif reason == "restart":
                self._spawn(m)
            elif reason == "disable":
                m.state = "disabled"
            else:
                m.state = "stopped"
            return
        failure = True
        if reason == "hung":
            pass  # already recorded when detected
        elif code == 0:
            failure = False
            self._event(m.name, "exited", f"pid {pid} exited on its own with status 0")
        else:
            crash = self._read_crash(m.name)
            how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            m.last_error = crash.get("error") or f"process {how}"
            m.last_error_traceback = crash.get("traceback") or _tail(self.process_log(m.name))
            log.error("client %s crashed: %s", m.name, m.last_error)
            self._event(m.name, "crashed", f"{how}: {m.last_error}", m.last_error_traceback)
            self._alert(m.name, f"client {m.name} crashed: {m.last_error}", m.last_error_traceback)
        self._after_failure(m, failure)

    def _read_crash(self, name: str) -> dict[str, Any]:
        path = crash_path(name)
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return {}

    def _after_failure(self, m: Managed, failure: bool) -> None:
        """Apply the restart policy after the client ended without being asked to."""
        assert isinstance(m.config, ClientConfig)
        policy = m.config.restart
        if not m.enabled or m.user_stopped:
            m.state = "stopped" if m.enabled else "disabled"
            return
        if policy.policy == "never" or (policy.policy == "on-failure" and not failure):
            m.state = "crashed" if failure else "stopped"
            return
        now = clock.monotonic()
        while m.restart_times and now - m.restart_times[0] > policy.window_s:
            m.restart_times.popleft()
        if len(m.restart_times) >= policy.max_restarts:
            m.state = "crashed"
            message = (
                f"crash loop: {len(m.restart_times)} restarts within {policy.window_s:g} s; "
                "not restarting (start it again once fixed)"
            )
            log.error("client %s: %s", m.name, message)
            self._event(m.name, "crash_loop", message, m.last_error_traceback)
            self._alert(m.name, f"client {m.name} gave up: {message}", m.last_error_traceback)
            return
        delay = min(policy.backoff_s * (2 ** len(m.restart_times)), policy.max_backoff_s)
        m.restart_times.append(now)
        m.restart_count += 1
        m.next_restart_at = now + delay
        m.state = "restarting"
        self._event(m.name, "restart_scheduled", f"restart #{m.restart_count} in {delay:.1f} s")

    # ---- notebook clients -------------------------------------------------------------------
    def _poll_notebook(self, m: Managed) -> None:
        if m.run is not None:
            self._poll_run(m)
        if m.trigger is None or m.next_fire is None or not m.enabled or m.user_stopped:
            return
        now = clock.now()
        if now < m.next_fire:
            return
        slot = m.next_fire
        m.next_fire = m.trigger.get_next_fire_time(slot, now)
        if m.next_fire is not None and m.next_fire <= slot:
            m.next_fire = m.trigger.get_next_fire_time(None, now + timedelta(microseconds=1))
        if m.run is not None:
            message = f"slot {utc_text(slot)} skipped: previous run {m.run.run_id} still running"
            log.warning("client %s: %s", m.name, message)
            self._event(m.name, "run_skipped", message)
            return
        self._launch_run(m, utc_text(slot), "schedule")

    def _launch_run(self, m: Managed, scheduled_for: str | None, trigger: str) -> int | None:
        cfg = m.config
        assert isinstance(cfg, ClientConfig) and self.db is not None
        started_at = now_text()
        try:
            row = self.db.insert(
                "client_runs",
                client_name=m.name,
                trigger=trigger,
                scheduled_for=scheduled_for,
                started_at=started_at,
                status="running",
            )
        except sqlite3.IntegrityError:
            log.info("client %s slot %s already claimed: not running twice", m.name, scheduled_for)
            return None
        run_id = int(row.id)
        stamp = clock.stamp()
        output = self.ws.runs / m.name / f"{stamp}_run{run_id}.ipynb"
        parameters = {
            **cfg.parameters,
            "client_name": m.name,
            "mode": cfg.mode,
            "run_time": started_at,
            "scheduled_for": scheduled_for or "",
            "run_id": run_id,
        }
        spec = {
            "run_id": run_id,
            "client": m.name,
            "input_path": str(cfg.entry_file),
            "output_path": str(output),
            "parameters": parameters,
            "kernel": cfg.kernel,
            "cwd": str(cfg.directory),
            "database": str(self.ws.database),
            "log_path": str(self.process_log(m.name)),
            "env": {
                "QUANTSTRIP_HOME": str(self.ws.home),
                "QUANTSTRIP_WORKSPACE": str(self.ws.root),
                "QUANTSTRIP_CLIENT": m.name,
                "QUANTSTRIP_MODE": cfg.mode,
            },
        }
        process = notebooks.start_run(spec)
        self.db.update("client_runs", run_id, pid=process.pid)
        _write_pid_file(_pid_file(m.name, "notebook"), process.pid, client=m.name, run_id=run_id)
        limit = cfg.time_limit_s
        m.run = NotebookRun(
            run_id=run_id,
            process=process,
            started=clock.monotonic(),
            scheduled_for=scheduled_for,
            output_path=output,
            deadline=clock.monotonic() + limit if limit else None,
        )
        m.state = "running"
        m.started_at = started_at
        log.info("client %s run %s started (%s, pid %s)", m.name, run_id, trigger, process.pid)
        self._event(m.name, "run_started", f"run {run_id} ({trigger}) slot {scheduled_for}")
        return run_id

    def _kill_run(self, m: Managed, status: str, reason: str) -> None:
        if m.run is None:
            return
        if m.run.process.is_alive():
            _kill_run_process(m.run.process)
        m.run.killed_reason = m.run.killed_reason or f"{status}:{reason}"
        m.run.process.join(5)
        self._finish_run(m)

    def _poll_run(self, m: Managed) -> None:
        assert m.run is not None and isinstance(m.config, ClientConfig)
        run = m.run
        if run.process.is_alive():
            if run.deadline is not None and clock.monotonic() > run.deadline:
                limit = m.config.time_limit_s
                log.error("client %s run %s over its %s s limit: killed", m.name, run.run_id, limit)
                run.killed_reason = f"timeout:exceeded its time limit of {limit:g} s"
                _kill_run_process(run.process)
            return
        self._finish_run(m)

    def _finish_run(self, m: Managed) -> None:
        assert m.run is not None and self.db is not None
        run = m.run
        run.process.join(1)
        # A killed run may have left its kernel behind in the same process group.
        _killpg(run.process.pid, signal.SIGKILL)
        m.run = None
        exitcode = run.process.exitcode
        _pid_file(m.name, "notebook").unlink(missing_ok=True)
        with contextlib.suppress(ValueError, OSError):
            run.process.close()
        record = self.db.get("client_runs", run.run_id)
        if record.status == "running":
            status, error = "failed", f"run process exited with status {exitcode}"
            if run.killed_reason:
                status, _, error = run.killed_reason.partition(":")
            ended = now_text()
            duration = round(clock.monotonic() - run.started, 3)
            record = self.db.update(
                "client_runs",
                run.run_id,
                status=status,
                ended_at=ended,
                duration_s=duration,
                error=error,
                output_path=str(run.output_path) if run.output_path.exists() else None,
                traceback=_tail(self.process_log(m.name)),
            )
        m.state = "scheduled" if m.enabled and not m.user_stopped else m.state
        if m.state == "running":
            m.state = "stopped"
        if record.status == "success":
            self._event(m.name, "run_succeeded", f"run {run.run_id} in {record.duration_s} s")
            return
        where = f" in cell {record.error_cell}" if record.error_cell else ""
        m.last_error = f"run {run.run_id} {record.status}{where}: {record.error}"
        m.last_error_traceback = record.traceback
        log.error("client %s %s", m.name, m.last_error)
        self._event(m.name, f"run_{record.status}", m.last_error, record.traceback)
        if record.status != "interrupted":
            self._alert(m.name, f"notebook client {m.last_error}", record.traceback)

    # ---- control commands -------------------------------------------------------------------
    def _handle_request(self, op: str, request: dict[str, Any]) -> Any:
        """Called on the control API thread: hand the command to the main loop and wait."""
        reply: queue.Queue[Any] = queue.Queue()
        self.commands.put((op, request, reply))
        try:
            ok, value = reply.get(timeout=15)
        except queue.Empty:
            raise ControlError(f"daemon busy: {op} not handled in time") from None
        if not ok:
            raise value
        return value

    def _drain_commands(self, wait_s: float = 0.0) -> None:
        """Answer queued commands; with `wait_s`, also wait that long for one (the loop's idle
        time), so a control request is served at once instead of at the next tick."""
        deadline = clock.monotonic() + wait_s
        while True:
            try:
                remaining = deadline - clock.monotonic()
                if remaining > 0:
                    op, request, reply = self.commands.get(timeout=remaining)
                else:
                    op, request, reply = self.commands.get_nowait()
            except queue.Empty:
                return
            try:
                reply.put((True, self._command(op, request)))
            except QuantstripError as exc:
                reply.put((False, exc))
            except Exception as exc:
                log.exception("command %s failed", op)
                reply.put((False, ControlError(f"{type(exc).__name__}: {exc}")))

    def _command(self, op: str, request: dict[str, Any]) -> Any:
        if op == "ping":
            return {"pid": os.getpid(), "workspace": str(self.ws.root)}
        if op == "list":
            return [self.status(m).as_dict() for m in sorted(self.clients.values(), key=_key)]
        if op == "reload":
            self._reload()
            return {"clients": len(self.clients)}
        name = str(request.get("name", ""))
        m = self.clients.get(name)
        if m is None:
            raise ControlError(f"no client named {name!r}")
        if op in ("enable", "disable"):
            registry.set_enabled(name, op == "enable", self.ws.clients)
            self._event(name, f"{op}d", "via control API")
            self._reload()
            m = self.clients[name]
            if op == "disable" and m.proc is not None:
                m.pending_reload = False
                self._begin_stop(m, "disable")
            if op == "disable" and m.run is not None:
                self._kill_run(m, "interrupted", "client disabled")
            return {"name": name, "state": m.state}
        if not m.valid:
            raise ControlError(f"client {name} is invalid: {m.last_error}")
        if not m.enabled:
            raise ControlError(f"client {name} is disabled: enable it first")
        if op == "start":
            m.user_stopped = False
            m.restart_times.clear()
            if m.kind == "module" and m.proc is None:
                self._spawn(m)
            elif m.kind == "notebook" and m.state == "stopped":
                self._apply_config(m)
        elif op == "stop":
            m.user_stopped = True
            self._event(name, "stop_requested", "via control API")
            if m.kind == "module":
                if m.proc is not None:
                    self._begin_stop(m, "stop")
                else:
                    m.state = "stopped"
            else:
                if m.run is not None:
                    self._kill_run(m, "interrupted", "stopped via control API")
                m.state = "stopped"
        elif op == "restart":
            m.user_stopped = False
            m.restart_times.clear()
            if m.kind == "module":
                if m.proc is not None:
                    self._begin_stop(m, "restart")
                else:
                    self._spawn(m)
            else:
                if m.run is not None:
                    self._kill_run(m, "interrupted", "restarted via control API")
                self._apply_config(m)
        elif op == "run_now":
            if m.kind == "module":
                if m.proc is None:
                    raise ControlError(f"client {name} is not running")
                os.kill(m.proc.pid, signal.SIGUSR1)
                self._event(name, "run_now", "all jobs fired via control API")
                return {"name": name, "state": m.state}
            if m.run is not None:
                raise ControlError(f"client {name} is already running (run {m.run.run_id})")
            run_id = self._launch_run(m, None, "manual")
            return {"name": name, "state": m.state, "run_id": run_id}
        return {"name": name, "state": m.state}

    # ---- state --------------------------------------------------------------------------
    def status(self, m: Managed) -> ClientStatus:
        cfg = m.config
        valid = isinstance(cfg, ClientConfig)
        pid = m.proc.pid if m.proc is not None else (m.run.process.pid if m.run else None)
        next_run = m.next_run
        if m.kind == "notebook":
            next_run = utc_text(m.next_fire) if m.next_fire and m.enabled else None
        beat = m.last_heartbeat
        return ClientStatus(
            name=m.name,
            kind=m.kind,
            state=m.state,
            enabled=m.enabled if valid else False,
            pid=pid,
            started_at=m.started_at if pid else None,
            last_heartbeat=utc_text(datetime.fromtimestamp(beat, UTC)) if beat else None,
            heartbeat_age_s=round(clock.epoch() - beat, 3) if beat and m.proc else None,
            next_run=next_run,
            last_error=m.last_error,
            last_error_traceback=m.last_error_traceback,
            restart_count=m.restart_count,
            display_name=(cfg.display_name or m.reported_name or cfg.name)
            if isinstance(cfg, ClientConfig)
            else None,
            mode=cfg.mode if isinstance(cfg, ClientConfig) else None,
            schedule=cfg.schedule if isinstance(cfg, ClientConfig) else None,
        )

    def _mirror(self, m: Managed) -> None:
        """Keep the `clients` row in step (written only when something changed)."""
        if self.db is None:
            return
        s = self.status(m)
        row = {
            "kind": s.kind,
            "entry": m.config.entry or "?",
            "enabled": int(s.enabled),
            "state": s.state,
            "pid": s.pid,
            "started_at": s.started_at,
            "last_heartbeat": s.last_heartbeat,
            "last_error": s.last_error,
            "last_error_traceback": s.last_error_traceback,
            "next_run": s.next_run,
            "restart_count": s.restart_count,
        }
        if row == m.mirrored:
            return
        if m.name in self._client_ids:
            self.db.update("clients", self._client_ids[m.name], **row)
        else:
            self._client_ids[m.name] = int(self.db.insert("clients", name=m.name, **row).id)
        m.mirrored = row

    def _load_client_ids(self) -> None:
        assert self.db is not None
        for row in self.db.query("SELECT id, name FROM clients"):
            self._client_ids[row["name"]] = row["id"]

    def _event(self, name: str, event_type: str, message: str = "", tb: str | None = None) -> None:
        if self.db is None:
            return
        try:
            self.db.record_client_event(name, event_type, message, tb)
        except Exception:
            log.exception("could not record %s event for %s", event_type, name)

    def _alert(self, name: str, message: str, tb: str | None = None) -> None:
        if self.alerts is not None:
            m = self.clients.get(name)
            to = m.config.recipients if m and isinstance(m.config, ClientConfig) else None
            self.alerts.send(name, message, tb, to=to or None)

    def _cleanup_orphans(self) -> None:
        """Sort what a previous daemon left running: module clients become candidates for
        adoption, everything else is stopped; unfinished runs are closed."""
        assert self.db is not None
        found: list[tuple[psutil.Process, Path]] = []
        for path in heartbeat.run_dir().glob("*.pid"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
                continue
            proc = _same_process(int(data.get("pid", 0)), data.get("create_time"))
            if proc is None:
                path.unlink(missing_ok=True)
                continue
            if path.name.endswith(".module.pid") and data.get("client"):
                self._adoptable[str(data["client"])] = (proc, data)
                continue
            found.append((proc, path))
        _stop_processes(found)
        for row in self.db.query(
            "SELECT id, client_name, started_at FROM client_runs WHERE status = 'running'"
        ):
            started = parse_utc(row["started_at"])
            self.db.update(
                "client_runs",
                row["id"],
                status="interrupted",
                ended_at=now_text(),
                duration_s=round((clock.now() - started).total_seconds(), 3),
                error="the daemon stopped during this run",
            )
            self._event(row["client_name"], "run_interrupted", f"run {row['id']} (daemon restart)")


def _key(m: Managed) -> str:
    return m.name


def run_daemon() -> int:
    return Daemon().run()
