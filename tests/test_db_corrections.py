"""Corrections by the broker's rules: a fill supersedes an earlier one only when the adapter says
it belongs to the same fill group (IB: same exec id up to the last '.') and it is the same fill
(account, instrument, side, order). The DB layer parses no broker's ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantstrip.brokers.events import ExecutionEvent, InstrumentSpec
from quantstrip.brokers.ib.ids import split_exec_id
from quantstrip.brokers.recorder import Recorder
from quantstrip.db.handler import Database, ExecutionInput


@pytest.fixture
def db(tmp_path: Path):
    database = Database(tmp_path / "q.db")
    yield database
    database.close()


def ib_fill(db: Database, exec_id: str, side: str, qty, price, instrument: int, **kw):
    """A fill as the IB adapter hands it over: the exec id's group and version computed by
    the broker layer (brokers/ib/ids.py), not by the database."""
    base, number = split_exec_id(exec_id)
    return db.record_execution(
        ExecutionInput(
            "ib",
            kw.pop("account", "U1"),
            exec_id,
            "s",
            instrument,
            side,
            qty,
            price,
            kw.pop("when", "2025-01-02T15:00:00Z"),
            base_exec_id=base,
            correction_number=number,
            **kw,
        )
    )


def active(db: Database) -> list[str]:
    rows = db.query("SELECT exec_id FROM executions WHERE superseded_by IS NULL ORDER BY id")
    return [r[0] for r in rows]


def test_a_same_group_fill_on_another_instrument_is_not_a_correction(db) -> None:
    aapl, msft = db.ensure_instrument("AAPL"), db.ensure_instrument("MSFT")
    ib_fill(db, "0000e0d5.6520c85f.01.01", "BUY", 100, "10", aapl)
    ib_fill(db, "0000e0d5.6520c85f.01.02", "BUY", 100, "20", msft)
    assert active(db) == ["0000e0d5.6520c85f.01.01", "0000e0d5.6520c85f.01.02"]
    assert len(db.positions()) == 2


def test_a_same_group_fill_on_the_other_side_is_not_a_correction(db) -> None:
    aapl = db.ensure_instrument("AAPL")
    ib_fill(db, "0000e0d5.6520c85f.01.01", "BUY", 100, "10", aapl)
    ib_fill(db, "0000e0d5.6520c85f.01.02", "SELL", 40, "11", aapl)
    assert len(active(db)) == 2
    assert db.positions()[0].qty == 60


def test_a_same_group_fill_of_another_order_is_not_a_correction(db) -> None:
    aapl = db.ensure_instrument("AAPL")
    first = db.record_order(
        client_order_id="o1",
        instrument_id=aapl,
        broker="ib",
        order_type="MKT",
        side="BUY",
        qty=100,
        strategy="s",
    )
    second = db.record_order(
        client_order_id="o2",
        instrument_id=aapl,
        broker="ib",
        order_type="MKT",
        side="BUY",
        qty=100,
        strategy="s",
    )
    ib_fill(db, "0000e0d5.6520c85f.01.01", "BUY", 100, "10", aapl, order_id=first.id)
    ib_fill(db, "0000e0d5.6520c85f.01.02", "BUY", 100, "10.5", aapl, order_id=second.id)
    assert len(active(db)) == 2 and db.positions()[0].qty == 200


def test_a_same_group_fill_on_another_account_is_not_a_correction(db) -> None:
    aapl = db.ensure_instrument("AAPL")
    ib_fill(db, "0000e0d5.6520c85f.01.01", "BUY", 100, "10", aapl, account="U1")
    ib_fill(db, "0000e0d5.6520c85f.01.02", "BUY", 100, "11", aapl, account="U2")
    assert len(active(db)) == 2


def test_a_correction_by_the_rules_supersedes_and_its_order_survives(db) -> None:
    aapl = db.ensure_instrument("AAPL")
    order = db.record_order(
        client_order_id="o1",
        instrument_id=aapl,
        broker="ib",
        order_type="MKT",
        side="BUY",
        qty=100,
        strategy="s",
    )
    ib_fill(db, "0000e0d5.6520c85f.01.01", "BUY", 100, "10", aapl, order_id=order.id)
    corrected = ib_fill(db, "0000e0d5.6520c85f.01.02", "BUY", 100, "9.5", aapl)
    assert corrected.superseded is not None
    assert active(db) == ["0000e0d5.6520c85f.01.02"]
    assert db.positions()[0].avg_cost == 9.5


def test_the_db_layer_reads_no_broker_grammar_into_exec_ids(db) -> None:
    # Without the adapter's word, two ids that differ after the last '.' are two fills.
    aapl = db.ensure_instrument("AAPL")
    for exec_id, price in (("0000e0d5.6520c85f.01.01", "10"), ("0000e0d5.6520c85f.01.02", "9")):
        db.record_execution(
            ExecutionInput("ib", "U1", exec_id, "s", aapl, "BUY", 100, price, "2025-01-02")
        )
    assert len(active(db)) == 2


def test_the_recorder_passes_the_adapters_correction_group_through(db) -> None:
    recorder = Recorder(db)
    spec = InstrumentSpec("AAPL")
    for exec_id, price in (("0000e0d5.6520c85f.01.01", "10"), ("0000e0d5.6520c85f.01.02", "9")):
        base, number = split_exec_id(exec_id)
        recorder(
            ExecutionEvent(
                "ib",
                "U1",
                exec_id,
                spec,
                "BUY",
                100,
                price,
                "2025-01-02T15:00:00Z",
                strategy="s",
                base_exec_id=base,
                correction_number=number,
            )
        )
    assert active(db) == ["0000e0d5.6520c85f.01.02"]


@pytest.mark.parametrize(
    ("exec_id", "expected"),
    [
        ("0000e0d5.6520c85f.01.01", ("0000e0d5.6520c85f.01", 1)),
        ("0000e0d5.6520c85f.01.0a", ("0000e0d5.6520c85f.01", 10)),
        ("nodots", ("nodots", 0)),
        ("0000e0d5.6520c85f.01.zz", ("0000e0d5.6520c85f.01.zz", 0)),
        (".01", (".01", 0)),
    ],
)
def test_ib_exec_id_grammar(exec_id: str, expected: tuple[str, int]) -> None:
    assert split_exec_id(exec_id) == expected
