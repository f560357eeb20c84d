"""E-mail for client code: named SMTP accounts, per-client recipients, digests, EOD summaries
and error alerts.

Every message becomes a row in `notifications` before any network I/O (queued, then sent or
failed), so the notification centre shows what happened even when SMTP is down. Sending retries
with exponential backoff and never raises into the caller: a mail outage must not stop a
strategy. Passwords come from the encrypted vault and are never logged or stored.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import traceback as tb
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
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

from quantstrip import clock, settings
from quantstrip.daemon.states import ERROR_EVENTS, FAILED_RUNS, EventType
from quantstrip.db.handler import Database
from quantstrip.db.records import Notification
from quantstrip.db.units import now_text, parse_utc, utc_text
from quantstrip.errors import ConfigError
from quantstrip.files import write_atomic
from quantstrip.logger import redact
from quantstrip.paths import workspace
from quantstrip.settings_models import SmtpAccount

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


def _db() -> Database:
    """The workspace database (not db_handler's, which a simulation client may redirect)."""
    return Database(workspace().database)


def recipients_for(client: str | None) -> list[str]:
    configured = settings.platform().email.recipients
    if client and configured.get(client):
        return list(configured[client])
    return list(configured.get("default", []))


def _account(name: str | None) -> tuple[str, SmtpAccount]:
    platform = settings.platform()
    chosen = name or platform.email.default_account
    if chosen not in platform.smtp:
        raise ConfigError(f"smtp.{chosen}: no such SMTP account configured")
    return chosen, platform.smtp[chosen]


def _connect(account: SmtpAccount) -> smtplib.SMTP:
    if account.security == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            account.host, account.port, timeout=account.timeout_s, context=_ssl_context()
        )
    else:
        smtp = smtplib.SMTP(account.host, account.port, timeout=account.timeout_s)
        if account.security == "starttls":
            smtp.starttls(context=_ssl_context())
    return smtp


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    cafile = settings.platform().email.cafile
    if cafile:
        context.load_verify_locations(cafile)
    return context


def _deliver(account_name: str, account: SmtpAccount, message: EmailMessage) -> None:
    with _connect(account) as smtp:
        if account.username:
            secret = settings.get_secret(f"smtp.{account_name}.password")
            if secret is None:
                raise ConfigError(f"smtp.{account_name}.password: secret not set")
            smtp.login(account.username, secret.reveal())
        smtp.send_message(message)


