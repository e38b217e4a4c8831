"""How each kit fetches and caches the IdP's JWKS: refetch for an unknown ``kid`` (at most once
per cool-down), key rotation, ``max-age``, and an IdP that cannot be reached.

Every kit reaches the JWKS through a :class:`~tests.examples.kits.JWKSProxy` that counts the
fetches (and can answer 503), so the tests see exactly how often the IdP is asked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.examples.kits import (
    KITS,
    Account,
    Forge,
    IdP,
    RunningKit,
    assert_invalid_token,
    header_of,
    run_kit,
    start_idp,
)

pytestmark = pytest.mark.slow

SHORT_MAX_AGE = 1  # seconds, for the IdP of the max-age tests
SHORT_COOLDOWN = 0.5  # seconds, IDP_JWKS_COOLDOWN where a test needs to see a refetch
FLOOD_SECONDS = 1.4


def _ok(kit: RunningKit, token: str, account: Account) -> None:
    response = kit.profile(token)
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{kit.log()}"
    assert response.json()["user_id"] == account.id


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, f"{response.status_code} {response.text}"
    assert response.json()["error"] == "temporarily_unavailable", response.text


@pytest.mark.parametrize("name", KITS)
def test_a_flood_of_unknown_kids_does_not_hammer_the_idp(
    name: str, idp: IdP, account: Account, forge: Forge, tmp_path: Path
) -> None:
    """With the default 30 s cool-down, 40 tokens with made-up kids (8 at a time) are all refused
    and cause at most one JWKS fetch beyond the first; a valid token still works afterwards."""
    with run_kit(name, idp, tmp_path) as kit:
        _ok(kit, account.token, account)
        assert kit.proxy.count == 1
        bogus = [forge.foreign_unknown_kid() for _ in range(40)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(kit.profile, bogus))
        for response in responses:
            assert_invalid_token(response)
        assert kit.proxy.count <= 2, f"{kit.proxy.count - 1} refetches for unknown kids within 30 s"
        _ok(kit, account.token, account)


@pytest.mark.parametrize("name", KITS)
def test_unknown_kids_refetch_at_most_once_per_cooldown(
    name: str, idp: IdP, account: Account, forge: Forge, tmp_path: Path
) -> None:
    """With ``IDP_JWKS_COOLDOWN=0.5``, unknown kids sent without pause for 1.4 s make the kit
    refetch the JWKS about twice a second: at least twice (it does look for new keys) and never
    more often than the cool-down allows."""
    with run_kit(name, idp, tmp_path, IDP_JWKS_COOLDOWN=str(SHORT_COOLDOWN)) as kit:
        _ok(kit, account.token, account)
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < FLOOD_SECONDS:
            assert_invalid_token(kit.profile(forge.foreign_unknown_kid()))
            sent += 1
        elapsed = time.monotonic() - started
        refetches = kit.proxy.count - 1
        assert sent > 10, f"only {sent} requests in {elapsed:.1f}s"
        assert 2 <= refetches <= int(elapsed / SHORT_COOLDOWN) + 1, f"{refetches} refetches in {elapsed:.1f}s"


@pytest.fixture(scope="module")
def rotating_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdP]:
    """An IdP that re-reads its keys folder every 0.2 s; each rotation test rotates it again."""
    workdir = tmp_path_factory.mktemp("rotating-idp")
    with start_idp(workdir, IDP_KEYS_RELOAD_INTERVAL="0.2") as running:
        yield running


@pytest.mark.parametrize("name", KITS)
def test_a_rotated_key_is_fetched_when_its_first_token_arrives(
    name: str, rotating_idp: IdP, tmp_path: Path
) -> None:
    """Key rotation on the IdP (``keys rotate --delay 0 --force``, picked up within 0.2 s): the
    kit's cached JWKS (max-age 300 s) lacks the new kid, so the first new-kid token makes it
    refetch once, and is accepted; tokens of the retired key stay valid, with no further fetch."""
    idp = rotating_idp
    account = idp.signup()
    old_kid = header_of(account.token)["kid"]
    with run_kit(name, idp, tmp_path, IDP_JWKS_COOLDOWN=str(SHORT_COOLDOWN)) as kit:
        _ok(kit, account.token, account)
        first_fetch = time.monotonic()
        assert kit.proxy.count == 1

        new_kid = idp.rotate_now()
        assert new_kid != old_kid
        deadline = time.monotonic() + 10
        token = idp.login(account.email)
        while header_of(token)["kid"] != new_kid:
            assert time.monotonic() < deadline, "the IdP never signed with the rotated key"
            time.sleep(0.1)
            token = idp.login(account.email)
        time.sleep(max(0.0, first_fetch + SHORT_COOLDOWN + 0.2 - time.monotonic()))

        _ok(kit, token, account)
        assert kit.proxy.count == 2, "the new kid should have caused exactly one refetch"
        _ok(kit, account.token, account)
        assert kit.proxy.count == 2


@pytest.fixture(scope="module")
def short_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdP]:
    """An IdP whose JWKS says ``Cache-Control: max-age=1``."""
    with start_idp(tmp_path_factory.mktemp("short-idp"), IDP_JWKS_MAX_AGE=str(SHORT_MAX_AGE)) as running:
        yield running


def _short_cache_env(name: str) -> dict[str, str]:
    # jose does not read Cache-Control: the node kit is told the IdP's max-age instead.
    return {"IDP_JWKS_CACHE_MAX_AGE": str(SHORT_MAX_AGE)} if name == "node" else {}


@pytest.mark.parametrize("name", KITS)
def test_keys_are_refreshed_after_max_age_and_kept_or_not_in_an_outage(
    name: str, short_idp: IdP, tmp_path: Path
) -> None:
    """Against an IdP sending ``max-age=1``: a second request right away uses the cache, one
    after 1.3 s fetches again (the FastAPI kit needs no setting for this: it honours the header,
    and revalidates with ``If-None-Match``, getting 304).

    Then the JWKS fails and the max-age passes again; the kits differ here, as their READMEs say:
    the FastAPI kit keeps verifying with the keys it has and retries only after its cool-down;
    jose in the node kit refuses a stale key set and answers 503 until the IdP is back."""
    account = short_idp.signup()
    with run_kit(name, short_idp, tmp_path, **_short_cache_env(name)) as kit:
        _ok(kit, account.token, account)
        _ok(kit, account.token, account)
        assert kit.proxy.count == 1, "the kit refetched a JWKS younger than its max-age"
        time.sleep(SHORT_MAX_AGE + 0.3)
        _ok(kit, account.token, account)
        fetches = kit.proxy.fetches
        assert len(fetches) == 2, f"expected one refetch after max-age, saw {fetches}"
        if name == "fastapi":
            assert fetches[0].if_none_match is None
            assert fetches[1].if_none_match, "the refetch did not revalidate with the ETag"
            assert fetches[1].status == 304

        kit.proxy.failing = True
        time.sleep(SHORT_MAX_AGE + 0.3)
        response = kit.profile(account.token)
        assert kit.proxy.count == 3, "the kit did not try to refresh its stale JWKS"
        if name == "fastapi":
            assert response.status_code == 200, response.text
            _ok(kit, account.token, account)
            assert kit.proxy.count == 3, "the FastAPI kit retried before its cool-down"
        else:
            _assert_unavailable(response)


@pytest.mark.parametrize("name", KITS)
def test_unreachable_jwks_is_503_not_401_and_recovers(
    name: str, idp: IdP, account: Account, tmp_path: Path
) -> None:
    """A kit that cannot get any key (the JWKS answers 503) says so with 503
    ``temporarily_unavailable``, not 401, so clients keep their valid tokens; once the JWKS is
    back, the same token is accepted after the cool-down."""
    with run_kit(name, idp, tmp_path, IDP_JWKS_COOLDOWN=str(SHORT_COOLDOWN)) as kit:
        kit.proxy.failing = True
        _assert_unavailable(kit.profile(account.token))
        kit.proxy.failing = False
        time.sleep(SHORT_COOLDOWN + 0.2)
        _ok(kit, account.token, account)
