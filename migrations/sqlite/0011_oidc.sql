-- OpenID Connect provider: authorization codes (stored by SHA-256, single use; `used_family`
-- is the session the first redemption opened, revoked if the code is presented again) and
-- consents remembered per user and client (scopes as a JSON array).
CREATE TABLE authorization_codes (
    code_hash   TEXT PRIMARY KEY,
    record      BLOB NOT NULL,
    expires_at  REAL NOT NULL,
    purge_at    REAL NOT NULL,
    used_family TEXT
) STRICT;
CREATE INDEX authorization_codes_purge_at ON authorization_codes (purge_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at REAL NOT NULL,
    PRIMARY KEY (user_id, client_id)
) STRICT;
