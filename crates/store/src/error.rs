//! Store errors, in domain terms: not found, conflict, a refused transition, the backend being
//! unavailable for now, or the backend failing.

use jobd_core::TransitionError;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {0} already exists")]
    Conflict(String),
    /// Item `index` of a batch carries a client token used before with a different request.
    #[error("the client token of item {index} was used before with a different request")]
    KeyConflict { index: usize },
    /// A batch holds no item or more than the store takes at once.
    #[error("a batch holds 1 to {max} items, not {len}")]
    BatchSize { len: usize, max: usize },
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
    /// Another store holds the data directory's lock (`sqlite::LOCK_FILE`): one jobd serves a
    /// data directory at a time.
    #[error("the data directory {} is in use by another jobd (it holds {}); stop that one first, or use another --data-dir", .0.display(), .0.join(crate::sqlite::LOCK_FILE).display())]
    DataDirInUse(std::path::PathBuf),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database cannot be reached or is not serving right now (down, restarting, failing over,
    /// out of connections, or too slow for the statement timeout). Nothing was written; the same
    /// call may succeed later, so callers answer "try again" (HTTP 503 with `Retry-After`).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("store backend error: {0}")]
    Backend(#[source] sqlx::Error),
    /// A failure of the SQLite store's readers (rusqlite); like `Backend`, never "unavailable".
    #[error("store backend error: {0}")]
    Reader(#[source] rusqlite::Error),
    #[error("store migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the call failed only because the database is unavailable for now.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// Whether PostgreSQL ended the statement to break a deadlock (SQLSTATE 40P01): nothing it
    /// did is kept, and the same work may be done again.
    pub fn is_deadlock(&self) -> bool {
        matches!(self, StoreError::Backend(sqlx::Error::Database(database)) if database.code().as_deref() == Some("40P01"))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            StoreError::Unavailable(error.to_string())
        } else {
            StoreError::Backend(error)
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Reader(error)
    }
}

/// Connection-level failures, and the PostgreSQL SQLSTATEs that mean "not now" rather than "wrong".
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|code| is_unavailable_sqlstate(&code)),
        _ => false,
    }
}

/// Class 08 (connection exception), 53300 (too many connections), 57P01–57P03 (admin or crash
/// shutdown, cannot connect now: the server is starting or stopping), 57014 (statement timeout),
/// 25006 (read-only transaction: a standby that has not been promoted yet). SQLite's codes are
/// numbers and never match.
fn is_unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "53300" | "57P01" | "57P02" | "57P03" | "57014" | "25006")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable_and_the_rest_is_a_backend_error() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(StoreError::from(sqlx::Error::Io(refused)).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
        for code in ["08006", "08001", "57P01", "57P03", "53300", "57014", "25006"] {
            assert!(is_unavailable_sqlstate(code), "{code}");
        }
        for code in ["23505", "40P01", "42P01", "2067", "5"] {
            assert!(!is_unavailable_sqlstate(code), "{code}");
        }
    }
}
