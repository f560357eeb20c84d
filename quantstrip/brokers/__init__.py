"""Broker layer: a broker-neutral protocol, canonical events, and the recorder that stores them.

Adapters (`sim`, `ib`, ...) translate their broker's messages into the events in `events.py`;
`Recorder` is the only path from those events into the lifecycle database, so a fill is stored
the same way whichever broker reported it.
"""

from __future__ import annotations

from quantstrip.brokers.base import Broker
from quantstrip.brokers.events import (
    AccountValueEvent,
    Bar,
    BracketRequest,
    BrokerEvent,
    CashEvent,
    CommissionEvent,
    ErrorEvent,
    ExecutionEvent,
    InstrumentSpec,
    OrderModifiedEvent,
    OrderPlacedEvent,
    OrderRequest,
    OrderStatusEvent,
    PositionEvent,
)
from quantstrip.brokers.recorder import Recorder
from quantstrip.brokers.risk import OrderRefused

__all__ = [
    "AccountValueEvent",
    "Bar",
    "BracketRequest",
    "Broker",
    "BrokerEvent",
    "CashEvent",
    "CommissionEvent",
    "ErrorEvent",
    "ExecutionEvent",
    "InstrumentSpec",
    "OrderModifiedEvent",
    "OrderPlacedEvent",
    "OrderRefused",
    "OrderRequest",
    "OrderStatusEvent",
    "PositionEvent",
    "Recorder",
]
