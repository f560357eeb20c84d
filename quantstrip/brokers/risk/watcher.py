"""One thread per client process that listens for the operator's actions.

Started by the first guard created in a client process (one the daemon started, which has
`QUANTSTRIP_CLIENT` set); research notebooks and the demo builder get no thread. Every second it
reads `risk_actions` for new ones in its scope and has each live guard carry them out, reporting
one result per action; every few seconds it records that the process is alive (`risk_guards`);
every `risk.marks.interval_s` it refreshes the marks of what the client holds.

A watcher belongs to the workspace database its guards were created in, and speaks only for
them: it reads actions from and reports presence to that file, whatever the process's workspace
is later, and it ends (removing its presence) when its last guard is gone. Otherwise a process
that moved to another workspace (a test run, a notebook) claimed to be a guarded client there,
and the operator's flatten waited on a process that would never answer it.

Actions requested before the process started are not replayed: a client restarted next week
must not flatten again because of last week's request.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from quantstrip import clock
from quantstrip.brokers.risk import controls

if TYPE_CHECKING:
    from quantstrip.brokers.risk.guard import RiskGuard

log = logging.getLogger(__name__)

POLL_S = 1.0
PRESENCE_EVERY_S = 5.0

# Each guard of this process, with the workspace database it was created in.
_guards: weakref.WeakKeyDictionary[RiskGuard, Path] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_watchers: dict[Path, Watcher] = {}


def register(guard: RiskGuard) -> None:
    with _lock:
        _guards[guard] = controls.database_path()
    if os.environ.get("QUANTSTRIP_CLIENT"):
        start()


def guards(path: Path | None = None) -> list[RiskGuard]:
    """This process's guards (those of one workspace database when `path` is given)."""
    with _lock:
        return [g for g, p in list(_guards.items()) if path is None or p == path]


def start() -> Watcher:
    """The watcher of the current workspace's database, started if it is not running."""
    path = controls.database_path()
    with _lock:
        current = _watchers.get(path)
        if current is None or not current.is_alive() or current.pid != os.getpid():
            current = Watcher(path)
            _watchers[path] = current
            current.start()
        return current


def stop_all(timeout_s: float = 5.0) -> None:
    """End this process's watchers now and wait for their threads (a client that stops, or a
    test done with an example client): none may poll on in the process, or answer the operator
    for a client that is gone. A guard created later starts a new one."""
    with _lock:
        mine = [w for w in _watchers.values() if w.pid == os.getpid()]
        for watcher in mine:
            if _watchers.get(watcher.path) is watcher:
                del _watchers[watcher.path]
    for watcher in mine:
        watcher.close()
        if watcher.is_alive() and watcher is not threading.current_thread():
            watcher.join(timeout_s)


def running() -> list[Watcher]:
    with _lock:
        return [w for w in _watchers.values() if w.is_alive() and w.pid == os.getpid()]


class Watcher(threading.Thread):
    def __init__(self, path: Path) -> None:
        super().__init__(name="risk-watcher", daemon=True)
        self.pid = os.getpid()
        self.path = path
        self.client = os.environ.get("QUANTSTRIP_CLIENT") or ""
        self.mode = os.environ.get("QUANTSTRIP_MODE", "simulation")
        self.stop_event = threading.Event()
        self.last_action = controls.last_action_id(path)
        self._presence_due = 0.0
        self._marks_due = clock.monotonic()
        atexit.register(self.close)

    def run(self) -> None:
        while not self.stop_event.wait(POLL_S):
            if self._orphaned():
                self.close()
                return
            try:
                self.tick()
            except Exception:  # one bad poll must not end the watcher: the next one retries
                log.exception("risk watcher poll failed")

    def _orphaned(self) -> bool:
        """No guard of this watcher's database is left: end it (a new guard starts another)."""
        with _lock:
            if any(p == self.path for p in _guards.values()):
                return False
            if _watchers.get(self.path) is self:
                del _watchers[self.path]
            return True

    def tick(self) -> None:
        now = clock.monotonic()
        if now >= self._presence_due:
            brokers = ",".join(sorted({g.broker.name for g in guards(self.path)}))
            controls.seen(self.client, self.mode, brokers, path=self.path)
            self._presence_due = now + PRESENCE_EVERY_S
        for action in controls.actions_after(self.last_action, path=self.path):
            self.last_action = action.id
            if action.scope in (controls.ALL, self.client):
                self.carry_out(action)
        interval = _marks_interval()
        if interval and now >= self._marks_due:
            self._marks_due = now + interval
            self.refresh_marks()

    def carry_out(self, action: controls.Action) -> None:
        from quantstrip.brokers.risk.actions import ACTIONS

        lines, failed = [], False
        for guard in guards(self.path):
            try:
                lines.append(ACTIONS[action.action](guard))
            except Exception as exc:
                failed = True
                lines.append(f"{guard.broker.name}: {type(exc).__name__}: {exc}")
                log.exception("%s failed on %s", action.action, guard.broker.name)
        detail = "; ".join(lines) or "no broker in this process"
        controls.report_result(
            action.id, self.client, "failed" if failed else "done", detail, path=self.path
        )
        log.warning("operator %s (%s): %s", action.action, action.reason or "no reason", detail)

    def refresh_marks(self) -> None:
        from quantstrip.brokers.risk.actions import refresh_marks

        for guard in guards(self.path):
            try:
                refresh_marks(guard)
            except Exception:
                log.exception("marks refresh failed on %s", guard.broker.name)

    def close(self) -> None:
        self.stop_event.set()
        try:
            controls.gone(path=self.path)
        except Exception:
            log.debug("could not remove this process from risk_guards", exc_info=True)


def _marks_interval() -> float:
    from quantstrip import settings

    try:
        return settings.platform().risk.marks.interval_s
    except Exception:
        return 0.0
