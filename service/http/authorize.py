"""``/oauth2/authorize`` and its hosted pages: sign in, sign up, consent (see
:mod:`service.oidc.authorize` for the rules and the sign-in steps).

The authorization request travels between the pages as its own query string in a hidden
field and is validated again on every post, so no server state exists before sign-in.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency

from service import bounded_json
from service.errors import (
    AccessDenied,
    EmailNotVerified,
    IdPError,
    InvalidCredentials,
    UnknownClientOrRedirect,
)
from service.http.auth import request_ip
from service.http.html import BrowserCookies, read_form, render
from service.mfa.errors import (
    ClientRequiresMfa,
    InvalidMfaToken,
    InvalidPasskey,
    MfaEnrollmentRequired,
    MfaRequired,
)
from service.oidc.authorize import error_redirect, next_step, parse_request, resolve_client, success_redirect
from service.runtime import Runtime
from service.sessions import BROWSER_ORIGIN
from service.store.sessions import Client, Family

__all__ = ["AuthorizeController", "browser_cookies"]

MAX_PARAMS = 32
SCOPE_TEXT = {
    "openid": "confirm who you are",
    "profile": "see your name",
    "email": "see your email address",
    "offline_access": "stay signed in to your account when you are away",
}


def browser_cookies(runtime: Runtime) -> BrowserCookies:
    return BrowserCookies(runtime.settings.issuer, runtime.settings.sessions.absolute_ttl)


def _params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    params = dict(pairs)
    if len(params) != len(pairs) or len(pairs) > MAX_PARAMS:
        raise UnknownClientOrRedirect("A parameter was repeated, or there are too many.")
    return params


def _decode(encoded: str) -> dict[str, str]:
    try:
        return _params(parse_qsl(encoded, keep_blank_values=True, max_num_fields=MAX_PARAMS))
    except ValueError as exc:
        raise UnknownClientOrRedirect("The authorization request is malformed.") from exc


def _redirect(location: str, cookies: list[Cookie]) -> Response[bytes]:
    headers = {"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return Response(b"", status_code=303, headers=headers, cookies=cookies)


def _error_page(runtime: Runtime, exc: IdPError) -> Response[str]:
    name = runtime.settings.mail.issuer_name
    return render("error", status=400, service_name=name, error=exc.error, description=exc.description)


async def _pending(
    request: Request[Any, Any, Any], runtime: Runtime, form: dict[str, str]
) -> tuple[dict[str, str], Client, str]:
    """A posted page's authorization request, its client and redirect URI, CSRF-checked."""
    params = _decode(form.get("request", ""))
    client, redirect_uri = await resolve_client(params, runtime.clients)
    if not browser_cookies(runtime).csrf_ok(request, form):
        raise UnknownClientOrRedirect("The form expired; go back to the application and start again.")
    return params, client, redirect_uri


async def _flow(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    params: dict[str, str],
    *,
    session: Family | None = None,
    fresh_login: bool = False,
    consented: bool = False,
    cookies: list[Cookie] | None = None,
    problem: IdPError | None = None,
) -> Response[Any]:
    """Take the authorization request as far as it can go: a page, or back to the client."""
    set_cookies = list(cookies or [])
    jar = browser_cookies(runtime)
    try:
        client, redirect_uri = await resolve_client(params, runtime.clients)
    except UnknownClientOrRedirect as exc:
        return _error_page(runtime, exc)
    try:
        auth = parse_request(client, redirect_uri, params)
        if session is None and (token := jar.session_token(request)):
            session = await runtime.sessions.browser_session(token)
        # A first-party client never sees the consent page (next_step ignores what was
        # granted), so its remembered consent is not looked up.
        granted: frozenset[str] = frozenset()
        if session is not None and not client.first_party:
            granted = await runtime.provider.granted_scopes(session.user_id, client.id)
        step = next_step(
            auth, client, session, granted, now=runtime.clock(), fresh_login=fresh_login, consented=consented
        )
    except IdPError as exc:
        if exc.status_code >= 500:
            raise
        return _redirect(
            error_redirect(redirect_uri, exc, params.get("state"), runtime.settings.issuer), set_cookies
        )
    if step == "redirect":  # the returning user's path: no page, no CSRF token
        assert session is not None
        code = await runtime.provider.issue_code(auth, session)
        return _redirect(success_redirect(auth, code, runtime.settings.issuer), set_cookies)
    csrf, csrf_cookies = jar.csrf(request)
    context: dict[str, Any] = {
        "service_name": runtime.settings.mail.issuer_name,
        "client_name": client.name,
        "request": urlencode(params),
        "csrf": csrf,
        "lang": (auth.ui_locales or "en").split()[0],
    }
    if step == "authenticate" and problem is None and fresh_login and client.require_mfa:
        problem = ClientRequiresMfa()  # a new account signed up here: it has no factor yet
    if step == "authenticate":
        status, headers = (problem.status_code, problem.headers()) if problem else (200, {})
        return render(
            "signin",
            status=status,
            scripts=True,
            headers=headers,
            redirect_uri=redirect_uri,
            cookies=[*set_cookies, *csrf_cookies],
            email=auth.login_hint or "",
            error=problem.description if problem else None,
            **context,
        )
    assert session is not None
    if step == "consent":
        user = await runtime.database.get_user(session.user_id)
        return render(
            "consent",
            redirect_uri=redirect_uri,
            cookies=[*set_cookies, *csrf_cookies],
            email=user.email if user else "",
            scopes=[SCOPE_TEXT.get(scope, scope) for scope in auth.scopes],
            **context,
        )
    code = await runtime.provider.issue_code(auth, session)
    return _redirect(success_redirect(auth, code, runtime.settings.issuer), set_cookies)


