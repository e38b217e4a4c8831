"""One error base for the whole service.

Every error the service answers with is an :class:`IdPError` subclass that only sets
attributes: a short snake_case ``error`` code (RFC 6749 §5.2 style), an HTTP status and a
default description. Internal causes are chained with ``raise ... from`` and never reach
a response body.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessDenied",
    "ClientExists",
    "ConfigError",
    "ConsentRequired",
    "EmailNotVerified",
    "EmailTaken",
    "IdPError",
    "InsufficientScope",
    "InvalidClient",
    "InvalidCredentials",
    "InvalidEmail",
    "InvalidGrant",
    "InvalidLinkToken",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "LoginRequired",
    "NotFound",
    "PasswordTooCommon",
    "PasswordTooLong",
    "PasswordTooShort",
    "RequestTooLarge",
    "ServerError",
    "TemporarilyUnavailable",
    "UnauthorizedClient",
    "UnknownClientOrRedirect",
    "UnsupportedGrantType",
    "UnsupportedMediaType",
    "UnsupportedResponseType",
]


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable. Not an HTTP error."""


class IdPError(Exception):
    """Base of every error the service reports; never raised itself."""

    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 500
    default_description: ClassVar[str] = "The server could not complete the request."

    def __init__(self, description: str | None = None) -> None:
        self.description = description or self.default_description
        super().__init__(self.description)

    def headers(self) -> dict[str, str]:
        """Extra response headers this error needs (e.g. ``WWW-Authenticate``)."""
        return {}

    def extra(self) -> dict[str, object]:
        """Members the error body carries besides ``error`` and ``error_description`` (e.g. the
        ``mfa_token`` of ``mfa_required``); never an internal cause."""
        return {}


class ServerError(IdPError):
    """An unexpected failure; the cause is logged, never shown."""


class InvalidRequest(IdPError):
    error = "invalid_request"
    status_code = 400
    default_description = "The request is malformed."


class UnsupportedMediaType(IdPError):
    error = "unsupported_media_type"
    status_code = 415
    default_description = "The request body must be application/json."


class RequestTooLarge(IdPError):
    error = "request_too_large"
    status_code = 413
    default_description = "The request body is too large."


class NotFound(IdPError):
    error = "not_found"
    status_code = 404
    default_description = "The requested resource does not exist."


class Forbidden(IdPError):
    error = "forbidden"
    status_code = 403
    default_description = "This endpoint is not served to this client."


class MethodNotAllowed(IdPError):
    error = "method_not_allowed"
    status_code = 405
    default_description = "The method is not allowed for this resource."


class InvalidEmail(IdPError):
    error = "invalid_email"
    status_code = 422
    default_description = "The email address is not valid."


class PasswordTooShort(IdPError):
    error = "password_too_short"
    status_code = 422
    default_description = "The password must be at least 8 characters long."


class PasswordTooLong(IdPError):
    error = "password_too_long"
    status_code = 422
    default_description = "The password must be at most 128 characters long."


class PasswordBlank(IdPError):
    error = "password_blank"
    status_code = 422
    default_description = "The password must not be only whitespace."


class PasswordInvalidCharacters(IdPError):
    error = "password_invalid_characters"
    status_code = 422
    default_description = "The password must not contain control or unassigned characters."


class PasswordTooCommon(IdPError):
    error = "password_too_common"
    status_code = 422
    default_description = "The password is too common; choose another one."


class EmailTaken(IdPError):
    error = "email_taken"
    status_code = 409
    default_description = "An account with this email address already exists."


class ClientExists(IdPError):
    error = "client_exists"
    status_code = 409
    default_description = "A client with this id already exists."


class InvalidScope(IdPError):
    error = "invalid_scope"
    status_code = 400
    default_description = "The requested scope is invalid or exceeds the granted scope."


class InvalidCredentials(IdPError):
    error = "invalid_credentials"
    status_code = 401
    default_description = "The email address or password is incorrect."


class InvalidToken(IdPError):
    """RFC 6750 §3.1: the access token is missing, expired, revoked or malformed."""

    error = "invalid_token"
    status_code = 401
    default_description = "The access token is missing, expired or invalid."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class InvalidGrant(IdPError):
    error = "invalid_grant"
    status_code = 400
    default_description = "The grant is invalid, expired or revoked."


class InvalidLinkToken(IdPError):
    """A mailed link (password reset, verification, email change) that is unknown, expired,
    already used, or made void by a later password or email change."""

    error = "invalid_link"
    status_code = 400
    default_description = "This link is invalid, has expired or was already used."


class EmailNotVerified(IdPError):
    """Sign-in refused until the address is verified (``IDP_EMAIL_VERIFICATION=required``);
    only said after the password was right."""

    error = "email_not_verified"
    status_code = 403
    default_description = "Verify your email address first: follow the link we mailed you."


class InvalidClient(IdPError):
    error = "invalid_client"
    status_code = 401
    default_description = "Client authentication failed."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="idp"'}


class UnauthorizedClient(IdPError):
    error = "unauthorized_client"
    status_code = 400
    default_description = "The client is not authorized to use this grant."


class InvalidTarget(IdPError):
    """RFC 8693 §2.2.2: the requested audience or resource is not one we issue for."""

    error = "invalid_target"
    status_code = 400
    default_description = "The requested audience is not acceptable."


class UnsupportedGrantType(IdPError):
    error = "unsupported_grant_type"
    status_code = 400
    default_description = "The grant type is not supported."


class TemporarilyUnavailable(IdPError):
    error = "temporarily_unavailable"
    status_code = 503
    default_description = "The service is temporarily unavailable; retry later."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class UnsupportedResponseType(IdPError):
    error = "unsupported_response_type"
    status_code = 400
    default_description = "Only response_type=code is supported."


class LoginRequired(IdPError):
    """OpenID Connect Core §3.1.2.6: ``prompt=none`` and no usable browser session."""

    error = "login_required"
    status_code = 400
    default_description = "The user is not signed in."


class ConsentRequired(IdPError):
    error = "consent_required"
    status_code = 400
    default_description = "The user has not consented to this client and scope."


class AccessDenied(IdPError):
    error = "access_denied"
    status_code = 403
    default_description = "The user denied the request."


class InsufficientScope(IdPError):
    """RFC 6750 §3.1: the access token lacks the scope this resource needs."""

    error = "insufficient_scope"
    status_code = 403
    default_description = "The access token does not carry the scope this resource needs."

    def __init__(self, description: str | None = None, *, scope: str = "openid") -> None:
        super().__init__(description)
        self.scope = scope

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{self.scope}"'}


class UnknownClientOrRedirect(IdPError):
    """An authorization request whose client or redirect URI cannot be trusted: it is shown an
    error page and never redirected (RFC 6749 §4.1.2.1, RFC 9700 §4.1)."""

    error = "invalid_request"
    status_code = 400
    default_description = "The client or its redirect URI is not registered."
