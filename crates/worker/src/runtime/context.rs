//! What a handler sees: its [`TaskContext`] (progress, the stop signal), the [`TaskError`] it
//! answers, and why it should stop ([`StopReason`]).

use std::fmt;
use std::sync::Arc;

use jobd_client::{Client, TaskGone, TaskLease};
use tokio::sync::watch;

use super::shutdown::stop_reason;
use super::WORKER_SHUTDOWN;

/// Why an attempt failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct TaskError {
    /// The job's `error_code` if this ends it (1 to 64 characters; the runtime trims longer codes).
    pub code: String,
    /// The job's `error_msg` (the runtime keeps the first 1024 characters).
    pub message: String,
    /// A retryable failure is tried again while attempts remain; a fatal one ends the job.
    pub retryable: bool,
}

impl TaskError {
    /// A failure worth another attempt (a timeout, a dependency not ready...).
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError { code: code.into(), message: message.into(), retryable: true }
    }

    /// A failure another attempt would repeat (invalid input, a refused operation...).
    pub fn fatal(code: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError { code: code.into(), message: message.into(), retryable: false }
    }
}

/// The task was stopped: a handler may `?` a [`TaskContext::progress`] to give up at once (nothing
/// is reported for a task that is gone).
impl From<StopReason> for TaskError {
    fn from(reason: StopReason) -> Self {
        TaskError::fatal(reason.error_code(), reason.to_string())
    }
}

/// Why a handler should stop before it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The worker API refused the task: cancelled, timed out, lease lost or already finished.
    Gone(TaskGone),
    /// The job no longer exists (deleted by retention).
    Deleted,
    /// The worker is shutting down and the drain timeout passed.
    Shutdown,
}

impl StopReason {
    pub fn error_code(self) -> &'static str {
        match self {
            StopReason::Gone(gone) => gone.error_code(),
            StopReason::Deleted => "JOBD.JOB_NOT_FOUND",
            StopReason::Shutdown => WORKER_SHUTDOWN,
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Gone(gone) => gone.fmt(f),
            StopReason::Deleted => f.write_str("the job no longer exists"),
            StopReason::Shutdown => f.write_str("the worker is shutting down"),
        }
    }
}

/// The worker API's limits on what a worker writes.
pub(super) const MAX_CODE_CHARS: usize = 64;
pub(super) const MAX_TEXT_CHARS: usize = 1024;

/// A handler's link to its task: progress reports and the stop signal.
#[derive(Clone)]
pub struct TaskContext {
    inner: Arc<ContextInner>,
}

pub(super) struct ContextInner {
    pub(super) client: Client,
    pub(super) lease: TaskLease,
    pub(super) lease_seconds: u32,
    pub(super) stop: watch::Sender<Option<StopReason>>,
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("job_id", &self.inner.lease.job_id)
            .field("stop_reason", &self.stop_reason())
            .finish_non_exhaustive()
    }
}

/// How a heartbeat went.
pub(super) enum Beat {
    Kept,
    Stopped(StopReason),
    Unanswered,
}

impl TaskContext {
    pub(super) fn new(client: Client, lease: TaskLease, lease_seconds: u32) -> Self {
        let (stop, _) = watch::channel(None);
        TaskContext { inner: Arc::new(ContextInner { client, lease, lease_seconds, stop }) }
    }

    /// The task's job id.
    pub fn job_id(&self) -> &str {
        &self.inner.lease.job_id
    }

    /// The client the runtime works with, for calls of the handler's own.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Sets the job's message (a heartbeat that also extends the lease). `Err` when the task is
    /// gone: the handler should stop (`?` turns it into a [`TaskError`]). A heartbeat that could
    /// not be delivered is logged and otherwise ignored; the runtime's own heartbeats keep trying.
    pub async fn progress(&self, message: impl Into<String>) -> Result<(), StopReason> {
        let message = clean_text(&message.into(), MAX_TEXT_CHARS);
        match self.beat(Some(&message)).await {
            Beat::Kept | Beat::Unanswered => Ok(()),
            Beat::Stopped(reason) => Err(reason),
        }
    }

    /// Completes when the task should stop: cancelled, timed out, lease lost, deleted, or the
    /// worker shutting down past its drain timeout. Race it against the work with `tokio::select!`.
    pub async fn cancelled(&self) -> StopReason {
        // The sender lives in `self`, so the wait ends only with a reason.
        stop_reason(&mut self.inner.stop.subscribe()).await
    }

    /// True once the task should stop (see [`TaskContext::cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        self.stop_reason().is_some()
    }

    /// Why the task should stop, once it should.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.inner.stop.borrow()
    }

    /// The stop signal, for the supervisor.
    pub(super) fn subscribe_stop(&self) -> watch::Receiver<Option<StopReason>> {
        self.inner.stop.subscribe()
    }

    /// Records the first reason to stop; later ones are ignored.
    pub(super) fn stop(&self, reason: StopReason) {
        self.inner.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    pub(super) async fn beat(&self, message: Option<&str>) -> Beat {
        if let Some(reason) = self.stop_reason() {
            return Beat::Stopped(reason);
        }
        let inner = &self.inner;
        match inner.client.heartbeat(&inner.lease, message, Some(inner.lease_seconds)).await {
            Ok(_) => Beat::Kept,
            Err(error) => match stop_reason_of(&error) {
                Some(reason) => {
                    tracing::info!(%reason, "the task is gone; stopping its handler");
                    self.stop(reason);
                    Beat::Stopped(reason)
                }
                None => {
                    tracing::warn!(%error, "heartbeat failed");
                    Beat::Unanswered
                }
            },
        }
    }
}

/// A worker API error that means the task is no longer ours.
pub(super) fn stop_reason_of(error: &jobd_client::Error) -> Option<StopReason> {
    match error.task_gone() {
        Some(gone) => Some(StopReason::Gone(gone)),
        None if error.is_not_found() => Some(StopReason::Deleted),
        None => None,
    }
}

/// Text the worker API accepts: control characters become spaces, at most `max` characters.
pub(super) fn clean_text(text: &str, max: usize) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_text_fits_the_worker_api() {
        assert_eq!(clean_text("a\nb\tc", 10), "a b c");
        assert_eq!(clean_text(&"x".repeat(2000), MAX_TEXT_CHARS).len(), MAX_TEXT_CHARS);
    }
}
