//! Set-based row writes and tree loads for the PostgreSQL backend: any number of job rows go to
//! the server as one array per column and are written by one statement
//! (`INSERT ... SELECT FROM unnest(...)`, `UPDATE ... FROM unnest(...)`), and any number of trees
//! come back in one query. Every write of the backend, single or batch, goes through here, so a
//! job's row has one mapping to columns, and the same statement keeps `task_queue` (the claim
//! path's narrow table: a row per open runnable or rescuable task) in step with `jobs`.

use jobd_core::TaskFlags;

use super::*;
use crate::codec::{enum_text, to_json};

/// What the row writes hand on to `task_queue` and `ended_roots` from the rows they wrote (not the
/// whole row: a job's payload and result need not be copied on), named by table (an `UPDATE ...
/// FROM unnest(...)` has columns of the same names).
const WRITTEN_COLUMNS: &str = "jobs.job_id, jobs.parent_job_id, jobs.project_id, jobs.enterprise_project_id, \
     jobs.service, jobs.job_type, jobs.simulated, jobs.priority, jobs.available_at, jobs.lease_expires_at, jobs.seq, \
     jobs.runnable, jobs.rescuable, jobs.ended_at, jobs.version";

/// The `task_queue` columns a row write sets, and their values from the [`WRITTEN_COLUMNS`] of
/// a job row it wrote: the queue row of a runnable or rescuable task (a claim kept in the queue
/// row is cleared by the write that takes it into the job row).
const QUEUE_COLUMNS: &str = "job_id, root_id, project_id, enterprise_project_id, service, job_type, simulated, \
     priority, available_at, lease_expires_at, due_at, seq, runnable, rescuable, version";
const QUEUE_VALUES: &str = "job_id, COALESCE(parent_job_id, job_id), project_id, enterprise_project_id, service, \
     job_type, simulated, priority, available_at, lease_expires_at, GREATEST(available_at, COALESCE(lease_expires_at, 0)), \
     seq, runnable, rescuable, version";

/// Job rows, column by column: the binds of one set-based statement.
#[derive(Default)]
pub(super) struct RowColumns {
    job_id: Vec<String>,
    parent_job_id: Vec<Option<String>>,
    position: Vec<i32>,
    project_id: Vec<String>,
    enterprise_project_id: Vec<String>,
    service: Vec<String>,
    job_type: Vec<String>,
    status: Vec<String>,
    message: Vec<Option<String>>,
    resource_id: Vec<Option<String>>,
    entities: Vec<String>,
    error_code: Vec<Option<String>>,
    error_msg: Vec<Option<String>>,
    payload: Vec<Option<String>>,
    result: Vec<Option<String>>,
    simulate: Vec<Option<String>>,
    created_at: Vec<i64>,
    started_at: Vec<Option<i64>>,
    ended_at: Vec<Option<i64>>,
    updated_at: Vec<i64>,
    version: Vec<i64>,
    priority: Vec<i32>,
    run_at: Vec<Option<i64>>,
    available_at: Vec<i64>,
    max_attempts: Vec<i64>,
    attempt: Vec<i64>,
    retry_backoff: Vec<String>,
    timeout_seconds: Vec<Option<i64>>,
    execution: Vec<String>,
    lease_worker_id: Vec<Option<String>>,
    lease_token: Vec<Option<String>>,
    lease_expires_at: Vec<Option<i64>>,
    runnable: Vec<bool>,
    simulated: Vec<bool>,
    deadline_at: Vec<Option<i64>>,
    on_failure: Vec<String>,
    phase: Vec<String>,
    compensation: Vec<Option<String>>,
    rescuable: Vec<bool>,
    /// `Job::tree_status` on a root row, NULL on a sub-job's.
    tree_status: Vec<Option<String>>,
    /// For updates: the version the row must still have.
    previous_version: Vec<i64>,
}

impl RowColumns {
    pub(super) fn len(&self) -> usize {
        self.job_id.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.job_id.is_empty()
    }

