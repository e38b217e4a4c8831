"""Shared steps of the MFA HTTP tests: an account, its authenticator app, a sign-in."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pyotp

from service.clock import FrozenClock

PASSWORD = "correct horse battery"


async def signup(client: httpx.AsyncClient, email: str = "ada@example.com") -> str:
    """A new account; its access token."""
    response = await client.post("/v1/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    token: str = response.json()["tokens"]["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def code_at(secret: str, when: float) -> str:
    """What an authenticator app (pyotp, independent of the server's use of it) shows."""
    return pyotp.TOTP(secret).at(int(when))


async def enrol_totp(client: httpx.AsyncClient, token: str, clock: FrozenClock) -> tuple[str, list[str]]:
    """Enrol and confirm an authenticator; the secret and the recovery codes."""
    started = await client.post("/v1/mfa/totp", headers=bearer(token))
    assert started.status_code == 201, started.text
    secret: str = started.json()["secret"]
    confirmed = await client.post(
        "/v1/mfa/totp/confirm", json={"code": code_at(secret, clock())}, headers=bearer(token)
    )
    assert confirmed.status_code == 200, confirmed.text
    codes: list[str] = confirmed.json()["recovery_codes"]
    return secret, codes


async def password_step(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, Any]:
    """``/v1/login`` for an account with a factor: the ``mfa_required`` body."""
    response = await client.post("/v1/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 401, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == "mfa_required"
    return body


def claims(access_token: str) -> dict[str, Any]:
    """The payload, read with PyJWT (the signature is proved by the token tests)."""
    decoded: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return decoded
