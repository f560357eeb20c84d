"""Pre-trade risk checks on real brokers (SimBroker) recording into a real ledger: every limit
refuses with a typed error, records a strategy event and a client event, and alerts; exits pass
stop-new-entries; a halt refuses everything; the state is shared through the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.daemon import wait_until

from quantstrip import settings
from quantstrip.brokers import InstrumentSpec, OrderRefused, OrderRequest, Recorder
from quantstrip.brokers.events import BracketRequest
from quantstrip.brokers.risk import controls, operator
from quantstrip.brokers.risk.guard import reset_order_counts, wait_for_alerts
from quantstrip.brokers.risk.rules import OrderFacts, Rule, TradingState, check, is_exit
from quantstrip.brokers.sim import SimBroker
from quantstrip.db.handler import Database
from quantstrip.settings_models import RiskLimits

AAPL = InstrumentSpec("AAPL")
T0 = datetime(2031, 3, 4, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York


@pytest.fixture
def book(workspace: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A SimBroker trading for client 'alpha', recording into the workspace database."""
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    monkeypatch.delenv("QUANTSTRIP_CLIENT", raising=False)
    settings._reset_for_tests()
    reset_order_counts()
    db = Database(workspace / "var" / "quantstrip.db")
    broker = SimBroker(account="SIM-A")
    broker.subscribe(Recorder(db, client_name="alpha"))
    broker.on_quote("AAPL", "100", T0)
    yield broker, db
    wait_for_alerts()
    db.close()
    settings._reset_for_tests()


def order(side: str, qty: int, **kw: object) -> OrderRequest:
    return OrderRequest(AAPL, side, qty, strategy="trend", client_name="alpha", **kw)  # type: ignore[arg-type]


def fill_at(broker: SimBroker, price: str, minutes: int) -> None:
    broker.on_quote("AAPL", price, T0 + timedelta(minutes=minutes))


def refusals(db: Database) -> list[str]:
    return [
        r["payload"]
        for r in db.query(
            "SELECT payload FROM strategy_events WHERE event_type = 'risk_refused' ORDER BY id"
        )
    ]


def test_max_position_refuses_and_records_a_strategy_event_and_a_client_event(book) -> None:
    broker, db = book
    settings.set("risk.limits", {"max_position": 150})
    broker.submit(order("BUY", 100))
    fill_at(broker, "100", 1)
    with pytest.raises(OrderRefused) as refused:
        broker.submit(order("BUY", 60))
    assert refused.value.rule is Rule.MAX_POSITION
    assert "position would reach 160" in str(refused.value)
    assert "limit 150" in str(refused.value)
    # Nothing reached the broker or the order table.
    assert len(broker.orders) == 1
    assert db.query("SELECT COUNT(*) FROM orders")[0][0] == 1
    (payload,) = refusals(db)
    assert '"rule": "max_position"' in payload and '"client": "alpha"' in payload
    events = db.query(
        "SELECT client_name, message FROM client_events WHERE event_type = ?", ("risk_refused",)
    )
    assert events[0]["client_name"] == "alpha" and "max_position" in events[0]["message"]
    # Within the limit it passes; a working order counts against the limit too.
    broker.submit(order("BUY", 50))
    with pytest.raises(OrderRefused):
        broker.submit(order("BUY", 1))


def test_per_client_limit_is_the_stricter_of_global_and_client(book) -> None:
    broker, _ = book
    settings.set("risk.limits", {"max_position": 500})
    settings.set("risk.clients", {"alpha": {"max_position": 80}, "beta": {"max_position": 900}})
    with pytest.raises(OrderRefused) as refused:
        broker.submit(order("BUY", 100))
    assert "limit 80" in str(refused.value)
    beta = OrderRequest(AAPL, "BUY", 600, strategy="other", client_name="beta")
    with pytest.raises(OrderRefused) as refused:
        broker.submit(beta)
    assert "limit 500" in str(refused.value)


