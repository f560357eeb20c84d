"""SimBroker: the default broker, deterministic and offline.

Orders fill against the bars (or quotes) fed to it, strictly after they were submitted: a market
order takes the next bar's open, limits and stops fill when the bar crosses them (at the open
when the bar gaps through). Intrabar order is unknowable from OHLC, so when a bracket's take
profit and stop loss are both crossed by one bar, the stop is assumed to fill first
(pessimistic). It emits the same canonical events as a real broker, so the recorder stores its
fills exactly as it stores IB's.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from quantstrip import clock
from quantstrip.brokers.base import Broker
from quantstrip.brokers.events import (
    AccountValueEvent,
    Bar,
    BracketRequest,
    BrokerPosition,
    CommissionEvent,
    ExecutionEvent,
    InstrumentSpec,
    OrderPlacedEvent,
    OrderRequest,
    OrderStatusEvent,
    decimal,
)
from quantstrip.brokers.marks import MarkEvent
from quantstrip.brokers.sim_fills import bar_capacity, fill_price, position_after
from quantstrip.brokers.sim_orders import CENT, FixedTierCommission, SimOrder
from quantstrip.errors import ValidationError

__all__ = ["CENT", "FixedTierCommission", "SimBroker", "SimOrder"]


class SimBroker(Broker):
    name = "sim"

    def __init__(
        self,
        *,
        account: str = "SIM",
        seed: int = 0,
        starting_cash: Decimal | int | str = 1_000_000,
        commission: FixedTierCommission | None = None,
        slippage_bps: Decimal | int | str = 0,
        max_volume_fraction: Decimal | str | None = None,
        max_fill_qty: Decimal | int | None = None,
        session: str | None = None,
    ) -> None:
        super().__init__()
        self.account = account
        self.seed = seed
        # Part of every perm id and exec id: two SimBrokers recording into one database (two
        # simulation clients, or one client restarted) must never reuse each other's ids, or the
        # recorder takes a fill for a replay of another's and files it under the wrong order.
        # Fixed only to rebuild an identical database (the demo).
        self.session = session or uuid.uuid4().hex[:8]
        self.random = random.Random(seed)
        self.cash = decimal(starting_cash, "starting_cash")
        self.commission = commission or FixedTierCommission()
        self.slippage = decimal(slippage_bps, "slippage_bps") / Decimal(10_000)
        self.max_volume_fraction = (
            decimal(max_volume_fraction, "max_volume_fraction") if max_volume_fraction else None
        )
        self.max_fill_qty = decimal(max_fill_qty, "max_fill_qty") if max_fill_qty else None
        self.orders: dict[str, SimOrder] = {}
        self._live: dict[str, SimOrder] = {}  # working orders only: fills scan these, not history
        self.clock: datetime | None = None
        self.last_price: dict[str, Decimal] = {}
        self.bars: dict[str, list[Bar]] = {}
        self.instruments: dict[str, InstrumentSpec] = {}
        self._positions: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (qty, cost basis)
        self._seq = itertools.count(1)
        self._exec_seq = itertools.count(1)
        self.connected = False

    # ---- lifecycle -------------------------------------------------------------------------
    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    # ---- orders ------------------------------------------------------------------------------
    def submit(self, request: OrderRequest) -> str:
        return self._accept(request, active=True)

    def _accept(self, request: OrderRequest, *, active: bool) -> str:
        if request.client_order_id in self.orders:
            raise ValidationError("client_order_id", f"{request.client_order_id} already used")
        seq = next(self._seq)
        order = SimOrder(request, str(seq), seq, active=active, submitted_at=self.clock)
        order.status = "Submitted" if active else "PreSubmitted"
        self.orders[request.client_order_id] = order
        self._live[request.client_order_id] = order
        self.instruments[request.instrument.symbol] = request.instrument
        self.emit(
            OrderPlacedEvent(
                self.name,
                self.account,
                request,
                broker_order_id=str(seq),
                perm_id=f"SIM{self.session}-{seq}",
            )
        )
        self._status(order)
        return request.client_order_id

    def submit_bracket(self, bracket: BracketRequest) -> tuple[str, str, str]:
        parent, take, stop = bracket.legs()
        self.submit(parent)
        self._accept(take, active=False)
        self._accept(stop, active=False)
        self.orders[parent.client_order_id].children = [take.client_order_id, stop.client_order_id]
        return parent.client_order_id, take.client_order_id, stop.client_order_id

    def cancel(self, client_order_id: str) -> None:
        order = self._order(client_order_id)
        if not order.working:
            raise ValidationError("client_order_id", f"order is {order.status}, not cancellable")
        order.status = "Cancelled"
        self._status(order)
        for child in order.children:  # cancelling a parent cancels the bracket
            if self.orders[child].working:
                self.cancel(child)

    def modify(
        self,
        client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None:
        order = self._order(client_order_id)
        if not order.working:
            raise ValidationError("client_order_id", f"order is {order.status}, not modifiable")
        changes: dict[str, object] = {}
        if qty is not None:
            if decimal(qty, "qty") < order.filled:
                raise ValidationError("qty", "cannot be below the quantity already filled")
            changes["qty"] = qty
        if limit_price is not None:
            changes["limit_price"] = limit_price
        if stop_price is not None:
            changes["stop_price"] = stop_price
        order.request = replace(order.request, **changes)  # type: ignore[arg-type]
        self._status(order, message="modified")

    def open_orders(self) -> Sequence[OrderRequest]:
        self._prune()
        return [o.request for o in sorted(self._live.values(), key=lambda o: o.seq)]

    def _prune(self) -> None:
        for client_order_id in [k for k, o in self._live.items() if not o.working]:
            del self._live[client_order_id]

    def order_status(self, client_order_id: str) -> str:
        return self._order(client_order_id).status

    def _order(self, client_order_id: str) -> SimOrder:
        if client_order_id not in self.orders:
            raise ValidationError("client_order_id", f"unknown order {client_order_id}")
        return self.orders[client_order_id]

    # ---- market data drives fills ------------------------------------------------------------
    def on_quote(self, symbol: str, price: object, time: datetime) -> None:
        """A trade or quote: a bar with one price and unlimited volume."""
        px = decimal(price, "price")
        self.on_bar(symbol, Bar(time, px, px, px, px, Decimal(0)))

    def on_bar(self, symbol: str, bar: Bar) -> None:
        """Advance the clock to this bar and fill what it crosses, in submission order."""
        self.clock = bar.time
        self.bars.setdefault(symbol, []).append(bar)
        capacity = bar_capacity(bar, self.max_fill_qty, self.max_volume_fraction)
        self._prune()
        candidates = sorted(
            (
                o
                for o in self._live.values()
                if o.request.instrument.symbol == symbol and o.working and o.active
            ),
            key=lambda o: (o.request.order_type not in ("STP", "STP LMT"), o.seq),
        )
        for order in candidates:
            if not (order.working and order.active):
                continue  # an OCA sibling filled earlier in this bar
            price = fill_price(order, bar, self.slippage)
            if price is None:
                continue
            qty = order.remaining if capacity is None else min(order.remaining, capacity)
            if qty <= 0:
                continue
            if capacity is not None:
                capacity -= qty
            self._fill(order, qty, price, bar.time)
        self.last_price[symbol] = bar.close

    def _fill(self, order: SimOrder, qty: Decimal, price: Decimal, time: datetime) -> None:
        request = order.request
        instrument = request.instrument
        exec_id = f"SIM{self.seed:04d}-{self.session}.{next(self._exec_seq):09d}"
        order.avg_price = (order.avg_price * order.filled + price * qty) / (order.filled + qty)
        order.filled += qty
        order.status = "Filled" if order.remaining == 0 else "PartiallyFilled"
        self._apply_position(instrument, request.side, qty, price)
        fee = self.commission(qty, price, instrument.multiplier)
        self.cash -= fee
        self.emit(
            ExecutionEvent(
                broker=self.name,
                account=self.account,
                exec_id=exec_id,
                instrument=instrument,
                side=request.side,
                qty=qty,
                price=price,
                time=time,
                client_order_id=request.client_order_id,
                broker_order_id=order.broker_order_id,
                perm_id=f"SIM{self.session}-{order.seq}",
                strategy=request.strategy,
                exchange="SIM",
            )
        )
        self.emit(CommissionEvent(self.name, exec_id, fee, instrument.currency))
        self._status(order)
        for child_id in order.children:
            child = self.orders[child_id]
            if child.working and not child.active and order.status == "Filled":
                child.active = True
                child.submitted_at = time
                child.status = "Submitted"
                self._status(child)
        if request.oca_group:
            self._reduce_oca(order, qty)

    def _reduce_oca(self, filled: SimOrder, qty: Decimal) -> None:
        """OCA reduce-on-fill: a sibling shrinks by what filled; nothing left means cancelled."""
        for sibling in list(self._live.values()):
            if sibling is filled or sibling.request.oca_group != filled.request.oca_group:
                continue
            if not sibling.working:
                continue
            new_qty = sibling.request.qty - qty
            if new_qty <= sibling.filled:
                sibling.status = "Cancelled"
                self._status(sibling, message="OCA sibling filled")
            else:
                sibling.request = replace(sibling.request, qty=new_qty)
                self._status(sibling, message="OCA reduced")

    def _apply_position(
        self, spec: InstrumentSpec, side: str, qty: Decimal, price: Decimal
    ) -> None:
        signed = qty if side == "BUY" else -qty
        self.cash -= signed * price * spec.multiplier
        held = self._positions.get(spec.symbol, (Decimal(0), Decimal(0)))
        self._positions[spec.symbol] = position_after(held, signed, price, spec.multiplier)

    def _status(self, order: SimOrder, message: str = "") -> None:
        self.emit(
            OrderStatusEvent(
                broker=self.name,
                status=order.status,
                filled=order.filled,
                remaining=order.remaining if order.working else Decimal(0),
                avg_fill_price=order.avg_price or None,
                client_order_id=order.request.client_order_id,
                broker_order_id=order.broker_order_id,
                perm_id=f"SIM{self.session}-{order.seq}",
                message=message,
                time=self.clock or clock.local_now(),
            )
        )

    # ---- account and data ------------------------------------------------------------------
    def latest_price(self, instrument: InstrumentSpec) -> MarkEvent | None:
        """The close of the last bar (or the last quote) fed for the symbol."""
        series = self.bars.get(instrument.symbol)
        if not series:
            return None
        return MarkEvent(self.name, instrument, series[-1].close, series[-1].time, "sim")

    def market_time(self) -> datetime:
        return self.clock or clock.now()

    def positions(self) -> Sequence[BrokerPosition]:
        out = []
        for symbol, (qty, basis) in sorted(self._positions.items()):
            if qty == 0:
                continue
            spec = self.instruments[symbol]
            avg = basis / (abs(qty) * spec.multiplier)
            out.append(BrokerPosition(self.account, spec, qty, avg))
        return out

    def account_values(self) -> dict[str, Decimal]:
        market_value = sum(
            (
                qty * self.last_price.get(symbol, Decimal(0)) * self.instruments[symbol].multiplier
                for symbol, (qty, _) in self._positions.items()
            ),
            Decimal(0),
        )
        return {
            "TotalCashValue": self.cash.quantize(CENT),
            "NetLiquidation": (self.cash + market_value).quantize(CENT),
        }

    def snapshot(self) -> AccountValueEvent:
        """Emit (and return) the account's cash and net liquidation at the current clock."""
        values = self.account_values()
        event = AccountValueEvent(
            self.name,
            self.account,
            values["NetLiquidation"],
            values["TotalCashValue"],
            time=self.clock or clock.local_now(),
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
    ) -> list[Bar]:
        if instrument.symbol not in self.bars:
            raise ValidationError("instrument", f"no bars for {instrument.symbol}")
        return [
            b
            for b in self.bars[instrument.symbol]
            if (start is None or b.time >= start) and (end is None or b.time <= end)
        ]
