"""A passkey in a real browser: Debian's chromium with the DevTools protocol's virtual
authenticator (``WebAuthn.enable``, ``WebAuthn.addVirtualAuthenticator`` with a resident key and
user verification), driven by playwright-core (``tests/e2e/passkey.mjs``) against a real
``idp serve``: it registers a passkey, signs out, signs in passwordless on the hosted sign-in
page, and the ID token of the authorization code (verified with PyJWT against our JWKS)
carries the passkey's ``amr``.

Needs ``/usr/bin/chromium`` (or ``E2E_CHROMIUM``) and ``npm ci --prefix tests/e2e``; anything
missing fails, never skips. WebAuthn refuses IP addresses as RP ids, so the IdP's issuer is
``http://localhost:<port>``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.cli import run_idp
from tests.support.server import free_port, run_server

pytestmark = pytest.mark.slow

E2E_DIR = Path(__file__).resolve().parent
CALLBACK = "http://localhost:9/callback"


def _tools() -> tuple[str, str]:
    chromium = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
    if not (Path(chromium).is_file() and os.access(chromium, os.X_OK)):
        pytest.fail(f"chromium not found at {chromium}: install Debian's package or set E2E_CHROMIUM")
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js (>= 20) is required on PATH for the browser test")
    pinned = json.loads((E2E_DIR / "package.json").read_text())["dependencies"]["playwright-core"]
    manifest = E2E_DIR / "node_modules" / "playwright-core" / "package.json"
    if not manifest.is_file() or json.loads(manifest.read_text())["version"] != pinned:
        pytest.fail("playwright-core is not installed: run `npm ci --prefix tests/e2e` first")
    return node, chromium


def test_passkey_registered_and_used_passwordless_in_chromium(tmp_path: Path) -> None:
    """Register, sign out, sign in with the passkey alone: the code's ID token says amr
    [hwk, mfa] (the virtual authenticator is device-bound) and acr phr."""
    node, chromium = _tools()
    port = free_port()
    url = f"http://localhost:{port}"
    env = {"IDP_ISSUER": url}
    added = run_idp(
        tmp_path, "clients", "add", "Web", "--id", "web", "--redirect-uri", CALLBACK, "--first-party", env=env
    )
    assert added.returncode == 0, added.stderr
    client_secret = next(
        line.split(": ", 1)[1] for line in added.stdout.splitlines() if line.startswith("client_secret: ")
    )
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    with (
        run_server(tmp_path, env, port=port) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        signup = http.post(
            "/v1/signup", json={"email": "ada@example.com", "password": "correct horse battery"}
        )
        assert signup.status_code == 201, signup.text
        authorize = str(
            httpx.URL(
                f"{url}/oauth2/authorize",
                params={
                    "response_type": "code",
                    "client_id": "web",
                    "redirect_uri": CALLBACK,
                    "scope": "openid email",
                    "state": "st",
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                },
            )
        )
        run = subprocess.run(
            [node, str(E2E_DIR / "passkey.mjs")],
            env={
                **os.environ,
                "AUTHORIZE_URL": authorize,
                "CALLBACK": CALLBACK,
                "ACCESS_TOKEN": signup.json()["tokens"]["access_token"],
                "SHOTS_DIR": str(tmp_path / "screenshots"),
                "CHROMIUM": chromium,
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr + run.stdout + server.log()[-3000:]
        steps = {line["step"]: line for line in map(json.loads, run.stdout.splitlines())}
        assert steps["registered"]["resident"] == [True]
        assert steps["signed-in"]["sign_count"] >= 1
        tokens = http.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": steps["signed-in"]["code"],
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
            },
            auth=("web", client_secret),
        )
        assert tokens.status_code == 200, tokens.text
        id_token = tokens.json()["id_token"]
        jwks = jwt.PyJWKSet.from_dict(http.get("/.well-known/jwks.json").json())
        header = jwt.get_unverified_header(id_token)
        key = next(k for k in jwks.keys if k.key_id == header["kid"])
        claims = jwt.decode(id_token, key.key, algorithms=[header["alg"]], audience="web", issuer=url)
        assert (claims["amr"], claims["acr"]) == (["hwk", "mfa"], "phr")
        listed = http.get(
            "/v1/mfa/passkeys", headers={"Authorization": f"Bearer {tokens.json()['access_token']}"}
        )
        assert [p["name"] for p in listed.json()] == ["Virtual authenticator"]
