"""What the daemon's clients tell by mail must not go quiet: the end-of-day summary lists the
day's errors and failed runs, and a client failing over and over while mail is down produces one
alert and one folded repeat, not a row and a delivery attempt per failure. Real daemon, real
failing clients, the real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pytest
from support.daemon import DaemonHandle, wait_until, write_module_client, write_notebook_client
from support.smtp import Inbox, free_port

from quantstrip import email_manager, settings

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

FAILING_JOB = """
from quantstrip import ClientBase

class Rebalancer(ClientBase):
    def __init__(self):
        super().__init__()
        self.scheduler.every(1).seconds.do(self.rebalance)

    def rebalance(self):
        raise ValueError("no quotes for SPY")
"""


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def test_eod_summary_lists_the_days_job_errors_and_failed_runs(
    mail_workspace: Path, smtp_server: Inbox, daemon: DaemonHandle
) -> None:
    write_module_client("rebalancer", FAILING_JOB)
    write_notebook_client("eod_report", ["raise KeyError('close')"])
    daemon.start()
    error = wait_until(lambda: daemon.events("rebalancer", "job_error"), 60, "a job error")[0]
    daemon.control.run_now("eod_report")
    run = wait_until(
        lambda: [r for r in daemon.runs("eod_report") if r["status"] == "failed"], 90, "a run"
    )[0]

    # The summary of the day those happened on (not of "today": no date dependence).
    mail = email_manager.send_eod_summary(
        "rebalancer", date.fromisoformat(error["created_at"][:10])
    )
    assert mail.status == "sent"
    text = body(wait_until(lambda: smtp_server.messages[-1:], 30, "the EOD mail")[0])
    assert "Errors (0)" not in text
    assert "job_error: job rebalance failed: ValueError: no quotes for SPY" in text

    mail = email_manager.send_eod_summary("eod_report", date.fromisoformat(run["started_at"][:10]))
    text = body(wait_until(lambda: smtp_server.messages[1:], 30, "the second EOD mail")[-1])
    assert "Failed runs (1):" in text
    assert f"run {run['id']} failed in cell 2: KeyError: 'close'" in text
    assert "Failed runs (0)" not in text


def test_alerts_are_throttled_while_mail_is_down(workspace: Path, daemon: DaemonHandle) -> None:
    settings._reset_for_tests()
    settings.set(
        "smtp.primary",
        {"host": "127.0.0.1", "port": free_port(), "security": "plain", "from_addr": "q@local"},
    )
    settings.set("email.recipients", {"default": ["ops@example.test"]})
    settings.set("email.retry_backoff_s", 0.01)
    write_module_client("rebalancer", FAILING_JOB)
    daemon.start()
    wait_until(lambda: len(daemon.events("rebalancer", "job_error")) >= 6, 60, "six job errors")

    def alert_rows() -> list[dict]:
        return daemon.query(
            "SELECT kind, status, attempts, subject, body FROM notifications "
            "WHERE client_name = 'rebalancer' ORDER BY id"
        )

    # The first failure is alerted (and its delivery fails); the repeats are folded into one
    # queued digest item that counts them, for the next digest.
    rows = wait_until(
        lambda: (r := alert_rows()) and r[0]["status"] != "queued" and len(r) >= 2 and r,
        30,
        "the alert's delivery to fail and a repeat to be recorded",
    )
    alerts = [r for r in rows if r["kind"] == "alert"]
    repeats = [r for r in rows if r["kind"] == "digest-item"]
    assert len(alerts) == 1 and alerts[0]["status"] == "failed"
    assert alerts[0]["attempts"] == settings.platform().email.retry_attempts
    assert len(repeats) == 1, [r["subject"] for r in repeats]
    assert repeats[0]["subject"].startswith("Repeated: ")
    errors = len(daemon.events("rebalancer", "job_error"))
    assert "more time" in repeats[0]["body"]
    assert errors >= 6 and len(alert_rows()) <= 2
    settings._reset_for_tests()
