//! Recently read job trees of the SQLite store, kept in memory so that a status poll (the seed
//! APIs' hot path) is a hash lookup instead of a read transaction and a b-tree descent per row.
//!
//! What a reader may be served: the tree as the database held it at some moment no earlier than
//! the last *answered* write to it. The writer thread is the only writer of job rows; after each
//! commit, and before any write of that commit is answered, it evicts every tree the commit
//! touched and bumps the generation of each one's shard (`evict`). A reader that missed notes its
//! shard's generation *before* its read transaction starts and stores what it read only if the
//! generation is still the same (`store`, under the same lock as `evict`): a tree read from a
//! snapshot older than some commit to it is never stored after that commit's eviction. Between a
//! commit and its eviction (the writer's next few microseconds, before it answers anyone) a poll
//! may still be served the tree from before the commit, as it would be had it arrived a moment
//! earlier. Two readers racing in that window cannot make the cache go back: `store` never
//! replaces a tree with one of a lower version (every visible change raises the root's version).
//!
//! Only root jobs are cached (sub-jobs are read from the database). The cache is bounded in bytes
//! (an estimate of each tree's size; a tree past `MAX_TREE_BYTES` is never kept), and a full
//! shard drops its oldest entries first.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use foldhash::fast::RandomState;
use jobd_core::{Job, JobId, ProjectId};
use serde_json::Value;

/// Shards, each with its own lock, so that readers on different async threads rarely meet.
const SHARDS: usize = 32;
/// A tree estimated past this size is read from the database every time.
const MAX_TREE_BYTES: usize = 256 * 1024;

pub(crate) struct TreeCache {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    bytes_per_shard: usize,
}

#[derive(Default)]
struct Shard {
    trees: BoundedTrees<Arc<Job>>,
    /// Bumped by every eviction in this shard (whether or not it held the tree).
    generation: u64,
}

/// Values by tree root, bounded in bytes (each value's estimate, `approximate_bytes`), the oldest
/// kept dropped first: a shard of the tree cache, and the lone leased jobs the SQLite writer keeps.
pub(crate) struct BoundedTrees<V> {
    /// foldhash, not SipHash: the key is an id jobd made, and the lookup is on every status read.
    entries: HashMap<JobId, (V, usize), RandomState>,
    /// Ids in the order they were kept, oldest first; ids removed since are skipped lazily.
    order: VecDeque<JobId>,
    bytes: usize,
}

impl<V> Default for BoundedTrees<V> {
    fn default() -> Self {
        BoundedTrees { entries: HashMap::default(), order: VecDeque::new(), bytes: 0 }
    }
}

impl<V> BoundedTrees<V> {
    pub(crate) fn get(&self, root: &JobId) -> Option<&V> {
        self.entries.get(root).map(|(value, _)| value)
    }

    pub(crate) fn remove(&mut self, root: &JobId) {
        self.take(root);
    }

    /// Removes what is kept for `root`, and hands it over.
    pub(crate) fn take(&mut self, root: &JobId) -> Option<V> {
        let (value, bytes) = self.entries.remove(root)?;
        self.bytes -= bytes;
        Some(value)
    }

    /// Keeps `value` (about `bytes` of memory) for `root`, in place of what was kept for it,
    /// dropping the oldest until all fit in `max_bytes`.
    pub(crate) fn insert(&mut self, root: JobId, value: V, bytes: usize, max_bytes: usize) {
        self.remove(&root);
        while self.bytes + bytes > max_bytes {
            let Some(oldest) = self.order.pop_front() else { break };
            self.remove(&oldest);
        }
        self.entries.insert(root.clone(), (value, bytes));
        self.order.push_back(root);
        self.bytes += bytes;
        if self.order.len() > 2 * self.entries.len() + 64 {
            // Mostly ids removed since (by writes): drop them.
            let entries = &self.entries;
            self.order.retain(|id| entries.contains_key(id));
        }
    }
}

/// What a reader notes before it reads the database, to store what it read afterwards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    shard: usize,
    generation: u64,
}

