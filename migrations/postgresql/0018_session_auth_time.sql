-- Sessions live in Redis on this backend (their `auth_time` too); nothing changes here.
-- The file keeps the two backends' migration versions in step.
SELECT 1;
