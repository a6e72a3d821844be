//! Claims this node kept in `task_queue`, remembered until their jobs' next write.
//!
//! A worker's report of a task this node claimed a moment ago would otherwise lock the job's
//! root (finding it through a second probe, looking for sub-jobs with a third), read back and
//! decode the row the claim itself decided on, and lock the queue row to read the claim it holds:
//! three statements and a transaction around them. Kept here, the report's events apply to the
//! job as kept, and one statement writes it where the row still has the version the claim read
//! (`events`).
//!
//! Why the version is enough: a claim is kept only when it stayed in `task_queue` alone
//! (`pending_claims`), that is on a lone job whose queue row held no claim, with its row at
//! version `V`. The claim is a change readers see (the job runs), so the job as claimed has a
//! later version than its row. While the queue row holds the claim no other claim can stay there
//! (a claim of a queue row that holds one writes the job row, as every write of a job row
//! does), and every write of the row after the claim writes the job as claimed or later: a
//! later version. So a row still at `V` is the kept row, with the kept claim in its queue row,
//! and a row written since (by another node, a rescue, a cancel) is not, whatever the write
//! changed; the events on it then take the locked path, on the job as it now stands.
//!
//! A report takes what it uses out (its write moves the version on anyway); claims whose reports
//! go to other nodes are dropped oldest first past a bound in bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jobd_core::{Job, JobId};

use crate::tree_cache::{approximate_bytes, BoundedTrees};

/// About how much memory the kept claims may hold; the oldest go first.
const KEPT_CLAIMS_BYTES: usize = 16 * 1024 * 1024;

/// A claim kept in `task_queue`: the job row it was decided on, and the job with it applied.
pub(super) struct KeptClaim {
    pub(super) stored: Job,
    pub(super) now: Arc<Job>,
}

impl KeptClaim {
    /// The job as stored and as it stands, owned.
    pub(super) fn into_pair(self) -> (Job, Job) {
        let now = Arc::try_unwrap(self.now).unwrap_or_else(|shared| (*shared).clone());
        (self.stored, now)
    }
}

#[derive(Default)]
pub(super) struct KeptClaims {
    claims: Mutex<BoundedTrees<KeptClaim>>,
}

impl KeptClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, BoundedTrees<KeptClaim>> {
        // Nothing a panic could leave half done here matters: a kept claim is only a hint the
        // version check confirms.
        self.claims.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps claims that committed, each a lone job's.
    pub(super) fn keep(&self, claims: impl IntoIterator<Item = KeptClaim>) {
        let mut kept = self.lock();
        for claim in claims {
            if let Some(bytes) = approximate_bytes(&claim.stored) {
                kept.insert(claim.stored.job_id.clone(), claim, 2 * bytes, KEPT_CLAIMS_BYTES);
            }
        }
    }

    /// Takes out the claims kept for `job_ids`, by job id (as text, as rows name them).
    pub(super) fn take<'a>(&self, job_ids: impl IntoIterator<Item = &'a JobId>) -> HashMap<String, KeptClaim> {
        let mut kept = self.lock();
        job_ids.into_iter().filter_map(|id| kept.take(id).map(|claim| (id.to_string(), claim))).collect()
    }
}
