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

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use jobd_core::JobId;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, StoreError};
use crate::tree_cache::TreeCache;

/// The most writes sharing one commit.
const MAX_BATCH: usize = 256;

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
    row_ids: RefCell<HashMap<JobId, i64>>,
}

impl WriteTx<'_> {
    /// Notes the row id of a job row just read.
    pub(crate) fn note_row_id(&self, job_id: &JobId, row_id: i64) {
        self.row_ids.borrow_mut().insert(job_id.clone(), row_id);
    }

    /// The row id of a job row read earlier in this batch.
    pub(crate) fn row_id(&self, job_id: &JobId) -> Option<i64> {
        self.row_ids.borrow().get(job_id).copied()
    }

    /// Notes that the tree rooted at `root` is written (inserted, changed or deleted).
    pub(crate) fn touch(&self, root: &JobId) {
        self.touched.borrow_mut().push(root.clone());
    }
}

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
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let tx = WriteTx { conn: &conn, touched: RefCell::new(Vec::new()), row_ids: RefCell::new(HashMap::new()) };
        let outcome = run_writes(&tx, &mut batch).map_err(|error| error.to_string());
        // Evicted whatever the outcome (a failed commit changed nothing; evicting costs a miss).
        cache.evict(tx.touched.into_inner().iter());
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
            return execute(tx, "ROLLBACK");
        }
        return execute(tx, "COMMIT");
    }
    for write in batch.iter_mut() {
        execute(tx, "SAVEPOINT write")?;
        if !write.run(tx) {
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
