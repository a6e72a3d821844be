//! Group commit for the SQLite store: SQLite has one writer, and each commit waits for an fsync,
//! so job writes that arrive together are run one after another inside one transaction and share
//! one commit. The writer is a plain synchronous connection (rusqlite) owned by a thread of its
//! own: a write is a closure run on that thread, so its statements (prepared once, cached) cost
//! microseconds each, with no hand-off to another thread per statement.
//!
//! Each write runs inside its own savepoint: a write that fails (or panics) is rolled back alone.
//! Every write, failed or not, is answered only once the commit's outcome is known: a failure may
//! depend on an earlier write of the batch (a cancel before a complete), so it must not be told
//! before that write is durable; if the commit fails, every write is answered "unavailable, try
//! again".
//!
//! Writes run in arrival order, each seeing the ones before it, exactly as if each had its own
//! transaction. A caller that stops waiting does not cancel its write.
//!
//! The writer also keeps the lone leased jobs its own commits left (`LeasedTrees`): a worker's
//! report names a task it was just handed, and finds its tree there instead of reading and
//! decoding its row (a quarter of the writer's time in the burn-down's profile). The writer is the
//! only writer of job rows, so a kept tree is the row as committed until the writer touches it
//! again; every touch forgets it first, a write rolled back keeps nothing, and the update still
//! checks the row's version.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;
use jobd_core::{Job, JobId};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, StoreError};
use crate::tree_cache::{approximate_bytes, BoundedTrees, TreeCache};

/// The most writes sharing one commit.
const MAX_BATCH: usize = 256;

/// About how much memory the lone leased jobs the writer keeps may hold; the oldest go first.
const LEASED_TREES_BYTES: usize = 8 << 20;

/// Back-pressure: how many writes may wait for the writer, and how long a write waits for room
/// before it is refused as `Unavailable` (`503` with `Retry-After`). Memory stays bounded under
/// overload, and a caller learns it in bounded time; nothing queued is dropped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub(crate) capacity: usize,
    pub(crate) wait: Duration,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits { capacity: MAX_BATCH, wait: Duration::from_secs(2) }
    }
}

/// One write: statements run on the writer connection inside an open transaction.
pub(crate) type WriteFn<T> = Box<dyn FnOnce(&WriteTx) -> Result<T> + Send>;

/// The writer's connection inside a batch's transaction, and the job trees the batch's writes
/// touched: once the batch is committed, and before any of its writes is answered, those trees
/// are evicted from the readers' cache.
pub(crate) struct WriteTx<'c> {
    conn: &'c Connection,
    touched: RefCell<Vec<JobId>>,
    /// The row id (`seq`) of each job row read in this batch, so its update finds the row by
    /// its primary key instead of through the job-id index. A row id never changes.
    row_ids: RefCell<HashMap<JobId, i64, RandomState>>,
    /// The lone leased jobs as committed by earlier batches, none of them touched in this one.
    leased: &'c RefCell<LeasedTrees>,
    /// Lone leased jobs this batch's writes left, each with the write that left it and its
    /// size: kept once the batch is committed, dropped with a write that is rolled back.
    kept: RefCell<HashMap<JobId, (usize, LeasedTree, usize), RandomState>>,
    /// The write running now (its index in the batch).
    write: Cell<usize>,
}

impl<'c> WriteTx<'c> {
    fn new(conn: &'c Connection, leased: &'c RefCell<LeasedTrees>) -> Self {
        WriteTx {
            conn,
            touched: RefCell::new(Vec::new()),
            row_ids: RefCell::new(HashMap::default()),
            leased,
            kept: RefCell::new(HashMap::default()),
            write: Cell::new(0),
        }
    }

    /// Notes the row id of a job row just read.
    pub(crate) fn note_row_id(&self, job_id: &JobId, row_id: i64) {
        self.row_ids.borrow_mut().insert(job_id.clone(), row_id);
    }

    /// The row id of a job row read earlier in this batch.
    pub(crate) fn row_id(&self, job_id: &JobId) -> Option<i64> {
        self.row_ids.borrow().get(job_id).copied()
    }

    /// Notes that the tree rooted at `root` is written (inserted, changed or deleted): the
    /// writer forgets what it kept of it.
    pub(crate) fn touch(&self, root: &JobId) {
        self.touched.borrow_mut().push(root.clone());
        self.leased.borrow_mut().remove(root);
        self.kept.borrow_mut().remove(root);
    }