impl TreeCache {
    /// A cache holding about `max_bytes` of trees at most.
    pub(crate) fn new(max_bytes: usize) -> Self {
        TreeCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::default(),
            bytes_per_shard: max_bytes.div_ceil(SHARDS).max(1),
        }
    }

    fn shard_of(&self, job_id: &JobId) -> usize {
        (self.hasher.hash_one(job_id) as usize) % SHARDS
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while holding the lock cannot leave a shard inconsistent in a way that matters
        // (at worst a byte count or a stale id in `order`); carry on with it.
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

    /// Keeps `tree` (read after `ticket` was taken) unless a commit touched its shard since, or
    /// a newer version of it is already kept.
    pub(crate) fn store(&self, ticket: Ticket, tree: &Arc<Job>) {
        if tree.parent_job_id.is_some() || self.shard_of(&tree.job_id) != ticket.shard {
            return;
        }
        let Some(bytes) = approximate_bytes(tree) else { return };
        let mut guard = self.lock(ticket.shard);
        let shard = &mut *guard;
        if shard.generation != ticket.generation {
            return;
        }
        if shard.trees.get(&tree.job_id).is_some_and(|kept| kept.version >= tree.version) {
            return;
        }
        shard.trees.insert(tree.job_id.clone(), tree.clone(), bytes, self.bytes_per_shard);
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

/// About how much memory a tree holds, or `None` past `MAX_TREE_BYTES`.
pub(crate) fn approximate_bytes(tree: &Job) -> Option<usize> {
    let mut bytes = 0;
    for job in tree.iter_tree() {
        let texts = [&job.message, &job.resource_id, &job.error_code, &job.error_msg];
        bytes += std::mem::size_of::<Job>()
            + job.enterprise_project_id.len()
            + job.job_type.as_str().len()
            + texts.iter().map(|text| text.as_ref().map_or(0, String::len)).sum::<usize>()
            + job.entities.iter().map(|e| 48 + e.resource_id.len() + e.resource_type.len()).sum::<usize>()
            + job.payload.as_ref().map_or(0, json_bytes)
            + job.result.as_ref().map_or(0, json_bytes);
        if bytes > MAX_TREE_BYTES {
            return None;
        }
    }
    Some(bytes)
}

fn json_bytes(value: &Value) -> usize {
    std::mem::size_of::<Value>()
        + match value {
            Value::String(text) => text.len(),
            Value::Array(items) => items.iter().map(json_bytes).sum(),
            Value::Object(fields) => fields.iter().map(|(key, value)| 32 + key.len() + json_bytes(value)).sum(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
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

    fn project() -> ProjectId {
        ProjectId::parse("0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn a_tree_read_before_a_commit_is_not_stored_after_its_eviction() {
        let cache = TreeCache::new(1 << 20);
        let project = project();
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
        new.version += 1;
        let new = Arc::new(new);
        cache.store(ticket, &new);
        assert_eq!(cache.get(&project, &new.job_id).unwrap().message.as_deref(), Some("new"));
        // A slower reader of the same generation with an older version does not replace it.
        cache.store(ticket, &old);
        assert_eq!(cache.get(&project, &new.job_id).unwrap().message.as_deref(), Some("new"));
        // Another project does not see it.
        let other = ProjectId::parse("fedcba9876543210fedcba9876543210").unwrap();
        assert!(cache.get(&other, &new.job_id).is_err());
    }

    #[test]
    fn the_cache_stays_within_its_bytes_and_drops_the_oldest_first() {
        let budget = 64 * 1024;
        let cache = TreeCache::new(budget);
        let project = project();
        let trees: Vec<Arc<Job>> = (0..2_000).map(|_| tree(&project, "x")).collect();
        for job in &trees {
            let ticket = cache.get(&project, &job.job_id).unwrap_err();
            cache.store(ticket, job);
        }
        let held: usize = cache.shards.iter().map(|shard| shard.lock().unwrap().trees.bytes).sum();
        assert!(held <= budget + SHARDS * 2048, "{held} bytes held");
        assert!(cache.get(&project, &trees.last().unwrap().job_id).is_ok(), "the newest is kept");
        assert!(cache.get(&project, &trees[0].job_id).is_err(), "the oldest went first");
    }

    #[test]
    fn a_tree_too_large_is_never_kept() {
        let cache = TreeCache::new(64 << 20);
        let project = project();
        let mut job = (*tree(&project, "x")).clone();
        job.payload = Some(Value::String("x".repeat(MAX_TREE_BYTES)));
        let job = Arc::new(job);
        let ticket = cache.get(&project, &job.job_id).unwrap_err();
        cache.store(ticket, &job);
        assert!(cache.get(&project, &job.job_id).is_err());
    }
}
