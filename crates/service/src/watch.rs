//! Watching jobs: one broadcast channel per watched job tree, fed by every change the service
//! announces. Watchers cost a channel slot, not a task or a store query; a tree nobody watches
//! has no channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jobd_core::{Job, JobId};
use tokio::sync::broadcast;

/// How many changes of one tree a slow watcher may fall behind before it re-reads the store.
const PER_JOB_BACKLOG: usize = 256;

/// How many trees' latest announced versions are remembered (the oldest are forgotten first).
const REMEMBERED_TREES: usize = 65_536;

#[derive(Default)]
pub(crate) struct Watchers {
    by_tree: Mutex<HashMap<JobId, broadcast::Sender<Arc<Job>>>>,
    announced: Mutex<AnnouncedVersions>,
}

/// The latest version announced of each recently changed tree. Writes that commit together (a
/// group commit, or two nodes' writes) are answered at once and their announcements race: a
/// tree's older version must not be announced after a newer one (a watcher would see its status
/// go back). A tree is forgotten only after `REMEMBERED_TREES` others changed since, far longer
/// than any announcement waits.
#[derive(Default)]
struct AnnouncedVersions {
    latest: HashMap<JobId, i64>,
    order: std::collections::VecDeque<JobId>,
}

impl AnnouncedVersions {
    /// Whether `tree` is newer than every version of it announced so far (and records it).
    fn advance(&mut self, tree: &Job) -> bool {
        match self.latest.get_mut(&tree.job_id) {
            Some(latest) if *latest >= tree.version => false,
            Some(latest) => {
                *latest = tree.version;
                true
            }
            None => {
                if self.order.len() == REMEMBERED_TREES {
                    if let Some(oldest) = self.order.pop_front() {
                        self.latest.remove(&oldest);
                    }
                }
                self.latest.insert(tree.job_id.clone(), tree.version);
                self.order.push_back(tree.job_id.clone());
                true
            }
        }
    }
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

    /// Whether a changed tree is newer than what was announced of it (then it is to be announced).
    pub(crate) fn is_news(&self, tree: &Job) -> bool {
        self.announced.lock().expect("announced versions").advance(tree)
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

#[cfg(test)]
mod tests {
    use super::*;
    use jobd_core::{JobType, NewJob, ProjectId, ServiceName};

    #[test]
    fn an_older_version_is_not_news_after_a_newer_one() {
        let project = ProjectId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let new = NewJob::new(project, ServiceName::parse("cfw").unwrap(), JobType::parse("T").unwrap());
        let v1 = new.into_job(chrono::Utc::now()).unwrap();
        let v2 = Job { version: v1.version + 1, ..v1.clone() };
        let watchers = Watchers::default();
        assert!(watchers.is_news(&v1));
        assert!(watchers.is_news(&v2));
        assert!(!watchers.is_news(&v1), "announced after its successor");
        assert!(!watchers.is_news(&v2), "announced twice");
    }
}
