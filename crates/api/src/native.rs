//! The native job API (`/v1/{project_id}/jobs...`): create, get, list and cancel, with the full
//! job model on the wire (RFC 3339 UTC timestamps with milliseconds).

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::on;
use axum::{Extension, Json};
use jobd_auth::identity::Action;
use jobd_core::ids::parse_enterprise_project_id;
use jobd_core::job_request;
use jobd_core::{Compensation, Execution, OnFailure, Phase, RetryBackoff};
use jobd_core::{Direction, Entity, Job, JobQuery, JobStatus, NewJob, ServiceName};
use jobd_service::ClientToken;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::caller::Caller;
use crate::dialect::{restrict_enterprise_projects, Dialect};
use crate::endpoint::{Access, Answer, Api, Endpoint};
use crate::error::{ApiError, ErrorKind};
use crate::query::{self, QueryPairs};
use crate::time_format;
use crate::AppState;

const DIALECT: Dialect = Dialect::Native;
const CLIENT_TOKEN_HEADER: &str = "x-client-token";
pub(crate) const MAX_LIST_LIMIT: u32 = 1000;
/// What `X-Client-Token` (and a batch item's `client_token`) may be: 1 to 128 visible ASCII characters.
pub(crate) const CLIENT_TOKEN_PATTERN: &str = "^[\\x21-\\x7e]{1,128}$";
const DEFAULT_LIST_LIMIT: u32 = 100;

const API: Api = Api::new(DIALECT, "native");
const READ: Access = Access::Needs(Action::Read);
const WRITE: Access = Access::Needs(Action::Write);

pub(crate) const ENDPOINTS: &[Endpoint] = &[
    API.post("/v1/{project_id}/jobs", WRITE, |m| on(m, create_job))
        .summary("Create a job (X-Client-Token: at most once)")
        .request("CreateJob")
        .answers(&[
            Answer::json(201, "JobEnvelope"),
            Answer::json(200, "JobEnvelope").described("Success (an idempotent replay)"),
        ])
        .parameters(crate::openapi::parameters::client_token)
        .conflict(),
    API.get("/v1/{project_id}/jobs", READ, |m| on(m, list_jobs))
        .summary("List jobs, newest first")
        .answers(&[Answer::json(200, "JobList")])
        .parameters(crate::openapi::parameters::native_list),
    // A static segment wins over `{job_id}` in axum's router.
    API.post("/v1/{project_id}/jobs/batch", WRITE, |m| on(m, create_jobs))
        .summary("Create up to 1,000 jobs at once, all or none")
        .request("CreateJobBatch")
        .answers(&[
            Answer::json(201, "JobBatch"),
            Answer::json(200, "JobBatch").described("Success (an idempotent replay)"),
        ])
        .conflict(),
    API.get("/v1/{project_id}/jobs/{job_id}", READ, |m| on(m, show_job))
        .summary("Show a job, its sub-jobs and its events; or wait for it to change")
        .answers(&[Answer::json(200, "JobEnvelope")])
        .parameters(crate::openapi::parameters::native_job)
        .not_found(),
    API.post("/v1/{project_id}/jobs/{job_id}/cancel", WRITE, |m| on(m, cancel_job))
        .summary("Cancel a job and its sub-jobs")
        .answers(&[Answer::json(200, "JobEnvelope")])
        .not_found()
        .conflict(),
];

// ---- wire types ----

