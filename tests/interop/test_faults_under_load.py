"""Redis killed and restarted while refreshes and logins are under way: only 200, 400 (sessions
lost with a Redis that keeps nothing on disk) and 503 — never a 500 — and the service recovers by
itself."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.conftest import empty_postgres
from tests.http.test_redis_outage import OwnRedis
from tests.support.server import run_server

PASSWORD = "correct horse battery"
LOAD_SECONDS = 6.0


def test_redis_restart_under_load(tmp_path: Path, postgres_server: str) -> None:
    """Bounded load from four threads; Redis dies at 2 s and returns at 4 s."""
    redis = OwnRedis(tmp_path)
    redis.start()
    env = {"IDP_DATABASE_URL": postgres_server, "IDP_REDIS_URL": redis.url, "IDP_REFRESH_REUSE_GRACE": "30"}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    try:
        with run_server(tmp_path, env) as server, httpx.Client(base_url=server.url, timeout=10) as http:
            accounts = []
            for i in range(4):
                body = {"email": f"load{i}@example.com", "password": PASSWORD}
                accounts.append((body, http.post("/v1/signup", json=body).json()["tokens"]["refresh_token"]))
            stop = time.monotonic() + LOAD_SECONDS

            def drive(body: dict[str, str], token: str) -> None:
                with httpx.Client(base_url=server.url, timeout=10) as client:
                    while time.monotonic() < stop:
                        response = client.post(
                            "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": token}
                        )
                        if response.status_code == 200:
                            token = response.json()["refresh_token"]
                        login = client.post("/v1/login", json=body)
                        with lock:
                            statuses.update([response.status_code, login.status_code])

            threads = [threading.Thread(target=drive, args=account) for account in accounts]
            for thread in threads:
                thread.start()
            time.sleep(2)
            redis.stop()
            time.sleep(2)
            redis.start()
            for thread in threads:
                thread.join(timeout=30)
            assert (http.get("/health/ready")).status_code == 200
            fresh = http.post("/v1/login", json=accounts[0][0])
            assert fresh.status_code == 200, "logins work again without a restart"
            token = fresh.json()["refresh_token"]
            first = http.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": token})
            assert first.status_code == 200
    finally:
        redis.stop()
        asyncio.run(empty_postgres(postgres_server))
    assert 500 not in statuses, statuses
    assert set(statuses) <= {200, 400, 503}, statuses
    assert statuses[503] > 0, "the outage was observed"
    assert statuses[200] > 0
