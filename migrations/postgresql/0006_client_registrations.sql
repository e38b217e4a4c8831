-- Clients become full registrations (OAuth 2.1 / OIDC Dynamic Client Registration field names).
-- Public clients (token_endpoint_auth_method = 'none') have no secret.
ALTER TABLE clients ALTER COLUMN secret_hash DROP NOT NULL;
ALTER TABLE clients
    ADD COLUMN redirect_uris                text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN post_logout_redirect_uris    text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN grant_types                  text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN scopes                       text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN first_party                  boolean NOT NULL DEFAULT false,
    ADD COLUMN id_token_signed_response_alg text    NOT NULL DEFAULT 'RS256',
    ADD COLUMN token_endpoint_auth_method   text    NOT NULL DEFAULT 'client_secret_basic',
    ADD COLUMN jwks                         text    NULL;
