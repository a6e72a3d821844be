//! Elastic Load Balance's job API with the models of the official SDK (`huaweicloudsdkelb` v3):
//! ShowJob `GET /v3/{project_id}/elb/jobs/{job_id}` ([`ShowJobRequest`] → [`ShowJobResponse`]) and
//! ListJobs `GET /v3/{project_id}/elb/jobs?...` ([`ListJobsRequest`] → [`ListJobsResponse`]), with
//! a page walker ([`ListJobsPages`]) that follows the markers.
//!
//! The requests are the ones the official SDKs send (see "Huawei Cloud's APIs" in the crate docs),
//! so [`ElbClient`] reads jobd and `https://elb.{region}.myhuaweicloud.com` alike.

use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};

use crate::client::{ApiRequest, Call, Client, ProjectClient};
use crate::dialect::dialect_get;
use crate::error::Result;
use crate::lenient::{null_as_default, string_or_number};

/// ShowJob's request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShowJobRequest {
    pub job_id: String,
    /// jobd's extension: hold the answer up to this many seconds (0–60) until the job is
    /// terminal, sent as `X-Jobd-Wait`. Only sent when set; Huawei Cloud's endpoints ignore it.
    pub wait_seconds: Option<u32>,
}

impl ShowJobRequest {
    pub fn new(job_id: impl Into<String>) -> Self {
        ShowJobRequest { job_id: job_id.into(), wait_seconds: None }
    }

    /// See [`ShowJobRequest::wait_seconds`](struct.ShowJobRequest.html#structfield.wait_seconds).
    pub fn wait_seconds(mut self, seconds: u32) -> Self {
        self.wait_seconds = Some(seconds);
        self
    }
}

/// ShowJob's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowJobResponse {
    #[serde(default, deserialize_with = "null_as_default")]
    pub job: MainJob,
    #[serde(default)]
    pub request_id: Option<String>,
}

/// A job with its sub-jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MainJob {
    /// `RUNNING`, `COMPLETE`, `FAIL`, `CANCEL`, `ROLLBACKING` or `ROLLBACK_FAIL`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    #[serde(default, deserialize_with = "string_or_number")]
    pub begin_time: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub end_time: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub job_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub job_type: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub error_code: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub error_msg: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub project_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub resource_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sub_jobs: Vec<SubJob>,
}

impl MainJob {
    /// `COMPLETE`, `FAIL`, `CANCEL` or `ROLLBACK_FAIL`: the job will not change again.
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "COMPLETE" | "FAIL" | "CANCEL" | "ROLLBACK_FAIL")
    }

    pub fn is_success(&self) -> bool {
        self.status == "COMPLETE"
    }
}

/// One step of a [`MainJob`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubJob {
    /// `INIT`, `RUNNING`, `SUCCESS`, `FAIL` or `CANCEL`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    #[serde(default, deserialize_with = "string_or_number")]
    pub begin_time: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub end_time: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub job_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub job_type: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub error_code: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub error_msg: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub project_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub resource_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub entities: Vec<JobEntities>,
}

/// A resource a sub-job touches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEntities {
    #[serde(default, deserialize_with = "null_as_default")]
    pub resource_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub resource_type: String,
}

/// ListJobs' request: filters and paging. Each filter may hold several values (any matches); the
/// official SDK's model holds one, which is the same on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListJobsRequest {
    /// Jobs per page (jobd: 0–2000, 0 meaning the most).
    pub limit: Option<u32>,
    /// The job id a page starts after (before, with `page_reverse`).
    pub marker: Option<String>,
    /// The page just before `marker` instead of after it.
    pub page_reverse: Option<bool>,
    pub job_id: Vec<String>,
    pub job_type: Vec<String>,
    /// Sub-job words: `INIT`, `RUNNING`, `SUCCESS` (or `COMPLETE`), `FAIL`, `CANCEL`.
    pub status: Vec<String>,
    pub error_code: Vec<String>,
    pub resource_id: Vec<String>,
    /// Jobs created at or after this time (`2024-01-01T00:00:00Z`).
    pub begin_time: Option<String>,
}

