"""The docker-compose topology as local processes: PostgreSQL + Redis + the IdP (``idp serve``,
two workers) + a Better Auth server + the FastAPI example API, all on loopback.

The flow a Next.js server runs: sign in on Better Auth → take its JWT → exchange it at the IdP
with the confidential client → call the API with our access token → the API verifies it offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import empty_postgres
from tests.support.better_auth import run_better_auth
from tests.support.server import free_port, run_server

ROOT = Path(__file__).resolve().parents[2]
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
CLIENT_SECRET = "next-app-secret-" + "z" * 32


@contextlib.contextmanager
def run_fastapi_example(workdir: Path, idp_url: str) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update({"IDP_ISSUER": idp_url, "IDP_AUDIENCE": idp_url})
    log = (workdir / "fastapi.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT / "examples" / "fastapi-api",
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, (workdir / "fastapi.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_better_auth_to_idp_to_api(
    tmp_path: Path, postgres_server: str, redis_server: str, redis_prefix: str
) -> None:
    """End to end over real processes and real PostgreSQL and Redis."""
    try:
        run_stack(tmp_path, postgres_server, redis_server, redis_prefix)
    finally:
        asyncio.run(empty_postgres(postgres_server))


def run_stack(tmp_path: Path, postgres_server: str, redis_server: str, redis_prefix: str) -> None:
    idp_port = free_port()
    idp_url = f"http://127.0.0.1:{idp_port}"
    with run_better_auth(tmp_path, audience=idp_url) as better_auth:
        (tmp_path / "idp.toml").write_text(
            f"""
[[trusted_issuers]]
issuer = "{better_auth.issuer}"
jwks_uri = "{better_auth.jwks_url}"
audiences = ["{idp_url}"]
clients = ["next-app"]

[[clients]]
id = "next-app"
secret_env = "NEXT_APP_SECRET"
"""
        )
        env = {
            "IDP_DATABASE_URL": postgres_server,
            "IDP_REDIS_URL": redis_server,
            "IDP_REDIS_PREFIX": redis_prefix,
            "IDP_CONFIG": str(tmp_path / "idp.toml"),
            "NEXT_APP_SECRET": CLIENT_SECRET,
        }
        with (
            run_server(tmp_path, env, workers=2, port=idp_port) as idp,
            run_fastapi_example(tmp_path, idp.url) as api,
        ):
            email = f"stack-{uuid.uuid4().hex[:8]}@example.com"
            subject_token = better_auth.jwt(better_auth.sign_up(email, "correct horse battery", "Ada"))
            exchanged = httpx.post(
                f"{idp.url}/oauth2/token",
                data={"grant_type": GRANT, "subject_token": subject_token, "subject_token_type": JWT_TYPE},
                auth=("next-app", CLIENT_SECRET),
                timeout=10,
            )
            assert exchanged.status_code == 200, exchanged.text
            access_token = exchanged.json()["access_token"]
            profile = httpx.get(
                f"{api}/api/profile", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
            )
            assert profile.status_code == 200, profile.text
            me = httpx.get(
                f"{idp.url}/v1/me", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
            ).json()
            assert (profile.json()["user_id"], profile.json()["email"]) == (me["id"], email)
            refused = httpx.get(f"{api}/api/profile", headers={"Authorization": "Bearer forged"}, timeout=10)
            assert refused.status_code == 401
