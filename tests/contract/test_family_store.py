"""The refresh-family contract: SQLite (embedded) and Redis must pass each test here."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from service.store.redis import SEALED_MARGIN, RedisFamilyStore
from service.store.sessions import AccountClaims, FamilyStore, NewFamily, RotateResult
from service.store.sqlite_sessions import EMPTY_OLD_SEALED, SqliteFamilyStore

T0 = 1_800_000_000.0
DAY = 86_400.0


def family(user_id: uuid.UUID | None = None, **overrides: object) -> NewFamily:
    values: dict[str, object] = {
        "id": uuid.uuid4().hex[:22],
        "user_id": user_id or uuid.uuid4(),
        "client_id": None,
        "scope": None,
        "origin": "password",
        "user_agent": "Firefox on Linux",
        "token_hash": "h0",
        "created_at": T0,
        "absolute_expires_at": T0 + 30 * DAY,
        "idle_ttl": 7 * DAY,
        "claims": AccountClaims("ada@example.com", ("reader",)),
    }
    values.update(overrides)
    return NewFamily(**values)  # type: ignore[arg-type]


async def rotate(
    store: FamilyStore, fid: str, presented: str, successor: str, now: float, grace: float = 10
) -> RotateResult:
    return await store.rotate(
        fid,
        presented_hash=presented,
        successor_hash=successor,
        sealed_successor=successor.encode(),
        now=now,
        grace=grace,
    )


async def test_create_and_read(families: FamilyStore) -> None:
    """A created family reads back with every field."""
    new = family(client_id="web", scope="read write")
    await families.create_family(new)
    got = await families.get_family(new.id, T0 + 1)
    assert got is not None
    assert (got.user_id, got.client_id, got.scope, got.origin, got.user_agent) == (
        new.user_id, "web", "read write", "password", "Firefox on Linux",
    )  # fmt: skip
    assert (got.created_at, got.last_used_at, got.absolute_expires_at, got.idle_ttl) == (
        T0,
        T0,
        T0 + 30 * DAY,
        7 * DAY,
    )
    assert got.claims == AccountClaims("ada@example.com", ("reader",))
    assert (got.amr, got.auth_time) == ((), None)
    assert await families.get_family("missing", T0) is None


async def test_a_code_session_keeps_its_auth_time(families: FamilyStore) -> None:
    """A session opened with an authorization code keeps when the user authenticated (and how),
    through rotation and in listings, for the ID tokens of its refreshes."""
    new = family(
        client_id="web", scope="openid", origin="oidc:browser-sid", amr=("pwd",), auth_time=T0 - 42.5
    )
    await families.create_family(new)
    assert (await rotate(families, new.id, "h0", "h1", T0 + 5)).outcome == "rotated"
    got = await families.get_family(new.id, T0 + 5)
    assert got is not None
    assert (got.auth_time, got.amr, got.origin) == (T0 - 42.5, ("pwd",), "oidc:browser-sid")
    (listed,) = await families.list_families(new.user_id, T0 + 5)
    assert listed.auth_time == T0 - 42.5


async def test_rotation_sequence(families: FamilyStore) -> None:
    """Current → rotated; the successor becomes current; last_used moves."""
    new = family()
    await families.create_family(new)
    assert (await rotate(families, new.id, "h0", "h1", T0 + 5)).outcome == "rotated"
    assert (await rotate(families, new.id, "h1", "h2", T0 + 60)).outcome == "rotated"
    got = await families.get_family(new.id, T0 + 60)
    assert got is not None
    assert got.last_used_at == T0 + 60
    assert await families.owns_token(new.id, "h2", T0 + 60, current_only=True)
    assert not await families.owns_token(new.id, "h1", T0 + 60, current_only=True)
    assert await families.owns_token(new.id, "h1", T0 + 60)
    assert not await families.owns_token(new.id, "nope", T0 + 60)


async def test_grace_returns_the_sealed_successor(families: FamilyStore) -> None:
    """A used token within the grace window gets the stored successor, state unchanged."""
    new = family()
    await families.create_family(new)
    await rotate(families, new.id, "h0", "h1", T0)
    result = await rotate(families, new.id, "h0", "other", T0 + 10)
    assert (result.outcome, result.sealed) == ("grace", b"h1")
    assert await families.owns_token(new.id, "h1", T0 + 10, current_only=True)


async def test_reuse_after_grace_revokes_the_family(families: FamilyStore) -> None:
    """A used token after the window deletes the family: even the newest token is refused."""
    user_id = uuid.uuid4()
    new = family(user_id)
    await families.create_family(new)
    await rotate(families, new.id, "h0", "h1", T0)
    result = await rotate(families, new.id, "h0", "x", T0 + 10.5)
    assert result.outcome == "reuse"
    assert await families.get_family(new.id, T0 + 11) is None
    assert (await rotate(families, new.id, "h1", "h2", T0 + 12)).outcome == "invalid"


async def test_unknown_token_does_not_revoke(families: FamilyStore) -> None:
    """A guessed secret for a known family id is invalid but harmless (sid is public)."""
    new = family()
    await families.create_family(new)
    assert (await rotate(families, new.id, "forged", "x", T0 + 1)).outcome == "invalid"
    assert await families.get_family(new.id, T0 + 1) is not None


@pytest.mark.parametrize(
    ("now", "alive"),
    [
        (T0 + 7 * DAY - 1, True),
        (T0 + 7 * DAY, False),
    ],
    ids=["idle-just-before", "idle-at-expiry"],
)
async def test_idle_expiry(families: FamilyStore, now: float, alive: bool) -> None:
    """Unused for the idle TTL, the family is gone, without sleeping (injected times)."""
    new = family()
    await families.create_family(new)
    assert (await families.get_family(new.id, now) is not None) is alive
    assert (await rotate(families, new.id, "h0", "h1", now)).outcome == ("rotated" if alive else "invalid")


async def test_use_extends_idle_but_not_absolute_expiry(families: FamilyStore) -> None:
    """Regular use keeps a family alive until, and only until, its absolute expiry."""
    new = family(absolute_expires_at=T0 + 10 * DAY)
    await families.create_family(new)
    current = "h0"
    for step in range(1, 9):
        now = T0 + step * 6 * DAY / 5
        assert (await rotate(families, new.id, current, f"h{step}", now)).outcome == "rotated"
        current = f"h{step}"
    assert (await rotate(families, new.id, current, "late", T0 + 10 * DAY)).outcome == "invalid"


async def test_list_and_revoke_user_families(families: FamilyStore) -> None:
    """Listing shows only the user's live families; revoking all can keep one."""
    user_id = uuid.uuid4()
    mine = [family(user_id, created_at=T0 + i) for i in range(3)]
    for item in [*mine, family()]:
        await families.create_family(item)
    listed = await families.list_families(user_id, T0 + 5)
    assert [f.id for f in listed] == [f.id for f in mine]
    revoked = await families.revoke_user_families(user_id, keep=mine[0].id)
    assert sorted(f.id for f in revoked) == sorted(f.id for f in mine[1:])
    assert [f.id for f in await families.list_families(user_id, T0 + 5)] == [mine[0].id]
    gone = await families.revoke_family(mine[0].id)
    assert gone is not None
    assert await families.revoke_family(mine[0].id) is None
    assert await families.list_families(user_id, T0 + 5) == []


