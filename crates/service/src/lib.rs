//! The job service: every reader and writer of jobs goes through `JobService`, never the store.
//!
//! It stamps time from its clock, turns store errors into service errors, announces every change
//! on a broadcast channel, and wakes long-polling claimers when work may have arrived. Background
//! duties (timeouts, lease rescue, retention) live in `maintenance`; the built-in simulator, an
//! in-process worker on the same claim path, in `simulator`.

pub mod abuse;
pub mod identity;
pub mod maintenance;
pub mod metric_labels;
pub mod simulator;
mod waiting_claims;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jobd_core::{
    Clock, Cursor, Job, JobEvent, JobId, JobQuery, JobType, NewJob, ProjectId, ServiceName, Timestamp, TransitionError,
    ValidationError,
};
pub use jobd_store::{ClaimRequest, ClaimedTask, TaskEvent, TaskScope, MAX_BATCH};
use jobd_store::{IdempotencyKey, Inserted, JobStore, NewTree, StoreError};
pub use simulator::Simulator;
use tokio::sync::{broadcast, Notify};
pub use watch::TreeWatch;

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
    #[error("the client token was used before with a different request")]
    IdempotencyConflict,
    /// Item `index` of a batch create is not a valid job.
    #[error("jobs[{index}]: {source}")]
    InvalidItem { index: usize, source: ValidationError },
    /// Item `index` of a batch create carries a client token used before with another request.
    #[error("jobs[{index}].client_token was used before with a different request")]
    ItemIdempotencyConflict { index: usize },
    /// A batch holds no item or more than `max`.
    #[error("a batch holds 1 to {max} items, not {len}")]
    BatchSize { len: usize, max: usize },
    #[error("the job store failed: {0}")]
    Store(#[source] StoreError),
}

impl ServiceError {
    /// Whether the store is down or restarting (a 503 to retry), not broken.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ServiceError::Store(e) if e.is_unavailable())
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => ServiceError::NotFound(id),
            StoreError::Transition(e) => ServiceError::Conflict(e),
            StoreError::KeyConflict { index } => ServiceError::ItemIdempotencyConflict { index },
            StoreError::BatchSize { len, max } => ServiceError::BatchSize { len, max },
            other if other.is_unavailable() => {
                // Expected while the database restarts or fails over; the caller is told to retry.
                tracing::warn!(error = %other, "job store unavailable");
                ServiceError::Store(other)
            }
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

/// A producer's `X-Client-Token` with a digest of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientToken {
    pub token: String,
    pub request_hash: String,
}

/// The answer to a create: the job, and whether it already existed (an idempotent replay).
#[derive(Debug, Clone)]
pub struct Created {
    pub job: Job,
    pub replayed: bool,
}

/// Times one store operation into `jobd_store_operation_duration_seconds{operation}`.
async fn timed<T>(operation: &'static str, future: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let output = future.await;
    let seconds = started.elapsed().as_secs_f64();
    let histogram = || metrics::histogram!("jobd_store_operation_duration_seconds", "operation" => operation);
    if METRICS_RECORDER_INSTALLED.load(std::sync::atomic::Ordering::Acquire) {
        STORE_TIMERS.with_borrow_mut(|timers| timers.entry(operation).or_insert_with(histogram).record(seconds));
    } else {
        histogram().record(seconds);
    }
    output
}

static METRICS_RECORDER_INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

thread_local! {
    /// Each store operation's histogram handle, kept per thread once the recorder is installed:
    /// registering a labelled metric builds, hashes and looks up its key on every call.
    static STORE_TIMERS: std::cell::RefCell<HashMap<&'static str, metrics::Histogram>> =
        std::cell::RefCell::new(HashMap::new());
}

/// Says the process's metrics recorder is installed: from then on `timed` keeps its handles (a
/// handle taken before would record nowhere, for good).
pub fn metrics_recorder_installed() {
    METRICS_RECORDER_INSTALLED.store(true, std::sync::atomic::Ordering::Release);
}

/// What applied events did (finished jobs, retries, timeouts, lease expiries), gathered over a
/// batch and added to the counters once per label set: a label set costs a registry lookup, and
/// a batch of a thousand reports has a handful of them.
#[derive(Default)]
struct OutcomeTally<'a> {
    finished: HashMap<(&'a ServiceName, &'a JobType, &'static str), u64>,
    retries: HashMap<&'a ServiceName, u64>,
    timeouts: HashMap<&'a ServiceName, u64>,
    expiries: HashMap<&'a ServiceName, u64>,
}

