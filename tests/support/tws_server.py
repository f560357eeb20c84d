"""A TWS-protocol test server, as strict as TWS, that the unmodified ib_async client drives.

It speaks the real socket protocol (server version 178; layouts in `tws_protocol`) on
127.0.0.1 and behaves as TWS does where integrations get it wrong:

- routing: an order's openOrder/orderStatus/execDetails/commissionReport go to the client id
  that placed it and to the master client id (`master_client_id`) only; manual TWS orders
  (client id 0) go to client 0 and the master; reqExecutions answers a client's own fills, the
  master's request answers everyone's;
- reqOpenOrders (own orders), reqAllOpenOrders (everyone's) and reqCompletedOrders (filled,
  cancelled, rejected orders with their fill quantity and completion text) have real content;
- order errors: rejections (201/203/10289 scripted, 110 for a price off the tick), 202 on
  cancel, warnings that keep the order live (404 short-sale locate, 399), 321 in read-only API
  mode, 10147 when cancelling an order that is not the client's, 104 for modifying a done order;
- connectivity: 326 (client id in use) then the socket closes; 1100/1101/1102/2110 on demand;
  `drop_all_clients()`, `go_down()`/`come_up()`, `down_for(seconds)` (connections refused);
- accounts: several accounts, each with its own base currency and cash per currency.

Tests script the market: `move_price`, `close_auction`, `fill` (also while nobody listens),
`place_manual_order` (an order typed into TWS), `correct`, `replay_last_execution`.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from support import tws_protocol as p
from support.tws_market import Account, Market, Scripted

ACCOUNT = "DU1234567"
SERVER_VERSION = p.SERVER_VERSION
frame = p.frame  # kept for tests that write raw messages


@dataclass(eq=False)
class Session:
    writer: asyncio.StreamWriter
    client_id: int = -1
    ready: bool = False
    positions: bool = False
    account_updates: str | None = None
    multi: dict[int, str] = field(default_factory=dict)


class TwsServer(Market):
    def __init__(
        self,
        price: float = 100.0,
        *,
        master_client_id: int | None = None,
        accounts: list[Account] | None = None,
        read_only_api: bool = False,
        commission_delay_s: float = 0.05,
        liquidity: float | None = None,
    ) -> None:
        super().__init__()
        self.price = price
        self.master_client_id = master_client_id
        self.accounts = {a.code: a for a in accounts or [Account(ACCOUNT)]}
        self.read_only_api = read_only_api
        self.commission_delay_s = commission_delay_s
        self.commission_first = False
        self.liquidity = liquidity
        self.inbound: list[list[str]] = []
        self.requests: list[tuple[int, list[str]]] = []  # (client id, fields) of every message
        self.sessions: set[Session] = set()
        self.connection_attempts = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    # ---- running in its own thread, driven synchronously by tests -------------------------
    def start(self) -> TwsServer:
        self.thread.start()
        self.come_up()
        return self

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout_s: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def stop(self) -> None:
        self.go_down()

        async def finish() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(finish())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def come_up(self) -> None:
        """Listen (again, on the same port once it has one)."""

        async def listen() -> asyncio.AbstractServer:
            return await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        if self.server is None:
            self.server = self.run(listen())
            self.port = self.server.sockets[0].getsockname()[1]

    def go_down(self) -> None:
        """TWS is gone: every connection is cut and new ones are refused until `come_up()`."""

        async def close() -> None:
            if self.server is not None:
                self.server.close()
                self.server = None
            for session in list(self.sessions):
                session.writer.transport.abort()

        self.run(close())

    def down_for(self, seconds: float) -> None:
        """Refuse connections for a while (a TWS restart), then listen again by itself."""
        self.go_down()

        def later() -> None:
            self.loop.call_later(seconds, lambda: self.loop.create_task(self._relisten()))

        self.loop.call_soon_threadsafe(later)

    async def _relisten(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    def drop_all_clients(self) -> None:
        """A network drop: every connection is cut; TWS keeps listening."""

        async def drop() -> None:
            for session in list(self.sessions):
                session.writer.transport.abort()

        self.run(drop())

    def connected(self) -> bool:
        return any(s.ready for s in self.sessions)

    def connected_client_ids(self) -> list[int]:
        return sorted(s.client_id for s in self.sessions if s.ready)

    # ---- scripted events -------------------------------------------------------------------
    def connectivity(self, code: int) -> None:
        """TWS's link to IB: 1100 lost, 1101 restored (data lost), 1102 restored, 2110 broken."""
        self.run(self._broadcast(p.error(-1, code)))

    def reject_next_order(
        self, code: int, text: str | None = None, status_after: str | None = None
    ):
        self.rejections.append(Scripted(code, text or p.MESSAGES[code], status_after))

    def warn_next_order(self, code: int, text: str | None = None) -> None:
        self.warnings.append(Scripted(code, text or p.MESSAGES[code]))

    def move_price(self, price: float, max_qty: float | None = None) -> None:
        """The market trades at `price`: resting orders it crosses fill (up to max_qty)."""
        self.run(self.move(price, max_qty))

    def close(self, price: float) -> None:
        self.run(self.close_auction(price))

    def fill(self, order_id: int, qty: float, price: float, client_id: int | None = None) -> str:
        """Fill part of an order now (kept for reqExecutions if nobody listens); its exec id."""
        return self.run(self.fill_order(self.find(order_id, client_id), price, qty))

    def fill_by_ref(self, order_ref: str, qty: float, price: float) -> str:
        order = self.by_ref(order_ref)
        return self.run(self.fill_order(order, price, qty))

    def by_ref(self, order_ref: str) -> p.TwsOrder:
        return next(o for o in self.orders.values() if o.order_ref == order_ref)

    def expire(self, order_id: int, client_id: int | None = None) -> None:
        """A DAY or GTD order reaching its end: TWS cancels it."""
        order = self.find(order_id, client_id)
        order.completed_status = "Cancelled: expired"
        self.run(self.set_status(order, "Cancelled"))

    def place_manual_order(
        self,
        symbol: str,
        con_id: int,
        action: str,
        qty: float,
        order_type: str = "MKT",
        limit_price: float | None = None,
        order_ref: str = "",
        account: str | None = None,
        client_id: int = 0,
    ) -> p.TwsOrder:
        """An order typed into TWS (client id 0), or placed by another API client."""
        contract = [str(con_id), symbol, "STK", "", "0", "", "", "SMART", "", "USD", "", ""]
        order = p.TwsOrder(
            0 if client_id == 0 else self.next_valid_id(client_id),
            client_id,
            next(self._perm),
            contract,
            action,
            qty,
            order_type,
            "" if limit_price is None else str(limit_price),
            "",
            "DAY",
            "",
            0,
            account or self.default_account(),
            order_ref,
            True,
            0,
        )
        self.orders[order.perm_id] = order

        async def submit() -> None:
            await self.set_status(order, "Submitted")
            await self._cross(order)

        self.run(submit())
        return order

    def replay_last_execution(self) -> None:
        """Send the last execDetails again, as TWS does around reconnects."""
        last = self.executions[-1]
        self.run(self.publish(last.order, last.details()))

    def correct(self, exec_id: str, price: float) -> str:
        """An IB correction: same base exec id, next suffix, new price; the new exec id."""
        original = next(e for e in self.executions if e.exec_id == exec_id)
        base, _, suffix = exec_id.rpartition(".")
        new_id = f"{base}.{int(suffix, 16) + 1:02x}"
        fields = list(original.fields)
        fields[12], fields[18], fields[23] = new_id, price, price
        report = [new_id, original.commission[1], "USD", p.UNSET_DOUBLE, p.UNSET_DOUBLE, ""]
        correction = p.TwsExecution(original.order, fields, report)
        self.executions.append(correction)
        self.run(self.publish(original.order, correction.details(), correction.report()))
        return new_id

    def status_history(self, order_ref: str) -> list[str]:
        """Every status TWS sent for the order with this orderRef."""
        return self.by_ref(order_ref).history

    # ---- routing ---------------------------------------------------------------------------
    def _receives(self, session: Session, order: p.TwsOrder) -> bool:
        if not session.ready:
            return False
        if session.client_id == order.client_id:
            return True
        return self.master_client_id is not None and session.client_id == self.master_client_id

    async def publish(self, order: p.TwsOrder, *messages: bytes) -> None:
        for session in list(self.sessions):
            if self._receives(session, order):
                for message in messages:
                    session.writer.write(message)
                await self._drain(session)

    async def reply(self, client_id: int, message: bytes) -> None:
        for session in list(self.sessions):
            if session.ready and session.client_id == client_id:
                session.writer.write(message)
                await self._drain(session)

    async def publish_position(self, account: str, con_id: int) -> None:
        contract, qty, avg = self.positions[(account, con_id)]
        for session in list(self.sessions):
            if session.positions:
                session.writer.write(p.position(account, contract, qty, avg))
                await self._drain(session)

    async def _broadcast(self, message: bytes) -> None:
        for session in list(self.sessions):
            if session.ready:
                session.writer.write(message)
                await self._drain(session)

    @staticmethod
    async def _drain(session: Session) -> None:
        with contextlib.suppress(ConnectionError):
            await session.writer.drain()

    # ---- protocol --------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer)
        self.sessions.add(session)
        self.connection_attempts += 1
        try:
            assert await reader.readexactly(4) == b"API\0"
            size = struct.unpack(">I", await reader.readexactly(4))[0]
            versions = (await reader.readexactly(size)).decode()
            highest = int(versions[1:].split(" ")[0].split("..")[1])
            writer.write(
                p.frame(min(highest, SERVER_VERSION), time.strftime("%Y%m%d %H:%M:%S") + " GMT")
            )
            while True:
                size = struct.unpack(">I", await reader.readexactly(4))[0]
                fields = (await reader.readexactly(size)).decode().split("\0")[:-1]
                self.inbound.append(fields)
                self.requests.append((session.client_id, fields))
                if not await self._dispatch(session, fields):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.sessions.discard(session)
            writer.close()

    async def _dispatch(self, s: Session, f: list[str]) -> bool:
        """Answer one request; False closes the connection."""
        message, w = int(f[0]), s.writer
        if message == p.START_API:
            client_id = int(f[2])
            if any(o.ready and o.client_id == client_id for o in self.sessions):
                w.write(p.error(-1, 326))
                await w.drain()
                return False
            s.client_id, s.ready = client_id, True
            w.write(p.frame(15, 1, ",".join(self.accounts)))
            w.write(p.frame(9, 1, self.next_valid_id(client_id)))
            for code, text in (
                (2104, "Market data farm connection is OK:usfarm"),
                (2106, "HMDS data farm connection is OK:ushmds"),
                (2158, "Sec-def data farm connection is OK:secdefil"),
            ):
                w.write(p.error(-1, code, text))
        elif message == p.REQ_POSITIONS:
            s.positions = True
            for (account, _), (contract, qty, avg) in self.positions.items():
                w.write(p.position(account, contract, qty, avg))
            w.write(p.frame(62, 1))
        elif message in (p.REQ_OPEN_ORDERS, p.REQ_ALL_OPEN_ORDERS):
            for order in self.orders.values():
                mine = order.client_id == s.client_id
                if order.is_open and (mine or message == p.REQ_ALL_OPEN_ORDERS):
                    w.write(p.open_order(order))
                    w.write(p.order_status(order))
            w.write(p.frame(53, 1))
        elif message == p.REQ_COMPLETED_ORDERS:
            api_only = f[1] == "1"
            for order in self.orders.values():
                if not order.is_open and not (api_only and order.client_id == 0):
                    w.write(p.completed_order(order))
            w.write(p.frame(102))
        elif message == p.REQ_ACCOUNT_UPDATES:
            account = f[3] or self.default_account()
            s.account_updates = account if f[2] == "1" else None
            if s.account_updates:
                for tag, value, currency in self.accounts[account].values():
                    w.write(p.frame(6, 2, tag, value, currency, account))
                w.write(p.frame(8, 1, time.strftime("%H:%M")))
                w.write(p.frame(54, 1, account))
        elif message == p.REQ_ACCOUNT_UPDATES_MULTI:
            request_id, account = int(f[2]), f[3]
            s.multi[request_id] = account
            for code in self.accounts if account in ("", "All") else [account]:
                for tag, value, currency in self.accounts[code].values():
                    w.write(p.frame(73, 1, request_id, code, "", tag, value, currency))
            w.write(p.frame(74, 1, request_id))
        elif message == p.REQ_EXECUTIONS:
            self._executions(s, f)
        elif message == p.REQ_HISTORICAL_DATA:
            self._historical(w, f)
        elif message == p.REQ_CURRENT_TIME:
            w.write(p.frame(49, 1, int(time.time())))
        elif message == p.REQ_IDS:
            w.write(p.frame(9, 1, self.next_valid_id(s.client_id)))
        elif message == p.PLACE_ORDER:
            await self.place(f, s.client_id, self.read_only_api)
        elif message == p.CANCEL_ORDER:
            await self._cancel(s, int(f[2]))
        return True

    def _executions(self, s: Session, f: list[str]) -> None:
        request_id, wanted = int(f[2]), int(f[3] or 0)
        master = self.master_client_id is not None and s.client_id == self.master_client_id
        chosen = [
            e
            for e in self.executions
            if (master or e.order.client_id == s.client_id)
            and (wanted == 0 or e.order.client_id == wanted)
        ]
        for execution in chosen:
            s.writer.write(execution.details(request_id))
        s.writer.write(p.frame(55, 1, request_id))
        for execution in chosen:
            s.writer.write(execution.report())

    async def _cancel(self, s: Session, order_id: int) -> None:
        order = self.own(s.client_id, order_id)
        if order is None:
            s.writer.write(p.error(order_id, 10147))
            return
        if not order.is_open:
            text = f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: "
            s.writer.write(p.error(order_id, 10148, text + order.status))
            return
        await self.set_status(order, "Cancelled")
        s.writer.write(p.error(order_id, 202))

    def _historical(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        request_id, symbol, bar_size, date_format = f[1], f[3], f[16], f[20]
        steps = {"1 min": 60, "5 mins": 300, "1 hour": 3600, "1 day": 86400}
        if bar_size not in steps:
            text = "Historical Market Data Service error message:invalid step"
            w.write(p.error(int(request_id), 162, text))
            return
        if symbol in self.not_allowed:
            text = "Historical Market Data Service error message:HMDS query returned no data"
            w.write(p.error(int(request_id), 162, text))
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
        w.write(p.frame(17, request_id, "start", "end", count, *bars))
