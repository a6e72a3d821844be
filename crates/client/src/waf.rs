//! Web Application Firewall's ConfirmAsyncJob, `GET /v1/{project_id}/waf/async-job/{job_id}
//! ?enterpriseProjectId=`, with the models of the official SDK (`huaweicloudsdkwaf`):
//! [`ConfirmAsyncJobRequest`] → [`ConfirmAsyncJobResponse`].
//!
//! The request is the one the official SDKs send (see "Huawei Cloud's APIs" in the crate docs), so
//! [`WafClient`] reads jobd and `https://waf.{region}.myhuaweicloud.com` alike.

use serde::{Deserialize, Serialize};

use crate::client::{ApiRequest, Call, Client, ProjectClient};
use crate::dialect::dialect_get;
use crate::error::Result;
use crate::lenient::null_as_default;

/// ConfirmAsyncJob's request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfirmAsyncJobRequest {
    pub job_id: String,
    /// The `enterpriseProjectId` query: `0` is the default enterprise project, `all_granted_eps`
    /// every one the caller is granted; absent is the default one.
    pub enterprise_project_id: Option<String>,
    /// jobd's extension: hold the answer up to this many seconds (0–60) until the job is
    /// terminal, sent as `X-Jobd-Wait`. Only sent when set; Huawei Cloud's endpoints ignore it.
    pub wait_seconds: Option<u32>,
}

impl ConfirmAsyncJobRequest {
    pub fn new(job_id: impl Into<String>) -> Self {
        ConfirmAsyncJobRequest { job_id: job_id.into(), ..ConfirmAsyncJobRequest::default() }
    }

    pub fn enterprise_project_id(mut self, enterprise_project_id: impl Into<String>) -> Self {
        self.enterprise_project_id = Some(enterprise_project_id.into());
        self
    }

    /// See [`ConfirmAsyncJobRequest::wait_seconds`](struct.ConfirmAsyncJobRequest.html#structfield.wait_seconds).
    pub fn wait_seconds(mut self, seconds: u32) -> Self {
        self.wait_seconds = Some(seconds);
        self
    }
}

/// ConfirmAsyncJob's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmAsyncJobResponse {
    /// `RUNNING`, `SUCCESS` or `FAILED`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    /// The latest progress line ("Checking domain name configuration"); for a failed job, why.
    #[serde(default, deserialize_with = "null_as_default")]
    pub message: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub job_id: String,
}

impl ConfirmAsyncJobResponse {
    /// `SUCCESS` or `FAILED`: the job will not change again.
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "SUCCESS" | "FAILED")
    }

    pub fn is_success(&self) -> bool {
        self.status == "SUCCESS"
    }
}

impl ApiRequest for ConfirmAsyncJobRequest {
    type Response = ConfirmAsyncJobResponse;

    fn to_call(&self, project_id: &str) -> Result<Call> {
        let mut call =
            dialect_get(&["v1", project_id, "waf", "async-job", &self.job_id], project_id, self.wait_seconds)?;
        if let Some(enterprise_project_id) = &self.enterprise_project_id {
            call = call.query("enterpriseProjectId", enterprise_project_id.as_str());
        }
        Ok(call.sort_query())
    }
}

/// Web Application Firewall's job API for one project, on the endpoint of its [`Client`].
#[derive(Debug, Clone)]
pub struct WafClient {
    client: Client,
    project_id: String,
}

impl WafClient {
    /// WAF calls for `project_id` through `client` (jobd, or `https://waf.{region}.myhuaweicloud.com`).
    pub fn new(client: Client, project_id: impl Into<String>) -> Self {
        WafClient { client, project_id: project_id.into() }
    }

    /// `ConfirmAsyncJob`: the status of a WAF asynchronous job.
    pub async fn confirm_async_job(&self, request: &ConfirmAsyncJobRequest) -> Result<ConfirmAsyncJobResponse> {
        self.client.call(&self.project_id, request).await
    }
}

impl ProjectClient {
    /// Web Application Firewall's job API for this project, on this client's endpoint.
    pub fn waf(&self) -> WafClient {
        WafClient::new(self.client.clone(), self.project_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_request_is_the_sdks() {
        let call = ConfirmAsyncJobRequest::new("j1").enterprise_project_id("0").to_call("p1").unwrap();
        assert_eq!(call.path(), "/v1/p1/waf/async-job/j1");
        assert_eq!(call.query, [("enterpriseProjectId".to_owned(), "0".to_owned())]);
        let bare = ConfirmAsyncJobRequest::new("j1").to_call("p1").unwrap();
        assert!(bare.query.is_empty());
    }

    #[test]
    fn answers_read() {
        let answer: ConfirmAsyncJobResponse =
            serde_json::from_value(json!({"status": "FAILED", "message": null, "job_id": "j"})).unwrap();
        assert!(answer.is_terminal() && !answer.is_success());
        assert_eq!(answer.message, "");
    }
}
