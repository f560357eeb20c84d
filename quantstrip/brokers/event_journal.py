"""The recorder's journal: broker events the database could not take, kept until they are stored.

A fill the broker reported must never be lost because the database was locked by another
process, full, or read-only at that moment. Such an event is appended here (one JSON line,
fsync'd, in a 0600 file under the data directory) before the recorder returns to the broker's
event thread, and replayed later in its original order.

Entries are `pending` (a failure that may pass: retried) or `rejected` (the database refused the
event itself, e.g. a conflicting repeat: kept for a human, never retried by itself). Resolutions
are appended as `done` lines naming the entries they close; once nothing is open the file is
emptied. Appends and rewrites take an exclusive lock, so two recorders sharing the file (two
processes of one client by mistake) do not interleave half lines.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantstrip.brokers.event_records import from_record, register_record_type, to_record
from quantstrip.brokers.marks import MarkEvent
from quantstrip.db.units import now_text
from quantstrip.files import exclusive, write_atomic

register_record_type(MarkEvent)

PENDING = "pending"
REJECTED = "rejected"
DONE = "done"


@dataclass(frozen=True)
class JournalEntry:
    id: str
    kind: str  # PENDING or REJECTED
    event: Any
    error: str
    at: str


class EventJournal:
    """An append-only file of events waiting for the database (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    # ---- writing ------------------------------------------------------------------------
    def append(self, event: Any, error: str, *, rejected: bool = False) -> JournalEntry:
        """Keep `event` durably; returns its entry once it is on disk."""
        entry = JournalEntry(
            uuid.uuid4().hex, REJECTED if rejected else PENDING, event, error, now_text()
        )
        line = {
            "id": entry.id,
            "kind": entry.kind,
            "at": entry.at,
            "error": error,
            "event": to_record(event),
        }
        self._append([line])
        return entry

    def resolve(self, entries: Iterable[JournalEntry | str]) -> None:
        """Close entries whose events are now stored (one durable line for all of them)."""
        ids = [e.id if isinstance(e, JournalEntry) else e for e in entries]
        if ids:
            self._append([{"kind": DONE, "ids": ids, "at": now_text()}])

    def reject(self, entry: JournalEntry, error: str) -> JournalEntry:
        """Turn a pending entry into a rejected one (the database refused the event itself)."""
        rejected = JournalEntry(uuid.uuid4().hex, REJECTED, entry.event, error, now_text())
        line = {
            "id": rejected.id,
            "kind": REJECTED,
            "at": rejected.at,
            "error": error,
            "event": to_record(entry.event),
        }
        self._append([line, {"kind": DONE, "ids": [entry.id], "at": rejected.at}])
        return rejected

    def compact(self) -> None:
        """Rewrite the file with only its open entries (empty when none is left)."""
        with self._lock, exclusive(self._lock_path()):
            lines = self._lines()
            open_ids = _open_ids(lines)
            open_lines = [line for line in lines if line.get("id") in open_ids]
            data = "".join(json.dumps(line, sort_keys=True) + "\n" for line in open_lines)
            write_atomic(self.path, data.encode(), private=True)

    # ---- reading ------------------------------------------------------------------------
    def pending(self) -> list[JournalEntry]:
        """Events waiting for a retry, oldest first."""
        return [e for e in self.entries() if e.kind == PENDING]

    def rejected(self) -> list[JournalEntry]:
        """Events the database refused, kept for a human."""
        return [e for e in self.entries() if e.kind == REJECTED]

    def entries(self) -> list[JournalEntry]:
        with self._lock:
            lines = self._lines()
            open_ids = _open_ids(lines)
            return [
                JournalEntry(
                    line["id"], line["kind"], from_record(line["event"]), line["error"], line["at"]
                )
                for line in lines
                if line.get("id") in open_ids
            ]

    # ---- file ---------------------------------------------------------------------------
    def _lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    def _append(self, lines: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines).encode()
        with self._lock, exclusive(self._lock_path()):
            new = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:  # the new file's name must survive a crash too
                directory = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)

    def _lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = []
        for raw in self.path.read_text(encoding="utf-8").splitlines():
            if raw.strip():
                try:
                    lines.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash mid-write: its event was never acked
        return lines


def _open_ids(lines: list[dict[str, Any]]) -> set[str]:
    """Entries not closed by a later `done` line."""
    opened: list[str] = []
    closed: set[str] = set()
    for line in lines:
        if line["kind"] == DONE:
            closed.update(line["ids"])
        else:
            opened.append(line["id"])
    return {i for i in opened if i not in closed}
