//! Group commit for the SQLite store: SQLite has one writer, and each commit waits for an fsync,
//! so writes that arrive together are run one after another inside one transaction and share one
//! commit. Each write runs inside its own savepoint: a write that fails (or panics) is rolled back
//! alone. Every write, failed or not, is answered only once the commit's outcome is known: a
//! failure may depend on an earlier write of the batch (a cancel before a complete), so it must
//! not be told before that write is durable; if the commit fails, every write is answered
//! "unavailable, try again".
//!
//! Writes run in arrival order, each seeing the ones before it, exactly as if each had its own
//! transaction. A caller that stops waiting does not cancel its write.

use std::panic::AssertUnwindSafe;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, StoreError};

/// The most writes sharing one commit.
const MAX_BATCH: usize = 256;

/// Back-pressure: how many writes may wait for the writer, and how long a write waits for room
/// before it is refused as `Unavailable` (`503` with `Retry-After`). Memory stays bounded under
/// overload, and a caller learns it in bounded time; nothing queued is dropped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub(crate) capacity: usize,
    pub(crate) wait: std::time::Duration,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits { capacity: MAX_BATCH, wait: std::time::Duration::from_secs(2) }
    }
}

/// One write: SQL run on the writer connection inside an open transaction.
pub(crate) type WriteFn<T> = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send>;

/// A queued write, its result type erased.
trait Pending: Send {
    /// Runs the write; `false` when it failed or panicked (its changes must be rolled back).
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool>;
    /// Answers the write once the commit's outcome is known.
    fn finish(self: Box<Self>, committed: std::result::Result<(), String>);
}

struct Write<T> {
    work: Option<WriteFn<T>>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send + 'static> Pending for Write<T> {
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let work = self.work.take().expect("a write runs once");
            let outcome = match AssertUnwindSafe(work(conn)).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::error!("a store write panicked; it was rolled back");
                    Err(StoreError::Corrupt("a store write panicked".to_owned()))
                }
            };
            let succeeded = outcome.is_ok();
            self.outcome = Some(outcome);
            succeeded
        })
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

/// The handle the store writes through; the batching task ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Box<dyn Pending>>,
    wait: std::time::Duration,
}

impl GroupCommit {
    /// Starts the batching task on `writer` (a pool of one connection).
    pub(crate) fn start(writer: SqlitePool, limits: QueueLimits) -> Self {
        let (queue, receiver) = mpsc::channel(limits.capacity.max(1));
        tokio::spawn(run_batches(writer, receiver));
        GroupCommit { queue, wait: limits.wait }
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

async fn run_batches(writer: SqlitePool, mut receiver: mpsc::Receiver<Box<dyn Pending>>) {
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let outcome = run_batch(&writer, &mut batch).await.map_err(|error| error.to_string());
        if let Err(error) = &outcome {
            tracing::error!(%error, writes = batch.len(), "a group commit failed");
        }
        for write in batch.drain(..) {
            write.finish(outcome.clone());
        }
    }
}

/// Runs the writes in one transaction, each in a savepoint, and commits. The bookkeeping between
/// two writes is one round trip to SQLite's thread (`RELEASE` and the next `SAVEPOINT` together).
async fn run_batch(writer: &SqlitePool, batch: &mut [Box<dyn Pending>]) -> Result<()> {
    let mut conn = writer.acquire().await?;
    let result = run_writes(&mut conn, batch).await;
    if result.is_err() && execute(&mut conn, "ROLLBACK").await.is_err() {
        // The transaction may still be open: never hand this connection out again (the pool
        // opens a fresh one), or later writes would run inside a transaction nobody commits.
        conn.close_on_drop();
    }
    result
}

async fn run_writes(conn: &mut SqliteConnection, batch: &mut [Box<dyn Pending>]) -> Result<()> {
    execute(conn, "BEGIN IMMEDIATE; SAVEPOINT write").await?;
    let count = batch.len();
    for (index, write) in batch.iter_mut().enumerate() {
        if !write.run(conn).await {
            execute(conn, "ROLLBACK TO write").await?;
        }
        let next = if index + 1 == count { "RELEASE write; COMMIT" } else { "RELEASE write; SAVEPOINT write" };
        execute(conn, next).await?;
    }
    Ok(())
}

/// Runs statements without parameters in one round trip.
fn execute<'c>(conn: &'c mut SqliteConnection, sql: &'static str) -> BoxFuture<'c, Result<()>> {
    Box::pin(async move {
        sqlx::query(sql).execute(conn).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    async fn writer() -> (SqlitePool, GroupCommit) {
        let pool = SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)").execute(&pool).await.unwrap();
        (pool.clone(), GroupCommit::start(pool, QueueLimits::default()))
    }

    fn insert(n: i64, then_fail: bool) -> WriteFn<i64> {
        Box::new(move |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (n) VALUES (?)").bind(n).execute(&mut *conn).await?;
                if then_fail {
                    return Err(StoreError::Conflict(n.to_string()));
                }
                Ok(n)
            })
        })
    }

    async fn rows(pool: &SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT n FROM t ORDER BY n").fetch_all(pool).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_or_panicking_write_is_rolled_back_alone() {
        let (pool, commits) = writer().await;
        let panicking: WriteFn<i64> = Box::new(|conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (n) VALUES (99)").execute(&mut *conn).await?;
                panic!("a bug in a write");
            })
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
        assert_eq!(rows(&pool).await, vec![1, 3]);
        // The writer carries on, outside any leftover transaction.
        assert_eq!(commits.write(insert(4, false)).await.unwrap(), 4);
        sqlx::query("INSERT INTO t (n) VALUES (5)").execute(&pool).await.unwrap();
        assert_eq!(rows(&pool).await, vec![1, 3, 4, 5]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_write_queue_refuses_in_bounded_time_and_loses_nothing_queued() {
        let pool = SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)").execute(&pool).await.unwrap();
        let limits = QueueLimits { capacity: 2, wait: std::time::Duration::from_millis(200) };
        let commits = GroupCommit::start(pool.clone(), limits);
        // The writer is busy with a write that waits for the test.
        let (release, released) = oneshot::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let blocking: WriteFn<i64> = Box::new(move |conn| {
            Box::pin(async move {
                let _ = started.send(());
                let _ = released.await;
                sqlx::query("INSERT INTO t (n) VALUES (0)").execute(&mut *conn).await?;
                Ok(0)
            })
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
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let started_at = std::time::Instant::now();
        let refused = commits.write(insert(3, false)).await;
        assert!(matches!(&refused, Err(StoreError::Unavailable(_))), "{refused:?}");
        assert!(started_at.elapsed() < std::time::Duration::from_secs(2), "refused in bounded time");
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap().unwrap(), 0);
        for (n, write) in queued.into_iter().enumerate() {
            assert_eq!(write.await.unwrap().unwrap(), n as i64 + 1, "every queued write is applied");
        }
        assert_eq!(rows(&pool).await, vec![0, 1, 2]);
    }
}
