//! How domain values are stored, shared by both backends: times as Unix milliseconds, JSON as
//! text, unit enums by their serde name; and the store errors a bad row or a taken name becomes.

use chrono::{TimeZone, Utc};
use jobd_core::Timestamp;

use crate::{Result, StoreError};

/// The columns of a job row, in the order both backends read them (`job_from_row`): the same
/// names on SQLite and PostgreSQL.
pub(crate) const JOB_COLUMNS: &str =
    "seq, job_id, parent_job_id, project_id, enterprise_project_id, service, job_type, \
     status, message, resource_id, entities, error_code, error_msg, payload, result, simulate, \
     created_at, started_at, ended_at, updated_at, version, priority, run_at, available_at, max_attempts, \
     attempt, retry_backoff, timeout_seconds, execution, lease_worker_id, lease_token, lease_expires_at, \
     on_failure, phase, compensation";

pub(crate) fn millis(t: &Timestamp) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Result<Timestamp> {
    Utc.timestamp_millis_opt(ms).single().ok_or_else(|| StoreError::Corrupt(format!("bad timestamp {ms}")))
}

pub(crate) fn opt_from_millis(ms: Option<i64>) -> Result<Option<Timestamp>> {
    ms.map(from_millis).transpose()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain values serialize")
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: Option<String>) -> Result<Option<T>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))).transpose()
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// The text a unit enum is stored as (its serde name).
pub(crate) fn enum_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .expect("unit enums serialize as strings")
}

/// Maps a unique violation to `Conflict` naming `what`; other errors as usual.
pub(crate) fn conflict(what: String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::from(e),
    }
}
