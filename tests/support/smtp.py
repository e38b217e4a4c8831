"""A real SMTP server in the test process (aiosmtpd on its own thread) that records what
arrives and can be told how to answer each message: accept, drop the connection, or reply with
a given status. Optional AUTH, STARTTLS or implicit TLS with a throw-away self-signed cert."""

from __future__ import annotations

import asyncio
import datetime
import email
import ipaddress
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.server import free_port

__all__ = ["SmtpSink", "run_smtp", "self_signed_tls"]

LOOPBACK = "127.0.0.1"


class SmtpSink:
    """The handler: ``script`` holds the answers for the next DATA commands (``"drop"``,
    ``"451 …"``, ``"550 …"``); when it is empty every message is accepted."""

    def __init__(self, script: list[str] | None = None) -> None:
        self.script = list(script or [])
        self.received: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.attempts = 0
        self.logins: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.attempts += 1
        action = self.script.pop(0) if self.script else "accept"
        if action == "drop":
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            return "451 gone"  # never reaches the client
        if action != "accept":
            return action
        assert isinstance(envelope.content, bytes)
        self.received.append(email.message_from_bytes(envelope.content))
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and (data.login, data.password) == (b"mailer", b"s3cret pass"):
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def self_signed_tls(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 and the certificate file a client can trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


@contextmanager
def run_smtp(
    sink: SmtpSink,
    *,
    tls: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    auth: bool = False,
) -> Iterator[int]:
    """Serve ``sink`` on a free loopback port (yielded) until the block ends."""
    port = free_port()
    kwargs: dict[str, Any] = {}
    if auth:
        # Over plain SMTP AUTH is offered but not required (aiosmtpd warns about requiring it there).
        kwargs.update(
            authenticator=sink.authenticate, auth_required=tls is not None, auth_require_tls=tls is not None
        )
    if tls is not None and not implicit_tls:
        kwargs.update(tls_context=tls, require_starttls=True)
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        ssl_context=tls if implicit_tls else None,
        server_hostname="127.0.0.1",
        **kwargs,
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
