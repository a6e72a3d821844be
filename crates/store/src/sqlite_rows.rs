//! The SQLite row mapping, written once: which columns a job row is read from, how a row becomes a
//! `Job` or a `JobRef`, and how a tree's rows become one tree; the writer's transactions and the
//! readers (both rusqlite) use it.

use std::str::FromStr;
use std::sync::LazyLock;

use jobd_core::{Execution, Job, JobId, JobStatus, JobType, Lease, ProjectId, ServiceName};

use crate::codec::{corrupt, from_json, from_millis, opt_from_millis, JOB_COLUMNS};
use crate::{JobRef, Result, StoreError};

/// The whole tree holding `?1` (the job itself or one of its sub-jobs) in project `?2`, in one
/// query: the root first (a NULL parent sorts first), then its sub-jobs in order.
pub(crate) static LOAD_TREE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH target(root) AS (SELECT COALESCE(parent_job_id, job_id) FROM jobs WHERE job_id = ?1 AND project_id = ?2) \
         SELECT {JOB_COLUMNS}, position FROM jobs WHERE job_id = (SELECT root FROM target) \
         UNION ALL \
         SELECT {JOB_COLUMNS}, position FROM jobs WHERE parent_job_id = (SELECT root FROM target) \
         ORDER BY parent_job_id, position"
    )
});

/// One job row by id (the writer reads trees probe by probe: the row, its root, the sub-jobs).
pub(crate) static READ_ROW_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?"));

/// The sub-jobs of a root, in order.
pub(crate) static READ_SUB_JOBS_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {JOB_COLUMNS} FROM jobs WHERE parent_job_id = ? ORDER BY position"));

/// A result row, read by column position.
pub(crate) trait SqliteColumns {
    fn text(&self, index: usize) -> Result<String>;
    fn opt_text(&self, index: usize) -> Result<Option<String>>;
    fn int(&self, index: usize) -> Result<i64>;
    fn opt_int(&self, index: usize) -> Result<Option<i64>>;
}

impl SqliteColumns for rusqlite::Row<'_> {
    fn text(&self, index: usize) -> Result<String> {
        Ok(self.get(index)?)
    }
    fn opt_text(&self, index: usize) -> Result<Option<String>> {
        Ok(self.get(index)?)
    }
    fn int(&self, index: usize) -> Result<i64> {
        Ok(self.get(index)?)
    }
    fn opt_int(&self, index: usize) -> Result<Option<i64>> {
        Ok(self.get(index)?)
    }
}

/// Reads the columns of a row one after another, in the order of the query's column list.
struct Columns<'r, R> {
    row: &'r R,
    next: usize,
}

impl<R: SqliteColumns> Columns<'_, R> {
    fn advance(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }
    fn text(&mut self) -> Result<String> {
        let index = self.advance();
        self.row.text(index)
    }
    fn opt_text(&mut self) -> Result<Option<String>> {
        let index = self.advance();
        self.row.opt_text(index)
    }
    fn int(&mut self) -> Result<i64> {
        let index = self.advance();
        self.row.int(index)
    }
    fn opt_int(&mut self) -> Result<Option<i64>> {
        let index = self.advance();
        self.row.opt_int(index)
    }
    fn count(&mut self, column: &str) -> Result<u32> {
        let value = self.int()?;
        u32::try_from(value).map_err(|e| corrupt(column, e))
    }
    fn opt_count(&mut self, column: &str) -> Result<Option<u32>> {
        self.opt_int()?.map(|value| u32::try_from(value).map_err(|e| corrupt(column, e))).transpose()
    }
}

