"""Read what the delivery worker wrote as ``.eml`` files (the embedded file transport)."""

from __future__ import annotations

import email
from email.message import Message
from pathlib import Path

from service.runtime import Runtime

__all__ = ["deliver", "html_of", "text_of"]


async def deliver(runtime: Runtime, folder: Path) -> list[Message]:
    """Finish the requests' background work, run the worker until the outbox has nothing due,
    and return the messages it wrote now."""
    await runtime.background.settle()
    before = set(folder.glob("*.eml")) if folder.exists() else set()
    while await runtime.mail_worker.run_once():
        pass
    new = sorted(set(folder.glob("*.eml")) - before)
    return [email.message_from_bytes(path.read_bytes()) for path in new]


def _part(message: Message, content_type: str) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == content_type)
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def text_of(message: Message) -> str:
    return _part(message, "text/plain")


def html_of(message: Message) -> str:
    return _part(message, "text/html")
