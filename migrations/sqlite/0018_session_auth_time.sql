-- When the user authenticated (OpenID Connect `auth_time`) for a session a client opened with
-- an authorization code, so that a refresh of an `openid` session can issue a new ID token with
-- the same `auth_time` (OpenID Connect Core §12.2). NULL for every other session, and for code
-- sessions opened before this migration (their refreshes carry no ID token).
ALTER TABLE refresh_families ADD COLUMN auth_time REAL;