/// A job row (the columns of `JOB_COLUMNS`, in order) without its sub-jobs.
pub(crate) fn job_from_row(row: &impl SqliteColumns) -> Result<Job> {
    // Column 0 is `seq`, which a `Job` does not carry.
    let mut c = Columns { row, next: 1 };
    let job_id = JobId::parse(&c.text()?).map_err(|e| corrupt("job_id", e))?;
    let parent_job_id = c.opt_text()?.map(|p| JobId::parse(&p)).transpose().map_err(|e| corrupt("parent_job_id", e))?;
    let project_id = ProjectId::parse(&c.text()?).map_err(|e| corrupt("project_id", e))?;
    let enterprise_project_id = c.text()?;
    let service = ServiceName::parse(&c.text()?).map_err(|e| corrupt("service", e))?;
    let job_type = JobType::parse(&c.text()?).map_err(|e| corrupt("job_type", e))?;
    let status = JobStatus::from_str(&c.text()?).map_err(|e| corrupt("status", e))?;
    let message = c.opt_text()?;
    let resource_id = c.opt_text()?;
    let entities = from_json("entities", c.opt_text()?)?.unwrap_or_default();
    let error_code = c.opt_text()?;
    let error_msg = c.opt_text()?;
    let payload = from_json("payload", c.opt_text()?)?;
    let result = from_json("result", c.opt_text()?)?;
    let simulate = from_json("simulate", c.opt_text()?)?;
    let created_at = from_millis(c.int()?)?;
    let started_at = opt_from_millis(c.opt_int()?)?;
    let ended_at = opt_from_millis(c.opt_int()?)?;
    let updated_at = from_millis(c.int()?)?;
    let version = c.int()?;
    let priority = i32::try_from(c.int()?).map_err(|e| corrupt("priority", e))?;
    let run_at = opt_from_millis(c.opt_int()?)?;
    let available_at = from_millis(c.int()?)?;
    let max_attempts = c.count("max_attempts")?;
    let attempt = c.count("attempt")?;
    let retry_backoff = from_json("retry_backoff", c.opt_text()?)?.unwrap_or_default();
    let timeout_seconds = c.opt_count("timeout_seconds")?;
    let execution = Execution::parse(&c.text()?).ok_or_else(|| corrupt("execution", "unknown value"))?;
    let lease = match (c.opt_text()?, c.opt_text()?, c.opt_int()?) {
        (Some(worker_id), Some(token), Some(expires_at)) => {
            Some(Lease { worker_id, token, expires_at: from_millis(expires_at)? })
        }
        _ => None,
    };
    let on_failure = unit_enum("on_failure", c.text()?)?;
    let phase = unit_enum("phase", c.text()?)?;
    let compensation = from_json("compensation", c.opt_text()?)?;
    Ok(Job {
        job_id,
        parent_job_id,
        project_id,
        enterprise_project_id,
        service,
        job_type,
        status,
        message,
        resource_id,
        entities,
        error_code,
        error_msg,
        payload,
        result,
        simulate,
        created_at,
        started_at,
        ended_at,
        updated_at,
        version,
        priority,
        run_at,
        available_at,
        max_attempts,
        attempt,
        retry_backoff,
        timeout_seconds,
        execution,
        lease,
        on_failure,
        phase,
        compensation,
        sub_jobs: Vec::new(),
    })
}

/// A unit enum stored by its serde name.
fn unit_enum<T: serde::de::DeserializeOwned>(column: &str, text: String) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text)).map_err(|e| corrupt(column, e))
}

/// A `project_id, job_id` row.
pub(crate) fn job_ref_from_row(row: &impl SqliteColumns) -> Result<JobRef> {
    Ok(JobRef {
        project_id: ProjectId::parse(&row.text(0)?).map_err(|e| corrupt("project_id", e))?,
        job_id: JobId::parse(&row.text(1)?).map_err(|e| corrupt("job_id", e))?,
    })
}

/// The rows of `LOAD_TREE_SQL` for `job_id` as one tree; `None` when there were none.
pub(crate) fn tree_from_rows(rows: Vec<Job>, job_id: &JobId) -> Result<Option<Job>> {
    let mut jobs = rows.into_iter();
    let Some(mut root) = jobs.next() else { return Ok(None) };
    root.sub_jobs = jobs.collect();
    if root.parent_job_id.is_some() || root.sub_jobs.iter().any(|sub| sub.parent_job_id.as_ref() != Some(&root.job_id))
    {
        return Err(StoreError::Corrupt(format!("the tree of job {job_id} is malformed")));
    }
    Ok(Some(root))
}
