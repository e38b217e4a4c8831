"""``/oauth2/userinfo`` (OpenID Connect Core §5.3), ``/oauth2/logout`` (RP-Initiated Logout
1.0) and the hosted pages' stylesheet."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from litestar import Controller, Request, Response, get, post, route
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency

from service.errors import InvalidToken
from service.http.auth import bearer_token
from service.http.authorize import browser_cookies
from service.http.html import read_form, render
from service.http.openapi import errors
from service.runtime import Runtime

__all__ = ["LogoutController", "UserinfoController", "stylesheet"]

STYLESHEET = Path(__file__).resolve().parents[1] / "static" / "idp.css"


class UserinfoController(Controller):
    path = "/oauth2/userinfo"
    cache_control = CacheControlHeader(no_store=True)
    tags = ["oidc"]  # noqa: RUF012

    @get("/", responses=errors(401, 403))
    async def userinfo(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> dict[str, object]:
        """The signed-in user's claims for an access token with ``openid`` (Bearer header)."""
        return await _userinfo(runtime, bearer_token(request))

    @post("/", status_code=200, responses=errors(401, 403, 413))
    async def userinfo_form(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> dict[str, object]:
        """The same, the access token in the Bearer header or as ``access_token`` in a form body
        (RFC 6750 §2.2)."""
        if "authorization" in request.headers:
            return await _userinfo(runtime, bearer_token(request))
        token = (await read_form(request)).get("access_token", "")
        if not token:
            raise InvalidToken("A Bearer access token is required.")
        return await _userinfo(runtime, token)


async def _userinfo(runtime: Runtime, token: str) -> dict[str, object]:
    claims = await runtime.sessions.authenticate(runtime.access_tokens.verify(token))
    return await runtime.provider.userinfo(claims)


class LogoutController(Controller):
    path = "/oauth2/logout"
    include_in_schema = False

    @route("/", http_method=["GET", "POST"], status_code=200)
    async def logout(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[Any]:
        """End the browser session and the sessions clients opened through it (OpenID Connect
        RP-Initiated Logout 1.0). With a valid ``id_token_hint`` at once; without one, only
        after the user confirms (a CSRF-checked form), so a third-party page cannot sign the
        user out. The client is the hint's (``azp``, else ``aud``) or, without a hint, the one
        ``client_id`` names; both given must agree. ``post_logout_redirect_uri`` is followed,
        with ``state``, only when registered exactly for that client; otherwise the user sees
        the signed-out page here."""
        jar = browser_cookies(runtime)
        form = await read_form(request) if request.method == "POST" else {}
        params = {**dict(request.query_params.items()), **form}
        name = runtime.settings.mail.issuer_name
        hint = runtime.id_tokens.verify_hint(params.get("id_token_hint", ""))
        client_id = params.get("client_id", "")
        if hint is not None and client_id and client_id not in _hint_audience(hint):
            return render(
                "error",
                status=400,
                service_name=name,
                error="invalid_request",
                description="The client_id is not the client the id_token_hint was issued to.",
            )
        client_id = client_id or _hint_client(hint)
        client = await runtime.clients.get(client_id) if client_id else None
        target = params.get("post_logout_redirect_uri", "")
        if not target or client is None or target not in client.post_logout_redirect_uris:
            target = ""  # never redirect to a URI not registered for the identified client
        confirmed = hint is not None or (params.get("confirm") == "yes" and jar.csrf_ok(request, form))
        if not confirmed:
            csrf, cookies = jar.csrf(request)
            # The confirmation form carries what the redirect needs (already checked above).
            carried = {"client_id": client.id} if client is not None else {}
            if target:
                carried.update(post_logout_redirect_uri=target, state=params.get("state", ""))
            return render(
                "logout", service_name=name, csrf=csrf, cookies=cookies, done=False, carried=carried
            )
        token = jar.session_token(request)
        session = await runtime.sessions.browser_session(token) if token else None
        if session is not None and (hint is None or hint.get("sub") == str(session.user_id)):
            await runtime.sessions.end_browser_session(session)
        if hint is not None and (session is None or hint.get("sid") != session.id):
            # The hint's browser session is not (or no longer) this browser's: still end the
            # sessions the client opened through it.
            with contextlib.suppress(ValueError):
                await runtime.sessions.end_client_sessions(UUID(str(hint.get("sub"))), str(hint.get("sid")))
        cookies = [jar.clear_session()]
        if target:
            query = urlencode({"state": params["state"]}) if params.get("state") else ""
            location = f"{target}{'&' if '?' in target else '?'}{query}" if query else target
            return Response(
                b"",
                status_code=303,
                headers={"Location": location, "Cache-Control": "no-store"},
                cookies=cookies,
            )
        return render("logout", service_name=name, cookies=cookies, done=True)


def _hint_audience(hint: dict[str, object]) -> set[str]:
    """The clients an ID token was issued to: its ``aud`` (one or several) and ``azp``."""
    aud = hint.get("aud")
    audience = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    azp = hint.get("azp")
    return {item for item in [*audience, azp] if isinstance(item, str)}


def _hint_client(hint: dict[str, object] | None) -> str:
    """The client a hint names: ``azp``, else its single ``aud``; empty when none or unclear."""
    if hint is None:
        return ""
    azp, aud = hint.get("azp"), hint.get("aud")
    if isinstance(azp, str):
        return azp
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else ""


@get("/static/idp.css", include_in_schema=False, media_type="text/css")
async def stylesheet() -> Response[bytes]:
    """The hosted pages' only stylesheet (a file, so the CSP can forbid inline style)."""
    return Response(
        STYLESHEET.read_bytes(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )
