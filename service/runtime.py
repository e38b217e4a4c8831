"""The composition root: ``async with open_runtime(settings, clock) as runtime`` opens the
backends, migrates, loads the keys and builds the domain services; leaving the block stops
them in the reverse order (a start that fails half-way closes what it had opened). The
:class:`Runtime` it yields is frozen and complete.

Used by the HTTP app's lifespan and by the CLI, so both run the same wiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx

from service.abuse import AbuseGuard
from service.accounts import Accounts
from service.admin.access import AdminAccess
from service.admin.audit_log import AuditRecorder
from service.admin.users import UserAdmin
from service.audit import add_sink, remove_sink
from service.backends import open_stores
from service.clients import Clients, declared_registrations
from service.clock import Clock, system_clock
from service.config import Settings
from service.exchange.grant import TokenExchange
from service.exchange.remote_jwks import RemoteJWKS
from service.grants import GrantServices, TokenEndpoint
from service.keys.files import ensure_alg_key, ensure_signing_key
from service.keys.keyring import KeyRing
from service.keys.secrets import SecretBox, ensure_secrets_key
from service.lifecycle.email_change import EmailChange
from service.lifecycle.links import Background
from service.lifecycle.profile import Profiles
from service.lifecycle.recovery import PasswordRecovery
from service.lifecycle.signup import QuietSignup
from service.lifecycle.verification import EmailVerification
from service.mail.templates import MailRenderer
from service.mail.transports import FileTransport, SmtpTransport, Transport
from service.mail.worker import DeliveryWorker, RetryPolicy
from service.mfa.service import Mfa
from service.mfa.tickets import Tickets
from service.oidc.client_assertion import ClientAssertions
from service.oidc.id_token import IdTokens
from service.oidc.provider import Provider
from service.passwords import PasswordService
from service.sessions import SessionPolicy, Sessions
from service.store.base import Database
from service.store.mail import AccountTokenStore, MailOutbox
from service.store.sessions import FamilyStore
from service.tokens.access import AccessTokens

__all__ = ["Runtime", "StartupError", "open_runtime"]

logger = logging.getLogger("idp")


class StartupError(Exception):
    """The service cannot start with this configuration; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Runtime:
    """Everything a running instance holds, all of it present from the start."""

    settings: Settings
    clock: Clock
    database: Database
    families: FamilyStore
    outbox: MailOutbox
    account_tokens: AccountTokenStore
    clients: Clients
    passwords: PasswordService
    keyring: KeyRing
    access_tokens: AccessTokens
    id_tokens: IdTokens
    sessions: Sessions
    exchange: TokenExchange
    guard: AbuseGuard
    tokens: TokenEndpoint
    mail_worker: DeliveryWorker
    background: Background
    verification: EmailVerification
    recovery: PasswordRecovery
    mfa: Mfa
    profiles: Profiles
    accounts: Accounts
    provider: Provider
    email_change: EmailChange
    quiet_signup: QuietSignup
    audit_log: AuditRecorder
    admin_access: AdminAccess
    user_admin: UserAdmin


