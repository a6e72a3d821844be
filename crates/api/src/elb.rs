//! Elastic Load Balance's job APIs: ShowJob `GET /v3/{project_id}/elb/jobs/{job_id}` →
//! `{"job": MainJob, "request_id"}` and ListJobs `GET /v3/{project_id}/elb/jobs` →
//! `{"jobs", "page_info", "request_id"}`.
//!
//! Main-job words: `RUNNING` (pending or running, never `INIT`: Terraform's waiter treats it as
//! an error), `ROLLBACKING`, `COMPLETE`, `FAIL`, `ROLLBACK_FAIL`, `CANCEL`. Sub-job words: `INIT`, `RUNNING`, `SUCCESS`, `FAIL`,
//! `CANCEL`. Times are `yyyy-mm-ddThh:mm:ssZ`; a main job's `begin_time` is its creation time, a
//! sub-job's the time it started. Empty error fields are `""`, as on the page.
//!
//! ListJobs pages newest first with ELB's markers: `marker` is a job id, the next page holds
//! the jobs after it, `page_reverse=true` the page of jobs just before it. `page_info` carries
//! the first and last id of the page as `previous_marker` / `next_marker` on every non-empty
//! page. `limit` is 0–2000 (default 2000; 0 means the maximum). The `status` filter takes the
//! eight words the ELB SDK documents and selects a job exactly when ShowJob shows its main job
//! with that word: `RUNNING` (pending or running), `ROLLBACKING`, `COMPLETE`, `FAIL`,
//! `ROLLBACK_FAIL`, `CANCEL`; `INIT` and `SUCCESS`, which only sub-jobs show, select none.
//! `begin_time` selects jobs created at or after that time. Every filter may be repeated (any
//! value matches).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::on;
use axum::{Extension, Json};
use jobd_auth::identity::Action;
use jobd_core::{Direction, Entity, Job, JobQuery, JobStatus, ServiceName, TreeStatus};
use serde::Serialize;

use crate::caller::Caller;
use crate::dialect::{fetch_service_job, restrict_enterprise_projects, Dialect};
use crate::endpoint::{Access, Answer, Api, Endpoint};
use crate::error::{ApiError, ErrorKind};
use crate::query::{self, QueryPairs};
use crate::request_id::RequestId;
use crate::time_format;
use crate::watch::{until_terminal, wait_of};
use crate::AppState;

const DIALECT: Dialect = Dialect::Elb;
pub(crate) const MAX_LIMIT: u32 = 2000;
/// The words of the `status` filter.
pub(crate) const STATUS_FILTER_WORDS: [&str; 6] = ["INIT", "RUNNING", "SUCCESS", "COMPLETE", "FAIL", "CANCEL"];

const API: Api = Api::new(DIALECT, "ELB");

pub(crate) const ENDPOINTS: &[Endpoint] = &[
    API.get("/v3/{project_id}/elb/jobs", Access::Needs(Action::Read), |m| on(m, list_jobs))
        .summary("List ELB jobs (ListJobs)")
        .answers(&[Answer::json(200, "ListJobsResponse")])
        .parameters(crate::openapi::parameters::elb_list),
    API.get("/v3/{project_id}/elb/jobs/{job_id}", Access::Needs(Action::Read), |m| on(m, show_job))
        .summary("Show an ELB job (ShowJob)")
        .answers(&[Answer::json(200, "ShowJobResponse")])
        .parameters(crate::openapi::parameters::job_wait)
        .not_found(),
];

/// The ELB words for statuses: the one place they are decided. A main job shows where its tree
/// stands: `RUNNING` while pending or running, `ROLLBACKING` while its sub-jobs are compensated,
/// `ROLLBACK_FAIL` once a compensation failed.
fn main_job_status_word(status: TreeStatus) -> &'static str {
    match status {
        TreeStatus::Pending | TreeStatus::Running => "RUNNING",
        TreeStatus::RollingBack => "ROLLBACKING",
        TreeStatus::Succeeded => "COMPLETE",
        TreeStatus::Failed => "FAIL",
        TreeStatus::RollbackFailed => "ROLLBACK_FAIL",
        TreeStatus::Cancelled => "CANCEL",
    }
}

