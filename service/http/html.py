"""What every hosted OpenID Connect page shares: rendering, the page CSP's form targets, the
browser session cookie and the CSRF double-submit cookie.

Cookies are ``__Host-``-prefixed, ``Secure`` and ``HttpOnly`` under an https issuer (plain
names on http, which browsers refuse the prefix for), ``SameSite=Lax``, ``Path=/``, no Domain.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response
from litestar.datastructures import Cookie

from service.http.security_headers import html_csp

__all__ = ["BrowserCookies", "read_form", "render"]

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
MAX_FORM_FIELD = 4096
_environment = Environment(
    loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True), auto_reload=False
)


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"


def page_headers(redirect_uri: str | None = None, *, scripts: bool = False) -> dict[str, str]:
    """No caching; the HTML policy of :mod:`service.http.security_headers` (the rest of its
    headers are added to every response there) with the client's origin in ``form-action``:
    browsers apply it to the redirect that follows a form post. ``scripts``: the page loads
    our own script files (the sign-in page's passkey script)."""
    headers = {"Cache-Control": "no-store"}
    if redirect_uri or scripts:
        targets = [_origin(redirect_uri)] if redirect_uri else []
        headers["Content-Security-Policy"] = html_csp(targets, scripts=scripts)
    return headers


def render(
    template: str,
    *,
    status: int = 200,
    scripts: bool = False,
    redirect_uri: str | None = None,
    cookies: list[Cookie] | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response[str]:
    html = _environment.get_template(f"oidc/{template}.html").render(context)
    return Response(
        html,
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={**page_headers(redirect_uri, scripts=scripts), **(headers or {})},
        cookies=cookies or [],
    )


async def read_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """A url-encoded form's string fields (bounded); anything else reads as empty."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return {}
    form = await request.form()
    return {key: str(value)[:MAX_FORM_FIELD] for key, value in form.items() if isinstance(value, str)}


class BrowserCookies:
    def __init__(self, issuer: str, max_age: int) -> None:
        self.secure = issuer.startswith("https://")
        prefix = "__Host-" if self.secure else ""
        self.session_name = f"{prefix}idp_session"
        self.csrf_name = f"{prefix}idp_csrf"
        self._max_age = max_age

    def _cookie(self, name: str, value: str, max_age: int) -> Cookie:
        return Cookie(
            key=name,
            value=value,
            path="/",
            max_age=max_age,
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def session(self, token: str) -> Cookie:
        return self._cookie(self.session_name, token, self._max_age)

    def clear_session(self) -> Cookie:
        return self._cookie(self.session_name, "", 0)

    def session_token(self, request: Request[Any, Any, Any]) -> str | None:
        return request.cookies.get(self.session_name) or None

    def csrf(self, request: Request[Any, Any, Any]) -> tuple[str, list[Cookie]]:
        """The CSRF token for a form (the cookie's, or a new one to set)."""
        current = request.cookies.get(self.csrf_name, "")
        if len(current) == 43:
            return current, []
        token = secrets.token_urlsafe(32)
        return token, [self._cookie(self.csrf_name, token, 3600 * 12)]

    def csrf_ok(self, request: Request[Any, Any, Any], form: dict[str, str]) -> bool:
        cookie, posted = request.cookies.get(self.csrf_name, ""), form.get("csrf", "")
        return len(cookie) == 43 and hmac.compare_digest(cookie.encode(), posted.encode())
