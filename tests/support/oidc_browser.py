"""Drive the hosted sign-in pages as a browser would (an httpx client keeping cookies):
follow the authorize redirect chain, post the forms, and return where the IdP sends the
browser back to the client."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx

__all__ = ["Pkce", "form_fields", "query", "sign_in"]

_INPUT = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


class Pkce:
    def __init__(self) -> None:
        self.verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(self.verifier.encode()).digest()
        self.challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def form_fields(page: httpx.Response) -> dict[str, str]:
    """The hidden fields of the page's (first) form."""
    return {name: html.unescape(value) for name, value in _INPUT.findall(page.text)}


def query(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


async def sign_in(
    browser: httpx.AsyncClient, authorize_url: str, email: str, password: str, *, consent: bool = True
) -> httpx.Response:
    """GET the authorization URL, sign in on the hosted page, allow on the consent page if one
    is shown; return the final redirect (a 303 whose Location is the client's redirect URI)."""
    response = await browser.get(authorize_url)
    if response.status_code == 200 and 'action="/oauth2/authorize/signin"' in response.text:
        fields = form_fields(response)
        response = await browser.post(
            "/oauth2/authorize/signin", data={**fields, "email": email, "password": password}
        )
    if response.status_code == 200 and 'action="/oauth2/authorize/consent"' in response.text:
        fields = form_fields(response)
        response = await browser.post(
            "/oauth2/authorize/consent", data={**fields, "decision": "allow" if consent else "deny"}
        )
    return response
