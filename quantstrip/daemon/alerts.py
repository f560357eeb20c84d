"""Alerts from the daemon, sent off its main loop: an SMTP server that hangs must not stall
supervision.

Throttling lives in `email_manager.send_error_alert`, shared by every process that alerts (the
daemon and each client): the same alert again within `email.alert_repeat_minutes` is folded into
one digest item whether or not the first was delivered. Between alerts this thread sends the
digests that are due, so they go out even when no client calls `email_manager.flush()`.
"""

from __future__ import annotations

import queue
import threading

from quantstrip import clock
from quantstrip.client import services

DIGEST_CHECK_MAX_S = 60.0


def digest_check_s() -> float:
    """How often to look for due digests: every minute, or faster for short intervals."""
    try:
        from quantstrip import settings

        interval_s = settings.platform().email.digest_interval_minutes * 60
    except Exception:
        return DIGEST_CHECK_MAX_S
    return min(DIGEST_CHECK_MAX_S, max(1.0, interval_s / 2))


Alert = tuple[str, str, str | None, list[str] | None]


class AlertWorker:
    def __init__(self) -> None:
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="alerts", daemon=True)
        self._thread.start()

    def send(
        self, client: str, message: str, tb: str | None = None, to: list[str] | None = None
    ) -> None:
        self._queue.put((client, message, tb, to))

    def _work(self) -> None:
        next_digest = clock.monotonic() + digest_check_s()
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, next_digest - clock.monotonic()))
            except queue.Empty:
                services.send_due_digests()
                next_digest = clock.monotonic() + digest_check_s()
                continue
            if item is None:
                return
            client, message, tb, to = item
            services.send_error_alert(client, message, tb, to=to)

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)
