"""Excel's path into the database: the Quantstrip DSN through real unixODBC + libsqliteodbc."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_component
from support import half_cents
from support.excel import excel

from quantstrip.db.handler import Database, ExecutionInput
from quantstrip.odbc import DSN_NAME, VIEWS, install_dsn, replace_section

pytest.importorskip("pyodbc")

DATE_COLUMNS = {
    "v_executions": "exec_date",
    "v_round_trips": "exit_date",
    "v_daily_pnl": "date",
    "v_daily_trades": "date",
    "v_commissions": "date",
    "v_position_history": "date",
    "v_strategy_days": "date",
    "v_pnl_by_currency": "date",
}
MONEY_COLUMNS = {
    "v_executions": ["qty", "price", "notional", "commission"],
    "v_round_trips": ["qty", "entry_price", "exit_price", "gross_pnl", "commission", "net_pnl"],
    "v_daily_pnl": ["gross_pnl", "commission", "net_pnl"],
    "v_daily_trades": ["win_pnl", "loss_pnl"],
    "v_commissions": ["qty", "notional", "commission"],
    "v_positions": ["qty", "avg_cost", "cost_basis", "realized_pnl_gross"],
    "v_position_history": ["qty_before", "qty_after", "realized_pnl_gross"],
    "v_return_on_capital": ["gross_pnl", "commission", "net_pnl", "peak_capital"],
    "v_strategy_days": ["net_pnl", "win_pnl", "loss_pnl", "capital_open", "capital_peak"],
    "v_strategy_stats": ["gross_pnl", "commission", "net_pnl", "peak_capital"],
    "v_portfolio_stats": ["net_pnl", "peak_capital", "return_on_capital"],
}


def _driver_installed() -> bool:
    return bool(shutil.which("odbcinst")) and any(
        Path("/").glob("usr/lib/*/odbc/libsqlite3odbc.so")
    )


@pytest.fixture
def trading_db(workspace: Path) -> Path:
    """A database with closed round trips, an open position and commissions on two days."""
    path = workspace / "var" / "quantstrip.db"
    with Database(path) as db:
        aapl = db.ensure_instrument("AAPL")
        es = db.ensure_instrument("ES", sec_type="FUT", exchange="CME", multiplier=50)
        fills = [
            ("e1", "alpha", aapl, "BUY", 100, "187.25", "2025-03-03T15:00:00Z", "1.00"),
            ("e2", "alpha", aapl, "SELL", 60, "190.10", "2025-03-04T15:00:00Z", "1.00"),
            ("e3", "beta", es, "SELL", 2, "5710.25", "2025-03-04T16:00:00Z", "4.50"),
            ("e4", "beta", es, "BUY", 2, "5702.00", "2025-03-05T16:00:00Z", "4.50"),
        ]
        for exec_id, strategy, instrument, side, qty, price, when, fee in fills:
            db.record_execution(
                ExecutionInput("sim", "SIM1", exec_id, strategy, instrument, side, qty, price, when)
            )
            db.record_commission(broker="sim", exec_id=exec_id, commission=fee)
    return path


@pytest.fixture
def odbc_ini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    require_component(_driver_installed(), "unixODBC with the SQLite3 ODBC driver (libsqliteodbc)")
    path = tmp_path / "odbc.ini"
    monkeypatch.setenv("ODBCINI", str(path))
    return path


def test_install_writes_one_section_and_keeps_other_dsns(trading_db: Path, odbc_ini: Path) -> None:
    odbc_ini.write_text("; my settings\n[Other]\nDriver=SQLite3\nDatabase=/tmp/other.db\n")
    install_dsn(trading_db)
    install_dsn(trading_db)
    text = odbc_ini.read_text()
    assert text.count(f"[{DSN_NAME}]") == 1
    assert "; my settings\n[Other]\nDriver=SQLite3\nDatabase=/tmp/other.db\n" in text
    assert f"Database=file:{trading_db.resolve()}?mode=ro" in text


def test_replace_section_updates_in_place() -> None:
    text = "[A]\nx=1\n\n[Quantstrip]\nold=1\n\n[B]\ny=2\n"
    assert replace_section(text, "Quantstrip", "[Quantstrip]\nnew=1\n\n") == (
        "[A]\nx=1\n\n[Quantstrip]\nnew=1\n\n[B]\ny=2\n"
    )


def test_every_view_is_listed_and_matches_sqlite(trading_db: Path, odbc_ini: Path) -> None:
    install_dsn(trading_db)
    listed, *results = excel(
        odbc_ini, "::views", *(f"SELECT * FROM {view} ORDER BY 1" for view in VIEWS)
    )
    assert set(VIEWS) <= {row[0] for row in listed.rows}
    direct = sqlite3.connect(trading_db)
    for view, through_odbc in zip(VIEWS, results, strict=True):
        expected = direct.execute(f"SELECT * FROM {view} ORDER BY 1").fetchall()
        assert through_odbc.rows, f"{view} is empty"
        assert len(through_odbc.rows) == len(expected)
        for got, want in zip(through_odbc.rows, expected, strict=True):
            for name, value, wanted in zip(through_odbc.columns, got, want, strict=True):
                if isinstance(value, dt.date):
                    assert value.isoformat() == wanted, (view, name)
                elif isinstance(wanted, float) and isinstance(value, str):
                    # A computed column whose first row is NULL reaches ODBC as text.
                    assert float(value) == pytest.approx(wanted, rel=1e-12), (view, name)
                elif isinstance(wanted, float):
                    # The driver hands doubles over as text: equal to 12 significant digits.
                    assert value == pytest.approx(wanted, rel=1e-12, abs=1e-9), (view, name)
                else:
                    assert value == wanted, (view, name)


def test_views_have_excel_friendly_types(trading_db: Path, odbc_ini: Path) -> None:
    install_dsn(trading_db)
    dates = excel(
        odbc_ini, *(f"SELECT {column} FROM {view}" for view, column in DATE_COLUMNS.items())
    )
    for (view, column), result in zip(DATE_COLUMNS.items(), dates, strict=True):
        assert result.types == ["date"], f"{view}.{column} is not a DATE"
        assert all(isinstance(row[0], dt.date) for row in result.rows)
    money = excel(
        odbc_ini,
        *(f"SELECT {', '.join(columns)} FROM {view}" for view, columns in MONEY_COLUMNS.items()),
    )
    for view, result in zip(MONEY_COLUMNS, money, strict=True):
        for name, kind in zip(result.columns, result.types, strict=True):
            assert kind in ("float", "int"), f"{view}.{name} is not numeric"


def test_daily_pnl_through_odbc_is_exact_to_the_cent(trading_db: Path, odbc_ini: Path) -> None:
    install_dsn(trading_db)
    (result,) = excel(
        odbc_ini, "SELECT strategy, date, net_pnl FROM v_daily_pnl ORDER BY strategy, date"
    )
    got = [(strategy, day.isoformat(), round(net, 2)) for strategy, day, net in result.rows]
    # alpha: 60 x (190.10 - 187.25) = 171.00 gross, fees 1.00 each day.
    # beta: short 2 ES x 50 at 5710.25, covered at 5702.00 = 825.00 gross; fees 4.50 each day.
    assert got == [
        ("alpha", "2025-03-03", -1.00),
        ("alpha", "2025-03-04", 170.00),
        ("beta", "2025-03-04", -4.50),
        ("beta", "2025-03-05", 820.50),
    ]


def test_the_dsn_is_read_only(trading_db: Path, odbc_ini: Path) -> None:
    install_dsn(trading_db)
    before = sqlite3.connect(trading_db).execute("SELECT COUNT(*) FROM strategies").fetchone()
    (result,) = excel(
        odbc_ini, "INSERT INTO strategies (name, created_at) VALUES ('excel', '2025-01-01')"
    )
    assert result.error and re.search(r"readonly|not authorized", result.error)
    after = sqlite3.connect(trading_db).execute("SELECT COUNT(*) FROM strategies").fetchone()
    assert before == after


def test_cli_install_prints_dsn_and_windows_steps(trading_db: Path, odbc_ini: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "quantstrip.cli", "odbc", "install"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "DSN 'Quantstrip' written" in result.stdout
    assert "From ODBC" in result.stdout
    assert odbc_ini.read_text().count("[Quantstrip]") == 1


def test_excel_sees_the_same_figures_as_the_portfolio_report(
    trading_db: Path, odbc_ini: Path
) -> None:
    from quantstrip.analytics import portfolio_report

    install_dsn(trading_db)
    report = portfolio_report(trading_db)
    sums, trips = excel(
        odbc_ini,
        "SELECT strategy, SUM(net_pnl), SUM(commission) FROM v_daily_pnl GROUP BY strategy",
        "SELECT strategy, COUNT(*) FROM v_round_trips GROUP BY 1",
    )
    assert len(sums.rows) == 2
    for strategy, net, commission in sums.rows:
        assert round(net, 2) == round(report.stats.loc[strategy].net_pnl, 2)
        assert round(commission, 2) == round(report.stats.loc[strategy].commission, 2)
    for strategy, count in trips.rows:
        assert count == report.stats.loc[strategy].trades


def test_half_cent_totals_agree_between_excel_the_report_and_the_sql_editor(
    workspace: Path, odbc_ini: Path
) -> None:
    from quantstrip.analytics import list_queries, portfolio_report, run_query

    path = half_cents.build(workspace / "var" / "quantstrip.db")
    install_dsn(path)
    (result,) = excel(odbc_ini, "SELECT strategy, net_pnl, commission FROM v_return_on_capital")
    in_excel = {strategy: (net, commission) for strategy, net, commission in result.rows}
    report = portfolio_report(path).stats
    editor = run_query(
        next(q.sql for q in list_queries() if q.name == "pnl_by_strategy"), db_path=path
    ).set_index("strategy")
    for strategy, (net, commission) in half_cents.EXPECTED.items():
        expected = (float(net), float(commission))
        assert in_excel[strategy] == expected, strategy
        assert (report.loc[strategy].net_pnl, report.loc[strategy].commission) == expected
        assert (editor.loc[strategy].net_pnl, editor.loc[strategy].commission) == expected
