"""The portfolio report in the account's base currency: a CHF account trading EUR and USD adds
francs, each amount converted at its own stored rate; an amount without a rate stops the total
instead of leaving it short; a USD-only account reports exactly what it did before."""

from __future__ import annotations

import importlib
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from support.chf_statement import CHF_STATEMENT, import_chf_statement

from quantstrip.analytics import portfolio_report
from quantstrip.analytics.connection import connect
from quantstrip.analytics.currency import CurrencyError, MissingRateError
from quantstrip.analytics.mark_to_market import total_pnl_report
from quantstrip.analytics.metrics import PORTFOLIO
from quantstrip.brokers.ib_flex import parse_statement
from quantstrip.brokers.ib_flex.reconcile import reconcile
from quantstrip.dashboard.portfolio_view import conventions_html, stats_frame
from quantstrip.db.handler import Database, ExecutionInput
from quantstrip.db.units import money

pytestmark = pytest.mark.usefixtures("fresh_report_engine")
STRATEGY = "global_book"
migrations = importlib.import_module("quantstrip.db.migrate")  # the module, not migrate()

# The fixture's amounts by hand, each converted at its own fill's rate (fxRateToBase), in CHF:
GROSS_CHF = (
    Decimal("375") * Decimal("0.93871")  # SAP 4 Mar: (184.15 - 180.40) x 100 EUR
    + Decimal("350")  # NESN 5 Mar: (97.25 - 95.50) x 200 CHF
    + Decimal("-25") * Decimal("0.9411")  # SAP 6 Mar: (179.90 - 180.40) x 50 EUR
    + Decimal("130") * Decimal("0.88502")  # AAPL 6 Mar: (231.35 - 228.10) x 40 USD
)
COMMISSIONS_CHF = (
    Decimal("5")  # NESN buy, CHF
    + Decimal("4.50") * Decimal("0.94012")  # SAP buy, EUR at the buy's rate
    + Decimal("1.00") * Decimal("0.88743")  # AAPL buy, USD at the buy's rate
    + Decimal("3.00") * Decimal("0.93871")
    + Decimal("5")
    + Decimal("1.50") * Decimal("0.9411")
    + Decimal("0.902720")  # 1.02 USD x 0.88502 = 0.9027204, half up to the micro
)


def _micros(value: Decimal) -> Decimal:
    return money(value * 10**6)


@pytest.fixture
def chf_ledger(tmp_path: Path) -> Path:
    path = tmp_path / "chf.db"
    import_chf_statement(path, STRATEGY)
    return path


