//! Cloud Firewall's ListJob, `GET /v3/{project_id}/jobs/{job_id}`, with the models of the official
//! SDK (`huaweicloudsdkcfw`): [`ListJobRequest`] → [`ListJobResponse`].
//!
//! The request is the one the official SDKs send (see "Huawei Cloud's APIs" in the crate docs), so
//! [`CfwClient`] reads jobd and `https://cfw.{region}.myhuaweicloud.com` alike.

use serde::{Deserialize, Serialize};

use crate::client::{ApiRequest, Call, Client, ProjectClient};
use crate::dialect::dialect_get;
use crate::error::Result;
use crate::lenient::{null_as_default, string_or_number};

/// ListJob's request: the job to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListJobRequest {
    pub job_id: String,
    /// jobd's extension: hold the answer up to this many seconds (0–60) until the job is
    /// terminal, sent as `X-Jobd-Wait`. Only sent when set; Huawei Cloud's endpoints ignore it.
    pub wait_seconds: Option<u32>,
}

impl ListJobRequest {
    pub fn new(job_id: impl Into<String>) -> Self {
        ListJobRequest { job_id: job_id.into(), wait_seconds: None }
    }

    /// See [`ListJobRequest::wait_seconds`](struct.ListJobRequest.html#structfield.wait_seconds).
    pub fn wait_seconds(mut self, seconds: u32) -> Self {
        self.wait_seconds = Some(seconds);
        self
    }
}

/// ListJob's answer: `{"data": {...}}`, with `error_code` and `error_msg` for a failed job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListJobResponse {
    #[serde(default, deserialize_with = "null_as_default")]
    pub data: GetCreateFirewallJobResponseData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
}

/// The job in a [`ListJobResponse`] (the official SDK's name for it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetCreateFirewallJobResponseData {
    #[serde(default, deserialize_with = "null_as_default")]
    pub id: String,
    /// `Running`, `Success` or `Failed`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    /// `yyyy-mm-ddThh:mm:ssZ` (an epoch-milliseconds number, should an endpoint send one, is kept
    /// as its digits).
    #[serde(default, deserialize_with = "string_or_number")]
    pub begin_time: Option<String>,
    /// `null` until the job ends.
    #[serde(default, deserialize_with = "string_or_number")]
    pub end_time: Option<String>,
}

impl ListJobResponse {
    /// `Success` or `Failed`: the job will not change again.
    pub fn is_terminal(&self) -> bool {
        matches!(self.data.status.as_str(), "Success" | "Failed")
    }

    pub fn is_success(&self) -> bool {
        self.data.status == "Success"
    }
}

impl ApiRequest for ListJobRequest {
    type Response = ListJobResponse;

    fn to_call(&self, project_id: &str) -> Result<Call> {
        dialect_get(&["v3", project_id, "jobs", &self.job_id], project_id, self.wait_seconds)
    }
}

/// Cloud Firewall's job API for one project, on the endpoint of its [`Client`].
#[derive(Debug, Clone)]
pub struct CfwClient {
    client: Client,
    project_id: String,
}

impl CfwClient {
    /// CFW calls for `project_id` through `client` (jobd, or `https://cfw.{region}.myhuaweicloud.com`).
    pub fn new(client: Client, project_id: impl Into<String>) -> Self {
        CfwClient { client, project_id: project_id.into() }
    }

    /// `ListJob`: the status of a CFW job.
    pub async fn list_job(&self, request: &ListJobRequest) -> Result<ListJobResponse> {
        self.client.call(&self.project_id, request).await
    }
}

impl ProjectClient {
    /// Cloud Firewall's job API for this project, on this client's endpoint.
    pub fn cfw(&self) -> CfwClient {
        CfwClient::new(self.client.clone(), self.project_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_request_is_the_sdks() {
        let call = ListJobRequest::new("a b/c").to_call("p1").unwrap();
        assert_eq!(call.path(), "/v3/p1/jobs/a%20b%2Fc");
        assert!(call.query.is_empty());
        let names: Vec<&str> = call.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-project-id"], "no jobd header unless asked");
        let waiting = ListJobRequest::new("j").wait_seconds(20).to_call("p1").unwrap();
        assert!(waiting.headers.iter().any(|(n, v)| n == "x-jobd-wait" && v == "20"));
    }

    #[test]
    fn answers_read_with_and_without_errors() {
        let failed: ListJobResponse = serde_json::from_value(json!({"data": {"id": "j", "status": "Failed",
            "begin_time": "2024-03-23T08:20:42Z", "end_time": 1641370501000_i64}, "error_code": "CFW.1",
            "error_msg": "broke"}))
        .unwrap();
        assert!(failed.is_terminal() && !failed.is_success());
        assert_eq!(failed.data.end_time.as_deref(), Some("1641370501000"));
        assert_eq!(failed.error_code.as_deref(), Some("CFW.1"));
        let running: ListJobResponse = serde_json::from_value(
            json!({"data": {"id": "j", "status": "Running", "begin_time": "t", "end_time": null}}),
        )
        .unwrap();
        assert!(!running.is_terminal());
        assert_eq!(
            serde_json::to_value(&running).unwrap(),
            json!({"data": {"id": "j", "status": "Running", "begin_time": "t", "end_time": null}})
        );
    }
}
