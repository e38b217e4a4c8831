"""A real browser through the Next.js reference app (``examples/nextjs-app``), all on loopback.

Processes: the Next.js app (``next build`` then ``next start``; Better Auth inside it, whose JWT
plugin publishes ``/api/auth/jwks``), the IdP (``idp serve``, SQLite, access tokens living
``ACCESS_TOKEN_TTL`` seconds) trusting that Better Auth as an issuer, and the FastAPI example API.
Debian's chromium, driven by playwright-core (``tests/e2e/browser.mjs``), signs up, sees the
profile the API returned, waits past the access token's lifetime and reloads in two tabs at once
(the app refreshes server-side), signs out (the refresh token is revoked) and is then refused.
A second test takes the other path: "Sign in with idp" (Better Auth's genericOAuth plugin, our
IdP as its OpenID Connect provider, ``tests/e2e/oidc.mjs``) and the API's answer for our user.

Needs ``/usr/bin/chromium`` (Debian's ``chromium`` package; set ``E2E_CHROMIUM`` for another path)
and ``npm ci`` in ``examples/nextjs-app`` and ``tests/e2e``; anything missing fails, never skips.
Screenshots land in ``<tmp_path>/screenshots``. The profile page is also saved as
``examples/nextjs-app/docs-screenshot.png`` (the README's picture) when that file is missing or
``E2E_DOCS_SCREENSHOT=1`` is set, so that ordinary runs leave the working tree alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.support.cli import run_idp
from tests.support.processes import stop_process
from tests.support.server import free_port, run_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
APP_DIR = ROOT / "examples" / "nextjs-app"
API_DIR = ROOT / "examples" / "fastapi-api"
DOCS_SCREENSHOT = APP_DIR / "docs-screenshot.png"
CLIENT_ID = "web"
CLIENT_SECRET = "web-client-secret-" + "x" * 32
ACCESS_TOKEN_TTL = 5  # seconds: short, so the browser flow outlives one access token
BUILD_TIMEOUT = 120
START_TIMEOUT = 30
BROWSER_TIMEOUT = 90


def require_tools() -> tuple[str, str]:
    """``node`` and chromium, and the pinned Node packages installed; fail with the fix otherwise."""
    chromium = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
    if not (Path(chromium).is_file() and os.access(chromium, os.X_OK)):
        pytest.fail(
            f"chromium not found at {chromium}: install Debian's package "
            "(`apt-get install -y chromium`) or set E2E_CHROMIUM; never `playwright install`"
        )
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js (>= 20.9) is required on PATH for the browser end-to-end test")
    for project, package in ((APP_DIR, "next"), (APP_DIR, "better-auth"), (E2E_DIR, "playwright-core")):
        pinned = json.loads((project / "package.json").read_text())["dependencies"][package]
        manifest = project / "node_modules" / package / "package.json"
        installed = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
        if installed != pinned:
            pytest.fail(
                f"{package} {pinned} is not installed in {project / 'node_modules'} "
                f"(found {installed}): run `npm ci --prefix {project.relative_to(ROOT)}` first"
            )
    return node, chromium


@contextlib.contextmanager
def process(
    name: str, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], workdir: Path, ready_url: str
) -> Iterator[Path]:
    """Run ``argv`` (output in ``workdir/<name>.log``) until ``ready_url`` answers below 500."""
    log_path = workdir / f"{name}.log"
    log: IO[bytes] = log_path.open("wb")
    child = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if child.poll() is not None:
                pytest.fail(f"{name} exited with {child.returncode}:\n{log_path.read_text(errors='replace')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=2).status_code < 500:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"{name} not ready in {START_TIMEOUT}s:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        yield log_path
    finally:
        stop_process(child)
        log.close()


def base_env(prefixes: tuple[str, ...] = ("IDP_", "BETTER_AUTH_", "API_", "NEXT_")) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["NEXT_TELEMETRY_DISABLED"] = "1"
    return env


def build_app(node: str, workdir: Path) -> None:
    """``next build`` (a few seconds with Turbopack); the pages read their settings at request time."""
    result = subprocess.run(
        [node, "node_modules/next/dist/bin/next", "build"],
        cwd=APP_DIR,
        env={**base_env(), "NODE_ENV": "production"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    (workdir / "next-build.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"next build failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def built_app(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """``node`` and chromium, after one ``next build`` shared by this module's browser tests."""
    node, chromium = require_tools()
    build_app(node, tmp_path_factory.mktemp("next-build"))
    return node, chromium


