"""Portfolio report over the demo history: every figure equals the views' to the cent, metrics
agree with an independent computation, the query library reads but never writes."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from support import half_cents

from quantstrip.analytics import charts, list_queries, portfolio_report, run_query
from quantstrip.analytics.connection import connect
from quantstrip.analytics.queries import QueryHandle, ReadOnlyQueryError
from quantstrip.db.handler import Database
from quantstrip.demo import build_demo

END = date(2025, 6, 30)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("analytics") / "demo.db"
    build_demo(path, seed=5, years=2, end=END)
    return path


def cents(value: float) -> int:
    return round(value * 100)


def test_every_report_figure_equals_the_views_to_the_cent(demo_db: Path) -> None:
    report = portfolio_report(demo_db, today=END)
    sql = sqlite3.connect(demo_db)
    per_strategy = {
        row[0]: row[1:]
        for row in sql.execute(
            "SELECT strategy, SUM(net_pnl), SUM(gross_pnl), SUM(commission) FROM v_daily_pnl "
            "GROUP BY strategy"
        )
    }
    trips = dict(sql.execute("SELECT strategy, COUNT(*) FROM v_round_trips GROUP BY strategy"))
    commissions = dict(
        sql.execute("SELECT strategy, SUM(commission) FROM v_commissions GROUP BY 1")
    )
    # v_daily_pnl and v_daily_trades read trigger-kept aggregates: check them against views
    # computed from the individual fills and round trips as well.
    gross_by_fill = dict(
        sql.execute("SELECT strategy, SUM(realized_pnl_gross) FROM v_position_history GROUP BY 1")
    )
    win_rates = dict(sql.execute("SELECT strategy, AVG(net_pnl > 0) FROM v_round_trips GROUP BY 1"))
    assert set(per_strategy) == set(report.stats.index) - {"Portfolio"}
    for strategy, (net, gross, fee) in per_strategy.items():
        row = report.stats.loc[strategy]
        assert cents(row.net_pnl) == cents(net)
        assert cents(row.gross_pnl) == cents(gross)
        assert cents(row.commission) == cents(fee) == cents(commissions[strategy])
        assert cents(row.gross_pnl) == cents(gross_by_fill[strategy])
        assert row.trades == trips[strategy]
        assert row.win_rate == pytest.approx(win_rates[strategy], abs=1e-12)
    portfolio = report.stats.loc["Portfolio"]
    assert cents(portfolio.net_pnl) == cents(sum(v[0] for v in per_strategy.values()))
    by_query = run_query(
        next(q.sql for q in list_queries() if q.name == "pnl_by_strategy"), db_path=demo_db
    )
    for _, row in by_query.iterrows():
        assert cents(row.net_pnl) == cents(report.stats.loc[row.strategy].net_pnl)
    trade_stats = run_query(
        next(q.sql for q in list_queries() if q.name == "win_rate_by_strategy"), db_path=demo_db
    )
    for _, row in trade_stats.iterrows():
        stats = report.stats.loc[row.strategy]
        assert row.trades == stats.trades == trips.get(row.strategy, sum(trips.values()))
        assert row.win_rate == pytest.approx(stats.win_rate, abs=5e-5)
        assert cents(row.avg_win) == cents(stats.avg_win)
        assert cents(row.avg_loss) == cents(stats.avg_loss)
        assert row.profit_factor == pytest.approx(stats.profit_factor, abs=5e-5)
    monthly = run_query(
        next(q.sql for q in list_queries() if q.name == "monthly_pnl"), db_path=demo_db
    )
    for strategy, months in monthly.groupby("strategy"):
        # each month is rounded to the cent: the sum may differ by half a cent per month
        tolerance = 0.005 * len(months) + 0.005
        assert abs(months["net_pnl"].sum() - report.stats.loc[strategy].net_pnl) <= tolerance
    final_equity = report.equity["Portfolio"].iloc[-1]
    assert cents(final_equity - 300_000) == cents(portfolio.net_pnl)


def test_half_cent_totals_read_the_same_in_the_report_and_the_sql_editor(tmp_path: Path) -> None:
    path = half_cents.build(tmp_path / "half.db")
    report = portfolio_report(path, today=END)
    by_query = run_query(
        next(q.sql for q in list_queries() if q.name == "pnl_by_strategy"), db_path=path
    ).set_index("strategy")
    monthly = run_query(
        next(q.sql for q in list_queries() if q.name == "monthly_pnl"), db_path=path
    ).set_index("strategy")
    view = (
        connect(path)
        .execute("SELECT strategy, net_pnl, commission FROM v_return_on_capital")
        .fetchall()
    )
    in_view = {strategy: (net, fee) for strategy, net, fee in view}
    for strategy, (net, commission) in half_cents.EXPECTED.items():
        assert report.stats.loc[strategy].net_pnl == float(net), strategy
        assert report.stats.loc[strategy].commission == float(commission), strategy
        assert by_query.loc[strategy].net_pnl == float(net), strategy
        assert by_query.loc[strategy].commission == float(commission), strategy
        assert monthly.loc[strategy].net_pnl == float(net), strategy
        assert in_view[strategy] == (float(net), float(commission)), strategy


STAT_COLUMNS = [
    "net_pnl",
    "gross_pnl",
    "commission",
    "trades",
    "win_rate",
    "avg_win",
    "avg_loss",
    "profit_factor",
    "peak_capital",
    "return_on_capital",
]


def _same(a: object, b: object) -> bool:
    missing = (a is None or (isinstance(a, float) and math.isnan(a)), b is None)
    return all(missing) if any(missing) else a == b


def test_the_report_reads_every_strategy_figure_from_v_performance(demo_db: Path) -> None:
    """One definition: the report, the SQL editor (DuckDB) and Excel (SQLite) show the same
    win rate, profit factor, averages, peak capital and return on capital, to the last bit."""
    report = portfolio_report(demo_db, today=END).stats
    sqlite = sqlite3.connect(demo_db)
    columns = ", ".join(STAT_COLUMNS)
    for engine in (sqlite, connect(demo_db)):
        rows = engine.execute(f"SELECT strategy, {columns} FROM v_performance").fetchall()
        assert {row[0] for row in rows} == set(report.index)
        for strategy, *values in rows:
            for column, value in zip(STAT_COLUMNS, values, strict=True):
                assert _same(report.loc[strategy, column], value), (strategy, column)
    editor = run_query(
        next(q.sql for q in list_queries() if q.name == "win_rate_by_strategy"), db_path=demo_db
    ).set_index("strategy")
    for strategy, row in editor.iterrows():
        for column in ("trades", "win_rate", "avg_win", "avg_loss", "profit_factor"):
            assert _same(report.loc[strategy, column], row[column]), (strategy, column)
    roc = dict(sqlite.execute("SELECT strategy, return_on_capital FROM v_return_on_capital"))
    for strategy, value in roc.items():
        assert report.loc[strategy, "return_on_capital"] == value


def _trade(db: Database, exec_id: str, strategy: str, side: str, qty: int, price: str, when: str):
    from quantstrip.db.handler import ExecutionInput

    instrument = db.ensure_instrument(f"{strategy}_SYM")
    db.record_execution(
        ExecutionInput("sim", "ACC", exec_id, strategy, instrument, side, qty, price, when)
    )


def test_a_horizon_narrows_return_on_capital_above_and_below_the_line(tmp_path: Path) -> None:
    """2025's return is 2025's PnL over the capital deployed in 2025 (a 100,000 position of
    2024 does not dilute it), and capital carried into 2025 counts."""
    path = tmp_path / "horizon.db"
    with Database(path) as db:
        _trade(db, "1", "big_then_small", "BUY", 1000, "100", "2024-03-01T15:00:00Z")
        _trade(db, "2", "big_then_small", "SELL", 1000, "110", "2024-03-05T15:00:00Z")
        _trade(db, "3", "big_then_small", "BUY", 10, "100", "2025-02-03T15:00:00Z")
        _trade(db, "4", "big_then_small", "SELL", 10, "101", "2025-02-04T15:00:00Z")
        _trade(db, "5", "carried", "BUY", 500, "10", "2024-12-30T15:00:00Z")
        _trade(db, "6", "carried", "SELL", 200, "11", "2025-02-03T15:00:00Z")
        _trade(db, "7", "carried", "SELL", 300, "9", "2025-02-04T15:00:00Z")
    stats = portfolio_report(path, horizon="ytd", today=date(2025, 6, 30)).stats
    small = stats.loc["big_then_small"]
    assert small.return_on_capital == pytest.approx(0.01)  # not 10 / 100,000
    assert (small.net_pnl, small.peak_capital) == (10.0, 1000.0)
    carried = stats.loc["carried"]
    assert (carried.net_pnl, carried.peak_capital) == (-100.0, 5000.0)
    assert (carried.trades, carried.win_rate) == (2, 0.5)
    assert carried.profit_factor == pytest.approx(200 / 300)
    # Together: 5,000 carried in plus the 1,000 bought on 3 February while it was held.
    assert stats.loc["Portfolio"].peak_capital == 6000.0
    everything = portfolio_report(path, today=date(2025, 6, 30)).stats
    assert everything.loc["big_then_small"].peak_capital == 100_000.0


def test_the_portfolio_peak_is_the_peak_of_the_sum_not_the_sum_of_peaks(tmp_path: Path) -> None:
    path = tmp_path / "peaks.db"
    with Database(path) as db:
        _trade(db, "1", "january", "BUY", 1000, "100", "2025-01-06T15:00:00Z")
        _trade(db, "2", "january", "SELL", 1000, "101", "2025-01-10T15:00:00Z")
        _trade(db, "3", "march", "BUY", 1000, "100", "2025-03-03T15:00:00Z")
        _trade(db, "4", "march", "SELL", 1000, "100", "2025-03-07T15:00:00Z")
        _trade(db, "5", "overlap", "BUY", 10, "100", "2025-03-04T15:00:00Z")
        _trade(db, "6", "overlap", "SELL", 10, "100", "2025-03-05T15:00:00Z")
    stats = portfolio_report(path, today=date(2025, 6, 30)).stats
    # January's and March's capital were never deployed together; March and overlap were.
    assert stats.loc["Portfolio"].return_on_capital == pytest.approx(1000.0 / 101_000.0)
    assert stats.loc["january"].peak_capital == stats.loc["march"].peak_capital == 100_000.0
    assert stats.loc["Portfolio"].peak_capital == 101_000.0
    view = sqlite3.connect(path).execute("SELECT peak_capital FROM v_portfolio_stats")
    assert view.fetchone()[0] == 101_000.0


def _reference_sharpe(daily_pnl: list[float], capital: float) -> float:
    returns = [p / capital for p in daily_pnl]
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return mean / math.sqrt(var) * math.sqrt(252)


def _reference_drawdown(equity: list[float]) -> float:
    peak, worst = equity[0], 0.0
    for value in equity:
        peak = max(peak, value)
        worst = min(worst, value - peak)
    return -worst


def test_sharpe_and_drawdown_agree_with_an_independent_computation(demo_db: Path) -> None:
    report = portfolio_report(demo_db, today=END)
    for strategy in report.daily_pnl.columns:
        pnl = report.daily_pnl[strategy].tolist()
        assert report.stats.loc[strategy].sharpe == pytest.approx(
            _reference_sharpe(pnl, 100_000.0), rel=1e-9
        )
        equity, running = [], 100_000.0
        for p in pnl:
            running += p
            equity.append(running)
        assert report.stats.loc[strategy].max_drawdown == pytest.approx(
            _reference_drawdown(equity), abs=0.005
        )
        dd = report.stats.loc[strategy]
        assert dd.drawdown_peak <= dd.drawdown_trough


def test_weekly_and_monthly_sharpe_use_period_returns(demo_db: Path) -> None:
    daily = portfolio_report(demo_db, today=END)
    for frequency, rule, per_year in (("W", "W-FRI", 52), ("M", "ME", 12)):
        report = portfolio_report(demo_db, today=END, frequency=frequency)
        for strategy in report.daily_pnl.columns:
            pnl = daily.daily_pnl[strategy].resample(rule).sum().tolist()
            expected = _reference_sharpe(pnl, 100_000.0) / math.sqrt(252) * math.sqrt(per_year)
            assert report.stats.loc[strategy].sharpe == pytest.approx(expected, rel=1e-9)
            # Everything else does not depend on the frequency.
            for column in ("net_pnl", "max_drawdown", "trades", "win_rate"):
                assert report.stats.loc[strategy][column] == daily.stats.loc[strategy][column]


def test_horizons_and_strategy_filter(demo_db: Path) -> None:
    everything = portfolio_report(demo_db, today=END)
    ytd = portfolio_report(demo_db, horizon="ytd", today=END)
    custom = portfolio_report(demo_db, horizon=("2025-01-01", "2025-06-30"), today=END)
    assert ytd.daily_pnl.index.min().date() >= date(2025, 1, 1)
    assert cents(ytd.stats.loc["Portfolio"].net_pnl) == cents(custom.stats.loc["Portfolio"].net_pnl)
    assert ytd.stats.loc["Portfolio"].trades < everything.stats.loc["Portfolio"].trades
    one = portfolio_report(demo_db, strategies=["mean_reversion"], today=END)
    assert list(one.stats.index) == ["mean_reversion", "Portfolio"]
    weekly = portfolio_report(demo_db, frequency="W", today=END).resampled_pnl()
    assert cents(weekly.to_numpy().sum()) == cents(everything.stats.loc["Portfolio"].net_pnl)
    with pytest.raises(ValueError, match="horizon"):
        portfolio_report(demo_db, horizon="forever")


def test_charts_render_offline_as_svg(demo_db: Path) -> None:
    svgs = portfolio_report(demo_db, horizon="1y", today=END).chart_svgs()
    assert set(svgs) == {"equity", "drawdown", "returns", "strategies"}
    for svg in svgs.values():
        assert svg.startswith("<svg")
        assert "https://" not in svg and "cdn" not in svg.lower()


def test_dashboard_charts_carry_their_data_inline_for_the_bundled_vega(demo_db: Path) -> None:
    report = portfolio_report(demo_db, today=END)
    for name, chart in report.charts().items():
        bundle = charts.mime_bundle(chart)
        spec = bundle["data"][charts.VEGALITE_MIME]
        text = json.dumps(spec)
        assert '"url"' not in text, name  # nothing for the browser to fetch
        rows = sum(len(v) for v in spec.get("datasets", {}).values())
        assert rows > 0, name


def test_long_histories_are_folded_into_weeks_for_the_browser() -> None:
    days = pd.bdate_range("2010-01-01", periods=2600, name="date")
    wide = pd.DataFrame({f"s{i}": range(2600) for i in range(10)}, index=days, dtype=float)
    long = charts._long(wide, "equity")
    assert len(long) <= charts.MAX_POINTS
    assert long.groupby("strategy")["equity"].max().eq(2599).all()  # the last value is kept
    drawdown = charts._long(-wide, "drawdown", fold="min")
    assert drawdown["drawdown"].min() == -2599  # the deepest point survives the folding


def test_ten_years_of_fifty_strategies_are_folded_into_months_for_the_browser() -> None:
    # 522 weeks x 51 series is still 26,622 points (2.3 MB a chart at 1M executions).
    days = pd.bdate_range("2016-01-04", periods=2610, name="date")
    wide = pd.DataFrame({f"s{i}": range(2610) for i in range(51)}, index=days, dtype=float)
    long = charts._long(wide, "equity")
    assert len(long) <= charts.MAX_POINTS
    assert long.groupby("strategy")["equity"].max().eq(2609).all()
    assert charts._long(-wide, "drawdown", fold="min")["drawdown"].min() == -2609


def test_query_library_lists_builtins_and_user_queries(demo_db: Path, workspace: Path) -> None:
    user = workspace / "var" / "queries" / "big_winners.sql"
    user.write_text(
        "-- title: Big winners\n-- description: Trades over 500\n"
        "SELECT * FROM v_round_trips WHERE net_pnl > 500\n"
    )
    queries = {q.name: q for q in list_queries()}
    for name in (
        "pnl_by_trade",
        "pnl_by_strategy",
        "pnl_by_symbol",
        "commission_analysis",
        "return_on_capital",
        "position_history",
        "open_positions",
        "daily_pnl",
        "win_rate_by_strategy",
        "monthly_pnl",
    ):
        assert (
            queries[name].source == "builtin" and queries[name].title and queries[name].description
        )
    assert queries["big_winners"].source == "user" and queries["big_winners"].title == "Big winners"
    for query in queries.values():
        frame = run_query(query.sql, db_path=demo_db)
        assert frame is not None


def test_writes_are_refused_and_the_database_is_untouched(demo_db: Path) -> None:
    before = demo_db.read_bytes()
    for statement in (
        "DELETE FROM executions",
        "UPDATE strategies SET name = 'x'",
        "SELECT 1; DROP TABLE executions",
        "ATTACH 'other.db' AS o",
    ):
        with pytest.raises(ReadOnlyQueryError, match="read-only"):
            run_query(statement, db_path=demo_db)
    assert demo_db.read_bytes() == before
    conn = connect(demo_db)
    with pytest.raises(Exception, match="read-only"):
        conn.execute("INSERT INTO strategies (name, created_at) VALUES ('x', 'y')")


def test_a_long_query_can_be_cancelled(demo_db: Path) -> None:
    handle = QueryHandle(demo_db)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            handle.run("SELECT COUNT(*) FROM range(100000000000) a, range(1000) b")
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.5)
    handle.interrupt()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert errors and "interrupt" in str(errors[0]).lower()