    /// Adds one row: `job` (its own fields; sub-jobs are rows of their own) at `position` under
    /// its parent, with its derived flags; `previous_version` is what an update expects to find.
    fn push(&mut self, job: &Job, position: i32, flags: TaskFlags, previous_version: i64) {
        self.job_id.push(job.job_id.to_string());
        self.parent_job_id.push(job.parent_job_id.as_ref().map(|p| p.to_string()));
        self.position.push(position);
        self.project_id.push(job.project_id.to_string());
        self.enterprise_project_id.push(job.enterprise_project_id.clone());
        self.service.push(job.service.to_string());
        self.job_type.push(job.job_type.to_string());
        self.status.push(job.status.as_str().to_owned());
        self.message.push(job.message.clone());
        self.resource_id.push(job.resource_id.clone());
        self.entities.push(to_json(&job.entities));
        self.error_code.push(job.error_code.clone());
        self.error_msg.push(job.error_msg.clone());
        self.payload.push(job.payload.as_ref().map(to_json));
        self.result.push(job.result.as_ref().map(to_json));
        self.simulate.push(job.simulate.as_ref().map(to_json));
        self.created_at.push(millis(&job.created_at));
        self.started_at.push(job.started_at.as_ref().map(millis));
        self.ended_at.push(job.ended_at.as_ref().map(millis));
        self.updated_at.push(millis(&job.updated_at));
        self.version.push(job.version);
        self.priority.push(job.priority);
        self.run_at.push(job.run_at.as_ref().map(millis));
        self.available_at.push(millis(&job.available_at));
        self.max_attempts.push(i64::from(job.max_attempts));
        self.attempt.push(i64::from(job.attempt));
        self.retry_backoff.push(to_json(&job.retry_backoff));
        self.timeout_seconds.push(job.timeout_seconds.map(i64::from));
        self.execution.push(job.execution.as_str().to_owned());
        self.lease_worker_id.push(job.lease.as_ref().map(|l| l.worker_id.clone()));
        self.lease_token.push(job.lease.as_ref().map(|l| l.token.clone()));
        self.lease_expires_at.push(job.lease.as_ref().map(|l| millis(&l.expires_at)));
        self.runnable.push(flags.runnable);
        self.simulated.push(job.simulate.is_some());
        // Only an open job can time out: a finished one keeps no deadline (so the deadline index
        // holds open jobs without `status` in its predicate).
        self.deadline_at.push(job.deadline().filter(|_| !job.is_terminal()).as_ref().map(millis));
        self.on_failure.push(enum_text(&job.on_failure));
        self.phase.push(enum_text(&job.phase));
        self.compensation.push(job.compensation.as_ref().map(to_json));
        self.rescuable.push(flags.rescuable);
        self.tree_status.push(job.parent_job_id.is_none().then(|| job.tree_status().as_str().to_owned()));
        self.previous_version.push(previous_version);
    }

    /// Adds every row of a new tree.
    pub(super) fn push_new_tree(&mut self, tree: &Job) -> Result<()> {
        let flags = tree.task_flags();
        for (index, (job, flag)) in tree.iter_tree().zip(flags).enumerate() {
            // The root is at position 0, and so is its first sub-job (positions count siblings).
            let position = i32::try_from(index.saturating_sub(1)).map_err(|e| corrupt("position", e))?;
            self.push(job, position, flag, job.version);
        }
        Ok(())
    }

    /// Adds the rows of `after` that differ from `before` (their own fields, whether they may
    /// run, or for the root where the tree stands): what a change of one tree writes.
    pub(super) fn push_changes(&mut self, before: &Job, after: &Job) {
        let (old_flags, new_flags) = (before.task_flags(), after.task_flags());
        let tree_status_changed = before.tree_status() != after.tree_status();
        let pairs = before.iter_tree().zip(after.iter_tree()).zip(old_flags.into_iter().zip(new_flags));
        for (index, ((old, new), (old_flag, new_flag))) in pairs.enumerate() {
            if !old.same_row(new) || old_flag != new_flag || (index == 0 && tree_status_changed) {
                self.push(new, index.saturating_sub(1) as i32, new_flag, old.version);
            }
        }
    }

