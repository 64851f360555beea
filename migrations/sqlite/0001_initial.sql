-- otpgate schema, SQLite flavour. Times are unix seconds unless the column says _us (microseconds); the date-like
-- tokeninfo values (last_auth, failcounter_exceeded, validity) keep privacyIDEA's text formats.
-- Flags are 0/1 integers on both backends (the sqlx Any driver has no portable bool).
CREATE TABLE token (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    serial                  TEXT    NOT NULL UNIQUE,
    tokentype               TEXT    NOT NULL,
    description             TEXT    NOT NULL DEFAULT '',
    owner_login             TEXT,
    owner_realm             TEXT,
    owner_resolver          TEXT,
    active                  INTEGER NOT NULL DEFAULT 1,
    revoked                 INTEGER NOT NULL DEFAULT 0,
    failcount               INTEGER NOT NULL DEFAULT 0,
    maxfail                 INTEGER NOT NULL DEFAULT 10,
    otp_counter             INTEGER NOT NULL DEFAULT 0,
    count_window            INTEGER NOT NULL DEFAULT 10,
    otplen                  INTEGER NOT NULL DEFAULT 6,
    hashlib                 TEXT    NOT NULL DEFAULT 'sha1',
    time_step               INTEGER,
    time_window             INTEGER,
    time_shift              INTEGER NOT NULL DEFAULT 0,
    pin_hash                TEXT,
    key_sealed              BLOB,
    rollout_state           TEXT    NOT NULL DEFAULT '',
    validity_start          TEXT,
    validity_end            TEXT,
    count_auth              INTEGER NOT NULL DEFAULT 0,
    count_auth_success      INTEGER NOT NULL DEFAULT 0,
    count_auth_max          INTEGER NOT NULL DEFAULT 0,
    count_auth_success_max  INTEGER NOT NULL DEFAULT 0,
    last_auth               TEXT,
    failcounter_exceeded    TEXT,
    created                 INTEGER NOT NULL
);
CREATE INDEX token_owner ON token (owner_realm, owner_login);

CREATE TABLE tokeninfo (
    token_id INTEGER NOT NULL REFERENCES token (id) ON DELETE CASCADE,
    key      TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (token_id, key)
);

CREATE TABLE tokenrealm (
    token_id INTEGER NOT NULL REFERENCES token (id) ON DELETE CASCADE,
    realm    TEXT    NOT NULL,
    PRIMARY KEY (token_id, realm)
);

CREATE TABLE challenge (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT    NOT NULL,
    serial         TEXT    NOT NULL,
    owner_login    TEXT,
    owner_realm    TEXT,
    data           TEXT    NOT NULL DEFAULT '',
    challenge      TEXT    NOT NULL DEFAULT '',
    session        TEXT    NOT NULL DEFAULT '',
    created        INTEGER NOT NULL,
    expiration     INTEGER NOT NULL,
    received_count INTEGER NOT NULL DEFAULT 0,
    otp_valid      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX challenge_tx ON challenge (transaction_id);
CREATE INDEX challenge_serial ON challenge (serial);
CREATE INDEX challenge_expiration ON challenge (expiration);

CREATE TABLE audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE INDEX audit_time ON audit (time_us);
CREATE INDEX audit_user ON audit (user_login, realm, time_us);

CREATE TABLE event_counter (
    name  TEXT    NOT NULL,
    node  TEXT    NOT NULL,
    value INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, node)
);
