//! Background duties, each a named round: time out overdue jobs, fail tasks whose last lease
//! expired (the lease rescuer), and prune finished jobs and old idempotency keys (retention).
//! `run_round` does one round at the service's clock; `spawn` repeats it.

use std::time::Duration;

use jobd_core::JobEvent;

use crate::{JobService, Result, ServiceError};

/// How much one round handles per duty, so no round holds the store for long.
const BATCH: u32 = 500;

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
    pub pruned: u64,
}

/// Runs each duty once.
pub async fn run_round(service: &JobService, config: &MaintenanceConfig) -> Result<RoundReport> {
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
    let to_chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let cutoff = now - to_chrono(config.retention);
    let keys_cutoff = now - to_chrono(config.idempotency_window.max(Duration::from_secs(24 * 60 * 60)));
    report.pruned = service.store().prune(cutoff, keys_cutoff, BATCH).await?;
    Ok(report)
}

/// Applies a duty's event; a job that moved on meanwhile (finished, or no longer due) is skipped.
async fn apply_if_due(service: &JobService, job: &jobd_store::JobRef, event: JobEvent) -> Result<bool> {
    match service.record(&job.project_id, &job.job_id, event).await {
        Ok(_) => Ok(true),
        Err(ServiceError::Conflict(_)) | Err(ServiceError::NotFound(_)) => Ok(false),
        Err(other) => Err(other),
    }
}

/// Runs rounds forever, every `config.interval`.
pub fn spawn(service: JobService, config: MaintenanceConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match run_round(&service, &config).await {
                Ok(report) if report != RoundReport::default() => tracing::debug!(?report, "maintenance round"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "maintenance round failed"),
            }
        }
    })
}
