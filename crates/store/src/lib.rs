//! The job store: one trait in domain verbs, a conformance suite every backend must pass, and the
//! embedded SQLite backend.
//!
//! Architecture invariant: only this crate contains SQL. Callers speak `Job`, `JobEvent` and
//! `JobQuery`; the state machine of `jobd-core` decides every change, the store only makes it
//! durable and atomic.

pub mod conformance;
mod error;
pub mod sqlite;

use async_trait::async_trait;
use jobd_core::{Cursor, Job, JobEvent, JobId, JobQuery, ProjectId, Timestamp};

pub use error::{Result, StoreError};
pub use sqlite::SqliteStore;

/// Durable storage of job trees. Every method that returns `Ok` has made its write durable.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores a new job tree (a job and its sub-jobs). Fails with `Conflict` if the id exists.
    async fn insert_job(&self, job: &Job) -> Result<()>;

    /// A job of this project: a parent with its sub-jobs in order, or a sub-job alone.
    async fn get_job(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Job>>;

    /// Top-level jobs matching the query, newest first, each with its sub-jobs.
    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>>;

    /// The position of a top-level job in the newest-first order, for keyset pagination.
    async fn cursor_of(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Cursor>>;

    /// Applies an event to a job (or sub-job) atomically through the state machine and answers
    /// the whole tree as it now stands.
    async fn apply_event(
        &self,
        project_id: &ProjectId,
        job_id: &JobId,
        event: &JobEvent,
        now: Timestamp,
    ) -> Result<Job>;

    /// Open top-level jobs with work for the built-in simulator, oldest first, after the job
    /// `after` (the last one of the previous page).
    async fn list_open_simulated_jobs(&self, after: Option<&JobId>, limit: u32) -> Result<Vec<Job>>;

    /// Whether the store answers (for readiness).
    async fn ping(&self) -> Result<()>;
}
