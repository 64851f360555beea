-- Short-lived ledger of answered requests, shared by the nodes of one database: a NAS that
-- fails over and re-sends the same request to another node gets the first node's answer.
CREATE TABLE request_ledger (
    fingerprint TEXT    NOT NULL PRIMARY KEY,
    answer      BLOB,
    created     INTEGER NOT NULL
);
CREATE INDEX request_ledger_created ON request_ledger (created);
