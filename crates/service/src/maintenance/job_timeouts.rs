//! `job_timeouts`: fails jobs past their `timeout_seconds` (`JobEvent::TimeOut`, `JOB.TIMEOUT`).

use jobd_core::JobEvent;

use super::{apply_to_due, Duty, MaintenanceConfig, Scope, BATCH};
use crate::{JobService, Result};

pub const NAME: &str = "job_timeouts";

pub fn duty(service: &JobService, config: &MaintenanceConfig) -> Duty {
    Duty::new(NAME, config.interval, Scope::Leader, service.clone(), |service| async move { run(&service).await })
}

/// One run at the service's clock: times out up to a batch of overdue jobs; answers how many.
pub async fn run(service: &JobService) -> Result<u64> {
    let due = service.store().list_timed_out(service.now(), BATCH).await?;
    apply_to_due(service, due, JobEvent::TimeOut, "job timed out").await
}
