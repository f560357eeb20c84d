"""The position engine through record_execution: FIFO and average cost, flips, multipliers,
out-of-order fills, IB corrections, commissions in either order, exact sums."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from support.ledger import fill

from quantstrip.db.handler import Database


@pytest.fixture
def db(tmp_path: Path):
    database = Database(tmp_path / "q.db")
    yield database
    database.close()


def position(db, strategy="s"):
    rows = db.positions(strategy=strategy, include_flat=True)
    return rows[0] if rows else None


def test_fifo_partial_close_realises_against_the_oldest_lot(db) -> None:
    fill(db, "1", "BUY", 100, "10.00", "2025-01-02T15:00:00Z")
    fill(db, "2", "BUY", 100, "12.00", "2025-01-03T15:00:00Z")
    fill(db, "3", "SELL", 150, "13.00", "2025-01-04T15:00:00Z")
    pos = position(db)
    # 100 x (13 - 10) + 50 x (13 - 12) = 350; 50 left at 12.
    assert pos.realized_pnl == Decimal("350") and pos.qty == 50 and pos.avg_cost == 12


def test_average_cost_partial_closes_do_not_drift(db) -> None:
    db.ensure_strategy("avg", position_method="average")
    fill(db, "1", "BUY", 3, "10.00", "2025-01-02T15:00:00Z", "avg")
    fill(db, "2", "BUY", 3, "10.01", "2025-01-02T16:00:00Z", "avg")
    for i in range(6):  # six partial closes of one share at 11.00
        fill(db, f"c{i}", "SELL", 1, "11.00", f"2025-01-03T15:0{i}:00Z", "avg")
    pos = position(db, "avg")
    # cost 60.03 for 6 shares, proceeds 66.00: exactly 5.97 whatever the rounding of averages
    assert pos.qty == 0 and pos.cost_basis == 0 and pos.realized_pnl == Decimal("5.97")


def test_flip_long_to_short_and_back(db) -> None:
    fill(db, "1", "BUY", 10, "100", "2025-01-02T15:00:00Z")
    fill(db, "2", "SELL", 25, "110", "2025-01-03T15:00:00Z")
    pos = position(db)
    assert pos.qty == -15 and pos.avg_cost == 110 and pos.realized_pnl == 100
    fill(db, "3", "BUY", 20, "105", "2025-01-04T15:00:00Z")
    pos = position(db)
    assert pos.qty == 5 and pos.avg_cost == 105 and pos.realized_pnl == 100 + 15 * 5
    trips = db.query("SELECT direction, qty, gross_pnl FROM v_round_trips ORDER BY round_trip_id")
    assert [tuple(t) for t in trips] == [("LONG", 10.0, 100.0), ("SHORT", 15.0, 75.0)]


def test_multiplier_scales_pnl_and_cost(db) -> None:
    es = db.ensure_instrument("ES", sec_type="FUT", exchange="CME", multiplier=50)
    fill(db, "1", "SELL", 2, "5710.25", "2025-01-02T15:00:00Z", instrument=es)
    fill(db, "2", "BUY", 2, "5702.00", "2025-01-03T15:00:00Z", instrument=es)
    assert position(db).realized_pnl == Decimal("825.00")


def test_a_late_older_fill_is_replayed_in_time_order(tmp_path: Path) -> None:
    fills = [
        ("1", "BUY", 100, "10", "2025-01-02T15:00:00Z"),
        ("2", "BUY", 100, "20", "2025-01-03T15:00:00Z"),
        ("3", "SELL", 100, "30", "2025-01-04T15:00:00Z"),
    ]
    with Database(tmp_path / "ordered.db") as ordered, Database(tmp_path / "late.db") as late:
        for f in fills:
            fill(ordered, *f)
        for f in (fills[1], fills[2], fills[0]):  # the first fill arrives last
            fill(late, *f)
        assert position(late).realized_pnl == position(ordered).realized_pnl == 2000
        key = (
            "SELECT qty_after_micros, realized_pnl_gross_micros FROM position_events "
            "ORDER BY event_time"
        )
        assert [tuple(r) for r in late.query(key)] == [tuple(r) for r in ordered.query(key)]


def test_duplicate_exec_id_is_stored_once_and_returns_the_existing_row(db) -> None:
    first = fill(db, "dup", "BUY", 5, "10", "2025-01-02T15:00:00Z")
    second = fill(db, "dup", "BUY", 5, "10", "2025-01-02T15:00:00Z")
    assert first.created and not second.created
    assert second.execution.id == first.execution.id
    assert db.query("SELECT COUNT(*) FROM position_events")[0][0] == 1


def test_ib_correction_supersedes_the_prior_fill_and_rebuilds_the_position(db) -> None:
    aapl = db.ensure_instrument("AAPL")
    fill(
        db,
        "0000e0d5.6520c85f.01.01",
        "BUY",
        100,
        "10.00",
        "2025-01-02T15:00:00Z",
        instrument=aapl,
        broker="ib",
    )
    corrected = fill(
        db,
        "0000e0d5.6520c85f.01.02",
        "BUY",
        100,
        "9.50",
        "2025-01-02T15:00:00Z",
        instrument=aapl,
        broker="ib",
    )
    assert (
        corrected.superseded is not None
        and corrected.superseded.superseded_by == corrected.execution.id
    )
    late_old = fill(
        db,
        "0000e0d5.6520c85f.01.01",
        "BUY",
        100,
        "10.00",
        "2025-01-02T15:00:00Z",
        instrument=aapl,
        broker="ib",
    )
    assert not late_old.created
    stale = fill(
        db,
        "0000e0d5.6520c85f.01.00",
        "BUY",
        100,
        "11",
        "2025-01-02T15:00:00Z",
        instrument=aapl,
        broker="ib",
    )
    assert stale.execution.superseded_by == corrected.execution.id
    pos = position(db)
    assert pos.qty == 100 and pos.avg_cost == Decimal("9.5")
    assert db.query("SELECT COUNT(*) FROM v_executions")[0][0] == 1


def test_commission_links_whether_it_arrives_before_or_after(db) -> None:
    db.record_commission(broker="sim", exec_id="early", commission="1.25")
    fill(db, "early", "BUY", 10, "10", "2025-01-02T15:00:00Z")
    fill(db, "late", "SELL", 10, "11", "2025-01-03T15:00:00Z")
    db.record_commission(broker="sim", exec_id="late", commission="1.30")
    db.record_commission(broker="sim", exec_id="late", commission="1.30")  # repeat: no-op
    assert db.query("SELECT COUNT(*) FROM commissions WHERE execution_id IS NULL")[0][0] == 0
    net = db.query("SELECT net_pnl FROM v_round_trips")[0][0]
    assert round(net, 2) == 7.45


def test_thousands_of_fills_sum_exactly_to_the_cent(db) -> None:
    prices = ["0.10", "0.20", "33.33", "101.37", "0.01"]
    expected = Decimal(0)
    for i in range(2500):
        buy, sell = Decimal(prices[i % 5]), Decimal(prices[(i + 2) % 5])
        fill(db, f"b{i}", "BUY", 3, buy, f"2025-01-02T15:{i // 60 % 60:02d}:{i % 60:02d}Z")
        fill(db, f"s{i}", "SELL", 3, sell, f"2025-01-02T15:{i // 60 % 60:02d}:{i % 60:02d}.5Z")
        expected += 3 * (sell - buy)
    micros = db.query("SELECT SUM(realized_pnl_gross_micros) FROM position_events")[0][0]
    assert Decimal(micros) / 1_000_000 == expected
    assert (
        Decimal(str(round(db.query("SELECT SUM(gross_pnl) FROM v_daily_pnl")[0][0], 2))) == expected
    )
