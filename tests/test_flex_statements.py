"""Flex statements as IB really sends them: several accounts in one answer, cancelled trades,
positions with lots and options, every date format, AutoFX rows without an exec id, cash
transactions and ending cash, network failures on the way; the import goes through the
Recorder. Fixtures: hand-made multi-account and cancellation statements, and rows shaped like
the ibflex project's test samples (tests/fixtures/ib/)."""

from __future__ import annotations

import contextlib
import gc
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import pytest
from support.examples import ExampleClient
from support.http_stand_in import QuietHandler, loopback_server, serving

from quantstrip.brokers.ib_flex import (
    FlexClient,
    FlexError,
    parse_statement,
    parse_statements,
    reconcile,
)
from quantstrip.db.handler import Database, ExecutionInput

FIXTURES = Path(__file__).parent / "fixtures" / "ib"
MULTI = (FIXTURES / "flex_multi_account.xml").read_bytes()
CANCELS = (FIXTURES / "flex_cancellations.xml").read_bytes()
SHAPES = (FIXTURES / "flex_ibflex_shapes.xml").read_bytes()
SAMPLE = (FIXTURES / "flex_statement_sample.xml").read_bytes()


def statement_with_trade(**attributes: str) -> bytes:
    """A one-trade statement; `attributes` replace or add to the trade's."""
    trade = {
        "accountId": "U9",
        "currency": "USD",
        "assetCategory": "STK",
        "symbol": "AAPL",
        "conid": "265598",
        "tradeID": "1",
        "dateTime": "20250304;100215",
        "quantity": "10",
        "tradePrice": "200",
        "ibCommission": "-1",
        "netCash": "-2001",
        "buySell": "BUY",
        "ibExecID": "0000e0d5.1.01.01",
        "levelOfDetail": "EXECUTION",
    }
    trade.update(attributes)
    text = " ".join(f'{k}="{v}"' for k, v in trade.items() if v is not None)
    return (
        '<FlexQueryResponse><FlexStatements count="1"><FlexStatement accountId="U9" '
        'fromDate="20250303" toDate="20250307" whenGenerated="20250308;081512">'
        f"<Trades><Trade {text} /></Trades></FlexStatement></FlexStatements></FlexQueryResponse>"
    ).encode()


def rows(db: Database, sql: str) -> list[tuple]:
    return [tuple(r) for r in db.query(sql)]


def test_every_statement_of_a_multi_account_answer_is_reconciled(
    mail_workspace: Path, smtp_server, example_client: ExampleClient
) -> None:
    saved = mail_workspace / "statement.xml"
    saved.write_bytes(MULTI)
    client = example_client(
        mail_workspace,
        "eod_reconcile",
        mode="paper",
        import_missing=True,
        strategy="swing",
        statement_file=str(saved),
    )
    first = client.reconcile()
    second = client.reconcile()
    assert [(r.account, r.clean, len(r.imported)) for r in first] == [
        ("U1111111", False, 2),
        ("U2222222", False, 2),
    ]
    assert [(r.account, r.clean) for r in second] == [("U1111111", True), ("U2222222", True)]
    subjects = [str(m["Subject"]) for m in smtp_server.messages]
    assert subjects[-2:] == [
        "[Quantstrip] Flex reconciliation U1111111 2025-03-07: clean",
        "[Quantstrip] Flex reconciliation U2222222 2025-03-07: clean",
    ]
    with Database(mail_workspace / "var" / "quantstrip.db") as db:
        held = rows(db, "SELECT account, symbol, sec_type, qty FROM v_positions ORDER BY 1, 2, 3")
        assert held == [
            ("U1111111", "AAPL", "OPT", 2.0),
            ("U1111111", "AAPL", "STK", 10.0),
            ("U2222222", "AAPL", "STK", 3.0),
            ("U2222222", "SAP", "STK", 5.0),
        ]


