//! Claims kept in `task_queue` until the job's next write.
//!
//! A claim of a lone job (a job without sub-jobs) without a timeout changes nothing a query on
//! `jobs` looks for but its status, and everything else it changes is the lease. Writing the wide
//! row for it (and locking it first) was a third of PostgreSQL's work in the burn-down, and the
//! completion wrote the same row again a moment later. So such a claim writes only the task's
//! narrow `task_queue` row: the lease (`claim_worker_id`, `claim_token`, `lease_expires_at`) and
//! when it was taken (`claimed_at`). The job's row in `jobs` stays as it was before the claim.
//!
//! The rule that keeps this exact: while a `task_queue` row holds a claim, its job's row in `jobs`
//! is the row the claim was decided on, and the job as it stands is that row with the claim applied
//! by the state machine (`jobd_core::apply`, the same event at the same time: the same answer).
//! - A claim takes its `task_queue` rows (`FOR UPDATE SKIP LOCKED`) and reads the job rows in the
//!   same statement, keeping a job row only when it has the version its queue row names (every
//!   write of a job row rewrites its queue row in the same statement, so a write that committed
//!   after the statement's snapshot shows as a newer queue row); the others are read again in a
//!   later statement. Either way the claim decides on the row as the last write left it, and
//!   nothing can write it while the claim holds the queue row.
//! - Every write of a job tree takes its root (`FOR UPDATE`), then the `task_queue` row of a lone
//!   root (`FOR UPDATE`, waiting for a claim in flight), applies the claim it holds, and writes the
//!   row with the claim in it; the same statement clears the claim from `task_queue`.
//! - Every read applies the claim it finds beside the row, in the same statement (one snapshot).
//! - Lists filtered by status, the console's counts of running tasks and its held leases read the
//!   claim's status (`RUNNING`, [`CLAIMED_STATUS`]) and lease from `task_queue`.
//!
//! - Two writes take no lock before they write, and rely on versions instead: a report on a
//!   claim this node kept (`kept_claims`: written only where the job's row still has the version
//!   the claim read, taking the row's lock, then the queue row's, as it writes), and a claim of a
//!   lone job this node has just committed (`claims::claim_offered`: written only where the queue
//!   row holds no claim and names the job's version).
//!
//! A claim that would change more (a sub-job's, whose root changes too; a job with a timeout,
//! whose deadline starts; a job whose queue row already holds a claim, taken again after its
//! lease expired) locks the root and writes the rows, as every other write does.

use jobd_core::{JobStatus, TreeStatus};

use super::*;

/// The status of a job whose `task_queue` row holds a claim: what the claim made of it (a quick
/// claim is taken only when it makes the job and its tree `RUNNING`).
pub(super) const CLAIMED_STATUS: &str = "RUNNING";

/// A claim a `task_queue` row holds: the lease it gave and when.
#[derive(Debug, serde::Deserialize)]
pub(super) struct PendingClaim(String, String, i64, i64);

/// The JSON a statement answers for the claim of the `task_queue` row aliased `q`
/// (`[worker_id, token, lease_expires_at, claimed_at]`): what [`PendingClaim::parse`] reads.
const CLAIM_JSON: &str = "json_build_array(q.claim_worker_id, q.claim_token, q.lease_expires_at, q.claimed_at)::text";

impl PendingClaim {
    /// A claim as [`CLAIM_JSON`] gave it.
    fn parse(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| corrupt("pending_claim", e))
    }

    /// The job as it stands: `stored` (the row the claim was decided on) with the claim applied.
    pub(super) fn apply_to(self, stored: &Job) -> Result<Job> {
        let PendingClaim(worker_id, token, expires_at, claimed_at) = self;
        let lease = Lease { worker_id, token, expires_at: from_millis(expires_at)? };
        apply(stored, &stored.job_id, &JobEvent::Claim { lease }, from_millis(claimed_at)?).map_err(|refused| {
            StoreError::Corrupt(format!(
                "the claim task_queue holds for job {} does not apply: {refused}",
                stored.job_id
            ))
        })
    }
}

/// `FROM` and `WHERE` of a subquery: the `task_queue` row (`q`) of the job row aliased `alias`,
/// while it holds a claim.
pub(super) fn queue_row_holding_a_claim(alias: &str) -> String {
    format!("FROM task_queue AS q WHERE q.job_id = {alias}.job_id AND q.claim_token IS NOT NULL")
}

/// A select-list item: the claim the `task_queue` row of the job row aliased `alias` holds, if
/// any, as [`CLAIM_JSON`], named `pending_claim`.
pub(super) fn pending_claim_column(alias: &str) -> String {
    format!("(SELECT {CLAIM_JSON} {}) AS pending_claim", queue_row_holding_a_claim(alias))
}

/// `pending_claim` for rows that never hold one (sub-jobs), where a `UNION` needs the column.
pub(super) const NO_PENDING_CLAIM: &str = "NULL::text AS pending_claim";

/// A status filter's column: the row's status, or [`CLAIMED_STATUS`] while a claim is pending.
pub(super) fn status_now(alias: &str, column: &str) -> String {
    format!("COALESCE((SELECT '{CLAIMED_STATUS}'::text {}), {alias}.{column})", queue_row_holding_a_claim(alias))
}

/// The job of a row read with [`pending_claim_column`], as it stands.
pub(super) fn job_now_from_row(row: &PgRow) -> Result<Job> {
    let stored = job_from_row(row)?;
    match row.try_get::<Option<String>, _>("pending_claim")? {
        Some(claim) => PendingClaim::parse(&claim)?.apply_to(&stored),
        None => Ok(stored),
    }
}

