//! The worker API (`/v1/worker/...`): claim tasks under leases, heartbeat, complete and fail
//! (one task a call, or many in one [`Client::report_batch`]). A `409` on a task call means the
//! task is no longer the caller's: see [`Error::task_gone`].
//!
//! [`Error::task_gone`]: crate::Error::task_gone

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{path, Call, Client};
use crate::error::{DecodeError, Error, Result};
use crate::native::{Entity, Job, JobStatus, Phase};

/// The longest long poll the server allows.
pub const MAX_WAIT_SECONDS: u32 = 60;
/// The most tasks one claim may return.
pub const MAX_TASKS_PER_CLAIM: u32 = 1000;
/// The most reports one [`Client::report_batch`] may carry.
pub const MAX_REPORTS_PER_BATCH: usize = 1000;

/// One unit of work under a lease: a job without sub-jobs, or one sub-job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub job_id: String,
    #[serde(default)]
    pub parent_job_id: Option<String>,
    pub project_id: String,
    pub service: String,
    pub job_type: String,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub entities: Vec<Entity>,
    #[serde(default)]
    pub payload: Option<Value>,
    /// This attempt, from 1.
    pub attempt: u32,
    #[serde(default)]
    pub max_attempts: u32,
    /// Proves the holder on heartbeat, complete and fail.
    pub lease_token: String,
    pub lease_expires_at: DateTime<Utc>,
    /// `rollback` for a compensation task (undo a sub-job that had succeeded); absent means `run`.
    #[serde(default)]
    pub phase: Phase,
}

/// A task's id and lease token: what heartbeat, complete and fail need. Implemented by [`Task`],
/// [`TaskLease`] and `(job_id, lease_token)` pairs.
pub trait LeaseRef {
    fn job_id(&self) -> &str;
    fn lease_token(&self) -> &str;
}

impl LeaseRef for Task {
    fn job_id(&self) -> &str {
        &self.job_id
    }

    fn lease_token(&self) -> &str {
        &self.lease_token
    }
}

impl<J: AsRef<str>, T: AsRef<str>> LeaseRef for (J, T) {
    fn job_id(&self) -> &str {
        self.0.as_ref()
    }

    fn lease_token(&self) -> &str {
        self.1.as_ref()
    }
}

/// A task's id and lease token, kept apart from the task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskLease {
    pub job_id: String,
    pub lease_token: String,
}

impl LeaseRef for TaskLease {
    fn job_id(&self) -> &str {
        &self.job_id
    }

    fn lease_token(&self) -> &str {
        &self.lease_token
    }
}

impl From<&Task> for TaskLease {
    fn from(task: &Task) -> Self {
        TaskLease { job_id: task.job_id.clone(), lease_token: task.lease_token.clone() }
    }
}

/// How an attempt ended: what [`Client::complete`] or [`Client::fail`] would send.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum TaskOutcome {
    /// The attempt succeeded, with the job's result and message.
    Complete {
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The attempt failed; see [`Client::fail`].
    Fail { error_code: String, error_msg: String, retryable: bool },
}

/// One attempt's end, for [`Client::report_batch`]: the task, its lease and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskReport {
    pub job_id: String,
    pub lease_token: String,
    #[serde(flatten)]
    pub outcome: TaskOutcome,
}

impl TaskReport {
    /// The attempt on `lease` succeeded.
    pub fn complete(lease: &impl LeaseRef, result: Option<Value>, message: Option<String>) -> Self {
        TaskReport::new(lease, TaskOutcome::Complete { result, message })
    }

    /// The attempt on `lease` failed; a `retryable` failure is tried again while attempts remain.
    pub fn fail(
        lease: &impl LeaseRef,
        error_code: impl Into<String>,
        error_msg: impl Into<String>,
        retryable: bool,
    ) -> Self {
        let outcome = TaskOutcome::Fail { error_code: error_code.into(), error_msg: error_msg.into(), retryable };
        TaskReport::new(lease, outcome)
    }

    fn new(lease: &impl LeaseRef, outcome: TaskOutcome) -> Self {
        TaskReport { job_id: lease.job_id().to_owned(), lease_token: lease.lease_token().to_owned(), outcome }
    }
}

impl LeaseRef for TaskReport {
    fn job_id(&self) -> &str {
        &self.job_id
    }

    fn lease_token(&self) -> &str {
        &self.lease_token
    }
}

/// `POST /v1/worker/claim`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClaimRequest {
    /// Who claims (shown on the job as `worker_id`); 1 to 128 characters.
    pub worker_id: String,
    /// Claim tasks of these services.
    pub services: Vec<String>,
    /// Only these job types (of any of the services); `None` takes every type. Note that the
    /// server reads an empty list as `None` (every type), not as "no type".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_types: Option<Vec<String>>,
    /// 1 to 3600 (the server's default is 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<u32>,
    /// Long poll: hold the claim up to this long (0 to 60) until work arrives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u32>,
    /// Up to this many tasks at once (1 to 1,000; the server's default is 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tasks: Option<u32>,
}