    /// The lone leased job `job_id` as stored, if the writer kept it (its row id noted).
    pub(crate) fn leased_tree(&self, job_id: &JobId) -> Option<Arc<Job>> {
        let leased = self.leased.borrow();
        let kept = leased.get(job_id)?;
        self.note_row_id(job_id, kept.row_id);
        Some(kept.tree.clone())
    }

    /// Keeps `tree`, just claimed and written, if it is a lone leased job whose row id is known:
    /// a report on its task will find it (once this batch is committed).
    pub(crate) fn keep_if_leased(&self, tree: &Arc<Job>) {
        if tree.parent_job_id.is_some() || tree.has_sub_jobs() || tree.lease.is_none() {
            return;
        }
        let (Some(row_id), Some(bytes)) = (self.row_id(&tree.job_id), approximate_bytes(tree)) else { return };
        let kept = LeasedTree { row_id, tree: tree.clone() };
        self.kept.borrow_mut().insert(tree.job_id.clone(), (self.write.get(), kept, bytes));
    }

    /// Forgets what the write running now kept: it is being rolled back.
    fn roll_back_kept(&self) {
        let write = self.write.get();
        self.kept.borrow_mut().retain(|_, (by, _, _)| *by != write);
    }
}

/// A lone leased job as the writer's last write of it committed it.
struct LeasedTree {
    row_id: i64,
    tree: Arc<Job>,
}

/// The lone leased jobs the writer keeps, bounded in bytes (`LEASED_TREES_BYTES`), oldest dropped
/// first.
type LeasedTrees = BoundedTrees<LeasedTree>;

impl Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// Opens the writer connection (again, after a failure that left it unusable).
pub(crate) type OpenWriter = Box<dyn Fn() -> Result<Connection> + Send>;

/// A queued write, its result type erased.
trait Pending: Send {
    /// Runs the write; `false` when it failed or panicked (its changes must be rolled back).
    fn run(&mut self, tx: &WriteTx) -> bool;
    /// Answers the write once the commit's outcome is known.
    fn finish(self: Box<Self>, committed: std::result::Result<(), String>);
}

struct Write<T> {
    work: Option<WriteFn<T>>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send + 'static> Pending for Write<T> {
    fn run(&mut self, tx: &WriteTx) -> bool {
        let work = self.work.take().expect("a write runs once");
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| work(tx))) {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::error!("a store write panicked; it was rolled back");
                Err(StoreError::Corrupt("a store write panicked".to_owned()))
            }
        };
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), String>) {
        let answer = match (committed, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (Err(error), _) => Err(StoreError::Unavailable(format!("the write was not committed: {error}"))),
            (Ok(()), None) => Err(StoreError::Corrupt("a write was committed without running".to_owned())),
        };
        let _ = self.reply.send(answer);
    }
}

/// The handle the store writes through; the writer thread ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Box<dyn Pending>>,
    wait: Duration,
}

impl GroupCommit {
    /// Opens the writer connection and starts the writer thread on it; each commit evicts the
    /// trees it touched from `cache`.
    pub(crate) fn start(open: OpenWriter, limits: QueueLimits, cache: Arc<TreeCache>) -> Result<Self> {
        let conn = open()?;
        let (queue, receiver) = mpsc::channel(limits.capacity.max(1));
        std::thread::Builder::new()
            .name("jobd-sqlite-writer".to_owned())
            .spawn(move || run_batches(conn, open, receiver, &cache))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(GroupCommit { queue, wait: limits.wait })
    }

    /// Runs `work` in the next batch and answers once it is committed.
    pub(crate) async fn write<T: Send + 'static>(&self, work: WriteFn<T>) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let pending = Box::new(Write { work: Some(work), outcome: None, reply });
        self.queue.send_timeout(pending, self.wait).await.map_err(|error| match error {
            mpsc::error::SendTimeoutError::Timeout(_) => {
                StoreError::Unavailable(format!("the store's write queue stayed full for {:?}; try again", self.wait))
            }
            mpsc::error::SendTimeoutError::Closed(_) => StoreError::Unavailable("the store is closed".to_owned()),
        })?;
        answer.await.map_err(|_| StoreError::Unavailable("the store's writer stopped".to_owned()))?
    }
}

