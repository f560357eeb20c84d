"""SimBroker through the recorder into a real database: every order type, brackets, OCA,
partial fills, idempotent delivery, exact PnL, and positions that always match the broker's."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantstrip.brokers import (
    Bar,
    BracketRequest,
    CommissionEvent,
    ExecutionEvent,
    InstrumentSpec,
    OrderRequest,
    Recorder,
)
from quantstrip.brokers.sim import FixedTierCommission, SimBroker
from quantstrip.db.handler import Database
from quantstrip.errors import ValidationError

AAPL = InstrumentSpec("AAPL")
T0 = datetime(2025, 3, 3, 21, tzinfo=UTC)


def bar(day: int, o: str, h: str, low: str, c: str, volume: int = 1_000_000) -> Bar:
    return Bar(T0 + timedelta(days=day), Decimal(o), Decimal(h), Decimal(low), Decimal(c), volume)


@pytest.fixture
def db(tmp_path: Path):
    database = Database(tmp_path / "sim.db")
    yield database
    database.close()


@pytest.fixture
def broker(db: Database) -> SimBroker:
    sim = SimBroker(account="SIM1", seed=1)
    sim.subscribe(Recorder(db))
    sim.on_bar("AAPL", bar(0, "100", "101", "99", "100"))
    return sim


def status_of(db: Database, client_order_id: str) -> str:
    order = db.order_by_client_id(client_order_id)
    assert order is not None
    return order.status


def test_market_order_fills_at_next_bar_open_with_ib_fixed_commission(broker, db) -> None:
    oid = broker.submit(OrderRequest(AAPL, "BUY", 100, strategy="alpha"))
    assert status_of(db, oid) == "Submitted"
    broker.on_bar("AAPL", bar(1, "102.50", "103", "101", "102"))
    fill = db.query("SELECT qty, price, commission, strategy FROM v_executions")[0]
    assert tuple(fill) == (100.0, 102.5, 1.0, "alpha")
    assert status_of(db, oid) == "Filled"
    assert [e.status for e in db.order_events(db.order_by_client_id(oid).id)] == [
        "PendingSubmit",
        "Submitted",
        "Filled",
    ]


def test_limit_buy_waits_until_crossed_and_fills_at_limit_or_better(broker, db) -> None:
    oid = broker.submit(OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="98", strategy="a"))
    broker.on_bar("AAPL", bar(1, "100", "101", "99", "100"))
    assert status_of(db, oid) == "Submitted"
    broker.on_bar("AAPL", bar(2, "99", "99.5", "97", "98"))
    assert db.query("SELECT price FROM v_executions")[0][0] == 98.0
    broker2 = broker.submit(OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="98", strategy="a"))
    broker.on_bar("AAPL", bar(3, "96", "97", "95", "96"))  # gapped below: fills at the open
    assert db.query("SELECT price FROM v_executions ORDER BY execution_id")[1][0] == 96.0
    assert status_of(db, broker2) == "Filled"


def test_sell_stop_triggers_at_stop_or_gap_open(broker, db) -> None:
    broker.submit(OrderRequest(AAPL, "BUY", 20, strategy="a"))
    broker.on_bar("AAPL", bar(1, "100", "100", "100", "100"))
    stop = broker.submit(OrderRequest(AAPL, "SELL", 10, "STP", stop_price="95", strategy="a"))
    broker.on_bar("AAPL", bar(2, "99", "99", "96", "97"))
    assert status_of(db, stop) == "Submitted"
    broker.on_bar("AAPL", bar(3, "96", "96", "94", "95"))
    gap = broker.submit(OrderRequest(AAPL, "SELL", 10, "STP", stop_price="93", strategy="a"))
    broker.on_bar("AAPL", bar(4, "90", "91", "89", "90"))  # gapped through the stop
    prices = [r[0] for r in db.query("SELECT price FROM v_executions ORDER BY execution_id")]
    assert prices == [100.0, 95.0, 90.0]
    assert status_of(db, gap) == "Filled"


def test_stop_limit_does_not_chase_a_gap_beyond_its_limit(broker, db) -> None:
    oid = broker.submit(
        OrderRequest(AAPL, "BUY", 5, "STP LMT", stop_price="101", limit_price="101.5", strategy="a")
    )
    broker.on_bar("AAPL", bar(1, "103", "104", "102", "103"))  # triggered above the limit
    assert status_of(db, oid) == "Submitted"
    broker.on_bar("AAPL", bar(2, "102", "102", "101", "101.2"))  # comes back: fills at limit
    assert db.query("SELECT price FROM v_executions")[0][0] == 101.5
    assert status_of(db, oid) == "Filled"


def test_bracket_take_profit_fills_and_stop_loss_is_cancelled(broker, db) -> None:
    entry = OrderRequest(AAPL, "BUY", 100, "LMT", limit_price="100", strategy="brk")
    parent, take, stop = broker.submit_bracket(BracketRequest(entry, "110", "95"))
    assert status_of(db, take) == "PreSubmitted"
    broker.on_bar("AAPL", bar(1, "100", "101", "99.5", "100.5"))
    assert status_of(db, parent) == "Filled"
    assert status_of(db, take) == "Submitted" and status_of(db, stop) == "Submitted"
    broker.on_bar("AAPL", bar(2, "105", "111", "104", "110"))
    assert status_of(db, take) == "Filled"
    assert status_of(db, stop) == "Cancelled"
    row = db.query("SELECT gross_pnl, commission, net_pnl FROM v_round_trips")[0]
    assert tuple(row) == (1000.0, 2.0, 998.0)
    orders = {o.client_order_id: o for o in db.all("orders")}
    assert orders[take].parent_order_id == orders[parent].id
    assert orders[take].oca_group == orders[stop].oca_group is not None


def test_bracket_stop_loss_wins_when_one_bar_crosses_both(broker, db) -> None:
    entry = OrderRequest(AAPL, "BUY", 10, "MKT", strategy="brk")
    _, take, stop = broker.submit_bracket(BracketRequest(entry, "110", "95"))
    broker.on_bar("AAPL", bar(1, "100", "100", "100", "100"))
    broker.on_bar("AAPL", bar(2, "100", "112", "94", "100"))
    assert status_of(db, stop) == "Filled" and status_of(db, take) == "Cancelled"


def test_partial_fills_across_bars_reduce_the_oca_sibling(db) -> None:
    sim = SimBroker(account="SIM1", max_fill_qty=40)
    sim.subscribe(Recorder(db))
    sim.on_bar("AAPL", bar(0, "100", "100", "100", "100"))
    entry = OrderRequest(AAPL, "BUY", 100, "MKT", strategy="brk")
    parent, take, stop = sim.submit_bracket(BracketRequest(entry, "110", "90"))
    for day in (1, 2, 3):
        sim.on_bar("AAPL", bar(day, "100", "100", "100", "100"))
    assert status_of(db, parent) == "Filled"
    assert db.query("SELECT COUNT(*) FROM executions")[0][0] == 3
    sim.on_bar("AAPL", bar(4, "111", "112", "110", "111"))  # take profit fills 40 of 100
    assert status_of(db, take) == "PartiallyFilled"
    assert sim.orders[stop].request.qty == 60
    sim.on_bar("AAPL", bar(5, "111", "112", "110", "111"))
    sim.on_bar("AAPL", bar(6, "111", "112", "110", "111"))
    assert status_of(db, take) == "Filled" and status_of(db, stop) == "Cancelled"
    assert db.positions() == []


def test_cancel_and_modify_are_recorded(broker, db) -> None:
    oid = broker.submit(OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="90", strategy="a"))
    broker.modify(oid, limit_price=Decimal("99.5"))
    broker.on_bar("AAPL", bar(1, "100", "100", "99", "99.5"))
    assert db.query("SELECT price FROM v_executions")[0][0] == 99.5
    other = broker.submit(OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="50", strategy="a"))
    broker.cancel(other)
    assert status_of(db, other) == "Cancelled"
    with pytest.raises(ValidationError, match="client_order_id"):
        broker.cancel(other)


def test_round_trip_pnl_matches_hand_computation_to_the_cent(broker, db) -> None:
    broker.submit(OrderRequest(AAPL, "BUY", 333, strategy="cents"))
    broker.on_bar("AAPL", bar(1, "101.37", "102", "101", "101.5"))
    broker.submit(OrderRequest(AAPL, "SELL", 333, strategy="cents"))
    broker.on_bar("AAPL", bar(2, "104.11", "105", "104", "104.5"))
    # 333 x (104.11 - 101.37) = 912.42 gross; commission max(333 x 0.005, 1.00) = 1.665,
    # rounded half-even to 1.66 per side.
    gross, fees, net = db.query("SELECT gross_pnl, commission, net_pnl FROM v_round_trips")[0]
    assert (round(gross, 2), round(fees, 2), round(net, 2)) == (912.42, 3.32, 909.10)
    daily = db.query("SELECT SUM(net_pnl) FROM v_daily_pnl WHERE strategy = 'cents'")[0][0]
    assert round(daily, 2) == 909.10


def test_commission_model_minimum_and_cap() -> None:
    model = FixedTierCommission()
    assert model(Decimal(100), Decimal(50), Decimal(1)) == Decimal("1.00")
    assert model(Decimal(1000), Decimal(50), Decimal(1)) == Decimal("5.00")
    assert model(Decimal(10), Decimal("0.50"), Decimal(1)) == Decimal("0.05")  # 1% cap


def test_duplicate_and_out_of_order_delivery_is_stored_once(db) -> None:
    recorder = Recorder(db)
    events: list[object] = []
    sim = SimBroker(account="SIM1")
    sim.subscribe(events.append)
    sim.on_bar("AAPL", bar(0, "100", "100", "100", "100"))
    sim.submit(OrderRequest(AAPL, "BUY", 10, strategy="dup"))
    sim.on_bar("AAPL", bar(1, "100", "100", "100", "100"))
    sim.submit(OrderRequest(AAPL, "SELL", 10, strategy="dup"))
    sim.on_bar("AAPL", bar(2, "103", "103", "103", "103"))
    fills = [e for e in events if isinstance(e, ExecutionEvent | CommissionEvent)]
    others = [e for e in events if not isinstance(e, ExecutionEvent | CommissionEvent)]
    for event in others:
        recorder.handle(event)
    # Commissions first, then fills newest first, then everything again.
    for event in sorted(fills, key=lambda e: isinstance(e, ExecutionEvent))[::-1] + fills:
        recorder.handle(event)
    assert db.query("SELECT COUNT(*) FROM executions")[0][0] == 2
    assert db.query("SELECT COUNT(*) FROM commissions WHERE execution_id IS NULL")[0][0] == 0
    assert db.query("SELECT ROUND(SUM(net_pnl), 2) FROM v_round_trips")[0][0] == 28.0


def test_fill_of_an_order_placed_elsewhere_is_attributed_not_dropped(db) -> None:
    recorder = Recorder(db)
    recorder.handle(
        ExecutionEvent("ib", "DU1", "0001.01", AAPL, "BUY", Decimal(1), Decimal(10), T0)
    )
    assert db.query("SELECT strategy FROM v_executions")[0][0] == "unattributed"


def _run_random_orders(db: Database, seed: int, count: int) -> SimBroker:
    rng = random.Random(seed)
    symbols = [
        InstrumentSpec("AAA"),
        InstrumentSpec("BBB"),
        InstrumentSpec("ES", "FUT", "CME", multiplier=50),
    ]
    sim = SimBroker(account="PROP", seed=seed)
    sim.subscribe(Recorder(db))
    prices = {s.symbol: Decimal(100) for s in symbols}
    for day in range(1, count + 1):
        spec = rng.choice(symbols)
        kind = rng.choice(["MKT", "MKT", "LMT"])
        side = rng.choice(["BUY", "SELL"])
        qty = rng.randint(1, 50)
        limit = prices[spec.symbol] + rng.choice([-1, 1]) if kind == "LMT" else None
        sim.submit(OrderRequest(spec, side, qty, kind, limit_price=limit, strategy="random"))
        move = Decimal(rng.randint(-200, 200)) / 100
        price = max(prices[spec.symbol] + move, Decimal(1))
        prices[spec.symbol] = price
        high, low = price + 1, max(price - 1, Decimal("0.5"))
        for s in symbols:
            p = prices[s.symbol]
            sim.on_bar(s.symbol, Bar(T0 + timedelta(minutes=day), p, max(high, p), min(low, p), p))
    return sim


def _assert_positions_match(db: Database, sim: SimBroker) -> None:
    ours = {
        row[0]: Decimal(str(row[1]))
        for row in db.query("SELECT symbol, SUM(qty) FROM v_positions GROUP BY symbol")
    }
    theirs = {p.instrument.symbol: p.qty for p in sim.positions()}
    assert ours == theirs


def test_positions_equal_the_brokers_after_10000_random_orders(tmp_path: Path) -> None:
    with Database(tmp_path / "random.db") as db:
        from quantstrip.db.connection import transaction

        with transaction(db.conn):
            sim = _run_random_orders(db, seed=11, count=10_000)
        _assert_positions_match(db, sim)
        before = db.query("SELECT symbol, qty, cost_basis FROM v_positions ORDER BY symbol")
        db.rebuild_positions()
        after = db.query("SELECT symbol, qty, cost_basis FROM v_positions ORDER BY symbol")
        assert [tuple(r) for r in before] == [tuple(r) for r in after]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), count=st.integers(1, 300))
def test_positions_match_for_any_random_order_sequence(
    tmp_path: Path, seed: int, count: int
) -> None:
    path = tmp_path / f"h{seed}-{count}.db"
    with Database(path) as db:
        sim = _run_random_orders(db, seed, count)
        _assert_positions_match(db, sim)
    path.unlink()


def test_demo_is_deterministic_and_if_empty_is_idempotent(workspace: Path, tmp_path: Path) -> None:
    from quantstrip.demo import build_demo

    first = build_demo(tmp_path / "a.db", seed=3, years=1, end=datetime(2025, 6, 30).date())
    second = build_demo(tmp_path / "b.db", seed=3, years=1, end=datetime(2025, 6, 30).date())
    assert first.executions == second.executions > 50
    query = (
        "SELECT strategy, symbol, side, qty, price, exec_time FROM v_executions ORDER BY 6, 1, 2"
    )
    a = sqlite3.connect(tmp_path / "a.db").execute(query).fetchall()
    b = sqlite3.connect(tmp_path / "b.db").execute(query).fetchall()
    assert a == b
    strategies = {row[0] for row in a}
    assert len(strategies) >= 3
    cli = [sys.executable, "-m", "quantstrip.cli", "demo", "--if-empty", "--years", "1"]
    out1 = subprocess.run(cli, capture_output=True, text=True, check=True, timeout=120).stdout
    out2 = subprocess.run(cli, capture_output=True, text=True, check=True, timeout=120).stdout
    assert "demo history" in out1 and "demo skipped" in out2
    db_path = workspace / "var" / "quantstrip.db"
    count = sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM executions").fetchone()[0]
    assert str(count) in out2


def test_two_sim_brokers_recording_into_one_database_keep_every_order_and_fill(
    tmp_path: Path,
) -> None:
    """Two simulation clients share var/simulation.db, and a restarted client starts a new
    SimBroker with the same seed: their perm ids and exec ids used to repeat ("SIM1",
    "SIM0000.000000001"), so the second broker's orders were refused by the unique perm id and
    its fills were filed under the first broker's orders and strategy."""
    spec = InstrumentSpec("AAPL")
    with Database(tmp_path / "sim.db") as db:
        for strategy in ("first", "second"):
            sim = SimBroker(account="SIM-SHARED", seed=0)
            sim.subscribe(Recorder(db))
            sim.on_quote("AAPL", "100", T0)
            sim.submit(OrderRequest(spec, "BUY", 10, strategy=strategy))
            sim.on_quote("AAPL", "101", T0 + timedelta(minutes=1))
        orders = db.query(
            "SELECT s.name, o.status FROM orders o JOIN strategies s "
            "ON s.id = o.strategy_id ORDER BY o.id"
        )
        fills = db.query(
            "SELECT s.name FROM executions e JOIN strategies s "
            "ON s.id = e.strategy_id ORDER BY e.id"
        )
        held = db.query(
            "SELECT s.name, p.qty_micros FROM positions p JOIN strategies s "
            "ON s.id = p.strategy_id ORDER BY s.name"
        )
    assert [tuple(r) for r in orders] == [("first", "Filled"), ("second", "Filled")]
    assert [r[0] for r in fills] == ["first", "second"]
    assert [tuple(r) for r in held] == [("first", 10_000_000), ("second", 10_000_000)]
