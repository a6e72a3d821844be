-- The claim path on a narrow table of its own: one row per open task a worker may take
-- (`runnable`) or the lease rescuer watches (`rescuable`: its last attempt is leased), written by
-- the same statement that writes the task's row in `jobs` (see postgres_rows.rs).
--
-- Why: claims walked `jobs_claimable`, a partial index of the wide `jobs` table whose key changed
-- with every claim and completion. Every such update was a non-HOT update of a wide row (a new
-- entry in each of the table's nine indexes), the index head filled with leased tasks and dead
-- entries, and the claim slowed as the queue grew. Here the hot path is a table of a few narrow
-- rows per open task that completions delete, and `jobs` keeps no index on a column a claim
-- changes, so a claim's update of a job row can be a HOT update.
CREATE TABLE task_queue (
    job_id                TEXT    PRIMARY KEY,
    root_id               TEXT    NOT NULL,  -- the tree's root: the row a claim locks
    project_id            TEXT    NOT NULL,
    enterprise_project_id TEXT    NOT NULL,
    service               TEXT    NOT NULL,
    job_type              TEXT    NOT NULL,
    simulated             BOOLEAN NOT NULL,
    priority              INTEGER NOT NULL,
    available_at          BIGINT  NOT NULL,
    lease_expires_at      BIGINT,
    -- When a worker may take it: GREATEST(available_at, lease_expires_at). A claimed task moves
    -- to the back (due when its lease expires) instead of sitting at the head of the index.
    due_at                BIGINT  NOT NULL,
    seq                   BIGINT  NOT NULL,  -- the job row's: creation order among equals
    runnable              BOOLEAN NOT NULL,
    rescuable             BOOLEAN NOT NULL
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
        autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000);

CREATE INDEX task_queue_claimable ON task_queue (simulated, service, priority DESC, due_at, seq) WHERE runnable;
-- The earliest due task of a queue, for a claim that found nothing to wait on (the claim index
-- orders by priority first, so its MIN would read every entry).
CREATE INDEX task_queue_due ON task_queue (simulated, service, due_at) WHERE runnable;
CREATE INDEX task_queue_rescuable ON task_queue (lease_expires_at) WHERE rescuable;

INSERT INTO task_queue
SELECT job_id, COALESCE(parent_job_id, job_id), project_id, enterprise_project_id, service, job_type, simulated,
       priority, available_at, lease_expires_at, GREATEST(available_at, COALESCE(lease_expires_at, 0)), seq,
       runnable, rescuable
FROM jobs WHERE runnable OR rescuable;

DROP INDEX jobs_claimable;
DROP INDEX jobs_rescuable;
-- Deadlines of open jobs only, without `status` in the predicate (a column in an index predicate
-- makes every change of it a non-HOT update): a finished job's derived deadline is NULL.
DROP INDEX jobs_deadlines;
UPDATE jobs SET deadline_at = NULL WHERE deadline_at IS NOT NULL AND status NOT IN ('PENDING', 'RUNNING');
CREATE INDEX jobs_deadlines ON jobs (deadline_at) WHERE deadline_at IS NOT NULL;
-- Room on each page for a claim's new row version next to the old one (a HOT update).
ALTER TABLE jobs SET (fillfactor = 70);
