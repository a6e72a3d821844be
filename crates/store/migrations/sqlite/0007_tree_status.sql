-- Derived on every write of a root row: `Job::tree_status()`, where the tree stands as a whole
-- (its status, with a rollback in progress and a failed rollback told apart), so that lists can
-- filter by what ELB shows (`ROLLBACKING`, `ROLLBACK_FAIL`). NULL on sub-job rows.
ALTER TABLE jobs ADD COLUMN tree_status TEXT;
UPDATE jobs SET tree_status = CASE
    WHEN status IN ('PENDING', 'RUNNING') AND phase = 'rollback' THEN 'ROLLING_BACK'
    WHEN status = 'FAILED' AND EXISTS (SELECT 1 FROM jobs AS c WHERE c.parent_job_id = jobs.job_id
        AND c.compensation IS NOT NULL AND json_extract(c.compensation, '$.status') = 'FAILED') THEN 'ROLLBACK_FAILED'
    ELSE status END
WHERE parent_job_id IS NULL;
