"""Sending one message: recorded in `notifications` before any network I/O, delivered with
retries (tenacity), ending 'sent' or 'failed' and never raising into the caller; a failed message
is kept whole in the outbox for a faithful `resend`. Secrets are redacted before anything is
stored or sent."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from quantstrip import settings
from quantstrip.db.handler import Database
from quantstrip.db.records import Notification
from quantstrip.db.units import now_text
from quantstrip.email_manager.smtp import (
    PERMANENT,
    TRANSIENT,
    Attachment,
    _account,
    _deliver,
    _message,
)
from quantstrip.errors import ConfigError
from quantstrip.files import write_atomic
from quantstrip.logger import redact
from quantstrip.paths import workspace
from quantstrip.settings_models import SmtpAccount

log = logging.getLogger("quantstrip.email_manager")


def _db() -> Database:
    """The workspace database (not db_handler's, which a simulation client may redirect)."""
    return Database(workspace().database)


def recipients_for(client: str | None) -> list[str]:
    configured = settings.platform().email.recipients
    if client and configured.get(client):
        return list(configured[client])
    return list(configured.get("default", []))


def _current_client() -> str | None:
    return os.environ.get("QUANTSTRIP_CLIENT")


def _prefixed(subject: str) -> str:
    prefix = settings.platform().email.subject_prefix
    return subject if not prefix or subject.startswith(prefix) else f"{prefix} {subject}"


def _record(db: Database, **values: Any) -> Notification:
    return db.insert("notifications", **values)  # type: ignore[return-value]


def _attempt(db: Database, row: Notification, message: EmailMessage | None, account: str | None):
    """Try to deliver with retries (tenacity: `email.retry_attempts`, exponential backoff from
    `email.retry_backoff_s`, permanent errors not retried); the row ends as 'sent' or 'failed'.
    Never raises."""
    email = settings.platform().email
    attempts, last_error = row.attempts, None

    def deliver_once(name: str, smtp_account: SmtpAccount, message: EmailMessage) -> None:
        nonlocal attempts, last_error
        attempts += 1
        try:
            _deliver(name, smtp_account, message)
        except (*TRANSIENT, ConfigError) as exc:
            last_error = redact(f"{type(exc).__name__}: {exc}")
            log.warning("mail %s attempt %d failed: %s", row.id, attempts, last_error)
            raise

    try:
        name, smtp_account = _account(account)
        if message is None:
            message = _message(
                smtp_account, row.recipients.split(", "), row.subject, row.body, None, ()
            )
        retrying = Retrying(
            stop=stop_after_attempt(email.retry_attempts),
            wait=wait_exponential(multiplier=email.retry_backoff_s),
            retry=retry_if_exception_type(TRANSIENT) & retry_if_not_exception_type(PERMANENT),
            reraise=True,
        )
        retrying(deliver_once, name, smtp_account, message)
        _outbox_path(row.id).unlink(missing_ok=True)
        return db.update(
            "notifications",
            row.id,
            status="sent",
            attempts=attempts,
            last_error=None,
            sent_at=now_text(),
            smtp_account=name,
        )
    except (*TRANSIENT, ConfigError):
        pass  # recorded by deliver_once
    except Exception as exc:  # configuration or anything unexpected: recorded, not raised
        last_error = redact(f"{type(exc).__name__}: {exc}")
        log.warning("mail %s not sent: %s", row.id, last_error)
    if message is not None:
        _keep_for_resend(row.id, message)
    return db.update(
        "notifications", row.id, status="failed", attempts=attempts, last_error=last_error
    )


def _outbox_path(notification_id: int) -> Path:
    return workspace().outbox / f"{notification_id}.eml"


def _keep_for_resend(notification_id: int, message: EmailMessage) -> None:
    """Keep a failed message whole (HTML part and attachments included) until it is sent.

    The notifications table holds the plain text only; without this a resend would lose what
    the original carried. Written 0600: reports and statements can be private.
    """
    try:
        write_atomic(_outbox_path(notification_id), message.as_bytes(), private=True)
    except OSError as exc:  # the failure itself is recorded either way
        log.warning("mail %s could not be kept for resend: %s", notification_id, exc)


def _kept_message(notification_id: int) -> EmailMessage | None:
    path = _outbox_path(notification_id)
    if not path.exists():
        return None
    parsed = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    return parsed if isinstance(parsed, EmailMessage) else None


def send(
    subject: str,
    body: str,
    *,
    to: Sequence[str] | None = None,
    client: str | None = None,
    account: str | None = None,
    attachments: Iterable[Attachment | tuple[str, bytes] | Path] = (),
    html: str | None = None,
    kind: str = "email",
) -> Notification:
    """Send now (with retries). Returns the notification row: status 'sent' or 'failed'."""
    with _db() as db:
        row, message = prepare(
            db,
            subject,
            body,
            to=to,
            client=client,
            account=account,
            attachments=attachments,
            html=html,
            kind=kind,
        )
        if message is None:
            return row
        return _attempt(db, row, message, account)  # type: ignore[return-value]


def prepare(
    db: Database,
    subject: str,
    body: str,
    *,
    to: Sequence[str] | None = None,
    client: str | None = None,
    account: str | None = None,
    attachments: Iterable[Attachment | tuple[str, bytes] | Path] = (),
    html: str | None = None,
    kind: str = "email",
) -> tuple[Notification, EmailMessage | None]:
    """Record an outgoing message ('queued') and build it, without delivering it: a caller can
    make the record part of its own transaction (the alert throttle). A message that cannot be
    built (no recipients, no SMTP account) is recorded 'failed' and comes back without one."""
    recipients = list(to) if to else recipients_for(client)
    # A secret must never leave in a mail or sit in the notifications table.
    subject, body = redact(_prefixed(subject)), redact(body)
    html = redact(html) if html else None
    row = _record(
        db,
        client_name=client,
        kind=kind,
        smtp_account=account,
        recipients=", ".join(recipients),
        subject=subject,
        body=body,
        status="queued",
    )
    if not recipients:
        failed = db.update(
            "notifications",
            row.id,
            status="failed",
            last_error=f"no recipients configured for client {client!r} (email.recipients)",
        )
        return failed, None  # type: ignore[return-value]
    try:
        _, smtp_account = _account(account)
        message = _message(smtp_account, recipients, subject, body, html, attachments)
    except Exception as exc:
        failed = db.update("notifications", row.id, status="failed", last_error=redact(str(exc)))
        return failed, None  # type: ignore[return-value]
    return row, message


def resend(notification_id: int) -> Notification:
    """Try a failed (or queued) message again, whole: the kept copy with its HTML part and
    attachments when there is one, else rebuilt from the stored subject and text."""
    with _db() as db:
        row = db.get("notifications", notification_id)
        if row.status == "sent":  # type: ignore[attr-defined]
            raise ConfigError(f"notification {notification_id} was already sent")
        kept = _kept_message(notification_id)
        return _attempt(db, row, kept, row.smtp_account)  # type: ignore[arg-type, attr-defined]