impl ListJobsRequest {
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn marker(mut self, marker: impl Into<String>) -> Self {
        self.marker = Some(marker.into());
        self
    }

    pub fn page_reverse(mut self, page_reverse: bool) -> Self {
        self.page_reverse = Some(page_reverse);
        self
    }

    pub fn job_id(mut self, job_id: impl Into<String>) -> Self {
        self.job_id.push(job_id.into());
        self
    }

    pub fn job_type(mut self, job_type: impl Into<String>) -> Self {
        self.job_type.push(job_type.into());
        self
    }

    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status.push(status.into());
        self
    }

    pub fn error_code(mut self, error_code: impl Into<String>) -> Self {
        self.error_code.push(error_code.into());
        self
    }

    pub fn resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.resource_id.push(resource_id.into());
        self
    }

    pub fn begin_time(mut self, begin_time: impl Into<String>) -> Self {
        self.begin_time = Some(begin_time.into());
        self
    }
}

/// ListJobs' answer: one page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListJobsResponse {
    #[serde(default, deserialize_with = "null_as_default")]
    pub jobs: Vec<MainJob>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub page_info: PageInfo,
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The markers of a page: the first and the last job id on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageInfo {
    #[serde(default)]
    pub previous_marker: Option<String>,
    #[serde(default)]
    pub next_marker: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub current_count: u32,
}

impl ApiRequest for ShowJobRequest {
    type Response = ShowJobResponse;

    fn to_call(&self, project_id: &str) -> Result<Call> {
        dialect_get(&["v3", project_id, "elb", "jobs", &self.job_id], project_id, self.wait_seconds)
    }
}

impl ApiRequest for ListJobsRequest {
    type Response = ListJobsResponse;

    fn to_call(&self, project_id: &str) -> Result<Call> {
        let mut call = dialect_get(&["v3", project_id, "elb", "jobs"], project_id, None)?;
        if let Some(limit) = self.limit {
            call = call.query("limit", limit.to_string());
        }
        if let Some(marker) = &self.marker {
            call = call.query("marker", marker.as_str());
        }
        if let Some(page_reverse) = self.page_reverse {
            call = call.query("page_reverse", page_reverse.to_string());
        }
        let repeated = [
            ("job_id", &self.job_id),
            ("job_type", &self.job_type),
            ("status", &self.status),
            ("error_code", &self.error_code),
            ("resource_id", &self.resource_id),
        ];
        for (name, values) in repeated {
            for value in values {
                call = call.query(name, value.as_str());
            }
        }
        if let Some(begin_time) = &self.begin_time {
            call = call.query("begin_time", begin_time.as_str());
        }
        Ok(call.sort_query())
    }
}

/// Elastic Load Balance's job API for one project, on the endpoint of its [`Client`].
#[derive(Debug, Clone)]
pub struct ElbClient {
    client: Client,
    project_id: String,
}

impl ElbClient {
    /// ELB calls for `project_id` through `client` (jobd, or `https://elb.{region}.myhuaweicloud.com`).
    pub fn new(client: Client, project_id: impl Into<String>) -> Self {
        ElbClient { client, project_id: project_id.into() }
    }

    /// `ShowJob`: a job with its sub-jobs.
    pub async fn show_job(&self, request: &ShowJobRequest) -> Result<ShowJobResponse> {
        self.client.call(&self.project_id, request).await
    }

    /// `ListJobs`: one page.
    pub async fn list_jobs(&self, request: &ListJobsRequest) -> Result<ListJobsResponse> {
        self.client.call(&self.project_id, request).await
    }

    /// Every page of `request`, from its `marker` on, following the markers (`next_marker`, or
    /// `previous_marker` with `page_reverse`).
    ///
    /// ```no_run
    /// use jobd_client::elb::{ElbClient, ListJobsRequest};
    /// use jobd_client::{Client, Credentials};
    ///
    /// # async fn example() -> Result<(), jobd_client::Error> {
    /// let client = Client::new("https://elb.cn-north-4.myhuaweicloud.com", Credentials::new("AK", "SK"))?;
    /// let elb = ElbClient::new(client, "0123456789abcdef0123456789abcdef");
    /// let mut pages = elb.list_jobs_pages(ListJobsRequest::default().limit(100).status("RUNNING"));
    /// while let Some(page) = pages.next_page().await? {
    ///     for job in &page.jobs {
    ///         println!("{} {} {}", job.job_id, job.job_type, job.status);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_jobs_pages(&self, request: ListJobsRequest) -> ListJobsPages {
        ListJobsPages { elb: self.clone(), request, done: false }
    }
}