fn run_batches(
    mut conn: Connection,
    open: OpenWriter,
    mut receiver: mpsc::Receiver<Box<dyn Pending>>,
    cache: &TreeCache,
) {
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(MAX_BATCH);
    let leased = RefCell::new(LeasedTrees::default());
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let tx = WriteTx::new(&conn, &leased);
        let outcome = run_writes(&tx, &mut batch).map_err(|error| error.to_string());
        // Evicted whatever the outcome (a failed commit changed nothing; evicting costs a miss).
        cache.evict(tx.touched.into_inner().iter());
        if outcome.is_ok() {
            let mut leased = leased.borrow_mut();
            for (job_id, (_, tree, bytes)) in tx.kept.into_inner() {
                leased.insert(job_id, tree, bytes, LEASED_TREES_BYTES);
            }
        }
        if let Err(error) = &outcome {
            tracing::error!(%error, writes = batch.len(), "a group commit failed");
            let _ = execute(&conn, "ROLLBACK");
            if !conn.is_autocommit() {
                // The transaction is still open: later writes would run inside a transaction
                // nobody commits. Open the connection anew (the old one rolls back as it closes).
                match open() {
                    Ok(fresh) => conn = fresh,
                    Err(error) => tracing::error!(%error, "cannot reopen the SQLite writer"),
                }
            }
        }
        for write in batch.drain(..) {
            write.finish(outcome.clone());
        }
    }
}

/// Runs the writes in one transaction, each in a savepoint, and commits. A batch of one write
/// needs no savepoint (a failed write rolls back the whole transaction, which is the same), and
/// saves the sub-journal copy of every page it changes.
fn run_writes(tx: &WriteTx, batch: &mut [Box<dyn Pending>]) -> Result<()> {
    execute(tx, "BEGIN IMMEDIATE")?;
    if let [only] = batch {
        if !only.run(tx) {
            tx.roll_back_kept();
            return execute(tx, "ROLLBACK");
        }
        return execute(tx, "COMMIT");
    }
    for (index, write) in batch.iter_mut().enumerate() {
        tx.write.set(index);
        execute(tx, "SAVEPOINT write")?;
        if !write.run(tx) {
            tx.roll_back_kept();
            execute(tx, "ROLLBACK TO write")?;
        }
        execute(tx, "RELEASE write")?;
    }
    execute(tx, "COMMIT")
}

