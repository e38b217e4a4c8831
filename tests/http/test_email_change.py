"""Email change on both deployments: a link to the new address, a notice to the old one, the
change only on confirmation, and a race between two accounts for one address decided by the
database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings
from service.runtime import Runtime
from tests.support.mailbox import deliver, text_of

PASSWORD = "correct horse battery"
LINK = re.compile(r"https://id\.example\.com/account/email\?token=([A-Za-z0-9_-]+)")


@pytest.fixture
async def service(
    make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    settings = make_settings(
        IDP_MAIL_DIR=str(tmp_path / "outbox"),
        IDP_PUBLIC_URL="https://id.example.com",
        IDP_ISSUER_NAME="Example ID",
        **backend_env,
    )
    app = create_app(settings, clock=clock)
    async with serving(app) as runtime:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            yield http, runtime


async def signed_up(http: httpx.AsyncClient, runtime: Runtime, tmp_path: Path, email: str) -> dict[str, str]:
    response = await http.post("/v1/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    await deliver(runtime, tmp_path / "outbox")  # the verification link
    tokens: dict[str, Any] = response.json()["tokens"]
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def ask(
    http: httpx.AsyncClient, bearer: dict[str, str], new_email: str, password: str = PASSWORD
) -> int:
    response = await http.post(
        "/v1/me/email", json={"new_email": new_email, "current_password": password}, headers=bearer
    )
    return response.status_code


async def test_change_is_applied_only_on_confirmation(
    service: tuple[httpx.AsyncClient, Runtime], tmp_path: Path
) -> None:
    """202; the new address gets the link, the old one a notice naming the new address; until
    the link is followed login and /v1/me keep the old address; afterwards the new one, verified."""
    http, runtime = service
    bearer = await signed_up(http, runtime, tmp_path, "ada@example.com")
    assert await ask(http, bearer, "Ada@New.example") == 202
    mails = {str(m["To"]): m for m in await deliver(runtime, tmp_path / "outbox")}
    assert set(mails) == {"Ada@New.example", "ada@example.com"}
    assert "Ada@New.example" in text_of(mails["ada@example.com"])
    assert LINK.search(text_of(mails["ada@example.com"])) is None, "the notice carries no link"
    match = LINK.search(text_of(mails["Ada@New.example"]))
    assert match is not None
    assert (await http.get("/v1/me", headers=bearer)).json()["email"] == "ada@example.com"
    confirmed = await http.post("/v1/email/change/confirm", json={"token": match.group(1)})
    assert confirmed.status_code == 204, confirmed.text
    me = (await http.get("/v1/me", headers=bearer)).json()
    assert (me["email"], me["email_verified"]) == ("Ada@New.example", True)
    old = await http.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
    new = await http.post("/v1/login", json={"email": "ada@new.example", "password": PASSWORD})
    assert (old.status_code, new.status_code) == (401, 200)
    again = await http.post("/v1/email/change/confirm", json={"token": match.group(1)})
    assert again.status_code == 400


async def test_refusals(service: tuple[httpx.AsyncClient, Runtime], tmp_path: Path) -> None:
    """Wrong password 401, invalid address 422, the same address 400; nothing is mailed."""
    http, runtime = service
    bearer = await signed_up(http, runtime, tmp_path, "ada@example.com")
    assert await ask(http, bearer, "ada@new.example", "wrong password!") == 401
    assert await ask(http, bearer, "not an address") == 422
    assert await ask(http, bearer, "ADA@example.com") == 400
    assert await deliver(runtime, tmp_path / "outbox") == []


async def test_two_accounts_racing_for_one_address(
    service: tuple[httpx.AsyncClient, Runtime], tmp_path: Path
) -> None:
    """Both ask for the same new address; the first confirmation wins, the second is 409
    email_taken and leaves its account (and its link) as they were."""
    http, runtime = service
    ada = await signed_up(http, runtime, tmp_path, "ada@example.com")
    bob = await signed_up(http, runtime, tmp_path, "bob@example.com")
    assert await ask(http, ada, "shared@example.com") == 202
    assert await ask(http, bob, "shared@example.com") == 202
    links = [
        match.group(1)
        for message in await deliver(runtime, tmp_path / "outbox")
        if (match := LINK.search(text_of(message))) is not None
    ]
    assert len(links) == 2
    results = [(await http.post("/v1/email/change/confirm", json={"token": t})) for t in links]
    assert sorted(r.status_code for r in results) == [204, 409]
    emails = sorted([(await http.get("/v1/me", headers=h)).json()["email"] for h in (ada, bob)])
    assert "shared@example.com" in emails
    assert len(set(emails)) == 2


async def test_the_hosted_page_confirms_on_post(
    service: tuple[httpx.AsyncClient, Runtime], tmp_path: Path
) -> None:
    """The link opens a page with a button; the POST applies the change."""
    http, runtime = service
    bearer = await signed_up(http, runtime, tmp_path, "ada@example.com")
    await ask(http, bearer, "ada@new.example")
    token = next(
        match.group(1)
        for message in await deliver(runtime, tmp_path / "outbox")
        if (match := LINK.search(text_of(message))) is not None
    )
    page = await http.get("/account/email", params={"token": token})
    assert (page.status_code, f'value="{token}"' in page.text) == (200, True)
    done = await http.post("/account/email", data={"token": token})
    assert done.status_code == 200
    assert (await http.get("/v1/me", headers=bearer)).json()["email"] == "ada@new.example"
