"""IDP_SIGNUP_ENUMERATION_SAFE=true: a signup for an address with an account answers exactly as
one for a new address, and the owner gets a mail instead of a new account."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings
from service.runtime import Runtime
from tests.support.mailbox import deliver

PASSWORD = "correct horse battery"


@pytest.fixture
async def service(
    make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    settings = make_settings(
        IDP_MAIL_DIR=str(tmp_path / "outbox"),
        IDP_SIGNUP_ENUMERATION_SAFE="true",
        IDP_ISSUER_NAME="Example ID",
        **backend_env,
    )
    app = create_app(settings, clock=clock)
    async with serving(app) as runtime:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            yield http, runtime


async def test_existing_and_new_addresses_are_answered_alike(
    service: tuple[httpx.AsyncClient, Runtime], tmp_path: Path
) -> None:
    """Same status and body; the new address gets an account and its verification link, the
    existing one a 'someone tried to sign up' notice and no second account."""
    http, runtime = service
    first = await http.post("/v1/signup", json={"email": "ada@example.com", "password": PASSWORD})
    await deliver(runtime, tmp_path / "outbox")
    again = await http.post(
        "/v1/signup", json={"email": "ADA@example.com", "password": "another pass phrase"}
    )
    fresh = await http.post("/v1/signup", json={"email": "bob@example.com", "password": PASSWORD})
    assert {(r.status_code, r.content) for r in (first, again, fresh)} == {(202, first.content)}
    assert "tokens" not in first.json()
    mails = {str(m["To"]): str(m["Subject"]) for m in await deliver(runtime, tmp_path / "outbox")}
    assert mails == {
        "ada@example.com": "Someone tried to sign up to Example ID with your address",
        "bob@example.com": "Confirm your email address for Example ID",
    }
    ada = await runtime.database.get_user_by_email("ada@example.com")
    assert ada is not None
    login = await http.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert login.status_code == 200, "the first password still signs in"


async def test_bad_input_is_still_refused_at_once(service: tuple[httpx.AsyncClient, Runtime]) -> None:
    """What depends only on the input (syntax, password policy) is answered as before."""
    http, _ = service
    bad_email = await http.post("/v1/signup", json={"email": "nope", "password": PASSWORD})
    weak = await http.post("/v1/signup", json={"email": "c@example.com", "password": "password123"})
    assert (bad_email.status_code, weak.json()["error"]) == (422, "password_too_common")
