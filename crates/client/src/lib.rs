//! `jobd-client`: a Rust client for jobd — its native job API, its worker API and its watch API —
//! and for Huawei Cloud's job-status APIs (CFW ListJob, WAF ConfirmAsyncJob, ELB ShowJob and
//! ListJobs), which jobd serves wire-exact. No official Rust SDK exists for these; the models here
//! carry the official SDKs' names (`ListJobRequest`, `ConfirmAsyncJobResponse`...).
//!
//! A client proves who it is with an access key and secret key ([`Credentials`]: every request is
//! signed with `SDK-HMAC-SHA256`, the Huawei Cloud API Gateway signature, by the same `jobd-auth`
//! code the server verifies with, over exactly the bytes sent) or with an IAM token
//! ([`Auth::Token`], sent as `X-Auth-Token`). Errors are typed: [`Error::Api`] carries the HTTP
//! status, `error_code`, `error_msg`, the request id and `Retry-After`.
//!
//! # Producing and reading jobs
//!
//! ```no_run
//! use jobd_client::{Client, Credentials, JobStatus, ListJobsQuery, NewJob};
//! use serde_json::json;
//!
//! # async fn example() -> Result<(), jobd_client::Error> {
//! let client = Client::new("http://127.0.0.1:8080", Credentials::new("MY_AK", "MY_SK"))?;
//! let project = client.project("0123456789abcdef0123456789abcdef");
//!
//! let new_job = NewJob::new("cfw", "CreateFirewall").payload(json!({"name": "fw-1"}));
//! // The same client token and body return the same job, so a retry never creates a second one.
//! let created = project.create_job(&new_job, Some("create-fw-1")).await?;
//! println!("{} is {}", created.job.job_id, created.job.status);
//!
//! let job = project.get_job(&created.job.job_id).await?;
//! let running = project.list_jobs(&ListJobsQuery::default().service("cfw").status(JobStatus::Running)).await?;
//! match project.cancel_job(&job.job_id).await {
//!     Ok(job) => println!("now {}", job.status),
//!     Err(e) if e.status() == Some(409) => println!("already finished"),
//!     Err(e) => return Err(e),
//! }
//! # let _ = running;
//! # Ok(())
//! # }
//! ```
//!
//! # Working on tasks
//!
//! The worker API is low level: a worker claims tasks under a lease, heartbeats, and completes or
//! fails each attempt. `jobd-worker`'s `WorkerRuntime` does all of that for you; the calls are:
//!
//! ```no_run
//! use jobd_client::{ClaimRequest, Client, Credentials};
//! use serde_json::json;
//!
//! # async fn example() -> Result<(), jobd_client::Error> {
//! let client = Client::new("http://127.0.0.1:8080", Credentials::new("MY_AK", "MY_SK"))?;
//! let request = ClaimRequest::new("worker-1", ["cfw"]).wait_seconds(20).lease_seconds(30);
//! for task in client.claim(&request).await? {
//!     match client.heartbeat(&task, Some("half way"), None).await {
//!         Err(e) if e.is_task_gone() => continue, // cancelled, timed out or lease lost: stop
//!         other => drop(other?),
//!     }
//!     client.complete(&task, Some(&json!({"firewall_id": "fw-1"})), None).await?;
//! }
//! # Ok(())
//! # }
//! ```

