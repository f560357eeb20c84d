"""The TWS test server is as strict as TWS: checked with the unmodified ib_async client.

These tests pin the behaviour the adapter tests rely on: routing by client id with a master
client id, open/all-open/completed orders, order errors, client id in use, refused connections
and account values in a base currency other than USD."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock
from support.ib import wait_for
from support.tws_market import Account
from support.tws_server import TwsServer

AAPL = Stock("AAPL", "SMART", "USD", conId=265598)


class Client:
    """One unmodified ib_async client on its own event loop thread, called synchronously (the
    test's thread never runs a loop: an earlier test may have left one marked running)."""

    def __init__(self, port: int, client_id: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ib = IB()
        self.errors: list[tuple[int, int]] = []
        self.ib.errorEvent += lambda req, code, msg, contract: self.errors.append((req, code))
        self.port, self.client_id = port, client_id

    def run(self, make: Callable[[], Any], timeout_s: float = 20.0) -> Any:
        """Call `make()` on the loop thread and await what it returns, if anything."""

        async def call() -> Any:
            result = make()
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout_s)

    def connect(self, timeout: float = 5) -> Client:
        self.run(
            lambda: self.ib.connectAsync(
                "127.0.0.1", self.port, clientId=self.client_id, timeout=timeout
            )
        )
        return self

    def barrier(self) -> None:
        """A round trip: every message TWS sent this client before it has been handled."""
        self.run(self.ib.reqCurrentTimeAsync)

    def close(self) -> None:
        self.run(self.ib.disconnect)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


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
        placer.run(lambda: placer.ib.placeOrder(AAPL, MarketOrder("BUY", 5)))
        wait_for(lambda: placer.ib.fills() and master.ib.fills(), "the fill at placer and master")
        bystander.barrier()  # TWS wrote the fill to every recipient before the placer saw it
        assert len(placer.ib.fills()) == 1
        assert len(master.ib.fills()) == 1 and master.ib.fills()[0].execution.clientId == 11
        assert bystander.ib.fills() == [] and bystander.ib.trades() == []
        assert len(bystander.run(bystander.ib.reqExecutionsAsync)) == 0
        assert len(master.run(master.ib.reqExecutionsAsync)) == 1
    finally:
        for client in (placer, bystander, master):
            client.close()


def test_open_all_open_and_completed_orders_have_real_content(master_tws: TwsServer) -> None:
    placer = Client(master_tws.port, 11).connect()
    other = Client(master_tws.port, 12).connect()
    try:
        resting = LimitOrder("BUY", 3, 90.0, orderRef="rest-1", tif="GTC")
        placer.run(lambda: placer.ib.placeOrder(AAPL, resting))
        placer.run(lambda: placer.ib.placeOrder(AAPL, MarketOrder("BUY", 2, orderRef="done-1")))
        wait_for(lambda: placer.ib.fills(), "the market order filled")
        assert other.run(other.ib.reqOpenOrdersAsync) == []
        everyone = other.run(other.ib.reqAllOpenOrdersAsync)
        assert [(t.order.orderRef, t.order.clientId, t.order.tif) for t in everyone] == [
            ("rest-1", 11, "GTC")
        ]
        done = other.run(lambda: other.ib.reqCompletedOrdersAsync(False))
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
        rejected = client.run(lambda: client.ib.placeOrder(AAPL, LimitOrder("BUY", 1, 99.0)))
        tws.hard_to_borrow.add("GME")
        held = client.ib.placeOrder(
            Stock("GME", "SMART", "USD", conId=36285627), MarketOrder("SELL", 1)
        )
        off_tick = client.run(lambda: client.ib.placeOrder(AAPL, LimitOrder("BUY", 1, 99.001)))
        client.barrier()
        assert (rejected.order.orderId, 201) in client.errors
        assert (held.order.orderId, 404) in client.errors
        assert (off_tick.order.orderId, 110) in client.errors
        # TWS sent no status for the rejected order; the held one stays PreSubmitted at TWS.
        assert tws.status_history(rejected.order.orderRef) == []
        assert tws.find(held.order.orderId, 7).status == "PreSubmitted"
        client.run(lambda: client.ib.cancelOrder(LimitOrder("BUY", 1, 1.0, orderId=4242)))
        client.barrier()
        assert (4242, 10147) in client.errors
    finally:
        client.close()


def test_a_client_id_in_use_is_refused_with_326(tws: TwsServer) -> None:
    first = Client(tws.port, 7).connect()
    second = Client(tws.port, 7)
    try:
        with pytest.raises((TimeoutError, ConnectionError)):
            second.connect(timeout=2)
        assert (-1, 326) in second.errors
        assert tws.connected_client_ids() == [7]
    finally:
        first.close()
        second.close()


def test_connections_are_refused_while_tws_is_down(tws: TwsServer) -> None:
    client = Client(tws.port, 7).connect()
    try:
        tws.down_for(1.0)
        wait_for(lambda: not client.ib.isConnected(), "the drop")
        with pytest.raises(ConnectionRefusedError):
            client.connect(timeout=2)
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
