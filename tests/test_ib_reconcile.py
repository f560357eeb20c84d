"""Order state survives restarts and reconnects: the adapter reconciles the database's open
orders with TWS's open and completed orders on every connect, and periodically."""

from __future__ import annotations

from decimal import Decimal

from support.ib import wait_for
from support.tws_server import TwsServer

from quantstrip.brokers import BracketRequest, InstrumentSpec, OrderRequest

AAPL = InstrumentSpec("AAPL", broker_contract_id="265598")


def test_after_a_restart_open_orders_lists_the_gtc_order_and_cancel_works(
    tws: TwsServer, make_ib
) -> None:
    first, ledger = make_ib(tws)
    gtc = first.submit(
        OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="90", tif="GTC", strategy="swing")
    )
    wait_for(lambda: ledger.status(gtc) == "Submitted", "the GTC order resting at TWS")
    first.close()  # the client process stops; the order lives on at TWS

    restarted, _ = make_ib(tws)
    listed = restarted.open_orders()
    assert [(o.client_order_id, o.strategy, o.limit_price, o.tif) for o in listed] == [
        (gtc, "swing", Decimal("90"), "GTC")
    ]
    restarted.cancel(gtc)
    wait_for(lambda: ledger.status(gtc) == "Cancelled", "the cancel reached TWS")
    assert tws.status_history(gtc)[-1] == "Cancelled"
    assert restarted.open_orders() == []


def test_partial_fill_then_disconnect_then_rest_filled_in_the_gap_is_filled_10_of_10(
    tws: TwsServer, make_ib
) -> None:
    broker, ledger = make_ib(tws)
    oid = broker.submit(OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="99", strategy="gap"))
    wait_for(lambda: ledger.status(oid) == "Submitted", "resting")
    tws.move_price(98.0, max_qty=4)
    wait_for(lambda: ledger.order(oid)["filled_qty_micros"] == 4_000_000, "the partial fill")
    reconnects = broker.reconnects
    tws.go_down()  # the connection drops; TWS refuses new ones meanwhile
    wait_for(lambda: not broker.is_connected(), "the drop noticed")
    tws.fill_by_ref(oid, 6, 99.0)  # nobody is connected to hear it
    tws.come_up()
    wait_for(lambda: broker.reconnects > reconnects, "reconnected", timeout_s=30)
    wait_for(lambda: ledger.status(oid) == "Filled", "the order row reconciled to Filled")
    order = ledger.order(oid)
    assert (order["filled_qty_micros"], order["qty_micros"]) == (10_000_000, 10_000_000)
    assert ledger.count("SELECT COUNT(*) FROM executions") == 2
    assert ledger.rows("SELECT SUM(qty) FROM v_executions") == [(10.0,)]
    assert broker.open_orders() == []


def test_bracket_child_filled_while_disconnected_shows_the_sibling_cancelled(
    tws: TwsServer, make_ib
) -> None:
    broker, ledger = make_ib(tws)
    entry = OrderRequest(AAPL, "BUY", 5, "LMT", limit_price="99", strategy="brk")
    parent, take, stop = broker.submit_bracket(BracketRequest(entry, "105", "95"))
    tws.move_price(98.5)
    wait_for(lambda: ledger.status(take) == "Submitted", "children active")
    reconnects = broker.reconnects
    tws.go_down()  # the connection drops; TWS refuses new ones meanwhile
    wait_for(lambda: not broker.is_connected(), "the drop noticed")
    tws.move_price(106.0)  # the take profit fills and TWS cancels the stop: nobody listens
    tws.come_up()
    wait_for(lambda: broker.reconnects > reconnects, "reconnected", timeout_s=30)
    wait_for(lambda: ledger.status(stop) == "Cancelled", "the sibling reconciled")
    assert ledger.status(take) == "Filled" and ledger.status(parent) == "Filled"
    assert ledger.rows("SELECT qty FROM v_positions") == []  # flat: entry and exit both stored


def test_periodic_reconciliation_finds_an_order_another_client_left_open(
    tws: TwsServer, make_ib
) -> None:
    placer, ledger = make_ib(tws, client_id=11)
    oid = placer.submit(OrderRequest(AAPL, "SELL", 3, "LMT", limit_price="110", strategy="p"))
    wait_for(lambda: ledger.status(oid) == "Submitted", "resting")
    placer.close()  # the placing client is gone; nobody will hear this order's updates
    watcher, _ = make_ib(tws, client_id=12, reconcile_interval_s=0.5)
    tws.move_price(111.0)  # TWS tells only client 11 (and a master, if there were one)
    wait_for(lambda: ledger.status(oid) == "Filled", "reconciled from the completed orders")
    assert ledger.order(oid)["filled_qty_micros"] == 3_000_000
    assert watcher.is_connected()
