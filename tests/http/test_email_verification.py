"""Email verification on both deployments: the link mailed at signup (with the account, in one
transaction), confirming it (API and hosted page), the required mode, and a resend that answers
the same for every address."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings
from service.runtime import Runtime
from tests.support.mailbox import deliver, text_of

PASSWORD = "correct horse battery"
LINK = re.compile(r"https://id\.example\.com/account/verify\?token=([A-Za-z0-9_-]+)")


async def started(app: Litestar) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    async with serving(app) as runtime:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            yield http, runtime


def settings_for(make_settings: Callable[..., Settings], tmp_path: Path, **env: str) -> Settings:
    return make_settings(
        IDP_MAIL_DIR=str(tmp_path / "outbox"),
        IDP_PUBLIC_URL="https://id.example.com",
        IDP_RATELIMIT_MAIL_ACCOUNT="100/3600",
        **env,
    )


@pytest.fixture(params=["optional", "required"])
async def service(
    request: pytest.FixtureRequest,
    make_settings: Callable[..., Settings],
    backend_env: dict[str, str],
    clock: FrozenClock,
    tmp_path: Path,
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime, str]]:
    """Both modes on both deployments."""
    settings = settings_for(make_settings, tmp_path, IDP_EMAIL_VERIFICATION=request.param, **backend_env)
    async for http, runtime in started(create_app(settings, clock=clock)):
        yield http, runtime, request.param


async def link_in(runtime: Runtime, tmp_path: Path) -> str:
    [message] = await deliver(runtime, tmp_path / "outbox")
    match = LINK.search(text_of(message))
    assert match is not None
    return match.group(1)


async def test_signup_mails_a_link_that_verifies_once(
    service: tuple[httpx.AsyncClient, Runtime, str], tmp_path: Path
) -> None:
    """Optional: tokens at signup, email_verified false until the link. Required: no tokens, the
    right password gets 403 email_not_verified (a wrong one still 401), sign-in after the link."""
    http, runtime, mode = service
    signup = await http.post("/v1/signup", json={"email": "ada@example.com", "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    assert signup.json()["user"]["email_verified"] is False
    token = await link_in(runtime, tmp_path)
    login = await http.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
    wrong = await http.post("/v1/login", json={"email": "ada@example.com", "password": "wrong guess here"})
    if mode == "required":
        assert signup.json()["tokens"] is None
        assert (login.status_code, login.json()["error"], wrong.status_code) == (
            403,
            "email_not_verified",
            401,
        )
    else:
        assert signup.json()["tokens"]["token_type"] == "Bearer"
        assert login.status_code == 200
    confirmed = await http.post("/v1/email/verify", json={"token": token})
    assert confirmed.status_code == 204, confirmed.text
    again = await http.post("/v1/email/verify", json={"token": token})
    assert (again.status_code, again.json()["error"]) == (400, "invalid_link")
    login = await http.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert login.status_code == 200
    me = await http.get("/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert me.json()["email_verified"] is True


async def test_the_hosted_page_confirms_only_on_post(
    service: tuple[httpx.AsyncClient, Runtime, str], tmp_path: Path
) -> None:
    """GET shows a button (mail scanners that open links verify nothing); POST verifies."""
    http, runtime, _ = service
    await http.post("/v1/signup", json={"email": "ada@example.com", "password": PASSWORD})
    token = await link_in(runtime, tmp_path)
    for _ in range(2):
        page = await http.get("/account/verify", params={"token": token})
        assert page.status_code == 200
        assert f'value="{token}"' in page.text
    done = await http.post("/account/verify", data={"token": token})
    assert (done.status_code, "Address confirmed" in done.text) == (200, True)
    spent = await http.get("/account/verify", params={"token": token})
    assert spent.status_code == 400
    user = await runtime.database.get_user_by_email("ada@example.com")
    assert user is not None
    assert user.email_verified


async def test_resend_answers_alike_and_only_mails_an_unverified_account(
    service: tuple[httpx.AsyncClient, Runtime, str], tmp_path: Path
) -> None:
    """Same 202 body for an unverified, a verified and an unknown address; only the unverified
    account gets a new link, which replaces its old one."""
    http, runtime, _ = service
    for email in ("ada@example.com", "bob@example.com"):
        await http.post("/v1/signup", json={"email": email, "password": PASSWORD})
    links = {}
    for message in await deliver(runtime, tmp_path / "outbox"):
        match = LINK.search(text_of(message))
        assert match is not None
        links[str(message["To"])] = match.group(1)
    assert (await http.post("/v1/email/verify", json={"token": links["bob@example.com"]})).status_code == 204
    answers = [
        await http.post("/v1/email/verify/resend", json={"email": email})
        for email in ("ada@example.com", "bob@example.com", "nobody@example.com")
    ]
    assert {(r.status_code, r.content) for r in answers} == {(202, answers[0].content)}
    [fresh] = await deliver(runtime, tmp_path / "outbox")
    assert fresh["To"] == "ada@example.com"
    stale = await http.post("/v1/email/verify", json={"token": links["ada@example.com"]})
    assert stale.status_code == 400
    match = LINK.search(text_of(fresh))
    assert match is not None
    assert (await http.post("/v1/email/verify", json={"token": match.group(1)})).status_code == 204
