-- One row per otpgate process, written only while its commits stall (store::health): a write
-- that PostgreSQL must log, so that it waits for whatever commits wait for (a synchronous
-- standby) and completes when they do. Rows of processes that have not probed for a day are
-- deleted by the next probe.
CREATE TABLE commit_probe (
    probe TEXT   NOT NULL PRIMARY KEY,
    at    BIGINT NOT NULL
);
