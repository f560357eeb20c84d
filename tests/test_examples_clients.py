"""The annotated example clients: valid registry entries, and their jobs trade in simulation
without touching the production database."""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
from pathlib import Path

import pytest

from quantstrip import db_handler
from quantstrip.daemon.registry import ClientConfig, load_registry

REPO = Path(__file__).resolve().parents[1]


def load_class(path: Path, name: str) -> type:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


@pytest.fixture
def examples(workspace: Path) -> Path:
    shutil.copytree(REPO / "clients", workspace / "clients", dirs_exist_ok=True)
    return workspace


def test_every_example_is_a_valid_client(examples: Path) -> None:
    registry = load_registry(examples / "clients")
    for name in ("daily_signal", "bracket_trader", "eod_report"):
        assert isinstance(registry[name], ClientConfig), registry[name]
        assert registry[name].mode == "simulation"
    # Reconciliation reads the production record that IB fills land in.
    assert isinstance(registry["eod_reconcile"], ClientConfig), registry["eod_reconcile"]
    assert registry["eod_reconcile"].mode == "paper"


def test_daily_signal_trades_into_the_simulation_database(examples: Path, monkeypatch) -> None:
    monkeypatch.setenv("QUANTSTRIP_CLIENT", "daily_signal")
    monkeypatch.setenv("QUANTSTRIP_CLIENT_PARAMETERS", '{"symbol": "SPY", "quantity": 10}')
    client = load_class(examples / "clients" / "daily_signal" / "daily_signal.py", "DailySignal")()
    summary = client.job()
    assert summary["signal"] in (1, -1)
    sim = sqlite3.connect(examples / "var" / "simulation.db")
    assert sim.execute("SELECT COUNT(*) FROM strategy_events").fetchone()[0] == 1
    assert sim.execute("SELECT COUNT(*) FROM notifications").fetchone()[0] == 0
    production = sqlite3.connect(examples / "var" / "quantstrip.db")
    assert production.execute("SELECT COUNT(*) FROM strategy_events").fetchone()[0] == 0
    # the summary mail is recorded in the production notification centre (failed: no SMTP set)
    assert production.execute("SELECT kind FROM notifications").fetchone()[0] == "summary"
    db_handler.close()


def test_bracket_trader_round_trip_lands_in_simulation(examples: Path, monkeypatch) -> None:
    monkeypatch.setenv("QUANTSTRIP_CLIENT", "bracket_trader")
    client = load_class(
        examples / "clients" / "bracket_trader" / "bracket_trader.py", "BracketTrader"
    )()
    parent, take, stop = client.job()
    assert [client.broker.order_status(o) for o in (parent, take, stop)] == [
        "Filled",
        "Filled",
        "Cancelled",
    ]
    sim = sqlite3.connect(examples / "var" / "simulation.db")
    gross = sim.execute("SELECT gross_pnl FROM v_round_trips").fetchone()[0]
    # the take profit (183.60) is gapped through by the 187.20 quote: filled at 187.20
    assert round(gross, 2) == round(50 * (187.20 - 180.00), 2)
    db_handler.close()
