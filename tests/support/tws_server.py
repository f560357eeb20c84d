"""A TWS-protocol test server that the unmodified ib_async client drives over 127.0.0.1.

It speaks the real socket protocol (length-prefixed, NUL-separated fields) at server version
178: handshake, startApi, account values, positions, open orders, placeOrder (market orders
fill at once; limits and stops rest until `move_price`; brackets are held until the
transmitting child arrives), cancel, OCA/bracket siblings, execDetails and commissionReport,
reqExecutions replay, historical bars and a historical-data error. Tests script the awkward
cases: partial fills, commission before execution, duplicate execDetails, an IB correction,
fills while the client is disconnected, and dropping every connection.
Field layouts follow ib_async 2.1.0's decoder (the client side of the protocol).
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

SERVER_VERSION = 178
ACCOUNT = "DU1234567"
UNSET_DOUBLE = 1.7976931348623157e308


def frame(*fields: object) -> bytes:
    payload = "".join(f"{'' if f is None else f}\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


@dataclass
class TwsOrder:
    order_id: int
    client_id: int
    perm_id: int
    contract: list[str]  # the 12 contract fields as the client sent them
    action: str
    qty: float
    order_type: str
    limit_price: str
    aux_price: str
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_price: float = 0.0


@dataclass
class TwsExecution:
    fields: list[object]  # execDetails fields after the request id
    commission: list[object]


@dataclass
class TwsServer:
    price: float = 100.0
    commission_delay_s: float = 0.05
    commission_first: bool = False
    orders: dict[tuple[int, int], TwsOrder] = field(default_factory=dict)
    executions: list[TwsExecution] = field(default_factory=list)
    positions: dict[int, list[Any]] = field(default_factory=dict)
    inbound: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._perm = itertools.count(900000001)
        self._exec_seq = itertools.count(1)
        self.next_valid_id = 1
        self.writers: set[asyncio.StreamWriter] = set()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    # ---- running in its own thread, driven synchronously by tests -----------------------------
    def start(self) -> TwsServer:
        self.thread.start()
        self.server = self.run(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout_s: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def stop(self) -> None:
        async def close() -> None:
            for writer in list(self.writers):
                writer.close()
            if self.server is not None:
                self.server.close()

        self.run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def drop_all_clients(self) -> None:
        """A TWS restart or a network drop: every connection is cut."""

        async def drop() -> None:
            for writer in list(self.writers):
                writer.transport.abort()

        self.run(drop())

    def connected(self) -> bool:
        return bool(self.writers)

    # ---- scripted market events --------------------------------------------------------------
    def move_price(self, price: float, max_qty: float | None = None) -> None:
        """The market trades at `price`: resting limits/stops it crosses fill (up to max_qty)."""
        self.run(self._move(price, max_qty))

    def fill(self, order_id: int, qty: float, price: float, client_id: int | None = None) -> str:
        """Fill part of an order now (delivered later if nobody is connected); returns exec id."""
        order = self._order(order_id, client_id)
        return self.run(self._fill(order, price, qty))

    def replay_last_execution(self) -> None:
        """Send the last execDetails again, as TWS does around reconnects."""

        async def replay() -> None:
            last = self.executions[-1]
            for writer in self.writers:
                writer.write(frame(11, -1, *last.fields))

        self.run(replay())

    def correct(self, exec_id: str, price: float) -> str:
        """An IB correction: same base exec id, next suffix, new price; returns the new exec id."""
        original = next(e for e in self.executions if e.fields[12] == exec_id)
        base, _, suffix = exec_id.rpartition(".")
        new_id = f"{base}.{int(suffix, 16) + 1:02x}"
        fields = list(original.fields)
        fields[12], fields[18], fields[23] = new_id, price, price
        correction = TwsExecution(
            fields, [new_id, original.commission[1], "USD", UNSET_DOUBLE, UNSET_DOUBLE, ""]
        )
        self.executions.append(correction)

        async def send() -> None:
            for writer in self.writers:
                writer.write(frame(11, -1, *fields))
                writer.write(frame(59, 1, *correction.commission))

        self.run(send())
        return new_id

    def _order(self, order_id: int, client_id: int | None) -> TwsOrder:
        for (cid, oid), order in self.orders.items():
            if oid == order_id and (client_id is None or cid == client_id):
                return order
        raise KeyError(f"no order {order_id}")

    # ---- protocol ------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        client_id = 0
        try:
            assert await reader.readexactly(4) == b"API\0"
            size = struct.unpack(">I", await reader.readexactly(4))[0]
            versions = (await reader.readexactly(size)).decode()
            highest = int(versions[1:].split(" ")[0].split("..")[1])
            writer.write(
                frame(min(highest, SERVER_VERSION), time.strftime("%Y%m%d %H:%M:%S") + " GMT")
            )
            while True:
                size = struct.unpack(">I", await reader.readexactly(4))[0]
                fields = (await reader.readexactly(size)).decode().split("\0")[:-1]
                self.inbound.append(fields)
                if fields[0] == "71":
                    client_id = int(fields[2])
                await self._dispatch(writer, fields, client_id)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.writers.discard(writer)

    async def _dispatch(self, w: asyncio.StreamWriter, f: list[str], client_id: int) -> None:
        message = int(f[0])
        if message == 71:  # startApi
            w.write(frame(15, 1, ACCOUNT))
            w.write(frame(9, 1, self.next_valid_id))
            for code, text in (
                (2104, "Market data farm connection is OK:usfarm"),
                (2106, "HMDS data farm connection is OK:ushmds"),
            ):
                w.write(frame(4, 2, -1, code, text, ""))
        elif message == 61:  # reqPositions
            for contract, qty, avg in self.positions.values():
                w.write(frame(61, 3, ACCOUNT, *self._contract(contract, True), qty, avg))
            w.write(frame(62, 1))
        elif message == 5:  # reqOpenOrders
            for order in self.orders.values():
                if order.status in ("Submitted", "PreSubmitted"):
                    w.write(self._open_order(order))
                    w.write(self._status(order))
            w.write(frame(53, 1))
        elif message == 99:  # reqCompletedOrders
            w.write(frame(102))
        elif message == 6:  # reqAccountUpdates
            for key, value in (("NetLiquidation", "100000.00"), ("TotalCashValue", "95000.00")):
                w.write(frame(6, 2, key, value, "USD", ACCOUNT))
            w.write(frame(8, 1, time.strftime("%H:%M")))
            w.write(frame(54, 1, ACCOUNT))
        elif message == 76:  # reqAccountUpdatesMulti
            w.write(frame(73, 1, f[2], ACCOUNT, "", "NetLiquidation", "100000.00", "USD"))
            w.write(frame(74, 1, f[2]))
        elif message == 7:  # reqExecutions: replays every fill, then the commissions
            for execution in self.executions:
                w.write(frame(11, f[2], *execution.fields))
            w.write(frame(55, 1, f[2]))
            for execution in self.executions:
                w.write(frame(59, 1, *execution.commission))
        elif message == 20:
            self._historical(w, f)
        elif message == 49:
            w.write(frame(49, 1, int(time.time())))
        elif message == 8:
            w.write(frame(9, 1, self.next_valid_id))
        elif message == 3:
            await self._place(w, f, client_id)
        elif message == 4:  # cancelOrder
            order = self.orders.get((client_id, int(f[2])))
            if order and order.status not in ("Filled", "Cancelled"):
                order.status = "Cancelled"
                w.write(self._status(order))
                w.write(frame(4, 2, order.order_id, 202, "Order Canceled - reason:", ""))

    async def _place(self, w: asyncio.StreamWriter, f: list[str], client_id: int) -> None:
        order_id = int(f[1])
        order = self.orders.get((client_id, order_id))
        if order is None:
            order = TwsOrder(
                order_id,
                client_id,
                next(self._perm),
                f[2:14],
                f[16],
                float(f[17]),
                f[18],
                f[19],
                f[20],
                f[21],
                f[22],
                f[23] or ACCOUNT,
                f[26],
                f[27] == "1",
                int(f[28] or 0),
            )
            self.orders[(client_id, order_id)] = order
            self.next_valid_id = max(self.next_valid_id, order_id + 1)
        else:  # a modification
            order.qty, order.limit_price, order.aux_price = float(f[17]), f[19], f[20]
            w.write(self._status(order))
            return
        if not order.transmit:
            return  # held until the transmitting child arrives
        group = [
            o
            for o in self.orders.values()
            if o.client_id == client_id
            and order.parent_id
            and (o.order_id == order.parent_id or o.parent_id == order.parent_id)
        ] or [order]
        for member in sorted(group, key=lambda o: o.order_id):
            if member.status == "PendingSubmit":
                member.status = "PreSubmitted" if member.parent_id else "Submitted"
                w.write(self._open_order(member))
                w.write(self._status(member))
        await w.drain()
        for member in sorted(group, key=lambda o: o.order_id):
            if member.status == "Submitted" and member.order_type == "MKT":
                await self._fill(member, self.price, member.qty - member.filled)

    async def _move(self, price: float, max_qty: float | None) -> None:
        self.price = price
        for order in list(self.orders.values()):
            if order.status != "Submitted":
                continue
            limit, aux, buy = (
                float(order.limit_price or 0),
                float(order.aux_price or 0),
                order.action == "BUY",
            )
            crossed_limit = order.order_type == "LMT" and (
                (buy and price <= limit) or (not buy and price >= limit)
            )
            crossed_stop = order.order_type == "STP" and (
                (buy and price >= aux) or (not buy and price <= aux)
            )
            if crossed_limit or crossed_stop:
                qty = (
                    order.qty - order.filled
                    if max_qty is None
                    else min(max_qty, order.qty - order.filled)
                )
                await self._fill(order, limit if crossed_limit else price, qty)

    async def _fill(self, order: TwsOrder, price: float, qty: float) -> str:
        order.avg_price = (order.avg_price * order.filled + price * qty) / (order.filled + qty)
        order.filled += qty
        order.status = "Filled" if order.filled >= order.qty else "Submitted"
        side = "BOT" if order.action == "BUY" else "SLD"
        # Real IB ids: a unique base per fill, the last part is the correction number.
        exec_id = f"0000e0d5.{0x67000000 + next(self._exec_seq):08x}.01.01"
        stamp = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime())  # UTC, as IB sends with TZ unset
        fields: list[object] = [
            order.order_id,
            *self._contract(order.contract, True),
            exec_id,
            stamp,
            order.account,
            "ISLAND",
            side,
            qty,
            price,
            order.perm_id,
            order.client_id,
            0,
            order.filled,
            order.avg_price,
            order.order_ref,
            "",
            "",
            "",
            1,
            0,
        ]
        commission = [
            exec_id,
            round(max(1.0, 0.005 * qty), 2),
            "USD",
            UNSET_DOUBLE,
            UNSET_DOUBLE,
            "",
        ]
        self.executions.append(TwsExecution(fields, commission))
        con_id = int(order.contract[0] or 0)
        contract, held, _ = self.positions.get(con_id, [order.contract, 0.0, 0.0])
        held += qty if side == "BOT" else -qty
        self.positions[con_id] = [contract, held, price if held else 0.0]
        for w in list(self.writers):
            if self.commission_first:
                w.write(frame(59, 1, *commission))
            w.write(frame(11, -1, *fields))
            w.write(self._open_order(order))
            w.write(self._status(order, price))
            w.write(frame(61, 3, ACCOUNT, *self._contract(order.contract, True), held, price))
            await w.drain()
        if not self.commission_first:
            await asyncio.sleep(self.commission_delay_s)  # commission reports come later
            for w in list(self.writers):
                w.write(frame(59, 1, *commission))
                await w.drain()
        if order.status == "Filled":
            await self._settle_group(order)
        return exec_id

    async def _settle_group(self, order: TwsOrder) -> None:
        """A filled parent activates its children; a filled child cancels its siblings."""
        for other in self.orders.values():
            sibling = other is not order and (
                (order.oca_group and other.oca_group == order.oca_group)
                or (order.parent_id and other.parent_id == order.parent_id)
            )
            if sibling and other.status in ("Submitted", "PreSubmitted"):
                other.status = "Cancelled"
                for w in self.writers:
                    w.write(self._status(other))
            if other.parent_id == order.order_id and other.status == "PreSubmitted":
                other.status = "Submitted"
                for w in self.writers:
                    w.write(self._status(other))

    # ---- encoders ----------------------------------------------------------------------
    @staticmethod
    def _contract(c: list[str], with_exchange: bool) -> list[str]:
        con_id, symbol, sec_type, expiry, strike, right, mult, exch, primary, cur, local, tclass = c
        con_id = con_id if con_id not in ("", "0") else str(abs(hash(symbol)) % 10**8)
        return [
            con_id,
            symbol,
            sec_type,
            expiry,
            strike or "0",
            right,
            mult,
            exch if with_exchange else primary,
            cur,
            local or symbol,
            tclass or symbol,
        ]

    @staticmethod
    def _status(o: TwsOrder, last: float = 0.0) -> bytes:
        return frame(
            3,
            o.order_id,
            o.status,
            o.filled,
            o.qty - o.filled,
            o.avg_price,
            o.perm_id,
            o.parent_id,
            last,
            o.client_id,
            "",
            0.0,
        )

    def _open_order(self, o: TwsOrder) -> bytes:
        u = ""
        fields: list[object] = [
            5,
            o.order_id,
            *self._contract(o.contract, True),
            o.action,
            o.qty,
            o.order_type,
            o.limit_price or "0",
            o.aux_price or "0",
            o.tif or "DAY",
            o.oca_group,
            o.account,
            "",
            0,
            o.order_ref,
            o.client_id,
            o.perm_id,
            0,
            0,
            0,
            u,
            u,
            u,
            u,
            u,
            u,
            u,
            "0",
            u,
            u,
            0,
            u,
            -1,
            0,
            u,
            u,
            u,
            u,
            u,
            0,
            0,
            0,
            0,
            u,
            3 if o.oca_group else 0,
            0,
            0,
            0,
            o.parent_id,
            0,
            u,
            0,
            u,
            u,
            0,
            0,
            u,
            u,
            u,
            u,
            u,
            0,
            0,
            0,
            u,
            u,
            u,
            u,
            0,
            u,
            "IB",
            0,
            0,
            u,
            0,
            0,
            o.status,
            u,
            u,
            u,
            u,
            u,
            u,
            u,
            u,
            u,
            u,
            u,
            u,
            u,
            u,
            0,
            0,
            0,
            "None",
            u,
            u,
            u,
            u,
            u,
            u,
            0,
            u,
            u,
            u,
            u,
            1,
            0,
            0,
            u,
            u,
            0,
            0,
            u,
            u,
            u,
            u,
            u,
        ]
        return frame(*fields)

    def _historical(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        request_id, bar_size, date_format = f[1], f[16], f[20]
        steps = {"1 min": 60, "5 mins": 300, "1 hour": 3600, "1 day": 86400}
        if bar_size not in steps:
            w.write(
                frame(
                    4,
                    2,
                    request_id,
                    162,
                    "Historical Market Data Service error message:invalid step",
                    "",
                )
            )
            return
        step, count = steps[bar_size], 5
        end = int(time.time()) // step * step
        bars: list[object] = []
        for i in range(count):
            t = end - (count - i) * step
            if bar_size == "1 day":
                stamp = time.strftime("%Y%m%d", time.gmtime(t))
            else:
                stamp = (
                    str(t)
                    if date_format == "2"
                    else time.strftime("%Y%m%d %H:%M:%S", time.gmtime(t)) + " UTC"
                )
            o = self.price + i
            bars += [stamp, o, o + 1, o - 1, o + 0.5, 1000 + i, o + 0.2, 10 + i]
        w.write(frame(17, request_id, "start", "end", count, *bars))