//! # Huawei Cloud's APIs
//!
//! [`cfw`], [`waf`] and [`elb`] hold the three dialects. Each dialect client takes the endpoint of
//! its [`Client`], so the same code reads jobd and the real service endpoints
//! (`https://cfw.{region}.myhuaweicloud.com`, `https://waf...`, `https://elb...`). The requests are
//! the ones the official SDKs put on the wire: the same paths and query names, the query sorted,
//! `Content-Type: application/json` and `X-Project-Id` signed along with `Host` and `X-Sdk-Date`
//! (checked against the official Python SDK's signatures in this crate's tests). Nothing
//! jobd-specific is sent unless asked for: `X-Jobd-Wait` only when a request sets `wait_seconds`.
//! Only jobd is tested here; the real endpoints cannot be reached from the test machines.
//!
//! ```no_run
//! use jobd_client::elb::{ElbClient, ListJobsRequest, ShowJobRequest};
//! use jobd_client::{cfw, waf, Auth, Client};
//!
//! # async fn example() -> Result<(), jobd_client::Error> {
//! let project = "0123456789abcdef0123456789abcdef";
//! let elb = ElbClient::new(Client::new("https://elb.cn-north-4.myhuaweicloud.com", Auth::ak_sk("AK", "SK"))?, project);
//! let shown = elb.show_job(&ShowJobRequest::new("JOB_ID")).await?;
//! println!("{} {}: {} sub-jobs", shown.job.job_type, shown.job.status, shown.job.sub_jobs.len());
//! let every_running = elb.list_jobs_pages(ListJobsRequest::default().limit(100).status("RUNNING")).all_jobs().await?;
//! # let _ = every_running;
//!
//! // jobd serves all three on one endpoint; here with a token instead of a key.
//! let jobd = Client::new("http://127.0.0.1:8080", Auth::token("TOKEN"))?.project(project);
//! let cfw_job = jobd.cfw().list_job(&cfw::ListJobRequest::new("JOB_ID")).await?;
//! // jobd's X-Jobd-Wait: hold the answer (up to 30 s) until the job ends.
//! let waf_job = jobd.waf().confirm_async_job(&waf::ConfirmAsyncJobRequest::new("JOB_ID").wait_seconds(30)).await?;
//! println!("{} {}", cfw_job.data.status, waf_job.status);
//! # Ok(())
//! # }
//! ```
//!
//! # Watching and waiting
//!
//! [`Client::watch`] is a job's server-sent events as a `Stream` of whole jobs (resumed with
//! `Last-Event-ID` after a broken connection, ending after the terminal state);
//! [`Client::watch_project`] every change in a project; [`Client::get_job_after`] one long poll.
//! [`Client::wait_for`] waits for the end with whichever the server offers (events, else long
//! polls, else polling with backoff and jitter, honouring `Retry-After`), and answers the succeeded
//! job or a [`WaitError`]: `Failed` (with the job's code and message), `Cancelled`, `Timeout`, `Api`.
//!
//! ```no_run
//! use std::time::Duration;
//! use jobd_client::{Client, Credentials, WaitError};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let project = Client::new("http://127.0.0.1:8080", Credentials::new("MY_AK", "MY_SK"))?
//!     .project("0123456789abcdef0123456789abcdef");
//! match project.wait_for("JOB_ID", Duration::from_secs(300)).await {
//!     Ok(job) => println!("succeeded: {:?}", job.result),
//!     Err(WaitError::Failed { error_code, error_msg, .. }) => eprintln!("failed: {error_code}: {error_msg}"),
//!     Err(other) => eprintln!("{other}"),
//! }
//! # Ok(())
//! # }
//! ```

mod admin;
mod backoff;
pub mod cfw;
mod client;
mod dialect;
pub mod elb;
mod error;
mod lenient;
mod native;
mod sse;
pub mod waf;
mod waiter;
mod watch;
mod worker;

pub use admin::{Credential, MfaDevice, NewCredential, NewUser, Project, User};
pub use backoff::Backoff;
pub use client::{ApiRequest, Auth, Call, Client, ClientBuilder, Credentials, ProjectClient, DEFAULT_TIMEOUT};
pub use dialect::MAX_JOBD_WAIT_SECONDS;
pub use error::{DecodeError, Error, Result, TaskGone};
pub use native::{
    BatchJob, Compensation, Created, CreatedBatch, Entity, Execution, Job, JobStatus, ListJobsPage, ListJobsQuery,
    NewJob, NewSubJob, OnFailure, Phase, RetryBackoff, SimulateOutcome, SimulateSpec, UnknownStatus,
    MAX_JOBS_PER_BATCH,
};
pub use waiter::{WaitError, WaitOptions, WaitStrategy};
pub use watch::{JobWatch, ProjectEventsQuery, ProjectWatch, MAX_RECONNECTS, STREAM_IDLE_TIMEOUT};
pub use worker::{
    ClaimRequest, HeartbeatAnswer, LeaseRef, Task, TaskLease, TaskOutcome, TaskReport, MAX_REPORTS_PER_BATCH,
    MAX_TASKS_PER_CLAIM, MAX_WAIT_SECONDS,
};