fn sub_job_status_word(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "INIT",
        JobStatus::Running => "RUNNING",
        JobStatus::Succeeded => "SUCCESS",
        JobStatus::Failed => "FAIL",
        JobStatus::Cancelled => "CANCEL",
    }
}

/// The eight words of the `status` filter, as the ELB SDK documents them.
const FILTER_WORDS: [&str; 8] =
    ["INIT", "RUNNING", "FAIL", "SUCCESS", "ROLLBACKING", "COMPLETE", "ROLLBACK_FAIL", "CANCEL"];

/// The tree statuses a `status` filter word selects: exactly the main jobs ShowJob shows with
/// that word (`main_job_status_word`), so `INIT` and `SUCCESS`, sub-job words only, select none.
fn tree_statuses_for_filter(word: &str) -> Option<Vec<TreeStatus>> {
    FILTER_WORDS
        .contains(&word)
        .then(|| TreeStatus::ALL.into_iter().filter(|status| main_job_status_word(*status) == word).collect())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MainJob {
    status: &'static str,
    begin_time: String,
    end_time: Option<String>,
    job_id: String,
    job_type: String,
    error_code: String,
    error_msg: String,
    project_id: String,
    resource_id: String,
    sub_jobs: Vec<SubJob>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SubJob {
    status: &'static str,
    begin_time: Option<String>,
    end_time: Option<String>,
    job_id: String,
    job_type: String,
    error_code: String,
    error_msg: String,
    project_id: String,
    resource_id: String,
    #[schema(value_type = Vec<Object>)]
    entities: Vec<Entity>,
}

impl From<&Job> for MainJob {
    fn from(job: &Job) -> Self {
        MainJob {
            status: main_job_status_word(job.tree_status()),
            begin_time: time_format::seed(&job.created_at),
            end_time: job.ended_at.as_ref().map(time_format::seed),
            job_id: job.job_id.to_string(),
            job_type: job.job_type.to_string(),
            error_code: job.error_code.clone().unwrap_or_default(),
            error_msg: job.error_msg.clone().unwrap_or_default(),
            project_id: job.project_id.to_string(),
            resource_id: job.resource_id.clone().unwrap_or_default(),
            sub_jobs: job.sub_jobs.iter().map(SubJob::from).collect(),
        }
    }
}

impl From<&Job> for SubJob {
    fn from(job: &Job) -> Self {
        SubJob {
            status: sub_job_status_word(job.status),
            begin_time: job.started_at.as_ref().map(time_format::seed),
            end_time: job.ended_at.as_ref().map(time_format::seed),
            job_id: job.job_id.to_string(),
            job_type: job.job_type.to_string(),
            error_code: job.error_code.clone().unwrap_or_default(),
            error_msg: job.error_msg.clone().unwrap_or_default(),
            project_id: job.project_id.to_string(),
            resource_id: job.resource_id.clone().unwrap_or_default(),
            entities: job.entities.clone(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ShowJobResponse {
    job: MainJob,
    request_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PageInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
    current_count: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ListJobsResponse {
    jobs: Vec<MainJob>,
    page_info: PageInfo,
    request_id: String,
}

async fn show_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<ShowJobResponse>, ApiError> {
    let (project_id, job_id) = query::job_path(DIALECT, path, |_| false)?;
    let wait = wait_of(DIALECT, &QueryPairs::parse(raw_query.as_deref()), &headers)?;
    let job = fetch_service_job(&state, &caller, DIALECT, ServiceName::ELB, &project_id, &job_id).await?;
    let job = until_terminal(&state, DIALECT, job, wait).await?;
    Ok(Json(ShowJobResponse { job: MainJob::from(&*job), request_id: request_id.as_str().to_owned() }))
}

async fn list_jobs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<ListJobsResponse>, ApiError> {
    let project_id = query::project_path(DIALECT, path)?;
    let params = QueryPairs::parse(raw_query.as_deref());
    let invalid = |m: String| ApiError::invalid(DIALECT, m);

    let mut job_query = JobQuery::new(project_id.clone());
    job_query.service = Some(ServiceName::parse(ServiceName::ELB).expect("elb is a service name"));
    job_query.limit = match params.bounded(DIALECT, "limit", 0..=MAX_LIMIT, MAX_LIMIT)? {
        0 => MAX_LIMIT,
        limit => limit,
    };
    job_query.direction = match params.one(DIALECT, "page_reverse")? {
        None | Some("false") | Some("False") => Direction::Older,
        Some("true") | Some("True") => Direction::Newer,
        Some(other) => return Err(invalid(format!("page_reverse must be true or false, not {other:?}"))),
    };
    job_query.job_ids =
        params.all("job_id").into_iter().map(|id| query::job_id(DIALECT, id)).collect::<Result<_, _>>()?;
    job_query.job_types = params.texts(DIALECT, "job_type")?;
    job_query.error_codes = params.texts(DIALECT, "error_code")?;
    job_query.resource_ids = params.texts(DIALECT, "resource_id")?;
    let status_words = params.all("status");
    for word in &status_words {
        let statuses = tree_statuses_for_filter(word)
            .ok_or_else(|| invalid(format!("status {word:?} is not one of {}", FILTER_WORDS.join(", "))))?;
        job_query.tree_statuses.extend(statuses);
    }
    // Only words no main job shows (`INIT`, `SUCCESS`): nothing matches.
    let matches_nothing = !status_words.is_empty() && job_query.tree_statuses.is_empty();
    for raw in params.all("begin_time") {
        let since = time_format::parse_filter_time(raw)
            .ok_or_else(|| invalid(format!("begin_time {raw:?} is not a time like 2024-01-01T00:00:00Z")))?;
        job_query.created_since = Some(job_query.created_since.map_or(since, |t| t.min(since)));
    }
    if let Some(marker) = params.one(DIALECT, "marker")? {
        let marker_id =
            query::job_id(DIALECT, marker).map_err(|_| invalid(format!("marker {marker:?} is not a job id")))?;
        let marker_job = fetch_service_job(&state, &caller, DIALECT, ServiceName::ELB, &project_id, &marker_id)
            .await
            .map_err(|e| match e.kind {
            ErrorKind::JobNotFound(_) => invalid(format!("marker {marker} is not a job of this project")),
            _ => e,
        })?;
        let cursor = state
            .service
            .cursor_of(&project_id, &marker_job.job_id)
            .await
            .map_err(|e| ApiError::from_service(DIALECT, e))?
            .ok_or_else(|| invalid(format!("marker {marker} is not a job of this project")))?;
        job_query.cursor = Some(cursor);
    }

    job_query.enterprise_project_ids = restrict_enterprise_projects(&caller, job_query.enterprise_project_ids);
    let jobs = if matches_nothing {
        Vec::new()
    } else {
        state.service.list(&job_query).await.map_err(|e| ApiError::from_service(DIALECT, e))?
    };
    let page_info = PageInfo {
        previous_marker: jobs.first().map(|j| j.job_id.to_string()),
        next_marker: jobs.last().map(|j| j.job_id.to_string()),
        current_count: jobs.len(),
    };
    Ok(Json(ListJobsResponse {
        jobs: jobs.iter().map(MainJob::from).collect(),
        page_info,
        request_id: request_id.as_str().to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_word_selects_exactly_the_main_jobs_shown_with_it() {
        for word in FILTER_WORDS {
            let selected = tree_statuses_for_filter(word).expect("a documented word");
            for status in TreeStatus::ALL {
                assert_eq!(selected.contains(&status), main_job_status_word(status) == word, "{word} / {status}");
            }
        }
        assert_eq!(tree_statuses_for_filter("INIT"), Some(Vec::new()));
        assert_eq!(tree_statuses_for_filter("SUCCESS"), Some(Vec::new()));
        assert_eq!(tree_statuses_for_filter("running"), None);
    }
}
