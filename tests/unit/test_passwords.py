"""Password policy and argon2id hashing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import nacl.pwhash
import nacl.pwhash.argon2id
import pytest
from argon2 import PasswordHasher, Type, low_level

from service.errors import (
    IdPError,
    PasswordBlank,
    PasswordInvalidCharacters,
    PasswordTooCommon,
    PasswordTooLong,
    PasswordTooShort,
    TemporarilyUnavailable,
)
from service.passwords import Match, PasswordService, check_password_policy, huge_page_mode


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
        ("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44", PasswordTooCommon),
        (" " * 20, PasswordBlank),
        ("\u3000\u00a0\u2003\u2028      ", PasswordBlank),
        ("correct\x00horse", PasswordInvalidCharacters),
        ("correct horse\x7f", PasswordInvalidCharacters),
        ("correct\nhorse battery", PasswordInvalidCharacters),
        ("correct horse \ud800", PasswordInvalidCharacters),
        ("correct horse \ue000", PasswordInvalidCharacters),
        ("correct horse \U000e0000", PasswordInvalidCharacters),
    ],
    ids=[
        "5-chars", "7-chars", "129-chars", "common", "common-upper", "digits", "keyboard",
        "common-fullwidth", "20-spaces", "unicode-whitespace", "nul", "del", "newline",
        "lone-surrogate", "private-use", "unassigned",
    ],
)  # fmt: skip
def test_policy_refusals(password: str, error: type[IdPError]) -> None:
    """Too short, too long, common, blank and control-character passwords get their own code."""
    with pytest.raises(error):
        check_password_policy(password)


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery",
        "x" * 128,
        "ünïcødé-pässwörd",
        "aaaaaaaa1Z",
        "  spaced  out  ",
        "👩\u200d💻 at work",
    ],
    ids=["passphrase", "128-chars", "unicode", "no-rules", "inner-and-outer-spaces", "zwj-emoji"],
)
def test_policy_accepts(password: str) -> None:
    """No composition rules: any 8-128 character uncommon password passes."""
    assert check_password_policy(password) == password


def test_length_counts_characters_after_nfc() -> None:
    """Eight emoji are eight characters, however many bytes; NFC composes combining marks and
    keeps compatibility forms (a ligature stays a ligature)."""
    assert check_password_policy("🔑" * 8) == "🔑" * 8
    assert check_password_policy("e\u0301" * 8) == "\u00e9" * 8
    assert check_password_policy("ﬁﬁﬁﬁﬁﬁﬁﬁ") == "ﬁ" * 8


async def test_hash_and_verify(passwords: PasswordService) -> None:
    """argon2id hashes verify with the right password only; canonically equal spellings (NFC)
    match, compatibility forms do not."""
    hashed = await passwords.hash("caf\u00e9 and chips")
    assert hashed.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert await passwords.verify(hashed, "caf\u00e9 and chips") is Match.CURRENT
    assert await passwords.verify(hashed, "cafe\u0301 and chips") is Match.CURRENT
    assert await passwords.verify(hashed, "caf\u00e9 and chips!") is Match.NONE
    assert await passwords.verify("not-a-hash", "caf\u00e9 and chips") is Match.NONE
    ligature = await passwords.hash("ﬁsh and chips")
    assert await passwords.verify(ligature, "fish and chips") is Match.NONE


async def test_hashes_of_the_old_nfkc_form_still_verify_and_ask_for_a_rehash(
    passwords: PasswordService,
) -> None:
    """A hash made before issue 17 (of the NFKC form) matches as LEGACY; a password whose two
    forms are equal never needs the fallback."""
    legacy = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1, type=Type.ID).hash("fish and chips")
    assert await passwords.verify(legacy, "ﬁsh and chips") is Match.LEGACY
    assert await passwords.verify(legacy, "fish and chips") is Match.CURRENT
    assert await passwords.verify(legacy, "ﬁsh and chips!") is Match.NONE


async def test_the_fallback_costs_the_same_for_the_decoy(passwords: PasswordService) -> None:
    """A wrong compatibility-form password costs two verifications for a real account and for
    the decoy alike (unknown emails stay indistinguishable by timing); one when the forms agree."""
    calls: list[str] = []
    real_verify = passwords._verify_sync

    def counting(password_hash: str, password: str) -> bool:
        calls.append(password)
        return real_verify(password_hash, password)

    passwords._verify_sync = counting  # type: ignore[method-assign]
    real = await passwords.hash("something else entirely")
    for password in ("ﬁsh and chips", "fish and chips"):
        calls.clear()
        await passwords.verify(real, password)
        on_account = len(calls)
        calls.clear()
        await passwords.verify_decoy(password)
        assert len(calls) == on_account
    assert on_account == 1


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


async def test_load_is_shed_when_the_expected_wait_exceeds_max_wait() -> None:
    """With jobs known to take 100 ms on one thread and max_wait 0.25 s, a burst of twelve gets
    one running job and two waiting (0.1 and 0.2 s of expected wait; the first is allowed in
    any case); the other nine get 503 at once although the queue bound (64) is far away."""
    service = PasswordService(
        memory_kib=4096, time_cost=3, parallelism=1, threads=1, max_queue=64, max_wait=0.25
    )
    try:
        await service.hash("correct horse battery")  # a job time is known from now on
        service._job_seconds = 0.1
        results = await asyncio.gather(
            *(service.hash("correct horse battery") for _ in range(12)), return_exceptions=True
        )
    finally:
        service.close()
    assert sum(isinstance(r, str) for r in results) == 3
    assert sum(isinstance(r, TemporarilyUnavailable) for r in results) == 9


async def test_a_free_thread_and_one_job_waiting_per_thread_are_always_admitted() -> None:
    """However slow recent jobs were, a job that finds a free thread, or one waiting job per
    thread, is not shed (no thread idles while the next request is on its way)."""
    service = PasswordService(memory_kib=64, time_cost=1, parallelism=1, threads=2, max_wait=0.0)
    try:
        await service.hash("correct horse battery")
        service._job_seconds = 10.0
        results = await asyncio.gather(
            *(service.hash("correct horse battery") for _ in range(5)), return_exceptions=True
        )
    finally:
        service.close()
    assert [isinstance(r, str) for r in results] == [True, True, True, True, False]


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


async def test_hashes_are_interchangeable_with_argon2_cffi(passwords: PasswordService) -> None:
    """The service's argon2id (libsodium) and argon2-cffi read each other's hashes: an account
    hashed before the switch still signs in, and a hash made now verifies with argon2-cffi, whose
    parameter check finds nothing to rehash."""
    reference = PasswordHasher(
        memory_cost=64, time_cost=1, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
    )
    older = reference.hash("correct horse battery")
    assert await passwords.verify(older, "correct horse battery") is Match.CURRENT
    assert await passwords.verify(older, "correct horse batterY") is Match.NONE
    made_now = await passwords.hash("correct horse battery")
    assert made_now.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert reference.verify(made_now, "correct horse battery")
    assert not reference.check_needs_rehash(made_now)
    assert not passwords.needs_rehash(made_now)


@pytest.mark.parametrize(
    ("kind", "version", "lanes"),
    [(Type.D, 19, 1), (Type.ID, 16, 1), (Type.I, 19, 1), (Type.ID, 19, 4)],
    ids=["argon2d", "argon2id-v16", "argon2i", "argon2id-4-lanes"],
)
async def test_hashes_libsodium_does_not_make_still_verify(
    passwords: PasswordService, kind: Type, version: int, lanes: int
) -> None:
    """argon2d and version-16 hashes (which libsodium would call a wrong password) go to
    argon2-cffi; argon2i and several lanes are read by libsodium. Right and wrong both answered."""
    encoded = low_level.hash_secret(
        b"correct horse battery", os.urandom(16), time_cost=3, memory_cost=64, parallelism=lanes,
        hash_len=32, type=kind, version=version,
    ).decode()  # fmt: skip
    assert encoded.startswith(f"$argon2{kind.name.lower()}$v={version}$")
    assert await passwords.verify(encoded, "correct horse battery") is Match.CURRENT
    assert await passwords.verify(encoded, "wrong horse battery") is Match.NONE


@pytest.mark.parametrize(
    "broken",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$",
        "$argon2id$v=19$m=64,t=1,p=1$é$x",
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$" + "A" * 200,  # longer than libsodium takes
    ],
)
async def test_a_broken_hash_is_a_mismatch(passwords: PasswordService, broken: str) -> None:
    assert await passwords.verify(broken, "correct horse battery") is Match.NONE


async def test_several_lanes_are_hashed_by_argon2_cffi() -> None:
    """libsodium makes one-lane hashes only: IDP_ARGON2_PARALLELISM > 1 keeps argon2-cffi."""
    service = PasswordService(memory_kib=64, time_cost=1, parallelism=2, threads=1)
    try:
        encoded = await service.hash("correct horse battery")
        assert encoded.startswith("$argon2id$v=19$m=64,t=1,p=2$")
        assert await service.verify(encoded, "correct horse battery") is Match.CURRENT
        assert not service.needs_rehash(encoded)
    finally:
        service.close()


async def test_argon2id_goes_to_libsodium(
    passwords: PasswordService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default hashes are made and checked by libsodium (the vectorised argon2), not by the
    reference code in argon2-cffi: a spy counts libsodium's calls."""
    calls: list[str] = []
    real_str, real_verify = nacl.pwhash.argon2id.str, nacl.pwhash.verify

    def spy_str(password: bytes, *, opslimit: int, memlimit: int) -> bytes:
        calls.append("str")
        return real_str(password, opslimit=opslimit, memlimit=memlimit)

    def spy_verify(password_hash: bytes, password: bytes) -> bool:
        calls.append("verify")
        return real_verify(password_hash, password)

    monkeypatch.setattr(nacl.pwhash.argon2id, "str", spy_str)
    monkeypatch.setattr(nacl.pwhash, "verify", spy_verify)
    encoded = await passwords.hash("correct horse battery")
    assert await passwords.verify(encoded, "correct horse battery") is Match.CURRENT
    assert calls == ["str", "verify"]


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("always [madvise] never\n", "madvise"),
        ("[always] madvise never\n", "always"),
        ("always madvise [never]\n", "never"),
        ("always madvise never\n", None),
        ("", None),
    ],
)
def test_the_huge_page_mode_is_the_bracketed_word(tmp_path: Path, text: str, mode: str | None) -> None:
    setting = tmp_path / "enabled"
    setting.write_text(text)
    assert huge_page_mode(setting) == mode


def test_an_unreadable_huge_page_setting_is_unknown(tmp_path: Path) -> None:
    assert huge_page_mode(tmp_path / "absent") is None


def test_default_parameters_hash_on_libsodium_and_p2_does_not() -> None:
    assert PasswordService(memory_kib=64, time_cost=1, parallelism=1, threads=1).on_libsodium
    assert not PasswordService(memory_kib=64, time_cost=1, parallelism=2, threads=1).on_libsodium
