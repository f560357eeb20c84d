"""Positions kept from executions: each fill becomes a position event, closures and open lots.

The arithmetic lives in `positions.py` (pure, exact micros); this module reads and writes only
what a fill changes:
- an in-order fill reads its position row and, if it closes, the open lots from the front as far
  as it needs them; it writes one position event, its closures, the lots it touched and the
  position row;
- a late fill (older than the position's newest) or a correction undoes the position's fills
  after the insertion point and applies the fills from there in time order
  (`position_replay.py`);
- each strategy's deployed capital is kept per day by triggers (migration 0010); a late fill or a
  replay leaves the days it touched marked stale, and the end of the transaction refreshes
  those days only (`position_rows.py`, `_settle_capital`; migration 0015).
A batch (`PositionBatch`) reads each position once and writes it once. Everything happens
inside the caller's transaction, so a crash never leaves an execution without its position
consequences.
"""

from __future__ import annotations

import sqlite3

from quantstrip.db.connection import transaction
from quantstrip.db.position_replay import PositionReplay
from quantstrip.db.position_rows import KEY_WHERE, POSITION, Key, PositionBatch, fill_of
from quantstrip.db.positions import LotBook, PositionState
from quantstrip.db.records import Execution, Position


class PositionStore(PositionReplay):
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
            row = self.conn.execute(POSITION, key).fetchone()
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
        event, closures = state.apply(fill_of(execution, multiplier))
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
