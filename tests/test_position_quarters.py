"""The position at each day's end comes from agg_position_quarters (migration 0014), kept exact by
the writer's triggers, so the portfolio page's mark-to-market reads per-quarter-hour states and
not every position event ever recorded (issue 18: 3.6x a trivial page at 1M executions)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from support.aggregates import assert_aggregates_match, reference_position_quarters
from support.ledger import fill

from quantstrip.analytics.connection import cursor, reset
from quantstrip.analytics.mark_to_market import UNREALISED_BY_DAY, day_ends, unrealised_by_day
from quantstrip.brokers import InstrumentSpec
from quantstrip.brokers.marks import MarkEvent, store_mark
from quantstrip.db.handler import Database

ZONE = "America/New_York"  # EST in early March 2031: midnight is 05:00 UTC


@pytest.fixture
def path(tmp_path: Path):
    reset()
    yield tmp_path / "q.db"
    reset()


def _mark(db: Database, symbol: str, price: str, when: datetime) -> None:
    event = MarkEvent("sim", InstrumentSpec(symbol), Decimal(price), when, "manual")
    store_mark(db.conn, db.ensure_instrument(symbol), event)


def test_a_fill_after_utc_midnight_but_before_the_zones_midnight_is_held_that_day(
    path: Path,
) -> None:
    # Mon 3 Mar 2031 23:50 New York (Tue 04:50 UTC): buy 10 at 100; Tue 00:05 New York (05:05
    # UTC): sell 10 at 102. The sale is recorded first and the buy arrives late (a replay).
    with Database(path) as db:
        fill(db, "S1", "SELL", 10, "102", "2031-03-04T05:05:00Z")
        fill(db, "B1", "BUY", 10, "100", "2031-03-04T04:50:00Z")
        _mark(db, "AAPL", "101", datetime(2031, 3, 4, 4, 55, tzinfo=UTC))
        _mark(db, "AAPL", "102", datetime(2031, 3, 4, 21, 0, tzinfo=UTC))
        assert_aggregates_match(db)
    days = pd.DatetimeIndex(["2031-03-03", "2031-03-04"])
    result = unrealised_by_day(days, ["s"], ZONE, path)
    # Monday's end (Tue 05:00 UTC): long 10 bought at 100, marked 101: +10. Tuesday: flat.
    assert list(result.values["s"]) == [10.0, 0.0]
    assert list(result.stale["s"]) == [0, 0]


def test_the_day_end_positions_are_read_without_scanning_position_events(path: Path) -> None:
    with Database(path) as db:
        fill(db, "B1", "BUY", 10, "100", "2031-03-03T15:00:00Z")
    days = pd.DatetimeIndex(["2031-03-03"])
    params = {
        "days": [d.date() for d in days],
        "ends": day_ends(days, ZONE),
        "stale_before": day_ends(days, ZONE),
        "names": ["s"],
    }
    conn = cursor(path)
    try:
        rows = conn.execute(f"EXPLAIN {UNREALISED_BY_DAY}", params).fetchall()
        plan = "\n".join(row[1] for row in rows)
    finally:
        conn.close()
    assert "agg_position_quarters" in plan
    assert "position_events" not in plan


def test_quarters_follow_fills_in_one_quarter_arriving_out_of_order_and_a_rebuild(
    path: Path,
) -> None:
    with Database(path) as db:
        fill(db, "B1", "BUY", 10, "100", "2031-03-03T15:01:00Z")
        fill(db, "B3", "BUY", 5, "101", "2031-03-03T15:14:59Z")
        fill(db, "B2", "BUY", 7, "99", "2031-03-03T15:07:00Z")  # late, same quarter
        fill(db, "S1", "SELL", 22, "103", "2031-03-03T23:59:00Z")  # the last quarter of the UTC day
        fill(db, "B4", "BUY", 1, "104", "2031-03-03T15:15:00Z")  # next quarter, late
        assert_aggregates_match(db)
        rows = [
            tuple(row)
            for row in db.conn.execute(
                "SELECT quarter_end, qty_micros FROM agg_position_quarters ORDER BY quarter_end"
            )
        ]
        assert rows == [
            ("2031-03-03 15:15:00.000000", 22_000_000),  # B1, B3 and the late B2
            ("2031-03-03 15:30:00.000000", 23_000_000),  # B4
            ("2031-03-04 00:00:00.000000", 1_000_000),  # S1 across midnight UTC
        ]
        db.rebuild_positions()
        assert_aggregates_match(db)


def test_the_migrations_backfill_equals_the_reference_for_an_existing_ledger(
    path: Path,
) -> None:
    with Database(path) as db:
        for n in range(8):
            when = f"2031-03-0{3 + n % 3}T1{n}:0{n}:00Z"
            fill(db, f"E{n}", "BUY" if n % 2 else "SELL", 3, "100", when)
    conn = sqlite3.connect(path)
    expected = reference_position_quarters(conn)
    conn.execute("DELETE FROM agg_position_quarters")
    conn.execute("INSERT INTO agg_position_quarters SELECT * FROM v_position_quarters_recomputed")
    rebuilt = {
        tuple(r[:4]): tuple(r[4:])
        for r in conn.execute(
            "SELECT strategy_id, account_id, instrument_id, quarter_end, qty_micros, "
            "basis_micros, last_event_id FROM agg_position_quarters"
        )
    }
    conn.close()
    assert rebuilt == expected


def test_a_midnight_off_the_quarter_hour_is_refused() -> None:
    # Amsterdam kept local mean time +00:19:32 until 1937.
    with pytest.raises(ValueError, match="not on a quarter hour"):
        day_ends(pd.DatetimeIndex(["1930-06-02"]), "Europe/Amsterdam")