/// A job as the native API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NativeJob {
    job_id: String,
    parent_job_id: Option<String>,
    project_id: String,
    enterprise_project_id: String,
    service: String,
    job_type: String,
    status: &'static str,
    message: Option<String>,
    resource_id: Option<String>,
    #[schema(value_type = Vec<Object>)]
    entities: Vec<Entity>,
    error_code: Option<String>,
    error_msg: Option<String>,
    /// Left out of list answers unless asked for (`include=payload`).
    #[serde(skip_serializing_if = "JobBody::is_omitted")]
    #[schema(value_type = Option<Value>)]
    payload: JobBody,
    /// Left out of list answers unless asked for (`include=result`).
    #[serde(skip_serializing_if = "JobBody::is_omitted")]
    #[schema(value_type = Option<Value>)]
    result: JobBody,
    created_at: String,
    started_at: Option<String>,
    ended_at: Option<String>,
    updated_at: String,
    version: i64,
    priority: i32,
    run_at: Option<String>,
    max_attempts: u32,
    attempt: u32,
    #[schema(value_type = Object)]
    retry_backoff: RetryBackoff,
    timeout_seconds: Option<u32>,
    #[schema(value_type = String)]
    execution: Execution,
    #[schema(value_type = String)]
    on_failure: OnFailure,
    /// `run`, or `rollback` while a parent compensates its sub-jobs.
    #[schema(value_type = String)]
    phase: Phase,
    compensation: Option<CompensationView>,
    /// The worker holding (or that last held) the task, and until when.
    worker_id: Option<String>,
    lease_expires_at: Option<String>,
    #[schema(no_recursion)]
    sub_jobs: Vec<NativeJob>,
}

/// A job's `payload` or `result`: shown (`null` when it has none), or left out of a list answer.
#[derive(Debug, Clone, PartialEq)]
pub enum JobBody {
    Shown(Option<Value>),
    Omitted,
}

impl JobBody {
    fn is_omitted(&self) -> bool {
        matches!(self, JobBody::Omitted)
    }
}

impl Serialize for JobBody {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            JobBody::Shown(value) => value.serialize(serializer),
            JobBody::Omitted => serializer.serialize_none(),
        }
    }
}

impl NativeJob {
    /// Leaves out the payloads and results the list caller did not ask for, sub-jobs' too.
    fn for_list(mut self, include: &ListInclude) -> Self {
        if !include.payload {
            self.payload = JobBody::Omitted;
        }
        if !include.result {
            self.result = JobBody::Omitted;
        }
        self.sub_jobs = self.sub_jobs.into_iter().map(|sub| sub.for_list(include)).collect();
        self
    }
}

/// What a list answer shows beyond the job's own fields: `include=payload,result` (or repeated).
#[derive(Debug, Default)]
struct ListInclude {
    payload: bool,
    result: bool,
}

impl ListInclude {
    fn parse(params: &QueryPairs) -> Result<Self, ApiError> {
        let mut include = ListInclude::default();
        for value in params.all("include").into_iter().flat_map(|raw| raw.split(',')) {
            match value {
                "payload" => include.payload = true,
                "result" => include.result = true,
                other => {
                    return Err(ApiError::invalid(DIALECT, format!("include may be payload or result, not {other:?}")))
                }
            }
        }
        Ok(include)
    }
}

/// A sub-job's compensation during a rollback.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompensationView {
    status: &'static str,
    attempt: u32,
    started_at: Option<String>,
    ended_at: Option<String>,
    error_code: Option<String>,
    error_msg: Option<String>,
}

impl From<&Compensation> for CompensationView {
    fn from(compensation: &Compensation) -> Self {
        CompensationView {
            status: compensation.status.as_str(),
            attempt: compensation.attempt,
            started_at: compensation.started_at.as_ref().map(time_format::native),
            ended_at: compensation.ended_at.as_ref().map(time_format::native),
            error_code: compensation.error_code.clone(),
            error_msg: compensation.error_msg.clone(),
        }
    }
}

