-- Second factors (issue 14); see migrations/postgresql/0014_mfa_factors.sql for what each
-- column holds and how it is protected. Times are epoch seconds, arrays JSON.
CREATE TABLE mfa_totp (
    user_id      TEXT    PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       BLOB    NOT NULL,
    confirmed    INTEGER NOT NULL DEFAULT 0,
    created_at   REAL    NOT NULL,
    last_used_at REAL
);

CREATE TABLE mfa_recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at REAL NOT NULL,
    used_at    REAL,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_passkeys (
    credential_id BLOB    PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    public_key    BLOB    NOT NULL,
    sign_count    INTEGER NOT NULL DEFAULT 0,
    transports    TEXT    NOT NULL DEFAULT '[]',
    device_type   TEXT    NOT NULL,
    backed_up     INTEGER NOT NULL DEFAULT 0,
    created_at    REAL    NOT NULL,
    last_used_at  REAL
);

CREATE INDEX mfa_passkeys_user ON mfa_passkeys (user_id);
