"""Order types and time in force beyond MKT/LMT, the readonly setting, per-client client ids,
account values in any base currency and per account, and historical bars' inputs and errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from support.ib import wait_for
from support.tws_market import Account
from support.tws_server import TwsServer

from quantstrip.brokers import AccountValueEvent, InstrumentSpec, OrderRequest
from quantstrip.errors import ValidationError

AAPL = InstrumentSpec("AAPL", broker_contract_id="265598")


def test_stop_and_stop_limit_orders_trigger_at_their_stop(tws: TwsServer, make_ib) -> None:
    broker, ledger = make_ib(tws)
    stop = broker.submit(OrderRequest(AAPL, "SELL", 2, "STP", stop_price="95", strategy="s"))
    stop_limit = broker.submit(
        OrderRequest(AAPL, "BUY", 2, "STP LMT", stop_price="105", limit_price="106", strategy="s")
    )
    wait_for(lambda: ledger.status(stop_limit) == "Submitted", "resting")
    tws.move_price(94.5)
    tws.move_price(105.5)
    wait_for(lambda: ledger.status(stop) == ledger.status(stop_limit) == "Filled", "triggered")
    assert ledger.rows("SELECT side, price FROM v_executions ORDER BY execution_id") == [
        ("SELL", 94.5),
        ("BUY", 106.0),
    ]


@pytest.mark.parametrize(
    ("terms", "sent"),
    [({"trail_amount": "2"}, ("2.0", "")), ({"trail_percent": "1.5"}, ("", "1.5"))],
)
def test_a_trailing_stop_follows_the_price(tws: TwsServer, make_ib, terms, sent) -> None:
    broker, ledger = make_ib(tws)
    oid = broker.submit(OrderRequest(AAPL, "SELL", 1, "TRAIL", strategy="trail", **terms))
    wait_for(lambda: ledger.status(oid) == "Submitted", "resting")
    order = tws.by_ref(oid)
    assert (order.order_type, order.aux_price, order.trailing_percent) == ("TRAIL", *sent)
    tws.move_price(110.0)  # the stop ratchets up under the price
    tws.move_price(107.0)  # and triggers on the way down
    wait_for(lambda: ledger.status(oid) == "Filled", "triggered")
    stored = ledger.order(oid)
    assert stored["order_type"] == "TRAIL"
    amount, percent = (terms.get(k) for k in ("trail_amount", "trail_percent"))
    assert stored["trail_amount_micros"] == (int(Decimal(amount) * 10**6) if amount else None)
    assert stored["trail_percent_micros"] == (int(Decimal(percent) * 10**6) if percent else None)


def test_market_and_limit_on_close_fill_in_the_closing_auction(tws: TwsServer, make_ib) -> None:
    broker, ledger = make_ib(tws)
    moc = broker.submit(OrderRequest(AAPL, "BUY", 3, "MOC", strategy="close"))
    loc = broker.submit(OrderRequest(AAPL, "SELL", 3, "LOC", limit_price="101", strategy="close"))
    wait_for(lambda: ledger.status(loc) == "Submitted", "resting until the close")
    assert (tws.by_ref(moc).order_type, tws.by_ref(loc).order_type) == ("MOC", "LOC")
    tws.close(101.5)
    wait_for(lambda: ledger.status(moc) == ledger.status(loc) == "Filled", "the auction")


@pytest.mark.parametrize(
    ("tif", "filled", "status"), [("IOC", 4, "Cancelled"), ("FOK", 0, "Cancelled")]
)
def test_immediate_or_cancel_and_fill_or_kill(tws: TwsServer, make_ib, tif, filled, status):
    tws.liquidity = 4  # only four shares can be had at once
    broker, ledger = make_ib(tws)
    oid = broker.submit(OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="100", tif=tif))
    wait_for(lambda: ledger.status(oid) == status, f"{tif} resolved at once")
    assert ledger.order(oid)["filled_qty_micros"] == filled * 1_000_000
    assert tws.by_ref(oid).tif == tif


def test_good_till_date_is_sent_in_utc_and_expiry_cancels(tws: TwsServer, make_ib) -> None:
    broker, ledger = make_ib(tws)
    until = datetime(2031, 3, 4, 20, 30, tzinfo=UTC)
    oid = broker.submit(
        OrderRequest(AAPL, "BUY", 1, "LMT", limit_price="90", tif="GTD", good_till=until)
    )
    wait_for(lambda: ledger.status(oid) == "Submitted", "resting")
    assert (tws.by_ref(oid).tif, tws.by_ref(oid).good_till) == ("GTD", "20310304 20:30:00 UTC")
    assert ledger.order(oid)["good_till"].startswith("2031-03-04 20:30:00")
    tws.expire(tws.by_ref(oid).order_id, 7)
    wait_for(lambda: ledger.status(oid) == "Cancelled", "expired")


def test_a_gtd_order_needs_an_aware_good_till() -> None:
    with pytest.raises(ValidationError, match="good_till"):
        OrderRequest(AAPL, "BUY", 1, "LMT", limit_price="90", tif="GTD")
    with pytest.raises(ValidationError, match="good_till"):
        OrderRequest(
            AAPL, "BUY", 1, "LMT", limit_price="90", tif="GTD", good_till=datetime(2031, 1, 1)
        )


def test_an_oca_group_cancels_the_others_when_one_fills(tws: TwsServer, make_ib) -> None:
    broker, ledger = make_ib(tws)
    legs = [
        broker.submit(
            OrderRequest(AAPL, "BUY", 5, "LMT", limit_price=price, oca_group="dip", strategy="o")
        )
        for price in ("97", "95")
    ]
    wait_for(lambda: ledger.status(legs[1]) == "Submitted", "both resting")
    assert {tws.by_ref(leg).oca_type for leg in legs} == {1}
    tws.move_price(96.5)
    wait_for(lambda: ledger.status(legs[1]) == "Cancelled", "the other leg cancelled")
    assert ledger.status(legs[0]) == "Filled"


def test_readonly_refuses_orders_before_they_reach_tws(tws: TwsServer, make_ib) -> None:
    from quantstrip.brokers.ib import IbError

    broker, ledger = make_ib(tws, readonly=True)
    with pytest.raises(IbError, match="read-only"):
        broker.submit(OrderRequest(AAPL, "BUY", 1))
    assert not [f for _, f in tws.requests if f[0] == "3"]
    assert ledger.count("SELECT COUNT(*) FROM orders") == 0
    assert broker.positions() == [] and broker.account_values()["NetLiquidation"] > 0


def test_readonly_and_client_id_come_from_settings_per_client(
    tws: TwsServer, workspace, monkeypatch
) -> None:
    from quantstrip import settings
    from quantstrip.brokers.ib import IbBroker

    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    monkeypatch.setenv("QUANTSTRIP_CLIENT", "alpha")
    settings._reset_for_tests()
    settings.set("brokers.ib", {"host": "127.0.0.1", "port": tws.port, "readonly": True})
    settings.set("brokers.ib.client_ids", {"alpha": 21, "beta": 22})
    broker = IbBroker(timeout_s=5)
    try:
        broker.connect()
        assert tws.connected_client_ids() == [21] and broker.readonly
    finally:
        broker.close()
        settings._reset_for_tests()


def test_account_values_for_a_eur_base_account_and_per_account(make_ib) -> None:
    accounts = [
        Account("DU111", base="EUR", net_liquidation="50000.00", cash={"EUR": "40000.00"}),
        Account(
            "DU222",
            base="CHF",
            net_liquidation="20000.00",
            cash={"CHF": "5000.00", "USD": "1000.00"},
            rates={"USD": "0.90"},
        ),
    ]
    server = TwsServer(accounts=accounts).start()
    try:
        broker, ledger = make_ib(server)
        assert broker.accounts() == ["DU111", "DU222"]
        assert broker.account_values() == {
            "NetLiquidation": Decimal("50000.00"),
            "TotalCashValue": Decimal("40000.00"),
        }
        assert broker.account_values("DU222")["TotalCashValue"] == Decimal("5900.00")
        events = [e for e in broker.snapshot_all() if isinstance(e, AccountValueEvent)]
        assert [(e.account, e.currency, e.net_liquidation) for e in events] == [
            ("DU111", "EUR", Decimal("50000.00")),
            ("DU222", "CHF", Decimal("20000.00")),
        ]
        assert ledger.rows(
            "SELECT a.account_code, s.currency FROM account_snapshots s "
            "JOIN accounts a ON a.id = s.account_id ORDER BY a.account_code"
        ) == [("DU111", "EUR"), ("DU222", "CHF")]
    finally:
        server.stop()


def test_historical_bars_refuse_naive_times(tws: TwsServer, ib) -> None:
    broker, _ = ib
    with pytest.raises(ValidationError, match="end"):
        broker.historical_bars(AAPL, end=datetime(2025, 3, 4, 16, 0), bar_size="1 day")
    with pytest.raises(ValidationError, match="start"):
        broker.historical_bars(AAPL, start=datetime(2025, 3, 4), bar_size="1 day")
    end = datetime(2025, 3, 4, 16, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert len(broker.historical_bars(AAPL, end=end, bar_size="1 day", duration="5 D")) == 5
    sent = [f[15] for _, f in tws.requests if f[0] == "20"]
    assert sent == ["20250304-21:00:00"]  # IB's UTC form, whatever the zone given


def test_historical_errors_are_matched_by_request_id(tws: TwsServer, ib) -> None:
    from quantstrip.brokers.ib import IbError

    broker, _ = ib
    for _ in range(250):  # errors of other requests must not hide or stand in for this one
        tws.connectivity(2103)
    assert broker.historical_bars(AAPL, bar_size="1 day", duration="5 D")  # all were read
    tws.not_allowed.add("XYZ")
    with pytest.raises(IbError, match="162") as refused:
        broker.historical_bars(InstrumentSpec("XYZ", broker_contract_id="1"), bar_size="1 day")
    assert refused.value.code == 162 and "HMDS query returned no data" in str(refused.value)
