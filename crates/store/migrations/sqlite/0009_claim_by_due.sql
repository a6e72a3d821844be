-- When a worker may take a task: its available time, or when its lease expires if that is later.
-- The claim index orders by it, so a leased task moves to the back of the index (due when its
-- lease expires) instead of staying at the head, where every claim stepped over each task a
-- worker holds (thousands, with many handlers in flight). Derived by SQLite itself from the two
-- columns (a virtual column: nothing is stored in the row, the index keeps it).
ALTER TABLE jobs ADD COLUMN due_at INTEGER GENERATED ALWAYS AS (MAX(available_at, COALESCE(lease_expires_at, 0))) VIRTUAL;
DROP INDEX jobs_claimable;
CREATE INDEX jobs_claimable ON jobs (simulated, service, priority DESC, due_at, seq) WHERE runnable = 1;
