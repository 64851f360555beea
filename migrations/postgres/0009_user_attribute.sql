-- Custom user attributes (the CustomUserAttributes event handler), kept by otpgate beside the
-- directory's own attributes, which they override.
CREATE TABLE user_attribute (
    realm TEXT NOT NULL,
    login TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (realm, login, key)
);
