"""Link tokens and the background work behind requests that must answer the same way whether
or not an account exists."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Coroutine
from typing import Any

__all__ = ["Background", "hash_link_token", "new_link_token"]

logger = logging.getLogger("idp.lifecycle")

TOKEN_BYTES = 32
"""256 bits from the OS CSPRNG (the issue asks for at least 128)."""
MAX_TOKEN_LENGTH = 128


def new_link_token() -> tuple[str, str]:
    """``(token for the link, hash to store)``."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, hash_link_token(token)


def hash_link_token(token: str) -> str:
    """SHA-256 is enough: the token has 256 bits of entropy, there is nothing to brute-force."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Background:
    """Work started by a request and finished after its response: the response cannot depend on
    (or be timed against) what the work finds. Failures are logged; :meth:`settle` waits for all
    of it (shutdown, tests)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background account work failed", exc_info=task.exception())

    async def settle(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
