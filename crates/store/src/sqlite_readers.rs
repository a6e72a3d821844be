//! The SQLite store's readers: plain synchronous connections (rusqlite) opened read-only on the
//! WAL file, kept in a small pool and used on the calling thread. A point read (a job tree, a
//! credential, a token) takes microseconds, far less than handing it to another thread and back,
//! which is what an async driver does for every statement and row. Statements are prepared once
//! per connection and cached.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{Result, StoreError};

/// Idle connections kept for the next read (point reads and scans alike); more may be open at
/// once while busy.
const MAX_IDLE: usize = 8;
/// Prepared statements kept per connection (the point reads, and the latest dynamic lists).
const STATEMENT_CACHE: usize = 64;
/// How long a read waits for a lock (a reader only waits while the WAL index is being rebuilt).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
// Readers read pages through SQLite's own cache (`pread`), not a memory map of the file. A map
// made point reads cheaper before the tree cache answered most of them; but RSS counts each
// mapped page once per connection that maps it, and the status-read benchmark's RSS grew with
// every page read (272 MiB at 100k jobs, 163 MiB of it the map) where the issue bounds it to
// 256 MiB. Without it the same benchmark peaks at 128 MiB and reads as fast (BENCHMARKS.md).

#[derive(Clone)]
pub(crate) struct Readers {
    inner: Arc<Pool>,
}

struct Pool {
    path: PathBuf,
    /// Connections between reads: point reads take them on the calling (async) thread, scans on
    /// blocking threads.
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Opens the pool on the database at `path` (which must exist, migrated) and checks that one
    /// connection can read it.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let readers = Readers { inner: Arc::new(Pool { path: path.to_owned(), idle: Mutex::new(Vec::new()) }) };
        readers.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))?;
        Ok(readers)
    }

    fn connect(&self) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.inner.path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    /// Runs a point read (a few rows by key) on an idle connection (or a new one) on this thread.
    pub(crate) fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let taken = self.inner.idle.lock().expect("idle readers").pop();
        let conn = match taken {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let answer = read(&conn);
        // A connection whose read panicked is dropped with it; the others go back.
        let mut idle = self.inner.idle.lock().expect("idle readers");
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        answer
    }

    /// Runs `read` on a blocking thread: for reads that may scan many rows (lists, counts), so
    /// they never hold up the async threads.
    pub(crate) async fn read_blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || readers.read(read)).await.map_err(|e| {
            if e.is_cancelled() {
                // The runtime is shutting down: not a fault of the store.
                StoreError::Unavailable("the store's reader was stopped (shutting down)".to_owned())
            } else {
                StoreError::Corrupt(format!("a store read panicked: {e}"))
            }
        })?
    }
}

/// An SQL text with its parameters, built piece by piece (the dynamic lists and claims).
#[derive(Default)]
pub(crate) struct SqlText {
    pub(crate) text: String,
    pub(crate) params: Vec<rusqlite::types::Value>,
}

impl SqlText {
    pub(crate) fn sql(&mut self, text: &str) {
        self.text.push_str(text);
    }
    pub(crate) fn bind_text(&mut self, value: String) {
        self.text.push('?');
        self.params.push(rusqlite::types::Value::Text(value));
    }
    pub(crate) fn bind_int(&mut self, value: i64) {
        self.text.push('?');
        self.params.push(rusqlite::types::Value::Integer(value));
    }
}

/// `AND column IN (values)`; an empty value also matches a job without one (NULL).
pub(crate) fn push_any(builder: &mut SqlText, column: &str, values: impl Iterator<Item = String>) {
    let values: Vec<String> = values.collect();
    if values.is_empty() {
        return;
    }
    let matches_null = values.iter().any(String::is_empty);
    builder.sql(&format!(" AND ({column} IN ("));
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            builder.sql(", ");
        }
        builder.bind_text(value);
    }
    builder.sql(")");
    if matches_null {
        builder.sql(&format!(" OR {column} IS NULL"));
    }
    builder.sql(")");
}
