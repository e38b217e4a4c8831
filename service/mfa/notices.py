"""The mails MFA changes send to the account's owner, through the outbox."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from service.store.base import User
from service.store.mail import NewMail

__all__ = ["notice"]

_TEXTS = {
    "mfa_recovery_code_used": (
        "A recovery code was used to sign in",
        "A recovery code was just used to sign in to your account ({left} unused codes left).\n\n"
        "If this was not you, change your password and regenerate your recovery codes now.",
    ),
    "mfa_reset": (
        "Your second factors were removed",
        "An administrator removed every second factor (authenticator app, passkeys and recovery "
        "codes) from your account. Sign in with your password and enrol a new one.\n\n"
        "If you did not ask for this, contact your administrator.",
    ),
    "mfa_totp_removed": (
        "Your authenticator app was removed",
        "The authenticator app was removed from your account.\n\n"
        "If this was not you, change your password and contact your administrator.",
    ),
}


def notice(kind: str, user: User, *, public_url: str, now: float, left: int = 0) -> NewMail:
    """A plain-text notice; it carries no code or link, only what happened."""
    subject, body = _TEXTS[kind]
    mail_id = uuid.uuid4()
    host = urlsplit(public_url).hostname or "localhost"
    return NewMail(
        id=mail_id,
        message_id=f"<{mail_id.hex}@{host}>",
        kind=kind,
        recipient=user.email,
        subject=subject,
        text_body=body.format(left=left) + "\n",
        user_id=user.id,
        created_at=now,
    )
