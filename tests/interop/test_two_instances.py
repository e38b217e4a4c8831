"""Two IdP processes behind an imaginary load balancer, sharing PostgreSQL and Redis: an attacker
spreading attempts over both is limited as if there were one instance, and the account owner
still gets in from a fresh IP within the documented delay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import empty_postgres
from tests.support.server import RunningServer, run_server

PASSWORD = "correct horse battery"
MAX_DELAY = 1.0


@pytest.fixture
def two_instances(
    tmp_path: Path, postgres_server: str, redis_server: str, redis_prefix: str
) -> Iterator[tuple[RunningServer, RunningServer]]:
    env = {
        "IDP_DATABASE_URL": postgres_server,
        "IDP_REDIS_URL": redis_server,
        "IDP_REDIS_PREFIX": redis_prefix,
        "IDP_TRUSTED_PROXIES": "127.0.0.1/32",
        "IDP_RATELIMIT_LOGIN_IP": "6/60",
        "IDP_RATELIMIT_LOGIN_ACCOUNT_FAILURES": "4/600",
        "IDP_LOGIN_MAX_DELAY": str(MAX_DELAY),
    }
    (tmp_path / "a").mkdir()
    with ExitStack() as stack:
        first = stack.enter_context(run_server(tmp_path / "a", env))
        # The second instance shares the first one's keys, as instances behind a balancer do.
        second = stack.enter_context(run_server(tmp_path / "a", env))
        yield first, second
    asyncio.run(empty_postgres(postgres_server))


def login(server: RunningServer, email: str, password: str, ip: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": ip},
        timeout=10,
    )


def test_rate_limit_is_shared(two_instances: tuple[RunningServer, RunningServer]) -> None:
    """Twelve attempts from one IP alternating between instances: six pass, six get 429."""
    first, second = two_instances
    codes = [
        login((first, second)[i % 2], f"x{i}@example.com", "nope nope", "203.0.113.9").status_code
        for i in range(12)
    ]
    assert codes.count(401) == 6
    assert codes.count(429) == 6
    assert codes[:6] == [401] * 6


def test_owner_still_logs_in_under_distributed_attack(
    two_instances: tuple[RunningServer, RunningServer],
) -> None:
    """Guesses from eight IPs over both instances spend the account's budget; the owner then
    logs in from a fresh IP, paying at most the documented delay."""
    first, second = two_instances
    signup = httpx.post(
        f"{first.url}/v1/signup", json={"email": "owner@example.com", "password": PASSWORD}, timeout=10
    )
    assert signup.status_code == 201
    for i in range(8):
        guess = login((first, second)[i % 2], "owner@example.com", f"guess {i}", f"198.51.100.{i}")
        assert guess.status_code == 401
    started = time.monotonic()
    owner = login(second, "owner@example.com", PASSWORD, "192.0.2.77")
    elapsed = time.monotonic() - started
    assert owner.status_code == 200
    assert elapsed < MAX_DELAY + 2.0, f"the owner waited {elapsed:.2f}s"