@contextlib.asynccontextmanager
async def open_runtime(  # noqa: PLR0915 - the composition root names every service once, in order
    settings: Settings, clock: Clock = system_clock, *, with_keys: bool = True, deliver_mail: bool = False
) -> AsyncIterator[Runtime]:
    """Open everything, yield the runtime, close everything in the reverse order of opening.

    ``with_keys``: load the signing keys (and reload them when the folder changes);
    ``deliver_mail``: also run the outbox delivery worker (``idp serve``, ``idp mail work``)."""
    declared_clients = declared_registrations(settings.trust.clients)  # before opening anything
    async with contextlib.AsyncExitStack() as stack:
        background = Background()
        stores = await open_stores(settings.storage)
        stack.push_async_callback(stores.close)
        database, families = stores.database, stores.families
        outbox, account_tokens = stores.outbox, stores.account_tokens
        assertions = ClientAssertions(
            replay=stores.replay,
            audiences=(settings.issuer, f"{settings.issuer}/oauth2/token"),
            clock=clock,
        )
        clients = Clients(stores.clients, clock, declared_clients, assertions)
        if settings.storage.auto_migrate:
            applied = await database.migrate()
            if applied:
                logger.info("applied migrations %s", ", ".join(applied))
        passwords = PasswordService(
            memory_kib=settings.argon2.memory_kib,
            time_cost=settings.argon2.time_cost,
            parallelism=settings.argon2.parallelism,
            threads=settings.argon2.threads,
            max_queue=settings.argon2.max_queue,
            max_wait=settings.argon2.max_wait,
            idle_priority=settings.argon2.priority == "idle",
        )
        stack.callback(passwords.close)
        keyring = KeyRing(settings.keys.dir, clock, settings.keys.signing_alg)
        if with_keys:
            _load_keys(settings, keyring, clock)
            if settings.keys.reload_interval > 0:
                await stack.enter_async_context(_running(_reload_keys_forever(settings, keyring)))
        access_tokens = AccessTokens(
            keyring=keyring,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl=settings.sessions.access_token_ttl,
            clock=clock,
        )
        id_tokens = IdTokens(
            keyring=keyring,
            issuer=settings.issuer,
            ttl=settings.sessions.access_token_ttl,
            clock=clock,
        )
        sessions = Sessions(
            families=families,
            users=database,
            access_tokens=access_tokens,
            policy=SessionPolicy(
                absolute_ttl=settings.sessions.absolute_ttl,
                idle_ttl=settings.sessions.idle_ttl,
                reuse_grace=settings.sessions.reuse_grace,
            ),
            clock=clock,
        )
        http = await stack.enter_async_context(
            httpx.AsyncClient(timeout=httpx.Timeout(3.0), follow_redirects=False)
        )
        remote_jwks = {
            issuer.issuer: RemoteJWKS(issuer=issuer.issuer, url=issuer.jwks_uri, http=http, clock=clock)
            for issuer in settings.trust.issuers.values()
        }
        exchange = TokenExchange(
            issuers=settings.trust.issuers,
            jwks=remote_jwks,
            identities=database,
            replay=stores.replay,
            sessions=sessions,
            audience=settings.audience,
            clock=clock,
        )
        guard = AbuseGuard(stores.limiter, settings.limits, clock, settings.trusted_proxies)
        mail_worker = DeliveryWorker(
            outbox=outbox,
            transport=_transport(settings),
            sender=settings.mail.sender,
            clock=clock,
            policy=RetryPolicy(max_attempts=settings.mail.max_attempts, base_delay=settings.mail.retry_base),
        )
        if deliver_mail:
            if settings.mail.smtp is None:
                logger.info("no IDP_SMTP_URL: mail is written to %s/*.eml", settings.mail.folder)
            await stack.enter_async_context(_running(mail_worker.run_forever()))
        renderer = MailRenderer(settings.mail)
        verification = EmailVerification(
            users=database,
            tokens=account_tokens,
            renderer=renderer,
            limiter=stores.limiter,
            settings=settings.mail,
            clock=clock,
            background=background,
            mail_queued=mail_worker.wake,
        )
        recovery = PasswordRecovery(
            users=database,
            tokens=account_tokens,
            passwords=passwords,
            sessions=sessions,
            renderer=renderer,
            limiter=stores.limiter,
            settings=settings.mail,
            clock=clock,
            background=background,
            mail_queued=mail_worker.wake,
        )
        secrets_key, created = ensure_secrets_key(settings.keys.dir)
        if created:
            logger.warning("no secrets-at-rest key in %s: generated one", settings.keys.dir)
        box = SecretBox(secrets_key)
        mfa = Mfa(
            store=stores.mfa,
            users=database,
            box=box,
            tickets=Tickets(box, stores.replay, clock, settings.mfa.ticket_ttl),
            limiter=stores.limiter,
            outbox=outbox,
            sessions=sessions,
            settings=settings.mfa,
            public_url=settings.mail.public_url,
            clock=clock,
        )
        profiles = Profiles(
            users=database,
            tokens=account_tokens,
            passwords=passwords,
            sessions=sessions,
            clock=clock,
        )
        accounts = Accounts(
            users=database,
            passwords=passwords,
            sessions=sessions,
            guard=guard,
            clock=clock,
            mfa=mfa,
            verification=verification,
        )
        provider = Provider(
            store=stores.oidc,
            users=database,
            sessions=sessions,
            id_tokens=id_tokens,
            clock=clock,
        )
        email_change = EmailChange(
            users=database,
            tokens=account_tokens,
            passwords=passwords,
            sessions=sessions,
            renderer=renderer,
            settings=settings.mail,
            clock=clock,
            mail_queued=mail_worker.wake,
        )
        quiet_signup = QuietSignup(
            accounts=accounts,
            users=database,
            tokens=account_tokens,
            verification=verification,
            renderer=renderer,
            guard=guard,
            clock=clock,
            background=background,
            mail_queued=mail_worker.wake,
        )

        audit_log = AuditRecorder(stores.admin, clock, retention_days=settings.admin.audit_retention_days)
        add_sink(audit_log.record)
        stack.push_async_callback(_stop_recording, audit_log)
        await stack.enter_async_context(_running(audit_log.run_forever()))
        admin_access = AdminAccess(
            access_tokens=access_tokens,
            clients=clients,
            limiter=stores.limiter,
            rule=settings.admin.client_rule,
            clock=clock,
        )
        user_admin = UserAdmin(
            accounts=accounts,
            users=database,
            directory=stores.admin,
            sessions=sessions,
            tokens=account_tokens,
            renderer=MailRenderer(settings.mail),
            invite_ttl=settings.admin.invite_ttl,
            mfa=mfa,
            profiles=profiles,
            mail_queued=mail_worker.wake,
            clock=clock,
        )

        tokens = TokenEndpoint(
            guard=guard,
            clients=clients,
            services=GrantServices(
                sessions=sessions,
                access_tokens=access_tokens,
                exchange=exchange,
                clients=clients,
                provider=provider,
            ),
        )
        stack.push_async_callback(background.settle)  # first on the way out: work started by requests
        yield Runtime(
            settings=settings,
            clock=clock,
            database=database,
            families=families,
            outbox=outbox,
            account_tokens=account_tokens,
            clients=clients,
            passwords=passwords,
            keyring=keyring,
            access_tokens=access_tokens,
            id_tokens=id_tokens,
            sessions=sessions,
            exchange=exchange,
            guard=guard,
            tokens=tokens,
            mail_worker=mail_worker,
            background=background,
            verification=verification,
            recovery=recovery,
            mfa=mfa,
            profiles=profiles,
            accounts=accounts,
            provider=provider,
            email_change=email_change,
            quiet_signup=quiet_signup,
            audit_log=audit_log,
            admin_access=admin_access,
            user_admin=user_admin,
        )


