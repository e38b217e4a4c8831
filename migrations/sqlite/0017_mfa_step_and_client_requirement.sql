-- Issue 14 gaps; see migrations/postgresql/0017_mfa_step_and_client_requirement.sql.
ALTER TABLE mfa_totp ADD COLUMN last_step INTEGER;
ALTER TABLE clients ADD COLUMN require_mfa INTEGER NOT NULL DEFAULT 0;
