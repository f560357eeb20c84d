"""Recording a fill in a test with the defaults every ledger test shares."""

from __future__ import annotations

from typing import Any

from quantstrip.brokers.ib.ids import split_exec_id
from quantstrip.db.handler import Database, ExecutionInput, ExecutionResult


def fill(
    db: Database,
    exec_id: str,
    side: str,
    qty: Any,
    price: Any,
    when: Any,
    strategy: str | int = "s",
    instrument: int | None = None,
    broker: str = "sim",
    symbol: str = "AAPL",
) -> ExecutionResult:
    """One execution on account ACC, on `instrument` or else the instrument `symbol`. An "ib"
    fill carries its correction group and version as the IB adapter reads them in its exec id."""
    instrument = instrument or db.ensure_instrument(symbol)
    group, version = split_exec_id(exec_id) if broker == "ib" else (None, None)
    return db.record_execution(
        ExecutionInput(
            broker,
            "ACC",
            exec_id,
            strategy,
            instrument,
            side,
            qty,
            price,
            when,
            base_exec_id=group,
            correction_number=version,
        )
    )
