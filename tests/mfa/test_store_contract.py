"""The MfaStore contract on SQLite and PostgreSQL: one suite, every backend."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import pytest

from service.store.base import Database, NewUser, User
from service.store.mfa import FactorSummary, MfaStore, Passkey, PasskeyExists
from service.store.postgres import PostgresDatabase
from service.store.postgres_mfa import PostgresMfaStore
from service.store.sqlite import SqliteDatabase
from service.store.sqlite_mfa import SqliteMfaStore

NOW = 1_800_000_000.0


@pytest.fixture
def store(database: Database) -> MfaStore:
    if isinstance(database, PostgresDatabase):
        return PostgresMfaStore(database)
    assert isinstance(database, SqliteDatabase)
    return SqliteMfaStore(database)


async def _user(database: Database) -> User:
    user_id = uuid.uuid4()
    return await database.create_user(
        NewUser(
            id=user_id,
            email=f"{user_id.hex}@example.com",
            email_normalized=f"{user_id.hex}@example.com",
            password_hash=None,
            name=None,
            created_at=NOW,
        )
    )


@pytest.fixture
async def user(database: Database) -> User:
    return await _user(database)


def _passkey(user: User, credential_id: bytes | None = None, count: int = 0) -> Passkey:
    return Passkey(
        credential_id=credential_id or secrets.token_bytes(16),
        user_id=user.id,
        name="laptop",
        public_key=b"\xa5" * 77,
        sign_count=count,
        transports=("internal", "hybrid"),
        device_type="multi_device",
        backed_up=True,
        created_at=NOW,
        last_used_at=None,
    )


async def test_totp_is_pending_until_confirmed_and_then_cannot_be_replaced(
    store: MfaStore, user: User
) -> None:
    """A pending secret may be replaced; once confirmed, begin_totp refuses and keeps it."""
    assert await store.begin_totp(user.id, b"first", NOW)
    assert await store.begin_totp(user.id, b"second", NOW + 1)
    pending = await store.get_totp(user.id)
    assert pending is not None
    assert (pending.secret, pending.confirmed) == (b"second", False)
    assert (await store.summary(user.id)).totp is False
    assert await store.confirm_totp(user.id, NOW + 2)
    assert not await store.confirm_totp(user.id, NOW + 3)
    assert not await store.begin_totp(user.id, b"third", NOW + 4)
    confirmed = await store.get_totp(user.id)
    assert confirmed is not None
    assert (confirmed.secret, confirmed.confirmed, confirmed.last_used_at) == (b"second", True, NOW + 2)
    assert (await store.summary(user.id)).totp is True
    assert await store.delete_totp(user.id)
    assert await store.get_totp(user.id) is None
    assert not await store.delete_totp(user.id)


async def test_a_totp_step_is_accepted_only_after_the_last_one(store: MfaStore, user: User) -> None:
    """RFC 6238 §5.2: after step N, steps <= N are refused and N+1 is accepted; a new pending
    secret starts over (its steps were never used)."""
    assert await store.begin_totp(user.id, b"first", NOW)
    assert await store.accept_totp_step(user.id, 100, NOW)
    assert not await store.accept_totp_step(user.id, 100, NOW)
    assert not await store.accept_totp_step(user.id, 99, NOW)
    assert await store.accept_totp_step(user.id, 101, NOW + 30)
    totp = await store.get_totp(user.id)
    assert totp is not None
    assert totp.last_used_at == NOW + 30
    assert await store.begin_totp(user.id, b"second", NOW + 40)
    assert await store.accept_totp_step(user.id, 50, NOW + 40)
    assert not await store.accept_totp_step(uuid.uuid4(), 1, NOW)


async def test_a_totp_step_is_accepted_once_even_when_raced(store: MfaStore, user: User) -> None:
    """Twenty concurrent acceptances of one step (the pool's connections, as instances would
    race): exactly one wins."""
    assert await store.begin_totp(user.id, b"secret", NOW)
    results = await asyncio.gather(*(store.accept_totp_step(user.id, 7, NOW) for _ in range(20)))
    assert results.count(True) == 1


async def test_a_recovery_code_is_spent_once_even_when_raced(store: MfaStore, user: User) -> None:
    """Twenty concurrent uses of one code: exactly one succeeds; the count drops by one."""
    await store.replace_recovery_codes(user.id, [f"h{i}" for i in range(10)], NOW)
    results = await asyncio.gather(*(store.use_recovery_code(user.id, "h3", NOW) for _ in range(20)))
    assert results.count(True) == 1
    assert (await store.summary(user.id)).recovery_codes == 9
    assert not await store.use_recovery_code(user.id, "unknown", NOW)


async def test_replacing_recovery_codes_invalidates_the_old_set(store: MfaStore, user: User) -> None:
    """After a replacement, old codes (used or not) are gone and the new ones work."""
    await store.replace_recovery_codes(user.id, ["old1", "old2"], NOW)
    assert await store.use_recovery_code(user.id, "old1", NOW)
    await store.replace_recovery_codes(user.id, ["new1", "new2", "new3"], NOW + 1)
    assert not await store.use_recovery_code(user.id, "old2", NOW + 2)
    assert (await store.summary(user.id)).recovery_codes == 3
    assert await store.use_recovery_code(user.id, "new2", NOW + 2)


async def test_recovery_codes_are_per_account(store: MfaStore, user: User, database: Database) -> None:
    """Another account's code hash does not spend this account's code."""
    other = await _user(database)
    await store.replace_recovery_codes(user.id, ["same"], NOW)
    assert not await store.use_recovery_code(other.id, "same", NOW)
    assert await store.use_recovery_code(user.id, "same", NOW)


async def test_passkeys_round_trip_and_a_credential_id_is_registered_once(
    store: MfaStore, user: User, database: Database
) -> None:
    """Several passkeys per account, listed oldest first; a duplicate credential id is refused
    even for another account; delete only removes the owner's."""
    first, second = _passkey(user), _passkey(user)
    await store.add_passkey(first)
    await store.add_passkey(second)
    assert await store.get_passkey(first.credential_id) == first
    assert {p.credential_id for p in await store.list_passkeys(user.id)} == {
        first.credential_id,
        second.credential_id,
    }
    other = await _user(database)
    with pytest.raises(PasskeyExists):
        await store.add_passkey(_passkey(other, first.credential_id))
    assert (await store.summary(user.id)).passkeys == 2
    assert not await store.delete_passkey(other.id, first.credential_id)
    assert await store.delete_passkey(user.id, first.credential_id)
    assert await store.get_passkey(first.credential_id) is None


