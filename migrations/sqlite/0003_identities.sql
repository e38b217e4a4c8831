-- External identities (token exchange): (issuer, subject) → local account.
CREATE TABLE identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    PRIMARY KEY (issuer, subject)
) STRICT;

CREATE INDEX identities_user_id ON identities (user_id);

-- Exchanged subject tokens (by SHA-256), remembered until they expire: replay protection for
-- the embedded mode; Redis holds them in production.
CREATE TABLE exchange_replay (
    token_hash TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
) STRICT;
