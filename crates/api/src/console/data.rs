//! The two reads the console needs beyond the job API, as API routes of their own (so they meet
//! the permission table and the project check like every other route; any caller may use them):
//!
//! - `GET /v1/{project_id}/overview`: per service and job type, the tasks waiting and running,
//!   the oldest wait, and the top-level jobs ended per minute by status over the last 15 minutes.
//! - `GET /v1/{project_id}/leases`: the tasks workers hold leases on: who, since when, the last
//!   heartbeat, until when.
//!
//! Enterprise projects the caller is not granted are left out of both.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::on;
use axum::{Extension, Json};
use jobd_auth::identity::Action;
use jobd_core::JobStatus;
use serde_json::{json, Value};

use crate::caller::Caller;
use crate::dialect::Dialect;
use crate::endpoint::{Access, Api, Endpoint};
use crate::error::ApiError;
use crate::query;
use crate::time_format;
use crate::AppState;

const DIALECT: Dialect = Dialect::Native;
/// The overview's window of finished jobs.
const WINDOW_MINUTES: i64 = 15;
/// The most leases one answer lists.
const MAX_LEASES: u32 = 500;
const OUTCOMES: [JobStatus; 3] = [JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled];

const API: Api = Api::new(DIALECT, "native");

pub(crate) const ENDPOINTS: &[Endpoint] = &[
    API.get("/v1/{project_id}/overview", Access::Needs(Action::Read), |m| on(m, overview))
        .summary("The console's overview: open tasks and recently finished jobs"),
    API.get("/v1/{project_id}/leases", Access::Needs(Action::Read), |m| on(m, leases))
        .summary("The console's workers page: the leases held now"),
];

#[derive(Default)]
struct Queue {
    waiting: u64,
    running: u64,
    oldest_waiting_due_at: Option<jobd_core::Timestamp>,
    /// Minute index in the window (0 = the oldest) → counts per outcome.
    finished: BTreeMap<i64, [u64; 3]>,
}

async fn overview(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let project_id = query::project_path(DIALECT, path)?;
    let now = state.service.now();
    let minute_of = |t: &jobd_core::Timestamp| t.timestamp_millis().div_euclid(60_000);
    let first_minute = minute_of(&now) - (WINDOW_MINUTES - 1);
    let window = Duration::from_secs(60 * WINDOW_MINUTES as u64);
    let (open, finished) =
        tokio::try_join!(state.service.open_tasks(&project_id), state.service.finished_jobs(&project_id, window),)
            .map_err(|e| ApiError::from_service(DIALECT, e))?;
    let visible = |eps: &str| caller.principal.may_see_enterprise_project(eps);
    let mut queues: BTreeMap<(String, String), Queue> = BTreeMap::new();
    for tasks in open.into_iter().filter(|t| visible(&t.enterprise_project_id)) {
        let queue = queues.entry((tasks.service, tasks.job_type)).or_default();
        queue.waiting += tasks.waiting;
        queue.running += tasks.running;
        queue.oldest_waiting_due_at = match (queue.oldest_waiting_due_at, tasks.oldest_waiting_due_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    for ended in finished.into_iter().filter(|f| visible(&f.enterprise_project_id)) {
        let index = minute_of(&ended.minute) - first_minute;
        let Some(outcome) = OUTCOMES.iter().position(|s| *s == ended.status) else { continue };
        if (0..WINDOW_MINUTES).contains(&index) {
            let queue = queues.entry((ended.service, ended.job_type)).or_default();
            queue.finished.entry(index).or_default()[outcome] += ended.count;
        }
    }
    let queues: Vec<Value> = queues
        .into_iter()
        .map(|((service, job_type), queue)| {
            let per_minute: Vec<Value> = (0..WINDOW_MINUTES)
                .map(|index| {
                    let counts = queue.finished.get(&index).copied().unwrap_or_default();
                    let minute = chrono::DateTime::from_timestamp_millis((first_minute + index) * 60_000)
                        .map(|t| time_format::native(&t));
                    json!({"minute": minute, "SUCCEEDED": counts[0], "FAILED": counts[1], "CANCELLED": counts[2]})
                })
                .collect();
            let oldest_seconds =
                queue.oldest_waiting_due_at.map(|t| ((now - t).num_milliseconds().max(0) as f64) / 1000.0);
            json!({
                "service": service,
                "job_type": job_type,
                "waiting": queue.waiting,
                "running": queue.running,
                "oldest_waiting_since": queue.oldest_waiting_due_at.as_ref().map(time_format::native),
                "oldest_waiting_seconds": oldest_seconds,
                "finished_per_minute": per_minute,
            })
        })
        .collect();
    Ok(Json(json!({"now": time_format::native(&now), "window_minutes": WINDOW_MINUTES, "queues": queues})))
}

async fn leases(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let project_id = query::project_path(DIALECT, path)?;
    let held =
        state.service.held_leases(&project_id, MAX_LEASES).await.map_err(|e| ApiError::from_service(DIALECT, e))?;
    let leases: Vec<Value> = held
        .iter()
        .filter(|lease| caller.principal.may_see_enterprise_project(&lease.enterprise_project_id))
        .map(|lease| {
            json!({
                "worker_id": lease.worker_id,
                "job_id": lease.job_id.to_string(),
                "parent_job_id": lease.parent_job_id.as_ref().map(|id| id.to_string()),
                "service": lease.service,
                "job_type": lease.job_type,
                "attempt": lease.attempt,
                "started_at": lease.started_at.as_ref().map(time_format::native),
                "last_heartbeat_at": time_format::native(&lease.updated_at),
                "lease_expires_at": time_format::native(&lease.lease_expires_at),
            })
        })
        .collect();
    Ok(Json(json!({"now": time_format::native(&state.service.now()), "leases": leases})))
}
