-- Jobs and sub-jobs in one table. `seq` orders jobs created in the same millisecond.
CREATE TABLE jobs (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id                TEXT    NOT NULL UNIQUE,
    parent_job_id         TEXT    REFERENCES jobs(job_id),
    position              INTEGER NOT NULL DEFAULT 0,
    project_id            TEXT    NOT NULL,
    enterprise_project_id TEXT    NOT NULL,
    service               TEXT    NOT NULL,
    job_type              TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    message               TEXT,
    resource_id           TEXT,
    entities              TEXT    NOT NULL DEFAULT '[]',
    error_code            TEXT,
    error_msg             TEXT,
    payload               TEXT,
    result                TEXT,
    simulate              TEXT,
    created_at            INTEGER NOT NULL,
    started_at            INTEGER,
    ended_at              INTEGER,
    updated_at            INTEGER NOT NULL,
    version               INTEGER NOT NULL
);

CREATE INDEX jobs_by_project ON jobs (project_id, service, created_at DESC, seq DESC)
    WHERE parent_job_id IS NULL;
CREATE INDEX jobs_by_parent ON jobs (parent_job_id, position)
    WHERE parent_job_id IS NOT NULL;
CREATE INDEX jobs_open ON jobs (status)
    WHERE status IN ('PENDING', 'RUNNING');