def test_parse_statement_refuses_to_drop_accounts() -> None:
    assert [s.account for s in parse_statements(MULTI)] == ["U1111111", "U2222222"]
    assert parse_statements(MULTI)[1].base_currency == "EUR"
    with pytest.raises(FlexError, match="2 statements"):
        parse_statement(MULTI)


def test_a_cancelled_trade_and_its_reversal_net_out(tmp_path: Path) -> None:
    statement = parse_statement(CANCELS)
    assert [t.trade_id for t in statement.trades] == ["803", "804"]
    assert [(o.trade_id, c.trade_id) for o, c in statement.cancelled] == [("801", "802")]
    with Database(tmp_path / "q.db") as db:
        db.ensure_strategy("swing")
        report = reconcile(db, statement, import_missing=True)
        assert report.imported == ["0000e0d5.81000003.01.01", "0000e0d5.81000004.01.01"]
        assert rows(db, "SELECT strategy, qty FROM v_positions") == [("swing", 3.0)]
        assert reconcile(db, statement).clean


def test_a_fill_ib_cancelled_that_the_database_holds_is_reported(tmp_path: Path) -> None:
    statement = parse_statement(CANCELS)
    with Database(tmp_path / "q.db") as db:
        msft = db.ensure_instrument("MSFT", broker="ib", broker_contract_id="272093")
        db.record_execution(
            ExecutionInput(
                "ib", "U3333333", "0000e0d5.81000001.01.01", "live", msft, "BUY", 10, "400",
                "2025-03-03T20:30:00Z",
            )
        )  # fmt: skip
        report = reconcile(db, statement)
        assert report.cancelled_in_db == ["0000e0d5.81000001.01.01"]
        assert "0000e0d5.81000001.01.01" not in report.extra_in_db and not report.clean


def test_positions_are_keyed_by_conid_and_lots_never_overwrite_the_summary() -> None:
    account = parse_statements(MULTI)[0]
    assert {k: p.qty for k, p in account.positions.items()} == {
        "265598": Decimal(10),
        "700000001": Decimal(2),
    }
    assert len(account.lots) == 1
    shapes = parse_statement(SHAPES)  # lots only: the position is their sum
    assert {k: p.qty for k, p in shapes.positions.items()} == {"80789235": Decimal(-300)}


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"dateTime": "20250304;100215"}, datetime(2025, 3, 4, 15, 2, 15, tzinfo=UTC)),
        ({"dateTime": "2025-03-04;10:02:15"}, datetime(2025, 3, 4, 15, 2, 15, tzinfo=UTC)),
        ({"dateTime": "20250304,100215"}, datetime(2025, 3, 4, 15, 2, 15, tzinfo=UTC)),
        ({"dateTime": "2025-03-04, 10:02:15"}, datetime(2025, 3, 4, 15, 2, 15, tzinfo=UTC)),
        ({"dateTime": "20250304 100215"}, datetime(2025, 3, 4, 15, 2, 15, tzinfo=UTC)),
        ({"dateTime": "03/04/2025;100215"}, datetime(2025, 3, 4, 15, 2, 15, tzinfo=UTC)),
        ({"dateTime": "03/04/25;10:02:15"}, datetime(2025, 3, 4, 15, 2, 15, tzinfo=UTC)),
        ({"dateTime": "04-Mar-25;100215"}, datetime(2025, 3, 4, 15, 2, 15, tzinfo=UTC)),
        ({"dateTime": "20250304100215"}, datetime(2025, 3, 4, 15, 2, 15, tzinfo=UTC)),
        (
            {"dateTime": None, "tradeDate": "20250704", "tradeTime": "100215"},
            datetime(2025, 7, 4, 14, 2, 15, tzinfo=UTC),  # New York in summer time
        ),
        (
            {"dateTime": None, "tradeDate": "2025-03-04", "tradeTime": "10:02:15"},
            datetime(2025, 3, 4, 15, 2, 15, tzinfo=UTC),
        ),
    ],
)
def test_every_flex_date_format(attributes: dict, expected: datetime) -> None:
    (trade,) = parse_statement(statement_with_trade(**attributes)).trades
    assert trade.time.astimezone(UTC) == expected


