//! The worker runtime: write a jobd worker in Rust by registering async handlers per service and
//! job type; the runtime claims tasks over the worker API, runs them with bounded concurrency,
//! heartbeats, reports each attempt's end, stops handlers whose task is gone, and drains on shutdown.
//!
//! ```no_run
//! use jobd_client::{Client, Credentials};
//! use jobd_worker::runtime::{TaskError, WorkerRuntime};
//! use serde_json::json;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("http://127.0.0.1:8080", Credentials::new("MY_AK", "MY_SK"))?;
//! let runtime = WorkerRuntime::builder(client, "worker-1")
//!     .service("cfw")
//!     .handler("CreateFirewall", |task: jobd_client::Task, ctx: jobd_worker::runtime::TaskContext| async move {
//!         ctx.progress("creating").await?;
//!         if task.payload.is_none() {
//!             return Err(TaskError::fatal("CFW.NO_PAYLOAD", "a firewall needs a payload"));
//!         }
//!         Ok(Some(json!({"firewall_id": "fw-1"})))
//!     })
//!     .max_in_flight(16)
//!     .build()?;
//! let report = runtime.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await;
//! println!("{report:?}");
//! # Ok(())
//! # }
//! ```
//!
//! How a task goes:
//! - **Claim.** One long poll (`wait_seconds`, default 20) per group of services that share a job
//!   type filter, asking for as many tasks as there are free slots (`max_in_flight`). Transport
//!   errors and `5xx`/`429` answers back off exponentially with jitter (honouring `Retry-After`).
//! - **Run.** The handler for the task's service and job type runs in its own tokio task. A
//!   compensation task (`phase: rollback`) goes to the compensation handler registered for its job
//!   type, or fails for good with `JOBD.NO_COMPENSATION` when there is none.
//! - **Heartbeat** every `lease_seconds / 3`, extending the lease by `lease_seconds`;
//!   [`TaskContext::progress`] heartbeats with a message.
//! - **Stop.** When a heartbeat answers that the task is gone (cancelled, timed out, lease lost),
//!   [`TaskContext::cancelled`] fires; the handler has `cancel_grace` (default 5 s) to return, then
//!   it is aborted. Nothing is reported for a task that is gone.
//! - **Report.** `Ok(result)` completes the task; `Err(TaskError)` fails it, retryable or not; a
//!   panic is a retryable failure (`JOBD.HANDLER_PANIC`). Attempts' ends are batched: one reporter
//!   sends whatever has queued up (at most 1,000) in one `POST /v1/worker/tasks/batch` as soon as
//!   the previous batch call returns, so a lone end goes out at once and batches form under load.
//!   Each task's own answer comes back to it: a task that is gone (`409`, `404`) is not reported
//!   again, transport errors and `5xx`/`429` are retried while the lease may hold. Against a jobd
//!   without the batch route (`404`), each end is sent on its own route.
//! - **Drain.** When the shutdown future of [`WorkerRuntime::run_until`] completes, claiming stops
//!   (an open long poll is dropped), in-flight handlers run to their end for up to `drain_timeout`;
//!   those still running then are aborted and failed retryably (`JOBD.WORKER_SHUTDOWN`) so another
//!   worker takes them over without waiting for the lease to expire.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jobd_client::{
    ClaimRequest, Client, Phase, Task, TaskGone, TaskLease, TaskOutcome, TaskReport, MAX_REPORTS_PER_BATCH,
    MAX_TASKS_PER_CLAIM, MAX_WAIT_SECONDS,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinError;
use tokio::time::Instant;
use tracing::Instrument;

/// What a handler answers: the job's result on success, or why the attempt failed.
pub type HandlerResult = Result<Option<Value>, TaskError>;

/// A boxed, sendable future, as handlers return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs one task. Any `async fn(Task, TaskContext) -> HandlerResult` (or closure returning such a
/// future) is a handler.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, task: Task, ctx: TaskContext) -> BoxFuture<HandlerResult>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Task, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, task: Task, ctx: TaskContext) -> BoxFuture<HandlerResult> {
        Box::pin(self(task, ctx))
    }
}

/// Why an attempt failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct TaskError {
    /// The job's `error_code` if this ends it (1 to 64 characters; the runtime trims longer codes).
    pub code: String,
    /// The job's `error_msg` (the runtime keeps the first 1024 characters).
    pub message: String,
    /// A retryable failure is tried again while attempts remain; a fatal one ends the job.
    pub retryable: bool,
}

impl TaskError {
    /// A failure worth another attempt (a timeout, a dependency not ready...).
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError { code: code.into(), message: message.into(), retryable: true }
    }

    /// A failure another attempt would repeat (invalid input, a refused operation...).
    pub fn fatal(code: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError { code: code.into(), message: message.into(), retryable: false }
    }
}

/// The task was stopped: a handler may `?` a [`TaskContext::progress`] to give up at once (nothing
/// is reported for a task that is gone).
impl From<StopReason> for TaskError {
    fn from(reason: StopReason) -> Self {
        TaskError::fatal(reason.error_code(), reason.to_string())
    }
}

/// Why a handler should stop before it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The worker API refused the task: cancelled, timed out, lease lost or already finished.
    Gone(TaskGone),
    /// The job no longer exists (deleted by retention).
    Deleted,
    /// The worker is shutting down and the drain timeout passed.
    Shutdown,
}

impl StopReason {
    pub fn error_code(self) -> &'static str {
        match self {
            StopReason::Gone(gone) => gone.error_code(),
            StopReason::Deleted => "JOBD.JOB_NOT_FOUND",
            StopReason::Shutdown => WORKER_SHUTDOWN,
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Gone(gone) => gone.fmt(f),
            StopReason::Deleted => f.write_str("the job no longer exists"),
            StopReason::Shutdown => f.write_str("the worker is shutting down"),
        }
    }
}

/// Error codes the runtime itself reports.
pub const HANDLER_PANIC: &str = "JOBD.HANDLER_PANIC";
pub const WORKER_SHUTDOWN: &str = "JOBD.WORKER_SHUTDOWN";
pub const NO_COMPENSATION: &str = "JOBD.NO_COMPENSATION";
pub const NO_HANDLER: &str = "JOBD.NO_HANDLER";
const HANDLER_ERROR: &str = "JOBD.HANDLER_ERROR";

