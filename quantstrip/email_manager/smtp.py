"""SMTP for the notification centre: the named account, the connection (SSL, STARTTLS, the
configured CA file), the login with the vault's password, and the message itself (plain text,
optional HTML, attachments). Which errors are worth a retry is decided here too."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from quantstrip import settings
from quantstrip.errors import ConfigError
from quantstrip.settings_models import SmtpAccount


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


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


# Retrying cannot help these: they would only delay the caller.
PERMANENT = (ConfigError, smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError)


TRANSIENT = (OSError, smtplib.SMTPException)