    /// Inserts every row in one statement; a job id that exists is a `Conflict`.
    pub(super) async fn insert(self, conn: &mut PgConnection) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let first = self.job_id[0].clone();
        sqlx::query(&format!(
            "WITH inserted AS (INSERT INTO jobs (job_id, parent_job_id, position, project_id, enterprise_project_id, service, \
             job_type, status, message, resource_id, entities, error_code, error_msg, payload, result, simulate, \
             created_at, started_at, ended_at, updated_at, version, priority, run_at, available_at, max_attempts, \
             attempt, retry_backoff, timeout_seconds, execution, lease_worker_id, lease_token, lease_expires_at, \
             runnable, simulated, deadline_at, on_failure, phase, compensation, rescuable, tree_status) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
             $15::text[], $16::text[], $17::int8[], $18::int8[], $19::int8[], $20::int8[], $21::int8[], \
             $22::int4[], $23::int8[], $24::int8[], $25::int8[], $26::int8[], $27::text[], $28::int8[], \
             $29::text[], $30::text[], $31::text[], $32::int8[], $33::bool[], $34::bool[], $35::int8[], \
             $36::text[], $37::text[], $38::text[], $39::bool[], $40::text[]) RETURNING {WRITTEN_COLUMNS}), \
             queued AS (INSERT INTO task_queue ({QUEUE_COLUMNS}) SELECT {QUEUE_VALUES} \
             FROM inserted WHERE runnable OR rescuable), \
             ended AS (INSERT INTO ended_roots SELECT ended_at, job_id FROM inserted \
             WHERE parent_job_id IS NULL AND ended_at IS NOT NULL) \
             SELECT 1"
        ))
        .bind(self.job_id)
        .bind(self.parent_job_id)
        .bind(self.position)
        .bind(self.project_id)
        .bind(self.enterprise_project_id)
        .bind(self.service)
        .bind(self.job_type)
        .bind(self.status)
        .bind(self.message)
        .bind(self.resource_id)
        .bind(self.entities)
        .bind(self.error_code)
        .bind(self.error_msg)
        .bind(self.payload)
        .bind(self.result)
        .bind(self.simulate)
        .bind(self.created_at)
        .bind(self.started_at)
        .bind(self.ended_at)
        .bind(self.updated_at)
        .bind(self.version)
        .bind(self.priority)
        .bind(self.run_at)
        .bind(self.available_at)
        .bind(self.max_attempts)
        .bind(self.attempt)
        .bind(self.retry_backoff)
        .bind(self.timeout_seconds)
        .bind(self.execution)
        .bind(self.lease_worker_id)
        .bind(self.lease_token)
        .bind(self.lease_expires_at)
        .bind(self.runnable)
        .bind(self.simulated)
        .bind(self.deadline_at)
        .bind(self.on_failure)
        .bind(self.phase)
        .bind(self.compensation)
        .bind(self.rescuable)
        .bind(self.tree_status)
        .execute(&mut *conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(first),
            _ => StoreError::from(e),
        })?;
        Ok(())
    }

    /// Writes the changed fields of every row in one statement, each only if it still has the
    /// version it was read at (the caller holds the trees' root locks, so anything else is a bug).
    pub(super) async fn update(self, conn: &mut PgConnection) -> Result<()> {
        let expected = self.len();
        let written = self.update_unchanged(conn).await?;
        if written.len() != expected {
            return Err(StoreError::Corrupt(format!(
                "{} of {expected} job rows changed under a write",
                expected - written.len()
            )));
        }
        Ok(())
    }

    /// Writes the rows that still have the versions they were read at, in one statement; answers
    /// the ids of those written. Each row's lock is taken as it is written, and held until the
    /// transaction ends.
    pub(super) async fn update_unchanged(self, conn: &mut PgConnection) -> Result<Vec<String>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let written: Vec<String> = sqlx::query_scalar(&format!(
            "WITH updated AS (UPDATE jobs SET status = u.status, message = u.message, error_code = u.error_code, \
             error_msg = u.error_msg, result = u.result, started_at = u.started_at, ended_at = u.ended_at, \
             updated_at = u.updated_at, version = u.version, available_at = u.available_at, attempt = u.attempt, \
             lease_worker_id = u.lease_worker_id, lease_token = u.lease_token, \
             lease_expires_at = u.lease_expires_at, runnable = u.runnable, deadline_at = u.deadline_at, \
             phase = u.phase, compensation = u.compensation, rescuable = u.rescuable, tree_status = u.tree_status \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], \
             $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::text[], $13::text[], $14::int8[], \
             $15::bool[], $16::int8[], $17::text[], $18::text[], $19::bool[], $20::text[], $21::int8[], \
             $22::text[]) \
             AS u(status, message, error_code, error_msg, result, started_at, ended_at, updated_at, version, \
             available_at, attempt, lease_worker_id, lease_token, lease_expires_at, runnable, deadline_at, phase, \
             compensation, rescuable, job_id, previous_version, tree_status) \
             WHERE jobs.job_id = u.job_id AND jobs.version = u.previous_version RETURNING {WRITTEN_COLUMNS}), \
             queued AS (INSERT INTO task_queue ({QUEUE_COLUMNS}) SELECT {QUEUE_VALUES} \
             FROM updated WHERE runnable OR rescuable \
             ON CONFLICT (job_id) DO UPDATE SET available_at = EXCLUDED.available_at, \
             lease_expires_at = EXCLUDED.lease_expires_at, due_at = EXCLUDED.due_at, \
             runnable = EXCLUDED.runnable, rescuable = EXCLUDED.rescuable, version = EXCLUDED.version, \
             claim_worker_id = NULL, claim_token = NULL, claimed_at = NULL), \
             dequeued AS (DELETE FROM task_queue WHERE job_id = ANY(ARRAY( \
             SELECT job_id FROM updated WHERE NOT (runnable OR rescuable)))), \
             ended AS (INSERT INTO ended_roots SELECT ended_at, job_id FROM updated \
             WHERE parent_job_id IS NULL AND ended_at IS NOT NULL ON CONFLICT DO NOTHING) \
             SELECT COALESCE(array_agg(job_id), '{{}}') FROM updated"
        ))
        .bind(self.status)
        .bind(self.message)
        .bind(self.error_code)
        .bind(self.error_msg)
        .bind(self.result)
        .bind(self.started_at)
        .bind(self.ended_at)
        .bind(self.updated_at)
        .bind(self.version)
        .bind(self.available_at)
        .bind(self.attempt)
        .bind(self.lease_worker_id)
        .bind(self.lease_token)
        .bind(self.lease_expires_at)
        .bind(self.runnable)
        .bind(self.deadline_at)
        .bind(self.phase)
        .bind(self.compensation)
        .bind(self.rescuable)
        .bind(self.job_id)
        .bind(self.previous_version)
        .bind(self.tree_status)
        .fetch_one(&mut *conn)
        .await?;
        Ok(written)
    }
}

