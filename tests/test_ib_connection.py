"""Connection life: reconnect forever with backoff and jitter, TWS's connectivity codes, the
client id in use, alerts when IB is down for long and when it is back, gap fills once."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ib_async import IB
from support.ib import wait_for
from support.tws_server import TwsServer

from quantstrip.brokers import InstrumentSpec, OrderRequest

AAPL = InstrumentSpec("AAPL", broker_contract_id="265598")


def requests_of(tws: TwsServer, client_id: int, message: int) -> int:
    return sum(1 for cid, f in tws.requests if cid == client_id and f[0] == str(message))


def test_reconnects_forever_while_tws_refuses_connections(tws: TwsServer, make_ib) -> None:
    broker, ledger = make_ib(tws, reconnect_attempts=2)  # the old bound: gave up after two
    resting = broker.submit(OrderRequest(AAPL, "SELL", 2, "LMT", limit_price="120"))
    wait_for(lambda: ledger.status(resting) == "Submitted", "resting")
    tws.go_down()
    wait_for(lambda: not broker.is_connected(), "the drop noticed")
    wait_for(lambda: broker.connection.failed_attempts >= 4, "refused attempts", timeout_s=30)
    tws.come_up()
    wait_for(broker.is_connected, "reconnected once TWS is back", timeout_s=60)
    tws.fill_by_ref(resting, 2, 120.0)
    wait_for(lambda: ledger.status(resting) == "Filled", "the live stream works again")


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=200))
def test_backoff_grows_from_one_second_to_five_minutes_with_jitter(attempt: int) -> None:
    from quantstrip.brokers.ib.connection import reconnect_wait

    wait = reconnect_wait()
    delays = [wait.delay(n) for n in range(1, attempt + 1)]
    assert all(1.0 <= d <= 300.0 for d in delays)
    assert delays[0] <= 2.0
    if attempt >= 12:
        assert delays[-1] >= 150.0  # capped near five minutes, jittered below it


def test_client_id_in_use_moves_to_the_next_client_id(tws: TwsServer, make_ib) -> None:
    loop = asyncio.new_event_loop()  # another API client holds id 7, on its own loop thread
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    squatter = IB()

    async def squat() -> None:
        await squatter.connectAsync("127.0.0.1", tws.port, clientId=7, timeout=5)

    asyncio.run_coroutine_threadsafe(squat(), loop).result(20)
    try:
        broker, _ = make_ib(tws, client_id=7)
        assert broker.is_connected() and broker.client_id == 8
        assert tws.connected_client_ids() == [7, 8]
    finally:
        loop.call_soon_threadsafe(squatter.disconnect)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_1101_resubscribes_and_reconciles(tws: TwsServer, make_ib) -> None:
    make_ib(tws)

    def counts() -> list[int]:  # account updates, positions, all open orders
        return [requests_of(tws, 7, message) for message in (6, 61, 16)]

    before = counts()
    tws.connectivity(1101)  # restored, data lost: subscriptions must be made again
    wait_for(
        lambda: all(now > was for now, was in zip(counts(), before, strict=True)),
        "account updates, positions and open orders requested again",
    )


@pytest.mark.parametrize("lost", [1100, 2110])
def test_lost_link_to_ib_blocks_orders_and_1102_restores_with_a_reconciliation(
    tws: TwsServer, make_ib, lost: int
) -> None:
    from quantstrip.brokers.ib import IbError
    from quantstrip.brokers.ib.connection import LinkState

    broker, _ = make_ib(tws)
    tws.connectivity(lost)
    wait_for(lambda: broker.state == LinkState.IB_UNREACHABLE, "the lost link noticed")
    with pytest.raises(IbError, match=str(lost)):
        broker.submit(OrderRequest(AAPL, "BUY", 1))
    assert not [f for _, f in tws.requests if f[0] == "3"]  # nothing was sent to TWS
    reconciled = requests_of(tws, 7, 99)
    tws.connectivity(1102)
    wait_for(lambda: broker.state == LinkState.CONNECTED, "the link restored")
    wait_for(lambda: requests_of(tws, 7, 99) > reconciled, "completed orders checked again")
    assert requests_of(tws, 7, 6) == 1  # data maintained: no resubscription


def test_down_longer_than_the_threshold_mails_an_alert_and_again_when_back(
    tws: TwsServer, make_ib, mail_workspace, smtp_server
) -> None:
    broker, _ = make_ib(tws, down_alert_after_s=1.0)
    tws.go_down()
    wait_for(lambda: len(smtp_server.messages) == 1, "the down alert", timeout_s=30)
    assert "IB connection down" in str(smtp_server.messages[0]["Subject"])
    tws.come_up()
    wait_for(lambda: len(smtp_server.messages) == 2, "the back alert", timeout_s=60)
    assert "IB connection back" in str(smtp_server.messages[1]["Subject"])
    assert broker.is_connected()


def test_a_short_drop_sends_no_alert(tws: TwsServer, make_ib, mail_workspace, smtp_server):
    broker, _ = make_ib(tws, down_alert_after_s=60.0)
    reconnects = broker.reconnects
    tws.drop_all_clients()
    wait_for(lambda: broker.reconnects > reconnects, "reconnected", timeout_s=30)
    assert smtp_server.messages == []


def test_fills_in_the_gap_are_stored_once_across_two_reconnects(tws: TwsServer, make_ib):
    broker, ledger = make_ib(tws)
    oid = broker.submit(OrderRequest(AAPL, "BUY", 4, "LMT", limit_price="99", strategy="g"))
    wait_for(lambda: ledger.status(oid) == "Submitted", "resting")
    for qty in (1, 3):
        reconnects = broker.reconnects
        tws.go_down()  # the connection drops; TWS refuses new ones meanwhile
        wait_for(lambda: not broker.is_connected(), "the drop noticed")
        tws.fill_by_ref(oid, qty, 99.0)
        tws.come_up()
        wait_for(lambda r=reconnects: broker.reconnects > r, "reconnected", timeout_s=30)
    wait_for(lambda: ledger.status(oid) == "Filled", "filled")
    wait_for(lambda: ledger.count("SELECT COUNT(*) FROM commissions") == 2, "commissions")
    assert ledger.count("SELECT COUNT(*) FROM executions") == 2
    assert ledger.rows("SELECT SUM(qty), SUM(commission) FROM v_executions") == [(4.0, 2.0)]
