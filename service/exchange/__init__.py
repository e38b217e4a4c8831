"""RFC 8693 token exchange for tokens of trusted external issuers (e.g. Better Auth)."""
