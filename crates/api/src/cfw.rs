//! Cloud Firewall's ListJob: `GET /v3/{project_id}/jobs/{job_id}` →
//! `{"data": {"id", "status", "begin_time", "end_time"}}`.
//!
//! Status words: `Running` (pending or running), `Success`, `Failed` (failed or cancelled).
//! Times are `yyyy-mm-ddThh:mm:ssZ` strings (the official SDK crashes on the page's epoch
//! numbers); `begin_time` is the creation time, `end_time` is null until the job ends. A failed
//! job also carries its `error_code` and `error_msg` at the top level, as the newer page allows.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::on;
use axum::{Extension, Json};
use jobd_auth::identity::Action;
use jobd_core::{Job, JobStatus, ServiceName};
use serde::Serialize;

use crate::caller::Caller;
use crate::dialect::{fetch_service_job, Dialect};
use crate::endpoint::{Access, Answer, Api, Endpoint};
use crate::error::ApiError;
use crate::query::{self, QueryPairs};
use crate::time_format;
use crate::watch::{until_terminal, wait_of};
use crate::AppState;

const DIALECT: Dialect = Dialect::Cfw;
const API: Api = Api::new(DIALECT, "CFW");

pub(crate) const ENDPOINTS: &[Endpoint] = &[API
    .get("/v3/{project_id}/jobs/{job_id}", Access::Needs(Action::Read), |m| on(m, list_job))
    .summary("Show a CFW job (ListJob)")
    .answers(&[Answer::json(200, "ListJobResponse")])
    .parameters(crate::openapi::parameters::job_wait)
    .not_found()];

/// The CFW word for a status: the one place it is decided.
fn status_word(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending | JobStatus::Running => "Running",
        JobStatus::Succeeded => "Success",
        JobStatus::Failed | JobStatus::Cancelled => "Failed",
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ListJobResponse {
    data: JobData,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_msg: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobData {
    id: String,
    status: &'static str,
    begin_time: String,
    end_time: Option<String>,
}

impl From<&Job> for ListJobResponse {
    fn from(job: &Job) -> Self {
        let failed = job.status == JobStatus::Failed;
        ListJobResponse {
            data: JobData {
                id: job.job_id.to_string(),
                status: status_word(job.status),
                begin_time: time_format::seed(&job.created_at),
                end_time: job.ended_at.as_ref().map(time_format::seed),
            },
            error_code: job.error_code.clone().filter(|_| failed),
            error_msg: job.error_msg.clone().filter(|_| failed),
        }
    }
}

async fn list_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<ListJobResponse>, ApiError> {
    let (project_id, job_id) = query::job_path(DIALECT, path, |_| false)?;
    let wait = wait_of(DIALECT, &QueryPairs::parse(raw_query.as_deref()), &headers)?;
    let job = fetch_service_job(&state, &caller, DIALECT, ServiceName::CFW, &project_id, &job_id).await?;
    let job = until_terminal(&state, DIALECT, job, wait).await?;
    Ok(Json(ListJobResponse::from(&*job)))
}
