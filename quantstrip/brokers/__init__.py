"""Broker layer: a broker-neutral protocol, canonical events, and the recorder that stores them.

Adapters (`sim`, `ib`, ...) translate their broker's messages into the events in `events.py`;
`Recorder` is the only path from those events into the lifecycle database, so a fill is stored
the same way whichever broker reported it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Imported on first use: a submodule (events, marks) must not cost every adapter, the recorder
# and the database layer (a dashboard page that only reads marks paid 0.6 s for them).
_HOMES = {
    "Broker": "quantstrip.brokers.base",
    "Recorder": "quantstrip.brokers.recorder",
    "OrderRefused": "quantstrip.brokers.risk",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'quantstrip.brokers' has no attribute {name!r}")
    module = importlib.import_module(_HOMES.get(name, "quantstrip.brokers.events"))
    value = getattr(module, name)
    globals()[name] = value
    return value


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