def _message(
    account: SmtpAccount,
    to: Sequence[str],
    subject: str,
    body: str,
    html: str | None,
    attachments: Iterable[Attachment | tuple[str, bytes] | Path],
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = account.from_addr
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(body)
    if html:
        message.add_alternative(html, subtype="html")
    for item in attachments:
        if isinstance(item, Path):
            item = Attachment(item.name, item.read_bytes())
        elif isinstance(item, tuple):
            item = Attachment(item[0], item[1])
        maintype, _, subtype = item.mime_type.partition("/")
        message.add_attachment(
            item.content, maintype=maintype, subtype=subtype, filename=item.filename
        )
    return message


def _prefixed(subject: str) -> str:
    prefix = settings.platform().email.subject_prefix
    return subject if not prefix or subject.startswith(prefix) else f"{prefix} {subject}"


def _record(db: Database, **values: Any) -> Notification:
    return db.insert("notifications", **values)  # type: ignore[return-value]


# Retrying cannot help these: they would only delay the caller.
PERMANENT = (ConfigError, smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError)
TRANSIENT = (OSError, smtplib.SMTPException)


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
            return db.update(
                "notifications",
                row.id,
                status="failed",
                last_error=f"no recipients configured for client {client!r} (email.recipients)",
            )  # type: ignore[return-value]
        try:
            _, smtp_account = _account(account)
            message = _message(smtp_account, recipients, subject, body, html, attachments)
        except Exception as exc:
            return db.update("notifications", row.id, status="failed", last_error=redact(str(exc)))  # type: ignore[return-value]
        return _attempt(db, row, message, account)  # type: ignore[return-value]


def render(obj: Any) -> tuple[str, str | None]:
    """Plain text and optional HTML for a summary: DataFrame, mapping, sequence or anything."""
    try:
        import pandas as pd

        if isinstance(obj, pd.DataFrame | pd.Series):
            frame = obj.to_frame() if isinstance(obj, pd.Series) else obj
            return frame.to_string(), frame.to_html(border=0)
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if isinstance(obj, dict):
        width = max((len(str(k)) for k in obj), default=0)
        return "\n".join(f"{str(k).ljust(width)}  {v}" for k, v in obj.items()), None
    if isinstance(obj, list | tuple):
        return "\n".join(f"- {item}" for item in obj), None
    return str(obj), None


def send_summary(
    obj: Any, client: str | None = None, subject: str | None = None, **kw: Any
) -> Notification:
    """The seed's `email_manager.send_summary(signal)`: a readable rendering of any object."""
    client = client or _current_client()
    text, html = render(obj)
    title = subject or f"Summary from {client or 'Quantstrip'}"
    return send(title, text, client=client, html=html, kind="summary", **kw)


def _current_client() -> str | None:
    return os.environ.get("QUANTSTRIP_CLIENT")


def queue(
    subject: str, body: str, *, to: Sequence[str] | None = None, client: str | None = None
) -> Notification:
    """Hold a message for the next digest (one message per recipient list per interval)."""
    client = client or _current_client()
    with _db() as db:
        recipients = list(to) if to else recipients_for(client)
        return _record(
            db,
            client_name=client,
            kind="digest-item",
            recipients=", ".join(recipients),
            subject=subject,
            body=body,
            status="queued",
        )


def flush(force: bool = False) -> list[Notification]:
    """Send a digest per recipient list whose oldest queued item is older than the interval."""
    interval = timedelta(minutes=settings.platform().email.digest_interval_minutes)
    digests: list[Notification] = []
    with _db() as db:
        queued = db.all("notifications", {"status": "queued", "kind": "digest-item"})
        groups: dict[str, list[Notification]] = defaultdict(list)
        for item in queued:
            groups[item.recipients].append(item)  # type: ignore[attr-defined]
        now = clock.now()
    for recipients, items in groups.items():
        oldest = min(parse_utc(i.created_at) for i in items)
        if not force and now - oldest < interval:
            continue
        body = "\n\n".join(f"== {i.subject} ({i.created_at[:19]} UTC)\n{i.body}" for i in items)
        digest = send(
            f"Digest: {len(items)} message(s)",
            body,
            to=recipients.split(", "),
            client=items[0].client_name,
            kind="digest",
        )
        with _db() as db:
            for item in items:
                db.update("notifications", item.id, status="batched", batch_id=digest.id)
        digests.append(digest)
    return digests


def _alerted_recently(client: str, subject: str) -> bool:
    """Whether this client's same alert was recorded within `email.alert_repeat_minutes`,
    delivered or not: with mail down, counting only delivered alerts let every failure make a
    new alert and a new round of delivery attempts."""
    window = settings.platform().email.alert_repeat_minutes
    if window <= 0:
        return False
    since = utc_text(clock.now() - timedelta(minutes=window))
    with _db() as db:
        rows = db.query(
            "SELECT 1 FROM notifications WHERE kind = 'alert' AND client_name = ? AND subject = ? "
            "AND created_at >= ? LIMIT 1",
            (client, subject, since),
        )
    return bool(rows)


REPEATS = re.compile(r"^Repeated (\d+) more time")


def _fold_repeat(client: str, subject: str, body: str, to: Sequence[str] | None) -> Notification:
    """One queued digest item per repeated alert, counting the repeats and keeping the latest
    text, rather than a row per failure (a job failing every second would fill the table)."""
    title = f"Repeated: {subject}"
    with _db() as db:
        pending = db.query(
            "SELECT id, body FROM notifications WHERE kind = 'digest-item' AND status = 'queued' "
            "AND client_name = ? AND subject = ? ORDER BY id DESC LIMIT 1",
            (client, title),
        )
        if pending:
            match = REPEATS.match(pending[0]["body"])
            count = int(match.group(1)) + 1 if match else 2
            text = f"Repeated {count} more times; the latest at {utc_text()} UTC:\n\n{body}"
            return db.update("notifications", pending[0]["id"], body=text)  # type: ignore[return-value]
    text = f"Repeated 1 more time at {utc_text()} UTC:\n\n{body}"
    return queue(title, text, to=to, client=client)


def send_error_alert(
    client: str,
    error: BaseException | str,
    traceback_text: str | None = None,
    to: Sequence[str] | None = None,
) -> Notification | None:
    """Alert on a runtime error, with its traceback. Never raises. `to` overrides the
    configured recipients (the daemon passes a client.toml's `recipients`)."""
    try:
        if isinstance(error, BaseException):
            headline = f"{type(error).__name__}: {error}"
            traceback_text = traceback_text or "".join(
                tb.format_exception(type(error), error, error.__traceback__)
            )
        else:
            headline = str(error)
        body = f"Client {client} reported an error at {utc_text()} UTC.\n\n{headline}\n"
        if traceback_text:
            body += f"\n{traceback_text}"
        first_line = headline.splitlines()[0] if headline else "error"
        subject = f"Error in {client}: {first_line[:120]}"
        if _alerted_recently(client, redact(_prefixed(subject))):
            return _fold_repeat(client, subject, redact(body), to)
        return send(subject, redact(body), to=to, client=client, kind="alert")
    except Exception:
        log.exception("error alert for %s could not be recorded", client)
        return None


def send_eod_summary(client: str, day: date | None = None) -> Notification:
    """End-of-day mail from the database: the client's fills, realised PnL, errors and failed
    notebook runs of the day (UTC). The error kinds are `daemon.states.ERROR_EVENTS`, the names
    the writers use, so a reader and its writers cannot drift apart again."""
    day = day or clock.now().date()
    start, end = f"{day.isoformat()} 00:00:00", f"{day.isoformat()} 23:59:59.999999"
    with _db() as db:
        strategies = [
            r[0]
            for r in db.query(
                "SELECT DISTINCT s.name FROM orders o JOIN strategies s ON s.id = o.strategy_id "
                "WHERE o.client_name = ? UNION SELECT name FROM strategies WHERE name = ?",
                (client, client),
            )
        ]
        marks = ", ".join("?" * len(strategies)) or "NULL"
        fills = db.query(
            f"SELECT exec_time, strategy, symbol, side, qty, price, commission FROM v_executions "
            f"WHERE strategy IN ({marks}) AND exec_time BETWEEN ? AND ? ORDER BY exec_time",
            (*strategies, start, end),
        )
        pnl = db.query(
            f"SELECT strategy, gross_pnl, commission, net_pnl FROM v_daily_pnl "
            f"WHERE strategy IN ({marks}) AND date = ? ORDER BY strategy",
            (*strategies, day.isoformat()),
        )
        kinds = sorted(ERROR_EVENTS - {EventType.RUN_FAILED, EventType.RUN_TIMEOUT})
        errors = db.query(
            f"SELECT created_at, event_type, message FROM client_events WHERE client_name = ? "
            f"AND created_at BETWEEN ? AND ? AND event_type IN ({', '.join('?' * len(kinds))}) "
            "ORDER BY created_at",
            (client, start, end, *kinds),
        )
        statuses = sorted(FAILED_RUNS)
        failed_runs = db.query(
            f"SELECT id, started_at, status, error, error_cell FROM client_runs "
            f"WHERE client_name = ? AND started_at BETWEEN ? AND ? "
            f"AND status IN ({', '.join('?' * len(statuses))}) ORDER BY started_at",
            (client, start, end, *statuses),
        )
    lines = [f"End of day {day.isoformat()} for {client}", ""]
    total = sum(row["net_pnl"] for row in pnl)
    lines.append(f"Realised PnL (net of commissions): {total:,.2f}")
    for row in pnl:
        lines.append(
            f"  {row['strategy']}: gross {row['gross_pnl']:,.2f}, "
            f"commission {row['commission']:,.2f}, net {row['net_pnl']:,.2f}"
        )
    lines += ["", f"Trades ({len(fills)}):"]
    for f in fills:
        lines.append(
            f"  {f['exec_time'][11:19]} {f['strategy']} {f['side']} {f['qty']:g} "
            f"{f['symbol']} @ {f['price']:g} (commission {f['commission']:.2f})"
        )
    lines += ["", f"Errors ({len(errors)}):"]
    lines += [f"  {e['created_at'][11:19]} {e['event_type']}: {e['message']}" for e in errors]
    lines += ["", f"Failed runs ({len(failed_runs)}):"]
    for r in failed_runs:
        where = f" in cell {r['error_cell']}" if r["error_cell"] else ""
        lines.append(f"  {r['started_at'][11:19]} run {r['id']} {r['status']}{where}: {r['error']}")
    return send(
        f"EOD {day.isoformat()} {client}: PnL {total:,.2f}",
        "\n".join(lines),
        client=client,
        kind="eod",
    )


def resend(notification_id: int) -> Notification:
    """Try a failed (or queued) message again, whole: the kept copy with its HTML part and
    attachments when there is one, else rebuilt from the stored subject and text."""
    with _db() as db:
        row = db.get("notifications", notification_id)
        if row.status == "sent":  # type: ignore[attr-defined]
            raise ConfigError(f"notification {notification_id} was already sent")
        kept = _kept_message(notification_id)
        return _attempt(db, row, kept, row.smtp_account)  # type: ignore[arg-type, attr-defined]
