//! Background duties, each a named unit with its own interval, metric and test (as River's
//! `job_rescuer` and `job_cleaner`):
//!
//! | duty | what it does | every | runs on |
//! |---|---|---|---|
//! | `job_timeouts` | fails jobs past their `timeout_seconds` (`JOB.TIMEOUT`) | `interval` (500 ms) | the leader |
//! | `lease_rescuer` | fails tasks whose last attempt's lease expired (`JOB.LEASE_EXPIRED`) | `interval` (500 ms) | the leader |
//! | `queue_vacuum` | clears the dead rows claims and completions leave on the claim path once they pile up (PostgreSQL's `VACUUM` of `task_queue`; nothing on SQLite) | `interval` (500 ms) | the leader |
//! | `job_cleaner` | deletes finished jobs past `retention` | `retention_interval` (1 min) | the leader |
//! | `key_pruner` | forgets `X-Client-Token`s past `idempotency_window` | `retention_interval` (1 min) | the leader |
//! | `token_pruner` | deletes expired tokens | `retention_interval` (1 min) | the leader |
//! | `abuse_pruner` | forgets this node's rate-limit buckets and signature failures with nothing left to remember | `abuse_prune_interval` (30 s) | every node |
//!
//! [`duties`] is the one list; [`spawn`] runs each duty in a task of its own, so a slow one never
//! delays another. With several nodes on one store, a leader duty runs only on the node that
//! leads maintenance (`JobStore::lead_maintenance`). Every run is counted in
//! `jobd_maintenance_runs_total{duty, outcome}`, what it handled in
//! `jobd_maintenance_items_total{duty}`, its time in `jobd_maintenance_run_duration_seconds{duty}`.
//! A new duty is a module here with a `duty` constructor, and one line in [`duties`].

pub mod abuse_pruner;
pub mod job_cleaner;
pub mod job_timeouts;
pub mod key_pruner;
pub mod lease_rescuer;
pub mod queue_vacuum;
pub mod token_pruner;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::identity::{IdentityError, IdentityService};
use crate::{JobService, ServiceError};

/// How much one run handles at most, so no run holds the store for long.
const BATCH: u32 = 500;

#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// Finished jobs older than this are deleted.
    pub retention: Duration,
    /// How long `X-Client-Token`s are remembered (at least 24 h).
    pub idempotency_window: Duration,
    /// Time between runs of `job_timeouts` and `lease_rescuer`.
    pub interval: Duration,
    /// Time between runs of `job_cleaner`, `key_pruner` and `token_pruner`.
    pub retention_interval: Duration,
    /// Time between runs of `abuse_pruner`.
    pub abuse_prune_interval: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            retention: Duration::from_secs(7 * 24 * 60 * 60),
            idempotency_window: Duration::from_secs(24 * 60 * 60),
            interval: Duration::from_millis(500),
            retention_interval: Duration::from_secs(60),
            abuse_prune_interval: Duration::from_secs(30),
        }
    }
}

/// Where a duty runs when several nodes share one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On the node that leads maintenance only: the duty works on the shared store.
    Leader,
    /// On every node: the duty works on the node's own memory.
    EveryNode,
}

/// Why a duty's run failed.
#[derive(Debug, thiserror::Error)]
pub enum DutyError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

type Run = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<u64, DutyError>> + Send>> + Send + Sync>;

/// One background duty: its name (its log field and metric label), how often it runs, where,
/// and one run, which answers how many items it handled.
pub struct Duty {
    pub name: &'static str,
    pub interval: Duration,
    pub scope: Scope,
    run: Run,
}

impl std::fmt::Debug for Duty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Duty")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Duty {
    /// A duty whose run is `run(state.clone())`: `state` is what it works on (the service, a
    /// setting).
    pub fn new<S, Fut, E>(name: &'static str, interval: Duration, scope: Scope, state: S, run: fn(S) -> Fut) -> Duty
    where
        S: Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<u64, E>> + Send + 'static,
        E: Into<DutyError>,
    {
        let run = move || -> Pin<Box<dyn Future<Output = Result<u64, DutyError>> + Send>> {
            let running = run(state.clone());
            Box::pin(async move { running.await.map_err(Into::into) })
        };
        Duty { name, interval, scope, run: Box::new(run) }
    }

    /// One run, counted and timed in the duty's metrics.
    pub async fn run_once(&self) -> Result<u64, DutyError> {
        let started = Instant::now();
        let result = (self.run)().await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("jobd_maintenance_runs_total", "duty" => self.name, "outcome" => outcome).increment(1);
        metrics::histogram!("jobd_maintenance_run_duration_seconds", "duty" => self.name)
            .record(started.elapsed().as_secs_f64());
        if let Ok(items) = result {
            metrics::counter!("jobd_maintenance_items_total", "duty" => self.name).increment(items);
        }
        result
    }
}

/// Every background duty of a node (the identity duties only with an identity service).
pub fn duties(service: &JobService, identity: Option<&IdentityService>, config: &MaintenanceConfig) -> Vec<Duty> {
    let mut duties = vec![
        job_timeouts::duty(service, config),
        lease_rescuer::duty(service, config),
        queue_vacuum::duty(service, config),
        job_cleaner::duty(service, config),
        key_pruner::duty(service, config),
    ];
    if let Some(identity) = identity {
        duties.push(token_pruner::duty(identity, config));
        duties.push(abuse_pruner::duty(identity, config));
    }
    duties
}

/// Runs every duty forever, each in a task of its own at its own interval (the first run at once).
pub fn spawn(
    service: JobService,
    identity: Option<IdentityService>,
    config: MaintenanceConfig,
) -> Vec<tokio::task::JoinHandle<()>> {
    duties(&service, identity.as_ref(), &config)
        .into_iter()
        .map(|duty| tokio::spawn(run_forever(service.clone(), duty)))
        .collect()
}

async fn run_forever(service: JobService, duty: Duty) {
    let mut ticker = tokio::time::interval(duty.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if duty.scope == Scope::Leader {
            match service.store().lead_maintenance().await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(duty = duty.name, %error, "cannot tell which node leads maintenance");
                    continue;
                }
            }
        }
        match duty.run_once().await {
            Ok(0) => {}
            Ok(items) => tracing::debug!(duty = duty.name, items, "maintenance duty ran"),
            Err(error) => tracing::warn!(duty = duty.name, %error, "maintenance duty failed"),
        }
    }
}

/// Applies a duty's event to each job it found due; a job that moved on meanwhile (finished, or
/// no longer due) is skipped. Answers how many took the event.
async fn apply_to_due(
    service: &JobService,
    due: Vec<jobd_store::JobRef>,
    event: jobd_core::JobEvent,
    what: &str,
) -> Result<u64, ServiceError> {
    let mut applied = 0;
    for job in due {
        match service.record(&job.project_id, &job.job_id, event.clone()).await {
            Ok(_) => {
                tracing::info!(job_id = %job.job_id, "{what}");
                applied += 1;
            }
            Err(ServiceError::Conflict(_)) | Err(ServiceError::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(applied)
}

/// A `Duration` as chrono's, saturating.
fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
