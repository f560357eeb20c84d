"""Keeping a Client Portal Web API session alive, and bringing it back.

IB ends a brokerage session that has not heard from the client for a few minutes, and drops
sessions on its own (nightly resets, a competing login, a restarted gateway). A thread calls
`tickle` every `interval_s`; when IB answers that the session is no longer authenticated, or
does not answer, the session is re-established: under OAuth a new live session token, then the
brokerage session (`iserver/auth/ssodh/init`); through a gateway the brokerage session alone.
Attempts are retried with a growing wait (tenacity) until the adapter is disconnected. Once the
session is back, `on_restored` runs (the adapter polls orders and fills it may have missed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from tenacity import Retrying, retry_if_exception_type, wait_exponential_jitter

log = logging.getLogger(__name__)


class SessionLost(Exception):
    """The Web API answered that the session is not authenticated."""


def authenticated(tickle_answer: Any) -> bool:
    data = getattr(tickle_answer, "data", None) or {}
    status = (data.get("iserver") or {}).get("authStatus") or {}
    return bool(status.get("authenticated"))


class KeepAlive:
    def __init__(
        self,
        client: Any,
        *,
        use_oauth: bool,
        interval_s: float,
        on_restored: Callable[[], None],
        max_wait_s: float = 300.0,
    ) -> None:
        self.client = client
        self.use_oauth = use_oauth
        self.interval_s = interval_s
        self.on_restored = on_restored
        self.max_wait_s = max_wait_s
        self.tickles = 0
        self.restored = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ib-web-keepalive", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                answer = self.client.tickle()
                self.tickles += 1
                if not authenticated(answer):
                    raise SessionLost("the Web API session is not authenticated")
            except Exception as exc:
                log.warning("IB Web API session lost (%s): re-establishing it", exc)
                self.lost = True
                if self._restore():
                    self.lost = False
                    self.restored += 1
                    try:
                        self.on_restored()
                    except Exception:
                        log.exception("IB Web API: catching up after the session came back")

    def _restore(self) -> bool:
        retrying = Retrying(
            wait=wait_exponential_jitter(
                multiplier=self.interval_s, max=self.max_wait_s, jitter=self.interval_s
            ),
            retry=retry_if_exception_type(Exception),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if self._stop.is_set():
                        return False
                    if self.use_oauth:
                        self.client.generate_live_session_token()
                    self.client.initialize_brokerage_session()
                    if not authenticated(self.client.tickle()):
                        raise SessionLost("still not authenticated after ssodh/init")
        except Exception:
            return False  # stopped while waiting
        log.info("IB Web API session re-established")
        return True

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise InterruptedError("stopped")
