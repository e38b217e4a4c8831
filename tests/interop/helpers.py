"""Shared pieces of the interop tests: a real server, accounts, and the two foreign verifiers.

The verifiers are libraries we did not write, used as a third-party API would use them: they
know only the JWKS URL, the issuer and the audience, and verify tokens offline (no call back to
the service per token).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import jwt
import pytest

from tests.support.server import CHEAP_ARGON2, RunningServer

__all__ = [
    "ALGS",
    "NODE_DIR",
    "PASSWORD",
    "NodeVerifier",
    "PyJWTVerifier",
    "VerifyResult",
    "jwks_max_age",
    "login",
    "require_node",
    "rotate_keys",
    "server_env",
    "signup",
    "tamper",
    "unverified_header",
]

ALGS = ["EdDSA", "RS256", "ES256"]
# The JWK shape each algorithm must be published with (RFC 7518 §6, RFC 8037).
KEY_SHAPES: dict[str, dict[str, str]] = {
    "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
    "RS256": {"kty": "RSA"},
    "ES256": {"kty": "EC", "crv": "P-256"},
}
NODE_DIR = Path(__file__).parent / "node"
NODE_SCRIPT = NODE_DIR / "verify.mjs"
PASSWORD = "interop horse battery staple 42"
HTTP_TIMEOUT = 10.0
NODE_REPLY_TIMEOUT = 15.0

# The JSON the Node verifier prints for each token: {"ok": true, "header": ..., "payload": ...}
# or {"ok": false, "code": ..., "error": ...}; PyJWTVerifier returns the same shape.
VerifyResult = dict[str, Any]


def server_env(workdir: Path, alg: str, **extra: str) -> dict[str, str]:
    """``IDP_*`` for a server in ``workdir`` signing with ``alg``; keys folder given explicitly."""
    return {"IDP_SIGNING_ALG": alg, "IDP_KEYS_DIR": str(workdir / "keys"), **extra}


def signup(server: RunningServer, email: str | None = None) -> tuple[str, str]:
    """Create an account; return its email and the access token the signup issued."""
    email = email or f"interop-{uuid.uuid4().hex[:12]}@example.com"
    response = httpx.post(
        f"{server.url}/v1/signup", json={"email": email, "password": PASSWORD}, timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 201, f"signup failed: {response.status_code} {response.text}"
    token = response.json()["tokens"]["access_token"]
    assert isinstance(token, str)
    return email, token


def login(server: RunningServer, email: str) -> str:
    """A fresh access token for ``email`` from ``POST /v1/login``."""
    response = httpx.post(
        f"{server.url}/v1/login", json={"email": email, "password": PASSWORD}, timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 200, f"login failed: {response.status_code} {response.text}"
    token = response.json()["access_token"]
    assert isinstance(token, str)
    return token


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read without verifying anything (only to learn which key signed)."""
    return jwt.get_unverified_header(token)


