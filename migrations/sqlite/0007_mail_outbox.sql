-- The transactional outbox: a row is written in the same transaction as the change that causes
-- the mail; one worker loop per process claims due rows under BEGIN IMMEDIATE, sends, marks them.
-- `claim` is the lease of the worker sending the row now; `next_attempt_at` is when the row is
-- due (or, while claimed, when the lease runs out). Bodies are cleared once sent or dead.
CREATE TABLE mail_outbox (
    id              TEXT    PRIMARY KEY,
    message_id      TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    text_body       TEXT,
    html_body       TEXT,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL,
    claim           TEXT,
    last_error      TEXT,
    user_id         TEXT,
    created_at      REAL    NOT NULL,
    sent_at         REAL
) STRICT;

CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE state = 'pending';

-- Single-use account tokens (password reset, email verification, email change), by SHA-256.
-- Deleted when used, and every token of an account is deleted when its password or email changes.
CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    email      TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
) STRICT;

CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);

ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
