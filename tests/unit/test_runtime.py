"""``open_runtime``: a complete, frozen runtime while the block runs; everything it opened is
closed when the block ends, and when opening fails half-way."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from service.clock import FrozenClock
from service.config import ConfigError, Settings
from service.runtime import Runtime, StartupError, open_runtime


async def threads_back_to(count: int) -> int:
    """The thread count once it is back to ``count`` (the argon2 pool's threads end on their
    own after ``shutdown(wait=False)``), or what it still is after 5 s."""
    for _ in range(250):
        if threading.active_count() <= count:
            break
        await asyncio.sleep(0.02)
    return threading.active_count()


async def test_the_runtime_is_complete_and_frozen(
    make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    """Every field is set when the block starts, and none can be replaced."""
    async with open_runtime(make_settings(), clock) as runtime:
        missing = [
            field.name for field in dataclasses.fields(Runtime) if getattr(runtime, field.name) is None
        ]
        assert missing == []
        with pytest.raises(dataclasses.FrozenInstanceError):
            runtime.clock = clock  # type: ignore[misc]


async def test_leaving_the_block_closes_what_it_opened(
    make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    """The database thread and the argon2 pool are gone once the block is left."""
    before = threading.active_count()
    async with open_runtime(make_settings(), clock) as runtime:
        await runtime.passwords.hash("correct horse battery")
        assert threading.active_count() > before
    assert await threads_back_to(before) == before


async def test_a_failed_start_closes_what_was_already_open(
    make_settings: Callable[..., Settings], clock: FrozenClock, tmp_path: Path
) -> None:
    """Production without keys refuses to start after the database was opened and migrated:
    that database is closed again (no thread left behind), not leaked."""
    settings = make_settings(
        IDP_ENV="production", IDP_ISSUER="https://id.example.com", IDP_KEYS_DIR=str(tmp_path / "empty")
    )
    before = threading.active_count()
    with pytest.raises(StartupError, match="IDP_KEYS_DIR"):
        async with open_runtime(settings, clock):
            pytest.fail("the runtime must not open without keys in production")
    assert await threads_back_to(before) == before


async def test_a_bad_declared_client_stops_the_start_before_anything_opens(
    make_settings: Callable[..., Settings], clock: FrozenClock, tmp_path: Path
) -> None:
    """``IDP_CONFIG`` ``[[clients]]`` are plain records in the settings; the runtime validates
    them into registrations first, so a bad one is a ConfigError and no database is created."""
    config = tmp_path / "idp.toml"
    config.write_text('[[clients]]\nid = "spa"\npublic = true\nredirect_uris = ["http://evil.example/cb"]\n')
    settings = make_settings(IDP_CONFIG=str(config))
    with pytest.raises(ConfigError, match=r"IDP_CONFIG: clients\[0\]: redirect_uris"):
        async with open_runtime(settings, clock):
            pass
    assert not (tmp_path / "idp.sqlite3").exists()
