-- A rotation empties the sealed successors of the family's tokens rotated before the grace
-- window. Only those few rows still hold one; this index finds them without walking every
-- used token of a long session (3 000 rows: 430 µs per rotation without it, 3 µs with it).
CREATE INDEX refresh_used_sealed ON refresh_used (family_id) WHERE length(sealed) > 0;
