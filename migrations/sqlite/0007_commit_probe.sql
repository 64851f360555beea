-- One row per otpgate process, written only while its commits stall (store::commit_watch): the
-- smallest write that must reach the disk, so that it completes when commits complete again
-- (a lock another process held is released, the disk answers). Rows of processes that have
-- not probed for a day are deleted by the next probe.
CREATE TABLE commit_probe (
    probe TEXT    NOT NULL PRIMARY KEY,
    at    INTEGER NOT NULL
);
