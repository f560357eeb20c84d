"""Several currencies in one account: realised PnL in the instrument's currency, reported in the
account's base currency at the fill's rate, reconciling to IB's own fifoPnlRealized; currency
conversions are cash movements, never positions."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from quantstrip.analytics.connection import connect
from quantstrip.brokers.event_journal import EventJournal
from quantstrip.brokers.events import (
    AccountValueEvent,
    CommissionEvent,
    ExecutionEvent,
    InstrumentSpec,
)
from quantstrip.brokers.ib_flex import parse_statement
from quantstrip.brokers.ib_flex.reconcile import reconcile
from quantstrip.brokers.recorder import Recorder
from quantstrip.db.handler import Database, ExecutionInput
from quantstrip.db.units import money
from quantstrip.errors import ConflictError, ValidationError

FIXTURE = Path(__file__).parent / "fixtures" / "ib" / "flex_chf_eur_usd.xml"
STRATEGY = "global_book"


def _ib_realised(statement) -> dict[str, Decimal]:
    """IB's fifoPnlRealized per closing exec id, in the trade's currency and in base."""
    import xml.etree.ElementTree as ET

    out = {}
    for trade in ET.fromstring(FIXTURE.read_bytes()).iter("Trade"):
        if trade.get("openCloseIndicator") == "C":
            realised = Decimal(trade.get("fifoPnlRealized"))
            out[trade.get("ibExecID")] = (realised, realised * Decimal(trade.get("fxRateToBase")))
    return out


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "chf.db"
    statement = parse_statement(FIXTURE.read_bytes())
    with Database(path) as db:
        db.ensure_strategy(STRATEGY)
        result = reconcile(db, statement, import_missing=True, strategy=STRATEGY)
        assert len(result.imported) == 8 and not result.mismatched
        assert result.imported_cash == ["IBFLEX-809"]  # the AutoFX conversion, as cash
        again = reconcile(db, statement, import_missing=True, strategy=STRATEGY)
        assert again.missing_in_db == [] and again.imported == []  # conversions included
        assert again.imported_cash == [] and again.cash_differences == []
    return path


def test_a_chf_account_reconciles_to_ibs_realised_pnl_in_base(ledger: Path) -> None:
    ib = _ib_realised(parse_statement(FIXTURE.read_bytes()))
    conn = sqlite3.connect(ledger)
    assert conn.execute("SELECT base_currency FROM accounts").fetchone()[0] == "CHF"
    for engine in (conn, connect(ledger)):
        ours: dict[str, list[Decimal]] = {}
        for exec_id, net, net_base in engine.execute(
            "SELECT e.exec_id, r.net_pnl, r.net_pnl_base FROM v_round_trips_base r "
            "JOIN executions e ON e.id = r.closing_execution_id"
        ).fetchall():
            totals = ours.setdefault(exec_id, [Decimal(0), Decimal(0)])
            totals[0] += Decimal(repr(net))
            totals[1] += Decimal(repr(net_base))
        assert set(ours) == set(ib)
        for exec_id, (local, base) in ib.items():
            assert money(ours[exec_id][0] * 10**6) == money(local * 10**6), exec_id
            assert money(ours[exec_id][1] * 10**6) == money(base * 10**6), exec_id
        total = sum(base for _, base in ib.values())
        assert money(sum(v[1] for v in ours.values()) * 10**6) == money(total * 10**6)
        assert money(total * 10**6) == Decimal("773.30")


def test_each_fill_keeps_the_rate_the_statement_gave(ledger: Path) -> None:
    conn = sqlite3.connect(ledger)
    rates = dict(
        conn.execute(
            "SELECT e.exec_id, f.rate_nanos FROM v_fill_fx f JOIN executions e "
            "ON e.id = f.execution_id"
        )
    )
    assert rates["0001f4e8.6000a002.01.01"] == 940_120_000  # SAP in EUR at 0.94012
    assert rates["0001f4e8.6000a008.01.01"] == 885_020_000  # AAPL in USD at 0.88502
    assert rates["0001f4e8.6000a001.01.01"] == 1_000_000_000  # NESN in CHF, the base
    by_currency = {
        currency: (gross, base)
        for currency, gross, base in conn.execute(
            "SELECT currency, SUM(gross_pnl), SUM(gross_pnl_base) FROM v_pnl_by_currency "
            "GROUP BY currency"
        )
    }
    assert by_currency["EUR"][0] == pytest.approx(350.0)  # 375.00 - 25.00 before commissions
    assert by_currency["CHF"][0] == by_currency["CHF"][1] == pytest.approx(350.0)


def test_a_currency_conversion_is_cash_not_a_position(ledger: Path) -> None:
    conn = sqlite3.connect(ledger)
    symbols = {row[0] for row in conn.execute("SELECT symbol FROM instruments")}
    assert symbols == {"NESN", "SAP", "AAPL"}  # no EUR.CHF instrument, position or PnL
    legs = conn.execute(
        "SELECT broker_txn_id, kind, amount FROM v_cash_events ORDER BY broker_txn_id"
    ).fetchall()
    assert legs == [
        ("0001f4e8.6000a004.01.01:CHF", "fx_conversion", -9402.0),
        ("0001f4e8.6000a004.01.01:EUR", "fx_conversion", 10000.0),
        ("0001f4e8.6000a004.01.01:commission", "fee", -2.0),
        ("IBFLEX-809:CHF", "fx_conversion", 44.25),  # AutoFX: no exec id, no commission
        ("IBFLEX-809:USD", "fx_conversion", -50.0),
    ]
    assert (
        conn.execute("SELECT COUNT(*) FROM commissions WHERE execution_id IS NULL").fetchone()[0]
        == 0
    )


def test_a_fill_recorded_live_learns_its_rate_from_the_statement(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    statement = parse_statement(FIXTURE.read_bytes())
    with Database(path) as db:
        db.ensure_strategy(STRATEGY)
        sap = db.ensure_instrument(
            "SAP", currency="EUR", broker="ib", broker_contract_id="14204", exchange="SMART"
        )
        live = ExecutionInput(
            "ib",
            "U7654321",
            "0001f4e8.6000a002.01.01",
            STRATEGY,
            sap,
            "BUY",
            150,
            "180.40",
            "2025-03-03T15:15:00Z",
        )
        assert db.record_execution(live).execution.fx_rate_to_base_nanos is None
        reconcile(db, statement, import_missing=True, strategy=STRATEGY)
        stored = db.execution_by_exec_id("ib", "0001f4e8.6000a002.01.01")
        assert stored.fx_rate_to_base_nanos == 940_120_000
        with pytest.raises(ConflictError, match="FX rate"):
            db.record_execution(
                ExecutionInput(**{**live.__dict__, "fx_rate_to_base": Decimal("0.95")})
            )


def test_a_fill_in_another_currency_than_its_instrument_is_refused(tmp_path: Path) -> None:
    with Database(tmp_path / "x.db") as db:
        db.ensure_strategy("s")
        sap = db.ensure_instrument("SAP", currency="EUR")
        with pytest.raises(ValidationError, match="currency"):
            db.record_execution(
                ExecutionInput(
                    "ib", "A", "1", "s", sap, "BUY", 1, "1", "2025-03-03T15:00:00Z", currency="USD"
                )
            )
        with pytest.raises(ValidationError, match="fx_rate_to_base"):
            db.record_execution(
                ExecutionInput(
                    "ib",
                    "A",
                    "2",
                    "s",
                    sap,
                    "BUY",
                    1,
                    "1",
                    "2025-03-03T15:00:00Z",
                    fx_rate_to_base=0,
                )
            )


def test_without_a_rate_base_figures_stay_empty_until_the_rates_table_has_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rates.db"
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
    conn = sqlite3.connect(path)
    row = conn.execute("SELECT net_pnl, net_pnl_base FROM v_round_trips_base").fetchone()
    assert row == (100.0, None)  # never guessed
    with Database(path) as db:
        assert db.fx_rate("EUR", "CHF", "2025-03-05") is None
        assert db.record_fx_rate("EUR", "CHF", "2025-03-04", "0.9375", source="test")
        assert not db.record_fx_rate("eur", "CHF", "2025-03-04", Decimal("0.93750"))  # a repeat
        with pytest.raises(ConflictError, match="EUR/CHF rate of 2025-03-04"):
            db.record_fx_rate("EUR", "CHF", "2025-03-04", "0.94")
        assert db.fx_rate("EUR", "CHF", "2025-03-05") == Decimal("0.9375")
    row = conn.execute("SELECT net_pnl, net_pnl_base FROM v_round_trips_base").fetchone()
    assert row == (100.0, 93.75)  # the latest rate on or before the closing day
    days = conn.execute(
        "SELECT date, gross_pnl, gross_pnl_base, net_pnl_base, fills_without_rate "
        "FROM v_pnl_by_currency ORDER BY date"
    ).fetchall()
    assert days == [
        ("2025-03-03", 0.0, None, None, 1),  # the opening fill, before any rate: no base figure
        ("2025-03-05", 100.0, 93.75, 93.75, 0),
    ]


def _counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    tables = (
        "accounts",
        "instruments",
        "executions",
        "position_events",
        "commissions",
        "cash_events",
        "fx_rates",
    )
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


def test_each_fill_stores_its_currency_even_when_the_caller_names_none(tmp_path: Path) -> None:
    with Database(tmp_path / "c.db") as db:
        db.ensure_strategy("s")
        sap = db.ensure_instrument("SAP", currency="eur")  # codes are kept upper case
        stored = db.record_execution(
            ExecutionInput("ib", "A", "1", "s", sap, "BUY", 1, "1", "2025-03-03T15:00:00Z")
        ).execution
        assert stored.currency == "EUR" and stored.fx_rate_to_base_nanos is None
        row = db.conn.execute("SELECT currency FROM executions WHERE id = ?", (stored.id,))
        assert row.fetchone()[0] == "EUR"


def test_an_unknown_currency_code_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    with Database(path) as db:
        db.ensure_strategy("s")
        sap = db.ensure_instrument("SAP", currency="EUR")
        db.record_execution(
            ExecutionInput("ib", "A", "1", "s", sap, "BUY", 1, "1", "2025-03-03T15:00:00Z")
        )
        before = _counts(path)
        attempts = [
            lambda: db.ensure_instrument("ROG", currency="CHX"),
            lambda: db.record_execution(
                ExecutionInput(
                    "ib", "A", "2", "s", sap, "BUY", 1, "1", "2025-03-03T15:00:00Z", currency="EUE"
                )
            ),
            lambda: db.record_commission(broker="ib", exec_id="1", commission=1, currency="EURO"),
            lambda: db.record_cash_event(
                broker="ib",
                account="A",
                broker_txn_id="d1",
                kind="dividend",
                currency="XXY",
                amount=5,
                event_time="2025-03-03T15:00:00Z",
            ),
            lambda: db.record_fx_rate("EUR", "ABC", "2025-03-03", "0.94"),
            lambda: db.set_base_currency("ib", "B", "CHQ"),
            lambda: db.ensure_account("ib", "C", base_currency="US"),
        ]
        for attempt in attempts:
            with pytest.raises(ValidationError, match="currency"):
                attempt()
        assert _counts(path) == before


def test_a_rate_that_is_not_positive_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "rate.db"
    with Database(path) as db:
        db.ensure_strategy("s")
        sap = db.ensure_instrument("SAP", currency="EUR")
        db.ensure_account("ib", "A", base_currency="CHF")
        before = _counts(path)
        for rate in (0, -1, "-0.94", "0.0000000001", "nan"):
            with pytest.raises(ValidationError, match="fx_rate_to_base"):
                db.record_execution(
                    ExecutionInput(
                        "ib",
                        "A",
                        "1",
                        "s",
                        sap,
                        "BUY",
                        1,
                        "1",
                        "2025-03-03T15:00:00Z",
                        fx_rate_to_base=rate,
                    )
                )
            with pytest.raises(ValidationError, match="rate"):
                db.record_fx_rate("EUR", "CHF", "2025-03-03", rate)
        with pytest.raises(ValidationError, match="itself"):
            db.record_fx_rate("CHF", "CHF", "2025-03-03", 1)
        with pytest.raises(ValidationError, match="day"):
            db.record_fx_rate("EUR", "CHF", "03/03/2025", "0.94")
        assert _counts(path) == before


def test_the_base_currency_does_not_change_under_fills_rated_to_it(ledger: Path) -> None:
    with Database(ledger) as db:
        db.set_base_currency("ib", "U7654321", "CHF")  # the same: nothing to do
        with pytest.raises(ConflictError, match="CHF"):
            db.set_base_currency("ib", "U7654321", "USD")
        assert db.account("ib", "U7654321").base_currency == "CHF"


def _conversion(exec_id: str, qty: str = "10000", symbol: str = "EUR") -> ExecutionEvent:
    return ExecutionEvent(
        "ib",
        "U1",
        exec_id,
        InstrumentSpec(symbol, sec_type="CASH", exchange="IDEALPRO", currency="CHF"),
        "BOT",
        Decimal(qty),
        Decimal("0.9402"),
        "2025-03-03T16:00:00Z",
    )


def test_a_live_conversion_is_cash_whichever_of_fill_and_commission_comes_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.db"
    with Database(path) as db:
        recorder = Recorder(db, journal=EventJournal(tmp_path / "journal.jsonl"))
        try:
            recorder.handle(CommissionEvent("ib", "fx.1", Decimal("2"), "CHF"))  # first
            recorder.handle(_conversion("fx.1"))
            recorder.handle(_conversion("fx.2", qty="500"))
            recorder.handle(CommissionEvent("ib", "fx.2", Decimal("1.5"), "CHF"))  # after
            recorder.handle(_conversion("fx.2", qty="500"))  # a replay: nothing new
            recorder.handle(CommissionEvent("ib", "fx.2", Decimal("1.5"), "CHF"))
            before = _counts(path)
            with pytest.raises(ConflictError, match=r"fx\.2:EUR"):
                recorder.handle(_conversion("fx.2", qty="600"))  # same id, other content
            with pytest.raises(ConflictError, match=r"fx\.2:commission"):
                recorder.handle(CommissionEvent("ib", "fx.2", Decimal("9"), "CHF"))
            with pytest.raises(ValidationError, match="symbol"):
                recorder.handle(_conversion("fx.3", symbol="EUR.USD"))  # not a CHF pair
            with pytest.raises(ValidationError, match="currency"):
                recorder.handle(_conversion("fx.4", symbol="EUX"))
            assert _counts(path) == before
        finally:
            recorder.close()
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT broker_txn_id, kind, currency, amount FROM v_cash_events ORDER BY broker_txn_id"
    ).fetchall()
    assert rows == [
        ("fx.1:CHF", "fx_conversion", "CHF", -9402.0),
        ("fx.1:EUR", "fx_conversion", "EUR", 10000.0),
        ("fx.1:commission", "fee", "CHF", -2.0),
        ("fx.2:CHF", "fx_conversion", "CHF", -470.1),
        ("fx.2:EUR", "fx_conversion", "EUR", 500.0),
        ("fx.2:commission", "fee", "CHF", -1.5),
    ]
    nothing = "SELECT (SELECT COUNT(*) FROM commissions) + (SELECT COUNT(*) FROM executions) "
    nothing += "+ (SELECT COUNT(*) FROM instruments) + (SELECT COUNT(*) FROM positions)"
    assert conn.execute(nothing).fetchone()[0] == 0


def test_a_fill_of_ten_billion_converts_exactly_in_both_engines(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    with Database(path) as db:
        db.ensure_strategy("s")
        db.set_base_currency("ib", "A", "CHF")
        sap = db.ensure_instrument("SAP", currency="EUR")
        for exec_id, side, price in (("1", "BUY", "10000"), ("2", "SELL", "10000.5")):
            db.record_execution(
                ExecutionInput(
                    "ib",
                    "A",
                    exec_id,
                    "s",
                    sap,
                    side,
                    1_000_000,  # 10^10 EUR of notional
                    price,
                    f"2025-03-0{exec_id}T15:00:00Z",
                    fx_rate_to_base="0.940123457",
                )
            )
    for engine in (sqlite3.connect(path), connect(path)):
        trip = engine.execute("SELECT net_pnl, net_pnl_base FROM v_round_trips_base").fetchall()
        assert [tuple(Decimal(repr(v)) for v in row) for row in trip] == [
            (Decimal("500000.0"), Decimal("470061.7285"))
        ]
        day = engine.execute(
            "SELECT SUM(gross_pnl_base), SUM(fills_without_rate) FROM v_pnl_by_currency"
        ).fetchone()
        assert Decimal(repr(day[0])) == Decimal("470061.7285") and day[1] == 0
        notional = engine.execute(
            "SELECT SUM(base_micros) FROM v_base_amounts WHERE kind = 'notional'"
        ).fetchone()[0]
        assert notional == 9_401_234_570_000_000 + 9_401_704_631_728_500  # micros, exact


def test_a_live_accounts_base_currency_is_the_one_its_values_come_in(tmp_path: Path) -> None:
    path = tmp_path / "values.db"
    alerts: list[str] = []
    with Database(path) as db:
        recorder = Recorder(
            db, journal=EventJournal(tmp_path / "journal.jsonl"), alert=alerts.append
        )
        try:
            snapshot = AccountValueEvent("ib", "U2", Decimal("1000"), Decimal("10"), "CHF")
            recorder.handle(snapshot)
            assert db.account("ib", "U2").base_currency == "CHF"
            recorder.handle(AccountValueEvent("ib", "U2", None, None, "BASE"))  # IB: unknown
            assert db.account("ib", "U2").base_currency == "CHF"
            sap = db.ensure_instrument("SAP", currency="EUR")
            db.ensure_strategy("s")
            db.record_execution(
                ExecutionInput(
                    "ib",
                    "U2",
                    "1",
                    "s",
                    sap,
                    "BUY",
                    1,
                    "1",
                    "2025-03-03T15:00:00Z",
                    fx_rate_to_base="0.94",
                )
            )
            for _ in range(2):  # contradicts the rate its fill carries: alerted once, kept
                recorder.handle(AccountValueEvent("ib", "U2", Decimal("1"), None, "USD"))
            assert db.account("ib", "U2").base_currency == "CHF"
            assert len(alerts) == 1 and "refused" in alerts[0]
            snapshots = db.conn.execute("SELECT COUNT(*) FROM account_snapshots").fetchone()[0]
            assert snapshots == 4  # every snapshot stored
        finally:
            recorder.close()
