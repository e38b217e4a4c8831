"""Run every credential flow against a real server process and prove that no secret it handled
reaches its logs: passwords, access and refresh tokens, client secrets, the external JWT, private
key material, full email addresses."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from tests.support.better_auth import run_better_auth
from tests.support.server import free_port, run_server

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def test_no_secret_in_any_log_line(tmp_path: Path) -> None:
    """The log has the audit events of the flow, and none of the secrets used in it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client_secret = "idpcs_" + uuid.uuid4().hex * 2
    email = f"Secret.Person.{uuid.uuid4().hex[:6]}@example.com"
    password = "my very private pass phrase"
    secrets: list[str] = [client_secret, email, email.lower(), password, "wrong " + password]
    with run_better_auth(tmp_path, audience=url) as better_auth:
        (tmp_path / "idp.toml").write_text(
            f'[[trusted_issuers]]\nissuer = "{better_auth.issuer}"\njwks_uri = "{better_auth.jwks_url}"\n'
            f'audiences = ["{url}"]\nclients = ["web"]\n\n'
            '[[clients]]\nid = "web"\nsecret_env = "WEB_SECRET"\n'
        )
        env = {"IDP_CONFIG": str(tmp_path / "idp.toml"), "WEB_SECRET": client_secret}
        with (
            run_server(tmp_path, env, port=port) as server,
            httpx.Client(base_url=server.url, timeout=10) as http,
        ):
            signup = http.post("/v1/signup", json={"email": email, "password": password}).json()
            http.post("/v1/login", json={"email": email, "password": "wrong " + password})
            login = http.post("/v1/login", json={"email": email, "password": password}).json()
            refreshed = http.post(
                "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}
            ).json()
            http.post(
                "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}
            )
            http.post(
                "/oauth2/introspect", data={"token": refreshed["access_token"]}, auth=("web", client_secret)
            )
            http.post("/oauth2/introspect", data={"token": "x"}, auth=("web", client_secret + "nope"))
            http.post("/v1/password", json={"current_password": password, "new_password": password + " 2"},
                      headers={"Authorization": f"Bearer {refreshed['access_token']}"})  # fmt: skip
            ba_email = f"ba-{uuid.uuid4().hex[:6]}@example.com"
            subject_token = better_auth.jwt(better_auth.sign_up(ba_email, password, "BA User"))
            exchanged = http.post(
                "/oauth2/token",
                data={"grant_type": GRANT, "subject_token": subject_token, "subject_token_type": JWT_TYPE},
                auth=("web", client_secret),
            ).json()
            http.post(
                "/oauth2/revoke", data={"token": exchanged["refresh_token"]}, auth=("web", client_secret)
            )
            http.post("/v1/logout", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
            secrets += [ba_email, subject_token, password + " 2"]
            for tokens in (signup["tokens"], login, refreshed, exchanged):
                secrets += [tokens["access_token"], tokens["refresh_token"]]
            log = server.log()
    for key_file in (tmp_path / "keys").glob("*.json"):
        secrets.append(json.loads(key_file.read_text())["jwk"]["d"])
    for event in (
        '"event":"signup"',
        '"event":"login"',
        '"event":"refresh"',
        '"event":"exchange"',
        '"event":"revoke"',
    ):
        assert event in log, f"the log records {event}"
    for secret in secrets:
        assert secret not in log, f"a secret ({len(secret)} chars) appears in the log"
        assert secret[6:40] not in log, "not even a fragment of it"
