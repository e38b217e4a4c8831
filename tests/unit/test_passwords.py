"""Password policy and argon2id hashing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from service.errors import (
    IdPError,
    PasswordTooCommon,
    PasswordTooLong,
    PasswordTooShort,
    TemporarilyUnavailable,
)
from service.passwords import PasswordService, check_password_policy


@pytest.fixture
def passwords() -> Iterator[PasswordService]:
    service = PasswordService(memory_kib=64, time_cost=1, parallelism=1, threads=2)
    yield service
    service.close()


@pytest.mark.parametrize(
    ("password", "error"),
    [
        ("short", PasswordTooShort),
        ("1234567", PasswordTooShort),
        ("x" * 129, PasswordTooLong),
        ("password", PasswordTooCommon),
        ("PASSWORD", PasswordTooCommon),
        ("12345678", PasswordTooCommon),
        ("qwertyuiop", PasswordTooCommon),
    ],
    ids=["5-chars", "7-chars", "129-chars", "common", "common-upper", "digits", "keyboard"],
)
def test_policy_refusals(password: str, error: type[IdPError]) -> None:
    """Too short, too long and common passwords get their own error code."""
    with pytest.raises(error):
        check_password_policy(password)


@pytest.mark.parametrize(
    "password",
    ["correct horse battery", "x" * 128, "ünïcødé-pässwörd", "aaaaaaaa1Z"],
    ids=["passphrase", "128-chars", "unicode", "no-rules"],
)
def test_policy_accepts(password: str) -> None:
    """No composition rules: any 8-128 character uncommon password passes."""
    assert check_password_policy(password) == password


def test_length_counts_characters_after_nfkc() -> None:
    """Eight emoji are eight characters, however many bytes; NFKC folds compatibility forms."""
    assert check_password_policy("🔑" * 8) == "🔑" * 8
    assert check_password_policy("ﬁﬁﬁﬁﬁﬁﬁﬁ") == "fi" * 8


async def test_hash_and_verify(passwords: PasswordService) -> None:
    """argon2id hashes verify with the right password only, and the NFKC form matches."""
    hashed = await passwords.hash("ﬁsh and chips")
    assert hashed.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert await passwords.verify(hashed, "fish and chips")
    assert not await passwords.verify(hashed, "fish and chips!")
    assert not await passwords.verify("not-a-hash", "fish and chips")


async def test_needs_rehash_when_parameters_change(passwords: PasswordService) -> None:
    """A hash made with other parameters is flagged for rehash; a current one is not."""
    stronger = PasswordService(memory_kib=128, time_cost=2, parallelism=1, threads=1)
    try:
        old = await passwords.hash("correct horse battery")
        assert stronger.needs_rehash(old)
        assert not passwords.needs_rehash(old)
    finally:
        stronger.close()


async def test_decoy_verification_runs_argon2(passwords: PasswordService) -> None:
    """The decoy path creates and verifies a real hash with current parameters."""
    await passwords.verify_decoy("anything at all")
    assert passwords._decoy_hash is not None
    assert passwords._decoy_hash.startswith("$argon2id$v=19$m=64,t=1,p=1$")


async def test_load_is_shed_when_the_queue_is_full() -> None:
    """One thread, one queue slot: of twelve simultaneous hashes some get 503 at once, the rest
    finish; nothing waits without bound."""
    service = PasswordService(memory_kib=4096, time_cost=3, parallelism=1, threads=1, max_queue=1)
    try:
        results = await asyncio.gather(
            *(service.hash("correct horse battery") for _ in range(12)), return_exceptions=True
        )
    finally:
        service.close()
    shed = [r for r in results if isinstance(r, TemporarilyUnavailable)]
    done = [r for r in results if isinstance(r, str)]
    assert len(done) + len(shed) == 12
    assert len(done) >= 2
    assert len(shed) >= 1


async def test_idle_priority_puts_hashing_threads_in_sched_idle() -> None:
    """With idle_priority the argon2 threads run in SCHED_IDLE; without, in the normal class."""
    loop = asyncio.get_running_loop()
    for idle, policy in ((True, os.SCHED_IDLE), (False, os.SCHED_OTHER)):
        service = PasswordService(memory_kib=64, time_cost=1, parallelism=1, threads=1, idle_priority=idle)
        try:
            seen = await loop.run_in_executor(service._executor, os.sched_getscheduler, 0)
        finally:
            service.close()
        assert seen == policy
