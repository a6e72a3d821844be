//! Claiming: one long poll per group of services that share a job type filter, asking for as
//! many tasks as there are free slots, backing off on errors; each task claimed gets a supervisor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use jobd_client::{Backoff, ClaimRequest};
use tokio::sync::watch;
use tokio::time::Instant;

use super::builder::ServiceHandlers;
use super::running::supervise;
use super::shutdown::raised;
use super::{Shared, FIRST_RETRY};

/// Services that claim together: those with the same job type filter (`None`: every type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClaimGroup {
    pub(super) services: Vec<String>,
    pub(super) job_types: Option<Vec<String>>,
}

/// One claim can name several services but only one job type list for all of them, so services
/// whose handled types differ claim separately; a task is then never claimed without a handler.
pub(super) fn claim_groups(services: &BTreeMap<String, ServiceHandlers>) -> Vec<ClaimGroup> {
    let mut groups: BTreeMap<Option<BTreeSet<String>>, Vec<String>> = BTreeMap::new();
    for (service, handlers) in services {
        let filter = handlers.fallback.is_none().then(|| handlers.run.keys().cloned().collect());
        groups.entry(filter).or_default().push(service.clone());
    }
    groups
        .into_iter()
        .map(|(filter, services)| ClaimGroup { services, job_types: filter.map(|types| types.into_iter().collect()) })
        .collect()
}

/// How long a claim in flight when shutdown begins may still answer with leased tasks.
const CLAIM_GRACE_ON_SHUTDOWN: Duration = Duration::from_secs(1);

/// Claims for one group of services until told to stop, spawning a supervisor per task.
pub(super) async fn claim_loop(
    shared: Arc<Shared>,
    group: ClaimGroup,
    per_claim: usize,
    mut stop: watch::Receiver<bool>,
    abandon: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut failures = 0u32;
    let mut backoff = Backoff::new(FIRST_RETRY, config.max_claim_backoff);
    loop {
        let first = tokio::select! {
            biased;
            () = raised(&mut stop) => return,
            permit = shared.slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => return, // nothing closes the slots; were they closed, nothing more could run
            },
        };
        let mut permits = vec![first];
        while permits.len() < per_claim {
            match shared.slots.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let request = ClaimRequest {
            worker_id: shared.worker_id.clone(),
            services: group.services.clone(),
            job_types: group.job_types.clone(),
            lease_seconds: Some(config.lease_seconds),
            wait_seconds: Some(config.wait_seconds),
            max_tasks: Some(permits.len() as u32),
        };
        let started = Instant::now();
        // On shutdown a claim the server is answering right now carries tasks it has just leased:
        // its answer is awaited a moment more and those tasks run (the drain waits for them). An
        // idle long poll has leased nothing and is dropped; only a lease made in the very last
        // moment of the grace can be left to expire and go to another worker.
        let claim = shared.client.claim(&request);
        tokio::pin!(claim);
        let answer = tokio::select! {
            biased;
            answer = &mut claim => answer,
            () = raised(&mut stop) => match tokio::time::timeout(CLAIM_GRACE_ON_SHUTDOWN, &mut claim).await {
                Ok(answer) => answer,
                Err(_idle) => return,
            },
        };
        let pause = match answer {
            Ok(tasks) => {
                failures = 0;
                backoff.reset();
                let idle = tasks.is_empty();
                shared.counters.claimed.fetch_add(tasks.len() as u64, Ordering::Relaxed);
                for task in tasks {
                    let permit = permits.pop();
                    if permit.is_none() {
                        tracing::warn!(job_id = %task.job_id, "the server returned more tasks than asked for");
                    }
                    tokio::spawn(supervise(shared.clone(), task, permit, abandon.clone()));
                }
                drop(permits);
                // A server answering at once with nothing (wait_seconds 0) is not asked again at once.
                if idle {
                    Duration::from_secs(1).saturating_sub(started.elapsed())
                } else {
                    Duration::ZERO
                }
            }
            Err(error) => {
                drop(permits);
                failures = failures.saturating_add(1);
                let delay = backoff.next_delay_at_least(error.retry_after());
                if error.is_retryable() {
                    tracing::warn!(%error, failures, ?delay, "claim failed; backing off");
                } else {
                    // Wrong keys, a refused request: this repeats until the setup is fixed.
                    tracing::error!(%error, failures, ?delay, "claim refused; backing off");
                }
                delay
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                biased;
                () = raised(&mut stop) => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}
