-- Identity: projects, users, access-key credentials (secrets sealed), tokens (by hash).
-- As SQLite's 0004, with BOOLEAN flags, BYTEA secrets and BIGINT millisecond times.
CREATE TABLE projects (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE users (
    user_id       TEXT   PRIMARY KEY,
    name          TEXT   NOT NULL,
    domain        TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    project_id    TEXT   NOT NULL,
    role          TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (domain, name)
);
CREATE TABLE credentials (
    access_key             TEXT    PRIMARY KEY,
    sealed_secret          BYTEA   NOT NULL,
    owner                  TEXT    NOT NULL,
    project_ids            TEXT    NOT NULL, -- a JSON array of project ids
    role                   TEXT    NOT NULL,
    enterprise_project_ids TEXT    NOT NULL, -- a JSON array
    enabled                BOOLEAN NOT NULL,
    created_at             BIGINT  NOT NULL,
    last_used_at           BIGINT
);
CREATE TABLE tokens (
    token_hash TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    issued_at  BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);
