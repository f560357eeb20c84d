"""The TWS test server is as strict as TWS: checked with the unmodified ib_async client.

These tests pin the behaviour the adapter tests rely on: routing by client id with a master
client id, open/all-open/completed orders, order errors, client id in use, refused connections
and account values in a base currency other than USD."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock
from support.ib import wait_for
from support.tws_market import Account
from support.tws_server import TwsServer

AAPL = Stock("AAPL", "SMART", "USD", conId=265598)


class Client:
    """One unmodified ib_async client, called synchronously; every client of a test shares the
    test's event loop (ib_async looks its loop up per thread)."""

    def __init__(self, port: int, client_id: int) -> None:
        self.loop = asyncio.get_event_loop()
        self.ib = IB()
        self.errors: list[tuple[int, int]] = []
        self.ib.errorEvent += lambda req, code, msg, contract: self.errors.append((req, code))
        self.port, self.client_id = port, client_id

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def connect(self) -> Client:
        self.run(self.ib.connectAsync("127.0.0.1", self.port, clientId=self.client_id, timeout=5))
        return self

    def pump(self, seconds: float = 0.3) -> None:
        self.run(asyncio.sleep(seconds))

    def close(self) -> None:
        self.ib.disconnect()


@pytest.fixture(autouse=True)
def event_loop_for_clients() -> Iterator[None]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def master_tws() -> Iterator[TwsServer]:
    server = TwsServer(master_client_id=99).start()
    yield server
    server.stop()


def test_other_clients_orders_and_fills_reach_only_the_master(master_tws: TwsServer) -> None:
    placer = Client(master_tws.port, 11).connect()
    bystander = Client(master_tws.port, 12).connect()
    master = Client(master_tws.port, 99).connect()
    try:
        placer.ib.placeOrder(AAPL, MarketOrder("BUY", 5))
        placer.pump()
        master.pump()
        bystander.pump()
        assert len(placer.ib.fills()) == 1
        assert len(master.ib.fills()) == 1 and master.ib.fills()[0].execution.clientId == 11
        assert bystander.ib.fills() == [] and bystander.ib.trades() == []
        assert len(bystander.run(bystander.ib.reqExecutionsAsync())) == 0
        assert len(master.run(master.ib.reqExecutionsAsync())) == 1
    finally:
        for client in (placer, bystander, master):
            client.close()


def test_open_all_open_and_completed_orders_have_real_content(master_tws: TwsServer) -> None:
    placer = Client(master_tws.port, 11).connect()
    other = Client(master_tws.port, 12).connect()
    try:
        resting = LimitOrder("BUY", 3, 90.0, orderRef="rest-1", tif="GTC")
        placer.ib.placeOrder(AAPL, resting)
        placer.ib.placeOrder(AAPL, MarketOrder("BUY", 2, orderRef="done-1"))
        placer.pump()
        assert other.run(other.ib.reqOpenOrdersAsync()) == []
        everyone = other.run(other.ib.reqAllOpenOrdersAsync())
        assert [(t.order.orderRef, t.order.clientId, t.order.tif) for t in everyone] == [
            ("rest-1", 11, "GTC")
        ]
        done = other.run(other.ib.reqCompletedOrdersAsync(False))
        assert [(t.order.orderRef, t.orderStatus.status, t.order.filledQuantity) for t in done] == [
            ("done-1", "Filled", 2.0)
        ]
    finally:
        placer.close()
        other.close()


def test_order_errors_and_warnings_go_to_the_placing_client(tws: TwsServer) -> None:
    client = Client(tws.port, 7).connect()
    try:
        tws.reject_next_order(201, "Order rejected - reason: insufficient margin")
        rejected = client.ib.placeOrder(AAPL, LimitOrder("BUY", 1, 99.0))
        tws.hard_to_borrow.add("GME")
        held = client.ib.placeOrder(
            Stock("GME", "SMART", "USD", conId=36285627), MarketOrder("SELL", 1)
        )
        off_tick = client.ib.placeOrder(AAPL, LimitOrder("BUY", 1, 99.001))
        client.pump()
        assert (rejected.order.orderId, 201) in client.errors
        assert (held.order.orderId, 404) in client.errors
        assert (off_tick.order.orderId, 110) in client.errors
        # TWS sent no status for the rejected order; the held one stays PreSubmitted at TWS.
        assert tws.status_history(rejected.order.orderRef) == []
        assert tws.find(held.order.orderId, 7).status == "PreSubmitted"
        client.ib.cancelOrder(LimitOrder("BUY", 1, 1.0, orderId=4242))
        client.pump()
        assert (4242, 10147) in client.errors
    finally:
        client.close()


def test_a_client_id_in_use_is_refused_with_326(tws: TwsServer) -> None:
    first = Client(tws.port, 7).connect()
    second = Client(tws.port, 7)
    try:
        with pytest.raises((TimeoutError, ConnectionError)):
            second.run(second.ib.connectAsync("127.0.0.1", tws.port, clientId=7, timeout=2))
        assert (-1, 326) in second.errors
        assert tws.connected_client_ids() == [7]
    finally:
        first.close()
        second.close()


def test_connections_are_refused_while_tws_is_down(tws: TwsServer) -> None:
    client = Client(tws.port, 7).connect()
    try:
        tws.down_for(1.0)
        wait_for(lambda: not client.ib.isConnected() or client.pump(0.05), "the drop")
        with pytest.raises(ConnectionRefusedError):
            client.run(client.ib.connectAsync("127.0.0.1", tws.port, clientId=7, timeout=2))
        wait_for(lambda: tws.server is not None, "TWS back")
        client.connect()
        assert client.ib.isConnected()
    finally:
        client.close()


def test_account_values_come_in_each_accounts_base_currency() -> None:
    accounts = [
        Account("DU111", base="EUR", net_liquidation="50000.00", cash={"EUR": "40000.00"}),
        Account("DU222", base="CHF", net_liquidation="20000.00", cash={"CHF": "5000.00"}),
    ]
    server = TwsServer(accounts=accounts).start()
    client = Client(server.port, 7).connect()
    try:
        values = {(v.account, v.tag, v.currency): v.value for v in client.ib.accountValues()}
        assert values[("DU111", "NetLiquidation", "EUR")] == "50000.00"
        assert values[("DU222", "TotalCashValue", "CHF")] == "5000.00"
        assert not any(currency == "USD" for _, tag, currency in values if tag == "NetLiquidation")
    finally:
        client.close()
        server.stop()
