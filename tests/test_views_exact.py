"""The shared views are exact and engine-independent: fills of 10^10 notional (futures, a block
of shares, spot FX) read the same in SQLite (ODBC/Excel) and DuckDB (report, SQL editor), equal
an exact integer reference, and every built-in query runs over them."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantstrip.analytics import list_queries, run_query
from quantstrip.analytics.connection import connect
from quantstrip.db.handler import Database, ExecutionInput
from quantstrip.db.units import div_round, money, mul_micros, to_micros
from quantstrip.odbc import VIEWS

# (exec_id, strategy, instrument key, side, qty, price, time, commission)
BIG_FILLS = [
    ("f1", "futures", "ES", "BUY", "35000", "5710.25", "2025-03-03T15:00:00Z", "70000.123457"),
    ("f2", "futures", "ES", "SELL", "20000", "5715.125", "2025-03-04T15:00:00Z", "40000.5"),
    ("f3", "futures", "ES", "SELL", "15000", "5702.375", "2025-03-05T15:00:00Z", "30000.25"),
    ("s1", "block", "AAPL", "BUY", "50000000", "200.123457", "2025-03-03T16:00:00Z", "250000.5"),
    ("s2", "block", "AAPL", "SELL", "30000000", "201.987654", "2025-03-04T16:00:00Z", "150000.3"),
    ("s3", "block", "AAPL", "SELL", "20000000", "199.5", "2025-03-05T16:00:00Z", "100000.7"),
    ("x1", "fx", "EUR", "BUY", "9193715500.5", "1.087654", "2025-03-03T17:00:00Z", "183874.31"),
    ("x2", "fx", "EUR", "SELL", "4000000000.25", "1.091234", "2025-03-04T17:00:00Z", "80000.01"),
    ("x3", "fx", "EUR", "SELL", "5193715500.25", "1.085", "2025-03-05T17:00:00Z", "103874.3"),
    ("x4", "fx", "EUR", "BUY", "8000000000", "1.0875", "2025-03-06T17:00:00Z", "160000"),
]
ENGINE_VIEWS = (*VIEWS, "v_closure_net", "v_execution_notional", "v_closure_fee_shares")


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.db"
    with Database(path) as db:
        instruments = {
            "ES": db.ensure_instrument("ES", sec_type="FUT", exchange="CME", multiplier=50),
            "AAPL": db.ensure_instrument("AAPL"),
            "EUR": db.ensure_instrument("EUR", sec_type="CASH", exchange="IDEALPRO"),
        }
        for exec_id, strategy, key, side, qty, price, when, fee in BIG_FILLS:
            db.record_execution(
                ExecutionInput(
                    "sim", "BIG", exec_id, strategy, instruments[key], side, qty, price, when
                )
            )
            db.record_commission(broker="sim", exec_id=exec_id, commission=fee)
    return path


def _rows(rows: list[tuple]) -> list[tuple]:
    """Rows in a comparable order, dates as ISO text (DuckDB gives date, SQLite text)."""
    plain = [tuple(v.isoformat() if isinstance(v, dt.date) else v for v in row) for row in rows]
    return sorted(plain, key=repr)


def test_every_view_gives_the_same_rows_in_sqlite_and_duckdb_on_ten_billion_fills(
    big_db: Path,
) -> None:
    sqlite = sqlite3.connect(big_db)
    duck = connect(big_db)
    for view in ENGINE_VIEWS:
        expected = _rows(sqlite.execute(f"SELECT * FROM {view}").fetchall())
        got = _rows(duck.execute(f"SELECT * FROM {view}").fetchall())
        assert expected, view
        assert got == expected, view  # to the last bit: no engine-specific arithmetic


def test_notional_and_commission_shares_equal_an_exact_integer_reference(big_db: Path) -> None:
    conn = sqlite3.connect(big_db)
    fills = {
        row[0]: row[1:]
        for row in conn.execute(
            "SELECT e.id, e.qty_micros, e.price_micros, i.multiplier_micros, c.commission_micros "
            "FROM executions e JOIN instruments i ON i.id = e.instrument_id "
            "JOIN commissions c ON c.execution_id = e.id"
        )
    }
    notional = dict(conn.execute("SELECT execution_id, notional FROM v_executions"))
    for execution_id, (qty, price, multiplier, _fee) in fills.items():
        assert notional[execution_id] == mul_micros(price, qty, multiplier) / 1e6
    # past 2^53 micros: a path through DOUBLE could not be exact
    assert max(mul_micros(p, q, m) for q, p, m, _ in fills.values()) > 2**53
    trips = conn.execute(
        "SELECT round_trip_id, opening_execution_id, closing_execution_id, qty, gross_pnl, "
        "commission, net_pnl FROM v_round_trips"
    ).fetchall()
    assert len(trips) == 6
    for _id, opening, closing, qty, gross, commission, net in trips:
        matched = to_micros(Decimal(repr(qty)))
        share = sum(div_round(fills[f][3] * matched, fills[f][0]) for f in (opening, closing))
        assert commission == share / 1e6
        assert net == (to_micros(Decimal(repr(gross))) - share) / 1e6
    # Sums of the REAL column are right to the cent; the integer helper is exact to the micro.
    exact_total = sum(mul_micros(p, q, m) for q, p, m, _ in fills.values())
    for engine in (conn, connect(big_db)):
        total = engine.execute("SELECT SUM(notional) FROM v_commissions").fetchone()[0]
        assert money(to_micros(Decimal(repr(total)))) == money(exact_total)
        micros = engine.execute("SELECT SUM(notional_micros) FROM v_execution_notional")
        assert int(micros.fetchone()[0]) == exact_total


def test_every_builtin_query_runs_on_ten_billion_fills(big_db: Path) -> None:
    for query in list_queries():
        if query.source != "builtin":
            continue
        frame = run_query(query.sql, db_path=big_db)
        assert len(frame) > 0, query.name
    by_symbol = run_query(
        next(q.sql for q in list_queries() if q.name == "pnl_by_symbol"), db_path=big_db
    )
    conn = sqlite3.connect(big_db)
    for strategy, symbol, net in by_symbol[["strategy", "symbol", "net_pnl"]].itertuples(
        index=False
    ):
        micros = sum(
            to_micros(Decimal(repr(v)))
            for (v,) in conn.execute(
                "SELECT net_pnl FROM v_round_trips WHERE strategy = ? AND symbol = ?",
                (strategy, symbol),
            )
        )
        assert net == float(money(micros))
    commission = run_query(
        next(q.sql for q in list_queries() if q.name == "commission_analysis"), db_path=big_db
    )
    for strategy, notional, fee in commission[["strategy", "notional", "commission"]].itertuples(
        index=False
    ):
        rows = conn.execute(
            "SELECT e.qty_micros, e.price_micros, i.multiplier_micros, c.commission_micros "
            "FROM executions e JOIN strategies s ON s.id = e.strategy_id "
            "JOIN instruments i ON i.id = e.instrument_id "
            "JOIN commissions c ON c.execution_id = e.id WHERE s.name = ?",
            (strategy,),
        ).fetchall()
        assert notional == float(money(sum(mul_micros(p, q, m) for q, p, m, _ in rows)))
        assert fee == float(money(sum(row[3] for row in rows)))
    assert commission["notional"].max() > 2e10  # ~10^10 a fill, all in one month


domain = st.tuples(
    st.integers(1, 10**17),  # qty micros (10^11 units)
    st.integers(0, 10**17),  # price micros
    st.integers(1, 10**13),  # multiplier micros
).filter(lambda t: t[0] * t[1] * t[2] < 9 * 10**30)  # notional below 9 x 10^12 units
shares = st.tuples(
    st.integers(-(10**15), 10**15),  # commission micros (a billion a fill)
    st.integers(1, 10**18),  # fill qty micros
).flatmap(lambda t: st.tuples(st.just(t[0]), st.integers(1, t[1]), st.just(t[1])))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fills=st.lists(domain, min_size=1, max_size=40),
    splits=st.lists(shares, min_size=1, max_size=40),
)
def test_the_exact_arithmetic_holds_across_its_domain_in_both_engines(
    tmp_path_factory: pytest.TempPathFactory,
    fills: list[tuple[int, int, int]],
    splits: list[tuple[int, int, int]],
) -> None:
    """Raw rows straight into the tables (no position engine): the views' integer arithmetic
    against Python's exact integers, at the edges of the documented domain."""
    path = tmp_path_factory.mktemp("domain") / "d.db"
    Database(path).close()
    conn = sqlite3.connect(path)
    now = "2025-01-01 00:00:00.000000"
    conn.execute(
        "INSERT INTO accounts (id, broker, account_code, created_at) VALUES (1, 'x', 'A', ?)",
        (now,),
    )
    conn.execute("INSERT INTO strategies (id, name, created_at) VALUES (1, 's', ?)", (now,))
    expected_notional, expected_share = {}, {}
    for n, (qty, price, multiplier) in enumerate(fills, start=1):
        conn.execute(
            "INSERT INTO instruments (id, symbol, multiplier_micros, created_at) "
            "VALUES (?, ?, ?, ?)",
            (n, f"I{n}", multiplier, now),
        )
        conn.execute(
            "INSERT INTO executions (id, broker, account_id, exec_id, base_exec_id, strategy_id, "
            "instrument_id, side, qty_micros, price_micros, exec_time, recorded_at) "
            "VALUES (?, 'x', 1, ?, ?, 1, ?, 'BUY', ?, ?, ?, ?)",
            (n, f"E{n}", f"E{n}", n, qty, price, now, now),
        )
        expected_notional[n] = mul_micros(price, qty, multiplier)
    for k, (fee, matched, fill_qty) in enumerate(splits, start=1):
        opening, closing = 10_000 + 2 * k, 10_001 + 2 * k
        for execution_id, fee_micros in ((opening, fee), (closing, -fee // 3)):
            conn.execute(
                "INSERT INTO executions (id, broker, account_id, exec_id, base_exec_id, "
                "strategy_id, instrument_id, side, qty_micros, price_micros, exec_time, "
                "recorded_at) VALUES (?, 'x', 1, ?, ?, 1, 1, 'BUY', ?, 1, ?, ?)",
                (execution_id, f"E{execution_id}", f"E{execution_id}", fill_qty, now, now),
            )
            conn.execute(
                "INSERT INTO commissions (broker, exec_id, execution_id, commission_micros, "
                "recorded_at) VALUES ('x', ?, ?, ?, ?)",
                (f"E{execution_id}", execution_id, fee_micros, now),
            )
        conn.execute(
            "INSERT INTO position_closures (id, closing_execution_id, opening_execution_id, "
            "strategy_id, account_id, instrument_id, direction, qty_micros, entry_time, "
            "entry_price_micros, exit_time, exit_price_micros, realized_pnl_gross_micros) "
            "VALUES (?, ?, ?, 1, 1, 1, 'LONG', ?, ?, 0, ?, 0, 0)",
            (k, closing, opening, matched, now, now),
        )
        expected_share[(k, "opening")] = div_round(fee * matched, fill_qty)
        expected_share[(k, "closing")] = div_round((-fee // 3) * matched, fill_qty)
    conn.commit()
    duck = connect(path)
    for engine in (conn, duck):
        notional = dict(
            engine.execute(
                "SELECT execution_id, notional_micros FROM v_execution_notional "
                "WHERE execution_id < 10000"
            ).fetchall()
        )
        assert notional == expected_notional
        got = {
            (closure, role): fee
            for closure, role, fee in engine.execute(
                "SELECT closure_id, role, fee_micros FROM v_closure_fee_shares"
            ).fetchall()
        }
        assert got == expected_share
    duck.close()
    conn.close()
