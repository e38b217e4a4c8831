"""Every session store keeps the ``amr`` of the sign-in that opened a session."""

from __future__ import annotations

import uuid

from service.store.sessions import AccountClaims, FamilyStore, NewFamily

NOW = 1_800_000_000.0


async def test_amr_round_trips_and_defaults_to_none(families: FamilyStore) -> None:
    """A family opened with amr reads it back (SQLite, Redis, Cluster); one without reads ()."""
    user = uuid.uuid4()
    for family_id, amr in (
        ("fam-mfa-" + uuid.uuid4().hex, ("pwd", "otp", "mfa")),
        ("fam-none-" + uuid.uuid4().hex, ()),
    ):
        await families.create_family(
            NewFamily(
                id=family_id,
                user_id=user,
                client_id=None,
                scope=None,
                origin="mfa",
                user_agent=None,
                token_hash="h" * 64,
                created_at=NOW,
                absolute_expires_at=NOW + 3600,
                idle_ttl=600,
                claims=AccountClaims("a@example.com", ()),
                amr=amr,
            )
        )
        stored = await families.get_family(family_id, NOW + 1)
        assert stored is not None
        assert stored.amr == amr
