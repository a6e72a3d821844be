//! The job service: every reader and writer of jobs goes through `JobService`, never the store.
//!
//! It stamps time from its clock, turns store errors into service errors, and announces every
//! change on a broadcast channel (the simulator listens today; watchers and workers later).

use std::sync::Arc;

use jobd_core::{
    Clock, Cursor, Job, JobEvent, JobId, JobQuery, NewJob, ProjectId, Timestamp, TransitionError, ValidationError,
};
use jobd_store::{JobStore, StoreError};
use tokio::sync::broadcast;

/// The real clock, truncated to milliseconds like everything the store keeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        jobd_core::clock::truncate_to_millis(chrono::Utc::now())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("job {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Conflict(TransitionError),
    #[error("the job store failed: {0}")]
    Store(#[source] StoreError),
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => ServiceError::NotFound(id),
            StoreError::Transition(e) => ServiceError::Conflict(e),
            other => {
                tracing::error!(error = %other, "job store error");
                ServiceError::Store(other)
            }
        }
    }
}

/// A job tree as it stood right after a change.
#[derive(Debug, Clone)]
pub struct JobChange {
    pub job: Arc<Job>,
    pub created: bool,
}

#[derive(Clone)]
pub struct JobService {
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    changes: broadcast::Sender<JobChange>,
}

impl JobService {
    pub fn new(store: Arc<dyn JobStore>, clock: Arc<dyn Clock>) -> Self {
        let (changes, _) = broadcast::channel(4096);
        JobService { store, clock, changes }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Every change from now on. A receiver that falls behind is told how many it missed.
    pub fn subscribe(&self) -> broadcast::Receiver<JobChange> {
        self.changes.subscribe()
    }

    fn announce(&self, job: &Job, created: bool) {
        // No receiver is fine: nobody is listening yet.
        let _ = self.changes.send(JobChange { job: Arc::new(job.clone()), created });
    }

    pub async fn create(&self, new_job: NewJob) -> Result<Job> {
        let job = new_job.into_job(self.clock.now())?;
        self.store.insert_job(&job).await?;
        tracing::info!(job_id = %job.job_id, service = %job.service, job_type = %job.job_type, "job created");
        self.announce(&job, true);
        Ok(job)
    }

    pub async fn get(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Job> {
        self.store.get_job(project_id, job_id).await?.ok_or_else(|| ServiceError::NotFound(job_id.to_string()))
    }

    pub async fn list(&self, query: &JobQuery) -> Result<Vec<Job>> {
        Ok(self.store.list_jobs(query).await?)
    }

    /// The pagination cursor of a top-level job, `None` if the project has no such job.
    pub async fn cursor_of(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Cursor>> {
        Ok(self.store.cursor_of(project_id, job_id).await?)
    }

    pub async fn cancel(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Job> {
        self.record(project_id, job_id, JobEvent::Cancel).await
    }

    /// Applies an event to a job or sub-job and answers the whole tree.
    pub async fn record(&self, project_id: &ProjectId, job_id: &JobId, event: JobEvent) -> Result<Job> {
        let tree = self.store.apply_event(project_id, job_id, &event, self.clock.now()).await?;
        tracing::debug!(job_id = %job_id, status = %tree.status, version = tree.version, "job changed");
        self.announce(&tree, false);
        Ok(tree)
    }

    pub async fn open_simulated_jobs(&self, after: Option<&JobId>, limit: u32) -> Result<Vec<Job>> {
        Ok(self.store.list_open_simulated_jobs(after, limit).await?)
    }

    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }
}
