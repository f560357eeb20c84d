"""Reference ids (strategies, accounts, instruments) are read inside the transaction that uses
them: a rolled-back batch leaves nothing behind that a later fill could be filed under."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.ledger import fill

from quantstrip.db.handler import Database, ExecutionInput


@pytest.fixture
def db(tmp_path: Path):
    database = Database(tmp_path / "q.db")
    yield database
    database.close()


def test_a_rolled_back_batch_leaves_no_strategy_or_account_id_behind(db) -> None:
    instrument = db.ensure_instrument("AAPL")
    with pytest.raises(RuntimeError), db.transaction():
        db.ensure_strategy("alpha")
        db.ensure_account("sim", "NEW")
        raise RuntimeError("the batch fails after creating its strategy and account")
    # Other rows now take the ids the rolled-back ones had.
    db.ensure_strategy("beta")
    db.ensure_account("sim", "OTHER")
    db.ensure_strategy("alpha")
    result = db.record_execution(
        ExecutionInput("sim", "NEW", "1", "alpha", instrument, "BUY", 1, "10", "2025-01-02")
    )
    stored = db.query(
        "SELECT s.name, a.account_code FROM executions e JOIN strategies s ON s.id = e.strategy_id "
        "JOIN accounts a ON a.id = e.account_id WHERE e.id = ?",
        (result.execution.id,),
    )[0]
    assert tuple(stored) == ("alpha", "NEW")


def test_a_rolled_back_instrument_does_not_lend_its_multiplier_to_the_next_one(db) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        es = db.ensure_instrument("ES", sec_type="FUT", exchange="CME", multiplier=50)
        assert db.instrument(es).multiplier == 50
        raise RuntimeError("rolled back")
    cl = db.ensure_instrument("CL", sec_type="FUT", exchange="NYMEX", multiplier=1000)
    assert cl == es  # SQLite hands the freed id to the next instrument
    fill(db, "1", "BUY", 1, "70.00", "2025-01-02T15:00:00Z", instrument=cl)
    fill(db, "2", "SELL", 1, "71.00", "2025-01-03T15:00:00Z", instrument=cl)
    assert db.positions(include_flat=True)[0].realized_pnl == 1000
