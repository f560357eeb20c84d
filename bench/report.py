"""Full portfolio report at 300,000 and 1,000,000 executions across 50 strategies.

For each size, prints the median time of `portfolio_report` (DuckDB over the read-only SQLite
attach, one engine per process, reading the aggregate views v_daily_pnl and v_strategy_days /
v_performance) beside a baseline measured in the same run: pandas over sqlite3 reading the same
views and computing the same figures (daily PnL, equity, drawdown, Sharpe, trades, win rate,
profit factor, peak capital), and their ratio. Goal: <= 0.3 s at 1M, flat from 300k up.

The database is generated directly in the schema (generation is not what is measured): base rows
(fills, commissions, position events, round trips) are bulk-inserted, the aggregates built from
them in one pass each, then the writer's capital refresh runs for every strategy, and the bench
checks that no capital row is left stale (a stale row would make the readers measure something
else). Each strategy buys 100 shares and sells them later the same day, so every other fill
closes a round trip.
Usage: python bench/report.py [executions ...] (default 300000 1000000) [--repeat N].
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from quantstrip.analytics import portfolio_report
from quantstrip.analytics.connection import reset
from quantstrip.analytics.metrics import max_drawdown, sharpe
from quantstrip.db.handler import Database
from quantstrip.db.units import money, to_micros

STRATEGIES = 50
NOW = "2026-01-01 00:00:00.000000"


def _base_rows(executions: int) -> dict[str, list[tuple]]:
    rng = random.Random(1)
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
                    (exec_id, "sim", 1, f"E{exec_id}", f"E{exec_id}", s, s, side, qty, px, t, NOW)
                )
                events.append(
                    (exec_id, s, 1, s, before, after, 0, 0, basis_b, basis_a, realised, "fifo", t)
                )
                fees.append(("sim", f"E{exec_id}", exec_id, 1_000_000, NOW))
            closures.append(
                (exec_id, exec_id - 1, s, 1, s, "LONG", qty, t_buy, buy_px, t_sell, sell_px, pnl)
            )
    return {
        "executions": execs,
        "position_events": events,
        "commissions": fees,
        "position_closures": closures,
    }


# The aggregates built from the base rows in one pass each (what the triggers would have kept
# row by row), none of them left stale.
BACKFILL = (
    "INSERT INTO agg_daily_pnl (strategy_id, day, gross_micros, commission_micros, fills) "
    "SELECT pe.strategy_id, substr(pe.event_time, 1, 10), SUM(pe.realized_pnl_gross_micros), "
    "SUM(COALESCE(c.commission_micros, 0)), COUNT(*) FROM position_events pe "
    "LEFT JOIN commissions c ON c.execution_id = pe.execution_id GROUP BY 1, 2",
    "INSERT INTO agg_daily_trips (strategy_id, day, trades, wins, losses, win_micros, "
    "loss_micros) SELECT strategy_id, day, COUNT(*), SUM(net_micros > 0), SUM(net_micros < 0), "
    "SUM(MAX(net_micros, 0)), SUM(MIN(net_micros, 0)) FROM v_closure_net GROUP BY 1, 2",
    # the day's figures in base (migration 0018): here every amount is in its base, USD
    "UPDATE agg_daily_pnl SET (gross_base_micros, commission_base_micros, unconverted, "
    "foreign_amounts) = (r.gross_base_micros, r.commission_base_micros, r.unconverted, "
    "r.foreign_amounts) FROM v_daily_base_recomputed AS r "
    "WHERE agg_daily_pnl.strategy_id = r.strategy_id AND agg_daily_pnl.day = r.day",
    "INSERT INTO agg_capital_days (strategy_id, day, delta_micros, excess_micros, "
    "last_event_time, last_event_id, events, stale) SELECT strategy_id, day, delta_micros, "
    "excess_micros, last_event_time, last_event_id, events, 0 FROM v_capital_day_recomputed",
    "INSERT INTO agg_position_quarters (strategy_id, account_id, instrument_id, quarter_end, "
    "qty_micros, basis_micros, last_event_time, last_event_id) SELECT strategy_id, account_id, "
    "instrument_id, quarter_end, qty_micros, basis_micros, last_event_time, last_event_id "
    "FROM v_position_quarters_recomputed",
)


def generate(path: Path, executions: int) -> None:
    Database(path).close()  # the schema
    conn = sqlite3.connect(path)
    triggers = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(
        "INSERT INTO accounts (id, broker, account_code, created_at) VALUES (1, 'sim', 'B', ?)",
        (NOW,),
    )
    conn.executemany(
        "INSERT INTO strategies (id, name, created_at) VALUES (?, ?, ?)",
        [(s, f"strategy_{s:02d}", NOW) for s in range(1, STRATEGIES + 1)],
    )
    conn.executemany(
        "INSERT INTO instruments (id, symbol, created_at) VALUES (?, ?, ?)",
        [(s, f"SYM{s:02d}", NOW) for s in range(1, STRATEGIES + 1)],
    )
    rows = _base_rows(executions)
    conn.executemany(
        "INSERT INTO executions (id, broker, account_id, exec_id, base_exec_id, strategy_id, "
        "instrument_id, side, qty_micros, price_micros, exec_time, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows["executions"],
    )
    conn.executemany(
        "INSERT INTO position_events (execution_id, strategy_id, account_id, instrument_id, "
        "qty_before_micros, qty_after_micros, avg_cost_before_micros, avg_cost_after_micros, "
        "cost_basis_before_micros, cost_basis_after_micros, realized_pnl_gross_micros, method, "
        "event_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows["position_events"],
    )
    conn.executemany(
        "INSERT INTO commissions (broker, exec_id, execution_id, commission_micros, recorded_at) "
        "VALUES (?, ?, ?, ?, ?)",
        rows["commissions"],
    )
    conn.executemany(
        "INSERT INTO position_closures (closing_execution_id, opening_execution_id, strategy_id, "
        "account_id, instrument_id, direction, qty_micros, entry_time, entry_price_micros, "
        "exit_time, exit_price_micros, realized_pnl_gross_micros) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows["position_closures"],
    )
    for statement in BACKFILL:
        conn.execute(statement)
    for (sql,) in triggers:
        conn.execute(sql)
    conn.commit()
    stale = conn.execute("SELECT COUNT(*) FROM agg_capital_days WHERE stale <> 0").fetchone()[0]
    net = conn.execute(
        "SELECT (SELECT SUM(gross_base_micros - commission_base_micros) FROM agg_daily_pnl) - "
        "((SELECT SUM(realized_pnl_gross_micros) FROM position_events) "
        "- (SELECT SUM(commission_micros) FROM commissions))"
    ).fetchone()[0]
    conn.close()
    if stale or net:
        raise SystemExit(f"generation left {stale} stale capital rows, net PnL off by {net}")


def pandas_baseline(path: Path) -> pd.DataFrame:
    """The same figures with pandas.read_sql over sqlite3, from the same aggregate views."""
    conn = sqlite3.connect(path)
    daily = pd.read_sql("SELECT strategy, date, net_pnl FROM v_daily_pnl", conn)
    days = pd.read_sql(
        "SELECT strategy, gross_pnl, commission, net_pnl, trades, wins, losses, win_pnl, "
        "loss_pnl, capital_peak FROM v_strategy_days",
        conn,
    )
    conn.close()
    daily["date"] = pd.to_datetime(daily["date"])
    pnl = daily.pivot_table(index="date", columns="strategy", values="net_pnl", aggfunc="sum")
    pnl = pnl.reindex(pd.bdate_range(pnl.index.min(), pnl.index.max())).fillna(0.0)
    sums = days.groupby("strategy").agg(
        net_pnl=("net_pnl", "sum"),
        trades=("trades", "sum"),
        wins=("wins", "sum"),
        win_pnl=("win_pnl", "sum"),
        loss_pnl=("loss_pnl", "sum"),
        peak_capital=("capital_peak", "max"),
    )
    rows = {}
    for name in pnl.columns:
        equity = pnl[name].cumsum() + 100_000
        row = sums.loc[name]
        rows[name] = {
            "net_pnl": float(money(to_micros(float(row.net_pnl)))),  # half up, as the report
            "sharpe": sharpe(pnl[name] / 100_000),
            "max_drawdown": max_drawdown(equity).depth,
            "trades": row.trades,
            "win_rate": row.wins / row.trades,
            "profit_factor": row.win_pnl / -row.loss_pnl,
            "return_on_capital": row.net_pnl / row.peak_capital,
        }
    return pd.DataFrame(rows).T


def median_time(fn, path: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(folder: Path, executions: int, repeat: int) -> tuple[float, float]:
    path = folder / f"bench_{executions}.db"
    start = time.perf_counter()
    generate(path, executions)
    print(f"generated {executions:,} executions in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    report = portfolio_report(path)  # opens this process's engine over the file
    first = time.perf_counter() - start
    duck = median_time(portfolio_report, path, repeat)
    base = median_time(pandas_baseline, path, repeat)
    check = pandas_baseline(path)
    for name in check.index:
        assert abs(report.stats.loc[name].net_pnl - check.loc[name].net_pnl) <= 0.005 + 1e-9, name
        assert report.stats.loc[name].trades == check.loc[name].trades
    print(
        f"  portfolio report: median {duck:.3f} s of {repeat} (first call, opening the engine: "
        f"{first:.3f} s); pandas over the same views: median {base:.3f} s; "
        f"ratio report/pandas {duck / base:.2f}x"
    )
    reset()
    return duck, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[300_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            results[size] = run(Path(folder), size, args.repeat)
    if len(results) > 1:
        small, large = min(results), max(results)
        growth = results[large][0] / results[small][0]
        print(f"report time {large:,} vs {small:,}: {growth:.2f}x (flat is 1.0x)")


if __name__ == "__main__":
    main()
