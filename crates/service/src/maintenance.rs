//! Background duties: time out overdue jobs and fail tasks whose last lease expired (the lease
//! rescuer) every round; prune finished jobs, old idempotency keys and expired tokens (retention)
//! every minute. `run_round` / `run_retention_round` do one round at the service's clock; `spawn`
//! repeats them.

use std::time::Duration;

use jobd_core::JobEvent;

use crate::{JobService, Result, ServiceError};

/// How much one round handles per duty, so no round holds the store for long.
const BATCH: u32 = 500;
/// Retention runs once every this many rounds (a minute at the default interval).
const RETENTION_EVERY_ROUNDS: u64 = 120;

#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// Finished jobs older than this are deleted.
    pub retention: Duration,
    /// How long `X-Client-Token`s are remembered (at least 24 h).
    pub idempotency_window: Duration,
    /// Time between rounds.
    pub interval: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            retention: Duration::from_secs(7 * 24 * 60 * 60),
            idempotency_window: Duration::from_secs(24 * 60 * 60),
            interval: Duration::from_millis(500),
        }
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    pub timed_out: usize,
    pub leases_expired: usize,
}

/// Runs each duty once.
pub async fn run_round(service: &JobService) -> Result<RoundReport> {
    let now = service.now();
    let mut report = RoundReport::default();
    for job in service.store().list_timed_out(now, BATCH).await? {
        if apply_if_due(service, &job, JobEvent::TimeOut).await? {
            tracing::info!(job_id = %job.job_id, "job timed out");
            report.timed_out += 1;
        }
    }
    for job in service.store().list_expired_last_leases(now, BATCH).await? {
        if apply_if_due(service, &job, JobEvent::ExpireLease).await? {
            tracing::info!(job_id = %job.job_id, "last attempt's lease expired");
            report.leases_expired += 1;
        }
    }
    Ok(report)
}

/// Retention: deletes a batch of finished jobs past `retention` and idempotency keys past their
/// window. Runs far less often than `run_round`.
pub async fn run_retention_round(service: &JobService, config: &MaintenanceConfig) -> Result<u64> {
    let now = service.now();
    let to_chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let cutoff = now - to_chrono(config.retention);
    let keys_cutoff = now - to_chrono(config.idempotency_window.max(Duration::from_secs(24 * 60 * 60)));
    Ok(service.store().prune(cutoff, keys_cutoff, BATCH).await?)
}

/// Applies a duty's event; a job that moved on meanwhile (finished, or no longer due) is skipped.
async fn apply_if_due(service: &JobService, job: &jobd_store::JobRef, event: JobEvent) -> Result<bool> {
    match service.record(&job.project_id, &job.job_id, event).await {
        Ok(_) => Ok(true),
        Err(ServiceError::Conflict(_)) | Err(ServiceError::NotFound(_)) => Ok(false),
        Err(other) => Err(other),
    }
}

/// How often (in ticks of `config.interval`) each node prunes its abuse counters.
const ABUSE_PRUNE_EVERY_TICKS: u64 = 60;

/// Runs rounds forever, every `config.interval`.
pub fn spawn(
    service: JobService,
    identity: Option<crate::identity::IdentityService>,
    config: MaintenanceConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round: u64 = 0;
        let mut ticks: u64 = 0;
        loop {
            ticker.tick().await;
            ticks += 1;
            // Abuse counters are each node's own: every node prunes them.
            if ticks >= ABUSE_PRUNE_EVERY_TICKS {
                ticks = 0;
                if let Some(identity) = &identity {
                    identity.prune_abuse_counters();
                }
            }
            // With several nodes on one store, one of them does each round.
            match service.store().lead_maintenance().await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(%error, "cannot tell which node leads maintenance");
                    continue;
                }
            }
            round += 1;
            match run_round(&service).await {
                Ok(report) if report != RoundReport::default() => tracing::debug!(?report, "maintenance round"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "maintenance round failed"),
            }
            if round % RETENTION_EVERY_ROUNDS != 1 {
                continue;
            }
            match run_retention_round(&service, &config).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "finished jobs past retention deleted"),
                Err(error) => tracing::warn!(%error, "retention round failed"),
            }
            if let Some(identity) = &identity {
                if let Err(error) = identity.prune_expired_tokens().await {
                    tracing::warn!(%error, "cannot prune expired tokens");
                }
            }
        }
    })
}
