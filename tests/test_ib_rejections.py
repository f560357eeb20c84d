"""Rejections and warnings as TWS sends them: an error linked to its order by request id,
201/203/10289 stored as Rejected with the reason, warnings that never change an order's state,
a rejected modify that leaves the live order live, and only statuses TWS actually sent."""

from __future__ import annotations

import pytest
from support.ib import wait_for
from support.tws_server import TwsServer

from quantstrip.brokers import ErrorEvent, InstrumentSpec, OrderRequest

AAPL = InstrumentSpec("AAPL", broker_contract_id="265598")
GME = InstrumentSpec("GME", broker_contract_id="36285627")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (201, "Order rejected - reason: YOUR ORDER IS NOT ACCEPTED. INSUFFICIENT MARGIN"),
        (203, "The security AAPL is not available or allowed for this account"),
        (10289, "Order rejected - the order would breach a risk limit of this account."),
    ],
)
def test_a_rejection_is_stored_as_rejected_with_its_reason(
    tws: TwsServer, make_ib, code: int, reason: str
) -> None:
    broker, ledger = make_ib(tws)
    errors: list[ErrorEvent] = []
    broker.subscribe(lambda e: errors.append(e) if isinstance(e, ErrorEvent) else None)
    tws.reject_next_order(code, reason)
    oid = broker.submit(OrderRequest(AAPL, "BUY", 10, "LMT", limit_price="99", strategy="rej"))
    wait_for(lambda: ledger.status(oid) == "Rejected", "the rejection stored")
    assert ledger.statuses(oid) == ["PendingSubmit", "Rejected"]  # no invented Cancelled
    assert ledger.messages(oid) == [f"{code}: {reason}"]
    shown = ledger.rows(
        "SELECT status, status_message FROM v_orders WHERE client_order_id = ?", (oid,)
    )
    assert shown == [("Rejected", f"{code}: {reason}")]
    assert [(e.code, e.client_order_id) for e in errors] == [(code, oid)]
    assert broker.open_orders() == []


def test_a_price_off_the_tick_rejects_a_new_order_with_110(tws: TwsServer, make_ib) -> None:
    broker, ledger = make_ib(tws)
    oid = broker.submit(OrderRequest(AAPL, "BUY", 1, "LMT", limit_price="99.001", strategy="t"))
    wait_for(lambda: ledger.status(oid) == "Rejected", "rejected")
    assert ledger.messages(oid)[0].startswith("110: The price does not conform")


def test_a_404_short_sale_warning_leaves_the_order_held_not_failed(tws: TwsServer, make_ib):
    broker, ledger = make_ib(tws)
    tws.hard_to_borrow.add("GME")
    oid = broker.submit(OrderRequest(GME, "SELL", 5, "MKT", strategy="short"))
    wait_for(lambda: ledger.messages(oid), "the warning recorded")
    assert ledger.status(oid) == "PreSubmitted"
    assert "ValidationError" not in ledger.statuses(oid)
    assert ledger.messages(oid)[0].startswith("404: Shares for this order are not immediately")
    assert [o.client_order_id for o in broker.open_orders()] == [oid]


def test_a_399_warning_never_changes_the_state(tws: TwsServer, make_ib) -> None:
    broker, ledger = make_ib(tws)
    tws.warn_next_order(399)
    oid = broker.submit(OrderRequest(AAPL, "BUY", 2, "LMT", limit_price="95", strategy="w"))
    wait_for(lambda: ledger.messages(oid), "the warning recorded")
    assert set(ledger.statuses(oid)) <= {"PendingSubmit", "Submitted"}
    assert ledger.status(oid) == "Submitted"
    tws.move_price(94.0)
    wait_for(lambda: ledger.status(oid) == "Filled", "the order still works")


def test_a_rejected_modify_leaves_the_live_order_live(tws: TwsServer, make_ib) -> None:
    broker, ledger = make_ib(tws)
    oid = broker.submit(OrderRequest(AAPL, "BUY", 3, "LMT", limit_price="95", strategy="m"))
    wait_for(lambda: ledger.status(oid) == "Submitted", "resting")
    broker.modify(oid, limit_price="96.5")
    wait_for(lambda: ledger.order(oid)["limit_price_micros"] == 96_500_000, "modify recorded")
    broker.modify(oid, limit_price="97.003")  # off the tick: TWS answers 110, keeps 96.5
    wait_for(lambda: any(m.startswith("110") for m in ledger.messages(oid)), "the refusal")
    assert ledger.status(oid) == "Submitted"
    assert ledger.order(oid)["limit_price_micros"] == 96_500_000
    assert "ValidationError" not in ledger.statuses(oid)
    assert tws.by_ref(oid).limit_price == "96.5"
    tws.move_price(96.0)
    wait_for(lambda: ledger.status(oid) == "Filled", "filled at the live price")
    assert ledger.rows("SELECT price FROM v_executions") == [(96.5,)]


def test_a_cancel_records_only_what_tws_sent(tws: TwsServer, make_ib) -> None:
    broker, ledger = make_ib(tws)
    oid = broker.submit(OrderRequest(AAPL, "BUY", 3, "LMT", limit_price="90", strategy="c"))
    wait_for(lambda: ledger.status(oid) == "Submitted", "resting")
    broker.cancel(oid)
    wait_for(lambda: ledger.status(oid) == "Cancelled", "cancelled")
    assert ledger.statuses(oid) == ["PendingSubmit", "Submitted", "Cancelled"]
    assert tws.status_history(oid) == ["Submitted", "Cancelled"]
