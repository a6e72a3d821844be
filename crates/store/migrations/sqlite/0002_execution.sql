-- Execution: attempts, leases, scheduling, timeouts, and idempotent creation.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN run_at INTEGER;
ALTER TABLE jobs ADD COLUMN available_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 3;
ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN retry_backoff TEXT;
ALTER TABLE jobs ADD COLUMN timeout_seconds INTEGER;
ALTER TABLE jobs ADD COLUMN execution TEXT NOT NULL DEFAULT 'sequential';
ALTER TABLE jobs ADD COLUMN lease_worker_id TEXT;
ALTER TABLE jobs ADD COLUMN lease_token TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at INTEGER;
-- Derived on every write, for the claim and maintenance queries:
ALTER TABLE jobs ADD COLUMN runnable INTEGER NOT NULL DEFAULT 0;   -- a task whose turn has come
ALTER TABLE jobs ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0;  -- the built-in simulator runs it
ALTER TABLE jobs ADD COLUMN deadline_at INTEGER;                   -- started_at + timeout_seconds

UPDATE jobs SET available_at = created_at, simulated = (simulate IS NOT NULL),
    runnable = (status IN ('PENDING', 'RUNNING') AND NOT EXISTS (SELECT 1 FROM jobs AS c WHERE c.parent_job_id = jobs.job_id));

CREATE INDEX jobs_claimable ON jobs (simulated, service, priority DESC, available_at, seq) WHERE runnable = 1;
CREATE INDEX jobs_deadlines ON jobs (deadline_at) WHERE deadline_at IS NOT NULL AND status IN ('PENDING', 'RUNNING');
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE lease_expires_at IS NOT NULL AND status IN ('PENDING', 'RUNNING');
CREATE INDEX jobs_ended ON jobs (ended_at) WHERE parent_job_id IS NULL AND ended_at IS NOT NULL;
DROP INDEX jobs_open;

CREATE TABLE idempotency_keys (
    project_id   TEXT    NOT NULL,
    client_token TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    job_id       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (project_id, client_token)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
