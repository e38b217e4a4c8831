"""Password reset over HTTP on both deployments: the request answers the same for every address,
the mailed link (read from the .eml the worker wrote) works once, sets a policy-checked
password, ends every session, and notifies the owner; links never come from the Host header."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings
from service.runtime import Runtime
from tests.support.mailbox import deliver, html_of, text_of

Client = httpx.AsyncClient
PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple gun lighthouse"
PUBLIC = "https://id.example.com"
LINK = re.compile(r"https://id\.example\.com/account/reset\?token=([A-Za-z0-9_-]+)")


@pytest.fixture
def app(
    make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock, tmp_path: Path
) -> Litestar:
    """The app with mail written to this test's folder and links under a public URL."""
    settings = make_settings(
        **backend_env,
        IDP_MAIL_DIR=str(tmp_path / "outbox"),
        IDP_PUBLIC_URL=PUBLIC,
        IDP_ISSUER_NAME="Example ID",
        IDP_RATELIMIT_MAIL_ACCOUNT="100/3600",
    )
    return create_app(settings, clock=clock)


@pytest.fixture
def runtime(app: Litestar, client: httpx.AsyncClient) -> Runtime:
    value: Runtime = app.state.runtime
    return value


Tokens = dict[str, dict[str, Any]]


