"""The annotated example clients: valid registry entries, and their jobs trade in simulation
without touching the production database."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from support.examples import EXAMPLES, ExampleClient

from quantstrip.daemon.registry import ClientConfig, load_registry


@pytest.fixture
def examples(workspace: Path) -> Path:
    shutil.copytree(EXAMPLES, workspace / "clients", dirs_exist_ok=True)
    return workspace


def test_every_example_is_a_valid_client(examples: Path) -> None:
    registry = load_registry(examples / "clients")
    for name in ("daily_signal", "bracket_trader", "eod_report"):
        assert isinstance(registry[name], ClientConfig), registry[name]
        assert registry[name].mode == "simulation"
    # Reconciliation reads the production record that IB fills land in.
    assert isinstance(registry["eod_reconcile"], ClientConfig), registry["eod_reconcile"]
    assert registry["eod_reconcile"].mode == "paper"


def test_daily_signal_trades_into_the_simulation_database(
    workspace: Path, example_client: ExampleClient
) -> None:
    """The signal follows the moving averages: a rising series buys, a falling one sells what
    is held (the old check, `signal in (1, -1)`, held for any outcome of `1 if ... else -1`)."""
    client = example_client(workspace, "daily_signal", symbol="SPY", quantity=10)
    with time_machine.travel(datetime(2027, 3, 12, 21, tzinfo=UTC), tick=False):
        # The example's generated SPY closes: fast (10) average above slow (30): buy.
        bought = client.job()
        assert (bought["signal"], bought["order"]) == (1, "BUY")
        assert (bought["fast"], bought["slow"]) == ("475.30", "471.40")
        held = client.job()  # still rising, already long: no second order
        assert (held["signal"], held["order"]) == (1, "none")
    falling = [Decimal(500 - i) for i in range(60)]
    client.prices = lambda today: falling  # a falling market: fast below slow
    with time_machine.travel(datetime(2027, 3, 15, 21, tzinfo=UTC), tick=False):
        sold = client.job()
    assert (sold["signal"], sold["order"]) == (-1, "SELL")
    sim = sqlite3.connect(workspace / "var" / "simulation.db")
    signals = sim.execute("SELECT value FROM strategy_events ORDER BY id").fetchall()
    assert [v for (v,) in signals] == [1, 1, -1]
    fills = sim.execute("SELECT side, qty, price FROM v_executions ORDER BY exec_time").fetchall()
    assert fills == [("BUY", 10, 467.89), ("SELL", 10, 441.0)]
    assert sim.execute("SELECT COUNT(*) FROM notifications").fetchone()[0] == 0
    production = sqlite3.connect(workspace / "var" / "quantstrip.db")
    assert production.execute("SELECT COUNT(*) FROM strategy_events").fetchone()[0] == 0
    # the summary mails are recorded in the production notification centre (no SMTP set up)
    kinds = production.execute("SELECT kind FROM notifications").fetchall()
    assert kinds == [("summary",)] * 3


def test_bracket_trader_round_trip_lands_in_simulation(
    workspace: Path, example_client: ExampleClient
) -> None:
    client = example_client(workspace, "bracket_trader")
    parent, take, stop = client.job()
    assert [client.broker.order_status(o) for o in (parent, take, stop)] == [
        "Filled",
        "Filled",
        "Cancelled",
    ]
    sim = sqlite3.connect(workspace / "var" / "simulation.db")
    gross = sim.execute("SELECT gross_pnl FROM v_round_trips").fetchone()[0]
    # the take profit (183.60) is gapped through by the 187.20 quote: filled at 187.20
    assert round(gross, 2) == round(50 * (187.20 - 180.00), 2)
