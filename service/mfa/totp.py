"""RFC 6238 TOTP with pyotp: SHA-1, 6 digits, 30-second steps, one step of drift either way.

A code is accepted once: the store keeps the last accepted step per factor and accepts a code only
for a later step (RFC 6238 §5.2), see :meth:`service.store.mfa.MfaStore.accept_totp_step`.
"""

from __future__ import annotations

import hmac
import io

import pyotp
import segno

__all__ = ["DIGITS", "DRIFT_STEPS", "STEP_SECONDS", "matching_step", "new_secret", "provisioning", "qr_svg"]

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1


def new_secret() -> str:
    """160 random bits, base32 (RFC 4226 §4 recommends the HMAC-SHA-1 block of 160 bits)."""
    return pyotp.random_base32(32)


def provisioning(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/…`` URI authenticator apps scan."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_svg(uri: str) -> str:
    """The URI as a QR code, an inline SVG drawn here (the secret never leaves for a QR service)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", xmldecl=False, svgns=True, scale=4, border=2)
    return buffer.getvalue().decode("utf-8")


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The step (RFC 6238 ``T``) whose code equals ``code``, trying now and ±1 step; else None."""
    cleaned = code.replace(" ", "")
    if len(cleaned) != DIGITS or not cleaned.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int(now // STEP_SECONDS)
    for step in (current, current - DRIFT_STEPS, current + DRIFT_STEPS):
        if step >= 0 and hmac.compare_digest(totp.generate_otp(step), cleaned):
            return step
    return None
