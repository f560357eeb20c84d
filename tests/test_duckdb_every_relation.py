"""Every table and view of the ledger reads through the analytics engine (DuckDB's sqlite
scanner, attached read-only), as the SQL editor and Excel/analytics users read it.

The scanner reads a table by rowid ranges, so a table created WITHOUT ROWID (calendar_days,
agg_daily_pnl, agg_daily_trips until migration `*_rowid_tables`) failed every read with
"no such column: ROWID". The migration rebuilds them as rowid tables; the second test checks it
keeps their rows, their primary keys and every view and trigger that names them."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import duckdb
import pytest

from quantstrip.analytics.connection import open_ledger
from quantstrip.db.migrate import _apply, _migrations
from quantstrip.demo import build_demo

REBUILT = ("calendar_days", "agg_daily_pnl", "agg_daily_trips")
END = date(2025, 6, 30)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("every_relation") / "demo.db"
    build_demo(path, seed=5, years=1, end=END)
    return path


def _relations(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')"
        " AND name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()


def test_every_table_and_view_of_a_demo_ledger_reads_through_duckdb(demo_db: Path) -> None:
    sqlite = sqlite3.connect(demo_db)
    relations = _relations(sqlite)
    assert {name for _, name in relations} >= set(REBUILT)
    for table in REBUILT:  # the tables that failed hold data here
        assert sqlite.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
    ledger = open_ledger(demo_db)
    try:
        cur = ledger.cursor()
        failures = {}
        for kind, name in relations:
            expected = sqlite.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            try:
                counted = cur.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                rows = cur.execute(f'SELECT * FROM "{name}"').fetchall()
            except duckdb.Error as error:  # collected, then reported all at once
                failures[f"{kind} {name}"] = str(error).splitlines()[0]
                continue
            assert (counted, len(rows)) == (expected, expected), f"{kind} {name}"
        assert failures == {}
    finally:
        ledger.conn.close()
        sqlite.close()


def _schema(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(
        conn.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('view', 'trigger')")
    )


def test_the_rowid_rebuild_keeps_rows_keys_views_and_triggers(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrations = _migrations()
    rebuild = next(n for n, name, _ in migrations if name.endswith("_rowid_tables.sql"))
    for number, name, script in migrations:
        if number < rebuild:
            _apply(conn, number, name, script)
    pnl = [(1, "2025-01-02", 150, -3, 2), (1, "2025-01-03", -40, -1, 1), (2, "2025-01-02", 7, 0, 1)]
    trips = [(1, "2025-01-02", 3, 2, 1, 900, -200), (2, "2025-01-03", 1, 0, 1, 0, -50)]
    conn.executemany("INSERT INTO agg_daily_pnl VALUES (?, ?, ?, ?, ?)", pnl)
    conn.executemany("INSERT INTO agg_daily_trips VALUES (?, ?, ?, ?, ?, ?, ?)", trips)
    days = conn.execute("SELECT day FROM calendar_days ORDER BY day").fetchall()
    schema = _schema(conn)

    _apply(conn, *migrations[rebuild - 1])  # the rebuild alone: later migrations change more
    assert conn.execute("PRAGMA user_version").fetchone()[0] == rebuild

    assert _schema(conn) == schema  # every view and trigger, byte for byte
    assert conn.execute("SELECT * FROM agg_daily_pnl").fetchall() == pnl
    assert conn.execute("SELECT * FROM agg_daily_trips").fetchall() == trips
    assert conn.execute("SELECT day FROM calendar_days").fetchall() == days
    for table, key in (
        ("calendar_days", ["day"]),
        ("agg_daily_pnl", ["strategy_id", "day"]),
        ("agg_daily_trips", ["strategy_id", "day"]),
    ):
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        assert "WITHOUT ROWID" not in sql.upper()
        pk = sorted((r[5], r[1]) for r in conn.execute(f"PRAGMA table_info({table})") if r[5])
        assert [column for _, column in pk] == key
        unique = [
            [c[2] for c in conn.execute(f"PRAGMA index_info('{index[1]}')")]
            for index in conn.execute(f"PRAGMA index_list({table})")
            if index[2]
        ]
        assert unique == [key]
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO agg_daily_pnl (strategy_id, day) VALUES (1, '2025-01-02')")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO calendar_days (day) VALUES ('2025-01-02')")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO calendar_days (day) VALUES (NULL)")
    # The triggers' upsert still finds the key.
    conn.execute(
        "INSERT INTO agg_daily_pnl (strategy_id, day, fills) VALUES (1, '2025-01-02', 1)"
        " ON CONFLICT (strategy_id, day) DO UPDATE SET fills = fills + 1"
    )
    assert conn.execute(
        "SELECT fills FROM agg_daily_pnl WHERE strategy_id = 1 AND day = '2025-01-02'"
    ).fetchone() == (3,)
    conn.close()
