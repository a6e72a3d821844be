//! The job store: one trait in domain verbs, a conformance suite every backend must pass, the
//! embedded SQLite backend and the PostgreSQL backend.
//!
//! Architecture invariant: only this crate contains SQL. Callers speak `Job`, `JobEvent` and
//! `JobQuery`; the state machine of `jobd-core` decides every change, the store only makes it
//! durable and atomic.

mod batch;
mod codec;
mod error;
mod identity_store;
pub mod postgres;
pub mod sqlite;
mod sqlite_identity;
mod sqlite_readers;
mod sqlite_rows;
mod sqlite_writer;
mod tree_cache;

use async_trait::async_trait;
use jobd_core::{Cursor, Job, JobEvent, JobId, JobQuery, Lease, ProjectId, ServiceName, Timestamp};

/// A producer's `X-Client-Token` and a digest of its request, for idempotent creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub project_id: ProjectId,
    pub client_token: String,
    pub request_hash: String,
}

/// What `insert_job` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// The job is new.
    Created,
    /// The same token came with the same request before: this is the job it created.
    Existing(Box<Job>),
    /// The same token came with a different request.
    KeyConflict,
}

/// Which tasks a worker asks for.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub worker_id: String,
    /// Projects to take tasks from (`None`: any).
    pub project_ids: Option<Vec<ProjectId>>,
    /// Enterprise projects to take tasks from (`None`: any).
    pub enterprise_project_ids: Option<Vec<String>>,
    /// Services to take tasks of (empty: any).
    pub services: Vec<ServiceName>,
    /// Job types to take (empty: any of those services).
    pub job_types: Vec<String>,
    /// `true` for the built-in simulator (tasks with a `simulate` spec), `false` for real workers.
    pub simulated: bool,
    pub lease_seconds: u32,
    pub max_tasks: u32,
}

impl ClaimRequest {
    /// Whether a task with these fields passes the request's filters (the filters every store's
    /// claim applies).
    pub fn takes(
        &self,
        simulated: bool,
        project_id: &ProjectId,
        enterprise_project_id: &str,
        service: &ServiceName,
        job_type: &str,
    ) -> bool {
        self.simulated == simulated
            && self.project_ids.as_ref().is_none_or(|projects| projects.contains(project_id))
            && self
                .enterprise_project_ids
                .as_ref()
                .is_none_or(|enterprise_projects| enterprise_projects.iter().any(|e| e == enterprise_project_id))
            && (self.services.is_empty() || self.services.contains(service))
            && (self.job_types.is_empty() || self.job_types.iter().any(|t| t == job_type))
    }

    /// A fresh lease for a task this request claims at `now`: its own token, for `lease_seconds`.
    pub fn new_lease(&self, now: Timestamp) -> Lease {
        Lease {
            worker_id: self.worker_id.clone(),
            token: uuid::Uuid::new_v4().simple().to_string(),
            expires_at: now + chrono::Duration::seconds(i64::from(self.lease_seconds)),
        }
    }

    /// Whether it takes `task`.
    pub fn takes_task(&self, task: &Job) -> bool {
        self.takes(
            task.simulate.is_some(),
            &task.project_id,
            &task.enterprise_project_id,
            &task.service,
            task.job_type.as_str(),
        )
    }
}

/// A task handed to a worker: the job tree as it now stands and the task within it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTask {
    /// Shared: the SQLite writer keeps the tree it just wrote for the task's report.
    pub tree: std::sync::Arc<Job>,
    pub task_id: JobId,
}

impl ClaimedTask {
    pub fn task(&self) -> &Job {
        self.tree.find(&self.task_id).expect("a claimed task is in its tree")
    }
}

/// The most items one batch verb (`claim_tasks`, `apply_task_events`, `insert_jobs`) takes.
pub const MAX_BATCH: usize = 1000;

/// Which jobs a worker may act on: its projects and enterprise projects (`None`: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskScope {
    pub project_ids: Option<Vec<ProjectId>>,
    pub enterprise_project_ids: Option<Vec<String>>,
}

impl TaskScope {
    /// Whether `job` lies within the scope.
    pub fn allows(&self, job: &Job) -> bool {
        self.project_ids.as_ref().is_none_or(|ids| ids.contains(&job.project_id))
            && self.enterprise_project_ids.as_ref().is_none_or(|ids| ids.contains(&job.enterprise_project_id))
    }
}

