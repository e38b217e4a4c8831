"""Access tokens (RFC 9068 JWTs)."""

from service.tokens.access import AccessClaims, AccessTokens, IssuedAccessToken

__all__ = ["AccessClaims", "AccessTokens", "IssuedAccessToken"]
