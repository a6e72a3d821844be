//! The worker API (`/v1/worker/...`): external workers claim tasks under leases, heartbeat,
//! and report each attempt's end. A task is a job without sub-jobs, or one sub-job.
//!
//! - `POST /v1/worker/claim` → `200 {"task", "tasks"}` or `204` when nothing arrived in `wait_seconds`.
//! - `POST /v1/worker/tasks/{job_id}/heartbeat` → `200 {"lease_expires_at", ...}`.
//! - `POST /v1/worker/tasks/{job_id}/complete` and `.../fail` → `200 {"job": task}`.
//! - `POST /v1/worker/tasks/batch` → `200 {"results": [...]}`: many attempts' ends and heartbeats
//!   in one call. The body is `{"reports": [...]}`, 1 to 1,000 reports, each task at most once
//!   (otherwise `400`); a report is the body of `.../complete`, `.../fail` or `.../heartbeat` plus
//!   `"job_id"` and `"outcome": "complete"`, `"fail"` or `"heartbeat"`. The reports are applied in
//!   one store transaction, each exactly as its single route would apply it (the same checks, the
//!   same project scoping per task, the same `409` reasons); its slot in `results` (in request
//!   order) is `{"job_id", "status": 200, "job": task}` or
//!   `{"job_id", "status": 4xx|5xx, "error_code", "error_msg"}`, so one bad report never fails the
//!   others.
//!
//! A call the task no longer allows answers `409` with the reason as its code:
//! `JOBD.LEASE_LOST`, `JOBD.JOB_CANCELLED`, `JOBD.JOB_TIMED_OUT`, `JOBD.JOB_FINISHED`, `JOBD.NOT_A_TASK`.

use std::collections::HashSet;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::on;
use axum::{Extension, Json};
use jobd_auth::identity::{Action, ProjectScope};
use jobd_core::error_code::TaskGone;
use jobd_core::lease::{DEFAULT_LEASE_SECONDS, MAX_LEASE_SECONDS, MIN_LEASE_SECONDS};
use jobd_core::new_job::{MAX_ERROR_CODE_LEN, MAX_MESSAGE_LEN};
use jobd_core::state_machine::JOB_TIMEOUT;
use jobd_core::{Entity, Job, JobEvent, JobId, JobStatus, Phase, ProjectId, ServiceName, TransitionError};
use jobd_service::{ClaimRequest, ClaimedTask, ServiceError, TaskEvent, TaskScope};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::caller::Caller;
use crate::dialect::Dialect;
use crate::endpoint::{Access, Answer, Api, Endpoint};
use crate::error::{ApiError, ErrorKind};
use crate::native::{envelope, JobEnvelope, NativeJob};
use crate::query;
use crate::time_format;
use crate::AppState;

const DIALECT: Dialect = Dialect::Native;
pub(crate) const MAX_WAIT_SECONDS: u32 = 60;
pub(crate) const MAX_TASKS_PER_CLAIM: u32 = jobd_service::MAX_BATCH as u32;
pub(crate) const MAX_WORKER_ID_LEN: usize = 128;
/// The most reports one `POST /v1/worker/tasks/batch` may carry.
pub const MAX_REPORTS_PER_BATCH: usize = jobd_service::MAX_BATCH;

const API: Api = Api::new(DIALECT, "worker");
const WORK: Access = Access::Needs(Action::Work);

