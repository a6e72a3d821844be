-- Ids, project ids and service names are compared byte by byte ("C"), not by the database's
-- collation: every claim, report and status read walks b-trees keyed by them, and under a
-- collation such as C.UTF-8 each comparison goes through strcoll (a fifth of PostgreSQL's CPU
-- in the burn-down's profile). They are ASCII, so their order does not change. No table is
-- rewritten (text to text is binary-coercible); the indexes on these columns are rebuilt.
ALTER TABLE jobs
    ALTER COLUMN job_id TYPE TEXT COLLATE "C",
    ALTER COLUMN parent_job_id TYPE TEXT COLLATE "C",
    ALTER COLUMN project_id TYPE TEXT COLLATE "C",
    ALTER COLUMN service TYPE TEXT COLLATE "C";

ALTER TABLE task_queue
    ALTER COLUMN job_id TYPE TEXT COLLATE "C",
    ALTER COLUMN root_id TYPE TEXT COLLATE "C",
    ALTER COLUMN project_id TYPE TEXT COLLATE "C",
    ALTER COLUMN service TYPE TEXT COLLATE "C";

ALTER TABLE idempotency_keys
    ALTER COLUMN project_id TYPE TEXT COLLATE "C";
