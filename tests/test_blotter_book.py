"""The blotter's figures on a seeded simulation, checked against a hand computation: unrealised
PnL from the one view (v_unrealised_pnl), stale marks flagged and left out of the sums, open
orders with their last broker message, today's fills by the trading day's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from quantstrip import settings
from quantstrip.brokers import InstrumentSpec, OrderRefused, OrderRequest, Recorder
from quantstrip.brokers.sim import FixedTierCommission, SimBroker
from quantstrip.dashboard import book
from quantstrip.db.handler import Database

NOW = datetime(2031, 3, 4, 15, 30, tzinfo=UTC)  # 10:30 in New York
FREE = FixedTierCommission(per_share=0, minimum=0)  # type: ignore[arg-type]


def seeded(db: Database) -> SimBroker:
    """Long 100 AAPL bought at 100 and 50 more at 106 (FIFO), short 20 MSFT at 300; AAPL marked
    103.50 now, MSFT marked at 290 three hours ago; a working limit order; a refusal."""
    broker = SimBroker(account="SIM-B", commission=FREE)
    broker.subscribe(Recorder(db, client_name="alpha"))
    aapl, msft = InstrumentSpec("AAPL"), InstrumentSpec("MSFT")
    t = NOW - timedelta(hours=5)
    broker.on_quote("AAPL", "100", t)
    broker.on_quote("MSFT", "300", t)
    broker.submit(OrderRequest(aapl, "BUY", 100, strategy="trend"))
    broker.submit(OrderRequest(msft, "SELL", 20, strategy="trend"))
    broker.on_quote("AAPL", "100", t + timedelta(minutes=1))
    broker.on_quote("MSFT", "300", t + timedelta(minutes=1))
    broker.on_quote("MSFT", "290", NOW - timedelta(hours=3))
    broker.snapshot_marks([msft])
    broker.on_quote("AAPL", "106", NOW - timedelta(minutes=10))
    broker.submit(OrderRequest(aapl, "BUY", 50, strategy="trend"))
    broker.on_quote("AAPL", "106", NOW - timedelta(minutes=9))
    broker.submit(OrderRequest(aapl, "BUY", 10, "LMT", limit_price=90, strategy="trend"))
    broker.on_quote("AAPL", "103.5", NOW - timedelta(minutes=1))
    broker.snapshot_marks([aapl])
    settings.set("risk.limits", {"max_position": 150})
    with pytest.raises(OrderRefused):
        broker.submit(OrderRequest(aapl, "BUY", 5, strategy="trend"))
    return broker


@pytest.fixture
def ledger(workspace: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings._reset_for_tests()
    db = Database(workspace / "var" / "quantstrip.db")
    with time_machine.travel(NOW, tick=False):
        seeded(db)
    from quantstrip.brokers.risk.guard import wait_for_alerts

    wait_for_alerts()
    yield db
    db.close()
    settings._reset_for_tests()


def test_unrealised_pnl_matches_a_hand_computation(ledger: Database) -> None:
    # AAPL: 150 held, cost 100 x 100 + 50 x 106 = 15,300; at 103.50: 15,525 -> +225.00
    # MSFT: short 20 sold at 300 (6,000); at 290: -5,800 -> +200.00, but the mark is 3 h old.
    with book.reading() as conn:
        assert conn is not None
        held = book.positions(conn, now=NOW).set_index("symbol")
    assert held.loc["AAPL", "qty"] == 150
    assert held.loc["AAPL", "market_value"] == pytest.approx(15_525.00)
    assert held.loc["AAPL", "unrealised_pnl"] == pytest.approx(225.00)
    assert held.loc["AAPL", "exposure"] == pytest.approx(15_525.00)
    assert bool(held.loc["AAPL", "fresh"]) is True
    assert held.loc["MSFT", "unrealised_pnl"] == pytest.approx(200.00)
    assert held.loc["MSFT", "market_value"] == pytest.approx(-5_800.00)
    assert bool(held.loc["MSFT", "fresh"]) is False  # older than the 15 min default
    assert held.loc["AAPL", "client"] == "alpha"


def test_summary_leaves_stale_marks_out_of_the_sums_and_counts_the_day(ledger: Database) -> None:
    with time_machine.travel(NOW, tick=False):
        summary = book.summary()
    assert summary is not None
    assert summary.positions == 2 and summary.stale == 1
    assert summary.unrealised == pytest.approx(225.00)
    assert summary.exposure == pytest.approx(15_525.00)
    assert summary.open_orders == 1
    assert summary.fills_today == 3  # all after midnight in New York
    assert summary.refused_today == 1
    # The blotter's line (from its frames) and the home page's (counted from rows) agree.
    with time_machine.travel(NOW, tick=False), book.reading() as conn:
        since = book.day_start(NOW)
        blotter = book.summarise(
            book.open_orders(conn, NOW),
            book.executions_today(conn, since),
            book.positions(conn, NOW),
            book.refused_today(conn, since),
            book.rejected_today(conn, since),
        )
    assert blotter == summary
    # A later trading day starts empty; with a longer staleness limit MSFT counts again.
    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        later = book.summary()
    assert later is not None and later.fills_today == 0 and later.stale == 2
    settings.set("risk.marks", {"max_age_s": 4 * 3600})
    with time_machine.travel(NOW, tick=False):
        summary = book.summary()
    assert summary is not None and summary.unrealised == pytest.approx(425.00)


def test_open_orders_show_age_client_and_last_broker_message(ledger: Database) -> None:
    with book.reading() as conn:
        assert conn is not None
        orders = book.open_orders(conn, now=NOW + timedelta(minutes=9))
        refused = book.refused_today(conn, book.day_start(NOW))
    (order,) = orders.to_dict("records")
    assert order["client"] == "alpha" and order["symbol"] == "AAPL" and order["qty"] == 10
    assert order["age_s"] == pytest.approx(9 * 60, abs=61)
    assert order["status"] == "Submitted"
    (refusal,) = refused.to_dict("records")
    assert refusal["rule"] == "max_position" and "limit 150" in refusal["reason"]


def test_the_blotter_page_renders_the_book(ledger: Database) -> None:
    from quantstrip.dashboard.blotter import BlotterPage

    with time_machine.travel(NOW, tick=False):
        page = BlotterPage()
    text = page.positions.value
    assert "225.00" in text and "15,525.00" in text
    assert "STALE (3 h 0 min old, limit 15 min)" in text
    assert "max_position" in page.refused.value
    assert "unrealised PnL <b>225.00</b>" in page.summary.value
    with time_machine.travel(NOW, tick=False):
        page.group.value = "strategy"
    assert "1 without a fresh mark" in page.positions.value
