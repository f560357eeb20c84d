"""What TWS does with orders, for the test server: activation, fills, OCA groups and brackets.

`Market` holds the orders (keyed by perm id, as TWS does: order ids repeat across client ids
and manual TWS orders have none), executions and positions. It never writes to a socket: it
calls `publish(order, *messages)` and `reply(client_id, message)`, which the server routes
(TWS sends an order's messages to the client that placed it and to the master client id only).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from support import tws_protocol as p


@dataclass
class Account:
    """An account's values as TWS reports them: a base currency and cash per currency."""

    code: str
    base: str = "USD"
    net_liquidation: str = "100000.00"
    cash: dict[str, str] = field(default_factory=lambda: {"USD": "95000.00"})
    rates: dict[str, str] = field(default_factory=dict)  # currency -> value of 1 in base

    def values(self) -> list[tuple[str, str, str]]:
        """(tag, value, currency) as reqAccountUpdates sends them."""
        total = sum(
            float(v) * float(self.rates.get(c, "1") if c != self.base else 1)
            for c, v in self.cash.items()
        )
        rows = [("AccountCode", self.code, ""), ("Currency", self.base, self.base)]
        rows += [("NetLiquidation", self.net_liquidation, self.base)]
        rows += [("TotalCashValue", f"{total:.2f}", self.base)]
        for currency, amount in self.cash.items():
            rows += [("CashBalance", amount, currency), ("TotalCashBalance", amount, currency)]
            rate = "1.00" if currency == self.base else self.rates.get(currency, "1")
            rows += [("ExchangeRate", rate, currency)]
        rows += [("CashBalance", f"{total:.2f}", "BASE"), ("ExchangeRate", "1.00", "BASE")]
        rows += [("NetLiquidationByCurrency", self.net_liquidation, "BASE")]
        return rows


@dataclass
class Scripted:
    """A canned answer to the next order a client places: an error code and its text."""

    code: int
    text: str
    status_after: str | None = None  # a status TWS sends after the error (e.g. "Inactive")