impl ClaimRequest {
    pub fn new<S: Into<String>>(worker_id: impl Into<String>, services: impl IntoIterator<Item = S>) -> Self {
        ClaimRequest {
            worker_id: worker_id.into(),
            services: services.into_iter().map(Into::into).collect(),
            ..ClaimRequest::default()
        }
    }

    pub fn job_types<S: Into<String>>(mut self, job_types: impl IntoIterator<Item = S>) -> Self {
        self.job_types = Some(job_types.into_iter().map(Into::into).collect());
        self
    }

    pub fn lease_seconds(mut self, lease_seconds: u32) -> Self {
        self.lease_seconds = Some(lease_seconds);
        self
    }

    pub fn wait_seconds(mut self, wait_seconds: u32) -> Self {
        self.wait_seconds = Some(wait_seconds);
        self
    }

    pub fn max_tasks(mut self, max_tasks: u32) -> Self {
        self.max_tasks = Some(max_tasks);
        self
    }
}

/// The answer to a heartbeat: the lease's new expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    pub job_id: String,
    pub status: JobStatus,
    pub lease_expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct ClaimAnswer {
    task: Task,
    #[serde(default)]
    tasks: Vec<Task>,
}

#[derive(Serialize)]
struct HeartbeatBody<'a> {
    lease_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extend_seconds: Option<u32>,
}

#[derive(Serialize)]
struct CompleteBody<'a> {
    lease_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct FailBody<'a> {
    lease_token: &'a str,
    error_code: &'a str,
    error_msg: &'a str,
    retryable: bool,
}

#[derive(Deserialize)]
struct JobEnvelope {
    job: Job,
}

#[derive(Serialize)]
struct ReportBatchBody<'a> {
    reports: &'a [TaskReport],
    /// `"status"` asks for each task's status word instead of the whole task.
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<&'static str>,
}

#[derive(Deserialize)]
struct ReportBatchAnswer {
    results: Vec<ReportSlot>,
}

/// One report's answer in a batch: what its single route would have answered.
#[derive(Deserialize)]
struct ReportSlot {
    job_id: String,
    status: u16,
    #[serde(default)]
    job: Option<Job>,
    #[serde(default)]
    job_status: Option<String>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_msg: Option<String>,
}

fn task_path(job_id: &str, verb: &str) -> Result<String> {
    path(&["v1", "worker", "tasks", job_id, verb])
}

impl Client {
    /// `POST /v1/worker/claim`: the tasks now leased to the caller, or none when nothing arrived
    /// within `wait_seconds` (`204`). The call's timeout is extended by `wait_seconds`.
    pub async fn claim(&self, request: &ClaimRequest) -> Result<Vec<Task>> {
        let wait = Duration::from_secs(u64::from(request.wait_seconds.unwrap_or(0)));
        let call = Call::post(path(&["v1", "worker", "claim"])?).json(request)?.extra_timeout(wait);
        let answer = self.send(call).await?;
        if answer.status == 204 {
            return Ok(Vec::new());
        }
        let ClaimAnswer { task, tasks } = answer.json()?;
        Ok(if tasks.is_empty() { vec![task] } else { tasks })
    }

    /// `POST /v1/worker/tasks/{job_id}/heartbeat`: keeps the lease (for `extend_seconds`, or the
    /// server's default 30 s) and optionally sets the job's message.
    pub async fn heartbeat(
        &self,
        lease: &impl LeaseRef,
        message: Option<&str>,
        extend_seconds: Option<u32>,
    ) -> Result<HeartbeatAnswer> {
        let body = HeartbeatBody { lease_token: lease.lease_token(), message, extend_seconds };
        let call = Call::post(task_path(lease.job_id(), "heartbeat")?).json(&body)?;
        self.send(call).await?.json()
    }

    /// `POST /v1/worker/tasks/{job_id}/complete`: the attempt succeeded. Completing twice changes
    /// nothing. Answers the task's job.
    pub async fn complete(&self, lease: &impl LeaseRef, result: Option<&Value>, message: Option<&str>) -> Result<Job> {
        let body = CompleteBody { lease_token: lease.lease_token(), result, message };
        let call = Call::post(task_path(lease.job_id(), "complete")?).json(&body)?;
        Ok(self.send(call).await?.json::<JobEnvelope>()?.job)
    }

    /// `POST /v1/worker/tasks/{job_id}/fail`: the attempt failed. A `retryable` failure is tried
    /// again (after the job's backoff) while attempts remain; otherwise the job fails with this
    /// code and message. Answers the task's job.
    pub async fn fail(&self, lease: &impl LeaseRef, error_code: &str, error_msg: &str, retryable: bool) -> Result<Job> {
        let body = FailBody { lease_token: lease.lease_token(), error_code, error_msg, retryable };
        let call = Call::post(task_path(lease.job_id(), "fail")?).json(&body)?;
        Ok(self.send(call).await?.json::<JobEnvelope>()?.job)
    }

