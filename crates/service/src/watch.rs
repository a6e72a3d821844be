//! Watching jobs: one broadcast channel per watched job tree, fed by every change the service
//! announces. Watchers cost a channel slot, not a task or a store query; a tree nobody watches
//! has no channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jobd_core::{Job, JobId};
use tokio::sync::broadcast;

/// How many changes of one tree a slow watcher may fall behind before it re-reads the store.
const PER_JOB_BACKLOG: usize = 256;

#[derive(Default)]
pub(crate) struct Watchers {
    by_tree: Mutex<HashMap<JobId, broadcast::Sender<Arc<Job>>>>,
}

/// A subscription to one job tree. Dropping it frees the channel when it was the last.
pub struct TreeWatch {
    pub(crate) receiver: broadcast::Receiver<Arc<Job>>,
    watchers: Arc<Watchers>,
    root_id: JobId,
}

impl Watchers {
    pub(crate) fn subscribe(self: &Arc<Self>, root_id: &JobId) -> TreeWatch {
        let mut by_tree = self.by_tree.lock().expect("watchers");
        let sender = by_tree.entry(root_id.clone()).or_insert_with(|| broadcast::channel(PER_JOB_BACKLOG).0);
        TreeWatch { receiver: sender.subscribe(), watchers: self.clone(), root_id: root_id.clone() }
    }

    /// Hands a changed tree to its watchers, if it has any.
    pub(crate) fn publish(&self, tree: &Arc<Job>) {
        let by_tree = self.by_tree.lock().expect("watchers");
        if let Some(sender) = by_tree.get(&tree.job_id) {
            let _ = sender.send(tree.clone());
        }
    }

    pub(crate) fn watched_trees(&self) -> usize {
        self.by_tree.lock().expect("watchers").len()
    }
}

impl TreeWatch {
    /// The next change of the tree: the whole tree as it then stood.
    pub async fn recv(&mut self) -> Result<Arc<Job>, broadcast::error::RecvError> {
        self.receiver.recv().await
    }
}

impl Drop for TreeWatch {
    fn drop(&mut self) {
        let mut by_tree = self.watchers.by_tree.lock().expect("watchers");
        // This receiver still counts until the end of this function.
        if by_tree.get(&self.root_id).is_some_and(|sender| sender.receiver_count() <= 1) {
            by_tree.remove(&self.root_id);
        }
    }
}
