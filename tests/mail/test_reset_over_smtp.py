"""The compose topology as local processes: ``idp serve`` (its own delivery worker) sending to
a real SMTP server. The first delivery attempt is cut off; the reset mail still arrives exactly
once, its link works once, and every session of the account ends."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.server import run_server
from tests.support.smtp import SmtpSink, run_smtp

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple gun lighthouse"


def wait_for(condition: Callable[[], object], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        time.sleep(0.1)


@pytest.mark.slow
def test_reset_mail_arrives_once_through_smtp_after_a_failed_attempt(tmp_path: Path) -> None:
    """Drop at DATA, then accept: one message (one Message-ID) in the mailbox after the retry,
    none more after waiting longer; the link resets the password once; sessions are gone."""
    sink = SmtpSink()
    with run_smtp(sink) as smtp_port:
        env = {
            "IDP_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}?timeout=5",
            "IDP_MAIL_FROM": "Example ID <no-reply@id.example.com>",
            "IDP_PUBLIC_URL": "https://id.example.com",
            "IDP_MAIL_RETRY_BASE": "1",
        }
        with run_server(tmp_path, env) as server, httpx.Client(base_url=server.url, timeout=10) as http:
            signup = http.post("/v1/signup", json={"email": "ada@example.com", "password": PASSWORD})
            assert signup.status_code == 201, signup.text
            session = signup.json()["tokens"]
            wait_for(lambda: sink.received, 20)  # the verification link, sent at signup
            [welcome] = sink.received
            assert welcome["Subject"] == "Confirm your email address for id.example.com"
            sink.received.clear()
            sink.attempts = 0
            sink.script.append("drop")  # the next delivery attempt (the reset mail's first) is cut off
            requested = http.post("/v1/password/reset", json={"email": "ada@example.com"})
            assert requested.status_code == 202
            wait_for(lambda: sink.received, 20)
            assert sink.attempts == 2, server.log()
            time.sleep(3)  # longer than any retry delay: nothing else may arrive
            [message] = sink.received
            assert sink.attempts == 2
            assert message["Subject"] == "Reset your id.example.com password"
            body = message.get_payload(0).get_payload(decode=True).decode()  # type: ignore[union-attr]
            match = re.search(r"https://id\.example\.com/account/reset\?token=([A-Za-z0-9_-]+)", body)
            assert match is not None, body
            token = match.group(1)

            confirm = http.post(
                "/v1/password/reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
            )
            again = http.post("/v1/password/reset/confirm", json={"token": token, "new_password": PASSWORD})
            assert (confirm.status_code, again.status_code) == (204, 400)
            refreshed = http.post(
                "/oauth2/token",
                data={"grant_type": "refresh_token", "refresh_token": session["refresh_token"]},
            )
            assert refreshed.status_code == 400
            login = http.post("/v1/login", json={"email": "ada@example.com", "password": NEW_PASSWORD})
            assert login.status_code == 200
            wait_for(lambda: len(sink.received) == 2, 20)
            assert [m["Subject"] for m in sink.received][1] == "Your id.example.com password was changed"
            assert token not in server.log(), "the link token never reaches a log line"
