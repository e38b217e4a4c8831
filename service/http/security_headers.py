"""The security headers of every response, in one place.

Three policies, chosen by the response's content type and path:

- **JSON and everything not HTML** (the API, JWKS, metrics, errors): nothing in it may load or
  frame anything (``default-src 'none'; frame-ancestors 'none'``).
- **HTML** (the hosted pages: sign-in, consent, reset, errors): no script at all, styles,
  images and fonts from our own origin only, no inline style, forms post to us only, never
  framed. A page that needs its own script files (WebAuthn) builds its CSP with
  ``html_csp(scripts=True)``: still ``'self'`` only, never inline.
- **The API docs** (``/schema``): Redoc from one pinned file on its CDN (the exact URL is the CSP
  source, and the page pins its SRI hash), its spec fetched from us, inline styles (Redoc
  injects them), a blob worker (search). Redoc's logo from its own site is refused (harmless).

All carry ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
``X-Frame-Options: DENY`` and, when configured, HSTS. A response that sets one of these
headers itself keeps its own value (e.g. a page whose form must post to a client's origin
builds its CSP with :func:`html_csp`). :class:`SecurityHeaders` applies the policy to every
Litestar response, exception responses and 404s included; the pre-router's responses carry
:func:`json_headers` directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "DOCS_PATH",
    "REDOC_JS",
    "REDOC_SRI",
    "REDOC_VERSION",
    "SecurityHeaders",
    "docs_headers",
    "html_csp",
    "html_headers",
    "json_headers",
]

Header = tuple[bytes, bytes]

DOCS_PATH = "/schema"
REDOC_VERSION = "2.5.4"
REDOC_JS = f"https://cdn.jsdelivr.net/npm/redoc@{REDOC_VERSION}/bundles/redoc.standalone.js"
REDOC_SRI = "sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5"
"""Subresource integrity of that file (the npm tarball's ``bundles/redoc.standalone.js``, which
jsDelivr serves byte for byte): a changed file is not run. tests/e2e/test_docs_page.py checks it."""

JSON_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (
    f"default-src 'none'; script-src {REDOC_JS}; style-src 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def html_csp(form_action: Iterable[str] = (), *, scripts: bool = False) -> str:
    """The hosted pages' CSP: own-origin files only, no inline code, never framed. ``form_action``
    adds origins a form may post (or be redirected after posting) to, beyond our own;
    ``scripts`` allows script files (and their fetches) from our own origin."""
    targets = " ".join(["'self'", *form_action])
    script = "script-src 'self'; connect-src 'self'; " if scripts else ""
    return (
        f"default-src 'none'; {script}style-src 'self'; img-src 'self' data:; font-src 'self'; "
        f"form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
    )


def _common(hsts_max_age: int) -> list[Header]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]
    if hsts_max_age:
        headers.append((b"strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains".encode()))
    return headers


def json_headers(hsts_max_age: int = 0) -> list[Header]:
    """Headers for a JSON (or any non-HTML) response."""
    return [*_common(hsts_max_age), (b"content-security-policy", JSON_CSP.encode())]


def html_headers(hsts_max_age: int = 0, form_action: Iterable[str] = ()) -> list[Header]:
    """Headers for a hosted HTML page."""
    return [*_common(hsts_max_age), (b"content-security-policy", html_csp(form_action).encode())]


def docs_headers(hsts_max_age: int = 0) -> list[Header]:
    """Headers for the API docs page (Redoc from its CDN)."""
    return [*_common(hsts_max_age), (b"content-security-policy", DOCS_CSP.encode())]


def _with(headers: Sequence[Header], policy: Sequence[Header]) -> list[Header]:
    present = {name.lower() for name, _ in headers}
    return [*headers, *(header for header in policy if header[0] not in present)]


class SecurityHeaders:
    """ASGI wrapper adding the policy's headers to every HTTP response that lacks them."""

    def __init__(self, app: ASGIApp, *, hsts_max_age: int = 0) -> None:
        self._app = app
        self._json = json_headers(hsts_max_age)
        self._html = html_headers(hsts_max_age)
        self._docs = docs_headers(hsts_max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        docs = scope["path"] == DOCS_PATH or scope["path"].startswith(DOCS_PATH + "/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                content_type = next(
                    (value for name, value in headers if name.lower() == b"content-type"), b""
                )
                html = content_type.startswith(b"text/html")
                policy = (self._docs if docs else self._html) if html else self._json
                message = {**message, "headers": _with(headers, policy)}
            await send(message)

        await self._app(scope, receive, send_with_headers)
