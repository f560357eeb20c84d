"""Module clients: one `quantstrip.client.runner` process each, watched through its heartbeat.

A crash is recorded with its traceback, alerted, and restarted per `restart_policy`. A silent
heartbeat (`heartbeat.timeout_s`, or `startup_timeout_s` before the first beat) means hung:
SIGTERM, then SIGKILL after `stop_timeout_s`, then the restart policy applies. A job still
running at the client's `time_limit_s` (the runner reports its running jobs in every beat) is
stopped the same way at the limit: a Python thread cannot be cancelled, so the process goes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from quantstrip import clock
from quantstrip.client import heartbeat
from quantstrip.client.runner import crash_path
from quantstrip.daemon import processes, restart_policy
from quantstrip.daemon.managed import Managed
from quantstrip.daemon.mirror import Mirror
from quantstrip.daemon.processes import AdoptedProcess
from quantstrip.daemon.states import ClientState, EventType, StopReason
from quantstrip.db.units import now_text, utc_text
from quantstrip.paths import Workspace

log = logging.getLogger("quantstrip.daemon")

Alert = Callable[[str, str, str | None], None]


class ModuleClients:
    def __init__(
        self,
        ws: Workspace,
        mirror: Mirror,
        alert: Alert,
        after_requested_stop: Callable[[Managed, StopReason], None],
    ) -> None:
        self.ws = ws
        self.mirror = mirror
        self.alert = alert
        self.after_requested_stop = after_requested_stop
        # Processes a previous daemon left running, by client: (process, its pid file data).
        self.adoptable: dict[str, processes.Leftover] = {}

    def process_log(self, name: str) -> Path:
        return processes.process_log(self.ws.logs, name)

    # ---- start ------------------------------------------------------------------------------
    def spawn(self, m: Managed) -> None:
        cfg = m.cfg
        heartbeat.heartbeat_path(m.name).unlink(missing_ok=True)
        crash_path(m.name).unlink(missing_ok=True)
        env = dict(
            os.environ,
            QUANTSTRIP_CLIENT=m.name,
            QUANTSTRIP_MODE=cfg.mode,
            QUANTSTRIP_HOME=str(self.ws.home),
            QUANTSTRIP_WORKSPACE=str(self.ws.root),
            QUANTSTRIP_CLIENT_TZ=cfg.tz or "UTC",
            QUANTSTRIP_CLIENT_PARAMETERS=json.dumps(cfg.parameters, default=str),
            QUANTSTRIP_CLIENT_RECIPIENTS=json.dumps(cfg.recipients),
        )
        env.pop("QUANTSTRIP_JOB_TIMEOUT_S", None)
        if cfg.time_limit_s:
            env["QUANTSTRIP_JOB_TIMEOUT_S"] = str(cfg.time_limit_s)
        m.proc = processes.spawn_runner(
            m.name,
            cfg.entry_file,
            cfg.entry_class,
            cfg.heartbeat.interval_s,
            cfg.directory,
            env,
            self.process_log(m.name),
        )
        processes.write_pid_file(
            processes.pid_file(m.name, processes.MODULE),
            m.proc.pid,
            client=m.name,
            signature=processes.signature_text(m.signature),
        )
        self._running(m, now_text(), clock.epoch())
        log.info("client %s started (pid %s)", m.name, m.proc.pid)
        self.mirror.event(m.name, EventType.STARTED, f"pid {m.proc.pid}")

    def _running(self, m: Managed, started_at: str, started_epoch: float) -> None:
        m.state = ClientState.RUNNING
        m.started_at, m.started_epoch = started_at, started_epoch
        m.stop_reason = m.stop_deadline = None
        m.killed = False
        m.next_restart_at = None
        m.last_heartbeat = None
        m.last_job = None

    def adopt(self, m: Managed) -> bool:
        """Take over the process a previous daemon started for this client, if its files are
        unchanged since; otherwise it is left for `stop_unadopted`."""
        found = self.adoptable.get(m.name)
        if found is None:
            return False
        if found.data.get("signature") != processes.signature_text(m.signature):
            log.info("client %s changed while the daemon was down: restarting it", m.name)
            return False
        del self.adoptable[m.name]
        m.proc = AdoptedProcess(m.name, found.proc)
        started = found.proc.create_time()
        self._running(m, utc_text(datetime.fromtimestamp(started, UTC)), started)
        log.info("client %s adopted (pid %s, running since %s)", m.name, m.proc.pid, m.started_at)
        self.mirror.event(
            m.name, EventType.ADOPTED, f"pid {m.proc.pid} kept running across a daemon restart"
        )
        return True

    def stop_unadopted(self) -> None:
        """Stop what the previous daemon left that is not adopted (changed, disabled, removed)."""
        leftovers, self.adoptable = self.adoptable, {}
        processes.stop_processes([(found.proc, found.path) for found in leftovers.values()])

    # ---- stop -------------------------------------------------------------------------------
    def begin_stop(self, m: Managed, reason: StopReason) -> None:
        """SIGTERM the client's process group; SIGKILL follows after stop_timeout_s."""
        if m.proc is None:
            return
        if m.stop_reason is None or reason in (StopReason.SHUTDOWN, StopReason.HUNG):
            m.stop_reason = reason
        if m.stop_deadline is None:
            timeout = m.cfg.stop_timeout_s if m.valid else 10.0
            m.stop_deadline = clock.monotonic() + timeout
            processes.killpg(m.proc.pid, signal.SIGTERM)
        m.state = ClientState.STOPPING

    def kill_now(self, m: Managed) -> None:
        """SIGKILL the group and reap it (daemon shutdown, after the grace period)."""
        if m.proc is None:
            return
        processes.killpg(m.proc.pid, signal.SIGKILL)
        m.proc.wait(5)
        self.on_exit(m, m.proc.returncode if m.proc.returncode is not None else -9)

    # ---- watch ------------------------------------------------------------------------------
    def poll(self, m: Managed) -> None:
        now = clock.monotonic()
        if m.proc is not None:
            code = m.proc.poll()
            if code is not None:
                self.on_exit(m, code)
                return
            if m.stop_deadline is not None:
                if now >= m.stop_deadline and not m.killed:
                    log.warning("client %s ignored SIGTERM: SIGKILL", m.name)
                    processes.killpg(m.proc.pid, signal.SIGKILL)
                    m.killed = True
                return
            self._check_heartbeat(m)
        elif (
            m.state == ClientState.RESTARTING
            and m.next_restart_at is not None
            and now >= m.next_restart_at
            and m.enabled
            and not m.user_stopped
        ):
            self.spawn(m)

    def _check_heartbeat(self, m: Managed) -> None:
        assert m.proc is not None
        beat = heartbeat.read_beat(heartbeat.heartbeat_path(m.name))
        if beat is not None and beat.pid == m.proc.pid:
            m.last_heartbeat = beat.time
            m.next_run = beat.next_run
            m.reported_name = beat.display_name
            m.last_job = beat.last_job
            self._check_long_job(m, beat)
            if self._check_time_limit(m, beat):
                return
        policy = m.cfg.heartbeat
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
            m.last_error_traceback = processes.tail(self.process_log(m.name))
            self.mirror.event(m.name, EventType.HUNG, message, m.last_error_traceback)
            self.alert(m.name, f"client {m.name} hung and is being restarted: {message}", None)
            self.begin_stop(m, StopReason.HUNG)

    def _check_time_limit(self, m: Managed, beat: heartbeat.Beat) -> bool:
        """Stop the client when its longest running job reaches `time_limit_s`, timed from the
        job's start in the beat (the runner beats when a job starts), not from a late beat."""
        limit = m.cfg.time_limit_s
        if not limit or not beat.longest_job:
            return False
        name, _, started = beat.longest_job
        ran = clock.epoch() - float(started)
        if ran < limit:
            return False
        message = (
            f"job {name} ran for {ran:.1f} s, over its time limit of {limit:g} s: "
            "client stopped (a running job cannot be cancelled)"
        )
        log.error("client %s: %s", m.name, message)
        m.last_error = message
        m.last_error_traceback = processes.tail(self.process_log(m.name))
        self.mirror.event(m.name, EventType.JOB_TIME_LIMIT, message, m.last_error_traceback)
        self.alert(m.name, f"client {m.name}: {message}", None)
        self.begin_stop(m, StopReason.TIME_LIMIT)
        return True

    def _check_long_job(self, m: Managed, beat: heartbeat.Beat) -> None:
        """Report, once per job run, a job running longer than the client's job_warn_s."""
        if not beat.longest_job:
            return
        name, seconds, started = beat.longest_job
        key = (beat.pid, str(name), round(float(started), 3))
        if float(seconds) <= m.cfg.job_warn_s or key in m.warned_jobs:
            return
        m.warned_jobs.add(key)
        message = (
            f"job {name} has been running for {float(seconds):.0f} s "
            f"(job_warn_s {m.cfg.job_warn_s:g} s); it is left running"
        )
        log.warning("client %s: %s", m.name, message)
        self.mirror.event(m.name, EventType.LONG_JOB, message)
        self.alert(m.name, f"client {m.name}: {message}", None)

    # ---- exit -------------------------------------------------------------------------------
    def on_exit(self, m: Managed, code: int) -> None:
        assert m.proc is not None
        pid = m.proc.pid
        processes.killpg(pid, signal.SIGKILL)  # leftovers of the group (a job's subprocesses)
        m.proc = None
        m.warned_jobs.clear()  # keyed by pid: none can match the next process
        processes.pid_file(m.name, processes.MODULE).unlink(missing_ok=True)
        reason, m.stop_reason, m.stop_deadline = m.stop_reason, None, None
        m.next_run = None
        if reason is not None and reason.requested:
            self.mirror.event(
                m.name, EventType.STOPPED, f"pid {pid} exited with status {code} ({reason})"
            )
            log.info("client %s stopped (%s, status %s)", m.name, reason, code)
            self.after_requested_stop(m, reason)
            return
        failure = True
        if reason is not None:
            pass  # hung or over its time limit: recorded and alerted when detected
        elif code == 0:
            failure = False
            self.mirror.event(
                m.name, EventType.EXITED, f"pid {pid} exited on its own with status 0"
            )
        else:
            crash = processes.read_crash(m.name)
            how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            m.last_error = crash.get("error") or f"process {how}"
            m.last_error_traceback = crash.get("traceback") or processes.tail(
                self.process_log(m.name)
            )
            log.error("client %s crashed: %s", m.name, m.last_error)
            self.mirror.event(
                m.name, EventType.CRASHED, f"{how}: {m.last_error}", m.last_error_traceback
            )
            self.alert(m.name, f"client {m.name} crashed: {m.last_error}", m.last_error_traceback)
        self._after_failure(m, failure)

    def _after_failure(self, m: Managed, failure: bool) -> None:
        """Apply the restart policy after the client ended without being asked to."""
        if not m.enabled or m.user_stopped:
            m.state = ClientState.STOPPED if m.enabled else ClientState.DISABLED
            return
        policy = m.cfg.restart
        now = clock.epoch()
        decision = restart_policy.decide(policy, failure, m.restart_times, now)
        m.restart_times = restart_policy.in_window(m.restart_times, policy, now)
        if decision.crash_loop:
            m.state = ClientState.CRASHED
            message = (
                f"crash loop: {decision.restarts_in_window} restarts within "
                f"{policy.window_s:g} s; not restarting (start it again once fixed)"
            )
            log.error("client %s: %s", m.name, message)
            self.mirror.event(m.name, EventType.CRASH_LOOP, message, m.last_error_traceback)
            self.alert(m.name, f"client {m.name} gave up: {message}", m.last_error_traceback)
            return
        if not decision.restart:
            m.state = ClientState.CRASHED if failure else ClientState.STOPPED
            return
        m.restart_times.append(now)
        m.restart_count += 1
        m.next_restart_at = clock.monotonic() + decision.delay_s
        m.state = ClientState.RESTARTING
        self.mirror.event(
            m.name,
            EventType.RESTART_SCHEDULED,
            f"restart #{m.restart_count} in {decision.delay_s:.1f} s",
        )
