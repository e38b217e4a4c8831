"""Redis down: the token endpoint answers 503, readiness turns red, both recover by themselves."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.app import create_app
from service.config import Settings
from service.runtime import Runtime
from tests.conftest import empty_postgres
from tests.support.server import free_port

PASSWORD = "correct horse battery"


class OwnRedis:
    """A redis-server of this test's own on a free loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_redis_outage_is_503_then_recovers(
    own_redis: OwnRedis, postgres_server: str, make_settings: Callable[..., Settings]
) -> None:
    """No 500 while Redis is gone; after it returns, new sessions work without a restart."""
    settings = make_settings(IDP_DATABASE_URL=postgres_server, IDP_REDIS_URL=own_redis.url)
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    await runtime.start()
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
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
        await runtime.stop()
        await empty_postgres(postgres_server)
