//! Watching instead of polling: long poll on the native GET, server-sent events for one job and
//! for a whole project, and `X-Jobd-Wait` for the seed dialects' GETs.
//!
//! - `GET /v1/{project_id}/jobs/{job_id}?wait_seconds=N&version=V` answers once the job's version
//!   exceeds V (at once if it does, if the job is terminal, or without `version`), else after N s.
//! - `GET /v1/{project_id}/jobs/{job_id}/events`: `event: job`, `id: <version>`, data the whole job
//!   (with sub-jobs); first the current state, then every change; it ends after the terminal event.
//!   `Last-Event-ID: V` resumes (the current state is sent only if newer than V).
//! - `GET /v1/{project_id}/events?service=&job_type=`: every change in the project
//!   (`id: <job_id>:<version>`).
//!
//! Every wait and stream is bounded (a minute for a long poll, an hour for a stream) and released
//! when the client goes away: a stream's subscription is dropped with its connection.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::on;
use futures_util::stream::{self, Stream};
use jobd_auth::identity::Action;
use jobd_core::{Job, JobId, ProjectId, ServiceName};
use jobd_service::identity::IdentityService;
use jobd_service::{JobService, TreeWatch};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::caller::Caller;
use crate::dialect::Dialect;
use crate::endpoint::{Access, Answer, Api, Content, Endpoint};
use crate::error::{ApiError, ErrorKind};
use crate::native::NativeJob;
use crate::query::{self, QueryPairs};
use crate::AppState;

const DIALECT: Dialect = Dialect::Native;
/// The longest a stream stays open; the client reconnects with `Last-Event-ID`.
const MAX_STREAM: Duration = Duration::from_secs(3600);
const KEEP_ALIVE: Duration = Duration::from_secs(15);
pub const WAIT_HEADER: &str = "x-jobd-wait";

const API: Api = Api::new(DIALECT, "native");
const STREAM: Answer = Answer { status: 200, content: Content::EventStream, description: "Success" };

pub(crate) const ENDPOINTS: &[Endpoint] = &[
    API.get("/v1/{project_id}/jobs/{job_id}/events", Access::Needs(Action::Read), |m| on(m, job_events))
        .summary("Stream a job's versions until it ends (server-sent events)")
        .answers(&[STREAM])
        .not_found(),
    API.get("/v1/{project_id}/events", Access::Needs(Action::Read), |m| on(m, project_events))
        .summary("Stream the project's job changes (server-sent events)")
        .answers(&[STREAM])
        .parameters(crate::openapi::parameters::project_events),
];

/// `wait_seconds` from the query (or, for the seed dialects, `X-Jobd-Wait`): 0–60.
pub fn wait_of(dialect: Dialect, params: &QueryPairs, headers: &HeaderMap) -> Result<Duration, ApiError> {
    let header = headers.get(WAIT_HEADER).map(|v| v.to_str().unwrap_or("invalid").to_owned());
    let raw = match params.one(dialect, "wait_seconds")? {
        Some(value) => Some(value.to_owned()),
        None => header,
    };
    let Some(raw) = raw else { return Ok(Duration::ZERO) };
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|seconds| *seconds <= 60)
        .map(Duration::from_secs)
        .ok_or_else(|| ApiError::invalid(dialect, format!("wait_seconds / X-Jobd-Wait must be 0 to 60, not {raw:?}")))
}

/// Holds a dialect's GET until the job is terminal, at most `wait`.
pub async fn until_terminal(
    state: &AppState,
    dialect: Dialect,
    job: std::sync::Arc<Job>,
    wait: Duration,
) -> Result<std::sync::Arc<Job>, ApiError> {
    if wait.is_zero() || job.is_terminal() {
        return Ok(job);
    }
    state
        .service
        .wait_for(&job.project_id, &job.job_id, wait, Job::is_terminal)
        .await
        .map_err(|e| ApiError::from_service(dialect, e))
}

/// An event carrying the whole job, with the given id.
fn job_event(job: &Job, id: String) -> Event {
    Event::default()
        .event("job")
        .id(id)
        .json_data(NativeJob::from(job))
        .unwrap_or_else(|_| Event::default().comment("unserialisable job"))
}

struct JobStream {
    service: JobService,
    identity: IdentityService,
    caller: Caller,
    project_id: ProjectId,
    job_id: JobId,
    watch: TreeWatch,
    last_version: Option<i64>,
    first: bool,
    done: bool,
    deadline: Instant,
}

