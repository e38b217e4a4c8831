"""authlib, a client library nobody here wrote, against a real ``idp serve`` on loopback: the
authorization code flow as a confidential client (PKCE S256, nonce, the ID token validated by
authlib's OpenID Connect claims rules), userinfo, refresh, and ``client_credentials``."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.cli import run_idp
from tests.support.oidc_browser import query, sign_in
from tests.support.server import run_server

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
CALLBACK = "http://127.0.0.1:9/callback"


def register(workdir: Path, env: dict[str, str], *args: str) -> dict[str, str]:
    """``idp clients add`` exactly as the README shows it; returns what it printed."""
    added = run_idp(workdir, "clients", "add", *args, env=env)
    assert added.returncode == 0, added.stderr
    return dict(line.split(": ", 1) for line in added.stdout.strip().splitlines())


async def test_authlib_code_flow_and_client_credentials(tmp_path: Path) -> None:
    """Discovery → authorization URL (authlib) → hosted sign-in and consent (an httpx browser) →
    code → tokens (authlib, client_secret_basic) → ID token: signature against the JWKS and
    iss/aud/azp/nonce/at_hash/exp/iat by authlib's CodeIDToken → userinfo → refresh; then a
    machine client's client_credentials token with exactly its scope."""
    env = {"IDP_KEYS_DIR": str(tmp_path / "keys")}
    rp = register(
        tmp_path, env, "Authlib RP", "--id", "rp", "--redirect-uri", CALLBACK, "--scope", "api:read"
    )
    worker = register(
        tmp_path, env, "Worker", "--id", "worker", "--grant", "client_credentials", "--scope", "jobs:run"
    )
    with run_server(tmp_path, env) as server:
        async with httpx.AsyncClient(base_url=server.url) as browser:
            signed_up = await browser.post(
                "/v1/signup", json={"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}
            )
            assert signed_up.status_code == 201
            metadata = (await browser.get("/.well-known/openid-configuration")).json()
            client = AsyncOAuth2Client(
                "rp",
                rp["client_secret"],
                scope="openid email profile offline_access api:read",
                redirect_uri=CALLBACK,
                code_challenge_method="S256",
            )
            verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
            url, state = client.create_authorization_url(
                metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
            )
            final = await sign_in(browser, url, "ada@example.com", PASSWORD)
            assert final.status_code == 303, final.text
            returned = query(final.headers["location"])
            assert (returned["state"], returned["iss"]) == (state, metadata["issuer"])
            token = await client.fetch_token(
                metadata["token_endpoint"],
                authorization_response=final.headers["location"],
                code_verifier=verifier,
            )
            assert {"access_token", "id_token", "refresh_token"} <= set(token)
            keys = KeySet.import_key_set((await browser.get(metadata["jwks_uri"])).json())
            decoded = jwt.decode(
                token["id_token"], keys, algorithms=metadata["id_token_signing_alg_values_supported"]
            )
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                options={"iss": {"essential": True, "value": metadata["issuer"]}},
                params={"nonce": nonce, "client_id": "rp", "access_token": token["access_token"]},
            )
            claims.validate(int(time.time()))
            assert (decoded.header["alg"], decoded.claims["email"]) == ("RS256", "ada@example.com")
            client.token = token
            userinfo = (await client.get(metadata["userinfo_endpoint"])).json()
            assert (userinfo["sub"], userinfo["email"], userinfo["name"]) == (
                decoded.claims["sub"],
                "ada@example.com",
                "Ada",
            )
            refreshed = await client.refresh_token(
                metadata["token_endpoint"], refresh_token=token["refresh_token"]
            )
            assert refreshed["refresh_token"] != token["refresh_token"]
            again = jwt.decode(
                refreshed["id_token"], keys, algorithms=metadata["id_token_signing_alg_values_supported"]
            )
            CodeIDToken(  # OpenID Connect Core §12.2: no nonce, at_hash of the new access token
                again.claims,
                again.header,
                options={"iss": {"essential": True, "value": metadata["issuer"]}},
                params={"client_id": "rp", "access_token": refreshed["access_token"]},
            ).validate(int(time.time()))
            same = ("sub", "aud", "azp", "auth_time", "sid")
            assert {name: again.claims[name] for name in same} == {
                name: decoded.claims[name] for name in same
            }
            assert "nonce" not in again.claims
            await client.aclose()

            machine = AsyncOAuth2Client("worker", worker["client_secret"], scope="jobs:run")
            issued = await machine.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
            await machine.aclose()
            assert (issued["scope"], "refresh_token" in issued) == ("jobs:run", False)
            access = jwt.decode(issued["access_token"], keys, algorithms=["EdDSA"])
            assert (access.claims["sub"], access.claims["client_id"]) == ("worker", "worker")
