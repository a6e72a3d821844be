//! `key_pruner`: forgets idempotency keys (`X-Client-Token`s) older than the idempotency window
//! (at least 24 h, whatever is configured).

use std::time::Duration;

use super::{to_chrono, Duty, MaintenanceConfig, Scope};
use crate::{JobService, Result};

pub const NAME: &str = "key_pruner";

/// Keys are remembered at least this long.
pub const MIN_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

pub fn duty(service: &JobService, config: &MaintenanceConfig) -> Duty {
    let state = (service.clone(), config.idempotency_window);
    Duty::new(NAME, config.retention_interval, Scope::Leader, state, |(service, window)| async move {
        run(&service, window).await
    })
}

/// One run at the service's clock; answers how many keys went.
pub async fn run(service: &JobService, window: Duration) -> Result<u64> {
    let cutoff = service.now() - to_chrono(window.max(MIN_WINDOW));
    Ok(service.store().prune_idempotency_keys(cutoff).await?)
}
