-- A claim kept in `task_queue` (see postgres/pending_claims.rs) as a HOT update: it writes the
-- claim's columns and `lease_expires_at`, none of which an index holds, so the row's new version
-- goes on the same page and no index gets a new entry. Before, the claim moved `due_at` (a key of
-- both claim indexes) and `lease_expires_at` (the rescuer's key), which put a new entry in each of
-- the table's indexes for every claimed task: a quarter of the server's work in a burn-down.
--
-- So `due_at` is now what the last row write left (`GREATEST(available_at, lease_expires_at)` of
-- the job row), and a task is due at `GREATEST(due_at, lease_expires_at)`: the same for a row a
-- row write left, and the claim's expiry for a row holding a claim. A claim that changes the
-- row's flags (the last attempt: runnable becomes rescuable) still moves `due_at`, as before.
--
-- The rescuer's index keys on `due_at` instead of `lease_expires_at`: a rescuable row is leased,
-- and a row write or a claim that makes a row rescuable sets `due_at` to its lease's expiry (a
-- lease is taken once the task is available, so it ends after `available_at`).
--
-- Every node sharing the database must run a version with this migration: an older node's claim
-- would read `due_at` alone and take a claimed row's `due_at` (left in the past) as due.
DROP INDEX task_queue_rescuable;
CREATE INDEX task_queue_rescuable ON task_queue (due_at) WHERE rescuable;
-- Room on each page for the claimed version of every row beside the row (a claim adds a worker
-- id, a token and two times to a row of about 170 bytes); pages written from now on.
ALTER TABLE task_queue SET (fillfactor = 40);