async def test_concurrent_rotations_have_one_winner(families: FamilyStore) -> None:
    """Fifty racing rotations of one token: one rotates, the rest see the same successor."""
    new = family()
    await families.create_family(new)
    results = await asyncio.gather(*(rotate(families, new.id, "h0", f"s{i}", T0 + 1) for i in range(50)))
    outcomes = [r.outcome for r in results]
    assert outcomes.count("rotated") == 1
    assert outcomes.count("grace") == 49
    winner = f"s{outcomes.index('rotated')}"
    assert {r.sealed for r in results if r.outcome == "grace"} == {winner.encode()}
    assert await families.owns_token(new.id, winner, T0 + 1, current_only=True)


async def test_ping(families: FamilyStore) -> None:
    """A reachable store answers the readiness ping."""
    await families.ping()


async def test_update_claims_rewrites_every_live_family_of_the_user(families: FamilyStore) -> None:
    """New claims reach each family of the user (read back by get and list), not another
    user's, and never bring back a revoked family."""
    user, other = uuid.uuid4(), uuid.uuid4()
    mine = [family(user), family(user), family(user)]
    theirs = family(other)
    for new in [*mine, theirs]:
        await families.create_family(new)
    await families.revoke_family(mine[2].id)
    claims = AccountClaims("ada@example.com", ("admin", "reader"))
    assert await families.update_claims(user, claims) == 2
    for new in mine[:2]:
        got = await families.get_family(new.id, T0 + 1)
        assert got is not None
        assert got.claims == claims
    assert [f.claims for f in await families.list_families(user, T0 + 1)] == [claims, claims]
    assert await families.get_family(mine[2].id, T0 + 1) is None
    untouched = await families.get_family(theirs.id, T0 + 1)
    assert untouched is not None
    assert untouched.claims == AccountClaims("ada@example.com", ("reader",))
    assert await families.update_claims(uuid.uuid4(), claims) == 0


async def test_sealed_successors_are_kept_only_through_the_grace_window(families: FamilyStore) -> None:
    """Each refresh stores its successor sealed (~1 KB) for grace retries; a session refreshed
    every few minutes for weeks must not keep them all, only the used hashes."""
    new = family()
    await families.create_family(new)
    await rotate(families, new.id, "h0", "h1", T0)
    await rotate(families, new.id, "h1", "h2", T0 + 60)
    assert (await rotate(families, new.id, "h1", "x", T0 + 65)).sealed == b"h2"  # still in grace
    if isinstance(families, RedisFamilyStore):
        family_key, used_key = families._keys(new.id)
        link = families._link
        assert await link.command("HGET", used_key, "h0") == repr(T0).encode()  # no payload
        for used in ("h0", "h1"):
            ttl = await link.command("PTTL", f"{family_key}:s:{used}")
            assert 0 < ttl <= (10 + SEALED_MARGIN) * 1000
    else:
        assert isinstance(families, SqliteFamilyStore)
        sizes = await families._db.run(
            lambda conn: dict(conn.execute("SELECT token_hash, length(sealed) FROM refresh_used").fetchall())
        )
        assert sizes == {"h0": 0, "h1": 2}
        plan = await families._db.run(
            lambda conn: [
                row["detail"] for row in conn.execute(f"EXPLAIN QUERY PLAN {EMPTY_OLD_SEALED}", (new.id, T0))
            ]
        )
        assert any("refresh_used_sealed" in detail for detail in plan), (
            plan
        )  # not a walk over every used token of the family
    assert (await rotate(families, new.id, "h0", "x", T0 + 66)).outcome == "reuse"  # still detected
