"""Excel's path into the database: the Quantstrip DSN through real unixODBC + libsqliteodbc."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_component

from quantstrip.db.handler import Database, ExecutionInput
from quantstrip.odbc import DSN_NAME, VIEWS, install_dsn, replace_section

pyodbc = pytest.importorskip("pyodbc")

DATE_COLUMNS = {
    "v_executions": "exec_date",
    "v_round_trips": "exit_date",
    "v_daily_pnl": "date",
    "v_daily_trades": "date",
    "v_commissions": "date",
    "v_position_history": "date",
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
    conn = pyodbc.connect(f"DSN={DSN_NAME}")
    cursor = conn.cursor()
    listed = {row.table_name for row in cursor.tables(tableType="VIEW")}
    assert set(VIEWS) <= listed
    direct = sqlite3.connect(trading_db)
    for view in VIEWS:
        cursor.execute(f"SELECT * FROM {view} ORDER BY 1")
        columns = [d[0] for d in cursor.description]
        through_odbc = cursor.fetchall()
        expected = direct.execute(f"SELECT * FROM {view} ORDER BY 1").fetchall()
        assert through_odbc, f"{view} is empty"
        assert len(through_odbc) == len(expected)
        for got, want in zip(through_odbc, expected, strict=True):
            for name, value, wanted in zip(columns, got, want, strict=True):
                if isinstance(value, dt.date):
                    assert value.isoformat() == wanted, (view, name)
                elif isinstance(wanted, float):
                    # The driver hands doubles over as text: equal to 12 significant digits.
                    assert value == pytest.approx(wanted, rel=1e-12, abs=1e-9), (view, name)
                else:
                    assert value == wanted, (view, name)
    conn.close()


def test_views_have_excel_friendly_types(trading_db: Path, odbc_ini: Path) -> None:
    install_dsn(trading_db)
    cursor = pyodbc.connect(f"DSN={DSN_NAME}").cursor()
    for view, column in DATE_COLUMNS.items():
        cursor.execute(f"SELECT {column} FROM {view}")
        assert cursor.description[0][1] is dt.date, f"{view}.{column} is not a DATE"
        assert all(isinstance(row[0], dt.date) for row in cursor.fetchall())
    for view, columns in MONEY_COLUMNS.items():
        cursor.execute(f"SELECT {', '.join(columns)} FROM {view}")
        for description in cursor.description:
            assert description[1] in (float, int), f"{view}.{description[0]} is not numeric"


def test_daily_pnl_through_odbc_is_exact_to_the_cent(trading_db: Path, odbc_ini: Path) -> None:
    install_dsn(trading_db)
    cursor = pyodbc.connect(f"DSN={DSN_NAME}").cursor()
    rows = cursor.execute(
        "SELECT strategy, date, net_pnl FROM v_daily_pnl ORDER BY strategy, date"
    ).fetchall()
    got = [(r.strategy, r.date.isoformat(), round(r.net_pnl, 2)) for r in rows]
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
    conn = pyodbc.connect(f"DSN={DSN_NAME}")
    before = sqlite3.connect(trading_db).execute("SELECT COUNT(*) FROM strategies").fetchone()
    with pytest.raises(pyodbc.Error, match=r"readonly|not authorized"):
        conn.cursor().execute(
            "INSERT INTO strategies (name, created_at) VALUES ('excel', '2025-01-01')"
        )
        conn.commit()
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
    cursor = pyodbc.connect(f"DSN={DSN_NAME}").cursor()
    report = portfolio_report(trading_db)
    rows = cursor.execute(
        "SELECT strategy, SUM(net_pnl), SUM(commission) FROM v_daily_pnl GROUP BY strategy"
    ).fetchall()
    assert len(rows) == 2
    for strategy, net, commission in rows:
        assert round(net, 2) == round(report.stats.loc[strategy].net_pnl, 2)
        assert round(commission, 2) == round(report.stats.loc[strategy].commission, 2)
    trips = dict(
        cursor.execute("SELECT strategy, COUNT(*) FROM v_round_trips GROUP BY 1").fetchall()
    )
    for strategy, count in trips.items():
        assert count == report.stats.loc[strategy].trades
