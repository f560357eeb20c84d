"""A real SMTP server (aiosmtpd) on 127.0.0.1 with AUTH, and a workspace configured to use it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER = "quant"
SMTP_PASSWORD = "s3cret-Smtp-Pa55"


@dataclass
class Inbox:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    port: int = 0

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 OK"


def _authenticate(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode() == SMTP_USER and auth_data.password.decode() == SMTP_PASSWORD
    )
    return AuthResult(success=ok)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[Inbox]:
    """An authenticating SMTP server on loopback; the messages it accepted are in `.messages`."""
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=_authenticate,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    inbox.port = controller.port
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def mail_workspace(workspace, smtp_server: Inbox, monkeypatch: pytest.MonkeyPatch):
    """A workspace whose `primary` SMTP account points at the loopback server."""
    from quantstrip import settings

    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings._reset_for_tests()
    settings.set(
        "smtp.primary",
        {
            "host": "127.0.0.1",
            "port": smtp_server.port,
            "security": "plain",
            "username": SMTP_USER,
            "from_addr": "quantstrip@localhost",
        },
    )
    settings.set("email.recipients", {"default": ["ops@example.test"]})
    settings.set("email.retry_backoff_s", 0.01)
    settings.set_secret("smtp.primary.password", SMTP_PASSWORD)
    yield workspace
    settings._reset_for_tests()
