//! `job_cleaner`: deletes finished jobs (with their sub-jobs) that ended longer than `retention`
//! ago, a batch per run.

use std::time::Duration;

use super::{to_chrono, Duty, MaintenanceConfig, Scope, BATCH};
use crate::{JobService, Result};

pub const NAME: &str = "job_cleaner";

pub fn duty(service: &JobService, config: &MaintenanceConfig) -> Duty {
    let state = (service.clone(), config.retention);
    Duty::new(NAME, config.retention_interval, Scope::Leader, state, |(service, retention)| async move {
        run(&service, retention).await
    })
}

/// One run at the service's clock; answers how many top-level jobs went.
pub async fn run(service: &JobService, retention: Duration) -> Result<u64> {
    let pruned = service.store().prune_finished_jobs(service.now() - to_chrono(retention), BATCH).await?;
    if pruned > 0 {
        tracing::info!(pruned, "finished jobs past retention deleted");
    }
    Ok(pruned)
}