def run_browser(node: str, chromium: str, app_url: str, workdir: Path, email: str) -> list[dict[str, Any]]:
    """Run ``browser.mjs``; return its step reports (one JSON object per line)."""
    update_docs = not DOCS_SCREENSHOT.exists() or os.environ.get("E2E_DOCS_SCREENSHOT") == "1"
    env = {
        **base_env(),
        "APP_URL": app_url,
        "SHOTS_DIR": str(workdir / "screenshots"),
        "DOCS_SHOT": str(DOCS_SCREENSHOT) if update_docs else "",
        "EMAIL": email,
        "PASSWORD": "correct horse battery staple",
        "TTL_WAIT_MS": str((ACCESS_TOKEN_TTL + 1) * 1000),
        "CHROMIUM": chromium,
        "USER_DATA_DIR": str(workdir / "chromium-profile"),
    }
    result = subprocess.run(
        [node, str(E2E_DIR / "browser.mjs")],
        cwd=E2E_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        check=False,
    )
    (workdir / "browser.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (
        f"browser flow failed (screenshots in {workdir / 'screenshots'}):\n{result.stdout}\n{result.stderr}"
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def write_trust_file(path: Path, next_url: str, idp_url: str) -> None:
    path.write_text(
        f"""
[[trusted_issuers]]
issuer = "{next_url}"
jwks_uri = "{next_url}/api/auth/jwks"
audiences = ["{idp_url}"]
algorithms = ["EdDSA"]
clients = ["{CLIENT_ID}"]

[[clients]]
id = "{CLIENT_ID}"
secret_env = "WEB_CLIENT_SECRET"
"""
    )


def test_sign_up_profile_refresh_sign_out(tmp_path: Path, built_app: tuple[str, str]) -> None:
    """Sign up → API profile → refresh past the TTL (two tabs) → sign out → refused → sign in again."""
    node, chromium = built_app
    next_port, idp_port, api_port = free_port(), free_port(), free_port()
    next_url, idp_url, api_url = (f"http://127.0.0.1:{p}" for p in (next_port, idp_port, api_port))
    write_trust_file(tmp_path / "idp.toml", next_url, idp_url)
    next_env = {
        **base_env(),
        "BETTER_AUTH_URL": next_url,
        "BETTER_AUTH_SECRET": secrets.token_hex(32),
        "IDP_URL": idp_url,
        "IDP_CLIENT_ID": CLIENT_ID,
        "IDP_CLIENT_SECRET": CLIENT_SECRET,
        "API_URL": api_url,
    }
    api_env = {**base_env(), "IDP_ISSUER": idp_url, "IDP_AUDIENCE": idp_url}
    idp_env = {
        "IDP_CONFIG": str(tmp_path / "idp.toml"),
        "IDP_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL),
        "WEB_CLIENT_SECRET": CLIENT_SECRET,
    }
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    with (
        process(
            "next",
            [node, "node_modules/next/dist/bin/next", "start", "-H", "127.0.0.1", "-p", str(next_port)],
            cwd=APP_DIR,
            env=next_env,
            workdir=tmp_path,
            ready_url=f"{next_url}/api/auth/jwks",
        ) as next_log,
        run_server(tmp_path, idp_env, port=idp_port),
        process(
            "fastapi",
            [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(api_port)],
            cwd=API_DIR,
            env=api_env,
            workdir=tmp_path,
            ready_url=f"{api_url}/health",
        ),
    ):
        steps = {step.pop("step"): step for step in run_browser(node, chromium, next_url, tmp_path, email)}
        app_log = next_log.read_text(errors="replace")

    cookies = steps["profile"].pop("cookies")
    # Only Better Auth's session cookies reach the browser (our tokens stay on the server), and
    # they are httpOnly, SameSite=Lax, and not Secure over plain http.
    assert cookies, "no session cookie"
    for cookie in cookies:
        assert cookie["name"].startswith("better-auth."), cookie
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Lax", False), cookie
    first = steps["profile"]
    assert first["email"] == email
    assert first["user_id"]
    assert steps["refreshed"]["tabs"] == [first, first], "the profile changed after the refresh"
    assert steps["signed-in-again"] == first
    assert app_log.count("idp: exchanging") == 2, app_log  # sign-up, then sign-in again
    # Both tabs needed a refresh at once: they shared one (the browser saw no error either way).
    assert app_log.count("idp: refreshing") == 1, f"expected exactly one refresh:\n{app_log}"
    assert "idp: revoked the refresh token" in app_log, app_log
    assert steps["refused"]["url"] == f"{next_url}/sign-in"
    assert CLIENT_SECRET not in app_log
    screenshots = sorted(p.name for p in (tmp_path / "screenshots").glob("*.png"))
    assert len(screenshots) == 7, screenshots


def test_sign_in_with_idp(tmp_path: Path, built_app: tuple[str, str]) -> None:
    """The app's "Sign in with idp" button (genericOAuth: discovery, code + PKCE, ID token checked)
    signs a user of ours in on our hosted page and back into the app, whose profile shows the
    API's answer for that very user (our ``sub``), from the access token our IdP issued with the
    code: no token exchange happens."""
    node, chromium = built_app
    next_port, idp_port, api_port = free_port(), free_port(), free_port()
    next_url, idp_url, api_url = (f"http://127.0.0.1:{p}" for p in (next_port, idp_port, api_port))
    # Short access tokens: Better Auth refreshes ours (offline_access) on every profile load.
    idp_env = {"IDP_KEYS_DIR": str(tmp_path / "keys"), "IDP_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL)}
    redirect_uri = f"{next_url}/api/auth/callback/idp"  # Better Auth 1.7's genericOAuth callback
    added = run_idp(
        tmp_path,
        "clients",
        "add",
        "Next.js app",
        "--id",
        "nextjs-app",
        "--redirect-uri",
        redirect_uri,
        "--post-logout-redirect-uri",
        f"{next_url}/sign-in",
        env=idp_env,
    )
    assert added.returncode == 0, added.stderr
    oidc_secret = dict(line.split(": ", 1) for line in added.stdout.strip().splitlines())["client_secret"]
    next_env = {
        **base_env(),
        "BETTER_AUTH_URL": next_url,
        "BETTER_AUTH_SECRET": secrets.token_hex(32),
        "IDP_URL": idp_url,
        "IDP_CLIENT_ID": CLIENT_ID,
        "IDP_CLIENT_SECRET": CLIENT_SECRET,
        "IDP_OIDC_CLIENT_ID": "nextjs-app",
        "IDP_OIDC_CLIENT_SECRET": oidc_secret,
        "API_URL": api_url,
    }
    api_env = {**base_env(), "IDP_ISSUER": idp_url, "IDP_AUDIENCE": idp_url}
    email, password = f"oidc-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery staple"
    with (
        run_server(tmp_path, idp_env, port=idp_port) as idp,
        process(
            "next",
            [node, "node_modules/next/dist/bin/next", "start", "-H", "127.0.0.1", "-p", str(next_port)],
            cwd=APP_DIR,
            env=next_env,
            workdir=tmp_path,
            ready_url=f"{next_url}/api/auth/jwks",
        ) as next_log,
        process(
            "fastapi",
            [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(api_port)],
            cwd=API_DIR,
            env=api_env,
            workdir=tmp_path,
            ready_url=f"{api_url}/health",
        ),
    ):
        signup = httpx.post(
            f"{idp.url}/v1/signup", json={"email": email, "password": password, "name": "Ada"}
        )
        assert signup.status_code == 201, signup.text
        user_id = signup.json()["user"]["id"]
        env = {
            **base_env(),
            "APP_URL": next_url,
            "IDP_URL": idp_url,
            "SHOTS_DIR": str(tmp_path / "screenshots"),
            "EMAIL": email,
            "PASSWORD": password,
            "CHROMIUM": chromium,
            "USER_DATA_DIR": str(tmp_path / "chromium-profile"),
        }
        result = subprocess.run(
            [node, str(E2E_DIR / "oidc.mjs")],
            cwd=E2E_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=BROWSER_TIMEOUT,
            check=False,
        )
        (tmp_path / "browser.log").write_text(result.stdout + result.stderr)
        app_log = next_log.read_text(errors="replace")
        idp_log = idp.log()
        assert result.returncode == 0, (
            f"browser failed (screenshots in {tmp_path}):\n{result.stdout}\n{result.stderr}\n{app_log}"
        )
    steps = {step.pop("step"): step for step in map(json.loads, result.stdout.splitlines()) if step}
    query = steps["authorize"]["query"]
    assert steps["authorize"]["path"] == "/oauth2/authorize"
    assert (query["client_id"], query["redirect_uri"], query["code_challenge_method"]) == (
        "nextjs-app",
        redirect_uri,
        "S256",
    )
    assert set(query["scope"].split()) == {"openid", "email", "profile", "offline_access"}
    assert query["state"]
    assert query["nonce"]
    profile = steps["profile"]
    assert profile["email"] == email
    assert profile["user_id"] == user_id, (profile, user_id)
    assert profile["path"] == "through idp (OpenID Connect)"
    assert steps["signed-out"]["url"] == f"{next_url}/sign-in"
    assert steps["signed-out"]["logout"] == {  # RP-initiated logout at our end_session_endpoint
        "params": ["client_id", "id_token_hint", "post_logout_redirect_uri"],
        "post_logout_redirect_uri": f"{next_url}/sign-in",
    }
    assert steps["idp-signed-out"]["url"] == "/oauth2/authorize"
    refreshes = [
        line for line in idp_log.splitlines() if '"event":"refresh"' in line and "nextjs-app" in line
    ]
    assert refreshes, "Better Auth refreshed our access token with the offline_access refresh token"
    assert '"event":"logout"' in idp_log
    assert "idp: exchanging" not in app_log, app_log
    assert "idp: no ID token" not in app_log, app_log
    assert oidc_secret not in app_log


def test_pinned_versions() -> None:
    """The app pins exact versions (lock file committed), and the same Better Auth as the interop tests."""
    manifest = json.loads((APP_DIR / "package.json").read_text())["dependencies"]
    lock = json.loads((APP_DIR / "package-lock.json").read_text())["packages"]
    for package in ("next", "react", "react-dom", "better-auth", "@better-auth/memory-adapter"):
        assert manifest[package][0].isdigit(), f"{package} is not pinned: {manifest[package]}"
        assert lock[f"node_modules/{package}"]["version"] == manifest[package], package
    interop = ROOT / "tests" / "interop" / "better_auth" / "package.json"
    assert json.loads(interop.read_text())["dependencies"]["better-auth"] == manifest["better-auth"]
    e2e = json.loads((E2E_DIR / "package.json").read_text())["dependencies"]["playwright-core"]
    assert (
        json.loads((E2E_DIR / "package-lock.json").read_text())["packages"]["node_modules/playwright-core"][
            "version"
        ]
        == e2e
    )