@contextlib.asynccontextmanager
async def _running(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """``work`` as a task while the block runs; cancelled, and waited for, on the way out."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _stop_recording(audit_log: AuditRecorder) -> None:
    remove_sink(audit_log.record)
    await audit_log.close()


def _transport(settings: Settings) -> Transport:
    mail = settings.mail
    if mail.smtp is not None:
        return SmtpTransport(mail.smtp)
    return FileTransport(mail.folder)


def _load_keys(settings: Settings, keyring: KeyRing, clock: Clock) -> None:
    if settings.env == "development":
        created = ensure_signing_key(settings.keys.dir, settings.keys.signing_alg, clock())
        if created is not None:
            logger.warning(
                "no signing key in %s: generated %s key %s (development only)",
                settings.keys.dir,
                created.alg,
                created.kid,
            )
        rs256 = ensure_alg_key(settings.keys.dir, "RS256", clock())
        if rs256 is not None:
            logger.warning("generated RS256 key %s for ID tokens (development only)", rs256.kid)
    keyring.refresh()
    if not keyring.keys:
        raise StartupError(
            f"no signing keys in {settings.keys.dir} (IDP_KEYS_DIR); "
            "run `idp keys generate` before starting in production"
        )
    if "RS256" not in {key.alg for key in keyring.keys}:
        logger.warning(
            "no RS256 key in %s: OpenID Connect clients need one for ID tokens; "
            "run `idp keys rotate --alg RS256` (published now, signing after the delay)",
            settings.keys.dir,
        )


async def _reload_keys_forever(settings: Settings, keyring: KeyRing) -> None:
    while True:
        await asyncio.sleep(settings.keys.reload_interval)
        try:
            if keyring.refresh():
                logger.info("signing keys reloaded: %s", ", ".join(key.kid for key in keyring.keys))
        except Exception:
            logger.exception("key reload failed; keeping the previous keys")
