//! Shutdown: claiming stops, in-flight handlers run to their end for up to `drain_timeout`, then
//! the rest are abandoned (aborted and failed retryably) and their ends reported.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Shared, StopReason};

/// Stops the claim loops, waits up to `drain_timeout` for the handlers in flight, then abandons
/// the rest and waits (a lease at most) for their ends to be reported.
pub(super) async fn drain(
    shared: &Shared,
    claimers: Vec<JoinHandle<()>>,
    stop_claiming: watch::Sender<bool>,
    abandon: watch::Sender<bool>,
) {
    tracing::info!(drain_timeout = ?shared.config.drain_timeout, "shutting down: draining in-flight tasks");
    stop_claiming.send_replace(true);
    for claimer in claimers {
        if let Err(error) = claimer.await {
            tracing::error!(%error, "a claim loop ended abnormally");
        }
    }
    let all_slots = shared.config.max_in_flight as u32;
    let drained = tokio::time::timeout(shared.config.drain_timeout, shared.slots.acquire_many(all_slots)).await;
    if drained.is_err() {
        tracing::warn!("drain timeout: aborting the handlers still running");
        abandon.send_replace(true);
        // Aborting is immediate; what remains is reporting each attempt's end.
        let reporting = Duration::from_secs(u64::from(shared.config.lease_seconds)).max(Duration::from_secs(5));
        if tokio::time::timeout(reporting, shared.slots.acquire_many(all_slots)).await.is_err() {
            tracing::error!("some abandoned tasks could not be reported; their leases will expire");
        }
    }
}

/// Completes once the flag is raised (or its sender is gone). The guard `wait_for` answers is
/// dropped here, never held across an await.
pub(super) async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

/// Completes with the first reason to stop (`Shutdown` if the context is gone).
pub(super) async fn stop_reason(stop: &mut watch::Receiver<Option<StopReason>>) -> StopReason {
    let reason = stop.wait_for(Option::is_some).await.ok().and_then(|reason| *reason);
    reason.unwrap_or(StopReason::Shutdown)
}
