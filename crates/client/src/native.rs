//! The native job API (`/v1/{project_id}/jobs...`): its wire types and the create, get, list and
//! cancel calls.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{path, Call, Client, ProjectClient};
use crate::error::Result;
use crate::worker::MAX_WAIT_SECONDS;

/// The header that makes a create idempotent.
const CLIENT_TOKEN_HEADER: &str = "x-client-token";

// The status and the unit enums are jobd's own domain types (pure, serde-ready); the structs below
// mirror the wire and tolerate fields a newer server adds.
pub use jobd_core::job::{Execution, OnFailure, Phase};
pub use jobd_core::status::{JobStatus, UnknownStatus};

/// A resource a job touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub resource_id: String,
    pub resource_type: String,
}

impl Entity {
    pub fn new(resource_id: impl Into<String>, resource_type: impl Into<String>) -> Self {
        Entity { resource_id: resource_id.into(), resource_type: resource_type.into() }
    }
}

/// The wait between attempts: `initial_seconds × multiplier^(attempt-1)`, at most `max_seconds`,
/// with jitter. The defaults are 1 s, ×2, 300 s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryBackoff {
    pub initial_seconds: f64,
    pub multiplier: f64,
    pub max_seconds: f64,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff { initial_seconds: 1.0, multiplier: 2.0, max_seconds: 300.0 }
    }
}

/// How jobd's built-in simulator plays a job out, instead of a worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulateSpec {
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub outcome: SimulateOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimulateOutcome {
    #[default]
    Success,
    Failure,
}

/// The compensation of a sub-job whose parent rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compensation {
    pub status: JobStatus,
    /// The compensation's current (or last) attempt, from 1; 0 before it starts.
    #[serde(default)]
    pub attempt: u32,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_msg: Option<String>,
}

/// A job as the native API shows it, with its sub-jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    #[serde(default)]
    pub parent_job_id: Option<String>,
    pub project_id: String,
    #[serde(default)]
    pub enterprise_project_id: String,
    pub service: String,
    pub job_type: String,
    pub status: JobStatus,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub entities: Vec<Entity>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_msg: Option<String>,
    #[serde(default)]
    pub payload: Option<Value>,
    #[serde(default)]
    pub result: Option<Value>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Raised by every change of the job (and, as the watch API lands, of its sub-jobs).
    #[serde(default)]
    pub version: i64,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub run_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub max_attempts: u32,
    /// The current (or last) attempt, from 1; 0 before the first start.
    #[serde(default)]
    pub attempt: u32,
    #[serde(default)]
    pub retry_backoff: RetryBackoff,
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
    #[serde(default)]
    pub execution: Execution,
    /// The worker holding (or that last held) the task.
    #[serde(default)]
    pub worker_id: Option<String>,
    #[serde(default)]
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// For a parent: what a sub-job failing for good leads to.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// For a parent: `run`, or `rollback` while it compensates its sub-jobs.
    #[serde(default)]
    pub phase: Phase,
    /// For a sub-job that had succeeded when its parent began to roll back: its compensation.
    #[serde(default)]
    pub compensation: Option<Compensation>,
    #[serde(default)]
    pub sub_jobs: Vec<Job>,
}

impl Job {
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

/// A job to create. Start from [`NewJob::new`] and chain the settings you need; every unset
/// field takes the server's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewJob {
    pub service: String,
    pub job_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enterprise_project_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<Entity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sub_jobs: Vec<NewSubJob>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulate: Option<SimulateSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<RetryBackoff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
}

impl NewJob {
    pub fn new(service: impl Into<String>, job_type: impl Into<String>) -> Self {
        NewJob { service: service.into(), job_type: job_type.into(), ..NewJob::default() }
    }