def _assert_aggregates_match_recomputation(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        kept = conn.execute(
            "SELECT strategy_id, day, gross_base_micros, commission_base_micros, unconverted, "
            "foreign_amounts FROM agg_daily_pnl WHERE fills > 0 ORDER BY 1, 2"
        ).fetchall()
        recomputed = conn.execute(
            "SELECT strategy_id, day, gross_base_micros, commission_base_micros, unconverted, "
            "foreign_amounts FROM v_daily_base_recomputed ORDER BY 1, 2"
        ).fetchall()
    finally:
        conn.close()
    assert kept == recomputed


def test_a_chf_account_trading_eur_and_usd_reports_its_total_in_chf(chf_ledger: Path) -> None:
    report = portfolio_report(chf_ledger)
    row = report.stats.loc[PORTFOLIO]
    assert report.currency == "CHF" and report.foreign_amounts > 0
    assert Decimal(str(float(row.gross_pnl))) == _micros(GROSS_CHF) == Decimal("793.54")
    assert Decimal(str(float(row.commission))) == _micros(COMMISSIONS_CHF) == Decimal("20.25")
    assert (
        Decimal(str(float(row.net_pnl)))
        == _micros(GROSS_CHF - COMMISSIONS_CHF)
        == Decimal("773.29")
    )
    # IB's own figure, fifoPnlRealized x fxRateToBase summed, is 773.30: IB takes each opening
    # commission off at its round trip's closing rate; the report converts every commission at
    # its own fill's rate (4.50 EUR at 0.94012 and 1.00 USD at 0.88743, not the sells' rates).
    conn = sqlite3.connect(chf_ledger)
    ib = conn.execute("SELECT SUM(net_pnl_base) FROM v_round_trips_base").fetchone()[0]
    assert _micros(Decimal(repr(ib))) == Decimal("773.30")
    assert round(ib - (GROSS_CHF - COMMISSIONS_CHF).__float__(), 6) == 0.00517
    # The same days through both engines (DuckDB: the report's and the SQL editor's read path).
    for engine in (conn, connect(chf_ledger)):
        total = engine.execute("SELECT SUM(net_pnl) FROM v_strategy_days").fetchone()[0]
        assert Decimal(repr(total)) == GROSS_CHF - COMMISSIONS_CHF
    assert report.daily_pnl.sum().sum() == pytest.approx(float(GROSS_CHF - COMMISSIONS_CHF))
    _assert_aggregates_match_recomputation(chf_ledger)


def test_a_mixed_report_withholds_what_it_keeps_in_the_instruments_currencies(
    chf_ledger: Path,
) -> None:
    report = portfolio_report(chf_ledger)
    assert set(report.withheld) == {
        "avg_win",
        "avg_loss",
        "profit_factor",
        "peak_capital",
        "return_on_capital",
    }
    assert report.stats.loc[PORTFOLIO, list(report.withheld)].isna().all()
    table = stats_frame(report, "realised").set_index("strategy")
    assert table.loc[PORTFOLIO, "net_pnl"] == "773.29"
    assert table.loc[PORTFOLIO, "avg_win"] == "" and table.loc[PORTFOLIO, "profit_factor"] == "n/a"
    page = conventions_html(report, "realised", "Europe/Zurich")
    assert "in CHF, account base" in page and "profit factor" in page
    with pytest.raises(CurrencyError, match="unrealised"):
        total_pnl_report(report, "Europe/Zurich", chf_ledger)


def _eur_fills_without_a_rate(path: Path) -> None:
    with Database(path) as db:
        db.ensure_strategy("s")
        db.set_base_currency("sim", "A", "CHF")
        sap = db.ensure_instrument("SAP", currency="EUR")
        for exec_id, side, price, day in (("1", "BUY", "100", "03"), ("2", "SELL", "110", "05")):
            db.record_execution(
                ExecutionInput(
                    "sim", "A", exec_id, "s", sap, side, 10, price, f"2025-03-{day}T15:00:00Z"
                )
            )
            db.record_commission(broker="sim", exec_id=exec_id, commission="1", currency="EUR")


def test_a_fill_without_a_rate_stops_the_total_until_the_rate_is_recorded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rates.db"
    _eur_fills_without_a_rate(path)
    with pytest.raises(MissingRateError, match="4 amount"):
        portfolio_report(path)  # 100 EUR of PnL, 2 EUR of commissions: no CHF figure
    _assert_aggregates_match_recomputation(path)
    with Database(path) as db:
        db.record_fx_rate("EUR", "CHF", "2025-03-04", "0.9375")  # from the 4th on
    with pytest.raises(MissingRateError, match="2 amount"):
        portfolio_report(path)  # the buy of the 3rd and its commission still have none
    assert (
        portfolio_report(path, horizon=("2025-03-04", None)).stats.loc[PORTFOLIO, "net_pnl"]
        == 92.81
    )  # (100 - 1) x 0.9375 = 92.8125, half up
    with Database(path) as db:
        db.record_fx_rate("EUR", "CHF", "2025-03-01", "0.94")
    report = portfolio_report(path)
    assert report.stats.loc[PORTFOLIO, "net_pnl"] == 91.87  # 93.75 - 0.9375 - 0.94, half up
    assert report.currency == "CHF"
    _assert_aggregates_match_recomputation(path)


def test_a_fill_that_learns_its_rate_from_the_statement_moves_its_day_to_that_rate(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.db"
    with Database(path) as db:
        db.ensure_strategy(STRATEGY)
        db.set_base_currency("ib", "U7654321", "CHF")
        sap = db.ensure_instrument(
            "SAP", currency="EUR", broker="ib", broker_contract_id="14204", exchange="SMART"
        )
        db.record_execution(
            ExecutionInput(
                "ib",
                "U7654321",
                "0001f4e8.6000a002.01.01",
                STRATEGY,
                sap,
                "BUY",
                150,
                "180.40",
                "2025-03-03T10:15:00Z",
            )
        )
    _assert_aggregates_match_recomputation(path)
    _import_statement_again(path)
    _assert_aggregates_match_recomputation(path)
    report = portfolio_report(path)
    # The statement gave the live fill its rate and the commission its live session never
    # reported: the total is the hand total.
    expected = _micros(GROSS_CHF - COMMISSIONS_CHF)
    assert report.stats.loc[PORTFOLIO, "net_pnl"] == float(expected) == 773.29


def _import_statement_again(path: Path) -> None:
    with Database(path) as db:
        reconcile(
            db, parse_statement(CHF_STATEMENT.read_bytes()), import_missing=True, strategy=STRATEGY
        )


def test_migration_0018_converts_an_existing_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    before = [m for m in migrations._migrations() if m[0] <= 17]
    monkeypatch.setattr(migrations, "_migrations", lambda: before)
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 17)
    import_chf_statement(path, STRATEGY)  # written by the schema of 0017: no base figures kept
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 17
    monkeypatch.undo()
    assert migrations.migrate(path) == migrations.SCHEMA_VERSION
    _assert_aggregates_match_recomputation(path)
    row = portfolio_report(path).stats.loc[PORTFOLIO]
    assert Decimal(str(float(row.net_pnl))) == Decimal("773.29")


def test_a_usd_account_in_usd_reports_exactly_the_stored_amounts(tmp_path: Path) -> None:
    path = tmp_path / "usd.db"
    with Database(path) as db:
        db.ensure_strategy("s")
        x = db.ensure_instrument("X")
        for exec_id, side, price, day in (
            ("1", "BUY", "100.125", "03"),
            ("2", "SELL", "101.37", "04"),
            ("3", "BUY", "99.99", "05"),
            ("4", "SELL", "98.015", "06"),
        ):
            db.record_execution(
                ExecutionInput(
                    "sim", "A", exec_id, "s", x, side, 7, price, f"2025-03-{day}T15:00:00Z"
                )
            )
            db.record_commission(broker="sim", exec_id=exec_id, commission="0.355")
    conn = sqlite3.connect(path)
    differ = conn.execute(
        "SELECT COUNT(*) FROM agg_daily_pnl WHERE gross_base_micros <> gross_micros "
        "OR commission_base_micros <> commission_micros OR unconverted <> 0 "
        "OR foreign_amounts <> 0"
    ).fetchone()[0]
    assert differ == 0
    report = portfolio_report(path)
    assert report.currency == "USD" and report.foreign_amounts == 0 and report.withheld == ()
    # (101.37 - 100.125) x 7 + (98.015 - 99.99) x 7 - 4 x 0.355 = -6.53
    assert report.stats.loc[PORTFOLIO, "net_pnl"] == -6.53
    assert report.stats.loc[PORTFOLIO, "profit_factor"] is not None
    assert "in USD, account base" in conventions_html(report, "realised", "UTC")


def test_strategies_in_accounts_of_two_base_currencies_are_not_added(tmp_path: Path) -> None:
    path = tmp_path / "two.db"
    with Database(path) as db:
        db.ensure_strategy("s")
        db.ensure_strategy("t")
        db.set_base_currency("sim", "CH", "CHF")
        x = db.ensure_instrument("X")
        for account, strategy in (("CH", "s"), ("US", "t")):
            db.record_execution(
                ExecutionInput(
                    "sim",
                    account,
                    f"{account}1",
                    strategy,
                    x,
                    "BUY",
                    1,
                    "10",
                    "2025-03-03T15:00:00Z",
                    fx_rate_to_base="0.9" if account == "CH" else None,
                )
            )
    with pytest.raises(CurrencyError, match="CHF, USD"):
        portfolio_report(path)
    assert portfolio_report(path, strategies=["t"]).currency == "USD"
