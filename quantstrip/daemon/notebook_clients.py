"""Notebook clients: slots from the trigger, one papermill run at a time, whole-run time limit.

Each run first claims its slot with an INSERT into `client_runs` (UNIQUE (client_name,
scheduled_for)), so no slot runs twice, whatever happens to the daemon. A slot that comes while
the previous run is still going is skipped and recorded. The run executes in a fork of the
fork server (`notebooks`), records its own outcome, and is killed with its kernel at the
client's `time_limit_s`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from quantstrip import clock
from quantstrip.daemon import notebooks, processes
from quantstrip.daemon import parameters as parameters_module
from quantstrip.daemon.managed import Managed
from quantstrip.daemon.mirror import Mirror
from quantstrip.daemon.notebook_downtime import Downtime
from quantstrip.daemon.notebooks import NotebookRun
from quantstrip.daemon.states import ClientState, EventType, MissedPolicy, RunStatus, RunTrigger
from quantstrip.db.handler import Database
from quantstrip.db.units import now_text, utc_text
from quantstrip.paths import Workspace

log = logging.getLogger("quantstrip.daemon")

Alert = Callable[[str, str, str | None], None]
# A scheduled run's process starts this long before its slot: a fresh kernel takes about a
# second to start (more on a loaded machine), and the first cell should run at the slot.
PRELAUNCH_S = 3.0
# How long stopping a run that is still starting waits for its process (then the poll kills it).
START_WAIT_S = 30.0


class NotebookClients(Downtime):
    def __init__(self, ws: Workspace, db: Database, mirror: Mirror, alert: Alert) -> None:
        self.ws = ws
        self.db = db
        self.mirror = mirror
        self.alert = alert
        self.launcher = ThreadPoolExecutor(1, thread_name_prefix="run-launcher")
        # Run children a previous daemon left running, by client (see `adopt`).
        self.adoptable: dict[str, processes.Leftover] = {}

    def process_log(self, name: str) -> Path:
        return processes.process_log(self.ws.logs, name)

    # ---- schedule ---------------------------------------------------------------------------
    def configure(self, m: Managed, initial: bool = False) -> None:
        """Take the (new) trigger; on daemon start, catch up per the client's missed policy."""
        notebooks.start_fork_server()  # idempotent; papermill loads while nothing is due
        cfg = m.cfg
        m.trigger = cfg.trigger()
        now = clock.now()
        m.next_fire = m.trigger.get_next_fire_time(None, now) if m.trigger else None
        if m.run:
            m.state = ClientState.RUNNING
        else:
            m.state = ClientState.STOPPED if m.user_stopped else ClientState.SCHEDULED
        if initial:
            self._adopt(m)
            self._take_back_unstarted(m)
            if m.trigger and m.enabled and not m.user_stopped:
                self.resume_interrupted(m, now)
        if initial and m.trigger and not m.user_stopped:
            self._catch_up(m, now)
            if m.missed_slots and m.enabled:  # claimed while the registry is applied
                self._next_missed(m)

    def _next_missed(self, m: Managed) -> None:
        """Start the oldest missed slot still waiting, if no run is in progress."""
        self._queue_missed(m)
        while m.missed_slots and m.run is None:
            slot = m.missed_slots.popleft()
            self.launch(m, utc_text(slot), RunTrigger.MISSED)

    def poll(self, m: Managed) -> None:
        if m.run is not None:
            self._poll_run(m)
        if m.missed_slots and m.enabled and not m.user_stopped:
            self._next_missed(m)
        if m.trigger is None or m.next_fire is None or not m.enabled or m.user_stopped:
            return
        now = clock.now()
        # A run starts PRELAUNCH_S ahead of its slot (kernel up, first cell at the slot); while
        # a run is in progress the next slot is decided at its time.
        lead = timedelta(seconds=PRELAUNCH_S if m.run is None else 0)
        if now < m.next_fire - lead:
            return
        slot = m.next_fire
        after = max(now, slot)
        m.next_fire = m.trigger.get_next_fire_time(slot, after)
        if m.next_fire is not None and m.next_fire <= slot:
            m.next_fire = m.trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
        if m.run is not None and m.cfg.missed.policy == MissedPolicy.RUN_ALL:
            m.missed_slots.append(slot)  # run_all loses no slot: it runs after this one
            return
        if m.run is not None:
            message = f"slot {utc_text(slot)} skipped: previous run {m.run.run_id} still running"
            log.warning("client %s: %s", m.name, message)
            self.mirror.event(m.name, EventType.RUN_SKIPPED, message)
            return
        self.launch(m, utc_text(slot), RunTrigger.SCHEDULE, start_at=slot if slot > now else None)

    # ---- runs -------------------------------------------------------------------------------
    def launch(
        self,
        m: Managed,
        scheduled_for: str | None,
        trigger: RunTrigger,
        start_at: datetime | None = None,
    ) -> int | None:
        """Claim the slot and start its run; with `start_at`, the run child starts its kernel
        now and its first cell at `start_at` (the slot)."""
        cfg = m.cfg
        started_at = utc_text(start_at) if start_at else now_text()
        try:
            row = self.db.insert(
                "client_runs",
                client_name=m.name,
                trigger=str(trigger),
                scheduled_for=scheduled_for,
                started_at=started_at,
                status=str(RunStatus.RUNNING),
            )
        except sqlite3.IntegrityError:
            log.info("client %s slot %s already claimed: not running twice", m.name, scheduled_for)
            return None
        run_id = int(row.id)
        output = self.ws.runs / m.name / f"{clock.stamp()}_run{run_id}.ipynb"
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
            "start_at": start_at.timestamp() if start_at else None,
            "log_path": str(self.process_log(m.name)),
            "env": {
                "QUANTSTRIP_HOME": str(self.ws.home),
                "QUANTSTRIP_WORKSPACE": str(self.ws.root),
                "QUANTSTRIP_CLIENT": m.name,
                "QUANTSTRIP_MODE": cfg.mode,
            },
        }
        try:
            parameters_module.check(cfg.entry_file, parameters, set(cfg.parameters))
        except parameters_module.ParameterError as exc:
            self._refuse(m, run_id, str(exc))
            return run_id
        limit = cfg.time_limit_s
        ahead = max(0.0, (start_at - clock.now()).total_seconds()) if start_at else 0.0
        m.run = NotebookRun(
            run_id=run_id,
            process=None,
            started=clock.monotonic() + ahead,
            scheduled_for=scheduled_for,
            output_path=output,
            deadline=clock.monotonic() + ahead + limit if limit else None,
            pending=self.launcher.submit(notebooks.start_run, spec),
        )
        m.state = ClientState.RUNNING
        m.started_at = started_at
        log.info("client %s run %s starting (%s)", m.name, run_id, trigger)
        self.mirror.event(
            m.name, EventType.RUN_STARTED, f"run {run_id} ({trigger}) slot {scheduled_for}"
        )
        return run_id

    def _started(self, m: Managed) -> bool:
        """Whether the run's process is up (it is started off the main loop: the first start
        waits for the fork server to load papermill, seconds on a loaded machine, and the loop
        must keep supervising meanwhile). Records its pid once it is."""
        run = m.run
        assert run is not None
        if run.process is not None:
            return True
        assert run.pending is not None
        if not run.pending.done():
            return False
        try:
            run.process = run.pending.result()
        except Exception as exc:
            log.exception("client %s run %s did not start", m.name, run.run_id)
            run.process = processes.NeverStarted()
            run.killed_reason = f"{RunStatus.FAILED}:the run process could not start: {exc!r}"
            return True
        limit = m.cfg.time_limit_s if m.valid else None
        if limit and run.deadline is not None:  # the limit counts from the start, not the claim
            run.deadline = max(run.deadline, clock.monotonic() + limit)
        pid = run.process.pid
        self.db.update("client_runs", run.run_id, pid=pid)
        processes.write_pid_file(
            processes.pid_file(m.name, processes.NOTEBOOK),
            pid,
            client=m.name,
            run_id=run.run_id,
            output_path=str(run.output_path),
        )
        log.info("client %s run %s started (pid %s)", m.name, run.run_id, pid)
        if run.killed_reason:  # stopped while it was starting
            processes.kill_run_process(run.process)
        return True

    def _refuse(self, m: Managed, run_id: int, error: str) -> None:
        """A run whose parameters do not match the notebook: failed before it starts."""
        self.db.update(
            "client_runs",
            run_id,
            status=str(RunStatus.FAILED),
            ended_at=now_text(),
            duration_s=0.0,
            error=error,
        )
        m.last_error = f"run {run_id} failed: {error}"
        m.last_error_traceback = None
        log.error("client %s %s", m.name, m.last_error)
        self.mirror.event(m.name, EventType.RUN_FAILED, m.last_error)
        self.alert(m.name, f"notebook client {m.last_error}", None)

    def kill(self, m: Managed, status: RunStatus, reason: str) -> None:
        if m.run is None:
            return
        if m.run.process is None and m.run.pending is not None:
            with contextlib.suppress(Exception):
                m.run.pending.result(timeout=START_WAIT_S)
            if not self._started(m):
                m.run.killed_reason = m.run.killed_reason or f"{status}:{reason}"
                return  # still starting: killed by the poll that sees it start
        assert m.run.process is not None
        if m.run.process.is_alive():
            processes.kill_run_process(m.run.process)
        m.run.killed_reason = m.run.killed_reason or f"{status}:{reason}"
        m.run.process.join(5)
        self._finish(m)

    def _poll_run(self, m: Managed) -> None:
        assert m.run is not None
        run = m.run
        if not self._started(m):
            return
        assert run.process is not None
        if run.process.is_alive():
            if run.deadline is not None and clock.monotonic() > run.deadline:
                limit = m.cfg.time_limit_s
                log.error("client %s run %s over its %s s limit: killed", m.name, run.run_id, limit)
                run.killed_reason = f"{RunStatus.TIMEOUT}:exceeded its time limit of {limit:g} s"
                processes.kill_run_process(run.process)
            return
        self._finish(m)

    def _finish(self, m: Managed) -> None:
        assert m.run is not None and m.run.process is not None
        run = m.run
        run.process.join(1)
        # A killed run may have left its kernel behind in the same process group.
        processes.killpg(run.process.pid, signal.SIGKILL)
        m.run = None
        exitcode = getattr(run.process, "exitcode", None)
        processes.pid_file(m.name, processes.NOTEBOOK).unlink(missing_ok=True)
        with contextlib.suppress(ValueError, OSError):
            run.process.close()
        record = self.db.get("client_runs", run.run_id)
        if record.status == RunStatus.RUNNING:
            status, error = (
                str(RunStatus.FAILED),
                (
                    f"run process exited with status {exitcode}"
                    if exitcode is not None
                    else "the run process ended without recording its outcome"
                ),
            )
            if run.killed_reason:
                status, _, error = run.killed_reason.partition(":")
            record = self.db.update(
                "client_runs",
                run.run_id,
                status=status,
                ended_at=now_text(),
                duration_s=round(clock.monotonic() - run.started, 3),
                error=error,
                output_path=str(run.output_path) if run.output_path.exists() else None,
                traceback=processes.tail(self.process_log(m.name)),
            )
        if m.enabled and not m.user_stopped:
            m.state = ClientState.SCHEDULED
        elif m.state == ClientState.RUNNING:
            m.state = ClientState.STOPPED
        if record.status == RunStatus.SUCCESS:
            self.mirror.event(
                m.name, EventType.RUN_SUCCEEDED, f"run {run.run_id} in {record.duration_s} s"
            )
            return
        where = f" in cell {record.error_cell}" if record.error_cell else ""
        m.last_error = f"run {run.run_id} {record.status}{where}: {record.error}"
        m.last_error_traceback = record.traceback
        log.error("client %s %s", m.name, m.last_error)
        self.mirror.event(m.name, EventType.for_run(record.status), m.last_error, record.traceback)
        if record.status != RunStatus.INTERRUPTED:
            self.alert(m.name, f"notebook client {m.last_error}", record.traceback)
