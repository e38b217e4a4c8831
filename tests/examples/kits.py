"""Shared pieces of the verification-kit tests: a live IdP, the kits as real processes, a
counting JWKS proxy between them, and a forge for hostile tokens.

Each kit runs exactly as its README says (``uvicorn app:app`` in ``examples/fastapi-api``,
``node server.mjs`` in ``examples/node-api``), configured only through its environment. Its
``IDP_JWKS_URL`` points at a :class:`JWKSProxy` that forwards to the IdP and records every fetch,
so the tests see how often a kit asks the IdP for keys, and can make the IdP look down.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key
from joserfc.jws import JWSRegistry

from service.keys.files import load_keys
from tests.support.processes import stop_process
from tests.support.server import CHEAP_ARGON2, RunningServer, free_port, run_server

__all__ = [
    "FASTAPI_DIR",
    "KITS",
    "NODE_DIR",
    "Account",
    "Forge",
    "IdP",
    "JWKSProxy",
    "RunningKit",
    "assert_invalid_token",
    "header_of",
    "require_node_kit",
    "run_kit",
    "start_idp",
    "start_refused",
    "tamper",
]

ROOT = Path(__file__).resolve().parents[2]
FASTAPI_DIR = ROOT / "examples" / "fastapi-api"
NODE_DIR = ROOT / "examples" / "node-api"
KITS = ["fastapi", "node"]
PASSWORD = "kit horse battery staple 42"
HTTP_TIMEOUT = 10.0
KIT_START_TIMEOUT = 20.0
CLI_TIMEOUT = 30.0

Key = OKPKey | ECKey | RSAKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_json(value: object) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


# --- the IdP ---------------------------------------------------------------------------------


@dataclass
class Account:
    id: str
    email: str
    token: str  # an access token from signup (or login)


@dataclass
class IdP:
    """A running ``idp serve`` with its working directory and ``IDP_*`` environment."""

    server: RunningServer
    workdir: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def cli(self, *args: str) -> str:
        """``python -m service ARGS`` on this IdP's folder and database; returns stdout."""
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
        child_env.update(CHEAP_ARGON2)
        child_env.update(self.env)
        completed = subprocess.run(
            [sys.executable, "-m", "service", *args],
            cwd=self.workdir,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        assert completed.returncode == 0, f"idp {' '.join(args)} failed: {completed.stdout}{completed.stderr}"
        return completed.stdout

    def signup(self) -> Account:
        email = f"kit-{uuid.uuid4().hex[:12]}@example.com"
        response = httpx.post(
            f"{self.url}/v1/signup", json={"email": email, "password": PASSWORD}, timeout=HTTP_TIMEOUT
        )
        assert response.status_code == 201, f"signup failed: {response.status_code} {response.text}"
        body = response.json()
        return Account(id=body["user"]["id"], email=email, token=body["tokens"]["access_token"])

    def login(self, email: str) -> str:
        response = httpx.post(
            f"{self.url}/v1/login", json={"email": email, "password": PASSWORD}, timeout=HTTP_TIMEOUT
        )
        assert response.status_code == 200, f"login failed: {response.status_code} {response.text}"
        token = response.json()["access_token"]
        assert isinstance(token, str)
        return token

    def rotate_now(self) -> str:
        """``keys rotate --delay 0 --force``: a new key signs from the server's next reload."""
        output = self.cli("keys", "rotate", "--delay", "0", "--force")
        match = re.search(r"published \S+ key (\S+);", output)
        assert match, f"unexpected keys rotate output: {output!r}"
        return match.group(1)

    def signing_key(self) -> tuple[str, str, Key]:
        """(kid, alg, private key) of the key signing access tokens now, read from the keys folder
        (the folder also holds the RS256 key that signs ID tokens)."""
        now = time.time()
        alg = self.env.get("IDP_SIGNING_ALG", "EdDSA")
        for stored in reversed(load_keys(self.workdir / "keys")):
            if stored.alg == alg and stored.is_signing(now):
                key = import_key(dict(stored.jwk))
                assert isinstance(key, OKPKey | ECKey | RSAKey)
                return stored.kid, stored.alg, key
        raise AssertionError("no signing key in the IdP's keys folder")


@contextlib.contextmanager
def start_idp(workdir: Path, **env: str) -> Iterator[IdP]:
    """``idp serve`` in ``workdir`` (SQLite file and generated keys land there), ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    idp_env = {"IDP_KEYS_DIR": str(workdir / "keys"), **env}
    with run_server(workdir, idp_env) as server:
        yield IdP(server, workdir, idp_env)


def header_of(token: str) -> dict[str, Any]:
    """The JOSE header, unverified (only to learn the ``kid``)."""
    segment = token.split(".", 1)[0]
    header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert isinstance(header, dict)
    return header


# --- hostile tokens --------------------------------------------------------------------------


@dataclass
class Forge:
    """Tokens signed with the IdP's own private key (so only the property under test is wrong),
    or with keys of our own."""

    idp: IdP
    account: Account
    kid: str = field(init=False)
    alg: str = field(init=False)
    key: Key = field(init=False)

    def __post_init__(self) -> None:
        self.kid, self.alg, self.key = self.idp.signing_key()

    def claims(self, **changes: object) -> dict[str, object]:
        """Claims like the IdP's; a change to ``None`` removes the claim."""
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self.idp.url,
            "sub": self.account.id,
            "aud": self.idp.url,
            "exp": now + 300,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "sid": secrets.token_urlsafe(16),
            "email": self.account.email,
            "roles": ["forged-but-valid"],
        }
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def header(self, **changes: object) -> dict[str, object]:
        header: dict[str, object] = {"typ": "at+jwt", "alg": self.alg, "kid": self.kid}
        header.update(changes)
        return {name: value for name, value in header.items() if value is not None}

    def sign(
        self,
        claims: Mapping[str, object] | None = None,
        header: Mapping[str, object] | None = None,
        key: Key | None = None,
    ) -> str:
        """A compact JWS of ``claims`` (default: valid ones) under ``header`` (default: the IdP's)
        signed by ``key`` (default: the IdP's), built by hand so that no header is refused here."""
        protected = header if header is not None else self.header()
        signing_input = f"{_b64_json(protected)}.{_b64_json(claims if claims is not None else self.claims())}"
        algorithm = JWSRegistry.algorithms[str(protected["alg"])]
        return f"{signing_input}.{_b64(algorithm.sign(signing_input.encode(), key or self.key))}"

    def unsigned(self) -> str:
        """``alg: none`` with valid claims and the IdP's kid (RFC 7519 §6)."""
        return f"{_b64_json(self.header(alg='none'))}.{_b64_json(self.claims())}."

    def hs256_with_public_key(self) -> str:
        """The algorithm-confusion attack: HS256 keyed with the IdP's public key (PEM)."""
        secret = self.key.as_pem(private=False)
        signing_input = f"{_b64_json(self.header(alg='HS256'))}.{_b64_json(self.claims())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    @staticmethod
    def foreign_ed25519() -> OKPKey:
        return OKPKey.generate_key("Ed25519", auto_kid=True)

    def foreign_unknown_kid(self) -> str:
        """Signed by a key of ours, named by a kid the IdP never published."""
        key = self.foreign_ed25519()
        return self.sign(header=self.header(alg="EdDSA", kid=key.kid), key=key)


