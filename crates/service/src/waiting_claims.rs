//! Claims waiting for work on this node, each with what it takes. A change that offers tasks
//! wakes, per task, one waiting claim that would take it, rather than every waiting claim: each
//! woken claim runs a claim on the store, and all but one came back empty (on two cores, the
//! empty ones ran beside the one that took the task and slowed it).
//!
//! A woken claim may leave without having looked for the task it was woken for: it was already
//! asking the store and came back with other tasks, or its caller went away, or its wait ended.
//! It then hands the wake on to the next waiting claim that would take that task (see
//! [`WaitingClaim`]'s `Drop`). A task not due yet wakes every waiting claim instead
//! ([`WakeFor::Everyone`]): each has to move its timer, and one woken claim could be taken away by
//! another task before this one falls due.
//!
//! A claim woken for a lone job without a lease gets the job's tree as the change committed it,
//! to take it directly (`JobStore::claim_offered`: on PostgreSQL one statement instead of a
//! transaction that looks for candidates).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use jobd_core::{Job, JobType, ProjectId, ServiceName, Timestamp};
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
    wake: Arc<Wake>,
}

/// How a waiting claim is woken, shared by its place among the waiting and its guard.
#[derive(Default)]
struct Wake {
    notify: Notify,
    /// The tasks it was woken for, until it looks for them.
    woken_for: Mutex<Vec<Offered>>,
}

/// A task a claim was woken for: its kind, and for a lone job without a lease its tree as the
/// change committed it.
struct Offered {
    kind: TaskKind<'static>,
    tree: Option<Arc<Job>>,
}

/// What the changes asked of the waiting claims.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WakeFor {
    /// Nothing to wake for, or a claim was woken for each task offered.
    Done,
    /// A task is not due yet: every waiting claim should look again (and set its timer).
    Everyone,
}

/// A claim's place among the waiting: woken through `woken()`; leaves when dropped, handing on a
/// wake it did not use.
pub(crate) struct WaitingClaim<'a> {
    claims: &'a WaitingClaims,
    id: u64,
    wake: Arc<Wake>,
}

impl WaitingClaim<'_> {
    /// Resolves once a change offered a task this claim takes (at once if one did since it was
    /// registered); the claim is then taken to look for it. Answers the trees of the lone jobs it
    /// was woken for, to take directly.
    pub(crate) async fn woken(&self) -> Vec<Arc<Job>> {
        self.wake.notify.notified().await;
        std::mem::take(&mut *lock(&self.wake.woken_for)).into_iter().filter_map(|offered| offered.tree).collect()
    }
}

impl Drop for WaitingClaim<'_> {
    fn drop(&mut self) {
        let unused = std::mem::take(&mut *lock(&self.wake.woken_for));
        let mut waiting = self.claims.lock();
        waiting.retain(|waiting| waiting.id != self.id);
        for Offered { kind, tree } in unused {
            wake_one(&mut waiting, &kind, || tree);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WaitingClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        lock(&self.waiting)
    }

    /// Registers a claim about to look for work: a task offered from now on may wake it.
    pub(crate) fn register(&self, request: Arc<ClaimRequest>) -> WaitingClaim<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Wake::default());
        self.lock().push_back(Waiting { id, request, wake: wake.clone() });
        WaitingClaim { claims: self, id, wake }
    }

    /// Wakes, for each task `trees` offer (`Job::offered_tasks`) due by `now`, the longest-waiting
    /// claim that would take it, each claim at most once; a woken claim leaves the waiting until it
    /// registers again. A task not due yet asks for [`WakeFor::Everyone`].
    pub(crate) fn wake_for<'j>(&self, trees: impl IntoIterator<Item = &'j Job>, now: Timestamp) -> WakeFor {
        let mut waiting = self.lock();
        // Tasks alike in all a claim filters on (a batch of creates, mostly) are matched once
        // when none of the waiting claims takes them: a batch costs the claims waiting, not the
        // claims waiting times its tasks.
        let mut taken_by_none: Vec<TaskKind<'j>> = Vec::new();
        for tree in trees {
            for task in tree.offered_tasks() {
                if task.available_at > now {
                    return WakeFor::Everyone;
                }
                if waiting.is_empty() {
                    continue; // a later task may not be due yet
                }
                let kind = TaskKind::of(task);
                // A task that is its tree's root is a lone job (a root with sub-jobs is never a
                // task itself), without a lease (`offered_tasks`).
                let lone = || (task.job_id == tree.job_id).then(|| Arc::new(tree.clone()));
                if !taken_by_none.contains(&kind) && !wake_one(&mut waiting, &kind, lone) {
                    taken_by_none.push(kind);
                }
            }
        }
        WakeFor::Done
    }
}