class AuthorizeController(Controller):
    path = "/oauth2/authorize"
    include_in_schema = False

    @get("/")
    async def authorize_get(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[Any]:
        """The authorization endpoint (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1)."""
        try:
            params = _params(list(request.query_params.multi_items()))
        except UnknownClientOrRedirect as exc:
            return _error_page(runtime, exc)
        return await _flow(request, runtime, params)

    @post("/", status_code=200)
    async def authorize_post(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[Any]:
        """The same, with the parameters form-encoded (OpenID Connect Core §3.1.2.1)."""
        form = await read_form(request)
        return await _flow(request, runtime, form)

    @post("/signin", status_code=200)
    async def signin(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[Any]:
        """Identify and authenticate (email + password), then continue the request."""
        form = await read_form(request)
        try:
            params, client, _ = await _pending(request, runtime, form)
        except UnknownClientOrRedirect as exc:
            return _error_page(runtime, exc)
        try:
            _, tokens = await runtime.accounts.login(
                form.get("email", ""),
                form.get("password", ""),
                request.headers.get("user-agent"),
                request_ip(request, runtime.guard),
                origin=BROWSER_ORIGIN,
                require_mfa=client.require_mfa,
            )
        except MfaRequired as required:
            if isinstance(required, MfaEnrollmentRequired):  # enrolment is done through the API
                return await _flow(
                    request, runtime, {**params, "login_hint": form.get("email", "")}, problem=required
                )
            return await self._second_factor(request, runtime, params, required.mfa_token)
        except IdPError as exc:
            if exc.status_code not in {401, 429, 503}:
                raise
            return await _flow(request, runtime, {**params, "login_hint": form.get("email", "")}, problem=exc)
        return await self._signed_in(request, runtime, params, tokens.refresh_token or "")

    @post("/passkey", status_code=200)
    async def passkey(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[Any]:
        """Passwordless: the assertion the sign-in page's script got for a discoverable passkey."""
        form = await read_form(request)
        try:
            params, _, _ = await _pending(request, runtime, form)
        except UnknownClientOrRedirect as exc:
            return _error_page(runtime, exc)
        try:
            credential = bounded_json.decode(form.get("credential", "").encode())
            if not isinstance(credential, dict):
                raise InvalidPasskey
            tokens = await runtime.mfa.passwordless(
                form.get("state", ""), credential, request.headers.get("user-agent"), origin=BROWSER_ORIGIN
            )
        except (IdPError, msgspec.DecodeError) as exc:
            problem = exc if isinstance(exc, IdPError) else InvalidPasskey()
            if problem.status_code >= 500:
                raise
            return await _flow(request, runtime, params, problem=problem)
        return await self._signed_in(request, runtime, params, tokens.refresh_token or "")

    @post("/mfa/passkey", status_code=200)
    async def second_factor_passkey(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[Any]:
        """The second step with a passkey of the ticket's account (the page's script)."""
        form = await read_form(request)
        try:
            params, _, _ = await _pending(request, runtime, form)
        except UnknownClientOrRedirect as exc:
            return _error_page(runtime, exc)
        ticket = form.get("mfa_token", "")
        try:
            credential = bounded_json.decode(form.get("credential", "").encode())
            if not isinstance(credential, dict):
                raise InvalidPasskey
            tokens = await runtime.mfa.complete_with_passkey(
                ticket,
                form.get("state", ""),
                credential,
                request.headers.get("user-agent"),
                origin=BROWSER_ORIGIN,
            )
        except InvalidMfaToken as exc:
            return await _flow(request, runtime, params, problem=exc)
        except (IdPError, msgspec.DecodeError) as exc:
            problem = exc if isinstance(exc, IdPError) else InvalidPasskey()
            if problem.status_code >= 500:
                raise
            return await self._second_factor(request, runtime, params, ticket, problem=problem)
        return await self._signed_in(request, runtime, params, tokens.refresh_token or "")

    @post("/mfa", status_code=200)
    async def second_factor(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[Any]:
        """The second step: the ticket of the password step and a TOTP or recovery code."""
        form = await read_form(request)
        try:
            params, _, _ = await _pending(request, runtime, form)
        except UnknownClientOrRedirect as exc:
            return _error_page(runtime, exc)
        ticket = form.get("mfa_token", "")
        try:
            tokens = await runtime.mfa.complete(
                ticket, form.get("code", ""), request.headers.get("user-agent"), origin=BROWSER_ORIGIN
            )
        except InvalidMfaToken as exc:  # expired or used: start the sign-in again
            return await _flow(request, runtime, params, problem=exc)
        except IdPError as exc:
            if exc.status_code not in {401, 429, 503}:
                raise
            return await self._second_factor(request, runtime, params, ticket, problem=exc)
        return await self._signed_in(request, runtime, params, tokens.refresh_token or "")

    @staticmethod
    async def _second_factor(
        request: Request[Any, Any, Any],
        runtime: Runtime,
        params: dict[str, str],
        ticket: str,
        problem: IdPError | None = None,
    ) -> Response[Any]:
        client, redirect_uri = await resolve_client(params, runtime.clients)
        csrf, cookies = browser_cookies(runtime).csrf(request)
        return render(
            "mfa",
            status=problem.status_code if problem else 200,
            scripts=True,
            headers=problem.headers() if problem else None,
            redirect_uri=redirect_uri,
            cookies=cookies,
            service_name=runtime.settings.mail.issuer_name,
            client_name=client.name,
            request=urlencode(params),
            csrf=csrf,
            mfa_token=ticket,
            error=problem.description if problem else None,
        )

    @get("/signup")
    async def signup_page(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[Any]:
        """The sign-up form for a pending authorization request."""
        try:
            params = _decode(request.query_params.get("request", ""))
            client, _ = await resolve_client(params, runtime.clients)
        except UnknownClientOrRedirect as exc:
            return _error_page(runtime, exc)
        return self._signup_form(request, runtime, params, client.name)

    @post("/signup", status_code=200)
    async def signup(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[Any]:
        """Create the account (the same policy and limits as ``/v1/signup``), sign in, continue."""
        form = await read_form(request)
        try:
            params, client, _ = await _pending(request, runtime, form)
        except UnknownClientOrRedirect as exc:
            return _error_page(runtime, exc)
        try:
            _, tokens = await runtime.accounts.signup(
                form.get("email", ""),
                form.get("password", ""),
                form.get("name") or None,
                request.headers.get("user-agent"),
                request_ip(request, runtime.guard),
                origin=BROWSER_ORIGIN,
            )
        except IdPError as exc:
            if exc.status_code not in {409, 422, 429, 503}:
                raise
            return self._signup_form(request, runtime, params, client.name, form=form, problem=exc)
        if tokens is None:  # IDP_EMAIL_VERIFICATION=required: sign in once the mailed link is followed
            problem = EmailNotVerified()
            return self._signup_form(request, runtime, params, client.name, form=form, problem=problem)
        return await self._signed_in(request, runtime, params, tokens.refresh_token or "")

    @post("/consent", status_code=200)
    async def consent(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[Any]:
        """Allow (remembered per client and scope) or deny, then back to the client."""
        form, jar = await read_form(request), browser_cookies(runtime)
        try:
            params, client, redirect_uri = await _pending(request, runtime, form)
        except UnknownClientOrRedirect as exc:
            return _error_page(runtime, exc)
        token = jar.session_token(request)
        session = await runtime.sessions.browser_session(token) if token else None
        if session is None:
            return await _flow(request, runtime, params)
        if form.get("decision") != "allow":
            denied = error_redirect(
                redirect_uri, AccessDenied(), params.get("state"), runtime.settings.issuer
            )
            return _redirect(denied, [])
        try:
            auth = parse_request(client, redirect_uri, params)
        except IdPError:
            return await _flow(request, runtime, params)
        await runtime.provider.grant_consent(session.user_id, auth)
        return await _flow(request, runtime, params, session=session, consented=True)

    async def _signed_in(
        self, request: Request[Any, Any, Any], runtime: Runtime, params: dict[str, str], token: str
    ) -> Response[Any]:
        jar = browser_cookies(runtime)
        session = await runtime.sessions.browser_session(token)
        if session is None:  # ended between sign-in and now (account disabled meanwhile)
            return await _flow(request, runtime, params, problem=InvalidCredentials())
        previous = jar.session_token(request)
        if previous and (old := await runtime.sessions.browser_session(previous)) is not None:
            await runtime.sessions.revoke(old.id)
        return await _flow(
            request, runtime, params, session=session, fresh_login=True, cookies=[jar.session(token)]
        )

    @staticmethod
    def _signup_form(
        request: Request[Any, Any, Any],
        runtime: Runtime,
        params: dict[str, str],
        client_name: str,
        *,
        form: dict[str, str] | None = None,
        problem: IdPError | None = None,
    ) -> Response[str]:
        csrf, cookies = browser_cookies(runtime).csrf(request)
        return render(
            "signup",
            status=problem.status_code if problem else 200,
            headers=problem.headers() if problem else None,
            redirect_uri=params.get("redirect_uri"),
            cookies=cookies,
            service_name=runtime.settings.mail.issuer_name,
            client_name=client_name,
            request=urlencode(params),
            csrf=csrf,
            email=(form or {}).get("email", params.get("login_hint", "")),
            name=(form or {}).get("name", ""),
            error=problem.description if problem else None,
        )
