-- Clients become full registrations (OAuth 2.1 / OIDC Dynamic Client Registration field names).
-- Public clients (token_endpoint_auth_method = 'none') have no secret: the table is rebuilt
-- because SQLite cannot drop a NOT NULL constraint. Lists are JSON arrays.
CREATE TABLE clients_0006 (
    id                           TEXT    PRIMARY KEY,
    name                         TEXT    NOT NULL,
    secret_hash                  TEXT,
    created_at                   REAL    NOT NULL,
    redirect_uris                TEXT    NOT NULL DEFAULT '[]',
    post_logout_redirect_uris    TEXT    NOT NULL DEFAULT '[]',
    grant_types                  TEXT    NOT NULL DEFAULT '[]',
    scopes                       TEXT    NOT NULL DEFAULT '[]',
    first_party                  INTEGER NOT NULL DEFAULT 0,
    id_token_signed_response_alg TEXT    NOT NULL DEFAULT 'RS256',
    token_endpoint_auth_method   TEXT    NOT NULL DEFAULT 'client_secret_basic',
    jwks                         TEXT
) STRICT;
INSERT INTO clients_0006 (id, name, secret_hash, created_at)
    SELECT id, name, secret_hash, created_at FROM clients;
DROP TABLE clients;
ALTER TABLE clients_0006 RENAME TO clients;
