"""JWKS, discovery and health endpoints."""

from __future__ import annotations

import logging

import httpx
import pytest

from service.keys.keyring import PRIVATE_MEMBERS

Client = httpx.AsyncClient


async def test_jwks_is_public_cacheable_and_revalidates(client: Client) -> None:
    """Public members only, max-age caching, ETag and 304 on If-None-Match."""
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    assert response.headers["cache-control"] == "max-age=300, public"
    keys = response.json()["keys"]
    assert len(keys) == 1
    assert (keys[0]["alg"], keys[0]["use"], keys[0]["kty"], keys[0]["crv"]) == (
        "EdDSA",
        "sig",
        "OKP",
        "Ed25519",
    )
    assert not PRIVATE_MEMBERS & set(keys[0])
    etag = response.headers["etag"]
    cached = await client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert (cached.status_code, cached.content, cached.headers["etag"]) == (304, b"", etag)
    stale = await client.get("/.well-known/jwks.json", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200


async def test_discovery_documents_agree(client: Client) -> None:
    """Both metadata documents name our issuer, JWKS, userinfo endpoint and algorithm."""
    oidc = (await client.get("/.well-known/openid-configuration")).json()
    oauth = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert oidc == oauth
    issuer = "http://127.0.0.1:8000"
    assert (oidc["issuer"], oidc["jwks_uri"], oidc["userinfo_endpoint"]) == (
        issuer,
        f"{issuer}/.well-known/jwks.json",
        f"{issuer}/v1/me",
    )
    assert oidc["id_token_signing_alg_values_supported"] == ["EdDSA"]


async def test_health(client: Client) -> None:
    """Live and ready answer 200 when the database and a signing key are there."""
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    checks = {"database": "ok", "sessions": "ok", "signing_key": "ok"}
    assert (ready.status_code, ready.json()["checks"]) == (200, checks)


async def test_openapi_schema_is_served(client: Client) -> None:
    """Litestar serves the OpenAPI document with our routes."""
    schema = (await client.get("/schema/openapi.json")).json()
    assert {"/v1/signup", "/v1/login", "/v1/me", "/.well-known/jwks.json"} <= set(schema["paths"])


async def test_metrics_expose_events_and_latency(client: Client) -> None:
    """/metrics has auth-event counters and per-route latency histograms."""
    await client.post("/v1/login", json={"email": "nobody@example.com", "password": "whatever pass"})
    text = (await client.get("/metrics")).text
    assert 'idp_auth_events_total{event="login",outcome="unknown_account"}' in text
    assert "idp_http_request_duration_seconds_bucket" in text
    assert 'path="/v1/login"' in text
    assert "idp_argon2_pending" in text


async def test_security_headers(client: Client) -> None:
    """nosniff everywhere; no HSTS or CORS unless configured."""
    response = await client.get("/health/live")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in response.headers
    preflight = await client.options(
        "/oauth2/token", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_jwks_if_none_match_forms(client: Client) -> None:
    """A list of tags, a weak tag and * all revalidate; another tag does not."""
    etag = (await client.get("/.well-known/jwks.json")).headers["etag"]
    for header in (f'"x", {etag}', f"W/{etag}", "*"):
        assert (
            await client.get("/.well-known/jwks.json", headers={"If-None-Match": header})
        ).status_code == 304
    assert (await client.get("/.well-known/jwks.json", headers={"If-None-Match": '"x"'})).status_code == 200


async def test_request_ids_reach_responses_and_audit_lines(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A sane incoming X-Request-ID is kept and logged with the audit event; others are replaced."""
    caplog.set_level(logging.INFO, logger="idp.audit")
    body = {"email": "nobody@example.com", "password": "whatever pass"}
    kept = await client.post("/v1/login", json=body, headers={"X-Request-ID": "req-12345678"})
    assert kept.headers["x-request-id"] == "req-12345678"
    assert any('"request_id":"req-12345678"' in record.getMessage() for record in caplog.records)
    replaced = await client.post("/v1/login", json=body, headers={"X-Request-ID": "bad id <script>"})
    assert len(replaced.headers["x-request-id"]) == 16
    assert (await client.get("/health/live")).headers["x-request-id"] != replaced.headers["x-request-id"]