def tamper(token: str) -> str:
    """The same token with another ``sub`` and the original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = str(uuid.uuid4())
    return f"{header}.{_b64_json(claims)}.{signature}"


# --- the JWKS proxy --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetch:
    if_none_match: str | None
    status: int


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: JWKSProxy


class _ProxyHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        proxy = cast(_ProxyServer, self.server).proxy
        headers: dict[str, str] = {}
        if proxy.failing:
            status, body = 503, b'{"error":"temporarily_unavailable"}'
        else:
            forwarded = {
                name: value
                for name in ("Accept", "If-None-Match")
                if (value := self.headers.get(name)) is not None
            }
            upstream = httpx.get(f"{proxy.upstream}{self.path}", headers=forwarded, timeout=HTTP_TIMEOUT)
            status, body = upstream.status_code, upstream.content
            for name in ("Content-Type", "Cache-Control", "ETag"):
                if name in upstream.headers:
                    headers[name] = upstream.headers[name]
        proxy.record(Fetch(self.headers.get("If-None-Match"), status))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class JWKSProxy:
    """Stands in for ``{idp}/.well-known/jwks.json``: forwards to the IdP and records each fetch;
    with ``failing = True`` it answers 503 as an IdP in trouble would."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.failing = False
        self._fetches: list[Fetch] = []
        self._lock = threading.Lock()
        self._server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    def record(self, fetch: Fetch) -> None:
        with self._lock:
            self._fetches.append(fetch)

    @property
    def fetches(self) -> list[Fetch]:
        with self._lock:
            return list(self._fetches)

    @property
    def count(self) -> int:
        return len(self.fetches)

    def __enter__(self) -> JWKSProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# --- the kits --------------------------------------------------------------------------------