class Market:
    price: float
    commission_delay_s: float
    commission_first: bool
    liquidity: float | None
    accounts: dict[str, Account]

    def __init__(self) -> None:
        self.orders: dict[int, p.TwsOrder] = {}
        self.executions: list[p.TwsExecution] = []
        self.positions: dict[tuple[str, int], list] = {}
        self.rejections: list[Scripted] = []
        self.warnings: list[Scripted] = []
        self.not_allowed: set[str] = set()  # symbols answered with 203
        self.hard_to_borrow: set[str] = set()  # short sales held with 404
        self._perm = itertools.count(900000001)
        self._exec_seq = itertools.count(1)

    # ---- routing, provided by the server -----------------------------------------------
    async def publish(self, order: p.TwsOrder, *messages: bytes) -> None:
        raise NotImplementedError

    async def reply(self, client_id: int, message: bytes) -> None:
        raise NotImplementedError

    async def publish_position(self, account: str, con_id: int) -> None:
        raise NotImplementedError

    # ---- lookups ---------------------------------------------------------------------------
    def find(self, order_id: int, client_id: int | None = None) -> p.TwsOrder:
        for order in self.orders.values():
            if order.order_id == order_id and client_id in (None, order.client_id):
                return order
        raise KeyError(f"no order {order_id} for client {client_id}")

    def own(self, client_id: int, order_id: int) -> p.TwsOrder | None:
        return next(
            (
                o
                for o in self.orders.values()
                if o.client_id == client_id and o.order_id == order_id and order_id > 0
            ),
            None,
        )

    def next_valid_id(self, client_id: int) -> int:
        ids = [o.order_id for o in self.orders.values() if o.client_id == client_id]
        return max(ids, default=0) + 1

    def default_account(self) -> str:
        return next(iter(self.accounts))

    # ---- status changes --------------------------------------------------------------------
    async def set_status(self, order: p.TwsOrder, status: str, last: float = 0.0) -> None:
        order.status = status
        order.history.append(status)
        if status in ("Filled", "Cancelled", "Inactive", "ApiCancelled"):
            order.completed_time = time.strftime("%Y%m%d %H:%M:%S", time.gmtime()) + " UTC"
            order.completed_status = order.completed_status or (
                f"Filled Size: {order.filled:g}" if status == "Filled" else "Cancelled by Trader"
            )
        await self.publish(order, p.open_order(order), p.order_status(order, last))

    async def place(self, fields: list[str], client_id: int, read_only: bool) -> None:
        order_id = int(fields[1])
        existing = self.own(client_id, order_id)
        if read_only:
            await self.reply(client_id, p.error(order_id, 321))
            return
        if existing is not None:
            await self._modify(existing, fields)
            return
        order = p.TwsOrder.from_place_order(
            fields, client_id, next(self._perm), self.default_account()
        )
        problem = self._refusal(order)
        if problem is not None:
            order.status, order.completed_status = "Cancelled", problem.text
            self.orders[order.perm_id] = order
            await self.reply(client_id, p.error(order_id, problem.code, problem.text))
            if problem.status_after:
                await self.set_status(order, problem.status_after)
            return
        self.orders[order.perm_id] = order
        if order.transmit:
            await self._transmit(order)

    def _refusal(self, order: p.TwsOrder) -> Scripted | None:
        if self.rejections:
            return self.rejections.pop(0)
        if order.contract[1] in self.not_allowed:
            return Scripted(203, f"The security {order.contract[1]} is not available or allowed")
        for price in (order.limit_price, order.aux_price if order.order_type != "TRAIL" else ""):
            if price and round(float(price), 2) != float(price):
                return Scripted(110, p.MESSAGES[110])
        return None

    async def _modify(self, order: p.TwsOrder, fields: list[str]) -> None:
        if not order.is_open:
            await self.reply(
                order.client_id,
                p.error(order.order_id, 104, f"Cannot modify a {order.status.lower()} order."),
            )
            return
        change = order.modification(fields)
        for name in ("limit_price", "aux_price"):
            price = str(change[name])
            if price and round(float(price), 2) != float(price):
                await self.reply(order.client_id, p.error(order.order_id, 110))
                return  # TWS leaves the live order as it was
        for name, value in change.items():
            setattr(order, name, value)
        await self.set_status(order, order.status)
        await self._cross(order)

    async def _transmit(self, order: p.TwsOrder) -> None:
        """Activate an order, with the held parent and siblings a transmitting child releases."""
        group = [order]
        if order.parent_id:
            group = [
                o
                for o in self.orders.values()
                if o.client_id == order.client_id
                and (o.order_id == order.parent_id or o.parent_id == order.parent_id)
            ]
        for member in sorted(group, key=lambda o: o.order_id):
            if member.status != "PendingSubmit":
                continue
            short = member.action == "SELL" and member.contract[1] in self.hard_to_borrow
            await self.set_status(
                member, "PreSubmitted" if member.parent_id or short else "Submitted"
            )
            if short:
                await self.reply(member.client_id, p.error(member.order_id, 404))
            elif self.warnings:
                warning = self.warnings.pop(0)
                await self.reply(
                    member.client_id, p.error(member.order_id, warning.code, warning.text)
                )
        for member in sorted(group, key=lambda o: o.order_id):
            await self._cross(member)

    # ---- matching --------------------------------------------------------------------------
    def _crosses(self, order: p.TwsOrder, price: float) -> float | None:
        """The fill price if `price` triggers the order, else None."""
        buy = order.action == "BUY"
        limit = float(order.limit_price or 0)
        if order.order_type == "MKT":
            return price
        if order.order_type == "LMT":
            return limit if (buy and price <= limit) or (not buy and price >= limit) else None
        if order.order_type in ("STP", "STP LMT"):
            stop = float(order.aux_price or 0)
            triggered = (buy and price >= stop) or (not buy and price <= stop)
            if not triggered:
                return None
            if order.order_type == "STP":
                return price
            return limit if (buy and price <= limit) or (not buy and price >= limit) else None
        if order.order_type == "TRAIL":
            return self._trail(order, price)
        return None  # MOC/LOC wait for the closing auction

    def _trail(self, order: p.TwsOrder, price: float) -> float | None:
        buy = order.action == "BUY"
        if order.trailing_percent:
            offset = price * float(order.trailing_percent) / 100
        else:
            offset = float(order.aux_price or 0)
        candidate = price + offset if buy else price - offset
        stop = float(order.trail_stop_price) if order.trail_stop_price else candidate
        stop = min(stop, candidate) if buy else max(stop, candidate)
        order.trail_stop_price = f"{stop:.2f}"
        triggered = (buy and price >= stop) or (not buy and price <= stop)
        return price if triggered else None

    async def _cross(self, order: p.TwsOrder, max_qty: float | None = None) -> None:
        if order.status != "Submitted":
            return
        fill_price = self._crosses(order, self.price)
        immediate = order.tif in ("IOC", "FOK")
        if fill_price is None:
            if immediate:
                await self.set_status(order, "Cancelled")
            return
        available = (
            order.remaining if self.liquidity is None else min(order.remaining, self.liquidity)
        )
        if max_qty is not None:
            available = min(available, max_qty)
        if order.tif == "FOK" and available < order.remaining:
            await self.set_status(order, "Cancelled")
            return
        await self.fill_order(order, fill_price, available)
        if immediate and order.is_open:
            await self.set_status(order, "Cancelled")

    async def move(self, price: float, max_qty: float | None = None) -> None:
        self.price = price
        for order in list(self.orders.values()):
            await self._cross(order, max_qty)

    async def close_auction(self, price: float) -> None:
        """The closing auction: MOC orders fill at `price`, LOC orders if their limit allows."""
        self.price = price
        for order in list(self.orders.values()):
            if order.status != "Submitted" or order.order_type not in ("MOC", "LOC"):
                continue
            limit = float(order.limit_price or 0)
            buy = order.action == "BUY"
            if (
                order.order_type == "MOC"
                or (buy and price <= limit)
                or (not buy and price >= limit)
            ):
                await self.fill_order(order, price, order.remaining)
            else:
                await self.set_status(order, "Cancelled")

    async def fill_order(self, order: p.TwsOrder, price: float, qty: float) -> str:
        order.avg_price = (order.avg_price * order.filled + price * qty) / (order.filled + qty)
        order.filled += qty
        order.status = "Filled" if order.filled >= order.qty else "Submitted"
        order.history.append(order.status)
        if order.status == "Filled":
            order.completed_time = time.strftime("%Y%m%d %H:%M:%S", time.gmtime()) + " UTC"
            order.completed_status = f"Filled Size: {order.filled:g}"
        # Real IB ids: a unique base per fill; the last part is the correction number.
        exec_id = f"0000e0d5.{0x67000000 + next(self._exec_seq):08x}.01.01"
        stamp = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime())  # UTC, as IB sends with TZ unset
        commission = round(max(1.0, 0.005 * qty), 2)
        execution = p.execution(order, exec_id, stamp, qty, price, commission, order.contract[9])
        self.executions.append(execution)
        key = (order.account, order.con_id)
        contract, held, _ = self.positions.get(key, [order.contract, 0.0, 0.0])
        held += qty if order.action == "BUY" else -qty
        self.positions[key] = [contract, held, price if held else 0.0]
        if self.commission_first:
            await self.publish(order, execution.report())
        await self.publish(
            order, execution.details(), p.open_order(order), p.order_status(order, price)
        )
        await self.publish_position(order.account, order.con_id)
        if not self.commission_first:
            await asyncio.sleep(self.commission_delay_s)  # commission reports come later
            await self.publish(order, execution.report())
        await self._settle_group(order, qty)
        return exec_id

    async def _settle_group(self, order: p.TwsOrder, qty: float) -> None:
        """A filled parent activates its children. Bracket children reduce each other on a
        partial fill and cancel on a full one; an OCA group of type 0/1 cancels the others on
        any fill, types 2/3 reduce them."""
        for other in list(self.orders.values()):
            if other is order or not other.is_open:
                continue
            bracket = bool(order.parent_id) and other.parent_id == order.parent_id
            oca = bool(order.oca_group) and other.oca_group == order.oca_group
            if oca and not bracket and order.oca_type in (0, 1):
                await self.set_status(other, "Cancelled")
            elif bracket or oca:
                if order.status == "Filled" or other.qty - qty <= other.filled:
                    await self.set_status(other, "Cancelled")
                else:
                    other.qty -= qty
                    await self.set_status(other, other.status)
            elif (
                other.parent_id == order.order_id
                and other.client_id == order.client_id
                and order.status == "Filled"
                and other.status == "PreSubmitted"
            ):
                await self.set_status(other, "Submitted")
                await self._cross(other)
