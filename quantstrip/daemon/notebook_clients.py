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
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from quantstrip import clock
from quantstrip.client.slots import missed_slots
from quantstrip.daemon import notebooks, processes
from quantstrip.daemon import parameters as parameters_module
from quantstrip.daemon.managed import Managed
from quantstrip.daemon.mirror import Mirror
from quantstrip.daemon.notebooks import NotebookRun
from quantstrip.daemon.states import ClientState, EventType, MissedPolicy, RunStatus, RunTrigger
from quantstrip.db.connection import transaction
from quantstrip.db.handler import Database
from quantstrip.db.units import now_text, parse_utc, utc_text
from quantstrip.paths import Workspace

log = logging.getLogger("quantstrip.daemon")

Alert = Callable[[str, str, str | None], None]
# A scheduled run's process starts this long before its slot: a fresh kernel takes about a
# second to start (more on a loaded machine), and the first cell should run at the slot.
PRELAUNCH_S = 3.0


class NotebookClients:
    def __init__(self, ws: Workspace, db: Database, mirror: Mirror, alert: Alert) -> None:
        self.ws = ws
        self.db = db
        self.mirror = mirror
        self.alert = alert
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
        if initial and m.trigger and not m.user_stopped:
            self._catch_up(m, now)

    def _adopt(self, m: Managed) -> None:
        """Watch a run a previous daemon started and left running, instead of killing it: it
        records its own outcome, and killing it would lose a slot that was claimed (a restarted
        daemon does not run a claimed slot again)."""
        found = self.adoptable.pop(m.name, None)
        if found is None or m.run is not None:
            if found is not None:
                self.adoptable[m.name] = found
            return
        run_id = int(found.data.get("run_id", 0))
        record = self.db.query("SELECT * FROM client_runs WHERE id = ?", (run_id,))
        if not record or record[0]["status"] != RunStatus.RUNNING:
            self.adoptable[m.name] = found  # not a run we know as running: stopped with the rest
            return
        row = record[0]
        elapsed = (clock.now() - parse_utc(row["started_at"])).total_seconds()
        limit = m.cfg.time_limit_s
        m.run = NotebookRun(
            run_id=run_id,
            process=processes.AdoptedRun(found.proc),
            started=clock.monotonic() - elapsed,
            scheduled_for=row["scheduled_for"],
            output_path=Path(found.data.get("output_path") or self.ws.runs / m.name / "?"),
            deadline=clock.monotonic() + (limit - elapsed) if limit else None,
        )
        m.state = ClientState.RUNNING
        m.started_at = row["started_at"]
        log.info("client %s: run %s adopted (pid %s)", m.name, run_id, found.proc.pid)
        self.mirror.event(
            m.name, EventType.ADOPTED, f"run {run_id} (pid {found.proc.pid}) kept running"
        )

    def _take_back_unstarted(self, m: Managed) -> None:
        """Claims a previous daemon made but died before their run started (no run process
        marked the row as its own). The row is closed in one conditional UPDATE, so a run child
        that was about to start sees it and does not run; its slot is freed, named in the
        row's error, and runs again unless the client skips missed slots."""
        rows = self.db.query(
            "SELECT id, scheduled_for FROM client_runs WHERE client_name = ? AND status = ? "
            "AND pid IS NULL",
            (m.name, str(RunStatus.RUNNING)),
        )
        for row in rows:
            slot = row["scheduled_for"]
            rerun = slot is not None and m.cfg.missed.policy != MissedPolicy.SKIP
            error = "the daemon stopped before this run started" + (
                f"; slot {slot} is run again" if rerun else ""
            )
            with transaction(self.db.conn):
                taken = self.db.conn.execute(
                    "UPDATE client_runs SET status = ?, ended_at = ?, duration_s = 0, error = ?, "
                    "scheduled_for = NULL WHERE id = ? AND status = ? AND pid IS NULL",
                    (
                        str(RunStatus.INTERRUPTED),
                        now_text(),
                        error,
                        row["id"],
                        str(RunStatus.RUNNING),
                    ),
                ).rowcount
            if taken:
                self.mirror.event(m.name, EventType.RUN_INTERRUPTED, f"run {row['id']}: {error}")
                if rerun:
                    m.missed_slots.append(parse_utc(slot))

    def stop_unadopted(self, adopted: set[int]) -> None:
        """Stop the runs nobody adopted (client removed, disabled or stopped), then close every
        run still recorded as running that is not adopted."""
        leftovers, self.adoptable = self.adoptable, {}
        processes.stop_processes([(found.proc, found.path) for found in leftovers.values()])
        self.close_interrupted_runs(adopted)

    def _catch_up(self, m: Managed, now: datetime) -> None:
        """Slots that passed while the daemon was down (within `missed.grace_s`) and that nobody
        claimed: none run (skip), the latest runs now (run_once), or each runs in turn, oldest
        first (run_all)."""
        cfg = m.cfg
        if cfg.missed.policy == MissedPolicy.SKIP:
            return
        since = self._missed_since(m, now)
        if since is None:
            return
        found = missed_slots(m.trigger, since, now)
        wanted = list(found.slots)
        if cfg.missed.policy == MissedPolicy.RUN_ONCE:
            wanted = wanted[-1:]
        if not wanted:
            return
        claimed = {
            row["scheduled_for"]
            for row in self.db.query(
                "SELECT scheduled_for FROM client_runs WHERE client_name = ? "
                "AND scheduled_for BETWEEN ? AND ?",
                (m.name, utc_text(wanted[0]), utc_text(wanted[-1])),
            )
        }
        pending = [slot for slot in wanted if utc_text(slot) not in claimed]
        if not pending:
            return
        how = "once" if cfg.missed.policy == MissedPolicy.RUN_ONCE else "each in turn"
        log.info("client %s missed %d slot(s): running them %s", m.name, len(pending), how)
        self.mirror.event(
            m.name,
            EventType.MISSED_RUN,
            f"running missed slot(s) {', '.join(utc_text(s) for s in pending)} {how} "
            f"(policy {cfg.missed.policy})",
        )
        m.missed_slots.extend(pending)
        self._next_missed(m)

    def _queue_missed(self, m: Managed) -> None:
        """Oldest first, each slot once (a taken-back claim may also be a missed slot)."""
        m.missed_slots = deque(sorted(set(m.missed_slots)))

    def _missed_since(self, m: Managed, now: datetime) -> datetime | None:
        """Where the downtime began, as far as the database knows, and no earlier than the
        grace window: the latest slot this client claimed (slots are claimed oldest first, so
        every later unclaimed one was missed, including those a killed daemon had queued), else
        the last time a daemon mirrored the client. run_all needs a client a previous daemon
        knew: a new client has missed nothing."""
        since = now - timedelta(seconds=m.cfg.missed.grace_s)
        last = self.db.query(
            "SELECT MAX(scheduled_for) AS slot FROM client_runs WHERE client_name = ?", (m.name,)
        )[0]["slot"]
        row = self.mirror.saved(m.name)
        if last:
            return max(since, parse_utc(last))
        if row is not None:
            return max(since, parse_utc(row["updated_at"]))
        return None if m.cfg.missed.policy == MissedPolicy.RUN_ALL else since

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
        process = notebooks.start_run(spec)
        self.db.update("client_runs", run_id, pid=process.pid)
        processes.write_pid_file(
            processes.pid_file(m.name, processes.NOTEBOOK),
            process.pid,
            client=m.name,
            run_id=run_id,
            output_path=str(output),
        )
        limit = cfg.time_limit_s
        ahead = max(0.0, (start_at - clock.now()).total_seconds()) if start_at else 0.0
        m.run = NotebookRun(
            run_id=run_id,
            process=process,
            started=clock.monotonic() + ahead,
            scheduled_for=scheduled_for,
            output_path=output,
            deadline=clock.monotonic() + ahead + limit if limit else None,
        )
        m.state = ClientState.RUNNING
        m.started_at = started_at
        log.info("client %s run %s started (%s, pid %s)", m.name, run_id, trigger, process.pid)
        self.mirror.event(
            m.name, EventType.RUN_STARTED, f"run {run_id} ({trigger}) slot {scheduled_for}"
        )
        return run_id

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
        if m.run.process.is_alive():
            processes.kill_run_process(m.run.process)
        m.run.killed_reason = m.run.killed_reason or f"{status}:{reason}"
        m.run.process.join(5)
        self._finish(m)

    def _poll_run(self, m: Managed) -> None:
        assert m.run is not None
        run = m.run
        if run.process.is_alive():
            if run.deadline is not None and clock.monotonic() > run.deadline:
                limit = m.cfg.time_limit_s
                log.error("client %s run %s over its %s s limit: killed", m.name, run.run_id, limit)
                run.killed_reason = f"{RunStatus.TIMEOUT}:exceeded its time limit of {limit:g} s"
                processes.kill_run_process(run.process)
            return
        self._finish(m)

    def _finish(self, m: Managed) -> None:
        assert m.run is not None
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

    def close_interrupted_runs(self, adopted: set[int]) -> None:
        """Runs a previous daemon left 'running' whose process is gone: closed as interrupted."""
        for row in self.db.query(
            "SELECT id, client_name, started_at FROM client_runs WHERE status = ?",
            (str(RunStatus.RUNNING),),
        ):
            if row["id"] in adopted:
                continue
            started = parse_utc(row["started_at"])
            self.db.update(
                "client_runs",
                row["id"],
                status=str(RunStatus.INTERRUPTED),
                ended_at=now_text(),
                duration_s=round((clock.now() - started).total_seconds(), 3),
                error="the daemon stopped during this run",
            )
            self.mirror.event(
                row["client_name"], EventType.RUN_INTERRUPTED, f"run {row['id']} (daemon restart)"
            )
