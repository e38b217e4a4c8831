"""Turn an outbox row into the MIME message that is sent: the row's id fixes the Message-ID and
the Date, so every attempt at one row sends the same message (receivers deduplicate on it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr

from service.store.mail import OutboxRow

__all__ = ["build_email", "new_message_id"]


def new_message_id(row_id: uuid.UUID, domain: str) -> str:
    """RFC 5322 msg-id: ``<row id hex@domain>``, unique per row and stable across retries."""
    return f"<{row_id.hex}@{domain}>"


def build_email(row: OutboxRow, sender: str) -> EmailMessage:
    if row.text_body is None:
        raise ValueError("outbox row has no body (already sent or dead)")
    message = EmailMessage()
    name, address = parseaddr(sender)
    message["From"] = formataddr((name, address))
    message["To"] = row.recipient
    message["Subject"] = row.subject
    message["Message-ID"] = row.message_id
    message["Date"] = format_datetime(datetime.fromtimestamp(row.created_at, tz=UTC))
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(row.text_body)
    if row.html_body is not None:
        message.add_alternative(row.html_body, subtype="html")
    return message
