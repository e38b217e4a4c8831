"""The two metadata documents: OpenID Connect Discovery 1.0 (``openid-configuration``) and
RFC 8414 (``oauth-authorization-server``). They share the OAuth fields; only the first has the
OpenID ones (userinfo, ID-token algorithms, claims, subject types, end session). Nothing is
advertised that does not work: ID-token algorithms are those with a key signing now.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.clients import OIDC_SCOPES
from service.oidc.client_assertion import ALGORITHMS as ASSERTION_ALGORITHMS
from service.tokens.access import ACR_LEVELS

__all__ = ["oauth_metadata", "openid_configuration"]

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
CLAIMS = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "azp",
    "at_hash",
    "sid",
    "email",
    "email_verified",
    "name",
    "amr",
    "acr",
]


def oauth_metadata(*, issuer: str, grant_types: Sequence[str], access_token_alg: str) -> dict[str, object]:
    """RFC 8414 §2."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "scopes_supported": list(OIDC_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(grant_types),
        "token_endpoint_auth_methods_supported": [*AUTH_METHODS, "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "code_challenge_methods_supported": ["S256"],
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "revocation_endpoint_auth_methods_supported": ["none", *AUTH_METHODS],
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "authorization_response_iss_parameter_supported": True,
        "access_token_signing_alg_values_supported": [access_token_alg],
    }


def openid_configuration(
    *, issuer: str, grant_types: Sequence[str], access_token_alg: str, id_token_algs: Sequence[str]
) -> dict[str, object]:
    """OpenID Connect Discovery 1.0 §3: the OAuth fields plus the OpenID ones."""
    return {
        **oauth_metadata(issuer=issuer, grant_types=grant_types, access_token_alg=access_token_alg),
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "end_session_endpoint": f"{issuer}/oauth2/logout",
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(id_token_algs),
        "claims_supported": CLAIMS,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": list(ACR_LEVELS),
    }
