"""Password policy and argon2id hashing off the event loop.

Hashing and verification run in a bounded thread pool: both argon2 libraries below release the
GIL inside their C code, so ``threads`` verifications run truly in parallel while the event loop keeps serving
other requests (JWKS, token checks). A job that would wait longer than ``max_wait`` seconds
(estimated from the pool's recent hash times) or behind ``max_queue`` others is refused at once
(503 + ``Retry-After``), so an overloaded process answers the logins it admits in bounded time
instead of queueing without bound. Unknown emails are verified against a decoy hash made with
the same parameters so that they cost the same time as a wrong password.

The argon2 work itself is libsodium's (PyNaCl), whose argon2 uses the CPU's vector units (AVX2,
AVX-512) and computes the default hash in ~10 ms where argon2-cffi takes ~20. libsodium maps each
hash's memory afresh (``mmap`` with ``MAP_POPULATE``, ``munmap`` after), which costs the kernel
another ~7.5 ms in 4 KiB pages and ~1.8 ms when transparent huge pages are ``always``
(:func:`huge_page_mode`; docs/PERFORMANCE.md). Both write the same PHC strings
(``$argon2id$v=19$m=…,t=…,p=1$salt$hash``, 16-byte salt, 32-byte hash), so hashes made by
either verify with the other. argon2-cffi stays for what libsodium does not do: hashing with
``parallelism`` > 1, and verifying a hash that is not version 19 of argon2id or argon2i
(libsodium answers "wrong password" for a format it cannot read, so such hashes are never
handed to it).

Passwords are hashed in NFC (RFC 8265's OpaqueString form: the same characters typed on two
systems hash alike, but compatibility forms such as fullwidth letters or ligatures stay distinct).
Hashes made before issue 17 are of the NFKC form: a password whose two forms differ is checked
against NFC, then NFKC, and a match on the legacy form is rehashed on login (see README).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gzip
import os
import secrets
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TypeVar

import nacl.exceptions
import nacl.pwhash
import nacl.pwhash.argon2id
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from prometheus_client import Counter, Gauge

from service.errors import (
    PasswordBlank,
    PasswordInvalidCharacters,
    PasswordTooCommon,
    PasswordTooLong,
    PasswordTooShort,
    TemporarilyUnavailable,
)

__all__ = [
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "Match",
    "PasswordService",
    "check_password_policy",
    "huge_page_mode",
    "normalize_password",
]

T = TypeVar("T")
SERVICE_TIME_WEIGHT = 0.2
"""Weight of the newest job in the moving average of a job's wall time on the pool."""
ARGON2_QUEUE = Gauge("idp_argon2_pending", "argon2 hashes running or waiting in this process.")
ARGON2_SHED = Counter("idp_argon2_shed", "Requests refused because the argon2 queue was full.")

THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 128


@cache
def _common_passwords() -> frozenset[str]:
    data = resources.files("service").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode().split())


class Match(enum.Enum):
    NONE = "none"
    CURRENT = "current"
    LEGACY = "legacy"
    """The hash is of the password's NFKC form (made before issue 17): rehash it."""


def normalize_password(password: str) -> str:
    """NFC, so the same password typed on two systems hashes the same (RFC 8265 §4.2)."""
    return unicodedata.normalize("NFC", password)


def _legacy_form(password: str) -> str:
    """The form hashes were made of before issue 17 (NFKC)."""
    return unicodedata.normalize("NFKC", password)


_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Cn", "Co"})
"""Control characters, lone surrogates, unassigned and private-use code points (NIST SP 800-63B
§3.1.1.2 lets a verifier refuse them; they are mostly paste accidents or encoding damage)."""


def check_password_policy(password: str) -> str:
    """Return the normalised password or raise the specific policy error.

    Length counts Unicode characters after NFC; no composition rules; the 20k most common
    passwords are refused (compared case-insensitively in NFKC, so a fullwidth ``password``
    is common too); a password of only whitespace, or with a control character, is refused.
    """
    normalized = normalize_password(password)
    if len(normalized) < MIN_PASSWORD_CHARS:
        raise PasswordTooShort
    if len(normalized) > MAX_PASSWORD_CHARS:
        raise PasswordTooLong
    if any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in normalized):
        raise PasswordInvalidCharacters
    if not normalized.strip():
        raise PasswordBlank
    if _legacy_form(normalized).lower() in _common_passwords():
        raise PasswordTooCommon
    return normalized


def _timed(function: Callable[..., T], *args: str) -> tuple[T, float]:
    """Run ``function`` and return its result with the wall time it took (on the pool thread)."""
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


_SODIUM_FORMATS = (b"$argon2id$v=19$", b"$argon2i$v=19$")
"""The hash formats libsodium verifies; others (argon2d, version 16) go to argon2-cffi."""


def _sodium_verify(password_hash: bytes, password: bytes) -> bool:
    try:
        return nacl.pwhash.verify(password_hash, password)
    except (nacl.exceptions.InvalidkeyError, ValueError):  # a mismatch, or a hash it cannot read
        return False