def require_node_kit() -> str:
    """The ``node`` executable, with the kit's jose installed; fail (never skip) with the fix."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js (>= 20) is required for the node-api kit tests: put `node` on PATH")
    if not (NODE_DIR / "node_modules" / "jose" / "package.json").is_file():
        pytest.fail(
            f"jose is not installed in {NODE_DIR / 'node_modules'}: run "
            "`npm ci --prefix examples/node-api --no-audit --no-fund` (from the repository root) first"
        )
    return node


@dataclass
class RunningKit:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    proxy: JWKSProxy

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, authorization: str | None = None) -> httpx.Response:
        headers = {} if authorization is None else {"Authorization": authorization}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=HTTP_TIMEOUT)

    def profile(self, token: str) -> httpx.Response:
        """``GET /api/profile`` with ``Authorization: Bearer <token>``."""
        return self.get("/api/profile", f"Bearer {token}")


def kit_command(name: str, port: int) -> tuple[list[str], Path, dict[str, str]]:
    """How the kit's README runs it: (argv, working directory, extra environment)."""
    if name == "fastapi":
        argv = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)]
        return argv, FASTAPI_DIR, {"PYTHONDONTWRITEBYTECODE": "1"}
    if name == "node":
        return [require_node_kit(), "server.mjs"], NODE_DIR, {"HOST": "127.0.0.1", "PORT": str(port)}
    raise ValueError(f"unknown kit {name!r}")


def kit_env(idp_url: str, jwks_url: str, env: Mapping[str, str]) -> dict[str, str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    child_env.update({"IDP_ISSUER": idp_url, "IDP_JWKS_URL": jwks_url})
    child_env.update(env)
    return child_env


@contextlib.contextmanager
def run_kit(name: str, idp: IdP, logdir: Path, **env: str) -> Iterator[RunningKit]:
    """Start kit ``name`` for ``idp`` (issuer = the IdP, JWKS through a fresh proxy) and wait
    until its ``/health`` answers; ``env`` adds or overrides variables."""
    port = free_port()
    argv, cwd, extra = kit_command(name, port)
    log_path = logdir / f"kit-{name}-{port}.log"
    with JWKSProxy(idp.url) as proxy:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv, cwd=cwd, env={**kit_env(idp.url, proxy.url, env), **extra}, stdout=log, stderr=log
            )
        kit = RunningKit(name, f"http://127.0.0.1:{port}", process, log_path, proxy)
        try:
            _wait_healthy(kit)
            yield kit
        finally:
            stop_process(process)


def start_refused(name: str, idp: IdP, logdir: Path, **env: str) -> tuple[int | None, str]:
    """Start a kit expected to refuse its configuration: (exit code, output), or (None, output)
    if it came up healthy (or did not exit) instead."""
    port = free_port()
    argv, cwd, extra = kit_command(name, port)
    log_path = logdir / f"kit-{name}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**kit_env(idp.url, f"{idp.url}/.well-known/jwks.json", env), **extra},
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + KIT_START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        return process.poll(), log_path.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _wait_healthy(kit: RunningKit) -> None:
    deadline = time.monotonic() + KIT_START_TIMEOUT
    while time.monotonic() < deadline:
        if kit.process.poll() is not None:
            pytest.fail(f"the {kit.name} kit exited with {kit.process.returncode}:\n{kit.log()}")
        with contextlib.suppress(httpx.HTTPError):
            response = kit.get("/health")
            if response.status_code == 200:
                assert response.json() == {"status": "ok"}, response.text
                return
        time.sleep(0.05)
    pytest.fail(f"the {kit.name} kit did not answer /health in {KIT_START_TIMEOUT}s:\n{kit.log()}")


def assert_invalid_token(response: httpx.Response) -> None:
    """401, ``WWW-Authenticate: Bearer error="invalid_token"``, the JSON error body."""
    assert response.status_code == 401, f"{response.status_code} {response.text}"
    assert response.headers.get("www-authenticate") == 'Bearer error="invalid_token"'
    body = response.json()
    assert body["error"] == "invalid_token", body
    assert isinstance(body["error_description"], str), body
    assert body["error_description"], body