def test_an_autofx_row_without_exec_id_does_not_abort_the_import(tmp_path: Path) -> None:
    statement = parse_statements(MULTI)[0]
    assert [t.symbol for t, _ in statement.skipped] == ["EUR.USD"]
    with Database(tmp_path / "q.db") as db:
        report = reconcile(db, statement, import_missing=True)
        assert len(report.imported) == 2 and "AutoFX" in report.skipped[0]
        assert db.query("SELECT COUNT(*) FROM executions")[0][0] == 2


def test_a_trade_without_buy_sell_is_an_error_naming_the_row() -> None:
    with pytest.raises(FlexError, match=r"trade 77 \(AAPL\) has no buySell"):
        parse_statement(statement_with_trade(buySell="", tradeID="77"))
    with pytest.raises(FlexError, match="has no buySell"):
        parse_statement(statement_with_trade(buySell=None))


def test_cash_transactions_become_cash_events_and_ending_cash_is_checked(tmp_path: Path) -> None:
    statement = parse_statement(CANCELS)
    with Database(tmp_path / "q.db") as db:
        db.ensure_strategy("swing")
        report = reconcile(db, statement, import_missing=True)
        assert report.cash_differences == [] and len(report.imported_cash) == 7
        kinds = rows(db, "SELECT kind, amount FROM v_cash_events ORDER BY cash_event_id")
        assert kinds == [
            ("dividend", 4.15),
            ("withholding_tax", -0.62),
            ("dividend", -4.15),
            ("dividend", 4.15),
            ("interest", 1.23),
            ("fee", -10.0),
            ("deposit", 1000.0),
        ]
        assert rows(db, "SELECT ROUND(SUM(amount), 2) FROM v_cash_events") == [(994.76,)]
        again = reconcile(db, statement, import_missing=True)
        assert again.clean and again.imported_cash == []
    wrong = CANCELS.replace(b'endingCash="4797.76"', b'endingCash="4807.76"')
    with Database(tmp_path / "w.db") as db:
        report = reconcile(db, parse_statement(wrong))
        assert report.cash_differences == [("USD", Decimal("4797.76"), Decimal("4807.76"))]


def test_the_import_goes_through_the_recorder(tmp_path: Path) -> None:
    """The Recorder's rules apply to imported fills: an order reference naming a strategy
    attributes the fill to it, and an option is stored as the option it is."""
    with Database(tmp_path / "q.db") as db:
        db.ensure_strategy("swing")
        reconcile(db, parse_statement(CANCELS), import_missing=True)
        assert rows(db, "SELECT DISTINCT strategy FROM v_executions") == [("swing",)]
        reconcile(db, parse_statements(MULTI)[0], import_missing=True)
        option = rows(
            db,
            "SELECT i.symbol, i.sec_type, i.expiry, i.strike_micros, i.option_right, "
            "i.multiplier_micros FROM instruments i WHERE i.sec_type = 'OPT'",
        )
        assert option == [("AAPL", "OPT", "20250321", 210_000_000, "C", 100_000_000)]


def test_book_trades_shaped_like_ibflex_samples_are_imported(tmp_path: Path) -> None:
    statement = parse_statement(SHAPES)
    assert [t.exec_id for t in statement.trades] == [
        "00012345.6700aaaa.01.01",
        "IBFLEX-594760001",
        "IBFLEX-594760002",
    ]
    assert statement.trades[1].time == datetime(2025, 3, 21, 20, 20, tzinfo=UTC)
    with Database(tmp_path / "q.db") as db:
        first = reconcile(db, statement, import_missing=True)
        assert first.imported_cash == ["5767420001"]
        assert rows(db, "SELECT symbol, sec_type, qty FROM v_positions") == [("VXX", "STK", -300.0)]
        assert reconcile(db, statement).clean


