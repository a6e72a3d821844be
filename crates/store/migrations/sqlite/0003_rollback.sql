-- Rollback (the saga pattern) and the derived rescue flag.
ALTER TABLE jobs ADD COLUMN on_failure TEXT NOT NULL DEFAULT 'fail';
ALTER TABLE jobs ADD COLUMN phase TEXT NOT NULL DEFAULT 'run';
ALTER TABLE jobs ADD COLUMN compensation TEXT;
-- Derived on every write: an open task holding a lease with no attempts left.
ALTER TABLE jobs ADD COLUMN rescuable INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET rescuable = (lease_token IS NOT NULL AND attempt >= max_attempts AND status IN ('PENDING', 'RUNNING')
    AND NOT EXISTS (SELECT 1 FROM jobs AS c WHERE c.parent_job_id = jobs.job_id));
UPDATE jobs SET runnable = 0 WHERE attempt >= max_attempts;
DROP INDEX jobs_leases;
CREATE INDEX jobs_rescuable ON jobs (lease_expires_at) WHERE rescuable = 1;
