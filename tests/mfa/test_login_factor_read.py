"""A password login reads the account and its second factors in one storage read
(``MfaStore.sign_in_account``), not the account first and the factors after the hash: one
round trip less on every sign-in (issue 16). The stores are the real ones of each backend; the
spies only count calls, or make the read fail as a lost database would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import httpx
from litestar import Litestar

from service.clock import FrozenClock
from service.runtime import Runtime
from service.store.base import StorageUnavailable
from tests.mfa.helpers import PASSWORD, enrol_totp, password_step, signup

Client = httpx.AsyncClient


class Spies:
    """Counts the MFA store's reads during logins."""

    def __init__(self, runtime: Runtime, *, fail: bool = False) -> None:
        self.calls: list[str] = []
        store = runtime.mfa.store
        combined: Callable[[str], Any] = store.sign_in_account
        summary: Callable[[UUID], Any] = store.summary

        async def sign_in_account(email_normalized: str) -> Any:
            self.calls.append("sign_in_account")
            if fail:
                raise StorageUnavailable("database unreachable")
            return await combined(email_normalized)

        async def factors(user_id: UUID) -> Any:
            self.calls.append("summary")
            return await summary(user_id)

        store.sign_in_account = sign_in_account  # type: ignore[method-assign]
        store.summary = factors  # type: ignore[method-assign]


async def test_one_read_gives_the_account_and_its_factors(
    client: Client, app: Litestar, clock: FrozenClock
) -> None:
    """With and without a factor: one combined read per login and no separate factor read;
    the answers are what they were (tokens without a factor, mfa_required with one)."""
    token = await signup(client)
    spies = Spies(app.state.runtime)
    plain = await client.post("/v1/login", json={"email": "ADA@example.com", "password": PASSWORD})
    assert plain.status_code == 200, plain.text
    assert spies.calls == ["sign_in_account"]

    spies.calls.clear()
    await enrol_totp(client, token, clock)
    spies.calls.clear()
    step = await password_step(client)
    assert step["methods"] == ["totp", "recovery_code"]
    assert spies.calls == ["sign_in_account"]


async def test_unknown_and_malformed_emails_cost_one_read_or_none(client: Client, app: Litestar) -> None:
    await signup(client)
    spies = Spies(app.state.runtime)
    unknown = await client.post("/v1/login", json={"email": "bob@example.com", "password": PASSWORD})
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_credentials")
    assert spies.calls == ["sign_in_account"]
    spies.calls.clear()
    malformed = await client.post("/v1/login", json={"email": "no-at-sign", "password": PASSWORD})
    assert (malformed.status_code, malformed.json()["error"]) == (401, "invalid_credentials")
    assert spies.calls == []


async def test_a_failed_read_is_a_503_and_issues_nothing(client: Client, app: Litestar) -> None:
    await signup(client)
    Spies(app.state.runtime, fail=True)
    answer = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert (answer.status_code, answer.json()["error"]) == (503, "temporarily_unavailable")
    assert "access_token" not in answer.text
