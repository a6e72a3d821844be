//! Recently read job trees of the SQLite store, kept in memory so that a status poll (the seed
//! APIs' hot path) is a hash lookup instead of a read transaction and a b-tree descent per row.
//!
//! Correctness rests on one rule: the cache never holds a tree older than the last committed
//! write to it. The writer thread is the only writer of job rows; after each commit, and before
//! any write of that commit is answered, it evicts every tree the commit touched and bumps the
//! generation of each one's shard (`evict`). A reader that missed notes its shard's generation
//! *before* its read transaction starts and stores what it read only if the generation is still
//! the same (`store`, under the same lock as `evict`): a tree read from a snapshot older than
//! some commit to it can never be stored after that commit's eviction. So a reader sees either
//! what the database would answer now, or what it answered at a moment after the last
//! acknowledged write — a status never goes backwards and every acknowledged write is visible.
//!
//! Only root jobs are cached (sub-jobs are read from the database), and the cache is bounded:
//! a full shard drops an entry to make room.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use jobd_core::{Job, JobId, ProjectId};

/// Shards, each with its own lock, so that readers on different async threads rarely meet.
const SHARDS: usize = 32;

pub(crate) struct TreeCache {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    trees: HashMap<JobId, Arc<Job>>,
    /// Bumped by every eviction in this shard (whether or not it held the tree).
    generation: u64,
}

/// What a reader notes before it reads the database, to store what it read afterwards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    shard: usize,
    generation: u64,
}

impl TreeCache {
    /// A cache holding up to about `capacity` trees.
    pub(crate) fn new(capacity: usize) -> Self {
        TreeCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard_of(&self, job_id: &JobId) -> usize {
        (self.hasher.hash_one(job_id) as usize) % SHARDS
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while holding the lock cannot leave a shard half-written (each change is one
        // map call); carry on with it.
        self.shards[shard].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached tree rooted at `job_id` in `project_id`, or the ticket to store it once read.
    pub(crate) fn get(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Arc<Job>, Ticket> {
        let shard = self.shard_of(job_id);
        let guard = self.lock(shard);
        match guard.trees.get(job_id) {
            Some(tree) if &tree.project_id == project_id => Ok(tree.clone()),
            _ => Err(Ticket { shard, generation: guard.generation }),
        }
    }

    /// Keeps `tree` (read after `ticket` was taken) unless a commit touched its shard since.
    pub(crate) fn store(&self, ticket: Ticket, tree: &Arc<Job>) {
        if tree.parent_job_id.is_some() || self.shard_of(&tree.job_id) != ticket.shard {
            return;
        }
        let mut guard = self.lock(ticket.shard);
        if guard.generation != ticket.generation {
            return;
        }
        if guard.trees.len() >= self.per_shard && !guard.trees.contains_key(&tree.job_id) {
            // Full: drop one entry (whichever the map yields first, which is as good as random).
            if let Some(victim) = guard.trees.keys().next().cloned() {
                guard.trees.remove(&victim);
            }
        }
        guard.trees.insert(tree.job_id.clone(), tree.clone());
    }

    /// Forgets the trees rooted at `roots`: called after they were written and committed, before
    /// any write of the commit is answered.
    pub(crate) fn evict<'a>(&self, roots: impl IntoIterator<Item = &'a JobId>) {
        for root in roots {
            let mut guard = self.lock(self.shard_of(root));
            guard.generation += 1;
            guard.trees.remove(root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobd_core::{JobType, NewJob, ServiceName};

    fn tree(project: &ProjectId, message: &str) -> Arc<Job> {
        let new = NewJob::new(project.clone(), ServiceName::parse("elb").unwrap(), JobType::parse("UPGRADE").unwrap());
        let mut job = new.into_job(chrono::Utc::now()).unwrap();
        job.message = Some(message.to_owned());
        Arc::new(job)
    }

    #[test]
    fn a_tree_read_before_a_commit_is_not_stored_after_its_eviction() {
        let cache = TreeCache::new(64);
        let project = ProjectId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let old = tree(&project, "old");
        let ticket = cache.get(&project, &old.job_id).unwrap_err();
        // The writer commits a change to the tree and evicts it while the reader is reading.
        cache.evict([&old.job_id]);
        cache.store(ticket, &old);
        assert!(cache.get(&project, &old.job_id).is_err(), "the stale read must not be kept");
        // A read that starts after the eviction is kept.
        let ticket = cache.get(&project, &old.job_id).unwrap_err();
        let mut new = (*old).clone();
        new.message = Some("new".to_owned());
        let new = Arc::new(new);
        cache.store(ticket, &new);
        assert_eq!(cache.get(&project, &new.job_id).unwrap().message.as_deref(), Some("new"));
        // Another project does not see it.
        let other = ProjectId::parse("fedcba9876543210fedcba9876543210").unwrap();
        assert!(cache.get(&other, &new.job_id).is_err());
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = TreeCache::new(64);
        let project = ProjectId::parse("0123456789abcdef0123456789abcdef").unwrap();
        for _ in 0..1_000 {
            let job = tree(&project, "x");
            let ticket = cache.get(&project, &job.job_id).unwrap_err();
            cache.store(ticket, &job);
        }
        let held: usize = cache.shards.iter().map(|shard| shard.lock().unwrap().trees.len()).sum();
        assert!(held <= 64, "{held} trees held");
    }
}
