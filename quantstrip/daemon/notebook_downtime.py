"""Notebook clients after downtime: what a killed daemon left, and the slots it missed.

On start the daemon adopts a run a previous daemon left running (it records its own outcome;
killing it would lose a claimed slot), takes back a claim whose run never started (atomically,
against the run child marking the row its own) and closes runs whose process is gone. Slots
that passed while it was down, and slots whose run a graceful daemon stop interrupted, follow the
client's `[missed] policy`: skip (recorded as missed), run the latest once, or run each in turn
(oldest first, one at a time), from the latest slot the client claimed and no earlier than
`grace_s`.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from quantstrip import clock
from quantstrip.client.slots import missed_slots
from quantstrip.daemon import processes
from quantstrip.daemon.managed import Managed
from quantstrip.daemon.notebooks import NotebookRun
from quantstrip.daemon.states import ClientState, EventType, MissedPolicy, RunStatus
from quantstrip.db.connection import transaction
from quantstrip.db.units import now_text, parse_utc, utc_text

if TYPE_CHECKING:
    from quantstrip.daemon.mirror import Mirror
    from quantstrip.db.handler import Database
    from quantstrip.paths import Workspace

log = logging.getLogger("quantstrip.daemon")

# The error `NotebookClients.kill` records for a run that a daemon stop interrupted.
DAEMON_STOPPED = "daemon stopped"
# The error recorded for a run a previous daemon left 'running' whose process is gone (the
# daemon was killed and the run died with it: a reboot, the OOM killer).
DIED_WITH_DAEMON = "the daemon stopped during this run"


class Downtime:
    """Mixed into `NotebookClients` (which provides `launch` and `_next_missed`)."""

    ws: Workspace
    db: Database
    mirror: Mirror
    adoptable: dict[str, processes.Leftover]

    def _next_missed(self, m: Managed) -> None:
        raise NotImplementedError  # NotebookClients starts the next queued slot

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

    def resume_interrupted(self, m: Managed, now: datetime) -> None:
        """Slots whose run a daemon stop interrupted (`kill` records DAEMON_STOPPED), or whose
        run died with a killed daemon (DIED_WITH_DAEMON), follow the client's missed policy like
        a slot missed while the daemon was down: run again (the claim freed, the row kept as
        interrupted and naming the slot) unless the client skips missed slots, the slot is older
        than `grace_s`, or (run_once) a later slot passed meanwhile; then it is recorded as
        missed. Each such row is settled once: its error then says what became of its slot."""
        policy = m.cfg.missed.policy
        grace_s = m.cfg.missed.grace_s
        rows = self.db.query(
            "SELECT id, scheduled_for, error, pid FROM client_runs WHERE client_name = ? "
            "AND status = ? AND error IN (?, ?) AND scheduled_for IS NOT NULL "
            "ORDER BY scheduled_for",
            (m.name, str(RunStatus.INTERRUPTED), DAEMON_STOPPED, DIED_WITH_DAEMON),
        )
        for row in rows:
            if row["error"] == DIED_WITH_DAEMON and _still_running(row["pid"]):
                # Closed for want of a pid file, its process runs on and records its outcome:
                # running the slot again would execute it twice.
                continue
            slot = row["scheduled_for"]
            late = (now - parse_utc(slot)).total_seconds() > grace_s
            # run_once runs the latest slot: a later one that passed meanwhile replaces it.
            later = missed_slots(m.trigger, parse_utc(slot), now).slots if m.trigger else []
            superseded = policy == MissedPolicy.RUN_ONCE and bool(later)
            rerun = policy != MissedPolicy.SKIP and not late and not superseded
            if rerun:
                outcome = f"slot {slot} is run again (policy {policy})"
            elif late:
                outcome = f"slot {slot} not run again: older than grace_s {grace_s:g} s"
            elif superseded:
                outcome = (
                    f"slot {slot} not run again: the later slot {utc_text(later[-1])} runs "
                    f"instead (policy {policy})"
                )
            else:
                outcome = f"slot {slot} not run again (policy {policy})"
            with transaction(self.db.conn):
                settled = self.db.conn.execute(
                    "UPDATE client_runs SET error = ?, "
                    "scheduled_for = CASE WHEN ? THEN NULL ELSE scheduled_for END "
                    "WHERE id = ? AND status = ? AND error = ?",
                    (
                        f"{row['error']}; {outcome}",
                        rerun,
                        row["id"],
                        str(RunStatus.INTERRUPTED),
                        row["error"],
                    ),
                ).rowcount
            if not settled:
                continue
            message = f"run {row['id']} was interrupted ({row['error']}); {outcome}"
            log.info("client %s: %s", m.name, message)
            self.mirror.event(m.name, EventType.MISSED_RUN, message)
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
                error=DIED_WITH_DAEMON,
            )
            self.mirror.event(
                row["client_name"], EventType.RUN_INTERRUPTED, f"run {row['id']} (daemon restart)"
            )


def _still_running(pid: int | None) -> bool:
    """Whether the run's process lives on. client_runs keeps no create time, so a pid the system
    reused within the restart would count too: the slot then waits for its next occurrence
    rather than running twice."""
    try:
        return bool(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
