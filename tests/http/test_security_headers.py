"""Security headers on every response, the docs page's CSP, /metrics access and SQLite file modes
(issue 17), on both backends."""

from __future__ import annotations

import base64
import re
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from litestar import Litestar, Response, get

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings, load_settings
from service.errors import ConfigError
from service.http.security_headers import JSON_CSP, REDOC_JS, REDOC_SRI, html_csp

Client = httpx.AsyncClient
COMMON = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY"}
METRICS_TOKEN = "m" * 40


def assert_policy(response: httpx.Response, csp: str) -> None:
    for name, value in COMMON.items():
        assert response.headers.get(name) == value, f"{name} on {response.request.url.path}"
    assert response.headers.get("content-security-policy") == csp, response.request.url.path


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/health/live", {}),
        ("GET", "/.well-known/jwks.json", {}),
        ("GET", "/.well-known/openid-configuration", {}),
        ("GET", "/schema/openapi.json", {}),
        ("GET", "/metrics", {}),
        ("POST", "/oauth2/token", {"data": {"grant_type": "refresh_token", "refresh_token": "x"}}),
        ("POST", "/oauth2/token", {"json": {"grant_type": "nope"}, "headers": {"Origin": "https://a.example"}}),
        ("POST", "/oauth2/token", {"content": b"x" * 70_000}),
        ("GET", "/v1/me", {}),
        ("POST", "/v1/login", {"content": b"[" * 5_000, "headers": {"content-type": "application/json"}}),
        ("POST", "/v1/login", {"json": {"email": "a@example.com", "password": "wrong password"}}),
        ("GET", "/nope", {}),
        ("DELETE", "/v1/login", {}),
    ],
    ids=[
        "health", "jwks-fast-path", "discovery", "openapi-json", "metrics", "token-fast-path-400",
        "token-route-cors", "token-413", "me-401", "login-nested-400", "login-401", "404", "405",
    ],
)  # fmt: skip
async def test_every_json_response_carries_the_policy(
    client: Client, method: str, path: str, kwargs: dict[str, object]
) -> None:
    """Successes, errors raised in handlers, Litestar's own 404/405 and both fast paths: nosniff,
    no-referrer, DENY and the CSP that forbids loading or framing anything."""
    response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert_policy(response, JSON_CSP)


async def test_the_docs_page_loads_only_its_pinned_cdn_file(client: Client) -> None:
    """/schema is Redoc from one pinned file: no inline script, no other remote origin, and a CSP
    whose script-src is exactly that file."""
    page = await client.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert f"script-src {REDOC_JS};" in csp
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-eval'" not in csp
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.DOTALL)
    assert scripts == [(f' src="{REDOC_JS}" integrity="{REDOC_SRI}" crossorigin="anonymous"', "")]
    assert set(re.findall(r"https?://[^/\"']+", page.text)) == {"https://cdn.jsdelivr.net"}
    assert '<redoc spec-url="/schema/openapi.json">' in page.text
    assert (await client.get("/schema/openapi.json")).status_code == 200
    assert_policy(page, csp)


async def test_html_pages_get_the_strict_policy_and_may_set_their_own(app: Litestar, client: Client) -> None:
    """An HTML response gets the hosted pages' CSP (own origin only, no inline code); one that
    sets its own CSP (a form posting to a client) keeps it."""
    own = html_csp(form_action=["https://client.example"])

    @get("/test/page", media_type="text/html", sync_to_thread=False)
    def page() -> str:
        return "<!doctype html><p>hi</p>"

    @get("/test/form", media_type="text/html", sync_to_thread=False)
    def form() -> Response[str]:
        return Response("<form></form>", media_type="text/html", headers={"Content-Security-Policy": own})

    app.register(page)
    app.register(form)
    strict = await client.get("/test/page")
    assert_policy(strict, html_csp())
    assert "'unsafe-inline'" not in html_csp()
    assert "script-src" not in html_csp()
    assert "script-src 'self';" in html_csp(scripts=True)
    assert_policy(await client.get("/test/form"), own)


@pytest.fixture
def settings_for(
    make_settings: Callable[..., Settings], backend_env: dict[str, str]
) -> Callable[..., Settings]:
    return lambda **env: make_settings(**backend_env, **env)


