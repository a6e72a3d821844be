-- When each finished top-level job ended, in a narrow table of its own, for pruning and the
-- console's finished-jobs counts.
--
-- Why: `jobs_ended` indexed `jobs.ended_at`, so the write that finishes a job changed an indexed
-- column of the wide row: never a HOT update, but a new entry in each of the table's indexes
-- (seven), and their dead entries to clean up afterwards. This was the largest share of
-- PostgreSQL's work in the burn-down. Now `jobs` has no index on a column a claim or a completion
-- changes (for jobs without a timeout), and a completion adds one narrow row here instead.
-- `ended_at` is written once, when a job finishes, and never changes after.
CREATE TABLE ended_roots (
    ended_at BIGINT             NOT NULL,
    job_id   TEXT COLLATE "C"   NOT NULL,
    PRIMARY KEY (ended_at, job_id)
);

INSERT INTO ended_roots SELECT ended_at, job_id FROM jobs WHERE parent_job_id IS NULL AND ended_at IS NOT NULL;

DROP INDEX jobs_ended;
ALTER TABLE jobs SET (fillfactor = 50);
