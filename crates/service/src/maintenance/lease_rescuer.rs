//! `lease_rescuer`: fails tasks whose last attempt's lease expired (`JobEvent::ExpireLease`,
//! `JOB.LEASE_EXPIRED`). An expired lease of an earlier attempt needs no rescue: the next claim
//! takes the task over.

use jobd_core::JobEvent;

use super::{apply_to_due, Duty, MaintenanceConfig, Scope, BATCH};
use crate::{JobService, Result};

pub const NAME: &str = "lease_rescuer";

pub fn duty(service: &JobService, config: &MaintenanceConfig) -> Duty {
    Duty::new(NAME, config.interval, Scope::Leader, service.clone(), |service| async move { run(&service).await })
}

/// One run at the service's clock: fails up to a batch of such tasks; answers how many.
pub async fn run(service: &JobService) -> Result<u64> {
    let due = service.store().list_expired_last_leases(service.now(), BATCH).await?;
    apply_to_due(service, due, JobEvent::ExpireLease, "last attempt's lease expired").await
}
