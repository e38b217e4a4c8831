"""SMTP delivery against a real SMTP server in the test process (aiosmtpd): plain with AUTH,
STARTTLS, implicit TLS, and the failure paths (dropped connection, 4xx, 5xx, a silent server)
driven through the worker and a real outbox."""

from __future__ import annotations

import random
import socket
import ssl
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from service.clock import FrozenClock
from service.mail.settings import SmtpConfig, parse_smtp_url
from service.mail.transports import SmtpTransport, TransportError
from service.mail.worker import DeliveryWorker, RetryPolicy
from tests.conftest import START
from tests.mail.conftest import MailStores, mail_for
from tests.support.smtp import SmtpSink, run_smtp, self_signed_tls

POLICY = RetryPolicy(max_attempts=4, base_delay=10.0, max_delay=100.0, lease=60.0)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mailpit:1025", SmtpConfig(host="mailpit", port=1025)),
        (
            "smtp://user%40x:p%3Ass@mx.example.com?starttls=true&timeout=5",
            SmtpConfig(
                host="mx.example.com", port=587, username="user@x", password="p:ss", starttls=True, timeout=5
            ),
        ),
        ("smtps://mx.example.com", SmtpConfig(host="mx.example.com", port=465, implicit_tls=True)),
        ("smtp://mx.example.com?verify=false", SmtpConfig(host="mx.example.com", port=25, verify=False)),
    ],
    ids=["plain", "starttls-auth", "implicit-tls", "no-verify"],
)
def test_smtp_urls(url: str, expected: SmtpConfig) -> None:
    """IDP_SMTP_URL spells host, port, credentials (percent-decoded), TLS mode and timeout."""
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://mx.example.com",
        "smtp://",
        "smtps://mx?starttls=true",
        "smtp://mx?tls=1",
        "smtp://mx?timeout=0",
    ],
)
def test_bad_smtp_urls_are_refused(url: str) -> None:
    """A scheme, host or option that cannot work is a start-up error, not a silent default."""
    with pytest.raises(ValueError):  # noqa: PT011 -- the reason varies; the settings loader names the variable
        parse_smtp_url(url)


def test_the_password_never_shows_in_the_config_repr() -> None:
    """Settings end up in logs and tracebacks; the SMTP password must not."""
    assert "s3cret" not in repr(parse_smtp_url("smtp://u:s3cret@mx.example.com"))


def client_tls(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def worker(stores: MailStores, transport: SmtpTransport, clock: FrozenClock) -> DeliveryWorker:
    return DeliveryWorker(
        outbox=stores.outbox,
        transport=transport,
        sender="IdP <no-reply@idp.test>",
        clock=clock,
        policy=POLICY,
        rng=random.Random(1),
    )


async def test_plain_smtp_with_auth_delivers_both_parts(mail: MailStores) -> None:
    """Logged in with the URL's credentials; the message has our headers, a text and an HTML part."""
    sink = SmtpSink()
    queued = mail_for("ada@example.com")
    await mail.outbox.enqueue(queued)
    with run_smtp(sink, auth=True) as port:
        transport = SmtpTransport(parse_smtp_url(f"smtp://mailer:s3cret%20pass@127.0.0.1:{port}"))
        await worker(mail, transport, FrozenClock(START)).run_once()
    [message] = sink.received
    assert sink.logins == ["mailer"]
    assert sink.envelopes == [("no-reply@idp.test", ["ada@example.com"])]
    assert (message["Message-ID"], message["To"], message["Subject"]) == (
        queued.message_id,
        "ada@example.com",
        "Hello",
    )
    parts = {part.get_content_type(): part.get_payload(decode=True) for part in message.walk()}
    assert (parts["text/plain"].strip(), parts["text/html"].strip()) == (b"plain body", b"<p>html body</p>")  # type: ignore[union-attr]
    assert await mail.outbox.count_by_state() == {"sent": 1}


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
async def test_tls_modes(mail: MailStores, tmp_path: Path, implicit: bool) -> None:
    """STARTTLS (the server requires it before AUTH, which then succeeds) and implicit TLS (no
    AUTH: aiosmtpd offers none on an implicit-TLS listener) both deliver over verified TLS."""
    server_tls, cert = self_signed_tls(tmp_path)
    sink = SmtpSink()
    await mail.outbox.enqueue(mail_for())
    with run_smtp(sink, tls=server_tls, implicit_tls=implicit, auth=not implicit) as port:
        url = (
            f"smtps://127.0.0.1:{port}"
            if implicit
            else f"smtp://mailer:s3cret%20pass@127.0.0.1:{port}?starttls=true"
        )
        transport = SmtpTransport(parse_smtp_url(url), tls_context=client_tls(cert))
        await worker(mail, transport, FrozenClock(START)).run_once()
    assert (len(sink.received), sink.logins) == (1, [] if implicit else ["mailer"])


@pytest.mark.parametrize("first", ["drop", "451 4.3.0 try again later"], ids=["dropped", "4xx"])
async def test_a_failed_first_attempt_is_retried_and_arrives_once(mail: MailStores, first: str) -> None:
    """The server drops the connection (or answers 451) at DATA: the row is retried after its
    backoff and the message arrives exactly once, with one Message-ID."""
    sink = SmtpSink([first])
    queued = mail_for()
    await mail.outbox.enqueue(queued)
    clock = FrozenClock(START)
    with run_smtp(sink) as port:
        w = worker(mail, SmtpTransport(parse_smtp_url(f"smtp://127.0.0.1:{port}?timeout=5")), clock)
        assert await w.run_once() == 1
        assert sink.received == []
        [pending] = await mail.outbox.list_mail("pending", 10)
        clock.now = pending.next_attempt_at
        assert await w.run_once() == 1
        clock.advance(POLICY.max_delay * 10)
        assert await w.run_once() == 0
    assert [m["Message-ID"] for m in sink.received] == [queued.message_id]
    assert sink.attempts == 2
    assert await mail.outbox.count_by_state() == {"sent": 1}


async def test_a_5xx_is_dead_without_retry(mail: MailStores) -> None:
    """550: permanent; the row is dead after one attempt and shows the status."""
    sink = SmtpSink(["550 5.1.1 no such user"])
    await mail.outbox.enqueue(mail_for())
    with run_smtp(sink) as port:
        await worker(
            mail, SmtpTransport(parse_smtp_url(f"smtp://127.0.0.1:{port}")), FrozenClock(START)
        ).run_once()
    [dead] = await mail.outbox.list_mail("dead", 10)
    assert (dead.last_error, sink.attempts) == ("smtp 550", 1)


async def test_a_silent_server_times_out() -> None:
    """A server that accepts the connection but never greets fails within the URL's timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        transport = SmtpTransport(parse_smtp_url(f"smtp://127.0.0.1:{port}?timeout=0.5"))
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@idp.test", "b@example.com", "x"
        started = time.monotonic()
        with pytest.raises(TransportError):
            await transport.send(message)
        assert time.monotonic() - started < 5