impl From<&Job> for NativeJob {
    fn from(job: &Job) -> Self {
        NativeJob {
            job_id: job.job_id.to_string(),
            parent_job_id: job.parent_job_id.as_ref().map(|id| id.to_string()),
            project_id: job.project_id.to_string(),
            enterprise_project_id: job.enterprise_project_id.clone(),
            service: job.service.to_string(),
            job_type: job.job_type.to_string(),
            status: job.status.as_str(),
            message: job.message.clone(),
            resource_id: job.resource_id.clone(),
            entities: job.entities.clone(),
            error_code: job.error_code.clone(),
            error_msg: job.error_msg.clone(),
            payload: JobBody::Shown(job.payload.clone()),
            result: JobBody::Shown(job.result.clone()),
            created_at: time_format::native(&job.created_at),
            started_at: job.started_at.as_ref().map(time_format::native),
            ended_at: job.ended_at.as_ref().map(time_format::native),
            updated_at: time_format::native(&job.updated_at),
            version: job.version,
            priority: job.priority,
            run_at: job.run_at.as_ref().map(time_format::native),
            max_attempts: job.max_attempts,
            attempt: job.attempt,
            retry_backoff: job.retry_backoff,
            timeout_seconds: job.timeout_seconds,
            execution: job.execution,
            on_failure: job.on_failure,
            phase: job.phase,
            compensation: job.compensation.as_ref().map(CompensationView::from),
            worker_id: job.lease.as_ref().map(|lease| lease.worker_id.clone()),
            lease_expires_at: job.lease.as_ref().map(|lease| time_format::native(&lease.expires_at)),
            sub_jobs: job.sub_jobs.iter().map(NativeJob::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobEnvelope {
    job: NativeJob,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobList {
    jobs: Vec<NativeJob>,
    next_marker: Option<String>,
}

/// The answer to `POST /v1/{project_id}/jobs/batch`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobBatch {
    /// The jobs, in request order.
    jobs: Vec<NativeJob>,
    /// The positions of items whose `client_token` named a job created before (answered as it
    /// stands, not created again).
    replayed: Vec<usize>,
}

pub fn envelope(job: &Job) -> Json<JobEnvelope> {
    Json(JobEnvelope { job: NativeJob::from(job) })
}

// ---- handlers ----

/// Parses a create body; also answers the request's canonical form, the digest idempotent
/// replays are compared by.
fn parse_create_body(project_id: jobd_core::ProjectId, body: &[u8]) -> Result<(NewJob, String), ApiError> {
    job_request::parse_job_request_bytes(project_id, body).map_err(|e| ApiError::invalid(DIALECT, e.0))
}

/// A create's body, already read as JSON: the new job and the canonical text its client token
/// digest covers.
fn parse_create_value(project_id: jobd_core::ProjectId, value: Value) -> Result<(NewJob, String), ApiError> {
    job_request::parse_job_request(project_id, value).map_err(|e| ApiError::invalid(DIALECT, e.0))
}

/// The `X-Client-Token` of a create, with the digest of the request it came with.
fn client_token(
    headers: &HeaderMap,
    project_id: &jobd_core::ProjectId,
    canonical: &str,
) -> Result<Option<ClientToken>, ApiError> {
    let Some(raw) = headers.get(CLIENT_TOKEN_HEADER) else { return Ok(None) };
    let token = raw
        .to_str()
        .ok()
        .filter(|t| valid_client_token(t))
        .ok_or_else(|| ApiError::invalid(DIALECT, "X-Client-Token must be 1 to 128 visible ASCII characters"))?;
    Ok(Some(keyed_request(token, project_id, canonical)))
}

fn valid_client_token(token: &str) -> bool {
    (1..=128).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_graphic())
}

/// A client token with the digest of the request it came with: the same for a single create
/// with `X-Client-Token` and a batch item with `client_token`, so either replays the other.
fn keyed_request(token: &str, project_id: &jobd_core::ProjectId, canonical: &str) -> ClientToken {
    let digest = Sha256::new().chain_update(project_id.as_str()).chain_update(b"\n").chain_update(canonical).finalize();
    ClientToken { token: token.to_owned(), request_hash: hex::encode(digest) }
}

/// The body of `POST /v1/{project_id}/jobs/batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJobsBody {
    jobs: Vec<Value>,
}

/// `POST /v1/{project_id}/jobs/batch`: `{"jobs": [...]}`, 1 to 1,000 bodies of the single create,
/// each with an optional `client_token` (as `X-Client-Token`). All are created in one transaction
/// or none: a bad item answers `400` naming its index (`jobs[3]: ...`), a token used before with
/// another request `409`. `201` with the jobs in order; `200` when every item was a replay.
async fn create_jobs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<(StatusCode, Json<JobBatch>), ApiError> {
    let project_id = query::project_path(DIALECT, path)?;
    let body: CreateJobsBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(DIALECT, format!("invalid batch request body: {e}")))?;
    if !(1..=jobd_service::MAX_BATCH).contains(&body.jobs.len()) {
        return Err(ApiError::invalid(DIALECT, format!("jobs must hold 1 to {} jobs", jobd_service::MAX_BATCH)));
    }
    let mut items = Vec::with_capacity(body.jobs.len());
    for (index, mut item) in body.jobs.into_iter().enumerate() {
        let at = |error: ApiError| error.within(format!("jobs[{index}]"));
        let token = match item.as_object_mut().and_then(|fields| fields.remove("client_token")) {
            None => None,
            Some(Value::String(token)) if valid_client_token(&token) => Some(token),
            Some(_) => {
                return Err(at(ApiError::invalid(DIALECT, "client_token must be 1 to 128 visible ASCII characters")))
            }
        };
        let (new_job, canonical) = parse_create_value(project_id.clone(), item).map_err(at)?;
        if !caller.principal.may_see_enterprise_project(&new_job.enterprise_project_id) {
            return Err(ApiError::new(
                DIALECT,
                ErrorKind::Forbidden(format!(
                    "jobs[{index}]: no access to enterprise project {}",
                    new_job.enterprise_project_id
                )),
            ));
        }
        items.push((new_job, token.map(|token| keyed_request(&token, &project_id, &canonical))));
    }
    let created = state.service.create_many(items).await.map_err(|e| ApiError::from_service(DIALECT, e))?;
    let replayed: Vec<usize> = created.iter().enumerate().filter(|(_, c)| c.replayed).map(|(i, _)| i).collect();
    let status = if replayed.len() == created.len() { StatusCode::OK } else { StatusCode::CREATED };
    let jobs = created.iter().map(|c| NativeJob::from(&c.job)).collect();
    Ok((status, Json(JobBatch { jobs, replayed })))
}

/// `201` with the new job; `200` with the first job when an `X-Client-Token` replay repeats it.
async fn create_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<JobEnvelope>), ApiError> {
    let project_id = query::project_path(DIALECT, path)?;
    let (new_job, canonical) = parse_create_body(project_id.clone(), &body)?;
    if !caller.principal.may_see_enterprise_project(&new_job.enterprise_project_id) {
        return Err(ApiError::new(
            DIALECT,
            ErrorKind::Forbidden(format!("no access to enterprise project {}", new_job.enterprise_project_id)),
        ));
    }
    let token = client_token(&headers, &project_id, &canonical)?;
    let created = state.service.create(new_job, token).await.map_err(|e| ApiError::from_service(DIALECT, e))?;
    let status = if created.replayed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, envelope(&created.job)))
}

