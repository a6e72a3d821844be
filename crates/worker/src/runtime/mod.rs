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
//!
//! The runtime's duties, a module each: `builder` (registration and settings, checked into a
//! [`BuildError`]), `claiming` (the long polls, one per group of services), `running` (a
//! handler per task under heartbeats), `reporting` (attempts' ends, batched), `shutdown` (the
//! drain); `context` is what a handler sees.

mod builder;
mod claiming;
mod context;
mod reporting;
mod running;
mod shutdown;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use builder::ServiceHandlers;
pub use builder::{BuildError, WorkerRuntimeBuilder};
use claiming::ClaimGroup;
pub use context::{StopReason, TaskContext, TaskError};
use jobd_client::{Client, Task};
use reporting::{Queued, Reporter};
use serde_json::Value;
use tokio::sync::{mpsc, watch, Semaphore};

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

/// Error codes the runtime itself reports.
pub const HANDLER_PANIC: &str = "JOBD.HANDLER_PANIC";
pub const WORKER_SHUTDOWN: &str = "JOBD.WORKER_SHUTDOWN";
pub const NO_COMPENSATION: &str = "JOBD.NO_COMPENSATION";
pub const NO_HANDLER: &str = "JOBD.NO_HANDLER";

/// The first wait after a failed call (claim, heartbeat, report); each further one doubles.
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// The most handlers one runtime runs at once.
const MAX_IN_FLIGHT: usize = 10_000;

/// The most claims one group of services keeps in flight at once.
const MAX_CLAIMS_IN_FLIGHT: usize = 8;

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
    /// Claims each group of services keeps in flight at once (default 2, 1 to 8). While one claim
    /// is on its way, slots that free up go out in the next: a worker whose tasks are short is
    /// not held to one claim's round trip at a time.
    pub claims_in_flight: usize,
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
            claims_in_flight: 2,
        }
    }
}

#[derive(Default)]
struct Counters {
    claimed: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    stopped: AtomicU64,
    abandoned: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RunReport {
        RunReport {
            claimed: self.claimed.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            stopped: self.stopped.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
        }
    }
}

/// A live view of a run's counts ([`WorkerRuntime::progress`]); an attempt counts once the
/// server has taken its report.
#[derive(Clone)]
pub struct Progress(Arc<Shared>);

impl Progress {
    /// The counts so far.
    pub fn now(&self) -> RunReport {
        self.0.counters.snapshot()
    }
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

impl WorkerRuntime {
    /// A builder for a worker that claims as `worker_id` (shown on jobs as `worker_id`).
    pub fn builder(client: Client, worker_id: impl Into<String>) -> WorkerRuntimeBuilder {
        WorkerRuntimeBuilder::new(client, worker_id.into())
    }

    /// What the run has done so far, readable while it runs (a dashboard, a test, a benchmark
    /// waiting for its last report to be taken).
    pub fn progress(&self) -> Progress {
        Progress(self.shared.clone())
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
        let reporter =
            tokio::spawn(reporting::report_loop(shared.client.clone(), shared.reporter.batched.clone(), self.queued));
        let claims_in_flight = shared.config.claims_in_flight.clamp(1, MAX_CLAIMS_IN_FLIGHT);
        let claimers: Vec<_> = self
            .claim_groups
            .iter()
            .flat_map(|group| std::iter::repeat_n(group, claims_in_flight))
            .map(|group| {
                tokio::spawn(claiming::claim_loop(
                    shared.clone(),
                    group.clone(),
                    self.per_claim,
                    stop_claiming_rx.clone(),
                    abandon_rx.clone(),
                ))
            })
            .collect();
        shutdown.await;
        shutdown::drain(&shared, claimers, stop_claiming, abandon).await;
        // Every attempt's end is reported (or given up on); a report still waiting is sent alone.
        reporter.abort();
        let report = shared.counters.snapshot();
        tracing::info!(?report, "worker stopped");
        report
    }
}
