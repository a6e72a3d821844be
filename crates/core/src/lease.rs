//! Leases: a worker's exclusive, expiring hold on one task.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// Who holds a task and until when. The token proves the holder on heartbeat, complete and fail.
/// An expired lease keeps working until another claim takes the task over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub worker_id: String,
    pub token: String,
    pub expires_at: Timestamp,
}

impl Lease {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }
}

/// Bounds the worker API enforces.
pub const MIN_LEASE_SECONDS: u32 = 1;
pub const MAX_LEASE_SECONDS: u32 = 3600;
pub const DEFAULT_LEASE_SECONDS: u32 = 30;