# ---- the Flex Web Service over a network that fails -------------------------------------------
class FlakyFlex:
    """Flex Web Service stand-in: answers scripted per request; "503" and "drop" fail."""

    def __init__(self) -> None:
        self.script: list[str | bytes] = []
        self.requests: list[str] = []
        stand_in = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                stand_in.requests.append(urlparse(self.path).path)
                step = stand_in.script.pop(0)
                if step == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)  # no answer at all
                    return
                if isinstance(step, str):
                    self.send_body(b"Service Unavailable", "text/plain", int(step))
                    return
                self.send_body(step, "text/xml")

        self.server = loopback_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def client(self, **kw: object) -> FlexClient:
        return FlexClient(
            "tok-1", "42", base_url=self.url, poll_interval_s=0.01, sleep=lambda s: None, **kw
        )  # type: ignore[arg-type]


@pytest.fixture
def flaky() -> Iterator[FlakyFlex]:
    stand_in = FlakyFlex()
    with serving(stand_in.server):
        yield stand_in


def _success(url: str) -> bytes:
    return (
        "<FlexStatementResponse><Status>Success</Status><ReferenceCode>77</ReferenceCode>"
        f"<Url>{url}/GetStatement</Url></FlexStatementResponse>"
    ).encode()


def test_network_and_http_failures_are_retried_like_service_codes(flaky: FlakyFlex) -> None:
    flaky.script = ["503", "drop", _success(flaky.url), "429", "drop", CANCELS]
    assert flaky.client().download() == CANCELS
    assert flaky.requests == ["/SendRequest"] * 3 + ["/GetStatement"] * 3


def test_a_permanent_http_error_fails_at_once_without_the_token(flaky: FlakyFlex) -> None:
    flaky.script = ["404"]
    with pytest.raises(FlexError, match="HTTP 404") as error:
        flaky.client().download()
    assert len(flaky.requests) == 1 and "tok-1" not in str(error.value)
    flaky.script = ["503"] * 3
    with pytest.raises(FlexError, match="HTTP 503"):
        flaky.client(poll_attempts=3).download()


def _open_files_to(target: str) -> list[str]:
    """What this process's open descriptors point at, among those naming `target`."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if target in link:
                found.append(link)
    return found


def _sockets_to(port: int) -> list[int]:
    """Inodes of this process's TCP sockets connected to 127.0.0.1:`port` (from /proc/net/tcp)."""
    remote = f"0100007F:{port:04X}"
    with open("/proc/self/net/tcp") as table:
        inodes = {row.split()[9] for row in list(table)[1:] if row.split()[2] == remote}
    return [int(i) for i in inodes if _open_files_to(f"socket:[{i}]")]


def test_an_http_error_answer_leaves_no_socket_open(flaky: FlakyFlex) -> None:
    """IB's 5xx and 4xx answers (retried or not) close their connection: a client that
    downloads every day must not gather sockets until the process runs out of descriptors."""
    port = flaky.server.server_port
    flaky.script = ["503", "503", "404"]
    with pytest.raises(FlexError, match="HTTP 404") as failure:
        flaky.client(poll_attempts=3).download()
    assert len(flaky.requests) == 3
    assert _sockets_to(port) == []  # while the error (and what it chains) is still held
    del failure


def test_reconcile_leaves_no_connection_to_the_database_open(tmp_path: Path) -> None:
    """The import's Recorder is closed and no connection outlives the caller's database."""
    statement = parse_statement(SAMPLE)
    path = tmp_path / "q.db"
    with Database(path) as db:
        report = reconcile(db, statement, import_missing=True)
        assert len(report.imported) == 2
    gc.collect()
    assert _open_files_to(str(path)) == []
