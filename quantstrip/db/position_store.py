"""Positions kept from executions: each fill becomes a position event, closures and open lots.

The arithmetic lives in `positions.py` (pure, exact micros); this module reads and writes only
what a fill changes:
- an in-order fill reads its position row and, if it closes, the open lots from the front as far
  as it needs them; it writes one position event, its closures, the lots it touched and the
  position row;
- a late fill (older than the position's newest) or a correction undoes the position's fills
  after the insertion point (FIFO: exactly, from their closures; average cost: back to the last
  time the position was flat), then applies the fills from there in time order;
- each strategy's deployed capital is kept per day by triggers (migration 0010); a late fill or a
  replay leaves the strategy marked stale, and the end of the transaction refreshes its stale
  days and the strategy's totals from them (`_settle_capital`).
Everything happens inside the caller's transaction, so a crash never leaves an execution without
its position consequences.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from quantstrip.db.connection import transaction
from quantstrip.db.positions import Closure, Fill, Lot, LotBook, PositionEvent, PositionState
from quantstrip.db.records import Execution, Position
from quantstrip.db.units import now_text
from quantstrip.db.validate import MAX_MICROS
from quantstrip.errors import ValidationError

Key = tuple[int, int, int]  # strategy, account, instrument
KEY_WHERE = "strategy_id = ? AND account_id = ? AND instrument_id = ?"
_POSITION = (
    "SELECT qty_micros, cost_basis_micros, realized_pnl_micros, method, last_exec_time "
    f"FROM positions WHERE {KEY_WHERE}"
)
LOTS_PER_READ = 8
LOT_COLUMNS = "id, execution_id, open_time, qty_micros, price_micros, cost_basis_micros"


def _lot(row: sqlite3.Row | tuple) -> Lot:
    row_id, execution_id, open_time, qty, price, cost = row
    return Lot(execution_id, open_time, qty, price, cost, row_id, (qty, cost, price, execution_id))


def _fill(execution: Execution, multiplier: int) -> Fill:
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


class PositionStore:
    """Part of `Database`: positions, lots, position events, closures, capital aggregates."""

    conn: sqlite3.Connection

    # ---- one fill ---------------------------------------------------------------------------
    def _apply_fill(
        self, execution: Execution, method: str, multiplier: int, batch: PositionBatch
    ) -> None:
        """Apply a new active execution to its position (inside the caller's transaction)."""
        key = (execution.strategy_id, execution.account_id, execution.instrument_id)
        batch.touched.add(execution.strategy_id)
        cached = batch.positions.get(key)
        if cached is None:
            row = self.conn.execute(_POSITION, key).fetchone()
            state = PositionState(method if row is None else row[3], multiplier)
            last_time = ""
            if row is not None:
                state.qty_micros, state.cost_basis_micros, state.realized_pnl_micros = row[:3]
                state.book = LotBook(more=self._lot_reader(key))
                last_time = row[4]
        else:
            state, last_time = cached
        if last_time > execution.exec_time:
            # Older than what the position has seen (caught up after a reconnect): FIFO order
            # matters, so the fills after it are undone and applied again after it.
            self._flush_position(key, batch)
            self._replay(key, (execution.exec_time, execution.id), state.method, multiplier, batch)
            return
        event, closures = state.apply(_fill(execution, multiplier))
        self._write_event(execution, key, state.method, event, closures)
        batch.positions[key] = (state, execution.exec_time)

    def _supersede(
        self, prior: Execution, execution: Execution, method: str, mult: int, batch: PositionBatch
    ) -> None:
        """`execution` corrects `prior` (already marked superseded): replay what changed."""
        old = (prior.strategy_id, prior.account_id, prior.instrument_id)
        new = (execution.strategy_id, execution.account_id, execution.instrument_id)
        old_point = (prior.exec_time, prior.id)
        new_point = (execution.exec_time, execution.id)
        self._flush_position(old, batch)
        stored = self.conn.execute(f"SELECT method FROM positions WHERE {KEY_WHERE}", old)
        old_method = (stored.fetchone() or (method,))[0]
        if old == new:
            self._replay(old, min(old_point, new_point), old_method, mult, batch)
            return
        self._replay(old, old_point, old_method, mult, batch)
        self._apply_fill(execution, method, mult, batch)

    def _flush_position(self, key: Key, batch: PositionBatch) -> None:
        """Write one cached position (its lots and row) and forget it."""
        cached = batch.positions.pop(key, None)
        if cached is not None:
            state, last_time = cached
            self._write_lots(key, state.book)
            self._write_position(key, state, last_time)

    def _flush(self, batch: PositionBatch) -> None:
        """Write what the batch holds: positions, then the capital a late fill left stale."""
        for key in list(batch.positions):
            self._flush_position(key, batch)
        for strategy_id in sorted(batch.touched):
            self._settle_capital(strategy_id)
        batch.touched.clear()

    # ---- replay after an insertion point ------------------------------------------------------
    def _replay(
        self, key: Key, point: tuple[str, int], method: str, multiplier: int, batch: PositionBatch
    ) -> None:
        """Make the position right again from `point` (time, execution id) on: undo the position
        events at or after it, then apply the active executions at or after it in time order.
        The position must not be held in `batch` (flushed first); the strategy's running capital
        is left for `batch` to recompute."""
        state = PositionState(method, multiplier)
        row = self.conn.execute(
            f"SELECT qty_micros, cost_basis_micros, realized_pnl_micros FROM positions "
            f"WHERE {KEY_WHERE}",
            key,
        ).fetchone()
        if row is not None:
            state.qty_micros, state.cost_basis_micros, state.realized_pnl_micros = row
        if method != "fifo":
            point = self._last_flat_point(key, point)
        undone = self._events_from(key, point)
        if method == "fifo":
            self._undo(key, state, undone)
        else:  # average cost: the position was flat just before `point` (one pooled lot at most)
            lots = self.conn.execute(
                f"SELECT {LOT_COLUMNS} FROM position_lots WHERE {KEY_WHERE}", key
            ).fetchall()
            state.book = LotBook(removed=[_lot(r) for r in lots])
            state.qty_micros = state.cost_basis_micros = 0
            state.realized_pnl_micros -= sum(e["realized_pnl_gross_micros"] for e in undone)
        ids = [e["execution_id"] for e in undone]
        for chunk in range(0, len(ids), 500):
            marks = ", ".join("?" * len(ids[chunk : chunk + 500]))
            part = ids[chunk : chunk + 500]
            self.conn.execute(
                f"DELETE FROM position_closures WHERE closing_execution_id IN ({marks})", part
            )
            self.conn.execute(f"DELETE FROM position_events WHERE execution_id IN ({marks})", part)
        redo = self.conn.execute(
            f"SELECT * FROM executions WHERE {KEY_WHERE} AND superseded_by IS NULL "
            "AND exec_time >= ? AND NOT (exec_time = ? AND id < ?) ORDER BY exec_time, id",
            (*key, point[0], point[0], point[1]),
        ).fetchall()
        last_time = None
        for record in redo:
            execution = Execution.from_row(record)
            event, closures = state.apply(_fill(execution, multiplier))
            self._write_event(execution, key, method, event, closures)
            last_time = execution.exec_time
        self._write_lots(key, state.book)
        if last_time is None:
            previous = self.conn.execute(
                f"SELECT MAX(exec_time) FROM executions WHERE {KEY_WHERE} "
                "AND superseded_by IS NULL",
                key,
            ).fetchone()[0]
            last_time = previous or point[0]
        self._write_position(key, state, last_time)
        batch.touched.add(key[0])

    def _events_from(self, key: Key, point: tuple[str, int]) -> list[sqlite3.Row]:
        """Position events at or after `point`, newest first, with their fills."""
        return self.conn.execute(
            "SELECT pe.execution_id, pe.event_time, pe.qty_before_micros, pe.qty_after_micros, "
            "pe.avg_cost_before_micros, pe.avg_cost_after_micros, pe.cost_basis_before_micros, "
            "pe.cost_basis_after_micros, pe.realized_pnl_gross_micros, e.side, e.qty_micros, "
            "e.price_micros FROM position_events pe JOIN executions e ON e.id = pe.execution_id "
            "WHERE pe.strategy_id = ? AND pe.account_id = ? AND pe.instrument_id = ? "
            "AND pe.event_time >= ? AND NOT (pe.event_time = ? AND pe.execution_id < ?) "
            "ORDER BY pe.event_time DESC, pe.execution_id DESC",
            (*key, point[0], point[0], point[1]),
        ).fetchall()

    def _undo(self, key: Key, state: PositionState, events: list[sqlite3.Row]) -> None:
        """Undo FIFO fills, newest first, back to the state before the oldest of them.

        Only the lots these fills touched are read: those they opened (the newest) and those
        their closures took from (the oldest); the lots in between are read later, lazily, if
        the fills applied again reach them."""
        if not events:
            state.book = LotBook(more=self._lot_reader(key))
            return
        ids = [e["execution_id"] for e in events]
        closures: dict[int, list[Closure]] = {i: [] for i in ids}
        openers: set[int] = set()
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            rows = self.conn.execute(
                "SELECT closing_execution_id, opening_execution_id, direction, qty_micros, "
                "entry_time, entry_price_micros, exit_time, exit_price_micros, "
                "realized_pnl_gross_micros FROM position_closures "
                f"WHERE closing_execution_id IN ({', '.join('?' * len(part))}) ORDER BY id",
                part,
            ).fetchall()
            for r in rows:
                closures[r[0]].append(Closure(*r[1:]))
                openers.add(r[1])
        prices = self._prices(openers)
        touched = sorted(openers | set(ids))
        lots: list[Lot] = []
        for chunk in range(0, len(touched), 500):
            part = touched[chunk : chunk + 500]
            lots += [
                _lot(r)
                for r in self.conn.execute(
                    f"SELECT {LOT_COLUMNS} FROM position_lots WHERE {KEY_WHERE} "
                    f"AND execution_id IN ({', '.join('?' * len(part))})",
                    (*key, *part),
                )
            ]
        lots.sort(key=lambda lot: (lot.open_time, lot.execution_id or 0))
        state.book = LotBook(lots)
        for e in events:
            fill = Fill(
                e["execution_id"],
                e["side"],
                e["qty_micros"],
                e["price_micros"],
                state.multiplier_micros,
                e["event_time"],
            )
            event = PositionEvent(*(e[name] for name in PositionEvent.__dataclass_fields__))
            state.undo_fifo(fill, closures[e["execution_id"]], prices, event)
        # The lots left are the oldest; the stored ones after them follow lazily, without those
        # the undo took back.
        front = state.book.in_memory()
        removed = state.book.removed
        state.book = LotBook(
            front,
            self._lot_reader(key),
            skip={lot.execution_id for lot in removed},
            removed=removed,
        )

    def _prices(self, execution_ids: set[int]) -> dict[int, int]:
        ids = sorted(execution_ids)
        prices: dict[int, int] = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            prices.update(
                self.conn.execute(
                    "SELECT id, price_micros FROM executions "
                    f"WHERE id IN ({', '.join('?' * len(part))})",
                    part,
                ).fetchall()
            )
        return prices

    def _last_flat_point(self, key: Key, point: tuple[str, int]) -> tuple[str, int]:
        """The point just after the position was last flat before `point` (its start if never)."""
        row = self.conn.execute(
            "SELECT event_time, execution_id FROM position_events "
            f"WHERE {KEY_WHERE} AND qty_after_micros = 0 "
            "AND event_time <= ? AND NOT (event_time = ? AND execution_id >= ?) "
            "ORDER BY event_time DESC, execution_id DESC LIMIT 1",
            (*key, point[0], point[0], point[1]),
        ).fetchone()
        return (row[0], row[1] + 1) if row else ("", 0)

    # ---- writing -----------------------------------------------------------------------------
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
            return [_lot(r) for r in rows]

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
        """If a late fill or a replay left the strategy's capital stale, refresh it: clearing
        the flag refreshes its stale days (trigger of migration 0010, from those days' events
        only), and the strategy's totals follow from its days."""
        conn = self.conn
        cleared = conn.execute(
            "UPDATE agg_strategy_capital SET stale = 0 WHERE strategy_id = ? AND stale <> 0",
            (strategy_id,),
        ).rowcount
        if not cleared:
            return
        last = conn.execute(
            "SELECT event_time, id FROM position_events WHERE strategy_id = ? "
            "ORDER BY event_time DESC, id DESC LIMIT 1",
            (strategy_id,),
        ).fetchone()
        conn.execute(
            "UPDATE agg_strategy_capital SET capital_micros = t.capital, peak_micros = t.peak, "
            "last_event_time = ?, last_event_id = ? "
            "FROM (SELECT COALESCE(SUM(delta_micros), 0) AS capital, "
            "             MAX(opening + excess_micros) AS peak "
            "      FROM (SELECT delta_micros, excess_micros, "
            "                   COALESCE(SUM(delta_micros) OVER (ORDER BY day ROWS BETWEEN "
            "                            UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS opening "
            "            FROM agg_capital_days WHERE strategy_id = ?)) AS t "
            "WHERE strategy_id = ?",
            (*(last or ("", 0)), strategy_id, strategy_id),
        )

    # ---- full rebuild and reads -----------------------------------------------------------------
    def rebuild_positions(self) -> None:
        """Recompute every position from the executions (a repair and a check)."""
        with transaction(self.conn):
            keys = self.conn.execute(
                "SELECT DISTINCT e.strategy_id, e.account_id, e.instrument_id, s.position_method, "
                "i.multiplier_micros FROM executions e "
                "JOIN strategies s ON s.id = e.strategy_id "
                "JOIN instruments i ON i.id = e.instrument_id"
            ).fetchall()
            for table in ("position_events", "position_closures", "position_lots", "positions"):
                self.conn.execute(f"DELETE FROM {table}")
            batch = PositionBatch()
            for strategy_id, account_id, instrument_id, method, multiplier in keys:
                position = (strategy_id, account_id, instrument_id)
                self._replay(position, ("", 0), method, multiplier, batch)
            self._flush(batch)
            # Strategies whose executions are all superseded keep no capital.
            self.conn.execute(
                "UPDATE agg_strategy_capital SET capital_micros = 0, peak_micros = NULL, "
                "stale = 0 WHERE strategy_id NOT IN (SELECT strategy_id FROM position_events)"
            )

    def positions(
        self, *, strategy: str | int | None = None, include_flat: bool = False
    ) -> list[Position]:
        sql, params = "SELECT * FROM positions", []
        clauses = []
        if strategy is not None:
            clauses.append("strategy_id = ?")
            params.append(self.strategy_id(strategy))  # type: ignore[attr-defined]
        if not include_flat:
            clauses.append("qty_micros <> 0")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = self.conn.execute(sql + " ORDER BY strategy_id, account_id, instrument_id", params)
        return [Position.from_row(r) for r in rows.fetchall()]