async def test_the_sign_count_moves_only_from_the_value_read(store: MfaStore, user: User) -> None:
    """Compare-and-set: of two updates from the same read, one wins; the state is stored."""
    passkey = _passkey(user, count=5)
    await store.add_passkey(passkey)
    cid = passkey.credential_id
    assert await store.record_passkey_use(cid, seen_count=5, new_count=6, backed_up=False, now=NOW + 9)
    assert not await store.record_passkey_use(cid, seen_count=5, new_count=7, backed_up=True, now=NOW + 9)
    stored = await store.get_passkey(cid)
    assert stored is not None
    assert (stored.sign_count, stored.backed_up, stored.last_used_at) == (6, False, NOW + 9)


async def test_reset_removes_every_factor_and_reports_them(store: MfaStore, user: User) -> None:
    """The admin reset deletes TOTP, passkeys and codes in one go and says what there was."""
    await store.begin_totp(user.id, b"s", NOW)
    await store.confirm_totp(user.id, NOW)
    await store.add_passkey(_passkey(user))
    await store.replace_recovery_codes(user.id, ["a", "b"], NOW)
    before = await store.reset(user.id)
    assert (before.totp, before.passkeys, before.recovery_codes) == (True, 1, 2)
    after = await store.summary(user.id)
    assert (after.totp, after.passkeys, after.recovery_codes, after.any) == (False, 0, 0, False)


async def test_factors_go_with_the_account(store: MfaStore, user: User, database: Database) -> None:
    """Deleting the account deletes its factors (foreign keys cascade)."""
    await store.begin_totp(user.id, b"s", NOW)
    await store.add_passkey(_passkey(user))
    assert await database.delete_user(user.id)
    assert await store.get_totp(user.id) is None
    assert await store.list_passkeys(user.id) == []


async def test_sign_in_account_reads_the_account_and_its_factors(
    store: MfaStore, user: User, database: Database
) -> None:
    """One read for a password sign-in: None for an unknown address, else the account as
    ``get_user_by_email`` reads it and its factors as ``summary`` counts them."""
    assert await store.sign_in_account("nobody@example.com") is None
    found = await store.sign_in_account(user.email_normalized)
    assert found is not None
    assert found[0] == await database.get_user_by_email(user.email_normalized)
    assert found[1] == await store.summary(user.id) == FactorSummary(False, 0, 0)

    await store.begin_totp(user.id, b"sealed", NOW)
    pending = await store.sign_in_account(user.email_normalized)
    assert pending is not None
    assert pending[1].totp is False  # not confirmed yet: not a factor
    await store.confirm_totp(user.id, NOW)
    await store.add_passkey(_passkey(user))
    await store.replace_recovery_codes(user.id, ["a" * 64, "b" * 64], NOW)
    await store.use_recovery_code(user.id, "a" * 64, NOW)
    other = await _user(database)
    await store.add_passkey(_passkey(other))
    found = await store.sign_in_account(user.email_normalized)
    assert found is not None
    assert found[1] == await store.summary(user.id) == FactorSummary(True, 1, 1)