/// A job (or sub-job) the caller may see: one in an enterprise project it is not granted is not found.
pub async fn visible_job(
    state: &AppState,
    caller: &Caller,
    project_id: &jobd_core::ProjectId,
    job_id: &jobd_core::JobId,
) -> Result<std::sync::Arc<Job>, ApiError> {
    let job = state.service.get(project_id, job_id).await.map_err(|e| ApiError::from_service(DIALECT, e))?;
    if caller.principal.may_see_enterprise_project(&job.enterprise_project_id) {
        Ok(job)
    } else {
        Err(ApiError::new(DIALECT, ErrorKind::JobNotFound(job_id.to_string())))
    }
}

/// The job; with `version=V&wait_seconds=N`, held until its version exceeds V (or N seconds pass).
async fn show_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<JobEnvelope>, ApiError> {
    let (project_id, job_id) = query::job_path(DIALECT, path, |_| false)?;
    let params = QueryPairs::parse(raw_query.as_deref());
    let wait = crate::watch::wait_of(DIALECT, &params, &HeaderMap::new())?;
    let version = params
        .one(DIALECT, "version")?
        .map(|raw| {
            raw.parse::<i64>()
                .map_err(|_| ApiError::invalid(DIALECT, format!("version must be an integer, not {raw:?}")))
        })
        .transpose()?;
    let job = visible_job(&state, &caller, &project_id, &job_id).await?;
    let Some(after) = version else { return Ok(envelope(&job)) };
    let job = state
        .service
        .wait_for(&project_id, &job_id, wait, |job| job.version > after || job.is_terminal())
        .await
        .map_err(|e| ApiError::from_service(DIALECT, e))?;
    Ok(envelope(&job))
}

