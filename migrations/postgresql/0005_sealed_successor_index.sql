-- Sessions live in Redis on this backend (sealed successors expire there by TTL); nothing
-- changes here. The file keeps the two backends' migration versions in step.
SELECT 1;
