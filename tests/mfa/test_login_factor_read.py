"""A login reads the account's second factors while its password is hashed, not after: one
storage round trip less on every sign-in's critical path (issue 16). The store is the real one
of each backend; the spies only record when it is called, or make it fail as a lost database
would."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any
from uuid import UUID

import httpx
from litestar import Litestar

from service.clock import FrozenClock
from service.passwords import Match
from service.runtime import Runtime
from service.store.base import StorageUnavailable
from service.store.mfa import FactorSummary
from tests.mfa.helpers import PASSWORD, enrol_totp, password_step, signup

Client = httpx.AsyncClient


class Spies:
    """Counts factor reads, and whether a password check was under way when each began."""

    def __init__(self, runtime: Runtime, *, fail_reads: bool = False) -> None:
        self.reads: list[bool] = []
        self.hashing = False
        store, passwords = runtime.mfa.store, runtime.passwords
        read: Callable[[UUID], Any] = store.summary
        verify: Callable[[str, str], Any] = passwords.verify

        async def summary(user_id: UUID) -> FactorSummary:
            self.reads.append(self.hashing)
            if fail_reads:
                raise StorageUnavailable("database unreachable")
            result: FactorSummary = await read(user_id)
            return result

        async def timed_verify(password_hash: str, password: str) -> Match:
            self.hashing = True
            try:
                result: Match = await verify(password_hash, password)
                return result
            finally:
                self.hashing = False

        store.summary = summary  # type: ignore[method-assign]
        passwords.verify = timed_verify  # type: ignore[method-assign]


async def test_factors_are_read_during_the_hash(client: Client, app: Litestar, clock: FrozenClock) -> None:
    """With and without a factor, the one read per login begins while the hash runs; the
    answers are what they were (tokens without a factor, mfa_required with one)."""
    token = await signup(client)
    spies = Spies(app.state.runtime)
    plain = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert plain.status_code == 200, plain.text
    assert spies.reads == [True]

    await enrol_totp(client, token, clock)
    spies.reads.clear()
    step = await password_step(client)
    assert step["methods"] == ["totp", "recovery_code"]
    assert spies.reads == [True]


async def test_no_factor_read_for_an_unknown_email(client: Client, app: Litestar) -> None:
    await signup(client)
    spies = Spies(app.state.runtime)
    unknown = await client.post("/v1/login", json={"email": "bob@example.com", "password": PASSWORD})
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_credentials")
    assert spies.reads == []


async def test_a_failed_early_read_is_not_left_unseen(client: Client, app: Litestar) -> None:
    """The factors cannot be read: a wrong password is still the usual 401 (the read's failure
    retrieved, not logged by asyncio as never seen); the right one is a 503, nothing issued."""
    await signup(client)
    Spies(app.state.runtime, fail_reads=True)
    unseen: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: unseen.append(context))
    try:
        wrong = await client.post("/v1/login", json={"email": "ada@example.com", "password": "not it at all"})
        assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_credentials")
        right = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
        assert right.status_code == 503, right.text
        assert "access_token" not in right.text
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert unseen == []
