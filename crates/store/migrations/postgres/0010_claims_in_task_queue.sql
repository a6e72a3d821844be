-- A claim of a lone job without a timeout is kept in the task's queue row until the job's next
-- write (see postgres/pending_claims.rs): the lease it gave (`claim_worker_id`, `claim_token`,
-- with `lease_expires_at`) and when it was taken. While `claim_token` is set, the job's row in
-- `jobs` is the row the claim was decided on, and the job as it stands is that row with the claim
-- applied. The claim then writes one narrow row instead of locking and rewriting the wide one.
ALTER TABLE task_queue
    ADD COLUMN claim_worker_id TEXT,
    ADD COLUMN claim_token     TEXT,
    ADD COLUMN claimed_at      BIGINT;