def jwks_max_age(server: RunningServer, alg: str) -> int:
    """Fetch the JWKS once, check it has ``alg`` keys (beside at most the RS256 ID-token key),
    every key of its algorithm's shape; return its Cache-Control max-age."""
    response = httpx.get(f"{server.url}/.well-known/jwks.json", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    published = response.json()["keys"]
    keys = [key for key in published if key["alg"] == alg]
    assert keys, f"the JWKS publishes no {alg} key"
    assert {key["alg"] for key in published} <= {alg, "RS256"}, "only the ID-token RS256 key may be beside it"
    for key in published:
        assert key["use"] == "sig"
        assert isinstance(key["kid"], str)
        shape = KEY_SHAPES[key["alg"]]
        assert shape.items() <= key.items(), f"{key['alg']} key has the wrong shape: {key}"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys(), "private key material published"
    match = re.search(r"max-age=(\d+)", response.headers.get("cache-control", ""))
    assert match, f"JWKS has no Cache-Control max-age: {response.headers.get('cache-control')!r}"
    return int(match.group(1))


def rotate_keys(server_workdir: Path, env: Mapping[str, str], *args: str) -> str:
    """Run ``python -m service keys rotate [args]`` on the server's keys folder; return the new kid.

    Same working directory and ``IDP_*`` variables as the server, so the same keys folder.
    """
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    child_env.update(CHEAP_ARGON2)
    child_env.update(env)
    completed = subprocess.run(
        [sys.executable, "-m", "service", "keys", "rotate", *args],
        cwd=server_workdir,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, f"keys rotate failed: {completed.stdout}{completed.stderr}"
    match = re.search(r"published \S+ key (\S+);", completed.stdout)
    assert match, f"unexpected keys rotate output: {completed.stdout!r}"
    return match.group(1)


class PyJWTVerifier:
    """PyJWT's own JWKS client and decoder, as an API using PyJWT would verify our tokens."""

    def __init__(
        self, server: RunningServer, alg: str, *, audience: str | None = None, lifespan: float = 300
    ) -> None:
        self.alg = alg
        self.issuer = server.url
        self.audience = audience or server.url
        self.client = jwt.PyJWKClient(f"{server.url}/.well-known/jwks.json", lifespan=lifespan)

    def verify(self, token: str) -> VerifyResult:
        try:
            signing_key = self.client.get_signing_key_from_jwt(token)
            decoded = jwt.decode_complete(
                token,
                signing_key.key,
                algorithms=[self.alg],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            return {"ok": False, "code": type(exc).__name__, "error": str(exc)}
        header = decoded["header"]
        if header.get("typ") != "at+jwt":
            return {"ok": False, "code": "WrongType", "error": f"typ is {header.get('typ')!r}"}
        return {"ok": True, "header": header, "payload": decoded["payload"]}


def require_node() -> str:
    """The ``node`` executable, with jose installed; fail (never skip) with how to fix it."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is required for the jose interop tests: install node (>= 20) on PATH")
    if not (NODE_DIR / "node_modules" / "jose" / "package.json").is_file():
        pytest.fail(
            f"jose is not installed in {NODE_DIR / 'node_modules'}: "
            "run `npm ci --prefix tests/interop/node` (from the repository root) first"
        )
    return node


class NodeVerifier:
    """One long-lived ``node verify.mjs`` process: one jose remote JWKS set for its whole life."""

    def __init__(
        self,
        server: RunningServer,
        algorithms: Sequence[str],
        *,
        audience: str | None = None,
        cache_max_age_ms: int | None = None,
    ) -> None:
        config: dict[str, object] = {
            "jwksUri": f"{server.url}/.well-known/jwks.json",
            "issuer": server.url,
            "audience": audience or server.url,
            "algorithms": list(algorithms),
        }
        if cache_max_age_ms is not None:
            config["cacheMaxAge"] = cache_max_age_ms
        self._stderr_path = server.log_path.with_name(f"node-{uuid.uuid4().hex[:8]}.log")
        self._stderr = self._stderr_path.open("wb")
        self.process = subprocess.Popen(
            [require_node(), str(NODE_SCRIPT), json.dumps(config)],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._replies: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self._replies.put(line)
        self._replies.put("")  # EOF: the process ended

    def stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace")

    def verify(self, token: str) -> VerifyResult:
        assert self.process.stdin is not None
        self.process.stdin.write(token + "\n")
        self.process.stdin.flush()
        try:
            line = self._replies.get(timeout=NODE_REPLY_TIMEOUT)
        except queue.Empty:
            pytest.fail(f"node verifier gave no answer in {NODE_REPLY_TIMEOUT}s:\n{self.stderr()}")
        if not line:
            self.process.wait(timeout=5)
            pytest.fail(f"node verifier exited with {self.process.returncode}:\n{self.stderr()}")
        result = json.loads(line)
        assert isinstance(result, dict)
        return result

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> NodeVerifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def assert_tokens_verified(
    verify: Callable[[str], dict[str, Any]],
    tokens: Sequence[str],
    server: RunningServer,
    alg: str,
    email: str,
) -> None:
    """Each token verifies, with our header and claims, and all name the same subject."""
    subjects = set()
    for token in tokens:
        result = verify(token)
        assert result["ok"], result
        header, claims = result["header"], result["payload"]
        assert header["alg"] == alg
        assert header["typ"] == "at+jwt"
        assert claims["iss"] == server.url
        assert claims["aud"] == server.url
        assert claims["email"] == email
        assert claims["exp"] > claims["iat"]
        subjects.add(claims["sub"])
    assert len(subjects) == 1, "signup and login tokens name different subjects"


def tamper(token: str) -> str:
    """The same token with its ``sub`` changed and the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = str(uuid.uuid4())
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"
