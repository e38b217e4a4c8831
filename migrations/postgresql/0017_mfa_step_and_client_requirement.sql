-- Issue 14 gaps.
-- * mfa_totp.last_step: the RFC 6238 time step of the last accepted code. A code is accepted
--   only by `UPDATE … WHERE last_step IS NULL OR last_step < $step`, so a code of that step or an
--   earlier one is never accepted again (RFC 6238 §5.2), whichever instance is asked.
-- * clients.require_mfa: sign-ins for this client need a second factor (amr contains "mfa"),
--   as IDP_MFA_REQUIRED demands for every client.
ALTER TABLE mfa_totp ADD COLUMN last_step bigint;
ALTER TABLE clients ADD COLUMN require_mfa boolean NOT NULL DEFAULT false;
