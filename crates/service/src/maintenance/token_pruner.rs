//! `token_pruner`: deletes tokens that expired (past a grace period, see
//! `IdentityService::prune_expired_tokens`).

use super::{Duty, MaintenanceConfig, Scope};
use crate::identity::IdentityService;

pub const NAME: &str = "token_pruner";

pub fn duty(identity: &IdentityService, config: &MaintenanceConfig) -> Duty {
    Duty::new(NAME, config.retention_interval, Scope::Leader, identity.clone(), |identity| async move {
        identity.prune_expired_tokens().await
    })
}
