-- Second factors (issue 14). Secrets are never stored in the clear:
-- * a TOTP secret is AES-256-GCM sealed with the secrets-at-rest key (keys/secrets-at-rest.key),
--   bound to its account id; `confirmed` once the first code proved the authenticator has it;
-- * recovery codes are HMAC-SHA-256 under a key derived from the same file; a used code keeps
--   its row (used_at), regeneration deletes the whole set;
-- * a passkey is a public key: the credential id, the COSE public key, the signature counter
--   and the backup state WebAuthn reports.
CREATE TABLE mfa_totp (
    user_id      uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       bytea       NOT NULL,
    confirmed    boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz
);

CREATE TABLE mfa_recovery_codes (
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  text        NOT NULL,
    created_at timestamptz NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_passkeys (
    credential_id bytea       PRIMARY KEY,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text        NOT NULL,
    public_key    bytea       NOT NULL,
    sign_count    bigint      NOT NULL DEFAULT 0,
    transports    text[]      NOT NULL DEFAULT '{}',
    device_type   text        NOT NULL,
    backed_up     boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz
);

CREATE INDEX mfa_passkeys_user ON mfa_passkeys (user_id);