    pub fn resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.resource_id = Some(resource_id.into());
        self
    }

    pub fn enterprise_project_id(mut self, enterprise_project_id: impl Into<String>) -> Self {
        self.enterprise_project_id = Some(enterprise_project_id.into());
        self
    }

    pub fn entity(mut self, entity: Entity) -> Self {
        self.entities.push(entity);
        self
    }

    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = Some(payload);
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn sub_job(mut self, sub_job: NewSubJob) -> Self {
        self.sub_jobs.push(sub_job);
        self
    }

    pub fn simulate(mut self, simulate: SimulateSpec) -> Self {
        self.simulate = Some(simulate);
        self
    }

    /// Higher runs first (the default is 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Not before this time.
    pub fn run_at(mut self, run_at: DateTime<Utc>) -> Self {
        self.run_at = Some(run_at);
        self
    }

    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    pub fn retry_backoff(mut self, retry_backoff: RetryBackoff) -> Self {
        self.retry_backoff = Some(retry_backoff);
        self
    }

    /// Fail for good this long after the first start.
    pub fn timeout_seconds(mut self, timeout_seconds: u32) -> Self {
        self.timeout_seconds = Some(timeout_seconds);
        self
    }

    pub fn execution(mut self, execution: Execution) -> Self {
        self.execution = Some(execution);
        self
    }

    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = Some(on_failure);
        self
    }
}

/// A sub-job of a [`NewJob`]; it inherits the parent's service, project and settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewSubJob {
    pub job_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<Entity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulate: Option<SimulateSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

impl NewSubJob {
    pub fn new(job_type: impl Into<String>) -> Self {
        NewSubJob { job_type: job_type.into(), ..NewSubJob::default() }
    }

    pub fn resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.resource_id = Some(resource_id.into());
        self
    }

    pub fn entity(mut self, entity: Entity) -> Self {
        self.entities.push(entity);
        self
    }

    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = Some(payload);
        self
    }

    pub fn simulate(mut self, simulate: SimulateSpec) -> Self {
        self.simulate = Some(simulate);
        self
    }

    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    pub fn timeout_seconds(mut self, timeout_seconds: u32) -> Self {
        self.timeout_seconds = Some(timeout_seconds);
        self
    }
}

/// The answer to a create.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub job: Job,
    /// True when an `X-Client-Token` replay returned the job created earlier (`200`, not `201`).
    pub replayed: bool,
}

/// The most jobs one [`Client::create_jobs`] may carry.
pub const MAX_JOBS_PER_BATCH: usize = 1000;

/// One item of [`Client::create_jobs`]: a job, with the client token that makes its creation
/// idempotent (as `X-Client-Token` does for [`Client::create_job`]; either replays the other).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchJob {
    #[serde(flatten)]
    pub job: NewJob,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

impl From<NewJob> for BatchJob {
    fn from(job: NewJob) -> Self {
        BatchJob { job, client_token: None }
    }
}

/// The answer to a batch create.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreatedBatch {
    /// The jobs, in request order.
    pub jobs: Vec<Job>,
    /// The positions of items whose client token named a job created before.
    pub replayed: Vec<usize>,
}

/// Filters and paging for [`Client::list_jobs`]. Several values of one filter match any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListJobsQuery {
    pub service: Option<String>,
    pub job_types: Vec<String>,
    pub statuses: Vec<JobStatus>,
    pub resource_ids: Vec<String>,
    pub enterprise_project_ids: Vec<String>,
    /// 1 to 1000 (the server's default is 100).
    pub limit: Option<u32>,
    /// The `next_marker` of the previous page.
    pub marker: Option<String>,
}

impl ListJobsQuery {
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    pub fn job_type(mut self, job_type: impl Into<String>) -> Self {
        self.job_types.push(job_type.into());
        self
    }

    pub fn status(mut self, status: JobStatus) -> Self {
        self.statuses.push(status);
        self
    }

    pub fn resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.resource_ids.push(resource_id.into());
        self
    }

    pub fn enterprise_project_id(mut self, enterprise_project_id: impl Into<String>) -> Self {
        self.enterprise_project_ids.push(enterprise_project_id.into());
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn marker(mut self, marker: impl Into<String>) -> Self {
        self.marker = Some(marker.into());
        self
    }

    fn apply(&self, mut call: Call) -> Call {
        if let Some(service) = &self.service {
            call = call.query("service", service.as_str());
        }
        for job_type in &self.job_types {
            call = call.query("job_type", job_type.as_str());
        }
        for status in &self.statuses {
            call = call.query("status", status.as_str());
        }
        for resource_id in &self.resource_ids {
            call = call.query("resource_id", resource_id.as_str());
        }
        for enterprise_project_id in &self.enterprise_project_ids {
            call = call.query("enterprise_project_id", enterprise_project_id.as_str());
        }
        if let Some(limit) = self.limit {
            call = call.query("limit", limit.to_string());
        }
        if let Some(marker) = &self.marker {
            call = call.query("marker", marker.as_str());
        }
        call
    }
}

