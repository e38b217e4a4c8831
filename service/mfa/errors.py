"""The MFA errors: subclasses of :class:`service.errors.IdPError` that only set attributes."""

from __future__ import annotations

from service.errors import IdPError

__all__ = [
    "ClientRequiresMfa",
    "FactorExists",
    "FreshFactorRequired",
    "InvalidCode",
    "InvalidMfaToken",
    "InvalidPasskey",
    "MfaEnrollmentRequired",
    "MfaRequired",
    "NothingToConfirm",
]


class MfaRequired(IdPError):
    """The first factor was right; a second is needed. The body carries the ticket."""

    error = "mfa_required"
    status_code = 401
    default_description = "A second factor is required to complete the sign-in."

    def __init__(self, mfa_token: str, methods: list[str], expires_in: int) -> None:
        super().__init__()
        self.mfa_token = mfa_token
        self.methods = methods
        self.expires_in = expires_in

    def extra(self) -> dict[str, object]:
        return {"mfa_token": self.mfa_token, "methods": self.methods, "expires_in": self.expires_in}


class MfaEnrollmentRequired(MfaRequired):
    """``IDP_MFA_REQUIRED`` and the account has no factor: the ticket lets it enrol one."""

    error = "mfa_enrollment_required"
    status_code = 403
    default_description = "This service requires a second factor: enrol one to complete the sign-in."


class ClientRequiresMfa(IdPError):
    """The client's ``require_mfa`` and a sign-in without a second factor (the hosted page:
    an account just signed up there has none yet)."""

    error = "mfa_enrollment_required"
    status_code = 403
    default_description = "This application requires a second factor: enrol one to sign in to it."


class InvalidMfaToken(IdPError):
    error = "invalid_mfa_token"
    status_code = 401
    default_description = "The MFA token is invalid, expired or already used; sign in again."


class InvalidCode(IdPError):
    error = "invalid_code"
    status_code = 401
    default_description = "The code is incorrect, expired or already used."


class InvalidPasskey(IdPError):
    error = "invalid_passkey"
    status_code = 401
    default_description = "The passkey response could not be verified."


class FactorExists(IdPError):
    error = "factor_exists"
    status_code = 409
    default_description = "This factor is already registered."


class NothingToConfirm(IdPError):
    error = "nothing_to_confirm"
    status_code = 409
    default_description = "There is no pending TOTP enrolment; start one with POST /v1/mfa/totp."


class FreshFactorRequired(IdPError):
    error = "fresh_factor_required"
    status_code = 403
    default_description = "This change needs a current second factor (a TOTP or recovery code, or a passkey)."
