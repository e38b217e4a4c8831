-- The authentication methods (RFC 8176 `amr`, space-separated) of the sign-in that opened a
-- session, so that every access token the session is refreshed into says how the user signed
-- in. NULL for sessions opened before this migration (their tokens carry no `amr`).
ALTER TABLE refresh_families ADD COLUMN amr TEXT;
