"""Abuse resistance for the credential endpoints: who is asking, how often, and how to answer.

- Per IP and per IP + account: hard limits, answered 429 with ``Retry-After`` and the
  ``RateLimit-Policy`` / ``RateLimit`` headers.
- Per account: a *progressive delay*, never a lock. Failed logins spend the account's budget;
  once it is spent, every login attempt for that account waits (at most ``max_delay``) before
  the password is checked. An attacker spreading guesses over many IPs slows to a crawl, while
  the real user, from any IP, still gets in after that documented delay.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
from collections.abc import Awaitable, Callable, Sequence

from service.audit import audit
from service.clock import Clock
from service.config import RateLimitSettings
from service.emails import email_key
from service.errors import IdPError
from service.limits import Decision, RateLimiter, Rule

__all__ = ["AbuseGuard", "RateLimited", "account_key", "client_ip"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimited(IdPError):
    error = "rate_limited"
    status_code = 429
    default_description = "Too many requests; retry later."

    def __init__(self, rule: Rule, decision: Decision) -> None:
        super().__init__()
        self.rule = rule
        self.decision = decision

    def headers(self) -> dict[str, str]:
        retry = max(1, math.ceil(self.decision.retry_after))
        return {
            "Retry-After": str(retry),
            "RateLimit-Policy": self.rule.policy_header(),
            "RateLimit": f'"{self.rule.name}";r=0;t={retry}',
        }


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The caller's address: the peer, unless the peer is a trusted proxy, in which case the
    right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy."""
    address = peer or "unknown"
    if not forwarded_for or not _is_trusted(address, trusted):
        return address
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # a malformed chain is not believed
        if not _is_trusted(hop, trusted):
            return hop
    return address


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def account_key(email: str) -> str:
    """The limiter key of an account: a hash of its normalised address (no plain emails in Redis
    keys), so every spelling that reaches the account spends the same budget."""
    return hashlib.sha256(email_key(email).encode()).hexdigest()[:32]


class AbuseGuard:
    def __init__(
        self,
        limiter: RateLimiter,
        rules: RateLimitSettings,
        clock: Clock,
        trusted_proxies: Sequence[str] = (),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limiter = limiter
        self._rules = rules
        self._clock = clock
        self._sleep = sleep
        self._trusted = tuple(ipaddress.ip_network(cidr) for cidr in trusted_proxies)

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str:
        return client_ip(peer, forwarded_for, self._trusted)

    async def _enforce(self, key: str, rule: Rule, ip: str) -> None:
        self._refuse_unless_allowed(rule, await self._limiter.hit(key, rule, self._clock()), ip)

    @staticmethod
    def _refuse_unless_allowed(rule: Rule, decision: Decision, ip: str) -> None:
        if not decision.allowed:
            audit("rate_limited", outcome=rule.name, ip=ip)
            raise RateLimited(rule, decision)

    async def before_login(self, ip: str, email: str) -> None:
        """Hard limits, then the account's progressive delay.

        The three decisions are asked for at once (one round trip to a shared limiter instead
        of three); so an attempt refused by the per-IP limit still counts against its IP +
        account pair, which only keeps an attacker who is over the limit there longer."""
        account, rules, now = account_key(email), self._rules, self._clock()
        by_ip, by_pair, budget = await asyncio.gather(
            self._limiter.hit(ip, rules.login_ip, now),
            self._limiter.hit(f"{ip}|{account}", rules.login_ip_account, now),
            self._limiter.peek(account, rules.login_account_failures, now),
        )
        for rule, decision in ((rules.login_ip, by_ip), (rules.login_ip_account, by_pair)):
            self._refuse_unless_allowed(rule, decision, ip)
        if not budget.allowed:
            await self._sleep(min(budget.retry_after, rules.login_max_delay))

    async def login_failed(self, email: str) -> None:
        await self._limiter.hit(account_key(email), self._rules.login_account_failures, self._clock())

    async def before_signup(self, ip: str) -> None:
        await self._enforce(ip, self._rules.signup_ip, ip)

    async def before_token(self, ip: str, client_id: str | None) -> None:
        """Per IP and, when the request names a client, per client: asked for at once."""
        rules, now = self._rules, self._clock()
        if not client_id:
            self._refuse_unless_allowed(rules.token_ip, await self._limiter.hit(ip, rules.token_ip, now), ip)
            return
        by_ip, by_client = await asyncio.gather(
            self._limiter.hit(ip, rules.token_ip, now), self._limiter.hit(client_id, rules.token_client, now)
        )
        self._refuse_unless_allowed(rules.token_ip, by_ip, ip)
        self._refuse_unless_allowed(rules.token_client, by_client, ip)
