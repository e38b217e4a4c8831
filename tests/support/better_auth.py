"""Run a real Better Auth server (npm ``better-auth``, JWT plugin) on a loopback port, for interop tests.

The Node project is ``tests/interop/better_auth`` (``server.mjs``, pinned ``package.json`` and lock
file); install it once with ``npm ci --prefix tests/interop/better_auth``. The server keeps
everything in memory: users, sessions and the JWT signing key live only as long as the process, so
``BetterAuthServer.restart()`` is a key rotation (new ``kid``, old key gone from the JWKS) that also
forgets every account and session. The port, hence the JWKS URL, stays the same across restarts.

Typical use::

    with run_better_auth(tmp_path, audience=idp.url) as better_auth:
        session = better_auth.sign_up("ada@example.com", "correct horse battery", "Ada")
        token = better_auth.jwt(session)  # a JWT signed by Better Auth, aud = idp.url
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import stop_process
from tests.support.server import free_port

__all__ = [
    "BETTER_AUTH_DIR",
    "BetterAuthError",
    "BetterAuthServer",
    "BetterAuthSession",
    "require_better_auth",
    "run_better_auth",
]

BETTER_AUTH_DIR = Path(__file__).resolve().parent.parent / "interop" / "better_auth"
SERVER_SCRIPT = BETTER_AUTH_DIR / "server.mjs"
PACKAGES = ("better-auth", "@better-auth/memory-adapter")
OIDC_PACKAGES = ("@better-auth/oauth-provider",)  # only with ``oidc_redirect_uri``
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 10
HTTP_TIMEOUT = 10.0
READY_LINE = re.compile(r"^ready (\d+)$", re.MULTILINE)
OIDC_CLIENT_LINE = re.compile(r"^oidc-client (\{.*\})$", re.MULTILINE)


class BetterAuthError(RuntimeError):
    """Better Auth answered a harness call with an unexpected status (``body`` is its JSON or text)."""

    def __init__(self, what: str, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.body: Any
        try:
            self.body = response.json()
        except ValueError:
            self.body = response.text
        super().__init__(f"Better Auth {what} failed: HTTP {self.status_code} {self.body!r}")


@dataclass(frozen=True)
class BetterAuthSession:
    """A signed-in Better Auth user: the session cookie(s) set by sign-up or sign-in, and who it is."""

    user_id: str
    email: str
    session_token: str  # the raw session token from the response body (the cookie holds it signed)
    cookies: httpx.Cookies
    user: dict[str, Any]


@dataclass
class BetterAuthServer:
    """A running ``node server.mjs``; ``url`` is its base URL (the Better Auth ``baseURL``)."""

    url: str
    issuer: str
    audience: str | list[str]
    alg: str
    expiration: str
    port: int
    log_path: Path
    _env: dict[str, str] = field(repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    oidc_client: dict[str, str] | None = None
    """With ``oidc_redirect_uri``: the OAuth provider's client, ``client_id`` and ``client_secret``."""

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/api/auth/jwks"

    @property
    def origin_headers(self) -> dict[str, str]:
        """Better Auth checks ``Origin`` against its trusted origins on cookie-bearing requests."""
        return {"Origin": self.url}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def sign_up(self, email: str, password: str, name: str) -> BetterAuthSession:
        """``POST /api/auth/sign-up/email``: create the account; Better Auth signs it in at once."""
        return self._session(
            "sign-up", "/api/auth/sign-up/email", {"email": email, "password": password, "name": name}
        )

    def sign_in(self, email: str, password: str) -> BetterAuthSession:
        """``POST /api/auth/sign-in/email``: a new session for an existing account."""
        return self._session("sign-in", "/api/auth/sign-in/email", {"email": email, "password": password})

    def jwt(self, session: BetterAuthSession) -> str:
        """``GET /api/auth/token`` with the session cookie: the JWT Better Auth signs for that session."""
        with self._client(session.cookies) as client:
            response = client.get("/api/auth/token")
        if response.status_code != 200:
            raise BetterAuthError("GET /api/auth/token", response)
        token = response.json()["token"]
        assert isinstance(token, str)
        return token

    def jwks(self) -> dict[str, Any]:
        """The published JWKS (``GET /api/auth/jwks``)."""
        response = httpx.get(self.jwks_url, timeout=HTTP_TIMEOUT)
        if response.status_code != 200:
            raise BetterAuthError("GET /api/auth/jwks", response)
        document = response.json()
        assert isinstance(document, dict)
        return document

    def kids(self) -> set[str]:
        """The ``kid`` of every key in the JWKS."""
        return {str(key["kid"]) for key in self.jwks()["keys"]}

    def restart(self) -> None:
        """Stop and start again on the same port: a new signing key, and no accounts or sessions left."""
        self.stop()
        self.start()

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("Better Auth server is already running")
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [require_better_auth(oidc="BA_OIDC_REDIRECT_URI" in self._env), str(SERVER_SCRIPT)],
                cwd=BETTER_AUTH_DIR,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready(self._process, log_offset)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        stop_process(process, STOP_TIMEOUT_SECONDS)

    def _session(self, what: str, path: str, body: dict[str, str]) -> BetterAuthSession:
        with self._client() as client:
            response = client.post(path, json=body)
            if response.status_code != 200:
                raise BetterAuthError(what, response)
            cookies = httpx.Cookies(client.cookies)
        payload = response.json()
        user = payload["user"]
        return BetterAuthSession(
            user_id=user["id"],
            email=user["email"],
            session_token=payload["token"],
            cookies=cookies,
            user=user,
        )

    def _client(self, cookies: httpx.Cookies | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers=self.origin_headers, cookies=cookies, timeout=HTTP_TIMEOUT
        )

    def _wait_ready(self, process: subprocess.Popen[bytes], log_offset: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as log:
                log.seek(log_offset)
                output = log.read().decode(errors="replace")
            match = READY_LINE.search(output)
            if match:
                if int(match.group(1)) != self.port:
                    raise RuntimeError(f"Better Auth listens on {match.group(1)}, not {self.port}:\n{output}")
                if client := OIDC_CLIENT_LINE.search(output):
                    self.oidc_client = json.loads(client.group(1))
                return
            if process.poll() is not None:
                raise RuntimeError(f"Better Auth server exited with {process.returncode}:\n{output}")
            time.sleep(0.05)
        raise RuntimeError(
            f"Better Auth server did not become ready in {START_TIMEOUT_SECONDS}s:\n{self.log()}"
        )


def require_better_auth(*, oidc: bool = False) -> str:
    """The ``node`` executable, with the pinned Better Auth packages installed (with ``oidc``, the
    OAuth provider's too); fail (never skip)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is required for the Better Auth interop tests: install node (>= 20) on PATH")
    pinned = json.loads((BETTER_AUTH_DIR / "package.json").read_text())["dependencies"]
    for package in (*PACKAGES, *OIDC_PACKAGES) if oidc else PACKAGES:
        manifest = BETTER_AUTH_DIR / "node_modules" / package / "package.json"
        installed = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
        if installed != pinned[package]:
            state = (
                "is not installed"
                if installed is None
                else f"is {installed}, not the pinned {pinned[package]}"
            )
            pytest.fail(
                f"{package} {state} in {BETTER_AUTH_DIR / 'node_modules'}: "
                "run `npm ci --prefix tests/interop/better_auth` (from the repository root) first"
            )
    return node


@contextlib.contextmanager
def run_better_auth(
    workdir: Path,
    *,
    audience: str | Sequence[str],
    alg: str = "EdDSA",
    expiration: str = "15m",
    port: int | None = None,
    issuer: str | None = None,
    oidc_redirect_uri: str | None = None,
) -> Iterator[BetterAuthServer]:
    """Start Better Auth on ``127.0.0.1`` (log in ``workdir``), wait until it listens, stop it at the end.

    Its JWTs carry ``aud`` = ``audience`` (a list gives an array ``aud``), ``iss`` = ``issuer``
    (default: its own base URL), are signed with ``alg`` (EdDSA, RS256, PS256, ES256, ES512) and
    live ``expiration`` (a jose time span such as ``"15m"`` or ``"2s"``). With
    ``oidc_redirect_uri`` it also runs Better Auth's OAuth/OIDC provider
    (``@better-auth/oauth-provider``) with one confidential client for that URI, whose
    credentials are in ``server.oidc_client``.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    audience_value: str | list[str] = audience if isinstance(audience, str) else list(audience)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BA_", "BETTER_AUTH_"))}
    env.update(
        {
            "NODE_ENV": "test",  # never "production": that turns the rate limiter on
            "BA_PORT": str(port),
            "BA_BASE_URL": url,
            "BA_SECRET": secrets.token_hex(32),
            "BA_JWT_ALG": alg,
            "BA_JWT_AUDIENCE": audience if isinstance(audience, str) else json.dumps(audience_value),
            "BA_JWT_ISSUER": issuer or url,
            "BA_JWT_EXPIRATION": expiration,
        }
    )
    if oidc_redirect_uri:
        env["BA_OIDC_REDIRECT_URI"] = oidc_redirect_uri
    server = BetterAuthServer(
        url=url,
        issuer=issuer or url,
        audience=audience_value,
        alg=alg,
        expiration=expiration,
        port=port,
        log_path=workdir / f"better-auth-{port}.log",
        _env=env,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
