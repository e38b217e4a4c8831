-- Confidential OAuth clients. Secrets are 256-bit random values stored as SHA-256 hex.
CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  REAL NOT NULL
) STRICT;

-- Refresh-token families (sessions) for the embedded mode; Redis holds them in production.
CREATE TABLE refresh_families (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL,
    client_id           TEXT,
    scope               TEXT,
    origin              TEXT NOT NULL,
    user_agent          TEXT,
    current_hash        TEXT NOT NULL,
    created_at          REAL NOT NULL,
    last_used_at        REAL NOT NULL,
    absolute_expires_at REAL NOT NULL,
    idle_ttl            REAL NOT NULL
) STRICT;

CREATE INDEX refresh_families_user_id ON refresh_families (user_id);

-- Rotated tokens of a family: hash, when it was rotated, and its successor sealed under a key
-- derived from that token (so a grace-window retry gets the same pair, never plaintext).
CREATE TABLE refresh_used (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    rotated_at REAL NOT NULL,
    sealed     BLOB NOT NULL
) STRICT;

CREATE INDEX refresh_used_family_id ON refresh_used (family_id);
