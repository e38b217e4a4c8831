"""Where rendered mail goes: an SMTP server (``IDP_SMTP_URL``) or, with none configured, one
``.eml`` file per message in a folder (the embedded default, ``./data/mail``)."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib

from service.emails import mask_email
from service.mail.settings import SmtpConfig

__all__ = [
    "FileTransport",
    "SmtpTransport",
    "Transport",
    "TransportError",
]

logger = logging.getLogger("idp.mail")


class TransportError(Exception):
    """A message was not accepted. ``permanent`` (an SMTP 5xx) means retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver or raise :class:`TransportError`."""
        ...


class SmtpTransport:
    """One SMTP session per message through aiosmtplib, with the configured TLS and timeout."""

    def __init__(self, config: SmtpConfig, tls_context: ssl.SSLContext | None = None) -> None:
        self._config = config
        self._tls = tls_context

    async def send(self, message: EmailMessage) -> None:
        config = self._config
        try:
            await aiosmtplib.send(
                message,
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=config.password,
                use_tls=config.implicit_tls,
                start_tls=config.starttls,
                timeout=config.timeout,
                validate_certs=config.verify,
                tls_context=self._tls,
            )
        except aiosmtplib.SMTPResponseException as exc:
            raise TransportError(f"smtp {exc.code}", permanent=500 <= exc.code < 600) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransportError(type(exc).__name__) from exc


class FileTransport:
    """Writes ``<folder>/<message-id>.eml`` (whole file or none) and logs one line saying where;
    the line names the file and a masked recipient, never the message's content."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: EmailMessage) -> None:
        name = str(message["Message-ID"]).strip("<>").split("@", 1)[0] + ".eml"
        path = self.folder / name
        try:
            await asyncio.to_thread(self._write, path, message.as_bytes())
        except OSError as exc:
            raise TransportError(type(exc).__name__) from exc
        logger.info("mail to %s written to %s", mask_email(str(message["To"])), path)

    def _write(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        os.chmod(partial, 0o600)
        partial.replace(path)