/// A worker's event on a task it names by id alone.
#[derive(Debug, Clone)]
pub struct TaskEvent {
    pub job_id: JobId,
    pub event: JobEvent,
}

/// A new job tree for `insert_jobs`, with the idempotency key it came with.
#[derive(Debug, Clone)]
pub struct NewTree {
    pub job: Job,
    pub idempotency: Option<IdempotencyKey>,
}

/// A job tree another node changed (its top-level job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeNotice {
    pub project_id: ProjectId,
    pub job_id: JobId,
}

/// The queue of one service and job type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStat {
    pub service: String,
    pub job_type: String,
    pub depth: u64,
    pub oldest_due_at: Timestamp,
}

/// The open tasks of one service, job type and enterprise project of a project, now: what the
/// console's overview shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTasks {
    pub service: String,
    pub job_type: String,
    pub enterprise_project_id: String,
    /// Tasks whose turn has come, due, with no live lease.
    pub waiting: u64,
    /// Tasks a worker holds a live lease on.
    pub running: u64,
    /// When the longest-waiting of them became due.
    pub oldest_waiting_due_at: Option<Timestamp>,
}

/// Top-level jobs of a project that ended in one minute with one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedJobs {
    pub service: String,
    pub job_type: String,
    pub enterprise_project_id: String,
    /// The start of the minute (UTC) they ended in.
    pub minute: Timestamp,
    pub status: jobd_core::JobStatus,
    pub count: u64,
}

/// A task a worker holds a live lease on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    pub job_id: JobId,
    pub parent_job_id: Option<JobId>,
    pub enterprise_project_id: String,
    pub service: String,
    pub job_type: String,
    pub worker_id: String,
    pub attempt: u32,
    /// When the task first started.
    pub started_at: Option<Timestamp>,
    /// The task's last change: the claim, or the holder's last heartbeat or progress.
    pub updated_at: Timestamp,
    pub lease_expires_at: Timestamp,
}

/// A job somewhere in a project: what maintenance duties act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub project_id: ProjectId,
    pub job_id: JobId,
}

pub use error::{Result, StoreError};
pub use identity_store::IdentityStore;
pub use postgres::{PgOptions, PgStore};
pub use sqlite::SqliteStore;

/// Everything a backend stores: jobs and identities.
pub trait Store: JobStore + IdentityStore {}

impl<T: JobStore + IdentityStore> Store for T {}

