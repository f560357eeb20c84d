"""Putting a position right after a fill that arrives late, or a correction: only the fills
after the insertion point are undone and applied again (FIFO: exactly, from their closures;
average cost: back to the last time the position was flat)."""

from __future__ import annotations

import sqlite3

from quantstrip.db.position_rows import (
    KEY_WHERE,
    LOT_COLUMNS,
    Key,
    PositionBatch,
    PositionRows,
    fill_of,
    lot_from_row,
)
from quantstrip.db.positions import Closure, Fill, Lot, LotBook, PositionEvent, PositionState
from quantstrip.db.records import Execution


class PositionReplay(PositionRows):
    """Part of `Database`: replay of one position from an insertion point."""

    def _replay(
        self, key: Key, point: tuple[str, int], method: str, multiplier: int, batch: PositionBatch
    ) -> None:
        """Make the position right again from `point` (time, execution id) on: undo the position
        events at or after it, then apply the active executions at or after it in time order.
        The position must not be held in `batch` (flushed first); the strategy's capital is
        settled when the batch is flushed."""
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
            state.book = LotBook(removed=[lot_from_row(r) for r in lots])
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
            event, closures = state.apply(fill_of(execution, multiplier))
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
                lot_from_row(r)
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
