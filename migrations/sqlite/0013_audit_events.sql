-- Audit events kept in the database as well as the log (the admin API queries them), pruned
-- after IDP_AUDIT_RETENTION_DAYS. No foreign key: an event outlives the account it is about.
-- Fields are ids and codes only, never an email, a password or a token. `details` is JSON.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         REAL    NOT NULL,
    event      TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    user_id    TEXT,
    client_id  TEXT,
    scope      TEXT,
    request_id TEXT,
    details    TEXT    NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX audit_events_at ON audit_events (at, id);
CREATE INDEX audit_events_user ON audit_events (user_id, at, id);
CREATE INDEX audit_events_event ON audit_events (event, at, id);

-- The admin API lists accounts in creation order with a (created_at, id) keyset.
CREATE INDEX users_created ON users (created_at, id);
