//! `lease_rescuer`: fails tasks whose last attempt's lease expired (`JobEvent::ExpireLease`,
//! `JOB.LEASE_EXPIRED`). An expired lease of an earlier attempt needs no rescue: the next claim
//! takes the task over.

use jobd_core::JobEvent;

use super::{apply_if_due, Duty, MaintenanceConfig, Scope, BATCH};
use crate::{JobService, Result};

pub const NAME: &str = "lease_rescuer";

pub fn duty(service: &JobService, config: &MaintenanceConfig) -> Duty {
    let service = service.clone();
    Duty::new(NAME, config.interval, Scope::Leader, move || {
        let service = service.clone();
        async move { run(&service).await }
    })
}

/// One run at the service's clock: fails up to a batch of such tasks; answers how many.
pub async fn run(service: &JobService) -> Result<u64> {
    let mut expired = 0;
    for job in service.store().list_expired_last_leases(service.now(), BATCH).await? {
        if apply_if_due(service, &job, JobEvent::ExpireLease).await? {
            tracing::info!(job_id = %job.job_id, "last attempt's lease expired");
            expired += 1;
        }
    }
    Ok(expired)
}
