-- Accounts. `email` is kept as typed; `email_normalized` is the uniqueness key.
CREATE TABLE users (
    id               uuid PRIMARY KEY,
    email            text        NOT NULL,
    email_normalized text        NOT NULL,
    password_hash    text,
    name             text,
    roles            text[]      NOT NULL DEFAULT '{}',
    disabled         boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT users_email_normalized_key UNIQUE (email_normalized)
);