impl<'a> OutcomeTally<'a> {
    fn add(&mut self, tree: &'a Job, job_id: &JobId, event: &JobEvent, now: Timestamp) {
        if tree.is_terminal() && tree.ended_at == Some(now) {
            *self.finished.entry((&tree.service, &tree.job_type, tree.status.as_str())).or_default() += 1;
        }
        let counts = match event {
            JobEvent::FailAttempt { .. } if tree.find(job_id).is_some_and(|task| !task.is_terminal()) => {
                &mut self.retries
            }
            JobEvent::TimeOut => &mut self.timeouts,
            JobEvent::ExpireLease => &mut self.expiries,
            _ => return,
        };
        *counts.entry(&tree.service).or_default() += 1;
    }

    fn record(self) {
        for ((service, job_type, status), n) in self.finished {
            metrics::counter!("jobd_jobs_finished_total", "service" => metric_labels::service(service),
                "job_type" => metric_labels::job_type(job_type), "status" => status)
            .increment(n);
        }
        for (name, counts) in [
            ("jobd_task_retries_total", self.retries),
            ("jobd_job_timeouts_total", self.timeouts),
            ("jobd_lease_expiries_total", self.expiries),
        ] {
            for (service, n) in counts {
                metrics::counter!(name, "service" => metric_labels::service(service)).increment(n);
            }
        }
    }
}

/// The longest a claim may wait for work.
pub const MAX_CLAIM_WAIT: Duration = Duration::from_secs(60);

/// Cheap to clone (one reference count): every request clones it with the app state.
#[derive(Clone)]
pub struct JobService {
    inner: Arc<JobServiceState>,
}

impl std::ops::Deref for JobService {
    type Target = JobServiceState;
    fn deref(&self) -> &JobServiceState {
        &self.inner
    }
}

#[derive(Clone)]
pub struct JobServiceState {
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    changes: broadcast::Sender<JobChange>,
    /// Wakes every waiting claim (a change whose tasks this node cannot see, a lease moved).
    work_may_be_available: Arc<Notify>,
    /// Wakes the waiting claims that would take the tasks a change offers.
    waiting_claims: Arc<waiting_claims::WaitingClaims>,
    watchers: Arc<watch::Watchers>,
    shutdown: Arc<tokio::sync::watch::Sender<bool>>,
    /// With a shared store, changes made by other nodes are not announced here: waits re-read the
    /// store at least this often.
    poll_fallback: Option<Duration>,
}

/// The longest one long poll may wait.
pub const MAX_WATCH_WAIT: Duration = Duration::from_secs(60);

/// How long `/readyz` waits for the store to answer before it reports not ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

impl JobService {
    pub fn new(store: Arc<dyn JobStore>, clock: Arc<dyn Clock>) -> Self {
        let (changes, _) = broadcast::channel(4096);
        let state = JobServiceState {
            store,
            clock,
            changes,
            work_may_be_available: Arc::new(Notify::new()),
            waiting_claims: Arc::default(),
            watchers: Arc::new(watch::Watchers::default()),
            shutdown: Arc::new(tokio::sync::watch::channel(false).0),
            poll_fallback: None,
        };
        JobService { inner: Arc::new(state) }
    }

    /// For a store other jobd nodes share: long polls and claim waits also re-read the store every
    /// `interval`, so changes made elsewhere are seen within it.
    pub fn with_poll_fallback(mut self, interval: Duration) -> Self {
        Arc::make_mut(&mut self.inner).poll_fallback = Some(interval);
        self
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Every change from now on. A receiver that falls behind is told how many it missed.
    pub fn subscribe(&self) -> broadcast::Receiver<JobChange> {
        self.changes.subscribe()
    }

    /// Every waiting claim looks again: for a change whose tasks this node does not know (another
    /// node's), one that moves a lease's expiry (a heartbeat: a waiting claim's timer may now be
    /// late), or a task not due yet (every timer may need to move). Called after announcements.
    fn wake_claimers(&self) {
        self.work_may_be_available.notify_waiters();
    }

    /// Changes that may leave work: for each task they offer (`Job::offered_tasks`), the claim
    /// waiting longest that would take it looks again, and the others stay asleep; a task not due
    /// yet has every waiting claim look again (and set its timer).
    fn wake_claimers_for<'j>(&self, trees: impl IntoIterator<Item = &'j Job>) {
        if self.waiting_claims.wake_for(trees, self.clock.now()) == waiting_claims::WakeFor::Everyone {
            self.wake_claimers();
        }
    }

