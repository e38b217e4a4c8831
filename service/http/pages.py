"""Hosted account pages (``/account/…``): the places a mailed link opens. HTML rendered from
``service/templates/account/`` (extending ``base.html``), autoescaped, never cached; the
security headers (CSP without script, no referrer) are the hosted pages' policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery

from service.errors import EmailTaken, IdPError, InvalidLinkToken
from service.http.auth import request_ip
from service.runtime import Runtime

__all__ = ["AccountPages"]

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
PAGE_HEADERS = {"Cache-Control": "no-store"}
"""The CSP (no script, forms to us only), no-referrer (the URL holds a token) and the frame
refusal come from :mod:`service.http.security_headers`, as for every hosted page."""
MAX_FORM_FIELD = 4096

_environment = Environment(
    loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True), auto_reload=False
)


def page(name: str, status: int = 200, **context: Any) -> Response[str]:
    html = _environment.get_template(f"account/{name}.html").render(context)
    return Response(html, status_code=status, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return {}
    form = await request.form()
    return {key: str(value)[:MAX_FORM_FIELD] for key, value in form.items() if isinstance(value, str)}


class AccountPages(Controller):
    path = "/account"
    include_in_schema = False

    @get("/reset")
    async def reset_page(
        self, runtime: NamedDependency[Runtime], token: FromQuery[str] = ""
    ) -> Response[str]:
        """With a link's token: the new-password form (or "this link expired"); without: ask
        for the address to send a link to."""
        name = runtime.settings.mail.issuer_name
        if not token:
            return page("reset_request", service_name=name)
        if not await runtime.recovery.is_valid(token):
            return page("link_invalid", status=400, service_name=name)
        return page("reset_confirm", service_name=name, token=token)

    @post("/reset", status_code=200)
    async def reset_submit(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[str]:
        form = await _form(request)
        name = runtime.settings.mail.issuer_name
        if "token" not in form:
            await runtime.recovery.request(form.get("email", ""), request_ip(request, runtime.guard))
            return page("reset_requested", status=202, service_name=name)
        try:
            await runtime.recovery.confirm(form["token"], form.get("new_password", ""))
        except InvalidLinkToken:
            return page("link_invalid", status=400, service_name=name)
        except IdPError as exc:
            if exc.status_code != 422:
                raise
            return page(
                "reset_confirm", status=422, service_name=name, token=form["token"], error=exc.description
            )
        return page("reset_done", service_name=name)

    @get("/verify")
    async def verify_page(
        self, runtime: NamedDependency[Runtime], token: FromQuery[str] = ""
    ) -> Response[str]:
        """A button that confirms (a GET never does: mail scanners open links)."""
        name = runtime.settings.mail.issuer_name
        if not await runtime.verification.is_valid(token):
            return page("link_invalid", status=400, service_name=name)
        return page("verify_confirm", service_name=name, token=token)

    @post("/verify", status_code=200)
    async def verify_submit(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[str]:
        form = await _form(request)
        name = runtime.settings.mail.issuer_name
        try:
            await runtime.verification.confirm(form.get("token", ""))
        except InvalidLinkToken:
            return page("link_invalid", status=400, service_name=name)
        return page("verify_done", service_name=name)

    @get("/email")
    async def email_page(
        self, runtime: NamedDependency[Runtime], token: FromQuery[str] = ""
    ) -> Response[str]:
        """A button that applies an email change (the GET itself changes nothing)."""
        name = runtime.settings.mail.issuer_name
        if not await runtime.email_change.is_valid(token):
            return page("link_invalid", status=400, service_name=name)
        return page("email_confirm", service_name=name, token=token)

    @post("/email", status_code=200)
    async def email_submit(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[str]:
        form = await _form(request)
        name = runtime.settings.mail.issuer_name
        try:
            user = await runtime.email_change.confirm(form.get("token", ""))
        except InvalidLinkToken:
            return page("link_invalid", status=400, service_name=name)
        except EmailTaken:
            return page("email_taken", status=409, service_name=name)
        return page("email_done", service_name=name, email=user.email)
