"""Every trigger- or writer-kept aggregate recomputed from the base rows, for the ledger tests."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from quantstrip.db.handler import Database
from quantstrip.db.units import TIME_FORMAT, div_round


def reference_daily(conn: sqlite3.Connection) -> dict[tuple[int, str], tuple[int, int, int]]:
    rows = conn.execute(
        "SELECT e.strategy_id, substr(e.exec_time, 1, 10), SUM(pe.realized_pnl_gross_micros), "
        "SUM(COALESCE(c.commission_micros, 0)), COUNT(*) FROM executions e "
        "JOIN position_events pe ON pe.execution_id = e.id "
        "LEFT JOIN commissions c ON c.execution_id = e.id "
        "WHERE e.superseded_by IS NULL GROUP BY 1, 2"
    ).fetchall()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def reference_trips(conn: sqlite3.Connection) -> dict[tuple[int, str], tuple[int, ...]]:
    fills = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT e.id, e.qty_micros, c.commission_micros FROM executions e "
            "LEFT JOIN commissions c ON c.execution_id = e.id"
        )
    }
    out: dict[tuple[int, str], list[int]] = {}
    for strategy, exit_time, qty, gross, opening, closing in conn.execute(
        "SELECT strategy_id, exit_time, qty_micros, realized_pnl_gross_micros, "
        "opening_execution_id, closing_execution_id FROM position_closures"
    ):
        net = gross
        for execution in (opening, closing):
            fill_qty, fee = fills.get(execution, (1, None))
            if fee is not None:
                net -= div_round(fee * qty, fill_qty)  # pro rata, half up
        row = out.setdefault((strategy, exit_time[:10]), [0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += net > 0
        row[2] += net < 0
        row[3] += max(net, 0)
        row[4] += min(net, 0)
    return {k: tuple(v) for k, v in out.items()}


def reference_peaks(conn: sqlite3.Connection) -> dict[int, int]:
    running: dict[int, int] = {}
    peaks: dict[int, int] = {}
    for strategy, delta in conn.execute(
        "SELECT strategy_id, cost_basis_after_micros - cost_basis_before_micros "
        "FROM position_events ORDER BY event_time, id"
    ):
        running[strategy] = running.get(strategy, 0) + delta
        peaks[strategy] = max(peaks.get(strategy, running[strategy]), running[strategy])
    return peaks


def _cents_half_up(micros: int) -> int:
    """Micros rounded half up (away from zero) to the cent, as the views show money."""
    cents = (abs(micros) + 5_000) // 10_000 * 10_000
    return cents if micros >= 0 else -cents


def reference_capital_days(conn: sqlite3.Connection) -> dict[tuple[int, str], tuple[int, int]]:
    """Per strategy and day: net change of capital deployed, and its peak above the day's open."""
    days: dict[tuple[int, str], list[int]] = {}
    for strategy, when, delta in conn.execute(
        "SELECT strategy_id, event_time, cost_basis_after_micros - cost_basis_before_micros "
        "FROM position_events ORDER BY event_time, id"
    ):
        day = days.setdefault((strategy, when[:10]), [0, 0])
        day[0] += delta
        day[1] = max(day[1], day[0])
    return {k: (v[0], v[1]) for k, v in days.items()}


def quarter_end(event_time: str) -> str:
    """The end of the UTC quarter hour holding `event_time` (canonical UTC text)."""
    moment = datetime.strptime(event_time, TIME_FORMAT)
    start = moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)
    return (start + timedelta(minutes=15)).strftime(TIME_FORMAT)


def reference_position_quarters(conn: sqlite3.Connection) -> dict[tuple, tuple[int, ...]]:
    """Per position and quarter hour with events: the state after its last event."""
    quarters: dict[tuple, tuple[int, ...]] = {}
    for strategy, account, instrument, when, event_id, qty, basis in conn.execute(
        "SELECT strategy_id, account_id, instrument_id, event_time, id, qty_after_micros, "
        "cost_basis_after_micros FROM position_events ORDER BY event_time, id"
    ):
        quarters[(strategy, account, instrument, quarter_end(when))] = (qty, basis, event_id)
    return quarters


def assert_aggregates_match(db: Database) -> None:
    conn = db.conn
    daily = {
        (r[0], r[1]): (r[2], r[3], r[4])
        for r in conn.execute(
            "SELECT strategy_id, day, gross_micros, commission_micros, fills "
            "FROM agg_daily_pnl WHERE fills <> 0 OR gross_micros <> 0 OR commission_micros <> 0"
        )
    }
    assert daily == reference_daily(conn)
    trips = {
        (r[0], r[1]): tuple(r[2:])
        for r in conn.execute(
            "SELECT strategy_id, day, trades, wins, losses, win_micros, loss_micros "
            "FROM agg_daily_trips WHERE trades <> 0 OR wins <> 0 OR losses <> 0 "
            "OR win_micros <> 0 OR loss_micros <> 0"
        )
    }
    assert trips == reference_trips(conn)
    reference = reference_peaks(conn)
    # Each strategy's peak as the views derive it from the capital days (opening capital, the
    # earlier days' net changes, plus the day's excess), exact in micros.
    kept = dict(
        conn.execute(
            "SELECT strategy_id, MAX(opened + excess_micros) FROM (SELECT strategy_id, "
            "excess_micros, SUM(delta_micros) OVER (PARTITION BY strategy_id ORDER BY day "
            "ROWS UNBOUNDED PRECEDING) - delta_micros AS opened FROM agg_capital_days) "
            "GROUP BY strategy_id"
        )
    )
    assert {k: kept[k] for k in reference} == reference
    assert all(v in (0, None) for k, v in kept.items() if k not in reference)
    shown = {
        k: round(v * 1e6)
        for k, v in conn.execute("SELECT strategy_id, peak_capital FROM v_return_on_capital")
    }
    assert shown == {k: _cents_half_up(v) for k, v in reference.items()}
    capital_days = {
        (r[0], r[1]): (r[2], r[3])
        for r in conn.execute(
            "SELECT strategy_id, day, delta_micros, excess_micros FROM agg_capital_days"
        )
    }
    assert capital_days == reference_capital_days(conn)
    assert not conn.execute("SELECT 1 FROM agg_capital_days WHERE stale <> 0").fetchall()
    quarters = {
        tuple(r[:4]): tuple(r[4:])
        for r in conn.execute(
            "SELECT strategy_id, account_id, instrument_id, quarter_end, qty_micros, "
            "basis_micros, last_event_id FROM agg_position_quarters"
        )
    }
    assert quarters == reference_position_quarters(conn)
