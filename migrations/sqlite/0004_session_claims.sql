-- The account claims (email, roles) that a session's access tokens carry, as a JSON array
-- ["<email>", ["<role>", ...]], so that a refresh reads only the session. NULL for sessions
-- created before this migration: their refresh reads the account instead.
ALTER TABLE refresh_families ADD COLUMN claims TEXT;
