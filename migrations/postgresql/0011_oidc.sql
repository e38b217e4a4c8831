-- OpenID Connect provider: authorization codes (stored by SHA-256, single use; `used_family`
-- is the session the first redemption opened, revoked if the code is presented again) and
-- consents remembered per user and client.
CREATE TABLE authorization_codes (
    code_hash   text             PRIMARY KEY,
    record      bytea            NOT NULL,
    expires_at  double precision NOT NULL,
    purge_at    double precision NOT NULL,
    used_family text             NULL
);
CREATE INDEX authorization_codes_purge_at ON authorization_codes (purge_at);

CREATE TABLE consents (
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  text        NOT NULL,
    scopes     text[]      NOT NULL,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
