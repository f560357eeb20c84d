"""v_daily_pnl and the end-of-day mail in the account's base currency.

The portfolio report adds each amount in base (migration 0018). The daily view that the SQL
editor, Excel and the end-of-day mail read still added francs, euros and dollars as one number:
a CHF account trading SAP and AAPL showed 808.98 "PnL" for a day whose value in francs is 773.29.
Now the view gives base figures, empty (NULL) where an amount has no rate, with the counts that
say so, and the mail names its currency and refuses a total it cannot make."""

from __future__ import annotations

import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from support.chf_statement import import_chf_statement

from quantstrip import email_manager
from quantstrip.analytics.connection import connect
from quantstrip.db.handler import Database, ExecutionInput

# The statement's net realised PnL in francs, each amount at its own stored rate, half up to the
# micro (worked by hand in test_report_currencies: 793.54135 gross less 20.24847 commissions).
NET_CHF_MICROS = 773_292_880
pytestmark = pytest.mark.usefixtures("fresh_report_engine")


def test_the_daily_view_adds_a_chf_accounts_days_in_francs(tmp_path: Path) -> None:
    path = tmp_path / "chf.db"
    import_chf_statement(path, "global_book")
    for engine in (sqlite3.connect(path), connect(path)):  # SQL editor/Excel and DuckDB
        net, gross, commission, unconverted, foreign = engine.execute(
            "SELECT SUM(net_pnl), SUM(gross_pnl), SUM(commission), SUM(unconverted), "
            "SUM(foreign_amounts) FROM v_daily_pnl"
        ).fetchone()
        assert round(Decimal(repr(net)) * 10**6) == NET_CHF_MICROS  # was 808.98 mixed
        assert round(Decimal(repr(gross - commission)) * 10**6) == NET_CHF_MICROS
        assert unconverted == 0 and foreign > 0
        # The day view and the report's day view give one number for each day.
        rows = engine.execute(
            "SELECT d.date, d.net_pnl, s.net_pnl FROM v_daily_pnl d JOIN v_strategy_days s "
            "ON s.strategy = d.strategy AND s.date = d.date ORDER BY 1"
        ).fetchall()
        assert len(rows) == 4 and all(day_net == days_net for _, day_net, days_net in rows)


def _eur_round_trip(path: Path, strategy: str) -> None:
    """Buy 10 SAP at 100 EUR on 3 March, sell at 110 on 5 March, 1 EUR commission each, in a
    CHF account with no EUR rate yet."""
    with Database(path) as db:
        db.ensure_strategy(strategy)
        db.set_base_currency("sim", "A", "CHF")
        sap = db.ensure_instrument("SAP", currency="EUR")
        for exec_id, side, price, day in (("1", "BUY", "100", "03"), ("2", "SELL", "110", "05")):
            db.record_execution(
                ExecutionInput(
                    "sim", "A", exec_id, strategy, sap, side, 10, price, f"2025-03-{day}T15:00:00Z"
                )
            )
            db.record_commission(broker="sim", exec_id=exec_id, commission="1", currency="EUR")


def test_a_day_with_an_amount_without_a_rate_has_no_base_figure(tmp_path: Path) -> None:
    path = tmp_path / "rates.db"
    _eur_round_trip(path, "s")
    conn = sqlite3.connect(path)
    day = "SELECT net_pnl, gross_pnl, commission, unconverted FROM v_daily_pnl WHERE date = ?"
    assert conn.execute(day, ("2025-03-05",)).fetchone() == (None, None, None, 2)
    with Database(path) as db:
        db.record_fx_rate("EUR", "CHF", "2025-03-04", "0.9375")
    assert conn.execute(day, ("2025-03-05",)).fetchone() == (92.8125, 93.75, 0.9375, 0)
    # The 3rd: the buy's realised PnL (zero, but in EUR) and its commission still have none.
    assert conn.execute(day, ("2025-03-03",)).fetchone() == (None, None, None, 2)


def test_the_end_of_day_mail_gives_its_total_in_the_account_base_currency(
    mail_workspace, smtp_server
) -> None:
    ledger = mail_workspace / "var" / "quantstrip.db"
    _eur_round_trip(ledger, "eur_book")
    email_manager.send_eod_summary("eur_book", date(2025, 3, 5))
    body = smtp_server.messages[-1].get_body(("plain",)).get_content()
    # 100 EUR realised and 1 EUR commission: no franc figure without a rate, and no euro
    # figure passed off as one.
    assert "Realised PnL (net of commissions): not available" in body
    assert "2 amount(s) have no rate to CHF" in body and "99.00" not in body
    with Database(ledger) as db:
        db.record_fx_rate("EUR", "CHF", "2025-03-01", "0.9375")
    email_manager.send_eod_summary("eur_book", date(2025, 3, 5))
    body = smtp_server.messages[-1].get_body(("plain",)).get_content()
    assert "Realised PnL (net of commissions): 92.81 CHF" in body
    assert "eur_book: gross 93.75, commission 0.94, net 92.81" in body
    assert smtp_server.messages[-1]["Subject"].endswith("PnL 92.81 CHF")


def test_stats_views_and_saved_queries_do_not_total_around_a_day_without_a_rate(
    tmp_path: Path,
) -> None:
    """SUM skips NULL: a strategy's net, a month's net and the portfolio's net came out short by
    the day whose amounts have no rate, with nothing to say so."""
    path = tmp_path / "short.db"
    _eur_round_trip(path, "s")
    with Database(path) as db:
        db.record_fx_rate("EUR", "CHF", "2025-03-04", "0.9375")  # the 5th has a rate, the 3rd not
    for engine in (sqlite3.connect(path), connect(path)):
        rows = engine.execute("SELECT strategy, net_pnl, commission FROM v_performance").fetchall()
        assert sorted(rows) == [("Portfolio", None, None), ("s", None, None)]  # was 92.81
    month = {row["month"]: row for row in _saved("monthly_pnl", path)}
    assert pd.isna(month["2025-03"]["net_pnl"]) and month["2025-03"]["unconverted"] == 2
    with Database(path) as db:
        db.record_fx_rate("EUR", "CHF", "2025-03-01", "0.94")
    for engine in (sqlite3.connect(path), connect(path)):
        rows = engine.execute("SELECT strategy, net_pnl FROM v_performance").fetchall()
        assert sorted(rows) == [("Portfolio", 91.87), ("s", 91.87)]
    month = {row["month"]: row for row in _saved("monthly_pnl", path)}
    assert float(month["2025-03"]["net_pnl"]) == 91.87 and month["2025-03"]["unconverted"] == 0


def test_figures_kept_in_the_instruments_currencies_are_withheld_by_the_view(
    tmp_path: Path,
) -> None:
    """Average win and loss, profit factor, peak capital and return on capital are still in the
    instruments' currencies: the view withholds them, as the report does, instead of showing
    euros among francs."""
    path = tmp_path / "chf.db"
    import_chf_statement(path, "global_book")
    withheld = "avg_win, avg_loss, profit_factor, peak_capital, return_on_capital"
    for engine in (sqlite3.connect(path), connect(path)):
        for row in engine.execute(f"SELECT {withheld}, net_pnl FROM v_performance").fetchall():
            assert row[:5] == (None,) * 5 and row[5] is not None


def _saved(name: str, path: Path) -> list[dict]:
    from quantstrip.analytics import list_queries, run_query

    (query,) = [q for q in list_queries() if q.name == name]
    return run_query(query.sql, db_path=path).to_dict("records")
