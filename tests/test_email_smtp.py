"""email_manager against a real authenticating SMTP server on 127.0.0.1."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from support.smtp import SMTP_PASSWORD, free_port

from quantstrip import email_manager, settings
from quantstrip.daemon.states import EventType
from quantstrip.db.handler import Database, ExecutionInput
from quantstrip.errors import ConfigError


def notifications(workspace: Path) -> list[tuple]:
    db = sqlite3.connect(workspace / "var" / "quantstrip.db")
    return db.execute(
        "SELECT kind, status, recipients, subject, attempts, batch_id "
        "FROM notifications ORDER BY id"
    ).fetchall()


def test_send_delivers_with_recipients_subject_body_and_attachment(mail_workspace, smtp_server):
    row = email_manager.send(
        "Fills",
        "3 fills today",
        to=["a@example.test", "b@example.test"],
        attachments=[("fills.csv", b"symbol,qty\nAAPL,10\n")],
    )
    assert row.status == "sent"
    message = smtp_server.messages[0]
    assert smtp_server.envelopes[0][1] == ["a@example.test", "b@example.test"]
    assert message["Subject"] == "[Quantstrip] Fills"
    assert "3 fills today" in message.get_body(("plain",)).get_content()
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == "fills.csv"
    assert attachment.get_content() == b"symbol,qty\nAAPL,10\n"
    assert notifications(mail_workspace)[0][:2] == ("email", "sent")


def test_per_client_recipients_and_summary_rendering(mail_workspace, smtp_server):
    settings.set("email.recipients.alpha", ["alpha-desk@example.test"])
    email_manager.send_summary({"signal": "BUY", "symbol": "AAPL"}, client="alpha")
    assert smtp_server.envelopes[0][1] == ["alpha-desk@example.test"]
    body = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert "signal  BUY" in body and "symbol  AAPL" in body


def test_queue_batches_into_one_digest_per_recipient_list(mail_workspace, smtp_server):
    for i in range(3):
        email_manager.queue(f"signal {i}", f"body {i}")
    assert email_manager.flush() == []  # interval not elapsed
    digests = email_manager.flush(force=True)
    assert len(digests) == 1 and len(smtp_server.messages) == 1
    body = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert all(f"signal {i}" in body for i in range(3))
    rows = notifications(mail_workspace)
    assert [r[1] for r in rows if r[0] == "digest-item"] == ["batched"] * 3
    assert {r[5] for r in rows if r[0] == "digest-item"} == {digests[0].id}


def test_server_down_records_failure_and_retries_without_raising(mail_workspace, smtp_server):
    settings.set("smtp.primary.port", free_port())  # nothing listens there
    row = email_manager.send("Will fail", "body")
    assert row.status == "failed" and row.attempts == 3
    assert "ConnectionRefusedError" in row.last_error
    settings.set("smtp.primary.port", smtp_server.port)
    resent = email_manager.resend(row.id)
    assert resent.status == "sent" and resent.attempts == 4
    assert smtp_server.messages[0]["Subject"] == "[Quantstrip] Will fail"


def test_a_failed_message_is_resent_whole_with_its_html_and_attachment(mail_workspace, smtp_server):
    settings.set("smtp.primary.port", free_port())  # nothing listens there
    row = email_manager.send(
        "Statement",
        "see attached",
        html="<p>see <b>attached</b></p>",
        attachments=[("statement.csv", b"date,pnl\n2025-01-02,12.50\n")],
    )
    assert row.status == "failed"
    kept = mail_workspace / "var" / "outbox" / f"{row.id}.eml"
    assert kept.exists() and (kept.stat().st_mode & 0o777) == 0o600
    settings.set("smtp.primary.port", smtp_server.port)
    assert email_manager.resend(row.id).status == "sent"
    message = smtp_server.messages[0]
    assert "<b>attached</b>" in message.get_body(("html",)).get_content()
    files = {p.get_filename(): p.get_content() for p in message.iter_attachments()}
    assert files == {"statement.csv": b"date,pnl\n2025-01-02,12.50\n"}
    assert not kept.exists()  # delivered: nothing left in the outbox
    with pytest.raises(ConfigError, match="already sent"):
        email_manager.resend(row.id)


def test_a_repeated_alert_waits_for_the_digest_instead_of_flooding(mail_workspace, smtp_server):
    for _ in range(3):
        email_manager.send_error_alert("alpha", ValueError("no quotes for SPY"))
    email_manager.send_error_alert("alpha", RuntimeError("broker login refused"))
    subjects = [str(m["Subject"]) for m in smtp_server.messages]
    assert sum("no quotes" in s for s in subjects) == 1  # the repeats were held back
    assert sum("broker login refused" in s for s in subjects) == 1  # a new error still goes
    digest = email_manager.flush(force=True)[0]
    assert digest.status == "sent"
    digest_text = smtp_server.messages[-1].get_body(("plain",)).get_content()
    assert digest_text.count("Repeated:") == 1 and "Repeated 2 more times" in digest_text
    settings.set("email.alert_repeat_minutes", 0)  # 0: every alert is mailed
    email_manager.send_error_alert("alpha", ValueError("no quotes for SPY"))
    assert sum("no quotes" in str(m["Subject"]) for m in smtp_server.messages) == 2


def test_error_alert_carries_the_traceback_and_never_the_password(mail_workspace, smtp_server):
    try:
        raise ValueError(f"bad fill, password={SMTP_PASSWORD}")
    except ValueError as exc:
        row = email_manager.send_error_alert("alpha", exc)
    assert row is not None and row.status == "sent"
    body = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert "Traceback" in body and "ValueError" in body
    assert SMTP_PASSWORD not in body
    for path in (mail_workspace / "var").rglob("*"):
        if path.is_file():
            assert SMTP_PASSWORD.encode() not in path.read_bytes(), path


def test_eod_summary_is_built_from_the_database(mail_workspace, smtp_server):
    """The day is the clock's UTC day, fixed here: the test read the real date and the summary
    read it again, so a run across midnight compared two different days."""
    with Database(mail_workspace / "var" / "quantstrip.db") as db:
        aapl = db.ensure_instrument("AAPL")
        fills = (
            ("x0", "BUY", "90", datetime(2027, 3, 11, 23, 59, 59, tzinfo=UTC)),  # the day before
            ("x1", "BUY", "100", datetime(2027, 3, 12, 0, 0, tzinfo=UTC)),  # the first instant
            ("x2", "SELL", "101.5", datetime(2027, 3, 12, 23, 59, 59, 999000, tzinfo=UTC)),
            ("x3", "SELL", "95", datetime(2027, 3, 13, 0, 0, tzinfo=UTC)),  # the day after
        )
        for exec_id, side, price, when in fills:
            db.record_execution(
                ExecutionInput("sim", "S1", exec_id, "alpha", aapl, side, 10, price, when)
            )
            db.record_commission(broker="sim", exec_id=exec_id, commission="1.00")
        # The event type a failing job writes (a made-up "error" type could never fail here).
        with time_machine.travel(datetime(2027, 3, 12, 23, 59, 58, tzinfo=UTC), tick=False):
            db.record_client_event("alpha", EventType.JOB_ERROR, "feed stalled")
        with time_machine.travel(datetime(2027, 3, 13, 0, 0, 1, tzinfo=UTC), tick=False):
            db.record_client_event("alpha", EventType.JOB_ERROR, "tomorrow's stall")
    with time_machine.travel(datetime(2027, 3, 12, 23, 59, 59, tzinfo=UTC), tick=True):
        row = email_manager.send_eod_summary("alpha")
    assert row.status == "sent"
    body = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert "End of day 2027-03-12 for alpha" in body
    # x2 closes the oldest lot (x0 at 90, FIFO): 115.00 gross less the day's two commissions.
    assert "Realised PnL (net of commissions): 113.00" in body
    assert "Trades (2):" in body and "00:00:00 alpha BUY 10 AAPL @ 100" in body
    assert "Errors (1):" in body and "feed stalled" in body and "tomorrow" not in body


def use_starttls_account(port: int, security: str = "starttls") -> None:
    settings.set(
        "smtp.secure",
        {
            "host": "127.0.0.1",
            "port": port,
            "security": security,
            "username": "quant",
            "from_addr": "quantstrip@localhost",
        },
    )
    settings.set_secret("smtp.secure.password", SMTP_PASSWORD)


def test_starttls_account_verifies_the_server_and_authenticates(mail_workspace, starttls_server):
    inbox, cert = starttls_server
    use_starttls_account(inbox.port)
    settings.set("email.cafile", str(cert))
    row = email_manager.send("Over TLS", "encrypted", account="secure")
    assert row.status == "sent" and row.smtp_account == "secure"
    assert inbox.messages[0]["Subject"] == "[Quantstrip] Over TLS"


def test_starttls_refuses_an_untrusted_certificate(mail_workspace, starttls_server):
    inbox, _ = starttls_server
    use_starttls_account(inbox.port)
    row = email_manager.send("Untrusted", "body", account="secure")
    assert row.status == "failed" and "CERTIFICATE_VERIFY_FAILED" in (row.last_error or "")
    assert inbox.messages == []


def test_ssl_account_verifies_the_server_and_authenticates(mail_workspace, ssl_server):
    inbox, cert = ssl_server
    use_starttls_account(inbox.port, security="ssl")
    settings.set("email.cafile", str(cert))
    row = email_manager.send("Over SSL", "encrypted from the first byte", account="secure")
    assert row.status == "sent", row.last_error
    assert inbox.messages[0]["Subject"] == "[Quantstrip] Over SSL"
