-- Identity: projects, users, access-key credentials (secrets sealed), tokens (by hash).
CREATE TABLE projects (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE users (
    user_id       TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    domain        TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    project_id    TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (domain, name)
);
CREATE TABLE credentials (
    access_key             TEXT    PRIMARY KEY,
    sealed_secret          BLOB    NOT NULL,
    owner                  TEXT    NOT NULL,
    project_ids            TEXT    NOT NULL,
    role                   TEXT    NOT NULL,
    enterprise_project_ids TEXT    NOT NULL,
    enabled                INTEGER NOT NULL,
    created_at             INTEGER NOT NULL,
    last_used_at           INTEGER
);
CREATE TABLE tokens (
    token_hash TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);