/// One page of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListJobsPage {
    pub jobs: Vec<Job>,
    /// Pass as [`ListJobsQuery::marker`] for the next page; `None` on the last page.
    #[serde(default)]
    pub next_marker: Option<String>,
}

#[derive(Deserialize)]
struct JobEnvelope {
    job: Job,
}

impl Client {
    /// `POST /v1/{project_id}/jobs`. With a `client_token`, repeating the same request returns the
    /// first job (`replayed`), and the same token with a different request is a `409`.
    pub async fn create_job(&self, project_id: &str, job: &NewJob, client_token: Option<&str>) -> Result<Created> {
        let mut call = Call::post(path(&["v1", project_id, "jobs"])?).json(job)?;
        if let Some(token) = client_token {
            call = call.header(CLIENT_TOKEN_HEADER, token)?;
        }
        let answer = self.send(call).await?;
        let envelope: JobEnvelope = answer.json()?;
        Ok(Created { job: envelope.job, replayed: answer.status == 200 })
    }

    /// `POST /v1/{project_id}/jobs` with a body of your own (for example read from a file): the
    /// server validates it as it would a [`NewJob`].
    pub async fn create_job_from_json(
        &self,
        project_id: &str,
        body: &Value,
        client_token: Option<&str>,
    ) -> Result<Created> {
        let mut call = Call::post(path(&["v1", project_id, "jobs"])?).json(body)?;
        if let Some(token) = client_token {
            call = call.header(CLIENT_TOKEN_HEADER, token)?;
        }
        let answer = self.send(call).await?;
        let envelope: JobEnvelope = answer.json()?;
        Ok(Created { job: envelope.job, replayed: answer.status == 200 })
    }

    /// `POST /v1/{project_id}/jobs/batch`: 1 to [`MAX_JOBS_PER_BATCH`] jobs in one call and one
    /// transaction, all created or none (a bad item is a `400` naming its index, `jobs[3]: ...`).
    pub async fn create_jobs(&self, project_id: &str, jobs: &[BatchJob]) -> Result<CreatedBatch> {
        let call = Call::post(path(&["v1", project_id, "jobs", "batch"])?).json(&serde_json::json!({"jobs": jobs}))?;
        self.send(call).await?.json::<CreatedBatch>()
    }

    /// [`Client::create_jobs`] with bodies of your own (for example read from a file, one job per
    /// line): a JSON array of job bodies, each with an optional `"client_token"`.
    pub async fn create_jobs_from_json(&self, project_id: &str, jobs: &Value) -> Result<CreatedBatch> {
        let call = Call::post(path(&["v1", project_id, "jobs", "batch"])?).json(&serde_json::json!({"jobs": jobs}))?;
        self.send(call).await?.json::<CreatedBatch>()
    }

    /// `GET /v1/{project_id}/jobs/{job_id}`.
    pub async fn get_job(&self, project_id: &str, job_id: &str) -> Result<Job> {
        let answer = self.send(Call::get(path(&["v1", project_id, "jobs", job_id])?)).await?;
        Ok(answer.json::<JobEnvelope>()?.job)
    }

