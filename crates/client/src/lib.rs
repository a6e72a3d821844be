//! `jobd-client`: a Rust client for jobd's native job API and its worker API.
//!
//! Every call is signed with `SDK-HMAC-SHA256` (the Huawei Cloud API Gateway signature, made by the
//! same `jobd-auth` code the server verifies with) over exactly the bytes that are sent. Errors are
//! typed: [`Error::Api`] carries the HTTP status, `error_code`, `error_msg` and the request id.
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

mod admin;
mod client;
mod error;
mod native;
mod worker;

pub use admin::{Credential, NewCredential, NewUser, Project, User};
pub use client::{Client, ClientBuilder, Credentials, ProjectClient, DEFAULT_TIMEOUT};
pub use error::{DecodeError, Error, Result, TaskGone};
pub use native::{
    Compensation, Created, Entity, Execution, Job, JobStatus, ListJobsPage, ListJobsQuery, NewJob, NewSubJob,
    OnFailure, Phase, RetryBackoff, SimulateOutcome, SimulateSpec, UnknownStatus,
};
pub use worker::{ClaimRequest, HeartbeatAnswer, LeaseRef, Task, TaskLease, MAX_TASKS_PER_CLAIM, MAX_WAIT_SECONDS};
