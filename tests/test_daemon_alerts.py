"""Alerts reach a real SMTP server (aiosmtpd on 127.0.0.1): a crashed client, a failing job,
a failed notebook run, each with its traceback, recorded as a notification."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from support.daemon import DaemonHandle, wait_until, write_module_client, write_notebook_client
from support.smtp import Inbox

from quantstrip import settings

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def mails(inbox: Inbox, text: str) -> list[EmailMessage]:
    return [m for m in list(inbox.messages) if text in str(m["Subject"])]


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def test_crash_job_error_and_failed_run_are_emailed(
    mail_workspace: Path, smtp_server: Inbox, daemon: DaemonHandle
) -> None:
    write_module_client(
        "crasher",
        """
        from quantstrip import ClientBase

        class Crasher(ClientBase):
            def on_start(self):
                raise RuntimeError("broker login refused")
        """,
        restart={"max_restarts": 0},
        recipients=["desk@example.test"],
    )
    write_module_client(
        "flaky",
        """
        from quantstrip import ClientBase

        class Flaky(ClientBase):
            def __init__(self):
                super().__init__()
                self.scheduler.every(1).seconds.do(self.rebalance)

            def rebalance(self):
                raise ValueError("no quotes for SPY")
        """,
    )
    write_notebook_client("eod", ["raise KeyError('close')"])
    settings.set("email.digest_interval_minutes", 0.02)  # repeats go out in a digest within ~1 s
    daemon.start()
    daemon.wait_state("crasher", "crashed", 60)
    daemon.control.run_now("eod")

    crash = wait_until(lambda: mails(smtp_server, "crasher crashed"), 60, "the crash alert")[0]
    assert "RuntimeError: broker login refused" in str(crash["Subject"])
    assert "Traceback" in body(crash) and "on_start" in body(crash)
    # client.toml recipients win over the settings' default recipients.
    assert crash["To"] == "desk@example.test"
    assert wait_until(lambda: mails(smtp_server, "crasher gave up"), 30, "the crash-loop alert")

    job = wait_until(lambda: mails(smtp_server, "job rebalance failed"), 60, "the job alert")[0]
    assert "ValueError: no quotes for SPY" in body(job) and job["To"] == "ops@example.test"
    assert daemon.status("flaky").state == "running"  # a failing job does not stop the client

    run = wait_until(lambda: mails(smtp_server, "Error in eod"), 90, "the run alert")[0]
    assert "in cell 2" in str(run["Subject"]) and "KeyError" in body(run)

    def alerts_recorded() -> list:
        rows = daemon.query(
            "SELECT client_name, status FROM notifications WHERE kind = 'alert' ORDER BY id"
        )
        # A row turns 'sent' just after the server has the mail: wait for the bookkeeping too.
        return rows if all(r["status"] == "sent" for r in rows) else []

    sent = wait_until(alerts_recorded, 30, "every alert recorded as sent")
    assert {r["client_name"] for r in sent} >= {"crasher", "flaky", "eod"}

    # The job keeps failing every second: one mail, the repeats go into the next digest, which
    # the daemon sends by itself when its interval has passed.
    digest = wait_until(lambda: mails(smtp_server, "Digest:"), 60, "the digest of repeats")[0]
    assert "Repeated: Error in flaky: job rebalance failed" in body(digest)
    assert len(mails(smtp_server, "job rebalance failed")) == 1
    repeats = daemon.query(
        "SELECT status FROM notifications WHERE kind = 'digest-item' AND client_name = 'flaky'"
    )
    assert len(repeats) >= 1
