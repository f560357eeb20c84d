"""The master client id hears every client's fills and TWS's own: each is recorded once, as an
execution attributed by orderRef (an order this workspace placed, or a strategy's name) or to
`unattributed`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.ib import wait_for
from support.tws_server import TwsServer

from quantstrip.brokers import InstrumentSpec, OrderRequest

AAPL = InstrumentSpec("AAPL", broker_contract_id="265598")


@pytest.fixture
def master_tws() -> Iterator[TwsServer]:
    server = TwsServer(master_client_id=99).start()
    yield server
    server.stop()


def test_the_master_records_a_fill_of_an_order_another_client_placed_before_it_connected(
    master_tws: TwsServer, make_ib
) -> None:
    placer, ledger = make_ib(master_tws, client_id=11)
    oid = placer.submit(OrderRequest(AAPL, "BUY", 6, "LMT", limit_price="99", strategy="alpha"))
    wait_for(lambda: ledger.status(oid) == "Submitted", "resting")
    placer.close()  # the strategy's process ends; its GTC order rests at TWS
    master, _ = make_ib(master_tws, client_id=99)
    master_tws.move_price(98.0)  # TWS reports the fill to the master only
    wait_for(lambda: ledger.count("SELECT COUNT(*) FROM executions") == 1, "the fill recorded")
    wait_for(lambda: ledger.count("SELECT COUNT(*) FROM commissions") == 1, "its commission")
    assert ledger.rows("SELECT strategy, qty, price, commission FROM v_executions") == [
        ("alpha", 6.0, 99.0, 1.0)
    ]
    wait_for(lambda: ledger.status(oid) == "Filled", "the order row follows")
    assert master.is_connected()


def test_the_master_records_manual_tws_orders_by_order_ref_or_as_unattributed(
    master_tws: TwsServer, make_ib
) -> None:
    from quantstrip.db.handler import Database

    _master, ledger = make_ib(master_tws, client_id=99)

    with Database(ledger.path) as db:
        db.ensure_strategy("swing")
    master_tws.place_manual_order("AAPL", 265598, "BUY", 3, order_ref="swing")
    master_tws.place_manual_order("AAPL", 265598, "BUY", 2)  # typed into TWS without a ref
    wait_for(lambda: ledger.count("SELECT COUNT(*) FROM executions") == 2, "both fills")
    wait_for(lambda: ledger.count("SELECT COUNT(*) FROM commissions") == 2, "both commissions")
    rows = ledger.rows("SELECT strategy, qty FROM v_executions ORDER BY qty")
    assert rows == [("unattributed", 2.0), ("swing", 3.0)]


def test_a_client_without_the_master_id_records_only_its_own_fills(
    master_tws: TwsServer, make_ib
) -> None:
    mine, ledger = make_ib(master_tws, client_id=11)
    master_tws.place_manual_order("AAPL", 265598, "BUY", 2, client_id=12)
    oid = mine.submit(OrderRequest(AAPL, "BUY", 1, strategy="own"))
    wait_for(lambda: ledger.status(oid) == "Filled", "own fill")
    mine.catch_up()
    assert ledger.rows("SELECT strategy, qty FROM v_executions") == [("own", 1.0)]
