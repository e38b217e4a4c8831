"""``create_app(settings)``: the Litestar application. Nothing happens at import time."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag

from service.clock import Clock, system_clock
from service.config import Settings, load_settings
from service.grants import GRANT_TYPES
from service.http.accounts import LOGIN_PATH, AccountsController
from service.http.admin import AdminController
from service.http.auth import bearer_claims
from service.http.authorize import AuthorizeController
from service.http.bodies import BoundedRequest
from service.http.errors import EXCEPTION_HANDLERS
from service.http.fast import JWKSEndpoint, LoginEndpointFast, TokenEndpointFast
from service.http.health import HealthController, metrics
from service.http.lifecycle import LifecycleController
from service.http.mfa import MfaController
from service.http.oauth import TOKEN_PATH, OAuthController
from service.http.observe import ObservabilityMiddleware
from service.http.oidc import LogoutController, UserinfoController, stylesheet
from service.http.openapi import render_plugins
from service.http.pages import AccountPages
from service.http.passkeys import PasskeyController, passkey_script
from service.http.prerouter import FastRoute, PlainRoute, PreRouter
from service.http.security_headers import DOCS_PATH, SecurityHeaders, json_headers
from service.http.wellknown import JWKS_PATH, WellKnownController
from service.runtime import Runtime, open_runtime
from service.tokens.access import quiet_eddsa_deprecation

__all__ = ["create_app", "create_app_from_env", "serving"]


@asynccontextmanager
async def serving(app: Litestar, *, deliver_mail: bool = False) -> AsyncIterator[Runtime]:
    """Open the app's runtime and publish it as ``app.state.runtime`` while the block runs (the
    lifespan does this; tests do it on their own event loop, without the mail worker)."""
    slot: RuntimeSlot = app.state.runtime_slot
    async with open_runtime(app.state.settings, app.state.clock, deliver_mail=deliver_mail) as runtime:
        app.state.runtime = slot.runtime = runtime
        try:
            yield runtime
        finally:
            del app.state.runtime
            slot.runtime = None


class RuntimeSlot:
    """The runtime ``serving`` published, for the per-request getters: a plain attribute read
    (``app.state.runtime`` goes through Litestar's ``State.__getattr__``, which only runs after
    the ordinary lookup has built and dropped an ``AttributeError``: ~1 µs per request)."""

    __slots__ = ("runtime",)

    def __init__(self) -> None:
        self.runtime: Runtime | None = None

    def get(self) -> Runtime:
        runtime = self.runtime
        if runtime is None:
            raise RuntimeError("the app's runtime is not open (serving(app) / the lifespan)")
        return runtime


ADMIN_TAG = (
    "Account, session, client and audit administration for back offices. Authorised only by a "
    "client_credentials access token whose scopes name the operation."
)
ADMIN_TOKEN = (
    "An access token from grant_type=client_credentials, for a client registered with the admin "
    "scopes it needs: admin:users:read, admin:users:write, admin:sessions:write, admin:audit:read, "
    "admin:clients:write."
)


GC_YOUNG_THRESHOLD = 10_000
"""Container allocations between two collections of the youngest generation (CPython: 700)."""


def _settle_gc() -> None:
    """Once a worker is ready to serve: what exists now (modules, the app, the runtime) lives
    as long as the process, so it leaves the collector's generations (``gc.freeze``) and full
    collections stop walking it; and the youngest generation is collected every
    ``GC_YOUNG_THRESHOLD`` allocations rather than 700, so requests in flight are not walked
    again and again (a refresh allocates a few hundred containers, almost all freed by
    reference counting). Cycles still get collected, later (docs/PERFORMANCE.md)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def create_app(settings: Settings, *, clock: Clock = system_clock) -> Litestar:
    quiet_eddsa_deprecation()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with serving(app, deliver_mail=settings.mail.worker):
            _settle_gc()
            _lean_log_records()
            yield

    slot = RuntimeSlot()
    cors = (
        CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
            max_age=600,
        )
        if settings.cors_origins
        else None
    )
    app = Litestar(
        route_handlers=[
            AccountsController,
            LifecycleController,
            AccountPages,
            MfaController,
            PasskeyController,
            AdminController,
            passkey_script,
            OAuthController,
            AuthorizeController,
            UserinfoController,
            LogoutController,
            stylesheet,
            WellKnownController,
            HealthController,
            metrics,
        ],
        lifespan=[lifespan],
        # One dependency per handler (plus ``claims``, which depends on it): Litestar resolves
        # independent dependencies concurrently in an anyio task group, a cost on every request.
        dependencies={
            "runtime": Provide(slot.get, sync_to_thread=False),
            "claims": Provide(bearer_claims),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        cors_config=cors,
        middleware=[ObservabilityMiddleware],
        request_max_body_size=settings.max_body_bytes,
        request_class=BoundedRequest,
        openapi_config=OpenAPIConfig(
            title="idp",
            version="0.1.0",
            path=DOCS_PATH,
            render_plugins=render_plugins(),
            tags=[Tag(name="admin", description=ADMIN_TAG)],
            components=Components(
                security_schemes={
                    "adminClientToken": SecurityScheme(
                        type="http", scheme="bearer", bearer_format="JWT", description=ADMIN_TOKEN
                    )
                }
            ),
        ),
        logging_config=_logging_config(),
        debug=False,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.runtime_slot = slot
    jwks_cache_control = CacheControlHeader(public=True, max_age=settings.keys.jwks_max_age).to_header()
    app.state.jwks_cache_control = jwks_cache_control
    app.state.grant_types = GRANT_TYPES
    app.state.discovery_cache = {}
    common_headers = json_headers(settings.hsts_max_age)

    # The pre-router's table: the hot endpoints answered before Litestar routing.
    jwks = JWKSEndpoint(slot.get, cache_control=jwks_cache_control)
    token = TokenEndpointFast(slot.get, max_body_bytes=settings.max_body_bytes, path=TOKEN_PATH)
    login = LoginEndpointFast(slot.get, max_body_bytes=settings.max_body_bytes, path=LOGIN_PATH)
    app.asgi_handler = PreRouter(
        SecurityHeaders(app.asgi_handler, hsts_max_age=settings.hsts_max_age),
        {
            ("GET", JWKS_PATH): PlainRoute(jwks),  # counted in idp_jwks_responses_total
            ("HEAD", JWKS_PATH): PlainRoute(jwks),
            ("POST", TOKEN_PATH): FastRoute(token),
            ("POST", LOGIN_PATH): FastRoute(login),
        },
        common_headers=common_headers,
        defer_on_origin=cors is not None,
    )
    return app


def _logging_config() -> LoggingConfig:
    """Log lines straight to stderr from the thread that logs (as uvicorn's own loggers do),
    not through Litestar's default queue and listener thread: with an audit line per request,
    handing each line to another thread cost more CPU than writing it (waking the listener and
    passing the GIL back and forth; docs/PERFORMANCE.md)."""
    console = {"level": "INFO", "handlers": ["console"], "propagate": False}
    return LoggingConfig(
        root={"handlers": ["console"], "level": "INFO"},
        loggers={"litestar": console},
        # Litestar's default less ``%(module)s``: the logger's name says where a line comes from,
        # and without it a record needs no caller lookup (see ``_lean_log_records``).
        formatters={"standard": {"format": "%(levelname)s - %(asctime)s - %(name)s - %(message)s"}},
    )


def _lean_log_records() -> None:
    """A worker's log records skip what no line of ours prints: the caller's file and line
    (a walk up the stack per record), thread and process names. The logging HOWTO's
    "Optimization" section names these switches; with an audit line per token rotation they
    were a fifth of the line's cost (docs/PERFORMANCE.md)."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # documented in the logging HOWTO


def create_app_from_env() -> Litestar:
    """The uvicorn factory (``--factory``): reads ``IDP_*`` when a worker starts."""
    return create_app(load_settings(os.environ))
