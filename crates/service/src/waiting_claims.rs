//! Claims waiting for work on this node, each with what it takes. A change that offers tasks
//! wakes, per task, one waiting claim that would take it, rather than every waiting claim: each
//! woken claim runs a claim on the store, and all but one came back empty (on two cores, the
//! empty ones ran beside the one that took the task and slowed it).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use jobd_core::{Job, JobType, ProjectId, ServiceName};
use jobd_store::ClaimRequest;
use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct WaitingClaims {
    next_id: AtomicU64,
    /// Oldest first: the claim waiting longest is woken first.
    waiting: Mutex<VecDeque<Waiting>>,
}

struct Waiting {
    id: u64,
    request: Arc<ClaimRequest>,
    wake: Arc<Notify>,
}

/// A claim's place among the waiting: woken through `woken()`; leaves when dropped.
pub(crate) struct WaitingClaim<'a> {
    claims: &'a WaitingClaims,
    id: u64,
    wake: Arc<Notify>,
}

impl WaitingClaim<'_> {
    /// Resolves once a change offered a task this claim takes (at once if one did since it was
    /// registered).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}

impl Drop for WaitingClaim<'_> {
    fn drop(&mut self) {
        self.claims.lock().retain(|waiting| waiting.id != self.id);
    }
}

impl WaitingClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a claim about to look for work: a task offered from now on may wake it.
    pub(crate) fn register(&self, request: Arc<ClaimRequest>) -> WaitingClaim<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        self.lock().push_back(Waiting { id, request, wake: wake.clone() });
        WaitingClaim { claims: self, id, wake }
    }

    /// Wakes, for each task `trees` offer (`Job::offered_tasks`), the longest-waiting claim that
    /// would take it, each claim at most once; a woken claim leaves the waiting until it
    /// registers again.
    pub(crate) fn wake_for<'j>(&self, trees: impl IntoIterator<Item = &'j Job>) {
        let mut waiting = self.lock();
        // Tasks alike in all a claim filters on (a batch of creates, mostly) are matched once
        // when none of the waiting claims takes them: a batch costs the claims waiting, not the
        // claims waiting times its tasks.
        let mut taken_by_none: Vec<FilteredOn<'j>> = Vec::new();
        for tree in trees {
            for task in tree.offered_tasks() {
                if waiting.is_empty() {
                    return;
                }
                let filtered_on = FilteredOn::of(task);
                if taken_by_none.contains(&filtered_on) {
                    continue;
                }
                match waiting.iter().position(|w| takes(&w.request, task)) {
                    Some(index) => waiting.remove(index).expect("found above").wake.notify_one(),
                    None => taken_by_none.push(filtered_on),
                }
            }
        }
    }
}

/// What of a task [`takes`] looks at.
#[derive(PartialEq)]
struct FilteredOn<'j> {
    simulated: bool,
    project_id: &'j ProjectId,
    enterprise_project_id: &'j str,
    service: &'j ServiceName,
    job_type: &'j JobType,
}

impl<'j> FilteredOn<'j> {
    fn of(task: &'j Job) -> Self {
        FilteredOn {
            simulated: task.simulate.is_some(),
            project_id: &task.project_id,
            enterprise_project_id: &task.enterprise_project_id,
            service: &task.service,
            job_type: &task.job_type,
        }
    }
}

/// Whether a claim made with `request` may take `task`, by the filters the stores apply (when in
/// doubt, yes: a claim woken for nothing comes back empty; one left asleep leaves a task waiting).
/// It looks only at what [`FilteredOn`] holds.
fn takes(request: &ClaimRequest, task: &Job) -> bool {
    request.simulated == task.simulate.is_some()
        && request.project_ids.as_ref().is_none_or(|projects| projects.contains(&task.project_id))
        && request
            .enterprise_project_ids
            .as_ref()
            .is_none_or(|enterprise_projects| enterprise_projects.contains(&task.enterprise_project_id))
        && (request.services.is_empty() || request.services.contains(&task.service))
        && (request.job_types.is_empty() || request.job_types.iter().any(|t| t == task.job_type.as_str()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jobd_core::{JobType, NewJob, ProjectId, ServiceName, Timestamp};
    use jobd_test_support::store_conformance::claim_request;

    use super::*;

    fn job(service: &str) -> Job {
        let project = ProjectId::parse("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b").unwrap();
        NewJob::new(project, ServiceName::parse(service).unwrap(), JobType::parse("createFirewall").unwrap())
            .into_job(Timestamp::default())
            .unwrap()
    }

    fn wants(service: &str) -> Arc<ClaimRequest> {
        let mut request = claim_request("w", false);
        request.services = vec![ServiceName::parse(service).unwrap()];
        Arc::new(request)
    }

    async fn is_woken(claim: &WaitingClaim<'_>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), claim.woken()).await.is_ok()
    }

    #[tokio::test]
    async fn each_offered_task_wakes_the_longest_waiting_claim_that_takes_it_once() {
        let claims = WaitingClaims::default();
        let (first, second, other) =
            (claims.register(wants("cfw")), claims.register(wants("cfw")), claims.register(wants("waf")));
        claims.wake_for([&job("cfw")]);
        assert!(is_woken(&first).await, "the claim waiting longest");
        assert!(!is_woken(&second).await, "one task wakes one claim");
        assert!(!is_woken(&other).await, "a claim for another service sleeps");
        claims.wake_for([&job("cfw"), &job("cfw")]);
        assert!(is_woken(&second).await);
        assert!(!is_woken(&first).await, "a woken claim waits again only once it registers again");
        drop(second);
        let again = claims.register(wants("cfw"));
        claims.wake_for([&job("waf")]);
        assert!(is_woken(&other).await);
        assert!(!is_woken(&again).await);
        // A task offered between registering and waiting is not missed.
        claims.wake_for([&job("cfw")]);
        assert!(is_woken(&again).await);
        // A batch: tasks no claim takes are passed over, the others still wake theirs.
        let (cfw, waf) = (claims.register(wants("cfw")), claims.register(wants("waf")));
        let batch: Vec<Job> = (0..100).map(|_| job("elb")).chain([job("waf"), job("cfw")]).collect();
        claims.wake_for(&batch);
        assert!(is_woken(&cfw).await && is_woken(&waf).await);
    }

    #[test]
    fn a_claim_takes_the_tasks_its_filters_let_through() {
        let task = job("cfw");
        assert!(takes(&claim_request("w", false), &task), "no filter");
        assert!(!takes(&claim_request("sim", true), &task), "the simulator takes simulated tasks only");
        let mut elsewhere = claim_request("w", false);
        elsewhere.project_ids = Some(vec![]);
        assert!(!takes(&elsewhere, &task));
        elsewhere.project_ids = Some(vec![task.project_id.clone()]);
        elsewhere.job_types = vec!["deleteFirewall".into()];
        assert!(!takes(&elsewhere, &task));
        elsewhere.job_types = vec!["createFirewall".into()];
        elsewhere.enterprise_project_ids = Some(vec![task.enterprise_project_id.clone()]);
        assert!(takes(&elsewhere, &task));
    }
}
