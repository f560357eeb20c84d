"""What the ledger refuses instead of silently accepting: a repeated exec id or commission with
other content, numbers beyond its integer micros columns, and (in the production record) a
strategy name nobody created."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest
from support.ledger import fill

from quantstrip import db_handler, settings
from quantstrip.db.handler import Database, ExecutionInput
from quantstrip.errors import ConflictError, ValidationError


@pytest.fixture
def db(tmp_path: Path):
    database = Database(tmp_path / "q.db")
    yield database
    database.close()


def table_counts(db: Database) -> dict[str, int]:
    return {
        table: db.query(f"SELECT COUNT(*) FROM {table}")[0][0]
        for table in ("executions", "commissions", "position_events", "strategies", "orders")
    }


def test_a_repeated_exec_id_with_other_content_is_a_logged_conflict(db, caplog) -> None:
    caplog.set_level(logging.WARNING)
    first = fill(db, "X1", "BUY", 10, "100", "2025-01-02T15:00:00Z")
    before = table_counts(db)
    with pytest.raises(ConflictError, match="X1") as error:
        fill(db, "X1", "SELL", 999, "1", "2025-01-02T15:00:00Z")
    assert "BUY" in str(error.value) and "SELL" in str(error.value)
    assert "X1" in caplog.text and "conflict" in caplog.text.lower()
    assert table_counts(db) == before
    stored = db.get("executions", first.execution.id)
    assert (stored.side, stored.qty, stored.price) == ("BUY", 10, 100)


def test_a_repeated_exec_id_with_the_same_content_is_still_a_quiet_no_op(db) -> None:
    first = fill(db, "X1", "BUY", 10, "100.00", "2025-01-02T15:00:00Z")
    again = fill(db, "X1", "BOT", Decimal("10.0"), 100.0, "2025-01-02T15:00:00Z")
    assert not again.created and again.execution.id == first.execution.id


def test_a_repeated_commission_with_another_amount_is_a_logged_conflict(db, caplog) -> None:
    caplog.set_level(logging.WARNING)
    fill(db, "X1", "BUY", 10, "100", "2025-01-02T15:00:00Z")
    db.record_commission(broker="sim", exec_id="X1", commission="1.00")
    db.record_commission(broker="sim", exec_id="X1", commission=1.0)  # same amount: no-op
    with pytest.raises(ConflictError, match="X1"):
        db.record_commission(broker="sim", exec_id="X1", commission="7.50")
    assert "X1" in caplog.text and "conflict" in caplog.text.lower()
    assert db.query("SELECT commission_micros FROM commissions")[0][0] == 1_000_000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"qty": 10**13}, "qty"),
        ({"qty": "1e30"}, "qty"),
        ({"price": 1e300}, "price"),
        ({"price": "9" * 40}, "price"),
        ({"qty": 10**6, "price": 10**7}, "notional"),
    ],
)
def test_numbers_beyond_the_micros_columns_are_refused_naming_the_field(
    db, change: dict, field: str
) -> None:
    aapl = db.ensure_instrument("AAPL")
    db.ensure_strategy("s")
    before = table_counts(db)
    values = {
        "broker": "sim",
        "account": "A",
        "exec_id": "big",
        "strategy": "s",
        "instrument_id": aapl,
        "side": "BUY",
        "qty": 1,
        "price": 10,
        "exec_time": "2025-01-02T16:00:00Z",
        **change,
    }
    with pytest.raises(ValidationError) as error:
        db.record_execution(ExecutionInput(**values))
    assert error.value.field == field
    assert table_counts(db) == before


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda db: db.record_commission(broker="sim", exec_id="e", commission=1e20), "commission"),
        (
            lambda db: db.record_account_snapshot(
                broker="sim", account="A", net_liquidation="1e25", cash=0
            ),
            "net_liquidation",
        ),
        (lambda db: db.ensure_instrument("X", sec_type="OPT", strike=10**14), "strike"),
        (lambda db: db.ensure_instrument("X", multiplier="1e40"), "multiplier"),
    ],
)
def test_other_oversized_amounts_are_refused_naming_the_field(db, call, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        call(db)
    assert error.value.field == field


def test_a_realised_pnl_beyond_the_ledger_is_refused_even_when_it_is_ibs_unset_value(db) -> None:
    # IB's "no value" (UNSET_DOUBLE) is the IB adapter's to map to None (brokers/ib/wire.py);
    # the DB layer knows no broker, so reaching it raw is an oversized number like any other,
    # refused naming the field (it used to be stored as 'no realised PnL' without a word).
    fill(db, "X1", "BUY", 10, "100", "2025-01-02T15:00:00Z")
    for unset in (1.7976931348623157e308, -1.7976931348623157e308, 1e301):
        with pytest.raises(ValidationError) as error:
            db.record_commission(
                broker="ib", exec_id="X1", commission="1.00", broker_realized_pnl=unset
            )
        assert error.value.field == "broker_realized_pnl"
    assert db.query("SELECT COUNT(*) FROM commissions")[0][0] == 0
    stored = db.record_commission(broker="ib", exec_id="X1", commission="1.00")
    assert stored.broker_realized_pnl_micros is None


def test_a_fill_of_ten_billion_notional_is_stored_exactly(db) -> None:
    es = db.ensure_instrument("ES", sec_type="FUT", exchange="CME", multiplier=50)
    fill(db, "1", "BUY", 40_000, "5000.25", "2025-01-02T15:00:00Z", instrument=es)
    fill(db, "2", "SELL", 40_000, "5000.50", "2025-01-03T15:00:00Z", instrument=es)
    assert db.positions(include_flat=True)[0].realized_pnl == Decimal("500000")


def test_the_production_record_refuses_an_unknown_strategy_name(workspace: Path) -> None:
    # db_handler writes to the workspace database (paper and live clients): a typo must not
    # become a new strategy.
    db = db_handler.database()
    db.ensure_strategy("momentum")
    aapl = db.ensure_instrument("AAPL")
    with pytest.raises(ValidationError, match="momentun") as error:
        db_handler.insert_strategy_event("momentun", "AAPL", "signal", 1)
    assert error.value.field == "strategy"
    with pytest.raises(ValidationError, match="ensure_strategy"):
        db_handler.record_execution(
            ExecutionInput("sim", "A", "1", "momentun", aapl, "BUY", 1, "10", "2025-01-02")
        )
    db_handler.insert_strategy_event("momentum", "AAPL", "signal", 1)
    names = [r[0] for r in db.query("SELECT name FROM strategies")]
    assert names == ["momentum"]


def test_a_simulation_database_creates_strategies_unless_the_setting_says_never(
    workspace: Path,
) -> None:
    from quantstrip.paths import workspace as current

    db_handler.use(current().simulation_database)
    db_handler.insert_strategy_event("research_idea", "AAPL", "signal", 1)
    assert db_handler.database().strategy("research_idea") is not None
    settings.set("ledger.create_strategies", "never")
    db_handler.use(current().simulation_database)
    with pytest.raises(ValidationError, match="another_idea"):
        db_handler.insert_strategy_event("another_idea", "AAPL", "signal", 1)


def test_the_setting_may_allow_creation_in_the_production_record(workspace: Path) -> None:
    settings.set("ledger.create_strategies", "always")
    db_handler.insert_strategy_event("new_idea", "AAPL", "signal", 1)
    assert db_handler.database().strategy("new_idea") is not None