async fn cancel_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<JobEnvelope>, ApiError> {
    let (project_id, job_id) = query::job_path(DIALECT, path, |_| false)?;
    visible_job(&state, &caller, &project_id, &job_id).await?;
    let job = state.service.cancel(&project_id, &job_id).await.map_err(|e| ApiError::from_service(DIALECT, e))?;
    Ok(envelope(&job))
}

async fn list_jobs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<JobList>, ApiError> {
    let project_id = query::project_path(DIALECT, path)?;
    let params = QueryPairs::parse(raw_query.as_deref());
    let mut job_query = JobQuery::new(project_id.clone());
    let invalid = |m: String| ApiError::invalid(DIALECT, m);
    if let Some(service) = params.one(DIALECT, "service")? {
        job_query.service = Some(ServiceName::parse(service).map_err(|e| invalid(e.to_string()))?);
    }
    job_query.job_types = params.texts(DIALECT, "job_type")?;
    job_query.resource_ids = params.texts(DIALECT, "resource_id")?;
    job_query.statuses = params
        .all("status")
        .into_iter()
        .map(|s| s.parse::<JobStatus>().map_err(|e| invalid(e.to_string())))
        .collect::<Result<_, _>>()?;
    if let Some(raw) = params.one(DIALECT, "created_since")? {
        let since = time_format::parse_filter_time(raw)
            .ok_or_else(|| invalid(format!("created_since must be an RFC 3339 time, not {raw:?}")))?;
        job_query.created_since = Some(since);
    }
    let eps = params.all("enterprise_project_id");
    if !eps.is_empty() {
        job_query.enterprise_project_ids = Some(
            eps.into_iter()
                .map(|raw| parse_enterprise_project_id(raw).map_err(|e| invalid(e.to_string())))
                .collect::<Result<_, _>>()?,
        );
    }
    let limit = params.bounded(DIALECT, "limit", 1..=MAX_LIST_LIMIT, DEFAULT_LIST_LIMIT)?;
    let include = ListInclude::parse(&params)?;
    if let Some(marker) = params.one(DIALECT, "marker")? {
        let marker_id = query::job_id(DIALECT, marker)?;
        // A marker in an enterprise project the caller cannot see is as unknown as any other.
        let unknown = || invalid(format!("marker {marker} is not a job of this project"));
        visible_job(&state, &caller, &project_id, &marker_id).await.map_err(|e| match e.kind {
            ErrorKind::JobNotFound(_) => unknown(),
            _ => e,
        })?;
        let cursor = state
            .service
            .cursor_of(&project_id, &marker_id)
            .await
            .map_err(|e| ApiError::from_service(DIALECT, e))?
            .ok_or_else(|| invalid(format!("marker {marker} is not a job of this project")))?;
        job_query.cursor = Some(cursor);
    }
    job_query.enterprise_project_ids = restrict_enterprise_projects(&caller, job_query.enterprise_project_ids);
    job_query.direction = Direction::Older;
    job_query.limit = limit + 1;
    let mut jobs = state.service.list(&job_query).await.map_err(|e| ApiError::from_service(DIALECT, e))?;
    let mut has_more = jobs.len() > limit as usize;
    jobs.truncate(limit as usize);
    // The page ends early, with a marker, once its jobs pass the byte budget (always one job).
    let budget = state.config.list_page_bytes;
    let (mut page, mut page_bytes) = (Vec::with_capacity(jobs.len()), 0usize);
    let mut last_id = None;
    for job in jobs {
        let shown = NativeJob::from(&job).for_list(&include);
        let size = serde_json::to_vec(&shown).map(|bytes| bytes.len()).unwrap_or(0);
        if !page.is_empty() && page_bytes + size > budget {
            has_more = true;
            break;
        }
        page_bytes += size;
        last_id = Some(job.job_id.to_string());
        page.push(shown);
    }
    let next_marker = if has_more { last_id } else { None };
    Ok(Json(JobList { jobs: page, next_marker }))
}
