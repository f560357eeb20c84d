"""E-mail for client code: named SMTP accounts, per-client recipients, digests, EOD summaries
and error alerts.

Every message becomes a row in `notifications` before any network I/O (queued, then sent or
failed), so the notification centre shows what happened even when SMTP is down. Sending retries
with exponential backoff and never raises into the caller: a mail outage must not stop a
strategy. Passwords come from the encrypted vault and are never logged or stored.

The parts: `smtp` (accounts, connection, message), `delivery` (record, send with retries,
outbox, resend), `digests` (digest items, error alerts and their repeats), `summaries`
(rendered objects, the end-of-day mail). Client code imports this module only.
"""

from __future__ import annotations

from quantstrip.email_manager.delivery import recipients_for, resend, send
from quantstrip.email_manager.digests import REPEATS, flush, queue, send_error_alert
from quantstrip.email_manager.smtp import PERMANENT, TRANSIENT, Attachment
from quantstrip.email_manager.summaries import render, send_eod_summary, send_summary

__all__ = [
    "PERMANENT",
    "REPEATS",
    "TRANSIENT",
    "Attachment",
    "flush",
    "queue",
    "recipients_for",
    "render",
    "resend",
    "send",
    "send_eod_summary",
    "send_error_alert",
    "send_summary",
]
