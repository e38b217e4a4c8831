"""The composition root: builds the domain services from settings, starts and stops them.

Used by the HTTP app's lifespan and by the CLI, so both run the same wiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from service.abuse import AbuseGuard
from service.accounts import Accounts
from service.admin.access import AdminAccess
from service.admin.audit_log import AuditRecorder
from service.admin.users import UserAdmin
from service.audit import add_sink, remove_sink
from service.backends import Stores, open_stores
from service.clients import Clients
from service.clock import Clock, system_clock
from service.config import Settings
from service.exchange.grant import TokenExchange
from service.exchange.remote_jwks import RemoteJWKS
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

__all__ = ["Runtime", "StartupError"]

logger = logging.getLogger("idp")


class StartupError(Exception):
    """The service cannot start with this configuration; the message says why."""


class Runtime:
    """Everything a running instance holds; attributes exist once :meth:`start` returned."""

    database: Database
    families: FamilyStore
    clients: Clients
    sessions: Sessions
    keyring: KeyRing
    passwords: PasswordService
    access_tokens: AccessTokens
    accounts: Accounts
    exchange: TokenExchange
    guard: AbuseGuard
    outbox: MailOutbox
    account_tokens: AccountTokenStore
    mail_worker: DeliveryWorker
    recovery: PasswordRecovery
    mfa: Mfa
    id_tokens: IdTokens
    provider: Provider
    audit_log: AuditRecorder
    admin_access: AdminAccess
    user_admin: UserAdmin
    profiles: Profiles
    verification: EmailVerification
    email_change: EmailChange
    quiet_signup: QuietSignup

    def __init__(self, settings: Settings, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self.background = Background()

    async def start(self, *, with_keys: bool = True, deliver_mail: bool = False) -> None:
        """``deliver_mail``: also run the outbox delivery worker (``idp serve``, ``idp mail work``)."""
        settings = self.settings
        stores = await open_stores(settings.storage)
        self.database, self.families = stores.database, stores.families
        self.outbox, self.account_tokens = stores.outbox, stores.account_tokens
        assertions = ClientAssertions(
            replay=stores.replay,
            audiences=(settings.issuer, f"{settings.issuer}/oauth2/token"),
            clock=self.clock,
        )
        self.clients = Clients(stores.clients, self.clock, settings.trust.clients, assertions)
        if settings.storage.auto_migrate:
            applied = await self.database.migrate()
            if applied:
                logger.info("applied migrations %s", ", ".join(applied))
        self.passwords = PasswordService(
            memory_kib=settings.argon2.memory_kib,
            time_cost=settings.argon2.time_cost,
            parallelism=settings.argon2.parallelism,
            threads=settings.argon2.threads,
            max_queue=settings.argon2.max_queue,
            idle_priority=settings.argon2.priority == "idle",
        )
        self.keyring = KeyRing(settings.keys.dir, self.clock, settings.keys.signing_alg)
        if with_keys:
            self._load_keys()
            if settings.keys.reload_interval > 0:
                self._tasks.append(asyncio.create_task(self._reload_keys_forever()))
        self.access_tokens = AccessTokens(
            keyring=self.keyring,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl=settings.sessions.access_token_ttl,
            clock=self.clock,
        )
        self.id_tokens = IdTokens(
            keyring=self.keyring,
            issuer=settings.issuer,
            ttl=settings.sessions.access_token_ttl,
            clock=self.clock,
        )
        self.sessions = Sessions(
            families=self.families,
            users=self.database,
            access_tokens=self.access_tokens,
            policy=SessionPolicy(
                absolute_ttl=settings.sessions.absolute_ttl,
                idle_ttl=settings.sessions.idle_ttl,
                reuse_grace=settings.sessions.reuse_grace,
            ),
            clock=self.clock,
        )
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(3.0), follow_redirects=False)
        remote_jwks = {
            issuer.issuer: RemoteJWKS(
                issuer=issuer.issuer, url=issuer.jwks_uri, http=self._http, clock=self.clock
            )
            for issuer in settings.trust.issuers.values()
        }
        self.exchange = TokenExchange(
            issuers=settings.trust.issuers,
            jwks=remote_jwks,
            identities=self.database,
            replay=stores.replay,
            sessions=self.sessions,
            audience=settings.audience,
            clock=self.clock,
        )
        self.guard = AbuseGuard(stores.limiter, settings.limits, self.clock, settings.trusted_proxies)
        self.mail_worker = DeliveryWorker(
            outbox=self.outbox,
            transport=self._transport(),
            sender=settings.mail.sender,
            clock=self.clock,
            policy=RetryPolicy(max_attempts=settings.mail.max_attempts, base_delay=settings.mail.retry_base),
        )
        if deliver_mail:
            if settings.mail.smtp is None:
                logger.info("no IDP_SMTP_URL: mail is written to %s/*.eml", settings.mail.folder)
            self._tasks.append(asyncio.create_task(self.mail_worker.run_forever()))
        renderer = MailRenderer(settings.mail)
        self.verification = EmailVerification(
            users=self.database,
            tokens=self.account_tokens,
            renderer=renderer,
            limiter=stores.limiter,
            settings=settings.mail,
            clock=self.clock,
            background=self.background,
            mail_queued=self.mail_worker.wake,
        )
        self.recovery = PasswordRecovery(
            users=self.database,
            tokens=self.account_tokens,
            passwords=self.passwords,
            sessions=self.sessions,
            renderer=renderer,
            limiter=stores.limiter,
            settings=settings.mail,
            clock=self.clock,
            background=self.background,
            mail_queued=self.mail_worker.wake,
        )
        secrets_key, created = ensure_secrets_key(settings.keys.dir)
        if created:
            logger.warning("no secrets-at-rest key in %s: generated one", settings.keys.dir)
        box = SecretBox(secrets_key)
        self.mfa = Mfa(
            store=stores.mfa,
            users=self.database,
            box=box,
            tickets=Tickets(box, stores.replay, self.clock, settings.mfa.ticket_ttl),
            replay=stores.replay,
            limiter=stores.limiter,
            outbox=self.outbox,
            sessions=self.sessions,
            settings=settings.mfa,
            public_url=settings.mail.public_url,
            clock=self.clock,
        )
        self.profiles = Profiles(
            users=self.database,
            tokens=self.account_tokens,
            passwords=self.passwords,
            sessions=self.sessions,
            clock=self.clock,
        )
        self.accounts = Accounts(
            users=self.database,
            passwords=self.passwords,
            sessions=self.sessions,
            guard=self.guard,
            clock=self.clock,
            mfa=self.mfa,
            verification=self.verification,
        )
        self.provider = Provider(
            store=stores.oidc,
            users=self.database,
            sessions=self.sessions,
            id_tokens=self.id_tokens,
            clock=self.clock,
        )
        self.email_change = EmailChange(
            users=self.database,
            tokens=self.account_tokens,
            passwords=self.passwords,
            sessions=self.sessions,
            renderer=renderer,
            settings=settings.mail,
            clock=self.clock,
            mail_queued=self.mail_worker.wake,
        )
        self.quiet_signup = QuietSignup(
            accounts=self.accounts,
            users=self.database,
            tokens=self.account_tokens,
            verification=self.verification,
            renderer=renderer,
            guard=self.guard,
            clock=self.clock,
            background=self.background,
            mail_queued=self.mail_worker.wake,
        )
        self._start_admin(stores)

    def _start_admin(self, stores: Stores) -> None:
        """The stored audit trail (every event from now on) and the admin operations."""
        settings = self.settings
        self.audit_log = AuditRecorder(
            stores.admin, self.clock, retention_days=settings.admin.audit_retention_days
        )
        add_sink(self.audit_log.record)
        self._tasks.append(asyncio.create_task(self.audit_log.run_forever()))
        self.admin_access = AdminAccess(
            access_tokens=self.access_tokens,
            clients=self.clients,
            limiter=stores.limiter,
            rule=settings.admin.client_rule,
            clock=self.clock,
        )
        self.user_admin = UserAdmin(
            accounts=self.accounts,
            users=self.database,
            directory=stores.admin,
            sessions=self.sessions,
            tokens=self.account_tokens,
            renderer=MailRenderer(settings.mail),
            invite_ttl=settings.admin.invite_ttl,
            mfa=self.mfa,
            profiles=self.profiles,
            mail_queued=self.mail_worker.wake,
            clock=self.clock,
        )

    def _transport(self) -> Transport:
        mail = self.settings.mail
        if mail.smtp is not None:
            return SmtpTransport(mail.smtp)
        return FileTransport(mail.folder)

    def _load_keys(self) -> None:
        settings = self.settings
        if settings.env == "development":
            created = ensure_signing_key(settings.keys.dir, settings.keys.signing_alg, self.clock())
            if created is not None:
                logger.warning(
                    "no signing key in %s: generated %s key %s (development only)",
                    settings.keys.dir,
                    created.alg,
                    created.kid,
                )
            rs256 = ensure_alg_key(settings.keys.dir, "RS256", self.clock())
            if rs256 is not None:
                logger.warning("generated RS256 key %s for ID tokens (development only)", rs256.kid)
        self.keyring.refresh()
        if not self.keyring.keys:
            raise StartupError(
                f"no signing keys in {settings.keys.dir} (IDP_KEYS_DIR); "
                "run `idp keys generate` before starting in production"
            )
        if "RS256" not in {key.alg for key in self.keyring.keys}:
            logger.warning(
                "no RS256 key in %s: OpenID Connect clients need one for ID tokens; "
                "run `idp keys rotate --alg RS256` (published now, signing after the delay)",
                settings.keys.dir,
            )

    async def _reload_keys_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.keys.reload_interval)
            try:
                if self.keyring.refresh():
                    logger.info("signing keys reloaded: %s", ", ".join(key.kid for key in self.keyring.keys))
            except Exception:
                logger.exception("key reload failed; keeping the previous keys")

    async def stop(self) -> None:
        await self.background.settle()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if hasattr(self, "audit_log"):
            remove_sink(self.audit_log.record)
            await self.audit_log.close()
        if hasattr(self, "passwords"):
            self.passwords.close()
        if hasattr(self, "_http"):
            await self._http.aclose()
        if hasattr(self, "families"):
            await self.families.close()
        if hasattr(self, "database"):
            await self.database.close()