def _idle_priority() -> None:
    """Put this argon2 thread in Linux's SCHED_IDLE class: when hashing saturates the cores, the
    event loop (JWKS, token checks, every other request) still gets a core the moment it wakes,
    and hashing keeps every cycle nothing else wants. Measured on 2 cores (2026-12-04): JWKS p99
    under login load 5.5-9.2 ms at normal priority, 2.8-6.4 ms with SCHED_IDLE."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def huge_page_mode(path: Path = THP_SETTING) -> str | None:
    """The kernel's transparent huge page mode (``always``, ``madvise``, ``never``: the bracketed
    word of ``path``), None where it cannot be read. libsodium's hashes get 2 MiB pages only
    with ``always``: it maps their memory itself, with no ``madvise``."""
    try:
        text = path.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


class PasswordService:
    """argon2id hash/verify with bounded parallelism and a decoy for unknown accounts."""

    def __init__(
        self,
        *,
        memory_kib: int,
        time_cost: int,
        parallelism: int,
        threads: int,
        max_queue: int = 64,
        max_wait: float = 0.5,
        idle_priority: bool = False,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._executor = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix="argon2",
            initializer=_idle_priority if idle_priority else None,
        )
        self._sodium_hash = parallelism == 1  # libsodium makes one-lane hashes only
        self._opslimit, self._memlimit = time_cost, memory_kib * 1024
        self._decoy_hash: str | None = None
        self._threads = threads
        self._max_pending = threads + max_queue
        self._max_wait = max_wait
        self._pending = 0
        self._job_seconds: float | None = None
        """Moving average of a job's wall time on the pool (None until the first job ends)."""

    @property
    def on_libsodium(self) -> bool:
        """Whether new hashes (and the decoy) are libsodium's, whose memory is mapped per hash."""
        return self._sodium_hash

    def _admits(self) -> bool:
        """Whether a new job may queue: fewer than ``threads + max_queue`` pending, and (once a
        job time is known) fewer than two per thread or an expected wait of at most ``max_wait``.

        ``threads`` jobs run at once, each taking about the recent wall time per job, which
        already includes sharing the cores with other processes' pools (``idp serve --workers``),
        so the estimate follows the throughput this process actually gets. One job waiting per
        thread is always allowed, so that no thread idles until the next request arrives when a
        noisy estimate is briefly too high."""
        if self._pending >= self._max_pending:
            return False
        if self._job_seconds is None or self._pending < 2 * self._threads:
            return True
        ahead = self._pending - self._threads + 1  # jobs that must end before this one starts
        return ahead * self._job_seconds / self._threads <= self._max_wait

    def refuse_if_busy(self) -> None:
        """503 now if a hash asked for now would be shed: lets a login refuse before it spends
        a rate-limit decision and an account read on an attempt that cannot be checked (a
        client that retries at once would otherwise keep the event loop busy for nothing)."""
        if not self._admits():
            ARGON2_SHED.inc()
            raise TemporarilyUnavailable("The server is busy; retry shortly.")

    async def _offload(self, function: Callable[..., T], *args: str) -> T:
        """Run on the argon2 pool; shed load (503) rather than queue without bound."""
        self.refuse_if_busy()
        self._pending += 1
        ARGON2_QUEUE.inc()
        try:
            loop = asyncio.get_running_loop()
            result, seconds = await loop.run_in_executor(self._executor, _timed, function, *args)
        finally:
            self._pending -= 1
            ARGON2_QUEUE.dec()
        known = self._job_seconds
        self._job_seconds = seconds if known is None else known + SERVICE_TIME_WEIGHT * (seconds - known)
        return result

    async def hash(self, password: str) -> str:
        """Hash the NFC form of a password (policy is checked by the caller)."""
        return await self._offload(self._hash_sync, normalize_password(password))

    async def verify(self, password_hash: str, password: str) -> Match:
        """Whether ``password`` matches, in its NFC form or (for hashes made before issue 17)
        its NFKC form; never raises for a mismatch or a foreign hash. A password whose two forms
        differ costs two verifications when it does not match, for a real account or the decoy."""
        current = normalize_password(password)
        if await self._offload(self._verify_sync, password_hash, current):
            return Match.CURRENT
        legacy = _legacy_form(password)
        if legacy != current and await self._offload(self._verify_sync, password_hash, legacy):
            return Match.LEGACY
        return Match.NONE

    async def verify_decoy(self, password: str) -> None:
        """Spend the time a wrong password would, for an account that does not exist."""
        if self._decoy_hash is None:
            self._decoy_hash = await self.hash(secrets.token_urlsafe(24))
        await self.verify(self._decoy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def _hash_sync(self, password: str) -> str:
        if not self._sodium_hash:
            return self._hasher.hash(password)
        encoded = nacl.pwhash.argon2id.str(
            password.encode(), opslimit=self._opslimit, memlimit=self._memlimit
        )
        return encoded.decode("ascii")

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        encoded = password_hash.encode("ascii", "replace")
        if encoded.startswith(_SODIUM_FORMATS):
            return _sodium_verify(encoded, password.encode())
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