/// Durable storage of job trees. Every method that returns `Ok` has made its write durable.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores a new job tree (a job and its sub-jobs), remembering the idempotency key if given,
    /// in one transaction. Fails with `Conflict` if the job id exists.
    async fn insert_job(&self, job: &Job, idempotency: Option<&IdempotencyKey>) -> Result<Inserted>;

    /// Stores up to [`MAX_BATCH`] new job trees in one transaction, all or none, each with its
    /// idempotency key if given (a key the batch uses twice names the job of its first use). If
    /// any key was used before with a different request, nothing is stored and the answer is
    /// `KeyConflict { index }` of the first such item; a job id that exists is a `Conflict`.
    /// Answers, in order, what became of each item.
    async fn insert_jobs(&self, trees: &[NewTree]) -> Result<Vec<Inserted>>;

    /// A job of this project: a parent with its sub-jobs in order, or a sub-job alone.
    async fn get_job(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Job>>;

    /// `get_job`, shared: a store that keeps recently read trees answers them without a copy
    /// (the status-read path).
    async fn get_job_shared(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<std::sync::Arc<Job>>> {
        Ok(self.get_job(project_id, job_id).await?.map(std::sync::Arc::new))
    }

    /// Top-level jobs matching the query, newest first, each with its sub-jobs.
    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>>;

    /// The project a job (or sub-job) belongs to: workers name tasks by job id alone.
    async fn project_of(&self, job_id: &JobId) -> Result<Option<ProjectId>>;

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

    /// Applies up to [`MAX_BATCH`] worker events, each to the task it names (at most one event per
    /// task), in one transaction: per event, the whole tree after it, or why it was refused
    /// (`NotFound` for a task outside `scope`, `Transition` for a refused event). A refused event
    /// changes nothing and never fails the others; a failing store fails the whole call. (On
    /// PostgreSQL, events on claims the node kept in `task_queue` are written first by a statement
    /// of their own; should the rest then fail, those stay answered and each of the others is
    /// answered `Unavailable`.)
    async fn apply_task_events(
        &self,
        events: &[TaskEvent],
        scope: &TaskScope,
        now: Timestamp,
    ) -> Result<Vec<Result<Job>>>;

    /// Claims up to `max_tasks` runnable tasks, highest priority first, then longest waiting:
    /// each gets a new attempt under a fresh lease, atomically (no task is ever held twice).
    async fn claim_tasks(&self, request: &ClaimRequest, now: Timestamp) -> Result<Vec<ClaimedTask>>;

    /// Claims `offered` for `request` without looking for candidates: a lone job without a lease,
    /// as this node has just committed it (and woke a waiting claim for). `None` when it cannot
    /// be taken so (the request does not take it, it was written or claimed since, or the store
    /// claims only by looking): the caller then claims as usual. Taking it ahead of tasks waiting
    /// longer is fair enough: a claim waits only when it found none.
    async fn claim_offered(
        &self,
        request: &ClaimRequest,
        offered: &Job,
        now: Timestamp,
    ) -> Result<Option<ClaimedTask>> {
        let _ = (request, offered, now);
        Ok(None)
    }

    /// The earliest time a task this request could take becomes due, if any is waiting.
    async fn next_due_at(&self, request: &ClaimRequest) -> Result<Option<Timestamp>>;

    /// Open jobs past their timeout.
    async fn list_timed_out(&self, now: Timestamp, limit: u32) -> Result<Vec<JobRef>>;

    /// Open tasks whose last attempt's lease has expired.
    async fn list_expired_last_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<JobRef>>;

    /// Deletes up to `limit` top-level jobs (with their sub-jobs) that ended before `cutoff`;
    /// answers how many top-level jobs went.
    async fn prune_finished_jobs(&self, cutoff: Timestamp, limit: u32) -> Result<u64>;

    /// Deletes the idempotency keys (`X-Client-Token`s) made before `cutoff`; answers how many.
    async fn prune_idempotency_keys(&self, cutoff: Timestamp) -> Result<u64>;

    /// Clears what claims and completions left dead on the claim path, once enough has piled up
    /// that claims would walk over it; answers how many dead rows there were (0: nothing to do).
    /// PostgreSQL: `VACUUM` of `task_queue`, whose rows every claim rewrites and every completion
    /// deletes (autovacuum wakes only once a minute). SQLite deletes index entries at once: 0.
    async fn tidy_claim_path(&self) -> Result<u64>;

    /// Tasks waiting for a worker now (runnable, due, no live lease), by service and job type, with
    /// the earliest time one of them became due.
    async fn queue_stats(&self, now: Timestamp) -> Result<Vec<QueueStat>>;

    /// The project's open tasks per service, job type and enterprise project (the console's
    /// overview).
    async fn open_tasks(&self, project_id: &ProjectId, now: Timestamp) -> Result<Vec<OpenTasks>>;

    /// The project's top-level jobs that ended at or after `since`, counted per service, job type,
    /// enterprise project, minute and status.
    async fn finished_jobs(&self, project_id: &ProjectId, since: Timestamp) -> Result<Vec<FinishedJobs>>;

    /// Up to `limit` tasks of the project a worker holds a live lease on, by worker id, then by
    /// lease expiry.
    async fn held_leases(&self, project_id: &ProjectId, now: Timestamp, limit: u32) -> Result<Vec<HeldLease>>;

    /// Whether this node leads the background duties this round: exactly one node of those sharing
    /// the store does at a time, and a dead leader is replaced (SQLite: always this one).
    async fn lead_maintenance(&self) -> Result<bool>;

    /// Changes other jobd nodes sharing this store commit (`None`: the store has no other nodes).
    fn other_nodes_changes(&self) -> Option<tokio::sync::broadcast::Receiver<ChangeNotice>>;

    /// Whether the store answers (for readiness).
    async fn ping(&self) -> Result<()>;
}
