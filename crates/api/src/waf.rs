//! WAF's ConfirmAsyncJob: `GET /v1/{project_id}/waf/async-job/{job_id}?enterpriseProjectId=` →
//! `{"status", "message", "job_id"}`.
//!
//! Status words: `RUNNING` (pending or running), `SUCCESS`, `FAILED` (failed or cancelled).
//! `message` is the latest progress line; for a failed job, its error message. Job ids are 32 hex
//! characters. `enterpriseProjectId`: absent or `0` is the default enterprise project,
//! `all_granted_eps` every one the caller is granted, anything else that one project.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::on;
use axum::{Extension, Json};
use jobd_auth::identity::Action;
use jobd_core::ids::parse_enterprise_project_id;
use jobd_core::{Job, JobStatus, ServiceName, DEFAULT_ENTERPRISE_PROJECT_ID};
use serde::Serialize;

use crate::caller::Caller;
use crate::dialect::{fetch_service_job, Dialect};
use crate::endpoint::{Access, Answer, Api, Endpoint};
use crate::error::{ApiError, ErrorKind};
use crate::query::{self, QueryPairs};
use crate::watch::{until_terminal, wait_of};
use crate::AppState;

const DIALECT: Dialect = Dialect::Waf;
pub(crate) const ALL_GRANTED_EPS: &str = "all_granted_eps";

const API: Api = Api::new(DIALECT, "WAF");

pub(crate) const ENDPOINTS: &[Endpoint] = &[API
    .get("/v1/{project_id}/waf/async-job/{job_id}", Access::Needs(Action::Read), |m| on(m, confirm_async_job))
    .summary("Show a WAF job (ConfirmAsyncJob)")
    .answers(&[Answer::json(200, "ConfirmAsyncJobResponse")])
    .parameters(crate::openapi::parameters::waf_job)
    .not_found()];

/// The WAF word for a status: the one place it is decided.
fn status_word(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending | JobStatus::Running => "RUNNING",
        JobStatus::Succeeded => "SUCCESS",
        JobStatus::Failed | JobStatus::Cancelled => "FAILED",
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ConfirmAsyncJobResponse {
    status: &'static str,
    message: String,
    job_id: String,
}

impl From<&Job> for ConfirmAsyncJobResponse {
    fn from(job: &Job) -> Self {
        let message = match job.status {
            JobStatus::Failed => job.error_msg.clone().or_else(|| job.message.clone()),
            JobStatus::Cancelled => Some("The job was cancelled".to_owned()),
            _ => job.message.clone(),
        };
        ConfirmAsyncJobResponse {
            status: status_word(job.status),
            message: message.unwrap_or_default(),
            job_id: job.job_id.to_string(),
        }
    }
}

/// Which enterprise projects a request may see.
enum EnterpriseProjectScope {
    One(String),
    AllGranted,
}

fn enterprise_project_scope(params: &QueryPairs) -> Result<EnterpriseProjectScope, ApiError> {
    match params.one(DIALECT, "enterpriseProjectId")? {
        None | Some("") => Ok(EnterpriseProjectScope::One(DEFAULT_ENTERPRISE_PROJECT_ID.to_owned())),
        Some(ALL_GRANTED_EPS) => Ok(EnterpriseProjectScope::AllGranted),
        Some(raw) => parse_enterprise_project_id(raw)
            .map(EnterpriseProjectScope::One)
            .map_err(|e| ApiError::invalid(DIALECT, format!("enterpriseProjectId: {e}"))),
    }
}

async fn confirm_async_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<ConfirmAsyncJobResponse>, ApiError> {
    // The WAF page allows any 32 letters and digits as an id: such an id is well-formed, only unknown.
    let well_formed = |raw: &str| raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_alphanumeric());
    let (project_id, job_id) = query::job_path(DIALECT, path, well_formed)?;
    let params = QueryPairs::parse(raw_query.as_deref());
    let scope = enterprise_project_scope(&params)?;
    let wait = wait_of(DIALECT, &params, &headers)?;
    let job = fetch_service_job(&state, &caller, DIALECT, ServiceName::WAF, &project_id, &job_id).await?;
    // `fetch_service_job` already hid jobs outside the caller's granted enterprise projects.
    let visible = match &scope {
        EnterpriseProjectScope::AllGranted => true,
        EnterpriseProjectScope::One(id) => &job.enterprise_project_id == id,
    };
    if !visible {
        return Err(ApiError::new(DIALECT, ErrorKind::JobNotFound(job_id.to_string())));
    }
    let job = until_terminal(&state, DIALECT, job, wait).await?;
    Ok(Json(ConfirmAsyncJobResponse::from(&*job)))
}
