"""Full portfolio report on 1,000,000 executions across 50 strategies.

Prints the time of `portfolio_report` (DuckDB over the read-only SQLite attach, reading the
trigger-kept aggregates behind v_daily_pnl / v_daily_trades / v_return_on_capital) beside a plain
pandas-over-sqlite3 baseline computing the same figures from the individual fills and round trips
in the same run, and their ratio. Target: the full report well under a second.
The database is bulk-generated directly in the schema (generation is not what is measured):
each strategy buys 100 shares and sells them later the same day, so every other fill closes a
round trip. Usage: python bench/report.py [executions] (default 1,000,000).
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from quantstrip.analytics import portfolio_report
from quantstrip.analytics.metrics import max_drawdown, sharpe
from quantstrip.db.handler import Database

STRATEGIES = 50
M = 1_000_000


def generate(path: Path, executions: int) -> None:
    Database(path).close()  # schema
    rng = random.Random(1)
    conn = sqlite3.connect(path)
    now = "2026-01-01 00:00:00.000000"
    conn.execute(
        "INSERT INTO accounts (id, broker, account_code, created_at) VALUES (1, 'sim', 'B', ?)",
        (now,),
    )
    conn.executemany(
        "INSERT INTO strategies (id, name, created_at) VALUES (?, ?, ?)",
        [(s, f"strategy_{s:02d}", now) for s in range(1, STRATEGIES + 1)],
    )
    conn.executemany(
        "INSERT INTO instruments (id, symbol, created_at) VALUES (?, ?, ?)",
        [(s, f"SYM{s:02d}", now) for s in range(1, STRATEGIES + 1)],
    )
    pairs = executions // 2
    per_strategy = pairs // STRATEGIES
    days = [
        date(2016, 1, 4) + timedelta(days=d)
        for d in range(0, 3650)
        if (date(2016, 1, 4) + timedelta(days=d)).weekday() < 5
    ]
    execs, events, fees, closures = [], [], [], []
    exec_id = 0
    for s in range(1, STRATEGIES + 1):
        price = 100_000_000
        for n in range(per_strategy):
            day = days[(n * len(days)) // per_strategy]
            buy_px = price
            sell_px = max(1_000_000, price + rng.randint(-2_000_000, 2_100_000))
            price = sell_px
            t_buy, t_sell = f"{day} 14:{n % 60:02d}:00.000000", f"{day} 15:{n % 60:02d}:00.000000"
            qty = 100_000_000
            pnl = (sell_px - buy_px) * 100
            for side, px, t, before, after, basis_b, basis_a, realised in (
                ("BUY", buy_px, t_buy, 0, qty, 0, buy_px * 100, 0),
                ("SELL", sell_px, t_sell, qty, 0, buy_px * 100, 0, pnl),
            ):
                exec_id += 1
                execs.append(
                    (exec_id, "sim", 1, f"E{exec_id}", f"E{exec_id}", s, s, side, qty, px, t, now)
                )
                events.append(
                    (exec_id, s, 1, s, before, after, 0, 0, basis_b, basis_a, realised, "fifo", t)
                )
                fees.append(("sim", f"E{exec_id}", exec_id, 1_000_000, now))
            closures.append(
                (exec_id, exec_id - 1, s, 1, s, "LONG", qty, t_buy, buy_px, t_sell, sell_px, pnl)
            )
    conn.executemany(
        "INSERT INTO executions (id, broker, account_id, exec_id, base_exec_id, strategy_id, "
        "instrument_id, side, qty_micros, price_micros, exec_time, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        execs,
    )
    conn.executemany(
        "INSERT INTO position_events (execution_id, strategy_id, account_id, instrument_id, "
        "qty_before_micros, qty_after_micros, avg_cost_before_micros, avg_cost_after_micros, "
        "cost_basis_before_micros, cost_basis_after_micros, realized_pnl_gross_micros, method, "
        "event_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        events,
    )
    conn.executemany(
        "INSERT INTO commissions (broker, exec_id, execution_id, commission_micros, recorded_at) "
        "VALUES (?, ?, ?, ?, ?)",
        fees,
    )
    conn.executemany(
        "INSERT INTO position_closures (closing_execution_id, opening_execution_id, strategy_id, "
        "account_id, instrument_id, direction, qty_micros, entry_time, entry_price_micros, "
        "exit_time, exit_price_micros, realized_pnl_gross_micros) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        closures,
    )
    conn.commit()
    conn.close()


def pandas_baseline(path: Path) -> pd.DataFrame:
    """The same figures with pandas.read_sql over sqlite3 and plain pandas."""
    conn = sqlite3.connect(path)
    # From the fills themselves (what a report without the aggregate tables has to do).
    daily = pd.read_sql(
        "SELECT s.name AS strategy, substr(e.exec_time, 1, 10) AS date, "
        "SUM(pe.realized_pnl_gross_micros) / 1e6 AS gross_pnl, "
        "SUM(COALESCE(c.commission_micros, 0)) / 1e6 AS commission, "
        "(SUM(pe.realized_pnl_gross_micros) - SUM(COALESCE(c.commission_micros, 0))) / 1e6 "
        "AS net_pnl FROM executions e JOIN position_events pe ON pe.execution_id = e.id "
        "JOIN strategies s ON s.id = e.strategy_id "
        "LEFT JOIN commissions c ON c.execution_id = e.id "
        "WHERE e.superseded_by IS NULL GROUP BY e.strategy_id, 2",
        conn,
    )
    trips = pd.read_sql("SELECT strategy, net_pnl FROM v_round_trips", conn)
    conn.close()
    daily["date"] = pd.to_datetime(daily["date"])
    pnl = daily.pivot_table(index="date", columns="strategy", values="net_pnl", aggfunc="sum")
    pnl = pnl.reindex(pd.bdate_range(pnl.index.min(), pnl.index.max())).fillna(0.0)
    rows = {}
    for name in pnl.columns:
        equity = pnl[name].cumsum() + 100_000
        t = trips[trips["strategy"] == name]
        rows[name] = {
            "net_pnl": pnl[name].sum(),
            "sharpe": sharpe(pnl[name] / 100_000),
            "max_drawdown": max_drawdown(equity).depth,
            "trades": len(t),
            "win_rate": (t["net_pnl"] > 0).mean(),
        }
    return pd.DataFrame(rows).T


def timed(fn, *args, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    executions = int(sys.argv[1]) if len(sys.argv) > 1 else M
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        start = time.perf_counter()
        generate(path, executions)
        print(f"generated {executions:,} executions in {time.perf_counter() - start:.1f} s")
        duck = timed(lambda: portfolio_report(path))
        base = timed(pandas_baseline, path)
        report = portfolio_report(path)
        check = pandas_baseline(path)
        for name in check.index:
            # the report rounds to the cent; the baseline keeps the float sum
            assert abs(report.stats.loc[name].net_pnl - check.loc[name].net_pnl) <= 0.005 + 1e-9
        print(f"portfolio report (DuckDB over the aggregate views): {duck:.3f} s")
        print(f"baseline (pandas over sqlite3 from the fills, same figures): {base:.3f} s")
        print(f"ratio baseline/duckdb: {base / duck:.2f}x")


if __name__ == "__main__":
    main()
