"""The connection to TWS: connect, reconnect forever, and what TWS says about its own link.

- A connect that TWS refuses with 326 (client id in use) is retried at once with the next id.
- A dropped socket is reconnected forever, waiting 1 s, 2 s, 4 s ... up to 5 minutes between
  attempts, with jitter so that several clients do not hammer a restarted TWS together
  (tenacity's exponential wait). Closing the adapter is the only thing that stops it.
- TWS's own link to IB: 1100 and 2110 mean TWS lost IB (orders cannot reach the market; the
  socket stays up), 1101 that it is back but subscriptions were lost (everything is requested
  again), 1102 that it is back with them kept.
- While the link is down, a watchdog mails an alert once it has been down longer than the
  threshold, and again when it is back (never for a short blip).
After every (re)connect and restored link, the adapter's `on_ready` runs: reconciliation of
orders and fills, and resubscription when TWS lost them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ib_async import IB
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from quantstrip import clock
from quantstrip.brokers.ib.mapping import (
    CLIENT_ID_IN_USE,
    LINK_LOST,
    LINK_RESTORED,
    LINK_RESTORED_DATA_LOST,
    IbError,
)

log = logging.getLogger(__name__)

Alert = Callable[[str, str], object]


class LinkState(StrEnum):
    DISCONNECTED = "disconnected"  # no socket to TWS (reconnecting unless closed)
    CONNECTED = "connected"  # TWS is up and connected to IB
    IB_UNREACHABLE = "ib_unreachable"  # TWS is up but has lost IB (1100, 2110)
    CLOSED = "closed"  # closed by the adapter: no reconnecting


class ClientIdInUse(IbError):
    """TWS refused the client id (326): another API client holds it."""


class ReconnectWait:
    """tenacity's exponential wait with jitter: `initial` doubling up to `maximum` seconds."""

    def __init__(self, initial: float = 1.0, maximum: float = 300.0) -> None:
        self.wait = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)

    def __call__(self, retry_state: Any) -> float:
        return self.wait(retry_state)

    def delay(self, attempt: int) -> float:
        @dataclass
        class Attempt:
            attempt_number: int

        return self.wait(Attempt(attempt))  # type: ignore[arg-type]


def reconnect_wait(initial: float = 1.0, maximum: float = 300.0) -> ReconnectWait:
    return ReconnectWait(initial, maximum)


@dataclass
class Endpoint:
    host: str
    port: int
    client_id: int
    timeout_s: float
    readonly: bool = False
    client_id_tries: int = 10  # 326: try the next ids, up to this many


