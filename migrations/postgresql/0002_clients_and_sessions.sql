-- Confidential OAuth clients. Secrets are 256-bit random values stored as SHA-256 hex.
-- With PostgreSQL, refresh-token families (sessions) live in Redis, not here.
CREATE TABLE clients (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    secret_hash text        NOT NULL,
    created_at  timestamptz NOT NULL
);
