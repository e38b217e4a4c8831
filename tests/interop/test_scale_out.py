"""Two IdP instances sharing PostgreSQL, Redis and the keys folder, as behind a load balancer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import empty_postgres
from tests.support.server import CHEAP_ARGON2, RunningServer, run_server

PASSWORD = "correct horse battery"


@pytest.fixture
def pair(
    tmp_path: Path, postgres_server: str, redis_server: str, redis_prefix: str
) -> Iterator[tuple[RunningServer, RunningServer, dict[str, str]]]:
    env = {
        "IDP_DATABASE_URL": postgres_server,
        "IDP_REDIS_URL": redis_server,
        "IDP_REDIS_PREFIX": redis_prefix,
        "IDP_REFRESH_REUSE_GRACE": "1",
        "IDP_KEYS_RELOAD_INTERVAL": "0.2",
        "IDP_JWKS_MAX_AGE": "1",
    }
    with ExitStack() as stack:
        first = stack.enter_context(run_server(tmp_path, env))
        second = stack.enter_context(run_server(tmp_path, env))
        yield first, second, env
    asyncio.run(empty_postgres(postgres_server))


def test_refresh_rotated_on_one_and_replayed_on_the_other_is_detected(
    pair: tuple[RunningServer, RunningServer, dict[str, str]],
) -> None:
    """Rotation state is shared: a replay on the other instance after the grace window kills the
    session everywhere."""
    first, second, _ = pair
    tokens = httpx.post(
        f"{first.url}/v1/signup", json={"email": "ada@example.com", "password": PASSWORD}
    ).json()
    old = tokens["tokens"]["refresh_token"]
    rotated = httpx.post(
        f"{first.url}/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": old}
    )
    assert rotated.status_code == 200
    time.sleep(1.2)
    replay = httpx.post(
        f"{second.url}/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": old}
    )
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    newest = rotated.json()["refresh_token"]
    dead = httpx.post(
        f"{first.url}/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": newest}
    )
    assert dead.status_code == 400


def test_rotated_key_appears_in_both_jwks_without_restart(
    pair: tuple[RunningServer, RunningServer, dict[str, str]], tmp_path: Path
) -> None:
    """``idp keys rotate`` on the shared folder reaches both instances' JWKS within the reload interval."""
    first, second, env = pair
    before = {key["kid"] for key in httpx.get(f"{first.url}/.well-known/jwks.json").json()["keys"]}
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")} | env | CHEAP_ARGON2
    rotated = subprocess.run(
        [sys.executable, "-m", "service", "keys", "rotate"], cwd=tmp_path, env=child_env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    deadline = time.monotonic() + 10
    seen: dict[str, set[str]] = {}
    while time.monotonic() < deadline:
        seen = {
            server.url: {
                key["kid"] for key in httpx.get(f"{server.url}/.well-known/jwks.json").json()["keys"]
            }
            for server in (first, second)
        }
        if all(len(kids - before) == 1 for kids in seen.values()):
            break
        time.sleep(0.1)
    assert all(len(kids - before) == 1 for kids in seen.values()), seen
    assert seen[first.url] == seen[second.url]


def test_racing_signups_on_both_instances_create_one_account(
    pair: tuple[RunningServer, RunningServer, dict[str, str]],
) -> None:
    """Twenty signups of one address split over both instances: one 201, nineteen 409."""
    first, second, _ = pair

    def signup(index: int) -> int:
        server = (first, second)[index % 2]
        body = {"email": "Race@Example.com", "password": PASSWORD}
        return httpx.post(f"{server.url}/v1/signup", json=body, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(signup, range(20)))
    assert sorted(codes) == [201] + [409] * 19