/// Whether the claim that made `after` of `before` may stay in `task_queue` alone.
pub(super) fn may_stay_in_queue(before: &Job, after: &Job) -> bool {
    let flags = after.task_flags();
    before.parent_job_id.is_none()
        && !before.has_sub_jobs()
        && before.timeout_seconds.is_none()
        && after.status == JobStatus::Running
        && after.tree_status() == TreeStatus::Running
        && flags.len() == 1
        && (flags[0].runnable || flags[0].rescuable)
}

/// Trees whose roots this transaction has locked: each as stored and as it stands, with the claim
/// the `task_queue` row of a lone root holds applied. Takes those rows (`FOR UPDATE`, waiting for
/// a claim in flight) so no claim comes between this read and the write.
pub(super) async fn apply_pending_claims(
    conn: &mut PgConnection,
    trees: HashMap<JobId, Job>,
) -> Result<HashMap<JobId, (Job, Job)>> {
    let lone: Vec<String> = trees.values().filter(|tree| !tree.has_sub_jobs()).map(|t| t.job_id.to_string()).collect();
    let claims: Vec<(String, Option<String>)> = if lone.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(&format!(
            "SELECT q.job_id, CASE WHEN q.claim_token IS NOT NULL THEN {CLAIM_JSON} END FROM task_queue AS q \
             WHERE q.job_id = ANY($1) ORDER BY q.job_id FOR UPDATE"
        ))
        .bind(&lone)
        .fetch_all(&mut *conn)
        .await?
    };
    let mut pending: HashMap<String, PendingClaim> = HashMap::new();
    for (job_id, claim) in claims {
        if let Some(claim) = claim {
            pending.insert(job_id, PendingClaim::parse(&claim)?);
        }
    }
    trees
        .into_iter()
        .map(|(root_id, stored)| {
            let now = match pending.remove(root_id.as_str()) {
                Some(claim) => claim.apply_to(&stored)?,
                None => stored.clone(),
            };
            Ok((root_id, (stored, now)))
        })
        .collect()
}

/// Claims that stay in `task_queue` alone, column by column: one statement writes them all.
#[derive(Default)]
pub(super) struct QueuedClaims {
    job_id: Vec<String>,
    worker_id: Vec<String>,
    token: Vec<String>,
    expires_at: Vec<i64>,
    claimed_at: Vec<i64>,
    runnable: Vec<bool>,
    rescuable: Vec<bool>,
    /// For a claim made without holding the queue row (`claim_offered`): the version of the job
    /// row it was decided on, which the queue row must still name, holding no claim.
    unheld_version: Vec<Option<i64>>,
}

impl QueuedClaims {
    /// Adds the claim that made `after` (a lone job, [`may_stay_in_queue`]) at `now`, decided on
    /// the job row at `unheld_version` when the caller does not hold the queue row.
    pub(super) fn push(&mut self, after: &Job, now: Timestamp, unheld_version: Option<i64>) {
        let lease = after.lease.as_ref().expect("a claimed job holds a lease");
        let flags = after.task_flags()[0];
        self.unheld_version.push(unheld_version);
        self.job_id.push(after.job_id.to_string());
        self.worker_id.push(lease.worker_id.clone());
        self.token.push(lease.token.clone());
        self.expires_at.push(millis(&lease.expires_at));
        self.claimed_at.push(millis(&now));
        self.runnable.push(flags.runnable);
        self.rescuable.push(flags.rescuable);
    }

    /// Writes every claim, all of which must be written: the caller holds the rows of those made
    /// under the claim's `FOR UPDATE`.
    pub(super) async fn write(self, conn: &mut PgConnection) -> Result<()> {
        let expected = self.job_id.len() as u64;
        let done = self.write_where_unclaimed(conn).await?;
        if done != expected {
            return Err(StoreError::Corrupt(format!("{} of {expected} claimed tasks left the queue", expected - done)));
        }
        Ok(())
    }

    /// Writes every claim, those not held only where their queue rows hold no claim and name the
    /// version each was decided on (the job row has not been written since: every write of it
    /// rewrites its queue row); answers how many it wrote. A row not held is taken as it is
    /// written (waiting for a claim in flight on it, which never waits for anything). A claim that
    /// leaves the row's flags as they were changes no column an index holds (the lease's expiry
    /// makes the task due again, `task_queue.due_at` stays), so the server writes the new version
    /// beside the old one with no new index entry (a HOT update); one that changes them (the last
    /// attempt's) moves `due_at` to the lease's expiry, where the rescuer looks.
    pub(super) async fn write_where_unclaimed(self, conn: &mut PgConnection) -> Result<u64> {
        if self.job_id.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE task_queue AS t SET claim_worker_id = c.worker_id, claim_token = c.token, \
             claimed_at = c.claimed_at, lease_expires_at = c.expires_at, \
             due_at = CASE WHEN (t.runnable, t.rescuable) = (c.runnable, c.rescuable) THEN t.due_at \
             ELSE GREATEST(t.available_at, c.expires_at) END, runnable = c.runnable, rescuable = c.rescuable \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::bool[], $7::bool[], \
             $8::int8[]) AS c(job_id, worker_id, token, expires_at, claimed_at, runnable, rescuable, unheld_version) \
             WHERE t.job_id = c.job_id \
             AND (c.unheld_version IS NULL OR (t.version = c.unheld_version AND t.claim_token IS NULL))",
        )
        .bind(self.job_id)
        .bind(self.worker_id)
        .bind(self.token)
        .bind(self.expires_at)
        .bind(self.claimed_at)
        .bind(self.runnable)
        .bind(self.rescuable)
        .bind(self.unheld_version)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(done)
    }
}