pub(crate) const ENDPOINTS: &[Endpoint] = &[
    API.post("/v1/worker/claim", WORK, |m| on(m, claim))
        .summary("Claim tasks under a lease, waiting up to wait_seconds for one")
        .request("Claim")
        .answers(&[
            Answer::json(200, "ClaimAnswer"),
            Answer::NO_CONTENT.described("Nothing to claim within wait_seconds"),
        ]),
    API.post("/v1/worker/tasks/{job_id}/heartbeat", WORK, |m| on(m, heartbeat))
        .summary("Extend a task's lease and report progress")
        .request("TaskHeartbeat")
        .answers(&[Answer::json(200, "HeartbeatAnswer")])
        .not_found()
        .conflict(),
    API.post("/v1/worker/tasks/{job_id}/complete", WORK, |m| on(m, complete))
        .summary("Report a task's attempt succeeded")
        .request("TaskComplete")
        .answers(&[Answer::json(200, "JobEnvelope")])
        .not_found()
        .conflict(),
    API.post("/v1/worker/tasks/{job_id}/fail", WORK, |m| on(m, fail))
        .summary("Report a task's attempt failed (retried if it may be)")
        .request("TaskFail")
        .answers(&[Answer::json(200, "JobEnvelope")])
        .not_found()
        .conflict(),
    // Three segments after `/v1`, the per-task routes four: the two never match the same path.
    API.post("/v1/worker/tasks/batch", WORK, |m| on(m, report_batch))
        .summary("Report many attempts' ends and heartbeats at once, each answered in its slot")
        .request("TaskReportBatch")
        .answers(&[Answer::json(200, "TaskReportResults")])
        .conflict(),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    worker_id: String,
    services: Vec<String>,
    #[serde(default)]
    job_types: Option<Vec<String>>,
    #[serde(default)]
    lease_seconds: Option<u32>,
    #[serde(default)]
    wait_seconds: Option<u32>,
    #[serde(default)]
    max_tasks: Option<u32>,
}

/// The body of `POST /v1/worker/tasks/{job_id}/heartbeat`, and of a batch's `heartbeat` report.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TaskHeartbeat)]
pub(crate) struct HeartbeatBody {
    lease_token: String,
    /// A progress line (up to 1024 characters).
    #[serde(default)]
    message: Option<String>,
    /// The lease runs this long from now (default 30).
    #[serde(default)]
    extend_seconds: Option<u32>,
}

/// The body of `POST /v1/worker/tasks/{job_id}/complete`, and of a batch's `complete` report.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TaskComplete)]
pub(crate) struct CompleteBody {
    lease_token: String,
    /// The job's result.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    result: Option<Value>,
    /// The job's message (up to 1024 characters).
    #[serde(default)]
    message: Option<String>,
}

/// The body of `POST /v1/worker/tasks/{job_id}/fail`, and of a batch's `fail` report.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TaskFail)]
pub(crate) struct FailBody {
    lease_token: String,
    /// 1 to 64 characters.
    error_code: String,
    /// Up to 1024 characters.
    error_msg: String,
    /// Try again while attempts remain (default `true`).
    #[serde(default = "default_retryable")]
    retryable: bool,
}

/// The body of `POST /v1/worker/tasks/batch`. Each report is an object read on its own (see
/// [`report_batch`]), so a malformed report answers `400` in its slot only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBatchBody {
    reports: Vec<Map<String, Value>>,
    #[serde(default)]
    answer: ReportAnswer,
}

/// What a batch report's `200` results carry: the task as its single route answers it (`job`,
/// the default), or only the task's status word (`status`), for workers that need no more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReportAnswer {
    #[default]
    Job,
    Status,
}

impl ReportAnswer {
    pub(crate) const ALL: [ReportAnswer; 2] = [ReportAnswer::Job, ReportAnswer::Status];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReportAnswer::Job => "job",
            ReportAnswer::Status => "status",
        }
    }
}

/// How an attempt ended, as a worker reports it: the single route's last segment, a batch report's
/// `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportOutcome {
    Complete,
    Fail,
    /// Not an end: the attempt goes on (a batch may carry heartbeats too).
    Heartbeat,
}

impl ReportOutcome {
    pub(crate) const ALL: [ReportOutcome; 3] = [ReportOutcome::Complete, ReportOutcome::Fail, ReportOutcome::Heartbeat];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReportOutcome::Complete => "complete",
            ReportOutcome::Fail => "fail",
            ReportOutcome::Heartbeat => "heartbeat",
        }
    }

    /// A batch report's `outcome`.
    fn of_report(value: Option<&Value>) -> Result<Self, ApiError> {
        let name = value.and_then(Value::as_str);
        Self::ALL
            .into_iter()
            .find(|outcome| Some(outcome.as_str()) == name)
            .ok_or_else(|| ApiError::invalid(DIALECT, "outcome must be \"complete\", \"fail\" or \"heartbeat\""))
    }
}