@pytest.fixture
async def ada(client: Client, runtime: Runtime, tmp_path: Path) -> Tokens:
    """An account with two sessions (signup, then a login): their token responses."""
    signup = await client.post("/v1/signup", json={"email": "Ada@Example.com", "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    login = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert login.status_code == 200
    [welcome] = await deliver(runtime, tmp_path / "outbox")  # the verification link
    assert welcome["Subject"] == "Confirm your email address for Example ID"
    return {"first": signup.json()["tokens"], "second": login.json()}


async def request_link(
    client: Client, runtime: Runtime, tmp_path: Path, address: str = "ada@example.com"
) -> str:
    response = await client.post("/v1/password/reset", json={"email": address})
    assert response.status_code == 202
    [message] = await deliver(runtime, tmp_path / "outbox")
    match = LINK.search(text_of(message))
    assert match is not None, text_of(message)
    return match.group(1)


async def test_known_and_unknown_addresses_get_the_same_answer(
    client: Client, runtime: Runtime, ada: Tokens, tmp_path: Path
) -> None:
    """Same status, headers that matter and body for an account, a stranger and garbage; only
    the account's owner gets a mail (with both parts, the issuer's name, the lifetime)."""
    answers = [
        await client.post("/v1/password/reset", json={"email": address})
        for address in ("ADA@example.com", "nobody@example.com", "not an address")
    ]
    assert {(r.status_code, r.content, r.headers["cache-control"]) for r in answers} == {
        (202, answers[0].content, "no-store")
    }
    [message] = await deliver(runtime, tmp_path / "outbox")
    assert (message["To"], message["Subject"]) == ("Ada@Example.com", "Reset your Example ID password")
    assert "30 minutes" in text_of(message)
    assert LINK.search(html_of(message)) is not None
    assert len(LINK.search(text_of(message)).group(1)) >= 43  # type: ignore[union-attr]  # 256 bits


async def test_the_link_sets_a_new_password_once_and_ends_every_session(
    client: Client, runtime: Runtime, ada: Tokens, tmp_path: Path
) -> None:
    """Confirm → 204; both sessions' refresh and access tokens stop working; the new password
    logs in, the old does not; the link is spent; the owner is told."""
    token = await request_link(client, runtime, tmp_path)
    confirm = await client.post(
        "/v1/password/reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirm.status_code == 204, confirm.text
    for tokens in ada.values():
        refreshed = await client.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        assert (refreshed.status_code, refreshed.json()["error"]) == (400, "invalid_grant")
        me = await client.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 401
    old = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
    new = await client.post("/v1/login", json={"email": "ada@example.com", "password": NEW_PASSWORD})
    assert (old.status_code, new.status_code) == (401, 200)
    again = await client.post(
        "/v1/password/reset/confirm", json={"token": token, "new_password": "another fine pass"}
    )
    assert (again.status_code, again.json()["error"]) == (400, "invalid_link")
    [notice] = await deliver(runtime, tmp_path / "outbox")
    assert (notice["To"], notice["Subject"]) == ("Ada@Example.com", "Your Example ID password was changed")
    assert token not in text_of(notice)


async def test_a_weak_new_password_is_refused_and_the_link_still_works(
    client: Client, runtime: Runtime, ada: Tokens, tmp_path: Path
) -> None:
    """The reset applies the same password policy as signup; a refusal does not spend the link."""
    token = await request_link(client, runtime, tmp_path)
    weak = await client.post(
        "/v1/password/reset/confirm", json={"token": token, "new_password": "password123"}
    )
    assert (weak.status_code, weak.json()["error"]) == (422, "password_too_common")
    good = await client.post(
        "/v1/password/reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert good.status_code == 204


@pytest.mark.parametrize("how", ["expired", "password_changed", "newer_link", "garbage"])
async def test_dead_links(
    client: Client, runtime: Runtime, ada: Tokens, tmp_path: Path, clock: FrozenClock, how: str
) -> None:
    """A link dies at 30 minutes, when the password changes another way, when a newer link is
    sent; an unknown token is the same error."""
    token = await request_link(client, runtime, tmp_path)
    if how == "expired":
        clock.advance(1800)
    elif how == "password_changed":
        bearer = {"Authorization": f"Bearer {ada['first']['access_token']}"}
        changed = await client.post(
            "/v1/password",
            json={"current_password": PASSWORD, "new_password": "one more good one"},
            headers=bearer,
        )
        assert changed.status_code == 204
    elif how == "newer_link":
        await request_link(client, runtime, tmp_path)
    else:
        token = "A" * 43
    response = await client.post(
        "/v1/password/reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_link")


async def test_links_ignore_a_hostile_host_header(
    client: Client, runtime: Runtime, ada: Tokens, tmp_path: Path
) -> None:
    """Host and X-Forwarded-Host naming an attacker's site change nothing in the mail."""
    response = await client.post(
        "/v1/password/reset",
        json={"email": "ada@example.com"},
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    assert response.status_code == 202
    [message] = await deliver(runtime, tmp_path / "outbox")
    assert "evil.example" not in message.as_string()
    assert LINK.search(text_of(message)) is not None
    assert message["Message-ID"].endswith("@id.example.com>")


async def test_the_hosted_pages_walk_a_person_through(
    client: Client, runtime: Runtime, ada: Tokens, tmp_path: Path
) -> None:
    """GET the link → a form (CSP, no referrer, no store); a weak password re-renders with the
    error; a good one → done; the spent link → 'no longer works'. Without a token: ask for the
    address; a forged token is never echoed."""
    token = await request_link(client, runtime, tmp_path)
    form = await client.get("/account/reset", params={"token": token})
    assert form.status_code == 200
    assert form.headers["content-type"].startswith("text/html")
    assert "script-src" not in form.headers["content-security-policy"]
    assert "default-src 'none'" in form.headers["content-security-policy"]
    assert (form.headers["referrer-policy"], form.headers["cache-control"]) == ("no-referrer", "no-store")
    assert f'name="token" value="{token}"' in form.text
    weak = await client.post("/account/reset", data={"token": token, "new_password": "short"})
    assert weak.status_code == 422
    assert "at least 8 characters" in weak.text
    done = await client.post("/account/reset", data={"token": token, "new_password": NEW_PASSWORD})
    assert (done.status_code, "Password changed" in done.text) == (200, True)
    spent = await client.get("/account/reset", params={"token": token})
    assert (spent.status_code, "no longer works" in spent.text) == (400, True)
    hostile = await client.get("/account/reset", params={"token": '"><script>alert(1)</script>'})
    assert hostile.status_code == 400
    assert "<script>" not in hostile.text
    start = await client.get("/account/reset")
    assert 'name="email"' in start.text
    asked = await client.post("/account/reset", data={"email": "ada@example.com"})
    assert asked.status_code == 202
    subjects = sorted(str(m["Subject"]) for m in await deliver(runtime, tmp_path / "outbox"))
    assert subjects == ["Reset your Example ID password", "Your Example ID password was changed"]


async def test_too_many_requests_from_one_ip_get_429(
    make_settings: Callable[..., Settings], clock: FrozenClock, tmp_path: Path
) -> None:
    """Beyond IDP_RATELIMIT_MAIL_REQUEST_IP an IP gets 429 + Retry-After, for any address."""
    app = create_app(
        make_settings(IDP_MAIL_DIR=str(tmp_path / "outbox"), IDP_RATELIMIT_MAIL_REQUEST_IP="2/3600"),
        clock=clock,
    )
    async with (
        serving(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,  # type: ignore[arg-type]
    ):
        codes = [
            (await http.post("/v1/password/reset", json={"email": f"u{i}@example.com"})).status_code
            for i in range(3)
        ]
        limited = await http.post("/v1/password/reset", json={"email": "x@example.com"})
    assert codes == [202, 202, 429]
    assert int(limited.headers["retry-after"]) > 0


async def test_an_account_gets_at_most_its_quota_of_mails(
    make_settings: Callable[..., Settings], clock: FrozenClock, tmp_path: Path
) -> None:
    """Beyond IDP_RATELIMIT_MAIL_ACCOUNT the answer is still 202, but nothing more is sent."""
    app = create_app(
        make_settings(IDP_MAIL_DIR=str(tmp_path / "outbox"), IDP_RATELIMIT_MAIL_ACCOUNT="2/3600"), clock=clock
    )
    async with serving(app) as runtime:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:  # type: ignore[arg-type]
            await http.post("/v1/signup", json={"email": "ada@example.com", "password": PASSWORD})
            codes = [
                (await http.post("/v1/password/reset", json={"email": "ada@example.com"})).status_code
                for _ in range(4)
            ]
        sent = await deliver(runtime, tmp_path / "outbox")
    resets = [m for m in sent if str(m["Subject"]).startswith("Reset")]
    assert (codes, len(resets)) == ([202] * 4, 2)