/// The trees whose roots are `root_ids` as they stand, in one query, keyed by root id; a root
/// that does not exist is absent. The caller holds the roots' locks (or reads in one snapshot).
pub(super) async fn load_trees(conn: &mut PgConnection, root_ids: &[String]) -> Result<HashMap<JobId, Job>> {
    let mut trees = HashMap::with_capacity(root_ids.len());
    if root_ids.is_empty() {
        return Ok(trees);
    }
    // Two index scans (roots by id, sub-jobs by parent), never a bitmap OR: claims turn bitmap
    // scans off for their own query.
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS}, position, {} FROM jobs WHERE job_id = ANY($1) AND parent_job_id IS NULL \
         UNION ALL \
         SELECT {JOB_COLUMNS}, position, {NO_PENDING_CLAIM} FROM jobs WHERE parent_job_id = ANY($1) \
         ORDER BY parent_job_id NULLS FIRST, position",
        pending_claim_column("jobs")
    ))
    .bind(root_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut subs = Vec::new();
    for row in &rows {
        let job = job_now_from_row(row)?;
        match &job.parent_job_id {
            None => {
                trees.insert(job.job_id.clone(), job);
            }
            Some(_) => subs.push((job, row.try_get::<i32, _>("position")?)),
        }
    }
    // Sorted by parent, then position: each tree's sub-jobs arrive in order.
    for (sub, _position) in subs {
        let parent = sub.parent_job_id.clone().expect("a sub-job has a parent");
        match trees.get_mut(&parent) {
            Some(tree) => tree.sub_jobs.push(sub),
            None => return Err(StoreError::Corrupt(format!("sub-job {} has no parent row", sub.job_id))),
        }
    }
    Ok(trees)
}

/// A count stored as BIGINT, back to the domain's `u32`.
pub(super) fn count(row: &PgRow, column: &str) -> Result<u32> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|e| corrupt(column, e))
}

pub(super) fn enum_from_text<T: serde::de::DeserializeOwned>(row: &PgRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_value(serde_json::Value::String(text)).map_err(|e| corrupt(column, e))
}

