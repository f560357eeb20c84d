"""Recording a fill in a test with the defaults every ledger test shares."""

from __future__ import annotations

from typing import Any

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
    """One execution on account ACC, on `instrument` or else the instrument `symbol`."""
    instrument = instrument or db.ensure_instrument(symbol)
    return db.record_execution(
        ExecutionInput(broker, "ACC", exec_id, strategy, instrument, side, qty, price, when)
    )