/// The most handlers one runtime runs at once.
const MAX_IN_FLIGHT: usize = 10_000;

/// The worker API's limits on what a worker writes.
const MAX_CODE_CHARS: usize = 64;
const MAX_TEXT_CHARS: usize = 1024;

/// A batch of reports stops growing past this many bytes of JSON (the server's default body limit
/// is 1 MiB; a batch it still finds too large is sent report by report).
const REPORT_BATCH_BYTES: usize = 256 * 1024;

/// A handler's link to its task: progress reports and the stop signal.
#[derive(Clone)]
pub struct TaskContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    client: Client,
    lease: TaskLease,
    lease_seconds: u32,
    stop: watch::Sender<Option<StopReason>>,
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("job_id", &self.inner.lease.job_id)
            .field("stop_reason", &self.stop_reason())
            .finish_non_exhaustive()
    }
}

/// How a heartbeat went.
enum Beat {
    Kept,
    Stopped(StopReason),
    Unanswered,
}

impl TaskContext {
    fn new(client: Client, lease: TaskLease, lease_seconds: u32) -> Self {
        let (stop, _) = watch::channel(None);
        TaskContext { inner: Arc::new(ContextInner { client, lease, lease_seconds, stop }) }
    }

    /// The task's job id.
    pub fn job_id(&self) -> &str {
        &self.inner.lease.job_id
    }

    /// The client the runtime works with, for calls of the handler's own.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Sets the job's message (a heartbeat that also extends the lease). `Err` when the task is
    /// gone: the handler should stop (`?` turns it into a [`TaskError`]). A heartbeat that could
    /// not be delivered is logged and otherwise ignored; the runtime's own heartbeats keep trying.
    pub async fn progress(&self, message: impl Into<String>) -> Result<(), StopReason> {
        let message = clean_text(&message.into(), MAX_TEXT_CHARS);
        match self.beat(Some(&message)).await {
            Beat::Kept | Beat::Unanswered => Ok(()),
            Beat::Stopped(reason) => Err(reason),
        }
    }

    /// Completes when the task should stop: cancelled, timed out, lease lost, deleted, or the
    /// worker shutting down past its drain timeout. Race it against the work with `tokio::select!`.
    pub async fn cancelled(&self) -> StopReason {
        // The sender lives in `self`, so the wait ends only with a reason.
        stop_reason(&mut self.inner.stop.subscribe()).await
    }

    /// True once the task should stop (see [`TaskContext::cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        self.stop_reason().is_some()
    }

    /// Why the task should stop, once it should.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.inner.stop.borrow()
    }

    /// Records the first reason to stop; later ones are ignored.
    fn stop(&self, reason: StopReason) {
        self.inner.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    async fn beat(&self, message: Option<&str>) -> Beat {
        if let Some(reason) = self.stop_reason() {
            return Beat::Stopped(reason);
        }
        let inner = &self.inner;
        match inner.client.heartbeat(&inner.lease, message, Some(inner.lease_seconds)).await {
            Ok(_) => Beat::Kept,
            Err(error) => match stop_reason_of(&error) {
                Some(reason) => {
                    tracing::info!(%reason, "the task is gone; stopping its handler");
                    self.stop(reason);
                    Beat::Stopped(reason)
                }
                None => {
                    tracing::warn!(%error, "heartbeat failed");
                    Beat::Unanswered
                }
            },
        }
    }
}

/// A worker API error that means the task is no longer ours.
fn stop_reason_of(error: &jobd_client::Error) -> Option<StopReason> {
    match error.task_gone() {
        Some(gone) => Some(StopReason::Gone(gone)),
        None if error.is_not_found() => Some(StopReason::Deleted),
        None => None,
    }
}

/// Tuning of a [`WorkerRuntime`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// At most this many handlers run at once (default 8).
    pub max_in_flight: usize,
    /// The lease asked for at claim, and extended by each heartbeat (default 30 s).
    pub lease_seconds: u32,
    /// How long a claim long-polls (default 20 s, at most 60).
    pub wait_seconds: u32,
    /// How long a shutdown waits for in-flight handlers (default 30 s).
    pub drain_timeout: Duration,
    /// How long a handler whose task is gone may take to return before it is aborted (default 5 s).
    pub cancel_grace: Duration,
    /// The longest wait between failing claims (default 30 s).
    pub max_claim_backoff: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_in_flight: 8,
            lease_seconds: 30,
            wait_seconds: 20,
            drain_timeout: Duration::from_secs(30),
            cancel_grace: Duration::from_secs(5),
            max_claim_backoff: Duration::from_secs(30),
        }
    }
}

/// A worker set up wrongly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("no service registered: call .service(name) and then .handler(job_type, handler)")]
    NoService,
    #[error("{0} was registered before any .service(name)")]
    NoCurrentService(String),
    #[error("service {0} has no handler")]
    NoHandler(String),
    #[error("service {service} has a compensation for {job_type} but no handler for it")]
    CompensationWithoutHandler { service: String, job_type: String },
    #[error("{job_type} of service {service} has two handlers")]
    DuplicateHandler { service: String, job_type: String },
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
}

#[derive(Default)]
struct ServiceHandlers {
    run: HashMap<String, Arc<dyn Handler>>,
    compensate: HashMap<String, Arc<dyn Handler>>,
    fallback: Option<Arc<dyn Handler>>,
    fallback_compensation: Option<Arc<dyn Handler>>,
}

/// Registers handlers and settings; finish with [`WorkerRuntimeBuilder::build`].
pub struct WorkerRuntimeBuilder {
    client: Client,
    worker_id: String,
    config: RuntimeConfig,
    services: BTreeMap<String, ServiceHandlers>,
    current_service: Option<String>,
    error: Option<BuildError>,
}

