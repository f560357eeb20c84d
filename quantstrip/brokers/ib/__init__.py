"""Interactive Brokers over ib_async (TWS or IB Gateway socket API).

One job per module: `mapping` (contracts, orders, statuses, errors), `pacing` (historical-data
pacing), `adapter` (the `IbBroker` a client uses). `from quantstrip.brokers.ib import IbBroker`
is the import clients use.
"""

from __future__ import annotations

from quantstrip.brokers.ib.adapter import IbBroker
from quantstrip.brokers.ib.mapping import BROKER, IbError, contract_for, order_for, spec_for
from quantstrip.brokers.ib.pacing import HistoricalPacer

__all__ = [
    "BROKER",
    "HistoricalPacer",
    "IbBroker",
    "IbError",
    "contract_for",
    "order_for",
    "spec_for",
]
