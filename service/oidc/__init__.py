"""OpenID Connect provider and the OAuth grants beyond refresh and token exchange (no Litestar here)."""