/// Wakes the longest-waiting claim that would take a task of `kind`, if any, and takes it off the
/// waiting, handing it the task's `tree` if it has one to take directly; answers whether there
/// was one.
fn wake_one(waiting: &mut VecDeque<Waiting>, kind: &TaskKind<'_>, tree: impl FnOnce() -> Option<Arc<Job>>) -> bool {
    let Some(index) = waiting.iter().position(|w| takes(&w.request, kind)) else { return false };
    let woken = waiting.remove(index).expect("found above");
    lock(&woken.wake.woken_for).push(Offered { kind: kind.to_owned_kind(), tree: tree() });
    woken.wake.notify.notify_one();
    true
}

/// What of a task [`takes`] looks at: borrowed from the task while matching, owned by a woken
/// claim until it looks.
#[derive(PartialEq)]
struct TaskKind<'j> {
    simulated: bool,
    project_id: Cow<'j, ProjectId>,
    enterprise_project_id: Cow<'j, str>,
    service: Cow<'j, ServiceName>,
    job_type: Cow<'j, JobType>,
}

impl<'j> TaskKind<'j> {
    fn of(task: &'j Job) -> Self {
        TaskKind {
            simulated: task.simulate.is_some(),
            project_id: Cow::Borrowed(&task.project_id),
            enterprise_project_id: Cow::Borrowed(&task.enterprise_project_id),
            service: Cow::Borrowed(&task.service),
            job_type: Cow::Borrowed(&task.job_type),
        }
    }

    fn to_owned_kind(&self) -> TaskKind<'static> {
        TaskKind {
            simulated: self.simulated,
            project_id: Cow::Owned(ProjectId::clone(&self.project_id)),
            enterprise_project_id: Cow::Owned(self.enterprise_project_id.to_string()),
            service: Cow::Owned(ServiceName::clone(&self.service)),
            job_type: Cow::Owned(JobType::clone(&self.job_type)),
        }
    }
}

