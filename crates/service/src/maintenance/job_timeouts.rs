//! `job_timeouts`: fails jobs past their `timeout_seconds` (`JobEvent::TimeOut`, `JOB.TIMEOUT`).

use jobd_core::JobEvent;

use super::{apply_if_due, Duty, MaintenanceConfig, Scope, BATCH};
use crate::{JobService, Result};

pub const NAME: &str = "job_timeouts";

pub fn duty(service: &JobService, config: &MaintenanceConfig) -> Duty {
    let service = service.clone();
    Duty::new(NAME, config.interval, Scope::Leader, move || {
        let service = service.clone();
        async move { run(&service).await }
    })
}

/// One run at the service's clock: times out up to a batch of overdue jobs; answers how many.
pub async fn run(service: &JobService) -> Result<u64> {
    let mut timed_out = 0;
    for job in service.store().list_timed_out(service.now(), BATCH).await? {
        if apply_if_due(service, &job, JobEvent::TimeOut).await? {
            tracing::info!(job_id = %job.job_id, "job timed out");
            timed_out += 1;
        }
    }
    Ok(timed_out)
}
