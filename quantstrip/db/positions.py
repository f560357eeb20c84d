"""Position engine: turns each execution into a position event, closures and open lots.

Pure integer arithmetic on micros, so realised PnL is exact. FIFO matches a closing fill against
the oldest open lots; average cost keeps one pooled lot whose exact cost basis (not a rounded
average price) is released pro rata, so repeated partial closes never drift.
"""

from __future__ import annotations

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


@dataclass
class PositionState:
    method: str
    multiplier_micros: int
    lots: list[Lot] = field(default_factory=list)
    realized_pnl_micros: int = 0

    @property
    def qty_micros(self) -> int:
        return sum(lot.qty_micros for lot in self.lots)

    @property
    def cost_basis_micros(self) -> int:
        return sum(lot.cost_basis_micros for lot in self.lots)

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
        closures: list[Closure] = []
        pnl_total = 0
        while signed != 0 and self.lots and (self.lots[0].qty_micros > 0) != (signed > 0):
            lot = self.lots[0]
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
            lot.qty_micros += matched if not long else -matched
            signed += -matched if signed > 0 else matched
            if lot.qty_micros == 0:
                self.lots.pop(0)
        if signed != 0:
            cost = mul_micros(fill.price_micros, abs(signed), self.multiplier_micros)
            if self.method == "average" and self.lots:
                pooled = self.lots[0]
                pooled.qty_micros += signed
                pooled.cost_basis_micros += cost
                pooled.price_micros = div_round(
                    pooled.cost_basis_micros * 10**12,
                    abs(pooled.qty_micros) * self.multiplier_micros,
                )
                pooled.execution_id = None
            else:
                self.lots.append(
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
