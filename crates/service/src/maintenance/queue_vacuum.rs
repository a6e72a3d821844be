//! `queue_vacuum`: keeps the claim path lean. Claims and completions leave dead rows behind on
//! the claim path (PostgreSQL); once enough pile up, they are cleared (`JobStore::tidy_claim_path`)
//! rather than left for autovacuum, which wakes once a minute while every claim walks over them.

use super::{Duty, MaintenanceConfig, Scope};
use crate::{JobService, Result};

pub const NAME: &str = "queue_vacuum";

pub fn duty(service: &JobService, config: &MaintenanceConfig) -> Duty {
    Duty::new(NAME, config.interval, Scope::Leader, service.clone(), |service| async move { run(&service).await })
}

/// One run; answers how many dead rows the claim path held (0 when too few to clear).
pub async fn run(service: &JobService) -> Result<u64> {
    let dead = service.store().tidy_claim_path().await?;
    if dead > 0 {
        tracing::debug!(dead, "claim path vacuumed");
    }
    Ok(dead)
}
