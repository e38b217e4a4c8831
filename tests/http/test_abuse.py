"""Rate limits and progressive delay on the credential endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from litestar import Litestar

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings
from service.runtime import Runtime

PASSWORD = "correct horse battery"


@pytest.fixture
async def limited(
    make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime, list[float]]]:
    """An app with small limits, a trusted proxy at 127.0.0.1, and recorded login delays."""
    settings = make_settings(
        **backend_env,
        IDP_RATELIMIT_LOGIN_IP="5/60",
        IDP_RATELIMIT_LOGIN_IP_ACCOUNT="3/600",
        IDP_RATELIMIT_LOGIN_ACCOUNT_FAILURES="4/600",
        IDP_LOGIN_MAX_DELAY="5",
        IDP_RATELIMIT_SIGNUP_IP="3/3600",
        IDP_RATELIMIT_TOKEN_IP="4/60",
        IDP_TRUSTED_PROXIES="127.0.0.1/32",
    )
    app: Litestar = create_app(settings, clock=clock)
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))  # type: ignore[arg-type]
    async with serving(app) as runtime:
        runtime.guard._sleep = record
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            yield client, runtime, delays


def from_ip(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


async def test_login_per_ip_limit_answers_429_with_headers(
    limited: tuple[httpx.AsyncClient, Runtime, list[float]],
) -> None:
    """The sixth attempt from one IP in a minute: 429, Retry-After and RateLimit headers."""
    client, _, _ = limited
    statuses = []
    for i in range(6):
        response = await client.post(
            "/v1/login",
            json={"email": f"u{i}@example.com", "password": PASSWORD},
            headers=from_ip("203.0.113.7"),
        )
        statuses.append(response.status_code)
    assert statuses == [401] * 5 + [429]
    assert response.json()["error"] == "rate_limited"
    assert response.headers["retry-after"] == "12"
    assert response.headers["ratelimit-policy"] == '"login-ip";q=5;w=60'
    assert response.headers["ratelimit"] == '"login-ip";r=0;t=12'
    assert response.headers["cache-control"] == "no-store"
    other_ip = await client.post(
        "/v1/login", json={"email": "u0@example.com", "password": PASSWORD}, headers=from_ip("203.0.113.8")
    )
    assert other_ip.status_code == 401


async def test_ip_and_account_limit(
    limited: tuple[httpx.AsyncClient, Runtime, list[float]], clock: FrozenClock
) -> None:
    """Guessing one account from one IP stops after three tries; the limit refills over time."""
    client, _, _ = limited
    body = {"email": "ada@example.com", "password": "wrong guess"}
    codes = [
        (await client.post("/v1/login", json=body, headers=from_ip("198.51.100.1"))).status_code
        for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    clock.advance(200)
    assert (await client.post("/v1/login", json=body, headers=from_ip("198.51.100.1"))).status_code == 401


async def test_distributed_guessing_slows_down_but_never_locks_the_owner_out(
    limited: tuple[httpx.AsyncClient, Runtime, list[float]],
) -> None:
    """Failures from many IPs spend the account's budget; then every attempt waits (at most the
    documented 5 s), and the owner still logs in from a fresh IP."""
    client, _, delays = limited
    assert (
        await client.post("/v1/signup", json={"email": "ada@example.com", "password": PASSWORD})
    ).status_code == 201
    for i in range(6):
        guess = await client.post(
            "/v1/login",
            json={"email": "ada@example.com", "password": f"guess {i}"},
            headers=from_ip(f"192.0.2.{i}"),
        )
        assert guess.status_code == 401
    assert len(delays) == 2, "the first four failures cost nothing, the next two wait"
    assert all(0 < delay <= 5 for delay in delays)
    owner = await client.post(
        "/v1/login", json={"email": "ada@example.com", "password": PASSWORD}, headers=from_ip("192.0.2.200")
    )
    assert owner.status_code == 200
    assert len(delays) == 3
    assert 0 < delays[-1] <= 5


@pytest.mark.parametrize(
    "spelling",
    ["victim@example.com.", "\uff56ictim@example.com", "victim@\uff45xample.com", "VICTIM@example.com"],
    ids=["trailing-dot", "fullwidth-local", "fullwidth-domain", "case"],
)
async def test_the_delay_applies_to_every_spelling_of_the_account(
    limited: tuple[httpx.AsyncClient, Runtime, list[float]], spelling: str
) -> None:
    """Once the exact address has spent the budget, a wrong password under another spelling
    that reaches the same account is delayed like the original (it was not: issue 17)."""
    client, _, delays = limited
    signup = await client.post("/v1/signup", json={"email": "victim@example.com", "password": PASSWORD})
    assert signup.status_code == 201
    for i in range(4):
        guess = await client.post(
            "/v1/login",
            json={"email": "victim@example.com", "password": f"guess {i}"},
            headers=from_ip(f"192.0.2.{i}"),
        )
        assert guess.status_code == 401
    assert delays == []
    same_account = await client.post(
        "/v1/login", json={"email": spelling, "password": PASSWORD}, headers=from_ip("192.0.2.100")
    )
    assert same_account.status_code == 200, "the spelling reaches the same account"
    assert len(delays) == 1
    wrong = await client.post(
        "/v1/login", json={"email": spelling, "password": "another guess"}, headers=from_ip("192.0.2.101")
    )
    assert wrong.status_code == 401
    assert len(delays) == 2
    assert all(0 < delay <= 5 for delay in delays)


async def test_unknown_accounts_are_delayed_like_real_ones(
    limited: tuple[httpx.AsyncClient, Runtime, list[float]],
) -> None:
    """The delay does not reveal whether an email is registered."""
    client, _, delays = limited
    for i in range(6):
        await client.post(
            "/v1/login",
            json={"email": "ghost@example.com", "password": f"g{i}"},
            headers=from_ip(f"192.0.2.{i}"),
        )
    assert len(delays) == 2


async def test_forwarded_for_is_ignored_from_untrusted_peers(
    make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock
) -> None:
    """Without IDP_TRUSTED_PROXIES a spoofed X-Forwarded-For does not reset the per-IP limit."""
    app = create_app(make_settings(**backend_env, IDP_RATELIMIT_SIGNUP_IP="2/3600"), clock=clock)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.50", 5000))  # type: ignore[arg-type]
    async with (
        serving(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client,
    ):
        codes = [
            (
                await client.post(
                    "/v1/signup",
                    json={"email": f"s{i}@example.com", "password": PASSWORD},
                    headers=from_ip(f"10.0.0.{i}"),
                )
            ).status_code
            for i in range(3)
        ]
    assert codes == [201, 201, 429]


async def test_token_endpoint_is_limited_per_ip(
    limited: tuple[httpx.AsyncClient, Runtime, list[float]],
) -> None:
    """Refresh-token guessing hits the token endpoint limit."""
    client, _, _ = limited
    codes = [
        (
            await client.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": "x"})
        ).status_code
        for _ in range(5)
    ]
    assert codes == [400, 400, 400, 400, 429]


async def test_cors_allow_list_and_hsts(
    make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock
) -> None:
    """Configured origins get CORS headers, others none; HSTS when configured."""
    settings = make_settings(
        **backend_env, IDP_CORS_ORIGINS="https://app.example.com", IDP_HSTS_MAX_AGE="31536000"
    )
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with (
        serving(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client,
    ):
        allowed = await client.get("/health/live", headers={"Origin": "https://app.example.com"})
        denied = await client.get("/health/live", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in denied.headers
    assert allowed.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_login_refused_by_a_busy_argon2_pool_costs_no_limit(
    limited: tuple[httpx.AsyncClient, Runtime, list[float]],
) -> None:
    """When the argon2 pool would shed the hash, login answers 503 + Retry-After at once, before
    the rate limiter: the refused attempts do not use up the IP's five logins a minute."""
    client, runtime, _ = limited
    passwords = runtime.passwords
    full = passwords._max_pending
    passwords._pending += full
    try:
        for _ in range(6):
            busy = await client.post("/v1/login", json={"email": "u@example.com", "password": PASSWORD})
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "1"
            assert busy.json()["error"] == "temporarily_unavailable"
    finally:
        passwords._pending -= full
    statuses = []
    for i in range(6):
        response = await client.post("/v1/login", json={"email": f"u{i}@example.com", "password": PASSWORD})
        statuses.append(response.status_code)
    assert statuses == [401] * 5 + [429]