impl fmt::Debug for WorkerRuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerRuntimeBuilder")
            .field("worker_id", &self.worker_id)
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WorkerRuntimeBuilder {
    /// Handlers registered next belong to this service (`cfw`, `waf`, `elb`...).
    pub fn service(mut self, service: impl Into<String>) -> Self {
        let service = service.into();
        self.services.entry(service.clone()).or_default();
        self.current_service = Some(service);
        self
    }

    /// Runs tasks of `job_type` of the current service.
    pub fn handler(mut self, job_type: impl Into<String>, handler: impl Handler) -> Self {
        let job_type = job_type.into();
        if let Some(handlers) = self.current_handlers(&job_type) {
            if handlers.run.insert(job_type.clone(), Arc::new(handler)).is_some() {
                self.fail(BuildError::DuplicateHandler { service: self.current_service.clone().unwrap(), job_type });
            }
        }
        self
    }

    /// Runs the compensation (`phase: rollback`) tasks of `job_type` of the current service: undo
    /// what the handler did, because a later sub-job of the same parent failed.
    pub fn compensation(mut self, job_type: impl Into<String>, handler: impl Handler) -> Self {
        let job_type = job_type.into();
        if let Some(handlers) = self.current_handlers(&job_type) {
            if handlers.compensate.insert(job_type.clone(), Arc::new(handler)).is_some() {
                self.fail(BuildError::DuplicateHandler { service: self.current_service.clone().unwrap(), job_type });
            }
        }
        self
    }

    /// Runs every job type of the current service that has no handler of its own.
    pub fn fallback_handler(mut self, handler: impl Handler) -> Self {
        if let Some(handlers) = self.current_handlers("the fallback handler") {
            if handlers.fallback.replace(Arc::new(handler)).is_some() {
                let service = self.current_service.clone().unwrap();
                self.fail(BuildError::DuplicateHandler { service, job_type: "*".to_owned() });
            }
        }
        self
    }

    /// Runs the compensation tasks of every job type of the current service that has no
    /// compensation of its own. Needs a fallback handler: a worker compensates what it runs.
    pub fn fallback_compensation(mut self, handler: impl Handler) -> Self {
        if let Some(handlers) = self.current_handlers("the fallback compensation") {
            if handlers.fallback_compensation.replace(Arc::new(handler)).is_some() {
                let service = self.current_service.clone().unwrap();
                self.fail(BuildError::DuplicateHandler { service, job_type: "* (compensation)".to_owned() });
            }
        }
        self
    }

    /// All settings at once.
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.config.max_in_flight = max_in_flight;
        self
    }

    pub fn lease_seconds(mut self, lease_seconds: u32) -> Self {
        self.config.lease_seconds = lease_seconds;
        self
    }

    pub fn wait_seconds(mut self, wait_seconds: u32) -> Self {
        self.config.wait_seconds = wait_seconds;
        self
    }

    pub fn drain_timeout(mut self, drain_timeout: Duration) -> Self {
        self.config.drain_timeout = drain_timeout;
        self
    }

    pub fn cancel_grace(mut self, cancel_grace: Duration) -> Self {
        self.config.cancel_grace = cancel_grace;
        self
    }

    fn current_handlers(&mut self, what: &str) -> Option<&mut ServiceHandlers> {
        match &self.current_service {
            Some(service) => self.services.get_mut(service),
            None => {
                self.fail(BuildError::NoCurrentService(what.to_owned()));
                None
            }
        }
    }

    fn fail(&mut self, error: BuildError) {
        self.error.get_or_insert(error);
    }

    pub fn build(self) -> Result<WorkerRuntime, BuildError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let config = self.config;
        let invalid = |m: &str| Err(BuildError::InvalidSetting(m.to_owned()));
        let id_chars = self.worker_id.chars().count();
        if !(1..=128).contains(&id_chars) || self.worker_id.chars().any(char::is_control) {
            return invalid("the worker id must be 1 to 128 characters without control characters");
        }
        if !(1..=MAX_IN_FLIGHT).contains(&config.max_in_flight) {
            return invalid("max_in_flight must be from 1 to 10000");
        }
        if !(1..=3600).contains(&config.lease_seconds) {
            return invalid("lease_seconds must be from 1 to 3600");
        }
        if config.wait_seconds > MAX_WAIT_SECONDS {
            return invalid("wait_seconds must be from 0 to 60");
        }
        if self.services.is_empty() {
            return Err(BuildError::NoService);
        }
        for (service, handlers) in &self.services {
            if handlers.run.is_empty() && handlers.fallback.is_none() {
                return Err(BuildError::NoHandler(service.clone()));
            }
            if handlers.fallback.is_none() {
                if let Some(job_type) = handlers.compensate.keys().find(|t| !handlers.run.contains_key(*t)) {
                    return Err(BuildError::CompensationWithoutHandler {
                        service: service.clone(),
                        job_type: job_type.clone(),
                    });
                }
                if handlers.fallback_compensation.is_some() {
                    return Err(BuildError::CompensationWithoutHandler {
                        service: service.clone(),
                        job_type: "* (the fallback compensation needs a fallback handler)".to_owned(),
                    });
                }
            }
        }
        let claim_groups = claim_groups(&self.services);
        let per_claim = (config.max_in_flight / claim_groups.len()).clamp(1, MAX_TASKS_PER_CLAIM as usize);
        let (queue, queued) = mpsc::unbounded_channel();
        let reporter = Reporter { client: self.client.clone(), queue, batched: Arc::new(AtomicBool::new(true)) };
        let shared = Shared {
            reporter,
            client: self.client,
            worker_id: self.worker_id,
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            config,
            services: self.services,
            counters: Counters::default(),
        };
        Ok(WorkerRuntime { shared: Arc::new(shared), claim_groups, per_claim, queued })
    }
}

/// Services that claim together: those with the same job type filter (`None`: every type).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimGroup {
    services: Vec<String>,
    job_types: Option<Vec<String>>,
}

/// One claim can name several services but only one job type list for all of them, so services
/// whose handled types differ claim separately; a task is then never claimed without a handler.
fn claim_groups(services: &BTreeMap<String, ServiceHandlers>) -> Vec<ClaimGroup> {
    let mut groups: BTreeMap<Option<BTreeSet<String>>, Vec<String>> = BTreeMap::new();
    for (service, handlers) in services {
        let filter = handlers.fallback.is_none().then(|| handlers.run.keys().cloned().collect());
        groups.entry(filter).or_default().push(service.clone());
    }
    groups
        .into_iter()
        .map(|(filter, services)| ClaimGroup { services, job_types: filter.map(|types| types.into_iter().collect()) })
        .collect()
}

#[derive(Default)]
struct Counters {
    claimed: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    stopped: AtomicU64,
    abandoned: AtomicU64,
}