async def _serve(settings: Settings, clock: FrozenClock, peer: str) -> AsyncIterator[Client]:
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app, client=(peer, 5000))  # type: ignore[arg-type]
    async with serving(app), httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        yield http


@pytest.mark.parametrize(
    ("peer", "headers", "status"),
    [
        ("127.0.0.1", {}, 200),
        ("::1", {}, 200),
        ("203.0.113.5", {}, 403),
        ("10.0.0.7", {}, 403),
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.5"}, 403),
        ("127.0.0.1", {"Forwarded": "for=203.0.113.5"}, 403),
    ],
    ids=["loopback-v4", "loopback-v6", "remote", "private", "proxied-xff", "proxied-forwarded"],
)
async def test_metrics_without_a_token_answer_loopback_only(
    settings_for: Callable[..., Settings], clock: FrozenClock, peer: str, headers: dict[str, str], status: int
) -> None:
    """Default safe: without IDP_METRICS_TOKEN only direct loopback requests read /metrics (a
    request relayed by a proxy on the same host carries a forwarding header and is refused)."""
    async for http in _serve(settings_for(), clock, peer):
        response = await http.get("/metrics", headers=headers)
        assert response.status_code == status
        if status == 403:
            assert response.json()["error"] == "forbidden"
            assert "idp_" not in response.text


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        (f"Basic {base64.b64encode(METRICS_TOKEN.encode()).decode()}", 401),
        (f"Bearer {METRICS_TOKEN}", 200),
        (f"bearer {METRICS_TOKEN}", 200),
    ],
    ids=["none", "wrong", "basic", "right", "scheme-case"],
)
async def test_metrics_with_a_token_need_it_from_anywhere(
    settings_for: Callable[..., Settings], clock: FrozenClock, authorization: str | None, status: int
) -> None:
    """With IDP_METRICS_TOKEN the Bearer token is required, from any address, loopback included."""
    settings = settings_for(IDP_METRICS_TOKEN=METRICS_TOKEN)
    headers = {} if authorization is None else {"Authorization": authorization}
    for peer in ("203.0.113.5", "127.0.0.1"):
        async for http in _serve(settings, clock, peer):
            response = await http.get("/metrics", headers=headers)
            assert response.status_code == status
            if status == 200:
                assert "idp_auth_events" in response.text
            else:
                assert response.json()["error"] == "invalid_token"


def test_a_short_metrics_token_is_refused_without_echoing_it() -> None:
    """A weak token is a start-up error naming the variable, never printing the secret."""
    with pytest.raises(ConfigError, match="IDP_METRICS_TOKEN") as refused:
        load_settings({"IDP_METRICS_TOKEN": "short-secret"})
    assert "short-secret" not in str(refused.value)
    settings = load_settings({"IDP_METRICS_TOKEN": METRICS_TOKEN})
    assert METRICS_TOKEN not in repr(settings)


async def test_sqlite_files_are_owner_only(
    make_settings: Callable[..., Settings], clock: FrozenClock, tmp_path: Path
) -> None:
    """The embedded database and its WAL/SHM files are created 0600; a file an earlier version
    left 0644 is tightened at start."""
    path = tmp_path / "data" / "idp.sqlite3"
    path.parent.mkdir()
    path.touch(mode=0o644)
    path.chmod(0o644)
    async for http in _serve(make_settings(IDP_DATABASE_URL=f"sqlite:///{path}"), clock, "127.0.0.1"):
        signup = await http.post("/v1/signup", json={"email": "a@example.com", "password": "correct horse 1"})
        assert signup.status_code == 201
        modes = {file.name: stat.S_IMODE(file.stat().st_mode) for file in path.parent.iterdir()}
        assert {"idp.sqlite3", "idp.sqlite3-wal", "idp.sqlite3-shm"} <= set(modes)
        assert {name: mode for name, mode in modes.items() if name.startswith("idp.sqlite3")} == {
            "idp.sqlite3": 0o600,
            "idp.sqlite3-wal": 0o600,
            "idp.sqlite3-shm": 0o600,
        }
