-- A project's jobs newest first across all services (the native list without a service filter):
-- without it the first page sorted every job of the project (seconds at 10 million jobs).
CREATE INDEX jobs_by_project_time ON jobs (project_id, created_at DESC, seq DESC)
    WHERE parent_job_id IS NULL;
