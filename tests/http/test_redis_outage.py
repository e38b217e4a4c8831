"""Redis down: the token endpoint answers 503, readiness turns red, both recover by themselves."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from service.app import create_app, serving
from service.config import Settings
from tests.conftest import empty_postgres
from tests.support.own_redis import OwnRedis

PASSWORD = "correct horse battery"


async def test_redis_outage_is_503_then_recovers(
    own_redis: OwnRedis, postgres_server: str, make_settings: Callable[..., Settings]
) -> None:
    """No 500 while Redis is gone; after it returns, new sessions work without a restart."""
    settings = make_settings(IDP_DATABASE_URL=postgres_server, IDP_REDIS_URL=own_redis.url)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    try:
        async with (
            serving(app),
            httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client,
        ):
            tokens = (
                await client.post("/v1/signup", json={"email": "ada@example.com", "password": PASSWORD})
            ).json()
            form = {"grant_type": "refresh_token", "refresh_token": tokens["tokens"]["refresh_token"]}

            own_redis.stop()
            down = await client.post("/oauth2/token", data=form)
            assert (down.status_code, down.json()["error"]) == (503, "temporarily_unavailable")
            assert down.headers["retry-after"] == "1"
            ready = await client.get("/health/ready")
            assert (ready.status_code, ready.json()["checks"]["sessions"]) == (503, "unavailable")
            login = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
            assert login.status_code == 503
            signup = await client.post("/v1/signup", json={"email": "bob@example.com", "password": PASSWORD})
            assert signup.status_code == 503
            me = await client.get(
                "/v1/me", headers={"Authorization": f"Bearer {tokens['tokens']['access_token']}"}
            )
            assert me.status_code == 503

            own_redis.start()
            assert (await client.get("/health/ready")).status_code == 200
            again = await client.post("/v1/signup", json={"email": "bob@example.com", "password": PASSWORD})
            assert again.status_code == 201, "the signup refused during the outage left nothing behind"
            login = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
            assert login.status_code == 200
            fresh = {"grant_type": "refresh_token", "refresh_token": login.json()["refresh_token"]}
            assert (await client.post("/oauth2/token", data=fresh)).status_code == 200
    finally:
        await empty_postgres(postgres_server)