/// What a run did, counted per task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Tasks claimed.
    pub claimed: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks failed (handler errors, panics, refused compensations), retryable or not.
    pub failed: u64,
    /// Tasks stopped because they were gone (cancelled, timed out, lease lost, deleted).
    pub stopped: u64,
    /// Tasks aborted at shutdown after the drain timeout (failed retryably).
    pub abandoned: u64,
}

struct Shared {
    client: Client,
    reporter: Reporter,
    worker_id: String,
    config: RuntimeConfig,
    services: BTreeMap<String, ServiceHandlers>,
    /// One permit per task that may run; claims take permits for the tasks they ask for.
    slots: Arc<Semaphore>,
    counters: Counters,
}

/// A configured worker; run it with [`WorkerRuntime::run_until`].
pub struct WorkerRuntime {
    shared: Arc<Shared>,
    claim_groups: Vec<ClaimGroup>,
    per_claim: usize,
    /// The reports queue's receiving end, for the reporter task `run_until` starts.
    queued: mpsc::UnboundedReceiver<Queued>,
}

impl fmt::Debug for WorkerRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerRuntime")
            .field("worker_id", &self.shared.worker_id)
            .field("claim_groups", &self.claim_groups)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// How a task's handler ended, as the supervisor saw it.
enum Outcome {
    Returned(Result<HandlerResult, JoinError>),
    Stopped(StopReason),
    Abandoned,
}

/// What to tell the worker API at the end of an attempt.
enum Report {
    Complete(Option<Value>),
    Fail {
        code: String,
        message: String,
        retryable: bool,
    },
    /// Aborted at shutdown: a retryable failure, counted as abandoned rather than failed.
    Abandon,
}

impl WorkerRuntime {
    /// A builder for a worker that claims as `worker_id` (shown on jobs as `worker_id`).
    pub fn builder(client: Client, worker_id: impl Into<String>) -> WorkerRuntimeBuilder {
        WorkerRuntimeBuilder {
            client,
            worker_id: worker_id.into(),
            config: RuntimeConfig::default(),
            services: BTreeMap::new(),
            current_service: None,
            error: None,
        }
    }

    /// Runs until the process ends.
    pub async fn run(self) -> RunReport {
        self.run_until(std::future::pending()).await
    }

    /// Claims and runs tasks until `shutdown` completes, then drains: no more claims, in-flight
    /// handlers finish (at most `drain_timeout`, then they are aborted and failed retryably), and
    /// every attempt's end is reported before this returns.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> RunReport {
        let shared = self.shared;
        let (stop_claiming, stop_claiming_rx) = watch::channel(false);
        let (abandon, abandon_rx) = watch::channel(false);
        tracing::info!(worker_id = %shared.worker_id, groups = ?self.claim_groups, "worker started");
        let reporter = tokio::spawn(report_loop(shared.client.clone(), shared.reporter.batched.clone(), self.queued));
        let claimers: Vec<_> = self
            .claim_groups
            .into_iter()
            .map(|group| {
                tokio::spawn(claim_loop(
                    shared.clone(),
                    group,
                    self.per_claim,
                    stop_claiming_rx.clone(),
                    abandon_rx.clone(),
                ))
            })
            .collect();
        shutdown.await;

        tracing::info!(drain_timeout = ?shared.config.drain_timeout, "shutting down: draining in-flight tasks");
        stop_claiming.send_replace(true);
        for claimer in claimers {
            if let Err(error) = claimer.await {
                tracing::error!(%error, "a claim loop ended abnormally");
            }
        }
        let all_slots = shared.config.max_in_flight as u32;
        let drained = tokio::time::timeout(shared.config.drain_timeout, shared.slots.acquire_many(all_slots)).await;
        if drained.is_err() {
            tracing::warn!("drain timeout: aborting the handlers still running");
            abandon.send_replace(true);
            // Aborting is immediate; what remains is reporting each attempt's end.
            let reporting = Duration::from_secs(u64::from(shared.config.lease_seconds)).max(Duration::from_secs(5));
            if tokio::time::timeout(reporting, shared.slots.acquire_many(all_slots)).await.is_err() {
                tracing::error!("some abandoned tasks could not be reported; their leases will expire");
            }
        }
        // Every attempt's end is reported (or given up on); a report still waiting is sent alone.
        reporter.abort();
        let counters = &shared.counters;
        let report = RunReport {
            claimed: counters.claimed.load(Ordering::Relaxed),
            completed: counters.completed.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            stopped: counters.stopped.load(Ordering::Relaxed),
            abandoned: counters.abandoned.load(Ordering::Relaxed),
        };
        tracing::info!(?report, "worker stopped");
        report
    }
}

impl Shared {
    /// The handler for a task, or the failure to report when there is none.
    fn route(&self, task: &Task) -> Result<Arc<dyn Handler>, Report> {
        let handlers = self.services.get(&task.service);
        let refuse = |code: &str, message: String| Report::Fail { code: code.to_owned(), message, retryable: false };
        match task.phase {
            Phase::Run => {
                handlers.and_then(|h| h.run.get(&task.job_type).or(h.fallback.as_ref())).cloned().ok_or_else(|| {
                    refuse(
                        NO_HANDLER,
                        format!("worker {} has no handler for {} {}", self.worker_id, task.service, task.job_type),
                    )
                })
            }
            Phase::Rollback => handlers
                .and_then(|h| h.compensate.get(&task.job_type).or(h.fallback_compensation.as_ref()))
                .cloned()
                .ok_or_else(|| {
                    refuse(
                        NO_COMPENSATION,
                        format!("worker {} has no compensation for {} {}", self.worker_id, task.service, task.job_type),
                    )
                }),
        }
    }
}

