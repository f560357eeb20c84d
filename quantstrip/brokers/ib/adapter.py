"""Interactive Brokers over ib_async (TWS or IB Gateway socket API).

ib_async is asyncio-based; strategies call synchronous methods from scheduler jobs. The adapter
therefore runs ib_async on its own event loop in a background thread and every public method
hands its work to that loop and waits for the answer. ib_async's events (order status, fills,
commission reports, errors) are translated there into canonical events.

What IB does that the adapter compensates for (see DESIGN.md):
- execution times are parsed with `TimezoneTWS` set, so they are UTC whatever the host's zone;
- commission reports arrive after their fills: the database links them in either order;
- after a reconnect, fills made during the gap come back only through reqExecutions, which does
  not fire execDetailsEvent: they are emitted explicitly (the database stores each exec id once);
- reqHistoricalData answers an empty list on error: the error is captured and raised;
- historical requests are paced (no identical request within 15 s, at most 60 per 10 minutes).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ib_async import IB, Fill, Order, Trade

from quantstrip import clock
from quantstrip.brokers.base import Broker
from quantstrip.brokers.events import (
    AccountValueEvent,
    Bar,
    BracketRequest,
    BrokerPosition,
    CommissionEvent,
    ErrorEvent,
    ExecutionEvent,
    InstrumentSpec,
    OrderPlacedEvent,
    OrderRequest,
    OrderStatusEvent,
    decimal,
)
from quantstrip.brokers.ib.mapping import (
    BROKER,
    UNSET,
    IbError,
    contract_for,
    order_for,
    spec_for,
)
from quantstrip.brokers.ib.pacing import HistoricalPacer
from quantstrip.brokers.ib_ids import split_exec_id

log = logging.getLogger(__name__)

INFORMATIONAL = {2104, 2106, 2107, 2108, 2158, 2119, 1102, 399}
HISTORICAL_ERRORS = {162, 165, 166, 200, 321, 322, 354, 366, 420}


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
        master: bool = False,
    ) -> None:
        """`master=True` connects as TWS's master API client id (settings
        `brokers.ib.master_client_id`), which receives every API client's fills and commissions:
        one recorder then captures the fills of all strategies, whichever client placed them."""
        super().__init__()
        from quantstrip import settings

        ib_settings = settings.platform().brokers.ib
        self.host = host or ib_settings.host
        self.port = port or ib_settings.port
        self.client_id = ib_settings.client_id if client_id is None else client_id
        if master:
            if ib_settings.master_client_id is None:
                raise IbError("brokers.ib.master_client_id is not set (TWS: API > Settings)")
            self.client_id = ib_settings.master_client_id
        self.account = account or ib_settings.account
        self.timeout_s = timeout_s or ib_settings.timeout_s
        self.reconnect_attempts = (
            ib_settings.reconnect_attempts if reconnect_attempts is None else reconnect_attempts
        )
        self.reconnect_backoff_s = reconnect_backoff_s
        self.ib = IB()
        self.ib.TimezoneTWS = tws_timezone or ib_settings.tws_timezone
        self.pacer = HistoricalPacer()
        self.trades: dict[str, Trade] = {}
        self.requests: dict[str, OrderRequest] = {}
        self.errors: list[ErrorEvent] = []
        self.reconnects = 0
        self._closing = False
        self._reconnecting = False
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ib_async", daemon=True)
        self._thread.start()
        self.ib.orderStatusEvent += self._on_status
        self.ib.execDetailsEvent += self._on_execution
        self.ib.commissionReportEvent += self._on_commission
        self.ib.errorEvent += self._on_error
        self.ib.disconnectedEvent += self._on_disconnected
        self._wrap_commission_reports()

    # ---- plumbing -------------------------------------------------------------------------
    def _run(self, coroutine: Coroutine[Any, Any, Any], timeout_s: float | None = None) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout_s or self.timeout_s * 3)

    def _call(self, fn: Any, *args: Any) -> Any:
        """Run a synchronous ib_async call on the loop thread (it is not thread-safe)."""

        async def call() -> Any:
            return fn(*args)

        return self._run(call())

    # ---- lifecycle --------------------------------------------------------------------------
    def connect(self) -> None:
        self._closing = False
        try:
            self._run(
                self.ib.connectAsync(
                    self.host, self.port, clientId=self.client_id, timeout=self.timeout_s
                )
            )
        except Exception as exc:
            raise IbError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        if not self.account:
            accounts = self.ib.managedAccounts()
            self.account = accounts[0] if accounts else ""
        self.catch_up()

    def disconnect(self) -> None:
        self._closing = True
        if self.ib.isConnected():
            self._call(self.ib.disconnect)

    def close(self) -> None:
        self.disconnect()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def is_connected(self) -> bool:
        return self.ib.isConnected()

    def _on_disconnected(self) -> None:
        if self._closing or self._reconnecting:
            return
        self._reconnecting = True
        self.loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Reconnect with exponential backoff, then fetch the fills missed in the gap."""
        delay = self.reconnect_backoff_s
        try:
            for attempt in range(1, self.reconnect_attempts + 1):
                await asyncio.sleep(delay)
                try:
                    await self.ib.connectAsync(
                        self.host, self.port, clientId=self.client_id, timeout=self.timeout_s
                    )
                except Exception as exc:
                    log.warning(
                        "IB reconnect %d/%d failed: %s", attempt, self.reconnect_attempts, exc
                    )
                    delay = min(delay * 2, 60.0)
                    continue
                self.reconnects += 1
                await self._catch_up()
                log.info("IB reconnected after %d attempt(s)", attempt)
                return
            self.emit(ErrorEvent(BROKER, 1100, "connection to TWS lost; reconnecting gave up"))
        finally:
            self._reconnecting = False

    def catch_up(self) -> int:
        """Emit every fill TWS reports for today (reqExecutions); duplicates are harmless."""
        return self._run(self._catch_up())

    async def _catch_up(self) -> int:
        fills = await self.ib.reqExecutionsAsync()
        for fill in fills:
            self.emit(self._execution_event(fill))
            report = fill.commissionReport
            if report and report.execId:
                self._emit_commission(report)
        return len(fills)

    # ---- events -----------------------------------------------------------------------------
    def _on_status(self, trade: Trade) -> None:
        status = trade.orderStatus
        self.emit(
            OrderStatusEvent(
                BROKER,
                status.status,
                decimal(status.filled or 0, "filled"),
                decimal(status.remaining or 0, "remaining"),
                decimal(status.avgFillPrice, "avgFillPrice") if status.avgFillPrice else None,
                client_order_id=trade.order.orderRef or None,
                broker_order_id=str(trade.order.orderId),
                broker_client_id=str(trade.order.clientId),
                perm_id=str(trade.order.permId) if trade.order.permId else None,
            )
        )

    def _execution_event(self, fill: Fill) -> ExecutionEvent:
        execution = fill.execution
        known = self.requests.get(execution.orderRef or "")
        moment = execution.time
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        group, version = split_exec_id(execution.execId)
        return ExecutionEvent(
            broker=BROKER,
            account=execution.acctNumber or self.account,
            exec_id=execution.execId,
            base_exec_id=group,
            correction_number=version,
            instrument=spec_for(fill.contract),
            side="BUY" if execution.side in ("BOT", "BUY") else "SELL",
            qty=decimal(execution.shares, "shares"),
            price=decimal(execution.price, "price"),
            time=moment.astimezone(UTC),
            client_order_id=execution.orderRef or None,
            strategy=known.strategy if known else None,
            broker_order_id=str(execution.orderId),
            broker_client_id=str(execution.clientId),
            perm_id=str(execution.permId) if execution.permId else None,
            liquidity={1: "ADDED", 2: "REMOVED"}.get(execution.lastLiquidity, ""),
            exchange=execution.exchange,
        )

    def _on_execution(self, trade: Trade, fill: Fill) -> None:
        self.emit(self._execution_event(fill))

    def _emit_commission(self, report: Any) -> None:
        pnl = report.realizedPNL
        self.emit(
            CommissionEvent(
                BROKER,
                report.execId,
                decimal(report.commission, "commission"),
                report.currency or "USD",
                None if pnl is None or abs(pnl) >= UNSET / 2 else decimal(pnl, "realizedPNL"),
            )
        )

    def _wrap_commission_reports(self) -> None:
        """ib_async drops a commission report that arrives before its fill, or whose fill was
        made before this connection: those are emitted here (the database links them later)."""
        wrapper = self.ib.wrapper
        original = wrapper.commissionReport

        def commission_report(report: Any) -> None:
            fill = wrapper.fills.get(report.execId)
            trade = wrapper.permId2Trade.get(fill.execution.permId) if fill else None
            original(report)
            if trade is None:
                self._emit_commission(report)

        wrapper.commissionReport = commission_report  # type: ignore[method-assign]

    def _on_commission(self, trade: Trade, fill: Fill, report: Any) -> None:
        self._emit_commission(report)

    def _on_error(self, request_id: int, code: int, message: str, contract: Any) -> None:
        if code in INFORMATIONAL:
            return
        event = ErrorEvent(BROKER, code, message)
        self.errors.append(event)
        self.errors[:] = self.errors[-200:]
        self.emit(event)

    # ---- orders -----------------------------------------------------------------------------
    def _place(self, request: OrderRequest, order: Order) -> Trade:
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
            return self.ib.placeOrder(contract_for(request.instrument), order)

        trade: Trade = self._run(place())
        self.trades[request.client_order_id] = trade
        return trade

    def submit(self, request: OrderRequest) -> str:
        self._place(request, order_for(request, self.account))
        return request.client_order_id

    def submit_bracket(self, bracket: BracketRequest) -> tuple[str, str, str]:
        """Parent and take profit are held (transmit=False) until the stop loss transmits all."""
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
        self._call(self.ib.cancelOrder, self._trade(client_order_id).order)

    def modify(
        self,
        client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None:
        trade = self._trade(client_order_id)
        order = trade.order
        if qty is not None:
            order.totalQuantity = float(qty)
        if limit_price is not None:
            order.lmtPrice = float(limit_price)
        if stop_price is not None:
            order.auxPrice = float(stop_price)
        self._call(self.ib.placeOrder, trade.contract, order)

    def open_orders(self) -> Sequence[OrderRequest]:
        open_refs = {t.order.orderRef for t in self._call(self.ib.openTrades)}
        return [r for ref, r in self.requests.items() if ref in open_refs]

    # ---- account and data -----------------------------------------------------------------------
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

    def account_values(self) -> dict[str, Decimal]:
        values = {}
        for item in self._call(self.ib.accountValues):
            if item.tag in ("NetLiquidation", "TotalCashValue") and item.currency in (
                "USD",
                "BASE",
            ):
                values[item.tag] = decimal(item.value, item.tag)
        return values

    def snapshot(self) -> AccountValueEvent:
        values = self.account_values()
        event = AccountValueEvent(
            BROKER, self.account, values.get("NetLiquidation"), values.get("TotalCashValue")
        )
        self.emit(event)
        return event

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
        key = (instrument, bar_size, duration, what_to_show, use_rth, end)
        wait = self.pacer.wait_time(key, clock.monotonic())
        if wait > 0:
            log.info("IB historical-data pacing: waiting %.1fs", wait)
            time.sleep(wait)
        self.pacer.record(key, clock.monotonic())
        seen = len(self.errors)
        bars = self._run(
            self.ib.reqHistoricalDataAsync(
                contract_for(instrument),
                end or "",
                duration,
                bar_size,
                what_to_show,
                use_rth,
                formatDate=2,
                timeout=self.timeout_s,
            )
        )
        if not bars:
            for error in self.errors[seen:]:
                if error.code in HISTORICAL_ERRORS:
                    raise IbError(error.message, error.code)
            raise IbError(f"no historical data for {instrument.symbol} ({bar_size}, {duration})")
        out = []
        for bar in bars:
            moment = (
                bar.date
                if isinstance(bar.date, datetime)
                else datetime.combine(bar.date, datetime.min.time())
            )
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
            if start and moment < start:
                continue
            out.append(Bar(moment, bar.open, bar.high, bar.low, bar.close, max(bar.volume, 0)))
        return out
