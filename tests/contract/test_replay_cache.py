"""The token-exchange replay-cache contract: SQLite (embedded), Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
import secrets

from service.store.exchange import ReplayCache

NOW = 1_800_000_000.0


async def test_a_fingerprint_is_new_once_until_it_expires(replay: ReplayCache) -> None:
    """First sight is True, every later one False; another fingerprint is independent."""
    seen = secrets.token_hex(32)
    assert await replay.remember(seen, expires_at=NOW + 60, now=NOW) is True
    assert await replay.remember(seen, expires_at=NOW + 60, now=NOW + 1) is False
    assert await replay.remember(secrets.token_hex(32), expires_at=NOW + 60, now=NOW + 1) is True


async def test_an_expired_token_is_never_new(replay: ReplayCache) -> None:
    """A token already past its expiry cannot be remembered (so never accepted)."""
    assert await replay.remember(secrets.token_hex(32), expires_at=NOW, now=NOW) is False


async def test_racing_exchanges_of_one_token_admit_one(replay: ReplayCache) -> None:
    """Twenty concurrent first sights of one fingerprint: exactly one wins."""
    fingerprint = secrets.token_hex(32)
    results = await asyncio.gather(
        *(replay.remember(fingerprint, expires_at=NOW + 60, now=NOW) for _ in range(20))
    )
    assert results.count(True) == 1


async def test_forget_lets_a_failed_exchange_be_retried(replay: ReplayCache) -> None:
    """After ``forget`` the same fingerprint is new again; forgetting an unknown one is a no-op."""
    fingerprint = secrets.token_hex(32)
    assert await replay.remember(fingerprint, expires_at=NOW + 60, now=NOW)
    await replay.forget(fingerprint)
    assert await replay.remember(fingerprint, expires_at=NOW + 60, now=NOW + 1) is True
    assert await replay.remember(fingerprint, expires_at=NOW + 60, now=NOW + 2) is False
    await replay.forget(secrets.token_hex(32))
