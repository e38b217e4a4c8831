"""panva's openid-client (Node), a strict relying party nobody here wrote, against a real
``idp serve`` on loopback: discovery → authorize (an httpx browser posts the hosted forms) →
code → tokens with ID-token validation → userinfo → refresh → RP-initiated logout, after which
the session's refresh token is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.interop.helpers import NODE_DIR
from tests.support.cli import run_idp
from tests.support.oidc_browser import sign_in
from tests.support.server import run_server

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
CALLBACK = "http://127.0.0.1:9/cb"
AFTER_LOGOUT = "http://127.0.0.1:9/bye"


def read(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"rp.mjs ended early: {process.stderr.read() if process.stderr else ''}"
    message: dict[str, Any] = json.loads(line)
    assert "error" not in message, message
    return message


def write(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


async def test_openid_client_signs_in_refreshes_and_logs_out(tmp_path: Path) -> None:
    """Every step passes openid-client's own checks (it throws otherwise), the claims are the
    account's, and logout through the end-session URL ends the client's session."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "openid-client").is_dir():
        pytest.fail("Node.js and `npm ci --prefix tests/interop/node` are required for this test")
    env = {"IDP_KEYS_DIR": str(tmp_path / "keys")}
    added = run_idp(
        tmp_path,
        "clients",
        "add",
        "Node RP",
        "--id",
        "node-rp",
        "--redirect-uri",
        CALLBACK,
        "--post-logout-redirect-uri",
        AFTER_LOGOUT,
        env=env,
    )
    assert added.returncode == 0, added.stderr
    secret = dict(line.split(": ", 1) for line in added.stdout.strip().splitlines())["client_secret"]
    with run_server(tmp_path, env) as server:
        async with httpx.AsyncClient(base_url=server.url) as browser:
            signup = {"email": "grace@example.com", "password": PASSWORD, "name": "Grace Hopper"}
            assert (await browser.post("/v1/signup", json=signup)).status_code == 201
            config = {
                "issuer": server.url,
                "clientId": "node-rp",
                "clientSecret": secret,
                "redirectUri": CALLBACK,
                "postLogoutRedirectUri": AFTER_LOGOUT,
            }
            process = subprocess.Popen(
                [node, str(NODE_DIR / "rp.mjs"), json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                authorize = read(process)["authorize"]
                final = await sign_in(browser, authorize, "grace@example.com", PASSWORD)
                assert final.status_code == 303, final.text
                write(process, final.headers["location"])
                result = read(process)
                claims, userinfo = result["tokens"]["claims"], result["tokens"]["userinfo"]
                assert (claims["iss"], claims["aud"], claims["email"]) == (
                    server.url,
                    "node-rp",
                    "grace@example.com",
                )
                assert (userinfo["sub"], userinfo["name"]) == (claims["sub"], "Grace Hopper")
                assert result["tokens"]["refreshRotated"] is True
                again = result["tokens"]["refreshedClaims"]  # a new ID token, validated by the RP
                assert again is not None
                same = ("iss", "sub", "aud", "azp", "auth_time", "sid")
                assert {name: again[name] for name in same} == {name: claims[name] for name in same}
                assert "nonce" not in again
                logout = await browser.get(result["endSession"])
                assert (logout.status_code, logout.headers["location"]) == (
                    303,
                    f"{AFTER_LOGOUT}?state=bye-state",
                )
                write(process, "logged-out")
                assert read(process) == {"refreshAfterLogout": "invalid_grant"}
            finally:
                process.kill()
                process.communicate()  # reaps it and closes the three pipes
