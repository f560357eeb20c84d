"""IbBroker: Interactive Brokers through ib_async (TWS or IB Gateway socket API).

ib_async is asyncio-based; strategies call synchronous methods from scheduler jobs. The adapter
runs ib_async on its own event loop in a background thread; every public method hands its work
to that loop and waits. What TWS sends becomes canonical events at the wire (`wire.py`); the
connection's life is `connection.py`; orders are reconciled with TWS on every connect,
reconnect and restored link, and periodically (`reconcile.py`).

What IB does that the adapter compensates for (see DESIGN.md):
- execution times are parsed with `TimezoneTWS` set, so they are UTC whatever the host's zone;
- commission reports arrive after their fills (or before): the database links them either way;
- fills made during a disconnect come back through reqExecutions, which fires no ib_async
  event: every execDetails is translated, live or replayed (stored once by exec id);
- reqHistoricalData answers an empty list on error: errors are raised, matched to the request
  by its id (ib_async's RaiseRequestErrors), never guessed from a list of recent errors;
- historical requests are paced (no identical request within 15 s, at most 60 per 10 minutes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from ib_async import IB, RequestError, Trade

from quantstrip.brokers.base import Broker
from quantstrip.brokers.events import (
    TERMINAL_STATUSES,
    AccountValueEvent,
    Bar,
    BracketRequest,
    BrokerPosition,
    InstrumentSpec,
    OrderPlacedEvent,
    OrderRequest,
    OrderStatusEvent,
    decimal,
)
from quantstrip.brokers.ib import reconcile, wire
from quantstrip.brokers.ib.connection import Connection, Endpoint, LinkState, reconnect_wait
from quantstrip.brokers.ib.mapping import (
    BROKER,
    IbError,
    base_currency_values,
    contract_for,
    ib_time,
    order_for,
    spec_for,
)
from quantstrip.brokers.ib.pacing import HistoricalPacer, require_aware, to_bars

log = logging.getLogger(__name__)


def _mail_alert(subject: str, body: str) -> None:
    from quantstrip import email_manager

    email_manager.send(subject, body, client=os.environ.get("QUANTSTRIP_CLIENT"), kind="alert")


class IbBroker(Broker):
    name = BROKER

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        client_id: int | None = None,
        account: str | None = None,
        timeout_s: float | None = None,
        tws_timezone: str | None = None,
        reconnect_attempts: int | None = None,
        reconnect_backoff_s: float = 1.0,
        reconnect_max_s: float | None = None,
        master: bool = False,
        readonly: bool | None = None,
        reconcile_interval_s: float | None = None,
        down_alert_after_s: float | None = None,
        alert: Any = _mail_alert,
    ) -> None:
        """Everything not given comes from settings `[brokers.ib]`. The client id is this
        client's entry in `client_ids`, else `client_id`; `master=True` connects as TWS's master
        API client id (`master_client_id`), which hears every client's orders and fills, so
        one recorder captures all of them. `readonly` refuses order entry in the adapter.
        `reconnect_attempts` is accepted for old callers: reconnecting never gives up."""
        super().__init__()
        from quantstrip import settings

        config = settings.platform().brokers.ib
        if client_id is None:
            client_id = config.client_ids.get(os.environ.get("QUANTSTRIP_CLIENT", ""))
        if master:
            if config.master_client_id is None:
                raise IbError("brokers.ib.master_client_id is not set (TWS: API > Settings)")
            client_id = config.master_client_id
        self.account = account or config.account
        self.timeout_s = timeout_s or config.timeout_s
        self.readonly = config.readonly if readonly is None else readonly
        self.reconcile_interval_s = (
            config.reconcile_interval_s if reconcile_interval_s is None else reconcile_interval_s
        )
        self.ib = IB()
        self.ib.TimezoneTWS = tws_timezone or config.tws_timezone
        self.ib.RaiseRequestErrors = True
        self.pacer = HistoricalPacer()
        self.trades: dict[str, Trade] = {}
        self.requests: dict[str, OrderRequest] = {}
        self.last_status: dict[str, OrderStatusEvent] = {}
        self.completion_texts: dict[int, str] = {}
        self.reconciler = reconcile.Reconciler(self)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ib_async", daemon=True)
        self._thread.start()
        self.connection = Connection(
            self.ib,
            Endpoint(
                host or config.host,
                port or config.port,
                config.client_id if client_id is None else client_id,
                self.timeout_s,
                readonly=self.readonly,
            ),
            on_ready=self._synchronise,
            wait=reconnect_wait(reconnect_backoff_s, reconnect_max_s or config.reconnect_max_s),
            down_alert_after_s=(
                config.down_alert_minutes * 60 if down_alert_after_s is None else down_alert_after_s
            ),
            alert=alert,
        )
        self._periodic: asyncio.Task[Any] | None = None
        wire.install(self)

    # ---- plumbing -------------------------------------------------------------------------
    def _run(self, coroutine: Coroutine[Any, Any, Any], timeout_s: float | None = None) -> Any:
        """Run a coroutine on the adapter's loop and wait for it (ib_async calls that return a
        future must be made inside such a coroutine: the future belongs to the calling loop)."""
        if not self._thread.is_alive():  # closed: nothing would ever run it
            coroutine.close()
            raise IbError("the IB adapter is closed (close() was called); make a new IbBroker")
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout_s or self.timeout_s * 3)

    def _call(self, fn: Any, *args: Any) -> Any:
        """Run a synchronous ib_async call on the loop thread (it is not thread-safe)."""

        async def call() -> Any:
            return fn(*args)

        return self._run(call())

    # ---- lifecycle --------------------------------------------------------------------------
    @property
    def client_id(self) -> int:
        return self.connection.client_id

    @property
    def state(self) -> LinkState:
        return self.connection.state

    @property
    def reconnects(self) -> int:
        return self.connection.reconnects

    def connect(self) -> None:
        """Connect (the next client id if TWS says this one is in use), then reconcile."""
        self._run(self.connection.open(), timeout_s=self.timeout_s * 12)
        if not self.account:
            accounts = self.ib.managedAccounts()
            self.account = accounts[0] if accounts else ""
        self._run(self._synchronise(False), timeout_s=self.timeout_s * 6)

        async def start_periodic() -> None:
            if self.reconcile_interval_s and self._periodic is None:
                self._periodic = asyncio.ensure_future(
                    self.reconciler.periodically(self.reconcile_interval_s)
                )

        self._run(start_periodic())

    def disconnect(self) -> None:
        async def stop() -> None:
            if self._periodic is not None:
                self._periodic.cancel()
                self._periodic = None
            await self.connection.close()

        self._run(stop())

    def close(self) -> None:
        """Disconnect for good and stop the event loop thread (closing twice is harmless)."""
        if not self._thread.is_alive():
            return
        self.disconnect()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def is_connected(self) -> bool:
        return self.ib.isConnected()

    # ---- reconciliation ------------------------------------------------------------------------
    async def _synchronise(self, resubscribe: bool) -> None:
        """After a (re)connect or a restored link: subscriptions again if TWS lost them, then
        orders and fills reconciled."""
        if resubscribe:
            await self.ib.reqPositionsAsync()
            accounts = self.ib.managedAccounts()
            if len(accounts) == 1:
                await self.ib.reqAccountUpdatesAsync(accounts[0])
            for account in accounts:
                await self.ib.reqAccountUpdatesMultiAsync(account)
            await self.ib.reqExecutionsAsync()
        await self.reconciler.run()

    def reconcile(self) -> reconcile.Reconciliation:
        """Reconcile now (also done on every connect and periodically)."""
        return self._run(self.reconciler.run())

    def catch_up(self) -> int:
        """Ask TWS for today's fills again (each is recorded once); how many TWS reported."""

        async def fetch() -> list[Any]:  # ib_async makes its future on the calling loop
            return await self.ib.reqExecutionsAsync()

        return len(self._run(fetch()))

    # ---- orders -----------------------------------------------------------------------------
    def _check_can_trade(self) -> None:
        if self.readonly:
            raise IbError("the IB adapter is read-only (settings brokers.ib.readonly)")
        if self.state != LinkState.CONNECTED:
            raise IbError(f"cannot send orders: {self.connection.down_reason or self.state.value}")

    def _place(self, request: OrderRequest, order: Any) -> Trade:
        """Record the order before it can fill: a market order's fill may come back at once."""

        async def place() -> Trade:
            if not order.orderId:
                order.orderId = self.ib.client.getReqId()
            self.requests[request.client_order_id] = request
            self.emit(
                OrderPlacedEvent(
                    BROKER,
                    self.account,
                    request,
                    broker_order_id=str(order.orderId),
                    broker_client_id=str(self.client_id),
                )
            )
            trade = self.ib.placeOrder(contract_for(request.instrument), order)
            self.trades[request.client_order_id] = trade
            return trade

        return self._run(place())

    def submit(self, request: OrderRequest) -> str:
        self._check_can_trade()
        self._place(request, order_for(request, self.account))
        return request.client_order_id

    def submit_bracket(self, bracket: BracketRequest) -> tuple[str, str, str]:
        """Parent and take profit are held (transmit=False) until the stop loss transmits all."""
        self._check_can_trade()
        parent, take, stop = bracket.legs()
        parent_order = order_for(parent, self.account)
        parent_order.orderId = self._call(self.ib.client.getReqId)
        take_order_id, stop_order_id = (self._call(self.ib.client.getReqId) for _ in range(2))
        parent_order.transmit = False
        take_order, stop_order = order_for(take, self.account), order_for(stop, self.account)
        take_order.orderId, stop_order.orderId = take_order_id, stop_order_id
        for child, transmit in ((take_order, False), (stop_order, True)):
            child.parentId = parent_order.orderId
            child.transmit = transmit
        self._place(parent, parent_order)
        self._place(take, take_order)
        self._place(stop, stop_order)
        return parent.client_order_id, take.client_order_id, stop.client_order_id

    def _trade(self, client_order_id: str) -> Trade:
        if client_order_id not in self.trades:
            raise IbError(f"unknown order {client_order_id}")
        return self.trades[client_order_id]

    def cancel(self, client_order_id: str) -> None:
        self._check_can_trade()
        trade = self._trade(client_order_id)
        self._call(self.ib.cancelOrder, trade.order)

    def modify(
        self,
        client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None:
        """Send new terms; they are recorded when TWS acknowledges them (a refused modify
        leaves the live order as it was, with TWS's reason recorded on it)."""
        self._check_can_trade()
        trade = self._trade(client_order_id)
        order = replace(trade.order)  # ib_async keeps the live terms until TWS confirms
        if qty is not None:
            order.totalQuantity = float(decimal(qty, "qty"))
        if limit_price is not None:
            order.lmtPrice = float(decimal(limit_price, "limit_price"))
        if stop_price is not None:
            order.auxPrice = float(decimal(stop_price, "stop_price"))
        self._call(self.ib.placeOrder, trade.contract, order)

    def open_orders(self) -> Sequence[OrderRequest]:
        """Orders this client placed (or adopted after a restart) that TWS has not finished."""
        return [
            request
            for ref, request in self.requests.items()
            if ref in self.trades
            and (
                self.last_status.get(ref) is None
                or self.last_status[ref].status not in TERMINAL_STATUSES
            )
        ]

    # ---- account and data -----------------------------------------------------------------------
    def accounts(self) -> list[str]:
        return list(self.ib.managedAccounts())

    def positions(self) -> Sequence[BrokerPosition]:
        return [
            BrokerPosition(
                p.account,
                spec_for(p.contract),
                decimal(p.position, "position"),
                decimal(p.avgCost, "avgCost"),
            )
            for p in self._call(self.ib.positions)
        ]

    def _values(self, account: str | None) -> tuple[str, dict[str, Decimal]]:
        account = account or self.account
        return base_currency_values(self._call(self.ib.accountValues, account), account)

    def account_values(self, account: str | None = None) -> dict[str, Decimal]:
        """'NetLiquidation' and 'TotalCashValue' of the account (default: the adapter's) in its
        base currency, whatever that is."""
        return self._values(account)[1]

    def snapshot(self, account: str | None = None) -> AccountValueEvent:
        currency, values = self._values(account)
        event = AccountValueEvent(
            BROKER,
            account or self.account,
            values.get("NetLiquidation"),
            values.get("TotalCashValue"),
            currency,
        )
        self.emit(event)
        return event

    def snapshot_all(self) -> list[AccountValueEvent]:
        """A snapshot of every account this login manages."""
        return [self.snapshot(account) for account in self.accounts()]

    def historical_bars(
        self,
        instrument: InstrumentSpec,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        bar_size: str = "1 day",
        duration: str = "1 M",
        what_to_show: str = "TRADES",
        use_rth: bool = True,
    ) -> list[Bar]:
        """Bars ending at `end` (default: now) over `duration`, those before `start` dropped.
        Times must be timezone-aware (a naive one is refused: TWS would read it in its own
        zone); an error TWS sends for this request is raised with its code."""
        require_aware(start=start, end=end)
        self.pacer.wait((instrument, bar_size, duration, what_to_show, use_rth, end))
        try:
            bars = self._run(
                self.ib.reqHistoricalDataAsync(
                    contract_for(instrument),
                    ib_time(end) if end else "",
                    duration,
                    bar_size,
                    what_to_show,
                    use_rth,
                    formatDate=2,
                    timeout=self.timeout_s,
                )
            )
        except RequestError as exc:
            raise IbError(exc.message, exc.code) from exc
        if not bars:
            raise IbError(f"no historical data for {instrument.symbol} ({bar_size}, {duration})")
        return to_bars(bars, start)
