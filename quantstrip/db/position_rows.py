"""Reading and writing the rows of positions: position events, closures, lots, the position row,
and settling a strategy's capital aggregate. Only what a fill changed is written."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from quantstrip.db.positions import Closure, Fill, Lot, LotBook, PositionEvent, PositionState
from quantstrip.db.records import Execution
from quantstrip.db.units import now_text
from quantstrip.db.validate import MAX_MICROS
from quantstrip.errors import ValidationError

Key = tuple[int, int, int]  # strategy, account, instrument
KEY_WHERE = "strategy_id = ? AND account_id = ? AND instrument_id = ?"
POSITION = (
    "SELECT qty_micros, cost_basis_micros, realized_pnl_micros, method, last_exec_time "
    f"FROM positions WHERE {KEY_WHERE}"
)
LOTS_PER_READ = 8
LOT_COLUMNS = "id, execution_id, open_time, qty_micros, price_micros, cost_basis_micros"


def lot_from_row(row: sqlite3.Row | tuple) -> Lot:
    row_id, execution_id, open_time, qty, price, cost = row
    return Lot(execution_id, open_time, qty, price, cost, row_id, (qty, cost, price, execution_id))


def fill_of(execution: Execution, multiplier: int) -> Fill:
    return Fill(
        execution.id,
        execution.side,
        execution.qty_micros,
        execution.price_micros,
        multiplier,
        execution.exec_time,
    )


@dataclass
class PositionBatch:
    """What one transaction of fills has read and not written back yet: position states (their
    rows and lots are written once, at the end) and each strategy's running capital. It lives
    only inside its transaction, so nothing in it can outlive a rollback."""

    positions: dict[Key, tuple[PositionState, str]] = field(default_factory=dict)
    strategies: dict[str | int, tuple[int, str]] = field(default_factory=dict)  # id, method
    touched: set[int] = field(default_factory=set)  # strategies whose capital may be stale
    recorded_at: str = field(default_factory=now_text)  # when the transaction stores its rows


class PositionRows:
    """Part of `Database`: the row-level reads and writes the position store is made of."""

    conn: sqlite3.Connection

    def _lot_reader(self, key: Key) -> Callable[[Lot | None], list[Lot]]:
        def more(after: Lot | None) -> list[Lot]:
            if after is None:
                rows = self.conn.execute(
                    f"SELECT {LOT_COLUMNS} FROM position_lots WHERE {KEY_WHERE} "
                    f"ORDER BY open_time, execution_id LIMIT {LOTS_PER_READ}",
                    key,
                ).fetchall()
            else:
                rows = self.conn.execute(
                    f"SELECT {LOT_COLUMNS} FROM position_lots WHERE {KEY_WHERE} "
                    "AND (open_time, execution_id) > (?, ?) "
                    f"ORDER BY open_time, execution_id LIMIT {LOTS_PER_READ}",
                    (*key, after.open_time, after.execution_id),
                ).fetchall()
            return [lot_from_row(r) for r in rows]

        return more

    def _write_event(
        self,
        execution: Execution,
        key: Key,
        method: str,
        event: PositionEvent,
        closures: list[Closure],
    ) -> None:
        """Insert the position event and its closures (the aggregates follow by trigger)."""
        if abs(event.cost_basis_after_micros) > MAX_MICROS:
            raise ValidationError("qty", "the position's cost basis is too large for the ledger")
        self.conn.execute(
            "INSERT INTO position_events (execution_id, strategy_id, account_id, instrument_id, "
            "qty_before_micros, qty_after_micros, avg_cost_before_micros, avg_cost_after_micros, "
            "cost_basis_before_micros, cost_basis_after_micros, realized_pnl_gross_micros, method, "
            "event_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                execution.id,
                *key,
                event.qty_before_micros,
                event.qty_after_micros,
                event.avg_cost_before_micros,
                event.avg_cost_after_micros,
                event.cost_basis_before_micros,
                event.cost_basis_after_micros,
                event.realized_pnl_gross_micros,
                method,
                execution.exec_time,
            ),
        )
        if closures:
            self.conn.executemany(
                "INSERT INTO position_closures (closing_execution_id, opening_execution_id, "
                "strategy_id, account_id, instrument_id, direction, qty_micros, entry_time, "
                "entry_price_micros, exit_time, exit_price_micros, realized_pnl_gross_micros) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        execution.id,
                        c.opening_execution_id,
                        *key,
                        c.direction,
                        c.qty_micros,
                        c.entry_time,
                        c.entry_price_micros,
                        c.exit_time,
                        c.exit_price_micros,
                        c.realized_pnl_gross_micros,
                    )
                    for c in closures
                ],
            )

    def _write_lots(self, key: Key, book: LotBook) -> None:
        inserted, updated, deleted = book.changes()
        if deleted:
            self.conn.executemany(
                "DELETE FROM position_lots WHERE id = ?", [(lot.row_id,) for lot in deleted]
            )
        if updated:
            self.conn.executemany(
                "UPDATE position_lots SET qty_micros = ?, cost_basis_micros = ?, "
                "price_micros = ?, execution_id = ? WHERE id = ?",
                [
                    (
                        lot.qty_micros,
                        lot.cost_basis_micros,
                        lot.price_micros,
                        lot.execution_id,
                        lot.row_id,
                    )
                    for lot in updated
                ],
            )
        if inserted:
            self.conn.executemany(
                "INSERT INTO position_lots (strategy_id, account_id, instrument_id, execution_id, "
                "open_time, qty_micros, price_micros, cost_basis_micros) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        *key,
                        lot.execution_id,
                        lot.open_time,
                        lot.qty_micros,
                        lot.price_micros,
                        lot.cost_basis_micros,
                    )
                    for lot in inserted
                ],
            )

    def _write_position(self, key: Key, state: PositionState, last_time: str) -> None:
        self.conn.execute(
            "INSERT INTO positions (strategy_id, account_id, instrument_id, qty_micros, "
            "cost_basis_micros, avg_cost_micros, realized_pnl_micros, method, last_exec_time, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (strategy_id, account_id, instrument_id) DO UPDATE SET "
            "qty_micros = excluded.qty_micros, cost_basis_micros = excluded.cost_basis_micros, "
            "avg_cost_micros = excluded.avg_cost_micros, "
            "realized_pnl_micros = excluded.realized_pnl_micros, method = excluded.method, "
            "last_exec_time = excluded.last_exec_time, updated_at = excluded.updated_at",
            (
                *key,
                state.qty_micros,
                state.cost_basis_micros,
                state.avg_cost_micros,
                state.realized_pnl_micros,
                state.method,
                last_time,
                now_text(),
            ),
        )

    # ---- capital ----------------------------------------------------------------------------
    def _settle_capital(self, strategy_id: int) -> None:
        """Refresh the capital days a late fill or a replay left stale (their peak above the
        day's open needs the day's events in time order): days left without events go, and
        clearing the flag of the others recomputes each from its own events (trigger of
        migration 0015). Stale days are found through a partial index that is empty in the
        steady state, so a fill in time order pays one probe."""
        conn = self.conn
        stale = conn.execute(
            "SELECT 1 FROM agg_capital_days WHERE strategy_id = ? AND stale <> 0 LIMIT 1",
            (strategy_id,),
        ).fetchone()
        if stale is None:
            return
        conn.execute(
            "DELETE FROM agg_capital_days WHERE strategy_id = ? AND stale <> 0 AND events = 0",
            (strategy_id,),
        )
        conn.execute(
            "UPDATE agg_capital_days SET stale = 0 WHERE strategy_id = ? AND stale <> 0",
            (strategy_id,),
        )
