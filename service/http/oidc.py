"""``/oauth2/userinfo`` (OpenID Connect Core §5.3), ``/oauth2/logout`` (RP-Initiated Logout
1.0) and the hosted pages' stylesheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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
        """End the browser session and the sessions clients opened through it. With a valid
        ``id_token_hint`` at once; without one, only after the user confirms (a CSRF-checked
        form), so a third-party page cannot sign the user out. ``post_logout_redirect_uri``
        must be registered exactly for the hint's client; ``state`` is passed back."""
        jar = browser_cookies(runtime)
        form = await read_form(request) if request.method == "POST" else {}
        params = {**dict(request.query_params.items()), **form}
        hint = runtime.id_tokens.verify_hint(params.get("id_token_hint", ""))
        client_id = str(hint.get("aud", "")) if hint else params.get("client_id", "")
        client = await runtime.clients.get(client_id) if client_id else None
        target = params.get("post_logout_redirect_uri")
        if target and (client is None or target not in client.post_logout_redirect_uris):
            return render(
                "error",
                status=400,
                service_name=runtime.settings.mail.issuer_name,
                error="invalid_request",
                description="The post_logout_redirect_uri is not registered.",
            )
        confirmed = hint is not None or (params.get("confirm") == "yes" and jar.csrf_ok(request, form))
        name = runtime.settings.mail.issuer_name
        if not confirmed:
            csrf, cookies = jar.csrf(request)
            return render("logout", service_name=name, csrf=csrf, cookies=cookies, done=False)
        token = jar.session_token(request)
        session = await runtime.sessions.browser_session(token) if token else None
        if session is not None and (hint is None or hint.get("sub") == str(session.user_id)):
            await runtime.sessions.end_browser_session(session)
        cookies = [jar.clear_session()]
        if target:
            query = urlencode({"state": params["state"]}) if "state" in params else ""
            location = f"{target}{'&' if '?' in target else '?'}{query}" if query else target
            return Response(
                b"",
                status_code=303,
                headers={"Location": location, "Cache-Control": "no-store"},
                cookies=cookies,
            )
        return render("logout", service_name=name, cookies=cookies, done=True)


@get("/static/idp.css", include_in_schema=False, media_type="text/css")
async def stylesheet() -> Response[bytes]:
    """The hosted pages' only stylesheet (a file, so the CSP can forbid inline style)."""
    return Response(
        STYLESHEET.read_bytes(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )
