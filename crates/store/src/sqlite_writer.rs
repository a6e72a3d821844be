//! Group commit for the SQLite store: SQLite has one writer, and each commit waits for an fsync,
//! so writes that arrive together are run one after another inside one transaction and share one
//! commit. Each write runs inside its own savepoint: a write that fails is rolled back alone and
//! answered with its error at once; the others are answered only after the commit succeeded (or
//! all with the commit's error), so an acknowledged write is always durable.
//!
//! Writes run in arrival order, each seeing the ones before it, exactly as if each had its own
//! transaction. A caller that stops waiting does not cancel its write.

use futures_util::future::BoxFuture;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, StoreError};

/// The most writes sharing one commit.
const MAX_BATCH: usize = 256;

/// One write: SQL run on the writer connection inside an open transaction.
pub(crate) type WriteFn<T> = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send>;

/// A queued write, its result type erased.
trait Pending: Send {
    /// Runs the write; `false` when it failed (and has been answered with its error).
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool>;
    /// Answers the write with the commit's outcome, unless it was answered already.
    fn finish(self: Box<Self>, committed: std::result::Result<(), String>);
}

struct Write<T> {
    work: Option<WriteFn<T>>,
    done: Option<T>,
    reply: Option<oneshot::Sender<Result<T>>>,
}

impl<T: Send + 'static> Pending for Write<T> {
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let work = self.work.take().expect("a write runs once");
            match work(conn).await {
                Ok(value) => {
                    self.done = Some(value);
                    true
                }
                Err(error) => {
                    if let Some(reply) = self.reply.take() {
                        let _ = reply.send(Err(error));
                    }
                    false
                }
            }
        })
    }

    fn finish(mut self: Box<Self>, committed: std::result::Result<(), String>) {
        let Some(reply) = self.reply.take() else { return };
        let answer = match (committed, self.done.take()) {
            (Ok(()), Some(value)) => Ok(value),
            (Err(error), _) => Err(StoreError::Unavailable(format!("the write was not committed: {error}"))),
            (Ok(()), None) => Err(StoreError::Corrupt("a write finished without a result".to_owned())),
        };
        let _ = reply.send(answer);
    }
}

/// The handle the store writes through; the batching task ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::UnboundedSender<Box<dyn Pending>>,
}

impl GroupCommit {
    /// Starts the batching task on `writer` (a pool of one connection).
    pub(crate) fn start(writer: SqlitePool) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_batches(writer, receiver));
        GroupCommit { queue }
    }

    /// Runs `work` in the next batch and answers once it is committed.
    pub(crate) async fn write<T: Send + 'static>(&self, work: WriteFn<T>) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let pending = Box::new(Write { work: Some(work), done: None, reply: Some(reply) });
        self.queue.send(pending).map_err(|_| StoreError::Unavailable("the store is closed".to_owned()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the store's writer stopped".to_owned()))?
    }
}

async fn run_batches(writer: SqlitePool, mut receiver: mpsc::UnboundedReceiver<Box<dyn Pending>>) {
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let outcome = run_batch(&writer, &mut batch).await.map_err(|error| error.to_string());
        if let Err(error) = &outcome {
            tracing::error!(%error, writes = batch.len(), "a group commit failed");
        }
        // A write that failed on its own was answered already; the rest learn the commit's outcome.
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
    if result.is_err() {
        // Leave the connection clean for the next batch; failing here too changes nothing.
        let _ = execute(&mut conn, "ROLLBACK").await;
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