def test_max_order_notional_values_a_market_order_at_a_fresh_mark_only(book) -> None:
    broker, _ = book
    settings.set("risk.limits", {"max_order_notional": 10_000})
    broker.submit(order("BUY", 100))  # 100 x 100 = 10,000: at the limit
    with pytest.raises(OrderRefused) as refused:
        broker.submit(order("BUY", 50, order_type="LMT", limit_price="201"))
    assert refused.value.rule is Rule.MAX_ORDER_NOTIONAL
    assert "10,050.00" in str(refused.value)
    # A market order with only a stale price is refused (never valued at an old price).
    settings.set("risk.marks", {"max_age_s": 60})
    stale = SimBroker(account="SIM-A")
    stale.on_quote("AAPL", "100", T0)
    stale.on_quote("MSFT", "10", T0 + timedelta(hours=2))  # the market moved on, AAPL did not
    with pytest.raises(OrderRefused) as refused:
        stale.submit(order("BUY", 1))
    assert "no fresh mark" in str(refused.value)


def test_stop_new_entries_refuses_entries_but_lets_exits_pass(book) -> None:
    broker, db = book
    broker.submit(order("BUY", 100))
    fill_at(broker, "100", 1)
    operator.stop_entries("alpha", reason="news pending", by="test")
    with pytest.raises(OrderRefused) as refused:
        broker.submit(order("BUY", 10))
    assert refused.value.rule is Rule.STOP_ENTRIES and "news pending" in str(refused.value)
    with pytest.raises(OrderRefused):  # flipping to short is an entry
        broker.submit(order("SELL", 150))
    broker.submit(order("SELL", 60))  # an exit
    with pytest.raises(OrderRefused):  # 60 already working: only 40 left to close
        broker.submit(order("SELL", 50))
    broker.submit(order("SELL", 40))
    # Another client is unaffected; the global state reaches everyone.
    other = OrderRequest(AAPL, "BUY", 1, strategy="other", client_name="beta")
    broker.submit(other)
    operator.stop_entries(controls.ALL, by="test")
    with pytest.raises(OrderRefused) as refused:
        broker.submit(OrderRequest(AAPL, "BUY", 1, strategy="other", client_name="beta"))
    assert "all clients" in str(refused.value)
    operator.resume(controls.ALL)
    operator.resume("alpha")
    broker.submit(order("BUY", 10))
    assert db.query("SELECT COUNT(*) FROM risk_controls WHERE state <> 'active'")[0][0] == 0


def test_halt_refuses_every_order_exits_and_brackets_included(book) -> None:
    broker, _ = book
    broker.submit(order("BUY", 100))
    fill_at(broker, "100", 1)
    operator.halt("alpha", reason="runaway", wait_s=0, stop_clients=False)
    for request in (order("SELL", 100), order("BUY", 1)):
        with pytest.raises(OrderRefused) as refused:
            broker.submit(request)
        assert refused.value.rule is Rule.HALTED
    entry = order("BUY", 10, order_type="LMT", limit_price="99")
    with pytest.raises(OrderRefused):
        broker.submit_bracket(BracketRequest(entry, Decimal("110"), Decimal("90")))
    assert [c.state for c in controls.all_controls()] == [TradingState.HALTED]


def test_orders_per_minute_count_on_the_brokers_clock(book) -> None:
    broker, _ = book
    settings.set("risk.limits", {"max_orders_per_minute": 3})
    for _ in range(3):
        broker.submit(order("BUY", 1))
    with pytest.raises(OrderRefused) as refused:
        broker.submit(order("BUY", 1))
    assert refused.value.rule is Rule.MAX_ORDERS_PER_MINUTE
    fill_at(broker, "100", 1)  # a minute later on the broker's clock
    broker.submit(order("SELL", 1))


