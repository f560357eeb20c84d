"""Positions kept from executions: each fill becomes a position event, closures and open lots.

The arithmetic lives in `positions.py` (pure, exact micros); this module loads a position's
state, stores what a fill changed, replays a position after a late fill or a correction, and
keeps each strategy's deployed-capital aggregate current.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from quantstrip.db.connection import transaction
from quantstrip.db.positions import Fill, Lot, PositionState
from quantstrip.db.records import Execution, Instrument, Position
from quantstrip.db.units import now_text


class PositionStore:
    """Part of `Database`: positions, lots, position events, closures, capital aggregates."""

    conn: sqlite3.Connection

    if TYPE_CHECKING:  # provided by ReferenceData

        def instrument(self, instrument_id: int) -> Instrument: ...
        def strategy_id(self, strategy: str | int) -> int: ...

    def _load_state(self, strategy_id: int, account_id: int, instrument_id: int) -> PositionState:
        method = self.conn.execute(
            "SELECT position_method FROM strategies WHERE id = ?", (strategy_id,)
        ).fetchone()[0]
        multiplier = self.instrument(instrument_id).multiplier_micros
        state = PositionState(method=method, multiplier_micros=multiplier)
        pos = self.conn.execute(
            "SELECT realized_pnl_micros, cost_basis_micros FROM positions "
            "WHERE strategy_id = ? AND account_id = ? AND instrument_id = ?",
            (strategy_id, account_id, instrument_id),
        ).fetchone()
        if pos is None:
            return state
        state.realized_pnl_micros = pos["realized_pnl_micros"]
        lots = self.conn.execute(
            "SELECT execution_id, open_time, qty_micros, price_micros, cost_basis_micros "
            "FROM position_lots WHERE strategy_id = ? AND account_id = ? AND instrument_id = ? "
            "ORDER BY id",
            (strategy_id, account_id, instrument_id),
        ).fetchall()
        state.lots = [Lot(*lot) for lot in lots]
        return state

    def _apply_to_position(self, execution: Execution, state: PositionState | None = None) -> None:
        key = (execution.strategy_id, execution.account_id, execution.instrument_id)
        last = self.conn.execute(
            "SELECT last_exec_time FROM positions WHERE strategy_id = ? AND account_id = ? "
            "AND instrument_id = ?",
            key,
        ).fetchone()
        if state is None and last is not None and last[0] > execution.exec_time:
            # A fill older than what the position has seen (caught up after a reconnect):
            # FIFO order matters, so replay the whole position in time order.
            self._rebuild_position(*key)
            return
        replaying = state is not None  # inside _rebuild_position, which refreshes at its end
        state = state or self._load_state(*key)
        fill = Fill(
            execution.id,
            execution.side,
            execution.qty_micros,
            execution.price_micros,
            state.multiplier_micros,
            execution.exec_time,
        )
        event, closures = state.apply(fill)
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
                state.method,
                execution.exec_time,
            ),
        )
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
        self._store_state(key, state, execution.exec_time)
        if not replaying:
            self._refresh_capital_if_stale(execution.strategy_id)

    def _refresh_capital_if_stale(self, strategy_id: int) -> None:
        """A fill older than the strategy's newest event (on another instrument, so its own
        position needed no replay) leaves the running capital stale: recompute it now."""
        row = self.conn.execute(
            "SELECT stale FROM agg_strategy_capital WHERE strategy_id = ?", (strategy_id,)
        ).fetchone()
        if row is not None and row[0]:
            self._refresh_capital(strategy_id)

    def _store_state(self, key: tuple[int, int, int], state: PositionState, last_time: str) -> None:
        self.conn.execute(
            "DELETE FROM position_lots "
            "WHERE strategy_id = ? AND account_id = ? AND instrument_id = ?",
            key,
        )
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
                for lot in state.lots
            ],
        )
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

    def _rebuild_position(
        self, strategy_id: int, account_id: int, instrument_id: int, *, refresh: bool = True
    ) -> None:
        """Replay one position's active fills in time order, inside the caller's transaction.

        `refresh=False` leaves the strategy's capital aggregate to the caller (rebuilding many
        positions of one strategy refreshes it once, at the end)."""
        key = (strategy_id, account_id, instrument_id)
        where = "strategy_id = ? AND account_id = ? AND instrument_id = ?"
        for table in ("position_events", "position_closures", "position_lots", "positions"):
            self.conn.execute(f"DELETE FROM {table} WHERE {where}", key)
        rows = self.conn.execute(
            f"SELECT * FROM executions WHERE {where} AND superseded_by IS NULL "
            "ORDER BY exec_time, id",
            key,
        ).fetchall()
        if not rows:
            if refresh:
                self._refresh_capital(strategy_id)
            return
        method = self.conn.execute(
            "SELECT position_method FROM strategies WHERE id = ?", (strategy_id,)
        ).fetchone()[0]
        state = PositionState(method, self.instrument(instrument_id).multiplier_micros)
        for row in rows:
            self._apply_to_position(Execution.from_row(row), state)
        if refresh:
            self._refresh_capital(strategy_id)

    def _refresh_capital(self, strategy_id: int) -> None:
        """Recompute a strategy's deployed-capital aggregate after its events were replaced.

        The insert trigger keeps it incrementally while events arrive in time order; a rebuild
        deletes and replays events, which marks the row stale until this runs.
        """
        # One index-driven pass over this strategy's running capital (v_capital_running): its
        # newest row carries the peak of all rows; the grouped v_capital_recomputed would
        # compute every strategy's.
        row = self.conn.execute(
            "SELECT capital_micros, MAX(capital_micros) OVER () AS peak_micros, event_time, id "
            "FROM v_capital_running WHERE strategy_id = ? "
            "ORDER BY event_time DESC, id DESC LIMIT 1",
            (strategy_id,),
        ).fetchone()
        values = tuple(row) if row else (0, None, "", 0)
        self.conn.execute(
            "INSERT INTO agg_strategy_capital (strategy_id, capital_micros, peak_micros, "
            "last_event_time, last_event_id, stale) VALUES (?, ?, ?, ?, ?, 0) "
            "ON CONFLICT (strategy_id) DO UPDATE SET capital_micros = excluded.capital_micros, "
            "peak_micros = excluded.peak_micros, last_event_time = excluded.last_event_time, "
            "last_event_id = excluded.last_event_id, stale = 0",
            (strategy_id, *values),
        )

    def rebuild_positions(self) -> None:
        """Recompute every position from the executions (a repair and a check)."""
        with transaction(self.conn):
            keys = self.conn.execute(
                "SELECT DISTINCT strategy_id, account_id, instrument_id FROM executions"
            ).fetchall()
            self.conn.execute("DELETE FROM position_events")
            self.conn.execute("DELETE FROM position_closures")
            self.conn.execute("DELETE FROM position_lots")
            self.conn.execute("DELETE FROM positions")
            for key in keys:
                self._rebuild_position(*key, refresh=False)
            for strategy_id in {key[0] for key in keys}:
                self._refresh_capital(strategy_id)

    def positions(
        self, *, strategy: str | int | None = None, include_flat: bool = False
    ) -> list[Position]:
        sql, params = "SELECT * FROM positions", []
        clauses = []
        if strategy is not None:
            clauses.append("strategy_id = ?")
            params.append(self.strategy_id(strategy))
        if not include_flat:
            clauses.append("qty_micros <> 0")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = self.conn.execute(sql + " ORDER BY strategy_id, account_id, instrument_id", params)
        return [Position.from_row(r) for r in rows.fetchall()]