class Connection:
    """Owns the ib_async connection's life; runs on the adapter's event loop."""

    def __init__(
        self,
        ib: IB,
        endpoint: Endpoint,
        *,
        on_ready: Callable[[bool], Awaitable[None]],
        wait: ReconnectWait,
        down_alert_after_s: float | None,
        alert: Alert | None,
    ) -> None:
        self.ib = ib
        self.endpoint = endpoint
        self.client_id = endpoint.client_id
        self.on_ready = on_ready  # called with True when subscriptions must be made again
        self.wait = wait
        self.down_alert_after_s = down_alert_after_s
        self.alert = alert
        self.state = LinkState.DISCONNECTED
        self.reconnects = 0
        self.failed_attempts = 0  # reconnect attempts that failed, over the adapter's life
        self.down_since: float | None = None
        self.down_reason = ""
        self._alerted = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconnecting: asyncio.Task[Any] | None = None
        ib.disconnectedEvent += self._on_disconnected
        ib.errorEvent += self._on_error

    # ---- connecting ------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect once (moving past client ids in use); raises IbError if TWS is not there."""
        await self._connect()
        self._start(self._watchdog())

    async def _connect(self) -> None:
        first = self.client_id
        for client_id in range(first, first + self.endpoint.client_id_tries):
            try:
                await self._attempt(client_id)
            except ClientIdInUse:
                log.warning("IB client id %d is in use; trying %d", client_id, client_id + 1)
                continue
            self.client_id = client_id
            self.state = LinkState.CONNECTED
            return
        raise ClientIdInUse(
            f"client ids {first}..{first + self.endpoint.client_id_tries - 1} are all in use",
            CLIENT_ID_IN_USE,
        )

    async def _attempt(self, client_id: int) -> None:
        loop = asyncio.get_running_loop()
        refused: asyncio.Future[bool] = loop.create_future()

        def on_error(request_id: int, code: int, message: str, contract: Any) -> None:
            if code == CLIENT_ID_IN_USE and not refused.done():
                refused.set_result(True)

        self.ib.errorEvent += on_error
        endpoint = self.endpoint
        task = asyncio.ensure_future(
            self.ib.connectAsync(
                endpoint.host,
                endpoint.port,
                clientId=client_id,
                timeout=endpoint.timeout_s,
                readonly=endpoint.readonly,
            )
        )
        try:
            await asyncio.wait({task, refused}, return_when=asyncio.FIRST_COMPLETED)
            if refused.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                raise ClientIdInUse(f"client id {client_id} is in use", CLIENT_ID_IN_USE)
            try:
                task.result()
            except Exception as exc:
                raise IbError(
                    f"cannot connect to {endpoint.host}:{endpoint.port}: {exc!r}"
                ) from exc
        finally:
            self.ib.errorEvent -= on_error
            if not refused.done():
                refused.cancel()

    # ---- losing and regaining the socket ---------------------------------------------------
    def _on_disconnected(self) -> None:
        if self.state == LinkState.CLOSED:
            return
        self.state = LinkState.DISCONNECTED
        self._mark_down("the connection to TWS dropped")
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = self._start(self._reconnect_forever())

    async def _reconnect_forever(self) -> None:
        def failed(state: Any) -> None:
            self.failed_attempts += 1
            error = state.outcome.exception() if state.outcome else None
            log.warning("IB reconnect attempt %d failed: %s", state.attempt_number, error)

        retrying = AsyncRetrying(
            wait=self.wait, retry=retry_if_exception_type(Exception), before_sleep=failed
        )
        async for attempt in retrying:
            with attempt:
                if self.state == LinkState.CLOSED:
                    return
                await self._connect()
        self.reconnects += 1
        log.info("IB reconnected as client id %d", self.client_id)
        # Synchronising runs on its own: a drop during it must start a new reconnect.
        self._start(self._ready(resubscribe=False))

    # ---- TWS's link to IB --------------------------------------------------------------------
    def _on_error(self, request_id: int, code: int, message: str, contract: Any) -> None:
        if request_id != -1 or self.state in (LinkState.CLOSED, LinkState.DISCONNECTED):
            return
        if code in LINK_LOST:
            self.state = LinkState.IB_UNREACHABLE
            self._mark_down(f"TWS lost its connection to IB ({code}: {message})")
        elif code in (LINK_RESTORED, LINK_RESTORED_DATA_LOST):
            self.state = LinkState.CONNECTED
            self._start(self._ready(resubscribe=code == LINK_RESTORED_DATA_LOST))

    async def _ready(self, resubscribe: bool) -> None:
        try:
            await self.on_ready(resubscribe)
        except Exception:
            log.exception("IB: synchronising after the connection came back failed")
        self._back_up()

    # ---- down alerts ---------------------------------------------------------------------------
    def _mark_down(self, reason: str) -> None:
        if self.down_since is None:
            self.down_since = clock.monotonic()
            self.down_reason = reason

    def _back_up(self) -> None:
        if self.down_since is not None and self._alerted:
            minutes = (clock.monotonic() - self.down_since) / 60
            self._send_alert(
                "IB connection back",
                f"The IB connection (client id {self.client_id}) is back after "
                f"{minutes:.1f} minutes; orders and fills were reconciled.",
            )
        self.down_since, self._alerted = None, False

    async def _watchdog(self) -> None:
        if not self.down_alert_after_s:
            return
        period = min(5.0, max(self.down_alert_after_s / 4, 0.05))
        while self.state != LinkState.CLOSED:
            await asyncio.sleep(period)
            down_since = self.down_since
            if down_since is None or self._alerted:
                continue
            if clock.monotonic() - down_since >= self.down_alert_after_s:
                self._alerted = True
                self._send_alert(
                    "IB connection down",
                    f"The IB connection (client id {self.client_id}) has been down for "
                    f"{(clock.monotonic() - down_since) / 60:.1f} minutes: {self.down_reason}. "
                    "Reconnecting continues; orders cannot reach IB meanwhile.",
                )

    def _send_alert(self, subject: str, body: str) -> None:
        log.warning("%s: %s", subject, body)
        if self.alert is None:
            return
        future = asyncio.get_running_loop().run_in_executor(None, self.alert, subject, body)
        future.add_done_callback(
            lambda f: f.exception() and log.error("IB alert not sent: %r", f.exception())
        )

    # ---- closing ---------------------------------------------------------------------------
    def _start(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        self.state = LinkState.CLOSED
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ib.isConnected():
            self.ib.disconnect()
