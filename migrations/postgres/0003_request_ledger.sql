-- Short-lived ledger of answered requests, shared by the nodes of one database: a NAS that
-- fails over and re-sends the same request to another node gets the first node's answer.
-- UNLOGGED: no WAL and no fsync; after a crash the table is empty, which only means a
-- retransmit in that instant is processed again (and its OTP is already used up).
CREATE UNLOGGED TABLE request_ledger (
    fingerprint TEXT   NOT NULL PRIMARY KEY,
    answer      BYTEA,
    created     BIGINT NOT NULL
);
CREATE INDEX request_ledger_created ON request_ledger (created);
