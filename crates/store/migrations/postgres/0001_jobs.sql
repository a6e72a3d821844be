-- Jobs and sub-jobs in one table, with idempotency keys: the SQLite migrations 0001-0003 as one.
-- Times are BIGINT milliseconds since the Unix epoch (as on SQLite), so every `Job` round-trips
-- exactly; JSON columns are TEXT holding serde_json's own text, so they round-trip byte for byte
-- (JSONB would renumber `1e15` as `1000000000000000` and refuse `\u0000`). `seq` orders jobs
-- created in the same millisecond.
CREATE TABLE jobs (
    seq                   BIGSERIAL PRIMARY KEY,
    job_id                TEXT      NOT NULL UNIQUE,
    parent_job_id         TEXT      REFERENCES jobs (job_id),
    position              INTEGER   NOT NULL DEFAULT 0,
    project_id            TEXT      NOT NULL,
    enterprise_project_id TEXT      NOT NULL,
    service               TEXT      NOT NULL,
    job_type              TEXT      NOT NULL,
    status                TEXT      NOT NULL,
    message               TEXT,
    resource_id           TEXT,
    entities              TEXT      NOT NULL DEFAULT '[]',
    error_code            TEXT,
    error_msg             TEXT,
    payload               TEXT,
    result                TEXT,
    simulate              TEXT,
    created_at            BIGINT    NOT NULL,
    started_at            BIGINT,
    ended_at              BIGINT,
    updated_at            BIGINT    NOT NULL,
    version               BIGINT    NOT NULL,
    priority              INTEGER   NOT NULL DEFAULT 0,
    run_at                BIGINT,
    available_at          BIGINT    NOT NULL,
    max_attempts          BIGINT    NOT NULL DEFAULT 3,
    attempt               BIGINT    NOT NULL DEFAULT 0,
    retry_backoff         TEXT,
    timeout_seconds       BIGINT,
    execution             TEXT      NOT NULL DEFAULT 'sequential',
    lease_worker_id       TEXT,
    lease_token           TEXT,
    lease_expires_at      BIGINT,
    on_failure            TEXT      NOT NULL DEFAULT 'fail',
    phase                 TEXT      NOT NULL DEFAULT 'run',
    compensation          TEXT,
    -- Derived on every write from `Job::task_flags()` and `Job::deadline()`, for the claim and
    -- maintenance queries:
    runnable              BOOLEAN   NOT NULL DEFAULT FALSE, -- a task whose turn has come, with attempts left
    simulated             BOOLEAN   NOT NULL DEFAULT FALSE, -- the built-in simulator runs it
    rescuable             BOOLEAN   NOT NULL DEFAULT FALSE, -- open, leased, no attempts left
    deadline_at           BIGINT                            -- started_at + timeout_seconds
);

CREATE INDEX jobs_by_project ON jobs (project_id, service, created_at DESC, seq DESC)
    WHERE parent_job_id IS NULL;
CREATE INDEX jobs_by_parent ON jobs (parent_job_id, position)
    WHERE parent_job_id IS NOT NULL;
CREATE INDEX jobs_claimable ON jobs (simulated, service, priority DESC, available_at, seq)
    WHERE runnable;
CREATE INDEX jobs_deadlines ON jobs (deadline_at)
    WHERE deadline_at IS NOT NULL AND status IN ('PENDING', 'RUNNING');
CREATE INDEX jobs_rescuable ON jobs (lease_expires_at)
    WHERE rescuable;
CREATE INDEX jobs_ended ON jobs (ended_at)
    WHERE parent_job_id IS NULL AND ended_at IS NOT NULL;

CREATE TABLE idempotency_keys (
    project_id   TEXT   NOT NULL,
    client_token TEXT   NOT NULL,
    request_hash TEXT   NOT NULL,
    job_id       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, client_token)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
