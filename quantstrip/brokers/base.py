"""The protocol every broker adapter implements.

Methods are synchronous: strategies call them from scheduler jobs. An asyncio-based adapter
(ib_async) runs its own event loop and implements these by waiting on it. Events flow out
through `subscribe`: the recorder is one subscriber, a strategy may be another.

Risk: every adapter's order entry (`submit`, `submit_bracket`, `modify`, `cancel`) passes through
the broker's `RiskGuard` (`quantstrip.brokers.risk`) first. The guard is wired here, once, for
every subclass (`__init_subclass__` wraps those methods where a subclass defines them), so no
adapter, present or future, can be called around it. A refused order raises `OrderRefused`.
"""

from __future__ import annotations

import functools
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from quantstrip import clock
from quantstrip.brokers.events import (
    Bar,
    BracketRequest,
    BrokerEvent,
    BrokerPosition,
    InstrumentSpec,
    OrderRequest,
)

if TYPE_CHECKING:
    from quantstrip.brokers.marks import MarkEvent
    from quantstrip.db.handler import Database

log = logging.getLogger(__name__)

EventCallback = Callable[[BrokerEvent], None]

# Order entry checked by the risk guard, and the market-data drivers of simulated brokers, which
# the guard serialises with it (a flatten carried out for the operator never interleaves with a
# bar being processed).
GUARDED_METHODS = ("submit", "submit_bracket", "modify", "cancel", "on_bar", "on_quote")


def _through_guard(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: Broker, *args: Any, **kwargs: Any) -> Any:
        guard = self.__dict__.get("risk")
        if guard is None:  # before Broker.__init__, or explicitly unguarded (demo history)
            return method(self, *args, **kwargs)
        return guard.call(name, method, self, args, kwargs)

    guarded.__risk_guarded__ = True  # type: ignore[attr-defined]
    return guarded


class Broker(ABC):
    """Base of every adapter: order entry, queries, and the canonical event stream."""

    name: str = "broker"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in GUARDED_METHODS:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "__risk_guarded__", False):
                setattr(cls, name, _through_guard(name, method))

    def __init__(self) -> None:
        from quantstrip.brokers.risk.guard import RiskGuard

        self._subscribers: list[EventCallback] = []
        # Streaming adapters deliver events from their own thread while the client thread
        # submits orders: one event at a time, so a recorder's transactions never interleave.
        self._emit_lock = threading.RLock()
        # Set to None only to replay history (the demo builder): nothing is then checked.
        self.risk: RiskGuard | None = RiskGuard(self)

    # ---- event stream -------------------------------------------------------------------
    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Receive every canonical event; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def emit(self, event: BrokerEvent) -> None:
        """Deliver an event to every subscriber; one failing subscriber does not starve others.

        A failing subscriber is logged and alerted, never silently skipped. (The recorder does
        not fail for a database failure: it journals the event and replays it.)"""
        with self._emit_lock:
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception as exc:
                    log.exception(
                        "event subscriber %r failed on %s", callback, type(event).__name__
                    )
                    from quantstrip.brokers.replay import alert_in_background

                    alert_in_background(
                        self.name,
                        f"event subscriber {callback!r} failed on {type(event).__name__}: "
                        f"{type(exc).__name__}: {exc}",
                    )

    def ledger(self) -> Database | None:
        """The database this broker's events are recorded in (its recorder's), if any."""
        from quantstrip.brokers.recorder import Recorder

        for callback in self._subscribers:
            owner = getattr(callback, "__self__", callback)
            if isinstance(owner, Recorder):
                return owner.db
        return None

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

    # ---- prices for marks --------------------------------------------------------------------
    def latest_price(self, instrument: InstrumentSpec) -> MarkEvent | None:
        """The broker's latest price for the instrument (None: this adapter has none)."""
        return None

    def market_time(self) -> datetime:
        """Now, as this broker's market sees it (a simulated broker's clock is its last bar)."""
        return clock.now()

    def snapshot_marks(self, instruments: Sequence[InstrumentSpec]) -> list[MarkEvent]:
        """Emit a mark for each instrument the broker can price (the recorder stores them)."""
        marks = []
        for instrument in instruments:
            mark = self.latest_price(instrument)
            if mark is not None:
                self.emit(mark)  # type: ignore[arg-type]
                marks.append(mark)
        return marks

    # ---- conveniences shared by every adapter ---------------------------------------------
    def market(self, instrument: InstrumentSpec, side: str, qty: object, **kw: object) -> str:
        return self.submit(OrderRequest(instrument, side, qty, "MKT", **kw))  # type: ignore[arg-type]

    def limit(
        self, instrument: InstrumentSpec, side: str, qty: object, price: object, **kw: object
    ) -> str:
        return self.submit(
            OrderRequest(instrument, side, qty, "LMT", limit_price=price, **kw)  # type: ignore[arg-type]
        )
