"""The protocol every broker adapter implements.

Methods are synchronous: strategies call them from scheduler jobs. An asyncio-based adapter
(ib_async) runs its own event loop and implements these by waiting on it. Events flow out
through `subscribe`: the recorder is one subscriber, a strategy may be another.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

from quantstrip.brokers.events import (
    Bar,
    BracketRequest,
    BrokerEvent,
    BrokerPosition,
    InstrumentSpec,
    OrderRequest,
)

log = logging.getLogger(__name__)

EventCallback = Callable[[BrokerEvent], None]


class Broker(ABC):
    """Base of every adapter: order entry, queries, and the canonical event stream."""

    name: str = "broker"

    def __init__(self) -> None:
        self._subscribers: list[EventCallback] = []
        # Streaming adapters deliver events from their own thread while the client thread
        # submits orders: one event at a time, so a recorder's transactions never interleave.
        self._emit_lock = threading.RLock()

    # ---- event stream -------------------------------------------------------------------
    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Receive every canonical event; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def emit(self, event: BrokerEvent) -> None:
        """Deliver an event to every subscriber; one failing subscriber does not starve others."""
        with self._emit_lock:
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception:
                    log.exception(
                        "event subscriber %r failed on %s", callback, type(event).__name__
                    )

    # ---- lifecycle ------------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def disconnect(self) -> None: ...

    # ---- orders -----------------------------------------------------------------------------
    @abstractmethod
    def submit(self, request: OrderRequest) -> str:
        """Send an order; returns its client order id."""

    @abstractmethod
    def submit_bracket(self, bracket: BracketRequest) -> tuple[str, str, str]:
        """Send parent, take-profit and stop-loss as one unit; returns their client order ids."""

    @abstractmethod
    def cancel(self, client_order_id: str) -> None: ...

    @abstractmethod
    def modify(
        self,
        client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None: ...

    @abstractmethod
    def open_orders(self) -> Sequence[OrderRequest]: ...

    # ---- account and data ---------------------------------------------------------------
    @abstractmethod
    def positions(self) -> Sequence[BrokerPosition]: ...

    @abstractmethod
    def account_values(self) -> dict[str, Decimal]:
        """At least 'NetLiquidation' and 'TotalCashValue' in the account currency."""

    @abstractmethod
    def historical_bars(
        self,
        instrument: InstrumentSpec,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        bar_size: str = "1 day",
    ) -> list[Bar]:
        """OHLCV bars; raises on error rather than returning an empty list."""

    # ---- conveniences shared by every adapter ---------------------------------------------
    def market(self, instrument: InstrumentSpec, side: str, qty: object, **kw: object) -> str:
        return self.submit(OrderRequest(instrument, side, qty, "MKT", **kw))  # type: ignore[arg-type]

    def limit(
        self, instrument: InstrumentSpec, side: str, qty: object, price: object, **kw: object
    ) -> str:
        return self.submit(
            OrderRequest(instrument, side, qty, "LMT", limit_price=price, **kw)  # type: ignore[arg-type]
        )
