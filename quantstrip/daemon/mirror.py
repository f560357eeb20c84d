"""The daemon's state, written to the database: the `clients` row of each client (what the
monitor and the CLI show while the daemon is down) and every transition as a `client_events` row.

The row also carries what must survive a daemon restart: the crash-loop budget
(`restart_times`, epoch seconds of the restarts inside the window) and the `signature` of the
files it was spent on (see `restart_policy`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from quantstrip import clock
from quantstrip.daemon.control import ClientStatus
from quantstrip.daemon.managed import Managed
from quantstrip.daemon.processes import signature_text
from quantstrip.daemon.registry import ClientConfig
from quantstrip.daemon.states import ClientKind, ClientState, EventType
from quantstrip.db.handler import Database
from quantstrip.db.units import utc_text

log = logging.getLogger("quantstrip.daemon")


def status(m: Managed) -> ClientStatus:
    """One client as the control API and the monitor show it."""
    cfg = m.config if isinstance(m.config, ClientConfig) else None
    run_process = m.run.process if m.run is not None else None
    pid = m.proc.pid if m.proc is not None else (run_process.pid if run_process else None)
    next_run = m.next_run
    if m.kind == ClientKind.NOTEBOOK:
        next_run = utc_text(m.next_fire) if m.next_fire and m.enabled else None
    beat = m.last_heartbeat
    return ClientStatus(
        name=m.name,
        kind=m.kind,
        state=str(m.state),
        enabled=m.enabled,
        pid=pid,
        started_at=m.started_at if pid else None,
        last_heartbeat=utc_text(datetime.fromtimestamp(beat, UTC)) if beat else None,
        heartbeat_age_s=round(clock.epoch() - beat, 3) if beat and m.proc else None,
        next_run=next_run,
        last_error=m.last_error,
        last_error_traceback=m.last_error_traceback,
        restart_count=m.restart_count,
        display_name=(cfg.display_name or m.reported_name or cfg.name) if cfg else None,
        mode=cfg.mode if cfg else None,
        schedule=cfg.schedule if cfg else None,
        missed_policy=str(cfg.missed.policy) if cfg and cfg.kind == ClientKind.NOTEBOOK else None,
        last_job=m.last_job if m.proc is not None else None,
    )


class Mirror:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._ids: dict[str, int] = {}
        self._saved: dict[str, dict[str, Any]] = {}
        for row in db.query("SELECT * FROM clients"):
            self._ids[row["name"]] = row["id"]
            self._saved[row["name"]] = dict(row)

    def saved(self, name: str) -> dict[str, Any] | None:
        """The row a previous daemon left for this client, if any."""
        return self._saved.get(name)

    def write(self, m: Managed) -> None:
        """Keep the `clients` row in step (written only when something changed)."""
        s = status(m)
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
            "restart_times": json.dumps([round(t, 3) for t in m.restart_times]),
            "signature": signature_text(m.signature),
        }
        if row == m.mirrored:
            return
        if m.name in self._ids:
            self.db.update("clients", self._ids[m.name], **row)
        else:
            self._ids[m.name] = int(self.db.insert("clients", name=m.name, **row).id)
        m.mirrored = row

    def event(
        self, name: str, event_type: EventType, message: str = "", tb: str | None = None
    ) -> None:
        """Record a lifecycle event; a database error is logged, never raised into the loop."""
        try:
            self.db.record_client_event(name, str(event_type), message, tb)
        except Exception:
            log.exception("could not record %s event for %s", event_type, name)


def gave_up(row: dict[str, Any] | None, m: Managed) -> bool:
    """Whether a previous daemon left this client 'crashed' with the same files: a daemon
    restart is not a fix, so it stays crashed until it is changed or started by hand."""
    return bool(
        row
        and row.get("state") == ClientState.CRASHED
        and row.get("signature") == signature_text(m.signature)
    )