/// Walks the pages of a ListJobs request (see [`ElbClient::list_jobs_pages`]).
///
/// It stops after an empty page, a page shorter than the request's `limit`, or a page without a
/// marker to go on from. A failed call can be tried again with another `next_page`.
#[derive(Debug, Clone)]
pub struct ListJobsPages {
    elb: ElbClient,
    request: ListJobsRequest,
    done: bool,
}

impl ListJobsPages {
    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<ListJobsResponse>> {
        if self.done {
            return Ok(None);
        }
        let page = self.elb.list_jobs(&self.request).await?;
        let reverse = self.request.page_reverse == Some(true);
        let following = if reverse { &page.page_info.previous_marker } else { &page.page_info.next_marker };
        let short = matches!(self.request.limit, Some(limit) if limit > 0 && page.jobs.len() < limit as usize);
        match following {
            Some(marker) if !page.jobs.is_empty() && !short && Some(marker) != self.request.marker.as_ref() => {
                self.request.marker = Some(marker.clone());
            }
            _ => self.done = true,
        }
        if page.jobs.is_empty() {
            return Ok(None);
        }
        Ok(Some(page))
    }

    /// Every job of every remaining page.
    pub async fn all_jobs(mut self) -> Result<Vec<MainJob>> {
        let mut jobs = Vec::new();
        while let Some(page) = self.next_page().await? {
            jobs.extend(page.jobs);
        }
        Ok(jobs)
    }

    /// The remaining pages as a stream; it ends after the last page or the first error.
    pub fn into_stream(self) -> impl Stream<Item = Result<ListJobsResponse>> + Send + 'static {
        stream::unfold(Some(self), |pages| async move {
            let mut pages = pages?;
            match pages.next_page().await {
                Ok(Some(page)) => Some((Ok(page), Some(pages))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        })
    }
}

impl ProjectClient {
    /// Elastic Load Balance's job API for this project, on this client's endpoint.
    pub fn elb(&self) -> ElbClient {
        ElbClient::new(self.client.clone(), self.project_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn list_queries_are_sorted_like_the_sdks() {
        let request = ListJobsRequest::default()
            .limit(10)
            .page_reverse(true)
            .status("SUCCESS")
            .status("FAIL")
            .marker("job id/1+x")
            .begin_time("2024-01-01T00:00:00")
            .job_type("cloneLoadbalancer");
        let call = request.to_call("p").unwrap();
        let pairs: Vec<String> = call.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            pairs,
            [
                "begin_time=2024-01-01T00:00:00",
                "job_type=cloneLoadbalancer",
                "limit=10",
                "marker=job id/1+x",
                "page_reverse=true",
                "status=FAIL",
                "status=SUCCESS"
            ]
        );
        assert!(call.headers.iter().all(|(n, _)| n != "x-jobd-wait"));
    }

    #[test]
    fn a_main_job_reads_with_nulls() {
        let answer: ShowJobResponse = serde_json::from_value(json!({"job": {"status": "COMPLETE",
            "begin_time": "2024-01-01T00:00:00Z", "end_time": null, "job_id": "j", "job_type": "UPGRADE",
            "error_code": null, "error_msg": "", "project_id": "p", "resource_id": "lb", "sub_jobs": [
                {"status": "SUCCESS", "job_id": "s", "job_type": "UPGRADE_INIT", "entities":
                    [{"resource_id": "lb", "resource_type": "loadbalancer"}]}]}, "request_id": "r"}))
        .unwrap();
        assert!(answer.job.is_terminal() && answer.job.is_success());
        assert_eq!(answer.job.sub_jobs[0].entities[0].resource_type, "loadbalancer");
        assert_eq!(answer.job.error_code, "");
    }
}
