"""Delivering broker events to the database so that none is ever lost.

`JournaledDelivery.deliver(event)` stores the event now, or, when the database cannot take it
(locked past the busy timeout, full, read-only, closed), appends it to the journal, alerts once,
and replays it later: before the next event (so order is kept), periodically from a background
thread, and when a recorder starts on a journal that still holds events. While events wait, new
ones join the queue instead of each waiting out the database's busy timeout on the broker's
event thread. An event the database refuses for what it says (a conflicting repeat, a bad value)
is kept in the journal as rejected, alerted, and left for a human.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from quantstrip import clock
from quantstrip.brokers.event_journal import EventJournal, JournalEntry
from quantstrip.errors import QuantstripError

log = logging.getLogger(__name__)

# The event itself is wrong for the database: retrying cannot help.
REFUSED = (QuantstripError, sqlite3.IntegrityError, sqlite3.DataError, ValueError, TypeError)


def alert_in_background(source: str, message: str) -> None:
    """Mail an alert (recorded as a notification) without holding up the caller: the broker's
    event thread must not wait on an SMTP server. Never raises."""
    from quantstrip.client import services

    threading.Thread(
        target=services.send_error_alert, args=(source, message), daemon=True, name="alert"
    ).start()


def describe(event: Any) -> str:
    kind = type(event).__name__
    detail = getattr(event, "exec_id", None) or getattr(event, "client_order_id", None)
    return f"{kind} {detail}" if detail else kind


class JournaledDelivery:
    """Store now, or journal, alert and replay later (see the module docstring).

    Two locks: `_store_lock` serialises writes to the database (the caller's store and the
    replayer's), `_state` guards the decision "store now or queue behind the journal", so an
    event is never left in the journal after the replayer decided it was empty.
    """

    RETRY_AFTER_S = 1.0  # after a failed attempt, the next event asks for a replay this late

    def __init__(
        self,
        store: Callable[[Any], object],
        journal: EventJournal,
        *,
        alert: Callable[[str], None],
        replay_interval_s: float = 30.0,
    ) -> None:
        self.store = store
        self.journal = journal
        self.alert = alert
        self.replay_interval_s = replay_interval_s
        self._store_lock = threading.RLock()
        self._state = threading.Lock()
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry_at = 0.0
        self._waiting = bool(journal.pending())
        if self._waiting:  # left by an earlier run: replay at start, off the caller's thread
            with self._state:
                self._start_replayer()
            self._kick.set()

    def deliver(self, event: Any) -> None:
        """Store `event`, or keep it in the journal; never raises for a database failure."""
        with self._state:
            if self._waiting:  # earlier events wait: this one queues behind them, in order
                self.journal.append(event, "queued behind events waiting for the database")
                if clock.monotonic() >= self._retry_at:
                    self._kick.set()  # the replayer tries now, on its own thread
                return
        with self._store_lock:
            try:
                self.store(event)
            except REFUSED as exc:
                self._reject(event, exc)
            except Exception as exc:
                self._journal_failure(event, exc)

    def replay(self) -> int:
        """Store what waits in the journal now, on this thread; returns how many were stored."""
        with self._store_lock:
            return self._replay_locked()

    def waiting(self) -> bool:
        return self._waiting

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=60)

    # ---- internals ----------------------------------------------------------------------
    def _journal_failure(self, event: Any, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with self._state:
            first = not self._waiting
            self.journal.append(event, error)
            self._waiting = True
            self._retry_at = clock.monotonic() + self.RETRY_AFTER_S
            self._start_replayer()
        if first:
            log.error("%s not stored (%s): kept in %s", describe(event), error, self.journal.path)
            self.alert(
                f"The database refused writes ({error}). Broker events are kept in the journal "
                f"{self.journal.path} and replayed as soon as the database takes writes again."
            )

    def _reject(self, event: Any, exc: BaseException, entry: JournalEntry | None = None) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if entry is None:
            self.journal.append(event, error, rejected=True)
        else:
            self.journal.reject(entry, error)
        log.error("%s refused by the database: %s", describe(event), error)
        self.alert(
            f"A broker event was refused by the database and is kept in the journal "
            f"{self.journal.path} for review: {describe(event)}: {error}"
        )

    def _replay_locked(self) -> int:
        """Store pending events in journal order until none is left or the database fails."""
        total = 0
        while True:
            entries = self.journal.pending()
            if not entries:
                with self._state:
                    if not self.journal.pending():  # nothing was queued meanwhile
                        self._waiting = False
                        self.journal.compact()
                        if total:
                            log.warning("%d journaled broker event(s) stored", total)
                        return total
                continue
            stored: list[JournalEntry] = []
            try:
                for entry in entries:
                    try:
                        self.store(entry.event)
                    except REFUSED as exc:
                        self._reject(entry.event, exc, entry)
                        continue
                    except Exception as exc:
                        with self._state:
                            self._retry_at = clock.monotonic() + self.RETRY_AFTER_S
                        log.warning("journal replay paused, database still unavailable: %s", exc)
                        return total + len(stored)
                    stored.append(entry)
            finally:
                self.journal.resolve(stored)
            total += len(stored)

    def _start_replayer(self) -> None:
        """(Under `_state`.) One background replayer while events wait."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._replay_loop, daemon=True, name="replay")
            self._thread.start()

    def _replay_loop(self) -> None:
        while True:
            self._kick.wait(self.replay_interval_s)
            self._kick.clear()
            if self._stop.is_set():
                with self._state:
                    self._thread = None
                return
            try:
                with self._store_lock:
                    self._replay_locked()
            except Exception:  # the journal itself failed: keep trying, loudly
                log.exception("journal replay failed")
            with self._state:
                if not self._waiting:
                    self._thread = None
                    return
