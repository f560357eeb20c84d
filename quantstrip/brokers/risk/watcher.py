"""One thread per client process that listens for the operator's actions.

Started by the first guard created in a client process (one the daemon started, which has
`QUANTSTRIP_CLIENT` set); research notebooks and the demo builder get no thread. Every second it
reads `risk_actions` for new ones in its scope and has each live guard carry them out, reporting
one result per action; every few seconds it records that the process is alive (`risk_guards`);
every `risk.marks.interval_s` it refreshes the marks of what the client holds.

Actions requested before the process started are not replayed: a client restarted next week
must not flatten again because of last week's request.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING

from quantstrip import clock
from quantstrip.brokers.risk import controls

if TYPE_CHECKING:
    from quantstrip.brokers.risk.guard import RiskGuard

log = logging.getLogger(__name__)

POLL_S = 1.0
PRESENCE_EVERY_S = 5.0

_guards: weakref.WeakSet[RiskGuard] = weakref.WeakSet()
_lock = threading.Lock()
_thread: Watcher | None = None


def register(guard: RiskGuard) -> None:
    _guards.add(guard)
    if os.environ.get("QUANTSTRIP_CLIENT"):
        start()


def guards() -> list[RiskGuard]:
    return list(_guards)


def start() -> Watcher:
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive() or _thread.pid != os.getpid():
            _thread = Watcher()
            _thread.start()
        return _thread


class Watcher(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="risk-watcher", daemon=True)
        self.pid = os.getpid()
        self.client = os.environ.get("QUANTSTRIP_CLIENT") or ""
        self.mode = os.environ.get("QUANTSTRIP_MODE", "simulation")
        self.stop_event = threading.Event()
        self.last_action = controls.last_action_id()
        self._presence_due = 0.0
        self._marks_due = clock.monotonic()
        atexit.register(self.close)

    def run(self) -> None:
        while not self.stop_event.wait(POLL_S):
            try:
                self.tick()
            except Exception:  # one bad poll must not end the watcher: the next one retries
                log.exception("risk watcher poll failed")

    def tick(self) -> None:
        now = clock.monotonic()
        if now >= self._presence_due:
            brokers = ",".join(sorted({g.broker.name for g in guards()}))
            controls.seen(self.client, self.mode, brokers)
            self._presence_due = now + PRESENCE_EVERY_S
        for action in controls.actions_after(self.last_action):
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
        for guard in guards():
            try:
                lines.append(ACTIONS[action.action](guard))
            except Exception as exc:
                failed = True
                lines.append(f"{guard.broker.name}: {type(exc).__name__}: {exc}")
                log.exception("%s failed on %s", action.action, guard.broker.name)
        detail = "; ".join(lines) or "no broker in this process"
        controls.report_result(action.id, self.client, "failed" if failed else "done", detail)
        log.warning("operator %s (%s): %s", action.action, action.reason or "no reason", detail)

    def refresh_marks(self) -> None:
        from quantstrip.brokers.risk.actions import refresh_marks

        for guard in guards():
            try:
                refresh_marks(guard)
            except Exception:
                log.exception("marks refresh failed on %s", guard.broker.name)

    def close(self) -> None:
        self.stop_event.set()
        try:
            controls.gone()
        except Exception:
            log.debug("could not remove this process from risk_guards", exc_info=True)


def _marks_interval() -> float:
    from quantstrip import settings

    try:
        return settings.platform().risk.marks.interval_s
    except Exception:
        return 0.0
