-- Fewer pages per commit on the hot path. Every commit that carried audit rows also rewrote
-- the sqlite_sequence row (AUTOINCREMENT) and the last page of the unused audit_time index,
-- each a 4 KiB WAL frame. Without AUTOINCREMENT a new row still gets the largest id + 1, and
-- rows are never deleted from the end, so ids keep rising with time: a listing orders by id,
-- and a time range is an id range. The table is rebuilt (once, at upgrade): SQLite cannot
-- drop AUTOINCREMENT in place.
CREATE TABLE audit_new (
    id             INTEGER PRIMARY KEY,
    time_us        INTEGER NOT NULL,
    node           TEXT    NOT NULL,
    event          TEXT    NOT NULL,
    origin         TEXT    NOT NULL DEFAULT '',
    success        INTEGER NOT NULL,
    authentication TEXT    NOT NULL DEFAULT '',
    user_login     TEXT    NOT NULL DEFAULT '',
    realm          TEXT    NOT NULL DEFAULT '',
    resolver       TEXT    NOT NULL DEFAULT '',
    serial         TEXT    NOT NULL DEFAULT '',
    token_type     TEXT    NOT NULL DEFAULT '',
    client         TEXT    NOT NULL DEFAULT '',
    info           TEXT    NOT NULL DEFAULT '',
    action_detail  TEXT    NOT NULL DEFAULT '',
    policies       TEXT    NOT NULL DEFAULT '',
    duration_us    INTEGER NOT NULL DEFAULT 0,
    trace          TEXT    NOT NULL DEFAULT ''
);
INSERT INTO audit_new SELECT id, time_us, node, event, origin, success, authentication,
    user_login, realm, resolver, serial, token_type, client, info, action_detail, policies,
    duration_us, trace FROM audit;
DROP TABLE audit;
ALTER TABLE audit_new RENAME TO audit;
DELETE FROM sqlite_sequence WHERE name = 'audit';
CREATE INDEX audit_user ON audit (user_login, realm, time_us) WHERE event = 'validate_check';
