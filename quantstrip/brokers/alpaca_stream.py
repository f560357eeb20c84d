"""Alpaca's trade-update stream for an AlpacaBroker: alpaca-py's TradingStream in a thread.

alpaca-py authenticates, listens to `trade_updates` and reconnects with backoff after a drop.
It says nothing when it reconnects; the subclass here does, so that the broker catches up on
the fills the gap missed (account activities). Updates replayed after a reconnect are stored
once (by execution id).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from alpaca.trading.models import TradeUpdate
from alpaca.trading.stream import TradingStream

if TYPE_CHECKING:
    from quantstrip.brokers.alpaca import AlpacaBroker

log = logging.getLogger(__name__)


class _CatchingUpStream(TradingStream):
    """alpaca-py's trading stream, telling us each time it has (re)connected and subscribed."""

    def __init__(self, *args: Any, on_connected: Callable[[], None], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._on_connected = on_connected

    async def _start_ws(self) -> None:
        await super()._start_ws()
        asyncio.get_running_loop().run_in_executor(None, self._on_connected)


class TradeUpdates:
    """Starts and stops one broker's stream thread."""

    def __init__(self, broker: AlpacaBroker) -> None:
        self.broker = broker
        self._stream: TradingStream | None = None
        self._thread: threading.Thread | None = None

    def start(self, key: str, secret: str) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        broker = self.broker
        stream = _CatchingUpStream(
            key,
            secret,
            paper=broker.paper,
            url_override=broker.stream_url,
            on_connected=self._connected,
        )

        async def deliver(update: TradeUpdate) -> None:
            try:
                broker.on_trade_update(update)
            except Exception:  # one bad message must not stop the stream
                log.exception("Alpaca trade update could not be mapped: %r", update)

        stream.subscribe_trade_updates(deliver)
        self._stream = stream
        self._thread = threading.Thread(target=stream.run, name="alpaca-trade-updates", daemon=True)
        self._thread.start()

    def _connected(self) -> None:
        """The stream is (back) up: fetch what it may have missed meanwhile."""
        try:
            count = self.broker.catch_up()
            log.info("Alpaca stream connected; %d fills listed since the last one", count)
        except Exception:
            log.exception("Alpaca: catching up after the stream (re)connected failed")

    def stop(self, timeout: float = 10.0) -> None:
        stream, thread = self._stream, self._thread
        self._stream, self._thread = None, None
        if stream is None or thread is None:
            return
        for _ in range(int(timeout * 20)):  # the stream's loop exists once run() has started
            if stream._loop is not None or not thread.is_alive():
                break
            thread.join(0.05)
        if stream._loop is not None and stream._loop.is_running():
            # stop_ws() alone is noticed only when a receive times out (5 s); closing the socket
            # as well ends the receive at once and the SDK's loop sees it should not reconnect.
            async def stop() -> None:
                await stream.stop_ws()
                await stream.close()

            asyncio.run_coroutine_threadsafe(stop(), stream._loop).result(timeout)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("Alpaca trade-update stream did not stop within %.0f s", timeout)
