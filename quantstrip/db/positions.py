"""Position engine: turns each execution into a position event, closures and open lots.

Pure integer arithmetic on micros, so realised PnL is exact. FIFO matches a closing fill against
the oldest open lots; average cost keeps one pooled lot whose exact cost basis (not a rounded
average price) is released pro rata, so repeated partial closes never drift.

The state keeps running totals (quantity, cost basis, realised PnL) and a `LotBook` that reads
open lots from the front only as far as a fill needs them, so a fill costs the same whether the
position holds one open lot or thousands. A FIFO fill can also be undone exactly (`undo_fifo`),
which lets a late fill be inserted by undoing only the fills after it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from quantstrip.db.units import div_round, mul_micros

METHODS = ("fifo", "average")


@dataclass
class Lot:
    execution_id: int | None
    open_time: str
    qty_micros: int  # signed: > 0 long, < 0 short
    price_micros: int
    cost_basis_micros: int  # always >= 0, exact
    row_id: int | None = None  # its position_lots row, if stored
    stored: tuple[int, int, int, int | None] | None = None  # (qty, cost, price, execution_id)


@dataclass(frozen=True)
class Fill:
    execution_id: int
    side: str
    qty_micros: int
    price_micros: int
    multiplier_micros: int
    exec_time: str


@dataclass(frozen=True)
class Closure:
    opening_execution_id: int | None
    direction: str
    qty_micros: int
    entry_time: str
    entry_price_micros: int
    exit_time: str
    exit_price_micros: int
    realized_pnl_gross_micros: int


@dataclass(frozen=True)
class PositionEvent:
    qty_before_micros: int
    qty_after_micros: int
    avg_cost_before_micros: int
    avg_cost_after_micros: int
    cost_basis_before_micros: int
    cost_basis_after_micros: int
    realized_pnl_gross_micros: int


class LotBook:
    """Open lots in FIFO order: those read so far, then (lazily) the rest from storage, then
    lots opened in this session. Remembers what changed, for writing back only that."""

    def __init__(
        self,
        loaded: Iterable[Lot] = (),
        more: Callable[[Lot | None], list[Lot]] | None = None,
        *,
        skip: set[int | None] | None = None,
        removed: list[Lot] | None = None,
    ) -> None:
        """`loaded`: the first lots, in order; `more(after)`: the stored lots after `after`
        (None: from the start), a few at a time; `skip`: opening executions of stored lots
        that are not part of the book any more (taken back by an undo)."""
        self._front: deque[Lot] = deque(loaded)
        self._more = more
        self._skip = skip or set()
        self._last_read: Lot | None = self._front[-1] if self._front else None
        self._new: deque[Lot] = deque()
        self.removed: list[Lot] = removed or []

    def first(self) -> Lot | None:
        while not self._front and self._more is not None:
            batch = self._more(self._last_read)
            if batch:
                self._front.extend(lot for lot in batch if lot.execution_id not in self._skip)
                self._last_read = batch[-1]
            else:
                self._more = None
        if self._front:
            return self._front[0]
        return self._new[0] if self._new else None

    def pop_first(self) -> Lot:
        lot = self._front.popleft() if self._front else self._new.popleft()
        if lot.row_id is not None:
            self.removed.append(lot)
        return lot

    def push_first(self, lot: Lot) -> None:
        """Put a lot back at the front (undoing a closure)."""
        if self._front or self._more is None:
            self._front.appendleft(lot)
        else:
            self._new.appendleft(lot)

    def append(self, lot: Lot) -> None:
        self._new.append(lot)

    def pop_last(self) -> Lot:
        lot = self._new.pop() if self._new else self._front.pop()
        if lot.row_id is not None:
            self.removed.append(lot)
        return lot

    def last(self) -> Lot | None:
        if self._new:
            return self._new[-1]
        if self._more is not None:
            raise RuntimeError("the last lot of a partly read book is unknown")
        return self._front[-1] if self._front else None

    def in_memory(self) -> list[Lot]:
        return [*self._front, *self._new]

    def changes(self) -> tuple[list[Lot], list[Lot], list[Lot]]:
        """(lots to insert, stored lots to update, stored lots to delete)."""
        current = self.in_memory()
        kept = {id(lot) for lot in current}
        inserted = [lot for lot in current if lot.row_id is None]
        updated = [
            lot
            for lot in current
            if lot.row_id is not None
            and lot.stored
            != (lot.qty_micros, lot.cost_basis_micros, lot.price_micros, lot.execution_id)
        ]
        deleted = [lot for lot in self.removed if id(lot) not in kept]
        return inserted, updated, deleted


@dataclass
class PositionState:
    method: str
    multiplier_micros: int
    book: LotBook = field(default_factory=LotBook)
    qty_micros: int = 0
    cost_basis_micros: int = 0
    realized_pnl_micros: int = 0

    @property
    def avg_cost_micros(self) -> int:
        qty = abs(self.qty_micros)
        if qty == 0:
            return 0
        # cost_basis = avg * qty * multiplier  =>  avg = cost_basis / (qty * multiplier)
        return div_round(self.cost_basis_micros * 10**12, qty * self.multiplier_micros)

    def apply(self, fill: Fill) -> tuple[PositionEvent, list[Closure]]:
        if self.method not in METHODS:
            raise ValueError(f"unknown position method {self.method!r}")
        qty_before, basis_before, avg_before = (
            self.qty_micros,
            self.cost_basis_micros,
            self.avg_cost_micros,
        )
        signed = fill.qty_micros if fill.side == "BUY" else -fill.qty_micros
        self.qty_micros += signed
        closures: list[Closure] = []
        pnl_total = 0
        lot = self.book.first() if qty_before != 0 else None
        while signed != 0 and lot is not None and (lot.qty_micros > 0) != (signed > 0):
            matched = min(abs(signed), abs(lot.qty_micros))
            released = div_round(lot.cost_basis_micros * matched, abs(lot.qty_micros))
            exit_value = mul_micros(fill.price_micros, matched, self.multiplier_micros)
            long = lot.qty_micros > 0
            pnl = exit_value - released if long else released - exit_value
            entry_price = div_round(released * 10**12, matched * self.multiplier_micros)
            closures.append(
                Closure(
                    opening_execution_id=lot.execution_id,
                    direction="LONG" if long else "SHORT",
                    qty_micros=matched,
                    entry_time=lot.open_time,
                    entry_price_micros=entry_price,
                    exit_time=fill.exec_time,
                    exit_price_micros=fill.price_micros,
                    realized_pnl_gross_micros=pnl,
                )
            )
            pnl_total += pnl
            lot.cost_basis_micros -= released
            self.cost_basis_micros -= released
            lot.qty_micros += matched if not long else -matched
            signed += -matched if signed > 0 else matched
            if lot.qty_micros == 0:
                self.book.pop_first()
                lot = self.book.first()
        if signed != 0:
            cost = mul_micros(fill.price_micros, abs(signed), self.multiplier_micros)
            self.cost_basis_micros += cost
            pooled = self.book.first() if self.method == "average" else None
            if pooled is not None:
                pooled.qty_micros += signed
                pooled.cost_basis_micros += cost
                pooled.price_micros = div_round(
                    pooled.cost_basis_micros * 10**12,
                    abs(pooled.qty_micros) * self.multiplier_micros,
                )
                pooled.execution_id = None
            else:
                self.book.append(
                    Lot(fill.execution_id, fill.exec_time, signed, fill.price_micros, cost)
                )
        self.realized_pnl_micros += pnl_total
        event = PositionEvent(
            qty_before_micros=qty_before,
            qty_after_micros=self.qty_micros,
            avg_cost_before_micros=avg_before,
            avg_cost_after_micros=self.avg_cost_micros,
            cost_basis_before_micros=basis_before,
            cost_basis_after_micros=self.cost_basis_micros,
            realized_pnl_gross_micros=pnl_total,
        )
        return event, closures

    def undo_fifo(
        self,
        fill: Fill,
        closures: list[Closure],
        opening_prices: dict[int, int],
        event: PositionEvent,
    ) -> None:
        """Take back the last fill applied (FIFO only): remove the lot it opened, give back what
        its closures took from the lots they closed, exactly (cost released is recovered from
        each closure's exit value and PnL). `opening_prices`: the price of each closed lot's
        opening execution; `event`: the fill's stored position event."""
        if self.method != "fifo":
            raise ValueError("only FIFO fills can be undone")
        signed = fill.qty_micros if fill.side == "BUY" else -fill.qty_micros
        closed = sum(c.qty_micros for c in closures)
        if abs(signed) > closed:  # the fill opened a lot with the rest: it is the newest one
            opened = self.book.pop_last()
            if opened.execution_id != fill.execution_id:
                raise RuntimeError(f"lot of execution {fill.execution_id} is not the newest")
        for closure in reversed(closures):
            exit_value = mul_micros(
                closure.exit_price_micros, closure.qty_micros, self.multiplier_micros
            )
            pnl = closure.realized_pnl_gross_micros
            long = closure.direction == "LONG"
            released = exit_value - pnl if long else pnl + exit_value
            qty = closure.qty_micros if long else -closure.qty_micros
            front = self.book.first()
            if front is not None and front.execution_id == closure.opening_execution_id:
                front.qty_micros += qty
                front.cost_basis_micros += released
            else:
                price = opening_prices[closure.opening_execution_id or 0]
                self.book.push_first(
                    Lot(closure.opening_execution_id, closure.entry_time, qty, price, released)
                )
        self.qty_micros = event.qty_before_micros
        self.cost_basis_micros = event.cost_basis_before_micros
        self.realized_pnl_micros -= event.realized_pnl_gross_micros
