"""private_key_jwt client authentication (RFC 7523 §2.2) at the token endpoint, on both
backends: assertions signed with PyJWT by the client's registered key are accepted once."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar

from service.runtime import Runtime
from tests.conftest import START

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_ENDPOINT = "http://127.0.0.1:8000/oauth2/token"


def keypair() -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return key, {**public, "kid": "k1", "alg": "RS256", "use": "sig"}


def assertion(key: rsa.RSAPrivateKey, **overrides: Any) -> str:
    claims = {
        "iss": "signer",
        "sub": "signer",
        "aud": TOKEN_ENDPOINT,
        "exp": int(START) + 60,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode({**claims, **overrides}, key, algorithm="RS256", headers={"kid": "k1"})


def form(signed: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }


@pytest.fixture
async def signer(app: Litestar, client: httpx.AsyncClient) -> rsa.RSAPrivateKey:
    """The client 'signer' registered with its public key only (no secret)."""
    key, public = keypair()
    runtime: Runtime = app.state.runtime
    registered, secret = await runtime.clients.register(
        "Signer",
        "signer",
        grant_types=["client_credentials"],
        scopes=["jobs"],
        jwks=json.dumps({"keys": [public]}),
    )
    assert (secret, registered.token_endpoint_auth_method) == (None, "private_key_jwt")
    return key


async def test_a_signed_assertion_authenticates_once(
    client: httpx.AsyncClient, signer: rsa.RSAPrivateKey
) -> None:
    """The assertion works (aud = token endpoint or issuer); the same jti is a replay."""
    signed = assertion(signer)
    first = await client.post("/oauth2/token", data=form(signed))
    assert (first.status_code, first.json()["scope"]) == (200, "jobs")
    replay = await client.post("/oauth2/token", data=form(signed))
    assert (replay.status_code, replay.json()["error"]) == (401, "invalid_client")
    by_issuer = await client.post("/oauth2/token", data=form(assertion(signer, aud="http://127.0.0.1:8000")))
    assert by_issuer.status_code == 200


async def test_bad_assertions_are_invalid_client(
    client: httpx.AsyncClient, signer: rsa.RSAPrivateKey
) -> None:
    """Wrong audience, expired, too long-lived, another key, another issuer, HS256, the wrong
    assertion type, and a secret for this key-only client: all 401 invalid_client."""
    other, _ = keypair()
    cases = {
        "aud": form(assertion(signer, aud="https://elsewhere.example/token")),
        "expired": form(assertion(signer, exp=int(START) - 60)),
        "too-long": form(assertion(signer, exp=int(START) + 3600)),
        "other-key": form(assertion(other)),
        "other-sub": form(assertion(signer, sub="someone")),
        "hs256": form(
            jwt.encode(
                {"iss": "signer", "sub": "signer", "aud": TOKEN_ENDPOINT, "exp": int(START) + 60, "jti": "x"},
                "k" * 32,
                algorithm="HS256",
                headers={"kid": "k1"},
            )
        ),
        "type": {**form(assertion(signer)), "client_assertion_type": "urn:other"},
        "secret": {"grant_type": "client_credentials", "client_id": "signer", "client_secret": "guess"},
    }
    for name, data in cases.items():
        response = await client.post("/oauth2/token", data=data)
        assert (response.status_code, response.json()["error"]) == (401, "invalid_client"), name


async def test_discovery_advertises_private_key_jwt(client: httpx.AsyncClient) -> None:
    """The method and its algorithms are in the metadata."""
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    assert metadata["token_endpoint_auth_signing_alg_values_supported"] == ["RS256", "ES256"]