/// Whether a claim made with `request` may take a task of `kind`, by the filters the stores apply
/// (when in doubt, yes: a claim woken for nothing comes back empty; one left asleep leaves a task
/// waiting).
fn takes(request: &ClaimRequest, kind: &TaskKind<'_>) -> bool {
    request.takes(kind.simulated, &kind.project_id, &kind.enterprise_project_id, &kind.service, kind.job_type.as_str())
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

    fn now() -> Timestamp {
        Timestamp::default()
    }

    async fn is_woken(claim: &WaitingClaim<'_>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), claim.woken()).await.is_ok()
    }

    #[tokio::test]
    async fn each_offered_task_wakes_the_longest_waiting_claim_that_takes_it_once() {
        let claims = WaitingClaims::default();
        let (first, second, other) =
            (claims.register(wants("cfw")), claims.register(wants("cfw")), claims.register(wants("waf")));
        claims.wake_for([&job("cfw")], now());
        assert!(is_woken(&first).await, "the claim waiting longest");
        assert!(!is_woken(&second).await, "one task wakes one claim");
        assert!(!is_woken(&other).await, "a claim for another service sleeps");
        claims.wake_for([&job("cfw"), &job("cfw")], now());
        assert!(is_woken(&second).await);
        assert!(!is_woken(&first).await, "a woken claim waits again only once it registers again");
        drop(second);
        let again = claims.register(wants("cfw"));
        claims.wake_for([&job("waf")], now());
        assert!(is_woken(&other).await);
        assert!(!is_woken(&again).await);
        // A task offered between registering and waiting is not missed.
        claims.wake_for([&job("cfw")], now());
        assert!(is_woken(&again).await);
        // A batch: tasks no claim takes are passed over, the others still wake theirs.
        let (cfw, waf) = (claims.register(wants("cfw")), claims.register(wants("waf")));
        let batch: Vec<Job> = (0..100).map(|_| job("elb")).chain([job("waf"), job("cfw")]).collect();
        claims.wake_for(&batch, now());
        assert!(is_woken(&cfw).await && is_woken(&waf).await);
    }

    #[tokio::test]
    async fn a_claim_that_leaves_without_looking_hands_its_wake_on() {
        let claims = WaitingClaims::default();
        let (busy, asleep) = (claims.register(wants("cfw")), claims.register(wants("cfw")));
        // `busy` is still asking the store when the task comes, and leaves with other tasks.
        claims.wake_for([&job("cfw")], now());
        drop(busy);
        assert!(is_woken(&asleep).await, "the wake went on to the next claim that takes the task");
        // A claim that looked (woken, then ran its claim) hands nothing on.
        let next = claims.register(wants("cfw"));
        claims.wake_for([&job("cfw")], now());
        let later = claims.register(wants("cfw"));
        assert!(is_woken(&next).await);
        drop(next);
        assert!(!is_woken(&later).await);
    }

    /// What a woken claim is handed to take directly: the tree of a lone job, as offered, and
    /// nothing for a sub-job; a wake handed on carries it.
    #[tokio::test]
    async fn a_woken_claim_is_handed_the_lone_jobs_it_was_woken_for() {
        let claims = WaitingClaims::default();
        let lone = job("cfw");
        let claim = claims.register(wants("cfw"));
        claims.wake_for([&lone], now());
        let handed = tokio::time::timeout(Duration::from_millis(50), claim.woken()).await.expect("woken");
        assert_eq!(handed.iter().map(|tree| &**tree).collect::<Vec<_>>(), vec![&lone]);

        let mut parent = job("cfw");
        parent.sub_jobs.push(job("cfw"));
        parent.sub_jobs[0].parent_job_id = Some(parent.job_id.clone());
        let claim = claims.register(wants("cfw"));
        claims.wake_for([&parent], now());
        let handed = tokio::time::timeout(Duration::from_millis(50), claim.woken()).await;
        assert_eq!(
            handed.map(|trees| trees.len()).ok(),
            Some(0),
            "woken for the sub-job, with nothing to take directly"
        );

        let (busy, asleep) = (claims.register(wants("cfw")), claims.register(wants("cfw")));
        claims.wake_for([&lone], now());
        drop(busy);
        let handed = tokio::time::timeout(Duration::from_millis(50), asleep.woken()).await.expect("handed on");
        assert_eq!(handed.len(), 1, "the tree went on with the wake");
    }

    #[tokio::test]
    async fn a_task_not_due_yet_asks_every_claim_to_look_again() {
        let claims = WaitingClaims::default();
        let waiting = claims.register(wants("cfw"));
        let mut later = job("cfw");
        later.available_at = now() + chrono::Duration::seconds(5);
        assert_eq!(claims.wake_for([&later], now()), WakeFor::Everyone);
        assert_eq!(claims.wake_for([&job("waf")], now()), WakeFor::Done);
        assert!(!is_woken(&waiting).await, "not woken one by one");
    }

    #[test]
    fn a_claim_takes_the_tasks_its_filters_let_through() {
        let task = job("cfw");
        assert!(takes(&claim_request("w", false), &TaskKind::of(&task)), "no filter");
        assert!(!takes(&claim_request("sim", true), &TaskKind::of(&task)), "the simulator takes simulated tasks only");
        let mut elsewhere = claim_request("w", false);
        elsewhere.project_ids = Some(vec![]);
        assert!(!takes(&elsewhere, &TaskKind::of(&task)));
        elsewhere.project_ids = Some(vec![task.project_id.clone()]);
        elsewhere.job_types = vec!["deleteFirewall".into()];
        assert!(!takes(&elsewhere, &TaskKind::of(&task)));
        elsewhere.job_types = vec!["createFirewall".into()];
        elsewhere.enterprise_project_ids = Some(vec![task.enterprise_project_id.clone()]);
        assert!(takes(&elsewhere, &TaskKind::of(&task)));
    }
}
