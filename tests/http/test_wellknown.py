"""JWKS, discovery and health endpoints."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest
from litestar import Litestar

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings
from service.keys.files import generate_key
from service.keys.keyring import PRIVATE_MEMBERS
from service.runtime import Runtime

Client = httpx.AsyncClient


async def test_jwks_is_public_cacheable_and_revalidates(client: Client) -> None:
    """Public members only, max-age caching, ETag and 304 on If-None-Match."""
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    assert response.headers["cache-control"] == "max-age=300, public"
    keys = sorted(response.json()["keys"], key=lambda key: str(key["alg"]))
    assert [(key["alg"], key["use"], key["kty"]) for key in keys] == [
        ("EdDSA", "sig", "OKP"),
        ("RS256", "sig", "RSA"),
    ]
    assert keys[0]["crv"] == "Ed25519"
    assert not PRIVATE_MEMBERS & (set(keys[0]) | set(keys[1]))
    etag = response.headers["etag"]
    cached = await client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert (cached.status_code, cached.content, cached.headers["etag"]) == (304, b"", etag)
    stale = await client.get("/.well-known/jwks.json", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200


async def test_discovery_documents_differ_as_their_specs_say(client: Client) -> None:
    """RFC 8414 has the OAuth fields; OpenID Connect Discovery adds userinfo, end session, ID-token
    algorithms (those with a signing key: RS256 beside EdDSA), subject types and claims."""
    oidc = (await client.get("/.well-known/openid-configuration")).json()
    oauth = (await client.get("/.well-known/oauth-authorization-server")).json()
    issuer = "http://127.0.0.1:8000"
    assert {key: oidc[key] for key in oauth} == oauth
    assert set(oidc) - set(oauth) == {
        "userinfo_endpoint",
        "end_session_endpoint",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "claims_supported",
        "claims_parameter_supported",
        "request_parameter_supported",
        "request_uri_parameter_supported",
        "prompt_values_supported",
        "acr_values_supported",
    }
    assert (oauth["issuer"], oauth["jwks_uri"], oauth["authorization_endpoint"]) == (
        issuer,
        f"{issuer}/.well-known/jwks.json",
        f"{issuer}/oauth2/authorize",
    )
    assert (oauth["response_types_supported"], oauth["code_challenge_methods_supported"]) == (
        ["code"],
        ["S256"],
    )
    assert oauth["authorization_response_iss_parameter_supported"] is True
    assert set(oauth["grant_types_supported"]) >= {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert (oidc["userinfo_endpoint"], oidc["end_session_endpoint"]) == (
        f"{issuer}/oauth2/userinfo",
        f"{issuer}/oauth2/logout",
    )
    assert oidc["id_token_signing_alg_values_supported"] == ["EdDSA", "RS256"]
    assert {"openid", "profile", "email", "offline_access"} == set(oidc["scopes_supported"])


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


async def test_jwks_fast_path_matches_the_litestar_route(client: Client) -> None:
    """GET and HEAD are answered before routing (counted in ``idp_jwks_responses_total``), with
    request ids like every other route; other methods reach the Litestar route."""
    before = (await client.get("/metrics")).text
    fast = await client.get("/.well-known/jwks.json", headers={"X-Request-ID": "jwks-req-0001"})
    head = await client.head("/.well-known/jwks.json")
    assert head.content == b""
    assert {k: v for k, v in fast.headers.items() if k != "x-request-id"} == {
        k: v for k, v in head.headers.items() if k != "x-request-id"
    }
    assert fast.headers["x-request-id"] == "jwks-req-0001"
    assert fast.headers["x-content-type-options"] == "nosniff"
    assert int(fast.headers["content-length"]) == len(fast.content)
    replaced = await client.get("/.well-known/jwks.json", headers={"X-Request-ID": "no"})
    assert len(replaced.headers["x-request-id"]) == 16
    after = (await client.get("/metrics")).text
    assert (
        _counter(after, 'idp_jwks_responses_total{status="200"}')
        - _counter(before, 'idp_jwks_responses_total{status="200"}')
        == 3
    )
    assert (await client.post("/.well-known/jwks.json")).status_code == 405


async def test_jwks_fast_path_follows_rotation(client: Client, app: Litestar) -> None:
    """A key added to the folder changes the served body and ETag; the old ETag gets a 200."""
    runtime: Runtime = app.state.runtime
    first = await client.get("/.well-known/jwks.json")
    generate_key(runtime.settings.keys.dir, "EdDSA", runtime.clock())
    assert runtime.keyring.refresh()
    second = await client.get("/.well-known/jwks.json", headers={"If-None-Match": first.headers["etag"]})
    assert second.status_code == 200
    assert second.headers["etag"] != first.headers["etag"]
    assert len(second.json()["keys"]) == len(first.json()["keys"]) + 1
    assert int(second.headers["content-length"]) == len(second.content)
    cached = await client.get("/.well-known/jwks.json", headers={"If-None-Match": second.headers["etag"]})
    assert (cached.status_code, cached.headers["etag"]) == (304, second.headers["etag"])


async def test_jwks_cors_requests_use_the_cors_middleware(
    make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock
) -> None:
    """With CORS configured, a request with an Origin is answered by Litestar's CORS middleware
    and its JWKS route, with the fast path's body and headers plus the CORS ones."""
    settings = make_settings(
        **backend_env, IDP_CORS_ORIGINS="https://app.example.com", IDP_HSTS_MAX_AGE="31536000"
    )
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with (
        serving(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client,
    ):
        allowed = await client.get("/.well-known/jwks.json", headers={"Origin": "https://app.example.com"})
        plain = await client.get("/.well-known/jwks.json")
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert allowed.content == plain.content
    assert "access-control-allow-origin" not in plain.headers
    varying = {"date", "x-request-id", "vary"}
    assert {
        k: v for k, v in allowed.headers.items() if k not in varying and not k.startswith("access-control-")
    } == {k: v for k, v in plain.headers.items() if k not in varying}
    for response in (allowed, plain):
        assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def _counter(metrics: str, sample: str) -> float:
    """A sample's value in Prometheus text, 0 when absent."""
    for line in metrics.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


async def test_http_metrics_use_route_templates_and_statuses(client: Client) -> None:
    """Requests are counted by method, route template (never the raw path) and status."""
    labels = 'app_name="idp",method="DELETE",path="/v1/sessions/{session_id}",status_code="401"'
    sample = f"idp_http_requests_total{{{labels}}}"
    before = _counter((await client.get("/metrics")).text, sample)
    for session in ("abc", "def", "ghi"):
        response = await client.delete(f"/v1/sessions/{session}")
        assert response.status_code == 401
        assert len(response.headers["x-request-id"]) == 16
    text = (await client.get("/metrics")).text
    assert _counter(text, sample) - before == 3
    assert "/v1/sessions/abc" not in text
    assert 'path="/metrics"' not in text
