"""Flex Web Service against a local stand-in serving IB's documented answers and the fixture
statement; parsing, storage and reconciliation against a real database."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from support.examples import ExampleClient
from support.http_stand_in import QuietHandler, loopback_server, serving

from quantstrip import logger, settings
from quantstrip.brokers.ib_flex import (
    FlexClient,
    FlexError,
    parse_statement,
    reconcile,
    store_statement,
)
from quantstrip.db.handler import Database, ExecutionInput

STATEMENT = (Path(__file__).parent / "fixtures" / "ib" / "flex_statement_sample.xml").read_bytes()
TOKEN = "flex-Token-31415926"


def answer(status: str, code: int | None = None, message: str = "", port: int = 0) -> bytes:
    if status == "Success":
        return (
            f'<FlexStatementResponse timestamp="08 March, 2025 08:15 AM EST"><Status>Success'
            f"</Status><ReferenceCode>1234567890</ReferenceCode>"
            f"<Url>http://127.0.0.1:{port}/GetStatement</Url></FlexStatementResponse>"
        ).encode()
    return (
        f'<FlexStatementResponse timestamp="08 March, 2025 08:15 AM EST"><Status>{status}</Status>'
        f"<ErrorCode>{code}</ErrorCode><ErrorMessage>{message}</ErrorMessage>"
        "</FlexStatementResponse>"
    ).encode()


class FlexStandIn:
    """Scripted answers: `send` and `get` are lists consumed one per request."""

    def __init__(self) -> None:
        self.send: list[bytes] = []
        self.get: list[bytes] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        stand_in = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                stand_in.requests.append((url.path, params))
                queue = stand_in.send if url.path.endswith("SendRequest") else stand_in.get
                body = queue.pop(0) if queue else answer("Fail", 1020, "unexpected request")
                self.send_body(body, "text/xml")

        self.server = loopback_server(Handler)
        self.port = self.server.server_port

    def client(self, **kw: object) -> FlexClient:
        return FlexClient(
            TOKEN,
            "987654",
            base_url=f"http://127.0.0.1:{self.port}",
            poll_interval_s=0.01,
            sleep=lambda s: None,
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture
def flex() -> Iterator[FlexStandIn]:
    stand_in = FlexStandIn()
    with serving(stand_in.server):
        yield stand_in


def test_still_generating_and_rate_limit_are_retried_then_the_statement_arrives(flex, caplog):
    caplog.set_level(logging.DEBUG)
    flex.send = [answer("Warn", 1018, "Too many requests"), answer("Success", port=flex.port)]
    flex.get = [answer("Warn", 1019, "Statement generation in progress"), STATEMENT]
    xml = flex.client().download()
    assert xml == STATEMENT
    assert [path for path, _ in flex.requests] == [
        "/SendRequest",
        "/SendRequest",
        "/GetStatement",
        "/GetStatement",
    ]
    assert flex.requests[2][1] == {"t": TOKEN, "q": "1234567890", "v": "3"}
    assert TOKEN not in caplog.text and TOKEN not in repr(flex.client())


def test_an_invalid_token_fails_at_once_without_retrying(flex) -> None:
    flex.send = [answer("Fail", 1015, "Token is invalid.")]
    with pytest.raises(FlexError, match="1015") as error:
        flex.client().download()
    assert error.value.code == 1015 and len(flex.requests) == 1
    assert TOKEN not in str(error.value)


def test_retries_are_bounded(flex) -> None:
    flex.send = [answer("Success", port=flex.port)]
    flex.get = [answer("Warn", 1019, "in progress")] * 5
    with pytest.raises(FlexError, match="1019"):
        flex.client(poll_attempts=3).download()
    assert len(flex.requests) == 4


def test_statement_is_parsed_in_utc_and_stored(workspace: Path) -> None:
    statement = parse_statement(STATEMENT)
    assert statement.account == "U1234567" and len(statement.trades) == 2
    buy, sell = statement.trades
    assert (buy.side, buy.qty, buy.price, buy.commission) == ("BUY", 10, Decimal("198.95"), 1)
    assert sell.side == "SELL" and sell.qty == 5 and sell.commission == Decimal("1.35")
    assert buy.time.astimezone(UTC) == datetime(2025, 3, 4, 15, 2, 15, tzinfo=UTC)
    assert statement.positions["265598"].qty == 5
    assert {c.currency for c in statement.cash} == {"BASE_SUMMARY", "USD"}
    path = store_statement(STATEMENT, statement)
    assert path.parent == workspace / "var" / "statements" and path.read_bytes() == STATEMENT


def test_reconcile_reports_missing_extra_mismatched_and_imports_once(tmp_path: Path) -> None:
    statement = parse_statement(STATEMENT)
    with Database(tmp_path / "q.db") as db:
        aapl = db.ensure_instrument("AAPL", broker="ib", broker_contract_id="265598")
        db.record_execution(
            ExecutionInput(
                "ib",
                "U1234567",
                "0000e0d5.67c6f0a1.01.01",
                "swing",
                aapl,
                "BUY",
                10,
                "198.96",
                "2025-03-04T15:02:15Z",
            )
        )
        db.record_execution(
            ExecutionInput(
                "ib",
                "U1234567",
                "0000e0d5.aaaaaaaa.01.01",
                "swing",
                aapl,
                "BUY",
                1,
                "200",
                "2025-03-05T15:00:00Z",
            )
        )
        report = reconcile(db, statement)
        assert [t.exec_id for t in report.missing_in_db] == ["0000e0d5.67c9a2b3.01.01"]
        assert report.extra_in_db == ["0000e0d5.aaaaaaaa.01.01"]
        assert report.mismatched == [("0000e0d5.67c6f0a1.01.01", "price 198.96 vs 198.95")]
        assert report.position_differences == [("AAPL", Decimal(11), Decimal(5))]
        assert not report.clean
        imported = reconcile(db, statement, import_missing=True)
        assert imported.imported == ["0000e0d5.67c9a2b3.01.01"]
        again = reconcile(db, statement, import_missing=True)
        assert again.missing_in_db == [] and again.imported == []
        assert db.query("SELECT COUNT(*) FROM executions")[0][0] == 3
        fee = db.query(
            "SELECT commission FROM v_executions WHERE exec_id = '0000e0d5.67c9a2b3.01.01'"
        )[0][0]
        assert fee == 1.35


def test_the_eod_reconciliation_client_downloads_imports_once_and_mails(
    flex, mail_workspace: Path, smtp_server, example_client: ExampleClient
) -> None:
    settings.set("brokers.flex.query_id", "987654")
    settings.set("brokers.flex.base_url", f"http://127.0.0.1:{flex.port}")
    settings.set("brokers.flex.poll_interval_s", 0.01)
    settings.set_secret("brokers.flex.token", TOKEN)
    client = example_client(
        mail_workspace, "eod_reconcile", mode="paper", import_missing=True, strategy="swing"
    )
    for _ in range(2):
        flex.send.append(answer("Success", port=flex.port))
        flex.get.append(STATEMENT)
    [first] = client.reconcile() or [None]
    assert first is not None and len(first.imported) == 2 and not first.clean
    [second] = client.reconcile() or [None]  # the imported fills are in the database: clean
    assert second is not None and second.clean and second.imported == []
    subjects = [str(m["Subject"]) for m in smtp_server.messages]
    assert subjects == [
        "[Quantstrip] Flex reconciliation U1234567 2025-03-07: MISMATCH",
        "[Quantstrip] Flex reconciliation U1234567 2025-03-07: clean",
    ]
    assert "missing in database: 2" in smtp_server.messages[0].get_body(("plain",)).get_content()
    with Database(mail_workspace / "var" / "quantstrip.db") as db:
        rows = db.query("SELECT strategy, qty FROM v_positions")
        assert [tuple(r) for r in rows] == [("swing", 5.0)]
        events = db.query("SELECT event_type FROM strategy_events")
        assert [r[0] for r in events] == ["reconciliation", "reconciliation"]
    assert len(list((mail_workspace / "var" / "statements").glob("flex_U1234567_*.xml"))) >= 1
    assert TOKEN not in (mail_workspace / "var" / "settings.toml").read_text()


def test_the_eod_reconciliation_client_without_flex_only_logs(
    workspace: Path, example_client: ExampleClient
) -> None:
    client = example_client(workspace, "eod_reconcile", mode="paper")
    assert client.reconcile() is None
    # The warning goes to the client's own log stream (what the operator reads in the log view;
    # a client's logger does not propagate to this process's root logger).
    warned = logger.tail("eod_reconcile", level="WARNING", text="nothing to reconcile against")
    assert len(warned) == 1


def test_a_live_fill_without_its_commission_gets_the_statements_and_a_different_one_is_reported(
    tmp_path: Path,
) -> None:
    """The commission report of a live fill can be lost (a disconnect between the fill and its
    report): the statement is the broker's record, so reconciliation reports the gap and the
    import fills it in. A commission recorded live with another amount is a mismatch the
    operator must see; the import does not overwrite it."""
    statement = parse_statement(STATEMENT)
    buy, sell = statement.trades
    with Database(tmp_path / "q.db") as db:
        aapl = db.ensure_instrument("AAPL", broker="ib", broker_contract_id="265598")
        for trade in (buy, sell):
            db.record_execution(
                ExecutionInput(
                    "ib",
                    "U1234567",
                    trade.exec_id,
                    "swing",
                    aapl,
                    trade.side,
                    trade.qty,
                    trade.price,
                    trade.time.astimezone(UTC).isoformat(),
                )
            )
        db.record_commission(broker="ib", exec_id=sell.exec_id, commission="1.00")
        report = reconcile(db, statement)
        assert [t.exec_id for t in report.missing_commissions] == [buy.exec_id]
        assert report.mismatched == [(sell.exec_id, "commission 1.00 USD vs 1.35 USD")]
        assert not report.clean
        assert "commissions missing: 1" in report.summary()
        imported = reconcile(db, statement, import_missing=True)
        assert imported.imported_commissions == [buy.exec_id]
        again = reconcile(db, statement, import_missing=True)
        assert again.missing_commissions == [] and again.imported_commissions == []
        assert again.mismatched == [(sell.exec_id, "commission 1.00 USD vs 1.35 USD")]
        fees = dict(db.query("SELECT exec_id, commission FROM v_executions ORDER BY exec_id"))
        assert fees == {buy.exec_id: 1.0, sell.exec_id: 1.0}