/// Runs a statement without parameters (prepared once per connection).
fn execute(conn: &Connection, sql: &'static str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_memory(name: &'static str) -> OpenWriter {
        // A shared in-memory database: every connection to the name sees the same data.
        Box::new(move || {
            let conn = Connection::open(format!("file:{name}?mode=memory&cache=shared"))?;
            conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)", [])?;
            Ok(conn)
        })
    }

    fn insert(n: i64, then_fail: bool) -> WriteFn<i64> {
        Box::new(move |conn| {
            conn.execute("INSERT INTO t (n) VALUES (?)", [n])?;
            if then_fail {
                return Err(StoreError::Conflict(n.to_string()));
            }
            Ok(n)
        })
    }

    async fn rows(commits: &GroupCommit) -> Vec<i64> {
        commits
            .write(Box::new(|conn| {
                let mut statement = conn.prepare("SELECT n FROM t ORDER BY n")?;
                let rows = statement.query_map([], |row| row.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<i64>>>()?)
            }))
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_or_panicking_write_is_rolled_back_alone() {
        let open = open_memory("rolled_back_alone");
        let _keep = open().unwrap(); // the shared memory database lives while a connection does
        let commits = GroupCommit::start(open, QueueLimits::default(), Arc::new(TreeCache::new(16))).unwrap();
        let panicking: WriteFn<i64> = Box::new(|conn| {
            conn.execute("INSERT INTO t (n) VALUES (99)", [])?;
            panic!("a bug in a write");
        });
        let (first, failing, panicked, last) = tokio::join!(
            commits.write(insert(1, false)),
            commits.write(insert(2, true)),
            commits.write(panicking),
            commits.write(insert(3, false)),
        );
        assert_eq!(first.unwrap(), 1);
        assert!(matches!(failing, Err(StoreError::Conflict(_))), "{failing:?}");
        assert!(matches!(panicked, Err(StoreError::Corrupt(_))), "{panicked:?}");
        assert_eq!(last.unwrap(), 3);
        assert_eq!(rows(&commits).await, vec![1, 3]);
        // The writer carries on, outside any leftover transaction.
        assert_eq!(commits.write(insert(4, false)).await.unwrap(), 4);
        assert_eq!(rows(&commits).await, vec![1, 3, 4]);
    }

    fn leased_job() -> Arc<Job> {
        use jobd_core::{JobType, Lease, NewJob, ProjectId, ServiceName};
        let project = ProjectId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let new = NewJob::new(project, ServiceName::parse("cfw").unwrap(), JobType::parse("NoOp").unwrap());
        let mut job = new.into_job(chrono::Utc::now()).unwrap();
        job.lease = Some(Lease { worker_id: "w".into(), token: "t".into(), expires_at: chrono::Utc::now() });
        Arc::new(job)
    }

    /// What the writer kept, seen by a later write: the tree and its row id, or nothing.
    async fn kept(commits: &GroupCommit, job_id: &JobId) -> Option<(JobId, Option<i64>)> {
        let job_id = job_id.clone();
        commits
            .write(Box::new(move |tx| {
                Ok(tx.leased_tree(&job_id).map(|tree| (tree.job_id.clone(), tx.row_id(&job_id))))
            }))
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kept_tree_outlives_only_committed_writes_that_leave_it_alone() {
        let open = open_memory("kept_trees");
        let _keep = open().unwrap();
        let commits = GroupCommit::start(open, QueueLimits::default(), Arc::new(TreeCache::new(16))).unwrap();
        let job = leased_job();
        let id = job.job_id.clone();
        let keep = |job: Arc<Job>, then_fail: bool| -> WriteFn<()> {
            Box::new(move |tx| {
                tx.note_row_id(&job.job_id, 7);
                tx.keep_if_leased(&job);
                if then_fail {
                    return Err(StoreError::Conflict("rolled back".into()));
                }
                Ok(())
            })
        };
        // Kept by a committed write: a later write finds it, with its row id.
        commits.write(keep(job.clone(), false)).await.unwrap();
        assert_eq!(kept(&commits, &id).await, Some((id.clone(), Some(7))));
        // A write that touches the tree forgets it, even when that write is rolled back.
        let touch: WriteFn<()> = {
            let id = id.clone();
            Box::new(move |tx| {
                tx.touch(&id);
                Err(StoreError::Conflict("rolled back".into()))
            })
        };
        assert!(commits.write(touch).await.is_err());
        assert_eq!(kept(&commits, &id).await, None);
        // A write rolled back keeps nothing.
        assert!(commits.write(keep(job.clone(), true)).await.is_err());
        assert_eq!(kept(&commits, &id).await, None);
        // A tree without a lease is never kept.
        let mut free = (*job).clone();
        free.lease = None;
        commits.write(keep(Arc::new(free), false)).await.unwrap();
        assert_eq!(kept(&commits, &id).await, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_write_queue_refuses_in_bounded_time_and_loses_nothing_queued() {
        let open = open_memory("bounded_queue");
        let _keep = open().unwrap();
        let limits = QueueLimits { capacity: 2, wait: Duration::from_millis(200) };
        let commits = GroupCommit::start(open, limits, Arc::new(TreeCache::new(16))).unwrap();
        // The writer is busy with a write that waits for the test.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let blocking: WriteFn<i64> = Box::new(move |conn| {
            let _ = started.send(());
            let _ = released.recv();
            conn.execute("INSERT INTO t (n) VALUES (0)", [])?;
            Ok(0)
        });
        let busy = tokio::spawn({
            let commits = commits.clone();
            async move { commits.write(blocking).await }
        });
        running.await.unwrap();
        // Two writes fill the queue; the third waits its 200 ms and is refused.
        let queued: Vec<_> = (1..=2)
            .map(|n| {
                let commits = commits.clone();
                tokio::spawn(async move { commits.write(insert(n, false)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started_at = std::time::Instant::now();
        let refused = commits.write(insert(3, false)).await;
        assert!(matches!(&refused, Err(StoreError::Unavailable(_))), "{refused:?}");
        assert!(started_at.elapsed() < Duration::from_secs(2), "refused in bounded time");
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap().unwrap(), 0);
        for (n, write) in queued.into_iter().enumerate() {
            assert_eq!(write.await.unwrap().unwrap(), n as i64 + 1, "every queued write is applied");
        }
        assert_eq!(rows(&commits).await, vec![0, 1, 2]);
    }
}
