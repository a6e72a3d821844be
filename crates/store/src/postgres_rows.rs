//! Set-based row writes and tree loads for the PostgreSQL backend: any number of job rows go to
//! the server as one array per column and are written by one statement
//! (`INSERT ... SELECT FROM unnest(...)`, `UPDATE ... FROM unnest(...)`), and any number of trees
//! come back in one query. Every write of the backend, single or batch, goes through here, so a
//! job's row has one mapping to columns, and the same statement keeps `task_queue` (the claim
//! path's narrow table: a row per open runnable or rescuable task) in step with `jobs`.

use std::collections::HashMap;

use jobd_core::{Job, JobId, TaskFlags};
use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::codec::{corrupt, enum_text, millis, to_json};
use crate::postgres::{job_from_row, JOB_COLUMNS};
use crate::{Result, StoreError};

/// Job rows, column by column: the binds of one set-based statement.
#[derive(Default)]
pub(crate) struct RowColumns {
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
    /// For updates: the version the row must still have.
    previous_version: Vec<i64>,
}

impl RowColumns {
    pub(crate) fn len(&self) -> usize {
        self.job_id.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
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
        self.previous_version.push(previous_version);
    }

    /// Adds every row of a new tree.
    pub(crate) fn push_new_tree(&mut self, tree: &Job) -> Result<()> {
        let flags = tree.task_flags();
        for (index, (job, flag)) in tree.iter_tree().zip(flags).enumerate() {
            // The root is at position 0, and so is its first sub-job (positions count siblings).
            let position = i32::try_from(index.saturating_sub(1)).map_err(|e| corrupt("position", e))?;
            self.push(job, position, flag, job.version);
        }
        Ok(())
    }

    /// Adds the rows of `after` that differ from `before` (their own fields, or whether they may
    /// run): what a change of one tree writes.
    pub(crate) fn push_changes(&mut self, before: &Job, after: &Job) {
        let (old_flags, new_flags) = (before.task_flags(), after.task_flags());
        let pairs = before.iter_tree().zip(after.iter_tree()).zip(old_flags.into_iter().zip(new_flags));
        for (index, ((old, new), (old_flag, new_flag))) in pairs.enumerate() {
            if !old.same_row(new) || old_flag != new_flag {
                self.push(new, index.saturating_sub(1) as i32, new_flag, old.version);
            }
        }
    }

    /// Inserts every row in one statement; a job id that exists is a `Conflict`.
    pub(crate) async fn insert(self, conn: &mut PgConnection) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let first = self.job_id[0].clone();
        sqlx::query(
            "WITH inserted AS (INSERT INTO jobs (job_id, parent_job_id, position, project_id, enterprise_project_id, service, \
             job_type, status, message, resource_id, entities, error_code, error_msg, payload, result, simulate, \
             created_at, started_at, ended_at, updated_at, version, priority, run_at, available_at, max_attempts, \
             attempt, retry_backoff, timeout_seconds, execution, lease_worker_id, lease_token, lease_expires_at, \
             runnable, simulated, deadline_at, on_failure, phase, compensation, rescuable) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
             $15::text[], $16::text[], $17::int8[], $18::int8[], $19::int8[], $20::int8[], $21::int8[], \
             $22::int4[], $23::int8[], $24::int8[], $25::int8[], $26::int8[], $27::text[], $28::int8[], \
             $29::text[], $30::text[], $31::text[], $32::int8[], $33::bool[], $34::bool[], $35::int8[], \
             $36::text[], $37::text[], $38::text[], $39::bool[]) RETURNING *) \
             INSERT INTO task_queue SELECT job_id, COALESCE(parent_job_id, job_id), project_id, enterprise_project_id, \
             service, job_type, simulated, priority, available_at, lease_expires_at, \
             GREATEST(available_at, COALESCE(lease_expires_at, 0)), seq, runnable, rescuable \
             FROM inserted WHERE runnable OR rescuable",
        )
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
    pub(crate) async fn update(self, conn: &mut PgConnection) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let expected = self.len() as i64;
        let done: i64 = sqlx::query_scalar(
            "WITH updated AS (UPDATE jobs SET status = u.status, message = u.message, error_code = u.error_code, \
             error_msg = u.error_msg, result = u.result, started_at = u.started_at, ended_at = u.ended_at, \
             updated_at = u.updated_at, version = u.version, available_at = u.available_at, attempt = u.attempt, \
             lease_worker_id = u.lease_worker_id, lease_token = u.lease_token, \
             lease_expires_at = u.lease_expires_at, runnable = u.runnable, deadline_at = u.deadline_at, \
             phase = u.phase, compensation = u.compensation, rescuable = u.rescuable \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], \
             $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::text[], $13::text[], $14::int8[], \
             $15::bool[], $16::int8[], $17::text[], $18::text[], $19::bool[], $20::text[], $21::int8[]) \
             AS u(status, message, error_code, error_msg, result, started_at, ended_at, updated_at, version, \
             available_at, attempt, lease_worker_id, lease_token, lease_expires_at, runnable, deadline_at, phase, \
             compensation, rescuable, job_id, previous_version) \
             WHERE jobs.job_id = u.job_id AND jobs.version = u.previous_version RETURNING jobs.*), \
             queued AS (INSERT INTO task_queue SELECT job_id, COALESCE(parent_job_id, job_id), project_id, \
             enterprise_project_id, service, job_type, simulated, priority, available_at, lease_expires_at, \
             GREATEST(available_at, COALESCE(lease_expires_at, 0)), seq, runnable, rescuable \
             FROM updated WHERE runnable OR rescuable \
             ON CONFLICT (job_id) DO UPDATE SET available_at = EXCLUDED.available_at, \
             lease_expires_at = EXCLUDED.lease_expires_at, due_at = EXCLUDED.due_at, \
             runnable = EXCLUDED.runnable, rescuable = EXCLUDED.rescuable), \
             dequeued AS (DELETE FROM task_queue WHERE job_id = ANY(ARRAY( \
             SELECT job_id FROM updated WHERE NOT (runnable OR rescuable)))) \
             SELECT COUNT(*) FROM updated",
        )
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
        .fetch_one(&mut *conn)
        .await?;
        if done != expected {
            return Err(StoreError::Corrupt(format!(
                "{} of {expected} job rows changed under a write",
                expected - done
            )));
        }
        Ok(())
    }
}

/// The trees whose roots are `root_ids`, in one query, keyed by root id; a root that does not
/// exist is absent. The caller holds the roots' locks (or reads in one snapshot).
pub(crate) async fn load_trees(conn: &mut PgConnection, root_ids: &[String]) -> Result<HashMap<JobId, Job>> {
    let mut trees = HashMap::with_capacity(root_ids.len());
    if root_ids.is_empty() {
        return Ok(trees);
    }
    // Two index scans (roots by id, sub-jobs by parent), never a bitmap OR: claims turn bitmap
    // scans off for their own query.
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS}, position FROM jobs WHERE job_id = ANY($1) AND parent_job_id IS NULL \
         UNION ALL \
         SELECT {JOB_COLUMNS}, position FROM jobs WHERE parent_job_id = ANY($1) \
         ORDER BY parent_job_id NULLS FIRST, position"
    ))
    .bind(root_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut subs = Vec::new();
    for row in &rows {
        let job = job_from_row(row)?;
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