/// Claims for one group of services until told to stop, spawning a supervisor per task.
async fn claim_loop(
    shared: Arc<Shared>,
    group: ClaimGroup,
    per_claim: usize,
    mut stop: watch::Receiver<bool>,
    abandon: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut failures = 0u32;
    loop {
        let first = tokio::select! {
            biased;
            () = raised(&mut stop) => return,
            permit = shared.slots.clone().acquire_owned() => permit.expect("the slots are never closed"),
        };
        let mut permits = vec![first];
        while permits.len() < per_claim {
            match shared.slots.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let request = ClaimRequest {
            worker_id: shared.worker_id.clone(),
            services: group.services.clone(),
            job_types: group.job_types.clone(),
            lease_seconds: Some(config.lease_seconds),
            wait_seconds: Some(config.wait_seconds),
            max_tasks: Some(permits.len() as u32),
        };
        let started = Instant::now();
        // Dropping the long poll on shutdown may leave a task the server had just leased: its
        // lease expires and another worker takes it over.
        let answer = tokio::select! {
            biased;
            () = raised(&mut stop) => return,
            answer = shared.client.claim(&request) => answer,
        };
        let pause = match answer {
            Ok(tasks) => {
                failures = 0;
                let idle = tasks.is_empty();
                shared.counters.claimed.fetch_add(tasks.len() as u64, Ordering::Relaxed);
                for task in tasks {
                    let permit = permits.pop();
                    if permit.is_none() {
                        tracing::warn!(job_id = %task.job_id, "the server returned more tasks than asked for");
                    }
                    tokio::spawn(supervise(shared.clone(), task, permit, abandon.clone()));
                }
                drop(permits);
                // A server answering at once with nothing (wait_seconds 0) is not asked again at once.
                if idle {
                    Duration::from_secs(1).saturating_sub(started.elapsed())
                } else {
                    Duration::ZERO
                }
            }
            Err(error) => {
                drop(permits);
                failures = failures.saturating_add(1);
                let delay = backoff(failures, config.max_claim_backoff).max(error.retry_after().unwrap_or_default());
                if error.is_retryable() {
                    tracing::warn!(%error, failures, ?delay, "claim failed; backing off");
                } else {
                    // Wrong keys, a refused request: this repeats until the setup is fixed.
                    tracing::error!(%error, failures, ?delay, "claim refused; backing off");
                }
                delay
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                biased;
                () = raised(&mut stop) => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Runs one task's handler and keeps its lease until the attempt is reported.
async fn supervise(
    shared: Arc<Shared>,
    task: Task,
    permit: Option<OwnedSemaphorePermit>,
    abandon: watch::Receiver<bool>,
) {
    let span = tracing::info_span!(
        "task",
        job_id = %task.job_id,
        service = %task.service,
        job_type = %task.job_type,
        attempt = task.attempt,
        phase = ?task.phase,
    );
    async move {
        let lease = TaskLease::from(&task);
        let report = match shared.route(&task) {
            Ok(handler) => run_handler(&shared, task, handler, abandon).await,
            Err(refusal) => Some(refusal),
        };
        if let Some(report) = report {
            send_report(&shared, &lease, report).await;
        }
        drop(permit);
    }
    .instrument(span)
    .await
}

/// Runs the handler under heartbeats; answers what to report, or `None` when the task is gone.
async fn run_handler(
    shared: &Shared,
    task: Task,
    handler: Arc<dyn Handler>,
    mut abandon: watch::Receiver<bool>,
) -> Option<Report> {
    let config = &shared.config;
    let ctx = TaskContext::new(shared.client.clone(), TaskLease::from(&task), config.lease_seconds);
    let mut stop = ctx.inner.stop.subscribe();
    tracing::debug!("handler started");
    // The handler is called inside the spawned task, so even a panic before its first await is caught.
    let mut handle = tokio::spawn({
        let ctx = ctx.clone();
        async move { handler.call(task, ctx).await }
    });
    let interval = Duration::from_secs_f64(f64::from(config.lease_seconds) / 3.0);
    let mut next_beat = Instant::now() + interval;
    let mut beat_failures = 0u32;
    let outcome = loop {
        tokio::select! {
            joined = &mut handle => break Outcome::Returned(joined),
            () = tokio::time::sleep_until(next_beat) => {
                next_beat = match ctx.beat(None).await {
                    Beat::Kept => {
                        beat_failures = 0;
                        Instant::now() + interval
                    }
                    // The stop branch takes over.
                    Beat::Stopped(_) => Instant::now() + interval,
                    Beat::Unanswered => {
                        beat_failures = beat_failures.saturating_add(1);
                        Instant::now() + backoff(beat_failures, interval)
                    }
                };
            }
            reason = stop_reason(&mut stop) => {
                tokio::select! {
                    _ = &mut handle => {}
                    () = tokio::time::sleep(config.cancel_grace) => {
                        tracing::info!(grace = ?config.cancel_grace, "the handler did not stop in time; aborting it");
                        handle.abort();
                    }
                }
                break Outcome::Stopped(reason);
            }
            () = raised(&mut abandon) => {
                ctx.stop(StopReason::Shutdown);
                handle.abort();
                break Outcome::Abandoned;
            }
        }
    };
    let counters = &shared.counters;
    let report = match outcome {
        Outcome::Returned(_) if ctx.is_cancelled() => {
            let reason = ctx.stop_reason().expect("cancelled");
            tracing::info!(%reason, "the handler returned after its task was gone; nothing to report");
            counters.stopped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Outcome::Returned(Ok(Ok(result))) => Report::Complete(result),
        Outcome::Returned(Ok(Err(error))) => {
            tracing::info!(code = %error.code, retryable = error.retryable, "the handler failed: {}", error.message);
            Report::Fail { code: error.code, message: error.message, retryable: error.retryable }
        }
        Outcome::Returned(Err(joined)) if joined.is_panic() => {
            let message = panic_message(joined.into_panic());
            tracing::error!(panic = %message, "the handler panicked");
            Report::Fail {
                code: HANDLER_PANIC.to_owned(),
                message: format!("the handler panicked: {message}"),
                retryable: true,
            }
        }
        Outcome::Returned(Err(_)) | Outcome::Abandoned => {
            counters.abandoned.fetch_add(1, Ordering::Relaxed);
            Report::Abandon
        }
        Outcome::Stopped(reason) => {
            tracing::info!(%reason, "task stopped");
            counters.stopped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    Some(report)
}

/// Reports an attempt's end, retrying transport errors while the lease may still hold.
async fn send_report(shared: &Shared, lease: &TaskLease, report: Report) {
    let deadline =
        Instant::now() + Duration::from_secs(u64::from(shared.config.lease_seconds)).max(Duration::from_secs(5));
    let counters = &shared.counters;
    // What the end counts as once reported (an abandoned task was counted when it was abandoned).
    let (report, counter) = match report {
        Report::Complete(result) => (TaskReport::complete(lease, result, None), Some(&counters.completed)),
        Report::Fail { code, message, retryable } => {
            let code = clean_text(&code, MAX_CODE_CHARS);
            let code = if code.is_empty() { HANDLER_ERROR.to_owned() } else { code };
            (TaskReport::fail(lease, code, clean_text(&message, MAX_TEXT_CHARS), retryable), Some(&counters.failed))
        }
        Report::Abandon => {
            let message = format!("worker {} shut down before the task finished", shared.worker_id);
            (TaskReport::fail(lease, WORKER_SHUTDOWN, clean_text(&message, MAX_TEXT_CHARS), true), None)
        }
    };
    let mut failures = 0u32;
    loop {
        let error = match shared.reporter.send(&report).await {
            Ok(()) => {
                if let Some(counter) = counter {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!("attempt reported");
                return;
            }
            Err(error) => error,
        };
        if let Some(reason) = stop_reason_of(&error) {
            tracing::info!(%reason, "the task was gone before its end was reported");
            if counter.is_some() {
                counters.stopped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        failures = failures.saturating_add(1);
        if !error.is_retryable() || Instant::now() >= deadline {
            tracing::error!(%error, "cannot report the attempt's end; its lease will expire");
            return;
        }
        let delay = backoff(failures, Duration::from_secs(5)).max(error.retry_after().unwrap_or_default());
        tracing::warn!(%error, ?delay, "reporting failed; trying again");
        tokio::time::sleep(delay).await;
    }
}

/// How one report went: the task's own answer, or the whole batch's error (shared by its reports).
type Reported = Result<(), Arc<jobd_client::Error>>;

/// Sends attempts' ends: through the reporter task in batches, or each on its own route once the
/// server has shown it has no batch route.
struct Reporter {
    client: Client,
    queue: mpsc::UnboundedSender<Queued>,
    /// False once the server answered a batch `404` (a jobd older than the batch route).
    batched: Arc<AtomicBool>,
}

/// A report waiting for the next batch, and where its answer goes.
struct Queued {
    report: TaskReport,
    /// Its size as JSON, to keep batches under [`REPORT_BATCH_BYTES`].
    bytes: usize,
    answer: oneshot::Sender<Reported>,
}

impl Reporter {
    /// Reports one attempt's end and answers how the server took it, as the single route would.
    async fn send(&self, report: &TaskReport) -> Reported {
        if self.batched.load(Ordering::Relaxed) {
            let (answer, answered) = oneshot::channel();
            let bytes = serde_json::to_vec(report).map_or(0, |json| json.len());
            if self.queue.send(Queued { report: report.clone(), bytes, answer }).is_ok() {
                if let Ok(reported) = answered.await {
                    return reported;
                }
            }
            // The reporter task has stopped (the runtime returned): send it alone.
        }
        send_alone(&self.client, report).await.map_err(Arc::new)
    }
}

/// One report on its own route, `.../complete` or `.../fail`.
async fn send_alone(client: &Client, report: &TaskReport) -> Result<(), jobd_client::Error> {
    match &report.outcome {
        TaskOutcome::Complete { result, message } => {
            client.complete(report, result.as_ref(), message.as_deref()).await.map(drop)
        }
        TaskOutcome::Fail { error_code, error_msg, retryable } => {
            client.fail(report, error_code, error_msg, *retryable).await.map(drop)
        }
    }
}

/// The reporter task: sends whatever is queued as one batch as soon as the previous batch call
/// returns (no fixed delay), and hands each report's answer back to its task.
async fn report_loop(client: Client, batched: Arc<AtomicBool>, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let mut waiting = VecDeque::new();
    // Batches ask for status words only, until a server refuses the field (a jobd older than it).
    let brief = AtomicBool::new(true);
    loop {
        if waiting.is_empty() {
            match queue.recv().await {
                Some(queued) => waiting.push_back(queued),
                None => return,
            }
        }
        while let Ok(queued) = queue.try_recv() {
            waiting.push_back(queued);
        }
        let batch = next_batch(&mut waiting);
        let (reports, answers) = batch.into_iter().map(|queued| (queued.report, queued.answer)).unzip();
        if batched.load(Ordering::Relaxed) {
            send_batch(&client, &batched, &brief, reports, answers).await;
        } else {
            send_each(&client, reports, answers);
        }
    }
}

/// Takes the next batch off the front of the queue, in order: at most [`MAX_REPORTS_PER_BATCH`]
/// reports and about [`REPORT_BATCH_BYTES`], each task at most once (the server refuses a batch
/// naming a task twice; a second report of a task, from an attempt that lost its lease to the
/// next one on this same worker, waits for the next batch).
fn next_batch(waiting: &mut VecDeque<Queued>) -> Vec<Queued> {
    let mut batch: Vec<Queued> = Vec::new();
    let mut tasks = HashSet::new();
    let mut bytes = 0;
    let mut deferred = VecDeque::new();
    while let Some(queued) = waiting.pop_front() {
        let full =
            batch.len() == MAX_REPORTS_PER_BATCH || (!batch.is_empty() && bytes + queued.bytes > REPORT_BATCH_BYTES);
        if full {
            waiting.push_front(queued);
            break;
        }
        if tasks.insert(queued.report.job_id.clone()) {
            bytes += queued.bytes;
            batch.push(queued);
        } else {
            deferred.push_back(queued);
        }
    }
    deferred.append(waiting);
    *waiting = deferred;
    batch
}

/// One batch call; each report's answer goes back to its task.
async fn send_batch(
    client: &Client,
    batched: &AtomicBool,
    brief: &AtomicBool,
    reports: Vec<TaskReport>,
    answers: Vec<oneshot::Sender<Reported>>,
) {
    let mut sent = report_batch(client, brief.load(Ordering::Relaxed), &reports).await;
    if matches!(&sent, Err(error) if error.status() == Some(400)) && brief.load(Ordering::Relaxed) {
        tracing::info!("the server refused status-only batch answers (an older jobd); asking for whole tasks");
        brief.store(false, Ordering::Relaxed);
        sent = report_batch(client, false, &reports).await;
    }
    match sent {
        Ok(results) => {
            for (answer, result) in answers.into_iter().zip(results) {
                let _ = answer.send(result.map_err(Arc::new));
            }
        }
        Err(error) if error.status() == Some(404) => {
            tracing::info!(%error, "the server has no batch route (an older jobd); reporting each task on its own");
            batched.store(false, Ordering::Relaxed);
            send_each(client, reports, answers);
        }
        // A server fault in one report must not cost the others: each is sent again on its own
        // route (a report already applied answers there as the task's current state).
        Err(error) if error.status() == Some(500) => {
            tracing::warn!(%error, reports = reports.len(), "the batch failed on the server; reporting its tasks one by one");
            send_each(client, reports, answers);
        }
        Err(error) if error.status() == Some(413) => {
            tracing::warn!(%error, reports = reports.len(), "the batch was too large; reporting its tasks one by one");
            send_each(client, reports, answers);
        }
        Err(error) => {
            let error = Arc::new(error);
            for answer in answers {
                let _ = answer.send(Err(error.clone()));
            }
        }
    }
}

/// One batch call; per report, whether the server took it (answered with status words when
/// `brief`, with whole tasks otherwise).
async fn report_batch(
    client: &Client,
    brief: bool,
    reports: &[TaskReport],
) -> jobd_client::Result<Vec<jobd_client::Result<()>>> {
    if brief {
        Ok(client.report_batch_statuses(reports).await?.into_iter().map(|result| result.map(drop)).collect())
    } else {
        Ok(client.report_batch(reports).await?.into_iter().map(|result| result.map(drop)).collect())
    }
}

/// Sends each report on its own route, concurrently, as the tasks did before batching.
fn send_each(client: &Client, reports: Vec<TaskReport>, answers: Vec<oneshot::Sender<Reported>>) {
    for (report, answer) in reports.into_iter().zip(answers) {
        let client = client.clone();
        tokio::spawn(async move {
            let _ = answer.send(send_alone(&client, &report).await.map_err(Arc::new));
        });
    }
}

/// Completes once the flag is raised (or its sender is gone). The guard `wait_for` answers is
/// dropped here, never held across an await.
async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

/// Completes with the first reason to stop (`Shutdown` if the context is gone).
async fn stop_reason(stop: &mut watch::Receiver<Option<StopReason>>) -> StopReason {
    let reason = stop.wait_for(Option::is_some).await.ok().and_then(|reason| *reason);
    reason.unwrap_or(StopReason::Shutdown)
}

/// Exponential backoff from 250 ms, at most `max`, spread over its upper half ("equal jitter").
fn backoff(failures: u32, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let full = Duration::from_millis(250).saturating_mul(1 << exponent).min(max);
    full / 2 + full.mul_f64(rand::random::<f64>() / 2.0)
}

/// Text the worker API accepts: control characters become spaces, at most `max` characters.
fn clean_text(text: &str, max: usize) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect()
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use jobd_client::Credentials;

    use super::*;

    fn client() -> Client {
        Client::new("http://127.0.0.1:9", Credentials::new("AK", "SK")).unwrap()
    }

    async fn ok(_: Task, _: TaskContext) -> HandlerResult {
        Ok(None)
    }

    fn task(service: &str, job_type: &str, phase: Phase) -> Task {
        Task {
            job_id: "j".into(),
            parent_job_id: None,
            project_id: "p".into(),
            service: service.into(),
            job_type: job_type.into(),
            resource_id: None,
            entities: Vec::new(),
            payload: None,
            attempt: 1,
            max_attempts: 3,
            lease_token: "t".into(),
            lease_expires_at: chrono::Utc::now(),
            phase,
        }
    }

    fn refusal_code(result: Result<Arc<dyn Handler>, Report>) -> Option<String> {
        match result {
            Ok(_) => None,
            Err(Report::Fail { code, retryable, .. }) => {
                assert!(!retryable, "a refusal is for good");
                Some(code)
            }
            Err(Report::Complete(_) | Report::Abandon) => panic!("a refusal is a failure"),
        }
    }

    #[test]
    fn tasks_are_routed_by_service_job_type_and_phase() {
        let runtime = WorkerRuntime::builder(client(), "w")
            .service("cfw")
            .handler("Create", ok)
            .compensation("Create", ok)
            .handler("Delete", ok)
            .service("waf")
            .fallback_handler(ok)
            .service("elb")
            .fallback_handler(ok)
            .fallback_compensation(ok)
            .build()
            .unwrap();
        let shared = &runtime.shared;
        assert_eq!(refusal_code(shared.route(&task("cfw", "Create", Phase::Run))), None);
        assert_eq!(refusal_code(shared.route(&task("cfw", "Create", Phase::Rollback))), None);
        assert_eq!(
            refusal_code(shared.route(&task("cfw", "Delete", Phase::Rollback))).as_deref(),
            Some(NO_COMPENSATION)
        );
        assert_eq!(refusal_code(shared.route(&task("cfw", "Other", Phase::Run))).as_deref(), Some(NO_HANDLER));
        assert_eq!(refusal_code(shared.route(&task("waf", "Anything", Phase::Run))), None);
        assert_eq!(
            refusal_code(shared.route(&task("waf", "Anything", Phase::Rollback))).as_deref(),
            Some(NO_COMPENSATION)
        );
        assert_eq!(refusal_code(shared.route(&task("elb", "Anything", Phase::Rollback))), None);
        assert_eq!(
            runtime.claim_groups,
            [
                ClaimGroup { services: vec!["elb".into(), "waf".into()], job_types: None },
                ClaimGroup { services: vec!["cfw".into()], job_types: Some(vec!["Create".into(), "Delete".into()]) },
            ]
        );
    }

    #[test]
    fn services_with_the_same_types_claim_together() {
        let runtime = WorkerRuntime::builder(client(), "w")
            .service("cfw")
            .fallback_handler(ok)
            .service("elb")
            .fallback_handler(ok)
            .build()
            .unwrap();
        assert_eq!(runtime.claim_groups, [ClaimGroup { services: vec!["cfw".into(), "elb".into()], job_types: None }]);
    }

    #[test]
    fn bad_setups_are_refused() {
        let build = |b: WorkerRuntimeBuilder| b.build().map(drop);
        assert_eq!(build(WorkerRuntime::builder(client(), "w")), Err(BuildError::NoService));
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "w").handler("T", ok)),
            Err(BuildError::NoCurrentService(_))
        ));
        assert_eq!(
            build(WorkerRuntime::builder(client(), "w").service("cfw")),
            Err(BuildError::NoHandler("cfw".into()))
        );
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "w").service("cfw").handler("A", ok).compensation("B", ok)),
            Err(BuildError::CompensationWithoutHandler { .. })
        ));
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "w").service("cfw").handler("A", ok).fallback_compensation(ok)),
            Err(BuildError::CompensationWithoutHandler { .. })
        ));
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "w").service("cfw").handler("A", ok).handler("A", ok)),
            Err(BuildError::DuplicateHandler { .. })
        ));
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "").service("cfw").handler("A", ok)),
            Err(BuildError::InvalidSetting(_))
        ));
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "w").service("cfw").handler("A", ok).wait_seconds(61)),
            Err(BuildError::InvalidSetting(_))
        ));
    }

    #[test]
    fn backoff_grows_and_stays_under_its_cap() {
        let max = Duration::from_secs(30);
        for failures in 1..40 {
            let full = Duration::from_millis(250).saturating_mul(1 << (failures - 1).min(20)).min(max);
            let delay = backoff(failures, max);
            assert!(delay >= full / 2 && delay <= full, "{failures}: {delay:?}");
        }
    }

    #[test]
    fn a_batch_takes_each_task_once_in_queue_order_within_its_limits() {
        let queued = |job_id: &str, bytes: usize| Queued {
            report: TaskReport::complete(&(job_id, "t"), None, None),
            bytes,
            answer: oneshot::channel().0,
        };
        let ids = |reports: &mut dyn Iterator<Item = &Queued>| -> Vec<String> {
            reports.map(|queued| queued.report.job_id.clone()).collect()
        };
        let mut waiting: VecDeque<Queued> = ["a", "b", "a", "c", "a"].iter().map(|id| queued(id, 10)).collect();
        let batch = next_batch(&mut waiting);
        assert_eq!(ids(&mut batch.iter()), ["a", "b", "c"]);
        assert_eq!(ids(&mut waiting.iter()), ["a", "a"], "a task's later reports wait, in order");
        assert_eq!(ids(&mut next_batch(&mut waiting).iter()), ["a"]);
        assert_eq!(ids(&mut next_batch(&mut waiting).iter()), ["a"]);
        assert!(waiting.is_empty());

        let mut waiting: VecDeque<Queued> =
            (0..2 * MAX_REPORTS_PER_BATCH + 50).map(|n| queued(&n.to_string(), 10)).collect();
        let sizes: Vec<usize> =
            std::iter::from_fn(|| Some(next_batch(&mut waiting).len()).filter(|n| *n > 0)).collect();
        assert_eq!(sizes, [MAX_REPORTS_PER_BATCH, MAX_REPORTS_PER_BATCH, 50]);

        let big = REPORT_BATCH_BYTES / 2 + 1;
        let mut waiting: VecDeque<Queued> = [queued("x", big), queued("y", big), queued("z", 3 * big)].into();
        let sizes: Vec<usize> =
            std::iter::from_fn(|| Some(next_batch(&mut waiting).len()).filter(|n| *n > 0)).collect();
        assert_eq!(sizes, [1, 1, 1], "large reports go alone, even one past the limit");
    }

    /// A stand-in for a jobd older than the batch route: `404` to a batch, `200` to each task's own
    /// `complete`. Answers a client of it and the paths it was asked for.
    async fn older_jobd() -> (Client, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = paths.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let mut line = String::new();
                    while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
                        let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                        let mut length = 0;
                        loop {
                            let mut header = String::new();
                            stream.read_line(&mut header).await.unwrap();
                            if header == "\r\n" {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':') {
                                if name.eq_ignore_ascii_case("content-length") {
                                    length = value.trim().parse().unwrap();
                                }
                            }
                        }
                        stream.read_exact(&mut vec![0; length]).await.unwrap();
                        seen.lock().unwrap().push(path.clone());
                        let (status, body) = match path.strip_suffix("/complete") {
                            Some(task) => {
                                let job = serde_json::json!({
                                    "job_id": task.rsplit('/').next().unwrap(), "project_id": "p", "service": "cfw",
                                    "job_type": "T", "status": "SUCCEEDED", "created_at": "2024-01-01T00:00:00Z",
                                    "updated_at": "2024-01-01T00:00:00Z"
                                });
                                ("200 OK", serde_json::json!({ "job": job }))
                            }
                            None => {
                                ("404 Not Found", serde_json::json!({"error_code": "APIGW.0101", "error_msg": "none"}))
                            }
                        };
                        let body = body.to_string();
                        let answer = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        stream.get_mut().write_all(answer.as_bytes()).await.unwrap();
                        line.clear();
                    }
                });
            }
        });
        (Client::new(&endpoint, Credentials::new("AK", "SK")).unwrap(), paths)
    }

    #[tokio::test]
    async fn against_a_jobd_without_the_batch_route_each_end_goes_on_its_own() {
        let (client, paths) = older_jobd().await;
        let (queue, queued) = mpsc::unbounded_channel();
        let reporter = Reporter { client: client.clone(), queue, batched: Arc::new(AtomicBool::new(true)) };
        let reporting = tokio::spawn(report_loop(client, reporter.batched.clone(), queued));
        let report = |job_id: &str| TaskReport::complete(&(job_id, "t"), None, None);
        let (a, b) = (report("a"), report("b"));
        let (a, b) = tokio::join!(reporter.send(&a), reporter.send(&b));
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert!(reporter.send(&report("c")).await.is_ok());
        let mut paths = paths.lock().unwrap().clone();
        paths.sort();
        assert_eq!(
            paths,
            [
                "/v1/worker/tasks/a/complete",
                "/v1/worker/tasks/b/complete",
                "/v1/worker/tasks/batch",
                "/v1/worker/tasks/c/complete"
            ],
            "one batch was tried, then every end went alone"
        );
        reporting.abort();
    }

    #[test]
    fn reported_text_fits_the_worker_api() {
        assert_eq!(clean_text("a\nb\tc", 10), "a b c");
        assert_eq!(clean_text(&"x".repeat(2000), MAX_TEXT_CHARS).len(), MAX_TEXT_CHARS);
    }
}
