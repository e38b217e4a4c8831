-- Accounts. `email` is kept as typed; `email_normalized` is the uniqueness key.
-- Timestamps are seconds since the epoch (REAL); roles a JSON array.
CREATE TABLE users (
    id               TEXT    PRIMARY KEY,
    email            TEXT    NOT NULL,
    email_normalized TEXT    NOT NULL UNIQUE,
    password_hash    TEXT,
    name             TEXT,
    roles            TEXT    NOT NULL DEFAULT '[]',
    disabled         INTEGER NOT NULL DEFAULT 0,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL
) STRICT;
