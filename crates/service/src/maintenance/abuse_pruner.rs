//! `abuse_pruner`: forgets this node's abuse counters with nothing left to remember (full rate-limit
//! buckets, signature failures past their window), so the maps stay small between the hard caps
//! of `crate::abuse`. Every node runs it: the counters are each node's own.

use super::{Duty, MaintenanceConfig, Scope};
use crate::identity::IdentityService;

pub const NAME: &str = "abuse_pruner";

pub fn duty(identity: &IdentityService, config: &MaintenanceConfig) -> Duty {
    Duty::new(NAME, config.abuse_prune_interval, Scope::EveryNode, identity.clone(), |identity| async move {
        Ok::<_, crate::identity::IdentityError>(identity.prune_abuse_counters())
    })
}
