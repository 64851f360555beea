-- audit_time served no query (a listing orders by id, login counts use audit_user) and cost
-- an index insert per audit row on the hot path. Ids rise with time, so a time range is an
-- id range. (The SQLite migration of the same number also drops AUTOINCREMENT.)
DROP INDEX audit_time;