impl JobStream {
    /// The next version of the job to send, or `None` when the stream is over.
    async fn next_job(&mut self) -> Option<Job> {
        loop {
            if self.done {
                return None;
            }
            let job = if self.first {
                self.first = false;
                self.service.get(&self.project_id, &self.job_id).await.ok().map(std::sync::Arc::unwrap_or_clone)
            } else {
                let received = tokio::select! {
                    received = tokio::time::timeout_at(self.deadline, self.watch.recv()) => received,
                    () = self.service.shutting_down() => return None,
                };
                match received {
                    Err(_) | Ok(Err(RecvError::Closed)) => return None,
                    Ok(Ok(tree)) => tree.find(&self.job_id).cloned(),
                    Ok(Err(RecvError::Lagged(_))) => {
                        self.service.get(&self.project_id, &self.job_id).await.ok().map(std::sync::Arc::unwrap_or_clone)
                    }
                }
            };
            let Some(job) = job else { continue };
            let newer = self.last_version.is_none_or(|last| job.version > last);
            if job.is_terminal() {
                self.done = true;
            }
            if newer {
                // A revoked token or disabled key ends the stream at its next event.
                if !self.identity.still_valid(&self.caller.principal).await {
                    return None;
                }
                self.last_version = Some(job.version);
                return Some(job);
            }
        }
    }
}

async fn job_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (project_id, job_id) = query::job_path(DIALECT, path, |_| false)?;
    let last_version = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::invalid(DIALECT, "Last-Event-ID must be a job version (an integer)"))?,
        ),
    };
    let job = crate::native::visible_job(&state, &caller, &project_id, &job_id).await?;
    let root_id = job.parent_job_id.clone().unwrap_or_else(|| job.job_id.clone());
    let stream = JobStream {
        watch: state.service.watch_tree(&root_id),
        service: state.service.clone(),
        identity: state.identity.clone(),
        caller,
        project_id,
        job_id,
        last_version,
        first: true,
        done: false,
        deadline: Instant::now() + MAX_STREAM,
    };
    let events = stream::unfold(stream, |mut stream| async move {
        let job = stream.next_job().await?;
        Some((Ok(job_event(&job, job.version.to_string())), stream))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

async fn project_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw_query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let project_id = query::project_path(DIALECT, path)?;
    let params = QueryPairs::parse(raw_query.as_deref());
    let service = params
        .one(DIALECT, "service")?
        .map(|s| ServiceName::parse(s).map_err(|e| ApiError::new(DIALECT, ErrorKind::InvalidRequest(e.to_string()))))
        .transpose()?;
    let job_types: Vec<String> = params.all("job_type").into_iter().map(str::to_owned).collect();
    let receiver = state.service.subscribe();
    let deadline = Instant::now() + MAX_STREAM;
    let job_service = state.service.clone();
    let identity = state.identity.clone();
    let events = stream::unfold(receiver, move |mut receiver| {
        let (project_id, service, job_types, caller) =
            (project_id.clone(), service.clone(), job_types.clone(), caller.clone());
        let (job_service, identity) = (job_service.clone(), identity.clone());
        async move {
            loop {
                let received = tokio::select! {
                    received = tokio::time::timeout_at(deadline, receiver.recv()) => received,
                    () = job_service.shutting_down() => return None,
                };
                let change = match received {
                    Err(_) | Ok(Err(RecvError::Closed)) => return None,
                    Ok(Err(RecvError::Lagged(missed))) => {
                        let note = Event::default().comment(format!("{missed} changes were missed; re-read the jobs"));
                        return Some((Ok(note), receiver));
                    }
                    Ok(Ok(change)) => change,
                };
                let job = &change.job;
                let wanted = job.project_id == project_id
                    && service.as_ref().is_none_or(|s| &job.service == s)
                    && (job_types.is_empty() || job_types.iter().any(|t| t == job.job_type.as_str()))
                    && caller.principal.may_see_enterprise_project(&job.enterprise_project_id);
                if wanted {
                    if !identity.still_valid(&caller.principal).await {
                        return None;
                    }
                    let event = job_event(job, format!("{}:{}", job.job_id, job.version));
                    return Some((Ok(event), receiver));
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}