    /// The long poll `GET /v1/{project_id}/jobs/{job_id}?wait_seconds=N&version=V`: the job as soon
    /// as its `version` exceeds `version` (at once if it already does or the job is terminal),
    /// else the unchanged job after `wait` (rounded up to whole seconds, at most 60).
    ///
    /// ```no_run
    /// # async fn example(project: jobd_client::ProjectClient) -> Result<(), jobd_client::Error> {
    /// use std::time::Duration;
    /// let mut job = project.get_job("JOB_ID").await?;
    /// while !job.is_terminal() {
    ///     job = project.get_job_after(&job.job_id, job.version, Duration::from_secs(30)).await?;
    ///     println!("{} {}", job.status, job.message.as_deref().unwrap_or(""));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_job_after(&self, project_id: &str, job_id: &str, version: i64, wait: Duration) -> Result<Job> {
        let seconds = wait.as_millis().div_ceil(1000).min(u128::from(MAX_WAIT_SECONDS)) as u64;
        let call = Call::get(path(&["v1", project_id, "jobs", job_id])?)
            .query("wait_seconds", seconds.to_string())
            .query("version", version.to_string())
            .extra_timeout(Duration::from_secs(seconds));
        Ok(self.send(call).await?.json::<JobEnvelope>()?.job)
    }

    /// `GET /v1/{project_id}/jobs?...`: one page, newest first.
    pub async fn list_jobs(&self, project_id: &str, query: &ListJobsQuery) -> Result<ListJobsPage> {
        let call = query.apply(Call::get(path(&["v1", project_id, "jobs"])?));
        self.send(call).await?.json()
    }

    /// `POST /v1/{project_id}/jobs/{job_id}/cancel`: the job as it is after the cancel. A finished
    /// job answers `409 JOBD.JOB_CONFLICT`.
    pub async fn cancel_job(&self, project_id: &str, job_id: &str) -> Result<Job> {
        let answer = self.send(Call::post(path(&["v1", project_id, "jobs", job_id, "cancel"])?)).await?;
        Ok(answer.json::<JobEnvelope>()?.job)
    }
}

impl ProjectClient {
    /// See [`Client::create_job`].
    pub async fn create_job(&self, job: &NewJob, client_token: Option<&str>) -> Result<Created> {
        self.client.create_job(&self.project_id, job, client_token).await
    }

    /// See [`Client::create_job_from_json`].
    pub async fn create_job_from_json(&self, body: &Value, client_token: Option<&str>) -> Result<Created> {
        self.client.create_job_from_json(&self.project_id, body, client_token).await
    }

    /// See [`Client::create_jobs`].
    pub async fn create_jobs(&self, jobs: &[BatchJob]) -> Result<CreatedBatch> {
        self.client.create_jobs(&self.project_id, jobs).await
    }

    /// See [`Client::get_job`].
    pub async fn get_job(&self, job_id: &str) -> Result<Job> {
        self.client.get_job(&self.project_id, job_id).await
    }

    /// See [`Client::get_job_after`].
    pub async fn get_job_after(&self, job_id: &str, version: i64, wait: Duration) -> Result<Job> {
        self.client.get_job_after(&self.project_id, job_id, version, wait).await
    }

    /// See [`Client::list_jobs`].
    pub async fn list_jobs(&self, query: &ListJobsQuery) -> Result<ListJobsPage> {
        self.client.list_jobs(&self.project_id, query).await
    }

    /// See [`Client::cancel_job`].
    pub async fn cancel_job(&self, job_id: &str) -> Result<Job> {
        self.client.cancel_job(&self.project_id, job_id).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_new_job_sends_only_what_is_set() {
        let job = NewJob::new("cfw", "CreateFirewall")
            .payload(json!({"size": 1}))
            .sub_job(NewSubJob::new("Step").max_attempts(2))
            .retry_backoff(RetryBackoff { initial_seconds: 0.0, ..RetryBackoff::default() })
            .execution(Execution::Parallel);
        assert_eq!(
            serde_json::to_value(&job).unwrap(),
            json!({"service": "cfw", "job_type": "CreateFirewall", "payload": {"size": 1},
                   "sub_jobs": [{"job_type": "Step", "max_attempts": 2}],
                   "retry_backoff": {"initial_seconds": 0.0, "multiplier": 2.0, "max_seconds": 300.0},
                   "execution": "parallel"})
        );
    }

    #[test]
    fn statuses_round_trip() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>().unwrap(), status);
            assert_eq!(serde_json::to_value(status).unwrap(), json!(status.as_str()));
        }
        assert!("Success".parse::<JobStatus>().is_err());
    }

    #[test]
    fn list_queries_repeat_filters() {
        let query = ListJobsQuery::default()
            .service("cfw")
            .status(JobStatus::Running)
            .status(JobStatus::Pending)
            .limit(5)
            .marker("m");
        let call = query.apply(Call::get("/v1/p/jobs".to_owned()));
        let pairs: Vec<(&str, &str)> = call.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [("service", "cfw"), ("status", "RUNNING"), ("status", "PENDING"), ("limit", "5"), ("marker", "m")]
        );
    }
}
