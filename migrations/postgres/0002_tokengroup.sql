-- Token groups (the Token handler's add/remove tokengroup actions).
CREATE TABLE tokengroup (
    token_id BIGINT NOT NULL REFERENCES token (id) ON DELETE CASCADE,
    name     TEXT   NOT NULL,
    PRIMARY KEY (token_id, name)
);
