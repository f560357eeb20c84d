"""Interactive Brokers over ib_async (TWS or IB Gateway socket API).

One job per module: `adapter` (the `IbBroker` a client uses), `connection` (connect, reconnect
forever, TWS's connectivity codes), `reconcile` (open orders against TWS's open and completed
orders), `wire` (what TWS sends, as canonical events), `mapping` (contracts, orders, error
codes), `pacing` (historical data), `ids` (IB's execution id grammar). Names are imported on
first use, so `quantstrip.brokers.ib.ids` (used by the Flex import) does not load ib_async.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BROKER": "mapping",
    "IbError": "mapping",
    "contract_for": "mapping",
    "order_for": "mapping",
    "spec_for": "mapping",
    "HistoricalPacer": "pacing",
    "IbBroker": "adapter",
    "LinkState": "connection",
    "split_exec_id": "ids",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
