"""Messages that wait: digest items sent together once per interval (`flush`), and error
alerts, whose repeats within `email.alert_repeat_minutes` fold into one digest item."""

from __future__ import annotations

import logging
import re
import traceback as tb
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from quantstrip import clock, settings
from quantstrip.db.handler import Database
from quantstrip.db.records import Notification
from quantstrip.db.units import parse_utc, utc_text
from quantstrip.email_manager.delivery import (
    _attempt,
    _current_client,
    _db,
    _prefixed,
    _record,
    prepare,
    recipients_for,
    send,
)
from quantstrip.logger import redact

log = logging.getLogger("quantstrip.email_manager")


def queue(
    subject: str, body: str, *, to: Sequence[str] | None = None, client: str | None = None
) -> Notification:
    """Hold a message for the next digest (one message per recipient list per interval)."""
    with _db() as db:
        return _queue_in(db, subject, body, to, client or _current_client())


def _queue_in(
    db: Database, subject: str, body: str, to: Sequence[str] | None, client: str | None
) -> Notification:
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


def _alerted_recently(db: Database, client: str, subject: str) -> bool:
    """Whether this client's same alert was recorded within `email.alert_repeat_minutes`,
    delivered or not: with mail down, counting only delivered alerts let every failure make a
    new alert and a new round of delivery attempts."""
    window = settings.platform().email.alert_repeat_minutes
    if window <= 0:
        return False
    since = utc_text(clock.now() - timedelta(minutes=window))
    rows = db.query(
        "SELECT 1 FROM notifications WHERE kind = 'alert' AND client_name = ? AND subject = ? "
        "AND created_at >= ? LIMIT 1",
        (client, subject, since),
    )
    return bool(rows)


REPEATS = re.compile(r"^Repeated (\d+) more time")


def _fold_repeat(client: str, subject: str, body: str, to: Sequence[str] | None) -> Notification:
    """One queued digest item per repeated alert, counting the repeats and keeping the latest
    text, rather than a row per failure (a job failing every second would fill the table).

    The count is read and rewritten in one write transaction: read, then written in a later
    write, two repeats at once both read N and both wrote N + 1 (one repeat lost), or both
    found no item and queued two."""
    title = f"Repeated: {subject}"
    with _db() as db, db.transaction():
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
        return _queue_in(db, title, text, to, client)


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
        with _db() as db:
            # The check and this alert's record are one write: of two processes alerting at
            # once, the second waits for the first to commit, sees its alert, and folds.
            with db.transaction():
                if _alerted_recently(db, client, redact(_prefixed(subject))):
                    row = message = None
                else:
                    row, message = prepare(
                        db, subject, redact(body), to=to, client=client, kind="alert"
                    )
            if row is not None:
                return row if message is None else _attempt(db, row, message, None)
        return _fold_repeat(client, subject, redact(body), to)
    except Exception:
        log.exception("error alert for %s could not be recorded", client)
        return None
