-- The transactional outbox: a row is written in the same transaction as the change that causes
-- the mail; the delivery worker claims due rows (FOR UPDATE SKIP LOCKED), sends, marks them.
-- `claim` is the lease of the worker sending the row now; `next_attempt_at` is when the row is
-- due (or, while claimed, when the lease runs out). Bodies are cleared once sent or dead.
CREATE TABLE mail_outbox (
    id              uuid        PRIMARY KEY,
    message_id      text        NOT NULL UNIQUE,
    kind            text        NOT NULL,
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    text_body       text,
    html_body       text,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    claim           uuid,
    last_error      text,
    user_id         uuid,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz
);

CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE state = 'pending';

-- Single-use account tokens (password reset, email verification, email change), by SHA-256.
-- Deleted when used, and every token of an account is deleted when its password or email changes.
CREATE TABLE account_tokens (
    token_hash text        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL,
    email      text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);

ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
