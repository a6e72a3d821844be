-- The version of the job row a `task_queue` row was written with (every write of a job row
-- rewrites its queue row in the same statement, postgres/rows.rs): a claim reads its candidates'
-- job rows in the statement that takes the queue rows, and keeps a job row only when the
-- versions agree (postgres/claims.rs), one round trip less per claim.
--
-- Every node sharing the database must run a version with this migration: an older node's row
-- writes would leave `version` behind.
ALTER TABLE task_queue ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
UPDATE task_queue AS q SET version = j.version FROM jobs AS j WHERE j.job_id = q.job_id;