    /// Hands a changed tree to its watchers and the change feed.
    fn announce(&self, job: &Job, created: bool) {
        if !self.watchers.is_news(job) {
            return; // a newer version of this tree was announced already
        }
        let tree = Arc::new(job.clone());
        self.watchers.publish(&tree);
        // No receiver is fine: nobody is listening yet.
        let _ = self.changes.send(JobChange { job: tree, created });
    }

    /// Tells every long poll, claim wait and stream to end now (the server is stopping).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once `begin_shutdown` was called.
    pub async fn shutting_down(&self) {
        let mut receiver = self.shutdown.subscribe();
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }

    /// With a store other nodes share: announces their changes here too, as they commit (the
    /// store's `LISTEN/NOTIFY`), so claims, long polls and streams on this node see them at once.
    pub fn follow_other_nodes(&self) {
        let Some(mut notices) = self.store.other_nodes_changes() else { return };
        let service = self.clone();
        tokio::spawn(async move {
            loop {
                match notices.recv().await {
                    Ok(notice) => {
                        if let Ok(Some(tree)) = service.store.get_job(&notice.project_id, &notice.job_id).await {
                            service.announce(&tree, false);
                        }
                        service.wake_claimers();
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => service.wake_claimers(),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Subscribes to every later change of the tree a job belongs to (by its top-level id).
    pub fn watch_tree(&self, root_id: &JobId) -> TreeWatch {
        self.watchers.subscribe(root_id)
    }

    /// How many job trees have watchers now.
    pub fn watched_trees(&self) -> usize {
        self.watchers.watched_trees()
    }

    /// Answers the job as soon as `done` holds for it (at once if it already does), or as it
    /// stands when `wait` (at most a minute) runs out. Works for sub-jobs too.
    pub async fn wait_for(
        &self,
        project_id: &ProjectId,
        job_id: &JobId,
        wait: Duration,
        done: impl Fn(&Job) -> bool,
    ) -> Result<Arc<Job>> {
        let job = self.get(project_id, job_id).await?;
        if done(&job) || wait.is_zero() {
            return Ok(job);
        }
        let root_id = job.parent_job_id.clone().unwrap_or_else(|| job.job_id.clone());
        let mut watch = self.watch_tree(&root_id);
        // A change between the read above and the subscription: read once more.
        let job = self.get(project_id, job_id).await?;
        if done(&job) {
            return Ok(job);
        }
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WATCH_WAIT);
        loop {
            let wake = match self.poll_fallback {
                Some(interval) => deadline.min(tokio::time::Instant::now() + interval),
                None => deadline,
            };
            let received = tokio::select! {
                received = tokio::time::timeout_at(wake, watch.receiver.recv()) => received,
                () = self.shutting_down() => return self.get(project_id, job_id).await,
            };
            if received.is_err() && wake < deadline {
                // The fallback poll: another node may have changed the job.
                let job = self.get(project_id, job_id).await?;
                if done(&job) {
                    return Ok(job);
                }
                continue;
            }
            let current = match received {
                Err(_elapsed) => return self.get(project_id, job_id).await,
                Ok(Ok(tree)) => tree.find(job_id).cloned().map(Arc::new),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => Some(self.get(project_id, job_id).await?),
                Ok(Err(broadcast::error::RecvError::Closed)) => return self.get(project_id, job_id).await,
            };
            if let Some(job) = current.filter(|job| done(job)) {
                return Ok(job);
            }
        }
    }

    pub async fn create(&self, new_job: NewJob, client_token: Option<ClientToken>) -> Result<Created> {
        let job = new_job.into_job(self.clock.now())?;
        let key = client_token.map(|token| IdempotencyKey {
            project_id: job.project_id.clone(),
            client_token: token.token,
            request_hash: token.request_hash,
        });
        match timed("insert_job", self.store.insert_job(&job, key.as_ref())).await? {
            Inserted::Created => {
                self.count_created(&job);
                tracing::info!(job_id = %job.job_id, service = %job.service, job_type = %job.job_type, "job created");
                self.announce(&job, true);
                self.wake_claimers_for([&job]);
                Ok(Created { job, replayed: false })
            }
            Inserted::Existing(existing) => Ok(Created { job: *existing, replayed: true }),
            Inserted::KeyConflict => Err(ServiceError::IdempotencyConflict),
        }
    }

    /// Creates up to [`MAX_BATCH`] jobs in one transaction, all or none, each with its own client
    /// token if given; answers them in order (a token seen before answers its job, replayed).
    pub async fn create_many(&self, items: Vec<(NewJob, Option<ClientToken>)>) -> Result<Vec<Created>> {
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(ServiceError::BatchSize { len: items.len(), max: MAX_BATCH });
        }
        let now = self.clock.now();
        let trees = items
            .into_iter()
            .enumerate()
            .map(|(index, (new_job, client_token))| {
                let job = new_job.into_job(now).map_err(|source| ServiceError::InvalidItem { index, source })?;
                let idempotency = client_token.map(|token| IdempotencyKey {
                    project_id: job.project_id.clone(),
                    client_token: token.token,
                    request_hash: token.request_hash,
                });
                Ok(NewTree { job, idempotency })
            })
            .collect::<Result<Vec<_>>>()?;
        let answers = timed("insert_jobs", self.store.insert_jobs(&trees)).await?;
        let mut created = Vec::with_capacity(trees.len());
        for (tree, answer) in trees.into_iter().zip(answers) {
            created.push(match answer {
                Inserted::Created => {
                    self.count_created(&tree.job);
                    self.announce(&tree.job, true);
                    Created { job: tree.job, replayed: false }
                }
                Inserted::Existing(existing) => Created { job: *existing, replayed: true },
                // The store fails the whole batch on a conflicting key; never answered per item.
                Inserted::KeyConflict => return Err(ServiceError::IdempotencyConflict),
            });
        }
        self.wake_claimers_for(created.iter().filter(|c| !c.replayed).map(|c| &c.job));
        tracing::info!(jobs = created.len(), "jobs created in a batch");
        Ok(created)
    }

    fn count_created(&self, job: &Job) {
        metrics::counter!("jobd_jobs_created_total", "service" => metric_labels::service(&job.service),
            "job_type" => metric_labels::job_type(&job.job_type))
        .increment(1);
    }

    pub async fn get(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Arc<Job>> {
        timed("get_job", self.store.get_job_shared(project_id, job_id))
            .await?
            .ok_or_else(|| ServiceError::NotFound(job_id.to_string()))
    }

    pub async fn list(&self, query: &JobQuery) -> Result<Vec<Job>> {
        Ok(timed("list_jobs", self.store.list_jobs(query)).await?)
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
        let now = self.clock.now();
        let tree = timed("apply_event", self.store.apply_event(project_id, job_id, &event, now)).await?;
        let mut tally = OutcomeTally::default();
        tally.add(&tree, job_id, &event, now);
        tally.record();
        tracing::debug!(job_id = %job_id, status = %tree.status, version = tree.version, "job changed");
        self.announce(&tree, false);
        self.wake_claimers_for([&tree]);
        Ok(tree)
    }

    /// Applies a worker's event to a task named by its id alone; a task the worker may not touch
    /// (another project or enterprise project) is not found.
    pub async fn record_task_event(&self, job_id: &JobId, event: JobEvent, scope: &TaskScope) -> Result<Job> {
        let events = [TaskEvent { job_id: job_id.clone(), event }];
        self.record_task_events(&events, scope).await?.pop().expect("one answer per event")
    }

    /// Applies many workers' events to tasks named by id alone, in one store transaction; per
    /// event, the tree after it or why it was refused (a task outside `scope` is not found).
    pub async fn record_task_events(&self, events: &[TaskEvent], scope: &TaskScope) -> Result<Vec<Result<Job>>> {
        let now = self.clock.now();
        let answers = timed("apply_task_events", self.store.apply_task_events(events, scope, now)).await?;
        let results: Vec<Result<Job>> = answers.into_iter().map(|answer| answer.map_err(ServiceError::from)).collect();
        let mut tally = OutcomeTally::default();
        for (task_event, tree) in events.iter().zip(&results) {
            if let Ok(tree) = tree {
                tally.add(tree, &task_event.job_id, &task_event.event, now);
            }
        }
        tally.record();
        // Each changed tree once, as it stands after the batch (its last event's answer).
        let mut announced = std::collections::HashSet::new();
        let mut changed = Vec::new();
        for tree in results.iter().rev().flatten() {
            if announced.insert(tree.job_id.clone()) {
                self.announce(tree, false);
                changed.push(tree);
            }
        }
        // A batch of completions makes no work: the claims waiting stay asleep (each would run
        // an empty claim), and a claim that would take it wakes for a retry, the next step of a
        // tree or a rollback. A heartbeat may bring a lease's expiry forward: every claim waiting
        // on a timer looks again.
        if events.iter().any(|e| matches!(e.event, JobEvent::Heartbeat { .. })) {
            self.wake_claimers();
        } else {
            self.wake_claimers_for(changed);
        }
        Ok(results)
    }

    /// A task (or any job) named by its id alone, as workers name them.
    pub async fn get_task(&self, job_id: &JobId) -> Result<Arc<Job>> {
        let project_id =
            self.store.project_of(job_id).await?.ok_or_else(|| ServiceError::NotFound(job_id.to_string()))?;
        self.get(&project_id, job_id).await
    }

    /// Claims tasks; with `wait`, holds the call until work arrives (woken at once by a change
    /// that offers a task it takes, `waiting_claims`, or by any change another node made, or when
    /// the next scheduled or backed-off task falls due), or the wait ends.
    pub async fn claim(&self, request: &ClaimRequest, wait: Duration) -> Result<Vec<ClaimedTask>> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_CLAIM_WAIT);
        let filter = Arc::new(request.clone());
        // The lone jobs a change woke this claim for, to take directly (`waiting_claims`).
        let mut offered: Vec<Arc<Job>> = Vec::new();
        loop {
            // Registered before the store is asked: a task offered from here on wakes it.
            let notified = self.work_may_be_available.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let waiting = self.waiting_claims.register(filter.clone());
            let mut claimed = Vec::new();
            for tree in offered.drain(..).take(request.max_tasks as usize) {
                let taken = timed("claim_offered", self.store.claim_offered(request, &tree, self.clock.now())).await?;
                claimed.extend(taken);
            }
            if claimed.is_empty() {
                claimed = timed("claim_tasks", self.store.claim_tasks(request, self.clock.now())).await?;
            }
            if !claimed.is_empty() {
                // A claim frees no work: the claimers are not woken.
                let mut per_service: HashMap<&ServiceName, u64> = HashMap::new();
                for task in &claimed {
                    *per_service.entry(&task.tree.service).or_default() += 1;
                    tracing::debug!(job_id = %task.task_id, worker_id = %request.worker_id, attempt = task.task().attempt, "task claimed");
                    self.announce(&task.tree, false);
                }
                for (service, n) in per_service {
                    metrics::counter!("jobd_tasks_claimed_total", "service" => metric_labels::service(service))
                        .increment(n);
                }
                return Ok(claimed);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut wake_at = match self.poll_fallback {
                Some(interval) => deadline.min(now + interval),
                None => deadline,
            };
            if let Some(due) = self.store.next_due_at(request).await? {
                let until_due = (due - self.clock.now()).to_std().unwrap_or_default();
                wake_at = wake_at.min(now + until_due + Duration::from_millis(1));
            }
            tokio::select! {
                _ = &mut notified => {}
                trees = waiting.woken() => offered = trees,
                _ = tokio::time::sleep_until(wake_at) => {}
                () = self.shutting_down() => return Ok(Vec::new()),
            }
        }
    }

    /// Tasks waiting for a worker, by service and job type.
    pub async fn queue_stats(&self) -> Result<Vec<jobd_store::QueueStat>> {
        Ok(timed("queue_stats", self.store.queue_stats(self.clock.now())).await?)
    }

    /// The project's open tasks per service, job type and enterprise project, now.
    pub async fn open_tasks(&self, project_id: &ProjectId) -> Result<Vec<jobd_store::OpenTasks>> {
        Ok(timed("open_tasks", self.store.open_tasks(project_id, self.clock.now())).await?)
    }

    /// The project's top-level jobs that ended within `window`, per minute and status.
    pub async fn finished_jobs(
        &self,
        project_id: &ProjectId,
        window: Duration,
    ) -> Result<Vec<jobd_store::FinishedJobs>> {
        let since = self.clock.now() - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::zero());
        Ok(timed("finished_jobs", self.store.finished_jobs(project_id, since)).await?)
    }

    /// Up to `limit` tasks of the project a worker holds a live lease on.
    pub async fn held_leases(&self, project_id: &ProjectId, limit: u32) -> Result<Vec<jobd_store::HeldLease>> {
        Ok(timed("held_leases", self.store.held_leases(project_id, self.clock.now(), limit)).await?)
    }

    /// Whether the store answers, within `READY_TIMEOUT`: a readiness probe must not hang for as
    /// long as a store call may wait for a connection (a database gone silent, a full pool).
    pub async fn ready(&self) -> Result<()> {
        match tokio::time::timeout(READY_TIMEOUT, self.store.ping()).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(StoreError::Unavailable(format!("the store did not answer within {READY_TIMEOUT:?}")).into()),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }
}