    /// `POST /v1/worker/tasks/batch`: reports many attempts' ends in one call (1 to
    /// [`MAX_REPORTS_PER_BATCH`], each task at most once). The server applies each report on its
    /// own, exactly as [`Client::complete`] or [`Client::fail`] would, and answers one result per
    /// report, in order: the task's job, or the error the single call would have returned (an
    /// [`Error::Api`] carrying the batch's request id, so [`Error::task_gone`] and
    /// [`Error::is_retryable`] read the same). The outer `Err` is for the batch as a whole: a
    /// transport error, a refused batch (`400`), or `404` from a jobd older than this route
    /// (then send each report on its own).
    pub async fn report_batch(&self, reports: &[TaskReport]) -> Result<Vec<Result<Job>>> {
        self.send_report_batch(reports, None, |slot| slot.job).await
    }

    /// [`Client::report_batch`], answered with each task's status word (`SUCCESS`, `RUNNING`...)
    /// instead of the whole task (`"answer": "status"`): the same per-report errors in a far
    /// smaller answer, for workers that only need to know each report was taken.
    pub async fn report_batch_statuses(&self, reports: &[TaskReport]) -> Result<Vec<Result<String>>> {
        self.send_report_batch(reports, Some("status"), |slot| slot.job_status).await
    }

    /// One batch call; `take` reads a successful slot's answer (`None`: the slot lacks it).
    async fn send_report_batch<T>(
        &self,
        reports: &[TaskReport],
        answer: Option<&'static str>,
        take: impl Fn(ReportSlot) -> Option<T>,
    ) -> Result<Vec<Result<T>>> {
        let body = ReportBatchBody { reports, answer };
        let call = Call::post(path(&["v1", "worker", "tasks", "batch"])?).json(&body)?;
        let answer = self.send(call).await?;
        let ReportBatchAnswer { results } = answer.json()?;
        let decode_error = |detail: String| {
            Error::Decode(DecodeError { status: answer.status, request_id: answer.request_id.clone(), detail })
        };
        if results.len() != reports.len() {
            return Err(decode_error(format!("{} results for {} reports", results.len(), reports.len())));
        }
        reports
            .iter()
            .zip(results)
            .map(|(report, slot)| match slot {
                ReportSlot { job_id, .. } if job_id != report.job_id => {
                    Err(decode_error(format!("the result for {job_id} is in the place of {}", report.job_id)))
                }
                slot @ ReportSlot { status: 200..=299, .. } => match take(slot) {
                    Some(taken) => Ok(Ok(taken)),
                    None => Err(decode_error(format!("the result for {} lacks its answer", report.job_id))),
                },
                ReportSlot { status, error_code, error_msg, .. } => Ok(Err(Error::Api {
                    status,
                    error_code: error_code.unwrap_or_default(),
                    error_msg: error_msg.unwrap_or_default(),
                    request_id: answer.request_id.clone(),
                    retry_after: None,
                })),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_task_without_phase_is_a_run() {
        let task: Task = serde_json::from_value(json!({
            "job_id": "j", "parent_job_id": null, "project_id": "p", "service": "cfw", "job_type": "T",
            "resource_id": null, "entities": [], "payload": null, "attempt": 1, "max_attempts": 3,
            "lease_token": "t", "lease_expires_at": "2024-01-01T00:00:00.000Z"
        }))
        .unwrap();
        assert_eq!(task.phase, Phase::Run);
        let mut value = serde_json::to_value(&task).unwrap();
        value["phase"] = json!("rollback");
        let rollback: Task = serde_json::from_value(value).unwrap();
        assert_eq!(rollback.phase, Phase::Rollback);
    }

    #[test]
    fn reports_are_the_single_routes_bodies_with_job_id_and_outcome() {
        let lease = ("j-1", "t-1");
        let done = TaskReport::complete(&lease, Some(json!({"id": 1})), None);
        assert_eq!(
            serde_json::to_value(&done).unwrap(),
            json!({"job_id": "j-1", "lease_token": "t-1", "outcome": "complete", "result": {"id": 1}})
        );
        let failed = TaskReport::fail(&lease, "E", "m", false);
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"job_id": "j-1", "lease_token": "t-1", "outcome": "fail", "error_code": "E", "error_msg": "m",
                   "retryable": false})
        );
    }

    #[test]
    fn claim_requests_send_only_what_is_set() {
        let request = ClaimRequest::new("w", ["cfw"]).wait_seconds(20).max_tasks(3);
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"worker_id": "w", "services": ["cfw"], "wait_seconds": 20, "max_tasks": 3})
        );
    }
}
