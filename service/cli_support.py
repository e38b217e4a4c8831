"""What every ``idp`` command shares: exit codes, the refusal error, time and JSON output, and
running one action on a started :class:`~service.runtime.Runtime`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec

from service.clock import Clock
from service.config import Settings
from service.runtime import Runtime, open_runtime

__all__ = ["EXIT_REFUSED", "EXIT_USAGE", "CliError", "iso", "print_json", "when", "with_runtime"]

EXIT_REFUSED = 1
EXIT_USAGE = 2


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


def when(ts: float | None) -> str:
    """A time for tables: ``2026-12-03T07:42:28Z``, or ``-``."""
    return "-" if ts is None else datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(ts: float | None) -> str | None:
    """A time for ``--json``: ISO 8601 with its offset, or null."""
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat()


def print_json(rows: list[dict[str, object]]) -> None:
    print(msgspec.json.format(msgspec.json.encode(rows).decode()))


def with_runtime(
    settings: Settings,
    action: Callable[[Runtime], Awaitable[None]],
    *,
    clock: Clock,
    with_keys: bool = False,
) -> None:
    """Run ``action`` on a runtime opened with the command's injected ``clock`` (``main``'s)."""

    async def run() -> None:
        async with open_runtime(settings, clock, with_keys=with_keys) as runtime:
            await action(runtime)

    asyncio.run(run())