def test_daily_loss_counts_todays_move_of_an_old_position_and_todays_fills(book) -> None:
    """Hand computation: 100 bought yesterday at 100, marked 95 at yesterday's close; today 50
    more bought at 94, commission 1.00 each fill; now marked 90.
    day PnL = (150 x 90) - (100 x 95) - (50 x 94) - 1.00 = 13,500 - 9,500 - 4,700 - 1 = -701."""
    broker, db = book
    yesterday = T0 - timedelta(days=1)
    broker.on_quote("AAPL", "100", yesterday)
    broker.submit(order("BUY", 100))
    broker.on_quote("AAPL", "100", yesterday + timedelta(minutes=1))
    broker.on_quote("AAPL", "95", yesterday + timedelta(hours=5))
    broker.snapshot_marks([AAPL])  # yesterday's close
    broker.on_quote("AAPL", "94", T0)
    broker.submit(order("BUY", 50))
    broker.on_quote("AAPL", "94", T0 + timedelta(minutes=1))
    broker.on_quote("AAPL", "90", T0 + timedelta(minutes=2))
    settings.set("risk.limits", {"max_daily_loss_strategy": 701})
    with pytest.raises(OrderRefused) as refused:
        broker.submit(order("BUY", 1))
    assert refused.value.rule is Rule.MAX_DAILY_LOSS_STRATEGY
    assert "-701.00" in str(refused.value)
    broker.submit(order("SELL", 10))  # exits pass
    settings.set("risk.limits", {"max_daily_loss_strategy": 702, "max_daily_loss_account": 700})
    with pytest.raises(OrderRefused) as refused:
        broker.submit(order("BUY", 1))
    assert refused.value.rule is Rule.MAX_DAILY_LOSS_ACCOUNT
    assert db.query("SELECT COUNT(*) FROM marks")[0][0] >= 1


def test_refusal_is_alerted_by_mail(mail_workspace: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]
    settings.set("risk.limits", {"max_position": 5})
    with Database(mail_workspace / "var" / "quantstrip.db") as db:
        broker = SimBroker(account="SIM-A")
        broker.subscribe(Recorder(db, client_name="alpha"))
        broker.on_quote("AAPL", "100", T0)
        with pytest.raises(OrderRefused):
            broker.submit(order("BUY", 10))
    wait_for_alerts()
    (message,) = wait_until(lambda: smtp_server.messages, 30, "the refusal alert")
    assert "alpha" in message["Subject"] and "max_position" in message.get_content()


def test_unguarded_brokers_are_only_the_ones_that_say_so(workspace: Path) -> None:
    """Every adapter class gets the guard from the base class, subclasses of adapters too."""
    from quantstrip.brokers.alpaca import AlpacaBroker
    from quantstrip.brokers.ib import IbBroker
    from quantstrip.brokers.ib_web import IbWebBroker

    class Custom(SimBroker):
        def submit(self, request: OrderRequest) -> str:
            return super().submit(request)

    for cls in (SimBroker, IbBroker, AlpacaBroker, IbWebBroker, Custom):
        assert getattr(cls.submit, "__risk_guarded__", False), cls
    operator.halt(controls.ALL, wait_s=0, stop_clients=False)
    custom = Custom()
    custom.on_quote("AAPL", "1", T0)
    with pytest.raises(OrderRefused):
        custom.submit(order("BUY", 1))
    wait_for_alerts()


@given(
    position=st.integers(-500, 500),
    qty=st.integers(1, 600),
    side=st.sampled_from(["BUY", "SELL"]),
    working=st.integers(0, 300),
)
def test_exits_pass_every_limit_and_stop_entries(position, qty, side, working) -> None:  # type: ignore[no-untyped-def]
    facts = OrderFacts(
        client="alpha",
        strategy="s",
        account="A",
        symbol="X",
        side=side,
        qty=Decimal(qty),
        multiplier=Decimal(1),
        position=Decimal(position),
        working_buy=Decimal(working) if side == "BUY" else Decimal(0),
        working_sell=Decimal(working) if side == "SELL" else Decimal(0),
        price=None,
        price_source="none",
        states=(controls_state(TradingState.STOP_ENTRIES),),
    )
    tight = RiskLimits(max_position=Decimal(1), max_order_notional=Decimal(1))
    refusal = check(facts, tight)
    if is_exit(facts):
        assert refusal is None
        # an exit never leaves the position on the other side
        after = (
            facts.position
            + facts.signed_qty
            - (facts.working_sell if position > 0 else -facts.working_buy)
        )
        assert after == 0 or (after > 0) == (position > 0)
    else:
        assert refusal is not None


def controls_state(state: TradingState):  # type: ignore[no-untyped-def]
    from quantstrip.brokers.risk.rules import ScopeState

    return ScopeState("alpha", state)