pub(super) fn job_from_row(row: &PgRow) -> Result<Job> {
    let parent: Option<String> = row.try_get("parent_job_id")?;
    let timeout_seconds: Option<i64> = row.try_get("timeout_seconds")?;
    Ok(Job {
        job_id: JobId::parse(row.try_get("job_id")?).map_err(|e| corrupt("job_id", e))?,
        parent_job_id: parent.map(|p| JobId::parse(&p)).transpose().map_err(|e| corrupt("parent_job_id", e))?,
        project_id: ProjectId::parse(row.try_get("project_id")?).map_err(|e| corrupt("project_id", e))?,
        enterprise_project_id: row.try_get("enterprise_project_id")?,
        service: ServiceName::parse(row.try_get("service")?).map_err(|e| corrupt("service", e))?,
        job_type: JobType::parse(row.try_get("job_type")?).map_err(|e| corrupt("job_type", e))?,
        status: JobStatus::from_str(row.try_get("status")?).map_err(|e| corrupt("status", e))?,
        message: row.try_get("message")?,
        resource_id: row.try_get("resource_id")?,
        entities: from_json("entities", row.try_get("entities")?)?.unwrap_or_default(),
        error_code: row.try_get("error_code")?,
        error_msg: row.try_get("error_msg")?,
        payload: from_json("payload", row.try_get("payload")?)?,
        result: from_json("result", row.try_get("result")?)?,
        simulate: from_json("simulate", row.try_get("simulate")?)?,
        created_at: from_millis(row.try_get("created_at")?)?,
        started_at: opt_from_millis(row.try_get("started_at")?)?,
        ended_at: opt_from_millis(row.try_get("ended_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
        version: row.try_get("version")?,
        priority: row.try_get("priority")?,
        run_at: opt_from_millis(row.try_get("run_at")?)?,
        available_at: from_millis(row.try_get("available_at")?)?,
        max_attempts: count(row, "max_attempts")?,
        attempt: count(row, "attempt")?,
        retry_backoff: from_json("retry_backoff", row.try_get("retry_backoff")?)?.unwrap_or_default(),
        timeout_seconds: timeout_seconds.map(u32::try_from).transpose().map_err(|e| corrupt("timeout_seconds", e))?,
        execution: Execution::parse(row.try_get("execution")?).ok_or_else(|| corrupt("execution", "unknown value"))?,
        lease: match (
            row.try_get::<Option<String>, _>("lease_worker_id")?,
            row.try_get::<Option<String>, _>("lease_token")?,
            row.try_get::<Option<i64>, _>("lease_expires_at")?,
        ) {
            (Some(worker_id), Some(token), Some(expires_at)) => {
                Some(Lease { worker_id, token, expires_at: from_millis(expires_at)? })
            }
            _ => None,
        },
        on_failure: enum_from_text(row, "on_failure")?,
        phase: enum_from_text(row, "phase")?,
        compensation: from_json("compensation", row.try_get("compensation")?)?,
        sub_jobs: Vec::new(),
    })
}

pub(super) fn job_ref(row: &PgRow) -> Result<JobRef> {
    Ok(JobRef {
        project_id: ProjectId::parse(row.try_get("project_id")?).map_err(|e| corrupt("project_id", e))?,
        job_id: JobId::parse(row.try_get("job_id")?).map_err(|e| corrupt("job_id", e))?,
    })
}

/// Writes every row of a tree that changed. The caller holds the tree's root lock.
pub(super) async fn write_tree_changes(conn: &mut PgConnection, before: &Job, after: &Job) -> Result<()> {
    let mut rows = RowColumns::default();
    rows.push_changes(before, after);
    rows.update(conn).await
}

/// The whole tree a job (or sub-job) of this project belongs to, locked for this transaction to
/// change (`FOR UPDATE`, waiting for the current holder): its root first (locked first), then the
/// root's sub-jobs in order. Answers it as stored and as it stands (`pending_claims`).
pub(super) async fn lock_tree(
    conn: &mut PgConnection,
    project_id: &ProjectId,
    job_id: &JobId,
) -> Result<Option<(Job, Job)>> {
    let root = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = \
         (SELECT COALESCE(parent_job_id, job_id) FROM jobs WHERE job_id = $1 AND project_id = $2) FOR UPDATE"
    ))
    .bind(job_id.as_str())
    .bind(project_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(root) = root else { return Ok(None) };
    let mut root = job_from_row(&root)?;
    let subs =
        sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE parent_job_id = $1 ORDER BY position FOR UPDATE"))
            .bind(root.job_id.as_str())
            .fetch_all(&mut *conn)
            .await?;
    root.sub_jobs = subs.iter().map(job_from_row).collect::<Result<_>>()?;
    if root.find(job_id).is_none() {
        return Ok(None);
    }
    let root_id = root.job_id.clone();
    let mut trees = apply_pending_claims(conn, HashMap::from([(root_id.clone(), root)])).await?;
    Ok(trees.remove(&root_id))
}

/// Loads the sub-jobs of the given parents and attaches them in order.
pub(super) async fn attach_sub_jobs(conn: &mut PgConnection, parents: &mut [Job]) -> Result<()> {
    if parents.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = parents.iter().map(|p| p.job_id.to_string()).collect();
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE parent_job_id = ANY($1) ORDER BY parent_job_id, position"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let index: std::collections::HashMap<JobId, usize> =
        parents.iter().enumerate().map(|(i, p)| (p.job_id.clone(), i)).collect();
    for row in &rows {
        let sub = job_from_row(row)?;
        if let Some(&i) = sub.parent_job_id.as_ref().and_then(|parent_id| index.get(parent_id)) {
            parents[i].sub_jobs.push(sub);
        }
    }
    Ok(())
}
