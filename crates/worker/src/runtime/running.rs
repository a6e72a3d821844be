//! Running: a task's handler in its own tokio task, under heartbeats every `lease_seconds / 3`,
//! stopped when its task is gone (after `cancel_grace`) or abandoned at shutdown; what it answers
//! becomes the attempt's report.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use jobd_client::{Backoff, Phase, Task, TaskLease};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::JoinError;
use tokio::time::Instant;
use tracing::Instrument;

use super::context::Beat;
use super::reporting::{send_report, Report};
use super::shutdown::{raised, stop_reason};
use super::{
    Handler, HandlerResult, Shared, StopReason, TaskContext, FIRST_RETRY, HANDLER_PANIC, NO_COMPENSATION, NO_HANDLER,
};

/// How a task's handler ended, as the supervisor saw it.
pub(super) enum Outcome {
    Returned(Result<HandlerResult, JoinError>),
    /// The handler returned, but its task was gone by then.
    ReturnedAfterStop(StopReason),
    Stopped(StopReason),
    Abandoned,
}

impl Shared {
    /// The handler for a task, or the failure to report when there is none.
    pub(super) fn route(&self, task: &Task) -> Result<Arc<dyn Handler>, Report> {
        let handlers = self.services.get(&task.service);
        let refuse = |code: &str, message: String| Report::Fail { code: code.to_owned(), message, retryable: false };
        match task.phase {
            Phase::Run => {
                handlers.and_then(|h| h.run.get(&task.job_type).or(h.fallback.as_ref())).cloned().ok_or_else(|| {
                    refuse(
                        NO_HANDLER,
                        format!("worker {} has no handler for {} {}", self.worker_id, task.service, task.job_type),
                    )
                })
            }
            Phase::Rollback => handlers
                .and_then(|h| h.compensate.get(&task.job_type).or(h.fallback_compensation.as_ref()))
                .cloned()
                .ok_or_else(|| {
                    refuse(
                        NO_COMPENSATION,
                        format!("worker {} has no compensation for {} {}", self.worker_id, task.service, task.job_type),
                    )
                }),
        }
    }
}

/// Runs one task's handler and keeps its lease until the attempt is reported.
pub(super) async fn supervise(
    shared: Arc<Shared>,
    task: Task,
    permit: Option<OwnedSemaphorePermit>,
    abandon: watch::Receiver<bool>,
) {
    let span = tracing::info_span!(
        "task",
        job_id = %task.job_id,
        service = %task.service,
        job_type = %task.job_type,
        attempt = task.attempt,
        phase = ?task.phase,
    );
    async move {
        let lease = TaskLease::from(&task);
        let report = match shared.route(&task) {
            Ok(handler) => run_handler(&shared, task, handler, abandon).await,
            Err(refusal) => Some(refusal),
        };
        if let Some(report) = report {
            send_report(&shared, &lease, report).await;
        }
        drop(permit);
    }
    .instrument(span)
    .await
}

/// Runs the handler under heartbeats; answers what to report, or `None` when the task is gone.
pub(super) async fn run_handler(
    shared: &Shared,
    task: Task,
    handler: Arc<dyn Handler>,
    mut abandon: watch::Receiver<bool>,
) -> Option<Report> {
    let config = &shared.config;
    let ctx = TaskContext::new(shared.client.clone(), TaskLease::from(&task), config.lease_seconds);
    let mut stop = ctx.subscribe_stop();
    tracing::debug!("handler started");
    // The handler is called inside the spawned task, so even a panic before its first await is caught.
    let mut handle = tokio::spawn({
        let ctx = ctx.clone();
        async move { handler.call(task, ctx).await }
    });
    let interval = Duration::from_secs_f64(f64::from(config.lease_seconds) / 3.0);
    let mut next_beat = Instant::now() + interval;
    let mut beat_backoff = Backoff::new(FIRST_RETRY, interval);
    let outcome = loop {
        tokio::select! {
            joined = &mut handle => break Outcome::Returned(joined),
            () = tokio::time::sleep_until(next_beat) => {
                next_beat = match ctx.beat(None).await {
                    Beat::Kept => {
                        beat_backoff.reset();
                        Instant::now() + interval
                    }
                    // The stop branch takes over.
                    Beat::Stopped(_) => Instant::now() + interval,
                    Beat::Unanswered => {
                        Instant::now() + beat_backoff.next_delay()
                    }
                };
            }
            reason = stop_reason(&mut stop) => {
                tokio::select! {
                    _ = &mut handle => {}
                    () = tokio::time::sleep(config.cancel_grace) => {
                        tracing::info!(grace = ?config.cancel_grace, "the handler did not stop in time; aborting it");
                        handle.abort();
                    }
                }
                break Outcome::Stopped(reason);
            }
            () = raised(&mut abandon) => {
                ctx.stop(StopReason::Shutdown);
                handle.abort();
                break Outcome::Abandoned;
            }
        }
    };
    let counters = &shared.counters;
    // A handler that returned after its task was gone is stopped, whatever it answered.
    let outcome = match (outcome, ctx.stop_reason()) {
        (Outcome::Returned(_), Some(reason)) => Outcome::ReturnedAfterStop(reason),
        (outcome, _) => outcome,
    };
    let report = match outcome {
        Outcome::ReturnedAfterStop(reason) => {
            tracing::info!(%reason, "the handler returned after its task was gone; nothing to report");
            counters.stopped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Outcome::Returned(Ok(Ok(result))) => Report::Complete(result),
        Outcome::Returned(Ok(Err(error))) => {
            tracing::info!(code = %error.code, retryable = error.retryable, "the handler failed: {}", error.message);
            Report::Fail { code: error.code, message: error.message, retryable: error.retryable }
        }
        Outcome::Returned(Err(joined)) if joined.is_panic() => {
            let message = panic_message(joined.into_panic());
            tracing::error!(panic = %message, "the handler panicked");
            Report::Fail {
                code: HANDLER_PANIC.to_owned(),
                message: format!("the handler panicked: {message}"),
                retryable: true,
            }
        }
        Outcome::Returned(Err(_)) | Outcome::Abandoned => {
            counters.abandoned.fetch_add(1, Ordering::Relaxed);
            Report::Abandon
        }
        Outcome::Stopped(reason) => {
            tracing::info!(%reason, "task stopped");
            counters.stopped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    Some(report)
}

pub(super) fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned())
}