fn default_retryable() -> bool {
    true
}

/// A task as a worker receives it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Task)]
pub(crate) struct TaskView {
    job_id: String,
    parent_job_id: Option<String>,
    project_id: String,
    service: String,
    job_type: String,
    resource_id: Option<String>,
    #[schema(value_type = Vec<Object>)]
    entities: Vec<Entity>,
    #[schema(value_type = Option<Value>)]
    payload: Option<Value>,
    attempt: u32,
    max_attempts: u32,
    lease_token: String,
    lease_expires_at: String,
    /// `run`, or `rollback` for a compensation task (the sub-job's own id, its parent rolling back).
    #[schema(value_type = String)]
    phase: Phase,
}

impl From<&ClaimedTask> for TaskView {
    fn from(claimed: &ClaimedTask) -> Self {
        let task = claimed.task();
        let lease = task.lease.as_ref().expect("a claimed task holds a lease");
        TaskView {
            job_id: task.job_id.to_string(),
            parent_job_id: task.parent_job_id.as_ref().map(|id| id.to_string()),
            project_id: task.project_id.to_string(),
            service: task.service.to_string(),
            job_type: task.job_type.to_string(),
            resource_id: task.resource_id.clone(),
            entities: task.entities.clone(),
            payload: task.payload.clone(),
            attempt: task.attempt,
            max_attempts: task.max_attempts,
            lease_token: lease.token.clone(),
            lease_expires_at: time_format::native(&lease.expires_at),
            phase: claimed.tree.phase,
        }
    }
}

/// The answer to `POST /v1/worker/claim`: the first task, and all of them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ClaimAnswer {
    task: TaskView,
    tasks: Vec<TaskView>,
}

/// The answer to `POST /v1/worker/tasks/batch`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TaskReportResults {
    /// One per report, in request order.
    results: Vec<TaskReportResult>,
}

/// How one report of a batch went: what its single route would have answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TaskReportResult {
    job_id: String,
    /// The single route's HTTP status: `200`, or the error's (`400`, `404`, `409`...).
    status: u16,
    /// On `200`: the task, as the single route's `{"job"}` (unless the batch asked for
    /// `"answer": "status"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<NativeJob>,
    /// On `200` with `"answer": "status"`: the task's status word.
    #[serde(skip_serializing_if = "Option::is_none")]
    job_status: Option<&'static str>,
    /// Otherwise: the error, as the single route's error body.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_msg: Option<String>,
}

impl TaskReportResult {
    fn new(job_id: String, answer: Result<Job, ApiError>, mode: ReportAnswer) -> Self {
        match answer {
            Ok(task) => TaskReportResult {
                job_id,
                status: StatusCode::OK.as_u16(),
                job: (mode == ReportAnswer::Job).then(|| NativeJob::from(&task)),
                job_status: (mode == ReportAnswer::Status).then(|| task.status.as_str()),
                error_code: None,
                error_msg: None,
            },
            Err(error) => {
                if let ErrorKind::Internal(detail) = &error.kind {
                    tracing::error!(%detail, %job_id, "internal error in a batch report");
                }
                let (status, code, message) = error.status_code_message();
                TaskReportResult {
                    job_id,
                    status: status.as_u16(),
                    job: None,
                    job_status: None,
                    error_code: Some(code),
                    error_msg: Some(message),
                }
            }
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HeartbeatAnswer {
    job_id: String,
    status: &'static str,
    lease_expires_at: String,
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    parse_value(parse_json(body)?)
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(DIALECT, format!("invalid request body: {e}")))
}

/// A body already read as JSON: an object of `T`'s fields.
fn parse_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid(DIALECT, "the request body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid(DIALECT, format!("invalid request body: {e}")))
}

fn bounded(
    field: &str,
    value: Option<u32>,
    range: std::ops::RangeInclusive<u32>,
    default: u32,
) -> Result<u32, ApiError> {
    let value = value.unwrap_or(default);
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid(DIALECT, format!("{field} must be from {} to {}", range.start(), range.end())))
    }
}

fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if (min..=max).contains(&len) && !value.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(ApiError::invalid(DIALECT, format!("{field} must be {min} to {max} characters without control characters")))
    }
}

async fn claim(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ClaimBody = parse_body(&body)?;
    check_text("worker_id", &body.worker_id, 1, MAX_WORKER_ID_LEN)?;
    if body.services.is_empty() {
        return Err(ApiError::invalid(DIALECT, "services must name at least one service"));
    }
    let services = body
        .services
        .iter()
        .map(|s| ServiceName::parse(s).map_err(|e| ApiError::invalid(DIALECT, e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let scope = task_scope(&caller);
    let request = ClaimRequest {
        worker_id: body.worker_id,
        project_ids: scope.project_ids,
        enterprise_project_ids: scope.enterprise_project_ids,
        services,
        job_types: match body.job_types {
            Some(types) if types.is_empty() => {
                return Err(ApiError::invalid(DIALECT, "job_types, when given, must name at least one job type"))
            }
            types => types.unwrap_or_default(),
        },
        simulated: false,
        lease_seconds: bounded(
            "lease_seconds",
            body.lease_seconds,
            MIN_LEASE_SECONDS..=MAX_LEASE_SECONDS,
            DEFAULT_LEASE_SECONDS,
        )?,
        max_tasks: bounded("max_tasks", body.max_tasks, 1..=MAX_TASKS_PER_CLAIM, 1)?,
    };
    let wait = bounded("wait_seconds", body.wait_seconds, 0..=MAX_WAIT_SECONDS, 0)?;
    let claimed = state
        .service
        .claim(&request, Duration::from_secs(u64::from(wait)))
        .await
        .map_err(|e| ApiError::from_service(DIALECT, e))?;
    let mut tasks: Vec<TaskView> = claimed.iter().map(TaskView::from).collect();
    if tasks.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let first = tasks.remove(0);
    let all = std::iter::once(TaskView::from(&claimed[0])).chain(tasks).collect();
    Ok(Json(ClaimAnswer { task: first, tasks: all }).into_response())
}

/// Maps why a task refused a worker's call to the 409 the worker acts on.
async fn task_error(state: &AppState, job_id: &JobId, error: ServiceError) -> ApiError {
    let conflict = |reason: TaskGone, message: String| ApiError::new(DIALECT, ErrorKind::TaskGone(reason, message));
    match error {
        ServiceError::Conflict(TransitionError::LeaseLost { .. }) => conflict(
            TaskGone::LeaseLost,
            format!("the lease token does not hold {job_id} (it was claimed again, or this attempt already ended); stop working on it"),
        ),
        ServiceError::Conflict(TransitionError::AlreadyTerminal { status: JobStatus::Cancelled, .. }) => {
            conflict(TaskGone::Cancelled, format!("job {job_id} was cancelled; stop working on it"))
        }
        ServiceError::Conflict(TransitionError::AlreadyTerminal { status, .. }) => {
            let timed_out = match state.service.get_task(job_id).await {
                Ok(task) => task.error_code.as_deref() == Some(JOB_TIMEOUT),
                Err(_) => false,
            };
            if timed_out {
                conflict(TaskGone::TimedOut, format!("job {job_id} timed out; its lease was revoked"))
            } else {
                conflict(TaskGone::Finished, format!("job {job_id} is already {status}"))
            }
        }
        ServiceError::Conflict(error @ TransitionError::NothingToCompensate { .. }) => {
            conflict(TaskGone::NotATask, error.to_string())
        }
        ServiceError::Conflict(error @ TransitionError::DerivedStatus { .. }) => conflict(
            TaskGone::NotATask,
            format!("{error}: workers report on sub-jobs, never on their parent"),
        ),
        other => ApiError::from_service(DIALECT, other),
    }
}

/// The `{job_id}` of a task path.
fn task_id(path: Result<Path<String>, PathRejection>) -> Result<JobId, ApiError> {
    let raw = path.map(|Path(id)| id).map_err(|e| ApiError::invalid(DIALECT, e.to_string()))?;
    query::job_id(DIALECT, &raw)
}

/// The task `job_id` within a tree.
fn task_of(tree: &Job, job_id: &JobId) -> Job {
    tree.find(job_id).cloned().unwrap_or_else(|| tree.clone())
}

/// The tasks a caller's workers may touch: its projects and enterprise projects.
fn task_scope(caller: &Caller) -> TaskScope {
    TaskScope {
        project_ids: match &caller.principal.projects {
            ProjectScope::All => None,
            ProjectScope::Only(ids) => Some(ids.iter().filter_map(|id| ProjectId::parse(id).ok()).collect()),
        },
        enterprise_project_ids: caller.principal.enterprise_project_ids.clone(),
    }
}

/// Applies workers' events to their tasks in one store transaction: per event, the task after it
/// or the error its single route would answer.
async fn record_all(
    state: &AppState,
    caller: &Caller,
    events: Vec<TaskEvent>,
) -> Result<Vec<Result<Job, ApiError>>, ApiError> {
    let answers = state
        .service
        .record_task_events(&events, &task_scope(caller))
        .await
        .map_err(|e| ApiError::from_service(DIALECT, e))?;
    let mut results = Vec::with_capacity(answers.len());
    for (TaskEvent { job_id, .. }, answer) in events.iter().zip(answers) {
        results.push(match answer {
            Ok(tree) => Ok(task_of(&tree, job_id)),
            Err(error) => Err(task_error(state, job_id, error).await),
        });
    }
    Ok(results)
}

async fn record(state: &AppState, caller: &Caller, job_id: &JobId, event: JobEvent) -> Result<Job, ApiError> {
    match state.service.record_task_event(job_id, event, &task_scope(caller)).await {
        Ok(tree) => Ok(task_of(&tree, job_id)),
        Err(error) => Err(task_error(state, job_id, error).await),
    }
}

async fn heartbeat(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    let job_id = task_id(path)?;
    let event = report_event(&state, ReportOutcome::Heartbeat, parse_json(&body)?)?;
    let requested = match &event {
        JobEvent::Heartbeat { lease_expires_at, .. } => *lease_expires_at,
        _ => None,
    };
    let task = record(&state, &caller, &job_id, event).await?;
    let lease_expires_at =
        task.lease.as_ref().map(|l| l.expires_at).or(requested).unwrap_or_else(|| state.service.now());
    Ok(Json(HeartbeatAnswer {
        job_id: task.job_id.to_string(),
        status: task.status.as_str(),
        lease_expires_at: time_format::native(&lease_expires_at),
    }))
}

/// The event a worker's report stands for: the one reading of the single routes' bodies and of
/// each batch report. `body` is the single route's body.
fn report_event(state: &AppState, outcome: ReportOutcome, body: Value) -> Result<JobEvent, ApiError> {
    Ok(match outcome {
        ReportOutcome::Complete => {
            let body: CompleteBody = parse_value(body)?;
            if let Some(message) = &body.message {
                check_text("message", message, 0, MAX_MESSAGE_LEN)?;
            }
            JobEvent::Complete { lease_token: body.lease_token, result: body.result, message: body.message }
        }
        ReportOutcome::Fail => {
            let body: FailBody = parse_value(body)?;
            check_text("error_code", &body.error_code, 1, MAX_ERROR_CODE_LEN)?;
            check_text("error_msg", &body.error_msg, 0, MAX_MESSAGE_LEN)?;
            JobEvent::FailAttempt {
                lease_token: body.lease_token,
                error_code: body.error_code,
                error_msg: body.error_msg,
                retryable: body.retryable,
                jitter: rand::random::<f64>(),
            }
        }
        ReportOutcome::Heartbeat => {
            let body: HeartbeatBody = parse_value(body)?;
            if let Some(message) = &body.message {
                check_text("message", message, 0, MAX_MESSAGE_LEN)?;
            }
            let extend = bounded(
                "extend_seconds",
                body.extend_seconds,
                MIN_LEASE_SECONDS..=MAX_LEASE_SECONDS,
                DEFAULT_LEASE_SECONDS,
            )?;
            JobEvent::Heartbeat {
                lease_token: body.lease_token,
                lease_expires_at: Some(state.service.now() + chrono::Duration::seconds(i64::from(extend))),
                message: body.message,
            }
        }
    })
}

/// `.../complete` and `.../fail`.
async fn report_one(
    state: &AppState,
    caller: &Caller,
    path: Result<Path<String>, PathRejection>,
    outcome: ReportOutcome,
    body: &[u8],
) -> Result<Json<JobEnvelope>, ApiError> {
    let job_id = task_id(path)?;
    let event = report_event(state, outcome, parse_json(body)?)?;
    Ok(envelope(&record(state, caller, &job_id, event).await?))
}

async fn complete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<JobEnvelope>, ApiError> {
    report_one(&state, &caller, path, ReportOutcome::Complete, &body).await
}

async fn fail(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<JobEnvelope>, ApiError> {
    report_one(&state, &caller, path, ReportOutcome::Fail, &body).await
}

/// `POST /v1/worker/tasks/batch`. The batch itself answers `400` when its body is not
/// `{"reports": [object, ...]}`, holds no report or more than [`MAX_REPORTS_PER_BATCH`], or names
/// a task twice (or without a string `job_id`); every other problem is one report's, answered in
/// its slot. The reports are applied concurrently, so a store that coalesces concurrent writes
/// applies a batch in few transactions.
async fn report_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<TaskReportResults>, ApiError> {
    let body: ReportBatchBody = parse_body(&body)?;
    if !(1..=MAX_REPORTS_PER_BATCH).contains(&body.reports.len()) {
        return Err(ApiError::invalid(DIALECT, format!("reports must hold 1 to {MAX_REPORTS_PER_BATCH} reports")));
    }
    let mut seen = HashSet::new();
    let mut reports = Vec::with_capacity(body.reports.len());
    for (index, mut fields) in body.reports.into_iter().enumerate() {
        let Some(Value::String(job_id)) = fields.remove("job_id") else {
            return Err(ApiError::invalid(DIALECT, format!("reports[{index}].job_id must be a string")));
        };
        // The same task in two spellings (upper and lower case hex) is the same task.
        let key = JobId::parse(&job_id).map(|id| id.to_string()).unwrap_or_else(|_| job_id.clone());
        if !seen.insert(key) {
            return Err(ApiError::invalid(DIALECT, format!("job {job_id} is reported more than once in the batch")));
        }
        let outcome = fields.remove("outcome");
        reports.push((job_id, outcome, Value::Object(fields)));
    }
    // Reports that read well become events, applied together; the others answer in their slot.
    let mut answers: Vec<Option<Result<Job, ApiError>>> = Vec::with_capacity(reports.len());
    let mut events = Vec::new();
    let mut slots = Vec::new();
    for (slot, (job_id, outcome, body)) in reports.iter().enumerate() {
        let event = query::job_id(DIALECT, job_id).and_then(|id| {
            let outcome = ReportOutcome::of_report(outcome.as_ref())?;
            Ok(TaskEvent { job_id: id, event: report_event(&state, outcome, body.clone())? })
        });
        match event {
            Ok(event) => {
                events.push(event);
                slots.push(slot);
                answers.push(None);
            }
            Err(error) => answers.push(Some(Err(error))),
        }
    }
    if !events.is_empty() {
        for (slot, answer) in slots.into_iter().zip(record_all(&state, &caller, events).await?) {
            answers[slot] = Some(answer);
        }
    }
    let results = reports
        .into_iter()
        .zip(answers)
        .map(|((job_id, _, _), answer)| {
            TaskReportResult::new(job_id, answer.expect("every slot is answered"), body.answer)
        })
        .collect();
    Ok(Json(TaskReportResults { results }))
}
