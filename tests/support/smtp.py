"""A real SMTP server (aiosmtpd) on 127.0.0.1 with AUTH, and a workspace configured to use it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def serving(**options: object) -> Iterator[Inbox]:
    """An authenticating aiosmtpd server on a free loopback port, stopped on exit."""
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=_authenticate,
        auth_required=True,
        **options,
    )
    controller.start()
    inbox.port = controller.port
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[Inbox]:
    """A plain SMTP server with AUTH; the messages it accepted are in `.messages`."""
    with serving(auth_require_tls=False) as inbox:
        yield inbox


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


def self_signed_certificate(directory):  # type: ignore[no-untyped-def]
    """A certificate for 127.0.0.1 (IP SAN) and its key, written as PEM files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    # Fixed validity, wide on both sides: OpenSSL checks it against the real clock, which
    # time-machine does not move, while the test session's clock may be years away.
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2099, 12, 31, tzinfo=dt.UTC))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def starttls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Inbox, object]]:
    """An SMTP server that requires STARTTLS before AUTH; yields it and its certificate path."""
    import ssl

    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with serving(require_starttls=True, tls_context=context) as inbox:
        yield inbox, cert


@pytest.fixture
def ssl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Inbox, object]]:
    """An SMTP server speaking TLS from the first byte (port 465 style); yields it and its
    certificate path."""
    import ssl

    cert, key = self_signed_certificate(tmp_path_factory.mktemp("ssl"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    # aiosmtpd only counts STARTTLS as TLS for its AUTH rule; this connection is TLS throughout.
    with serving(ssl_context=context, auth_require_tls=False) as inbox:
        yield inbox, cert
