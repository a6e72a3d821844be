//! The state machine, checked on examples and on random event sequences (proptest).

use chrono::{TimeZone, Utc};
use jobd_core::state_machine::derive_parent_status;
use jobd_core::*;
use proptest::prelude::*;

fn at(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
}

fn new_job(sub_job_count: usize) -> Job {
    NewJob {
        resource_id: Some("lb-1".to_owned()),
        sub_jobs: (0..sub_job_count).map(|i| NewSubJob::new(JobType::parse(&format!("STEP_{i}")).unwrap())).collect(),
        ..NewJob::new(
            ProjectId::parse("0123456789abcdef0123456789abcdef").unwrap(),
            ServiceName::parse("elb").unwrap(),
            JobType::parse("UPGRADE").unwrap(),
        )
    }
    .into_job(at(0))
    .unwrap()
}

fn start() -> JobEvent {
    JobEvent::Start { message: Some("starting".into()) }
}

fn fail(code: &str) -> JobEvent {
    JobEvent::Fail { error_code: code.into(), error_msg: format!("{code} happened") }
}

fn succeed() -> JobEvent {
    JobEvent::Succeed { result: None, message: None }
}

#[test]
fn a_leaf_job_runs_and_succeeds() {
    let job = new_job(0);
    let id = job.job_id.clone();
    let running = apply(&job, &id, &start(), at(10)).unwrap();
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.started_at, Some(at(10)));
    assert_eq!(running.message.as_deref(), Some("starting"));
    assert_eq!(running.version, 2);
    let done = apply(&running, &id, &succeed(), at(20)).unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.ended_at, Some(at(20)));
    assert_eq!(done.version, 3);
    assert!(matches!(apply(&done, &id, &JobEvent::Cancel, at(30)), Err(TransitionError::AlreadyTerminal { .. })));
}

#[test]
fn sub_jobs_run_in_order_and_the_parent_follows() {
    let job = new_job(3);
    let (a, b, c) = (job.sub_jobs[0].job_id.clone(), job.sub_jobs[1].job_id.clone(), job.sub_jobs[2].job_id.clone());
    assert!(matches!(apply(&job, &b, &start(), at(1)), Err(TransitionError::OutOfOrder { .. })));
    let job = apply(&job, &a, &start(), at(1)).unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.started_at, Some(at(1)));
    let job = apply(&job, &a, &succeed(), at(2)).unwrap();
    assert_eq!(job.status, JobStatus::Running);
    let job = apply(&job, &b, &start(), at(3)).unwrap();
    let job = apply(&job, &b, &succeed(), at(4)).unwrap();
    let job = apply(&job, &c, &start(), at(5)).unwrap();
    let job = apply(&job, &c, &succeed(), at(6)).unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.ended_at, Some(at(6)));
    assert_eq!(job.version, 7, "the parent's version moves with every sub-job change");
    assert!(matches!(apply(&job, &job.job_id.clone(), &start(), at(7)), Err(TransitionError::AlreadyTerminal { .. })));
}

#[test]
fn a_failing_sub_job_fails_the_parent_and_cancels_the_rest() {
    let job = new_job(3);
    let (a, b) = (job.sub_jobs[0].job_id.clone(), job.sub_jobs[1].job_id.clone());
    let job = apply(&job, &a, &succeed(), at(1)).unwrap();
    let job = apply(&job, &b, &start(), at(2)).unwrap();
    let job = apply(&job, &b, &fail("ELB.TRAFFIC"), at(3)).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error_code.as_deref(), Some("ELB.TRAFFIC"));
    assert_eq!(job.error_msg.as_deref(), Some("ELB.TRAFFIC happened"));
    assert_eq!(job.sub_jobs[2].status, JobStatus::Cancelled);
    assert_eq!(job.sub_jobs[2].started_at, None);
}

#[test]
fn cancelling_a_parent_cancels_its_unfinished_sub_jobs_only() {
    let job = new_job(2);
    let a = job.sub_jobs[0].job_id.clone();
    let job = apply(&job, &a, &succeed(), at(1)).unwrap();
    let job = apply(&job, &job.job_id.clone(), &JobEvent::Cancel, at(2)).unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.sub_jobs[0].status, JobStatus::Succeeded);
    assert_eq!(job.sub_jobs[1].status, JobStatus::Cancelled);
    assert!(matches!(apply(&job, &a, &JobEvent::Cancel, at(3)), Err(TransitionError::SubJobCancel { .. })));
}

#[test]
fn a_parent_status_cannot_be_set_directly() {
    let job = new_job(1);
    let id = job.job_id.clone();
    assert!(matches!(apply(&job, &id, &succeed(), at(1)), Err(TransitionError::DerivedStatus { .. })));
    assert!(apply(&job, &JobId::parse("00000000-0000-0000-0000-000000000000").unwrap(), &start(), at(1)).is_err());
}

#[test]
fn waf_jobs_get_32_hex_ids_and_others_uuids() {
    let mut request = NewJob::new(
        ProjectId::parse("p").unwrap(),
        ServiceName::parse("waf").unwrap(),
        JobType::parse("check").unwrap(),
    );
    let waf = request.clone().into_job(at(0)).unwrap();
    assert_eq!(waf.job_id.as_str().len(), 32);
    request.service = ServiceName::parse("cfw").unwrap();
    assert_eq!(request.into_job(at(0)).unwrap().job_id.as_str().len(), 36);
}

// ---- properties over random event sequences ----

#[derive(Debug, Clone)]
enum EventKind {
    Start,
    Progress,
    Succeed,
    Fail,
    Cancel,
}

fn event_strategy() -> impl Strategy<Value = (usize, EventKind)> {
    (
        0usize..5,
        prop_oneof![
            Just(EventKind::Start),
            Just(EventKind::Progress),
            Just(EventKind::Succeed),
            Just(EventKind::Fail),
            Just(EventKind::Cancel),
        ],
    )
}

fn to_event(kind: &EventKind, step: usize) -> JobEvent {
    match kind {
        EventKind::Start => JobEvent::Start { message: Some(format!("start {step}")) },
        EventKind::Progress => JobEvent::Progress { message: format!("progress {step}") },
        EventKind::Succeed => JobEvent::Succeed { result: Some(serde_json::json!({"step": step})), message: None },
        EventKind::Fail => fail(&format!("E{step}")),
        EventKind::Cancel => JobEvent::Cancel,
    }
}

fn check_tree_invariants(tree: &Job) {
    for job in tree.iter_tree() {
        if job.status.is_terminal() {
            assert!(job.ended_at.is_some(), "a terminal job has an end time");
        } else {
            assert!(job.ended_at.is_none(), "an open job has no end time");
        }
        if job.status == JobStatus::Running {
            assert!(job.started_at.is_some());
        }
    }
    if tree.has_sub_jobs() {
        assert_eq!(tree.status, derive_parent_status(&tree.sub_jobs), "the parent's status is derived");
        if tree.status == JobStatus::Failed {
            let failed: Vec<_> = tree.sub_jobs.iter().filter(|s| s.status == JobStatus::Failed).collect();
            assert_eq!(failed.len(), 1, "exactly one sub-job failed the parent");
            assert_eq!(tree.error_code, failed[0].error_code);
            assert_eq!(tree.error_msg, failed[0].error_msg);
        }
        if tree.status.is_terminal() {
            assert!(tree.sub_jobs.iter().all(|s| s.is_terminal()), "a finished parent has no open sub-job");
        }
        for pair in tree.sub_jobs.windows(2) {
            if pair[1].status.rank() > 0 && pair[1].status != JobStatus::Cancelled {
                assert_eq!(pair[0].status, JobStatus::Succeeded, "sub-jobs run in order");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_event_sequences_keep_every_invariant(
        sub_job_count in 0usize..4,
        events in proptest::collection::vec(event_strategy(), 0..40),
    ) {
        let mut tree = new_job(sub_job_count);
        let ids: Vec<JobId> = tree.iter_tree().map(|j| j.job_id.clone()).collect();
        check_tree_invariants(&tree);
        for (step, (target, kind)) in events.iter().enumerate() {
            let target = &ids[target % ids.len()];
            let event = to_event(kind, step);
            if let Ok(next) = apply(&tree, target, &event, at(step as i64 + 1)) {
                    for (old, new) in tree.iter_tree().zip(next.iter_tree()) {
                        prop_assert!(new.status.rank() >= old.status.rank(), "status went back: {} -> {}", old.status, new.status);
                        if old.is_terminal() {
                            prop_assert_eq!(old, new, "a terminal job never changes");
                        }
                        prop_assert!(new.version >= old.version);
                        if new != old {
                            prop_assert!(new.version > old.version, "every change raises the version");
                        }
                    }
                    if next != tree {
                        prop_assert!(next.version > tree.version, "the parent's version moves with its tree");
                    }
                    tree = next;
            }
            check_tree_invariants(&tree);
        }
    }

    #[test]
    fn a_cancelled_job_is_never_overwritten(
        sub_job_count in 0usize..4,
        events in proptest::collection::vec(event_strategy(), 0..20),
    ) {
        let tree = new_job(sub_job_count);
        let mut tree = apply(&tree, &tree.job_id.clone(), &JobEvent::Cancel, at(0)).unwrap();
        let cancelled = tree.clone();
        let ids: Vec<JobId> = tree.iter_tree().map(|j| j.job_id.clone()).collect();
        for (step, (target, kind)) in events.iter().enumerate() {
            let result = apply(&tree, &ids[target % ids.len()], &to_event(kind, step), at(step as i64 + 1));
            prop_assert!(result.is_err());
            if let Ok(next) = result { tree = next; }
        }
        prop_assert_eq!(tree, cancelled);
    }
}

#[test]
fn same_row_sees_a_change_of_any_own_field_and_ignores_sub_jobs() {
    let tree = new_job(2);
    let alone = Job { sub_jobs: Vec::new(), ..tree.clone() };
    assert!(tree.same_row(&alone), "sub-jobs are rows of their own");
    let changed: Vec<Job> = vec![
        Job { payload: Some(serde_json::json!({"k": 1})), ..alone.clone() },
        Job { lease: Some(Lease { worker_id: "w".into(), token: "t".into(), expires_at: at(5) }), ..alone.clone() },
        Job { version: alone.version + 1, ..alone.clone() },
        Job { message: Some("m".into()), ..alone.clone() },
        Job { resource_id: Some("lb-2".into()), ..alone.clone() },
        Job { priority: 7, ..alone.clone() },
    ];
    for other in &changed {
        assert!(!alone.same_row(other) && !other.same_row(&alone));
    }
}

#[test]
fn a_tree_offers_work_while_a_task_waits_for_a_worker() {
    let lease = |token: &str| Lease { worker_id: "w".into(), token: token.into(), expires_at: at(60_000) };
    let claim = |token: &str| JobEvent::Claim { lease: lease(token) };
    let offered = |tree: &Job| tree.offered_tasks().map(|task| task.job_id.clone()).collect::<Vec<_>>();
    let job = new_job(0);
    let id = job.job_id.clone();
    assert!(job.max_attempts > 1, "the example needs a retry");
    assert_eq!(offered(&job), vec![id.clone()], "a new job waits for a worker");
    let claimed = apply(&job, &id, &claim("a"), at(1)).unwrap();
    assert!(offered(&claimed).is_empty(), "a leased task waits for its lease, not for a claim");
    let retry = JobEvent::FailAttempt {
        lease_token: "a".into(),
        error_code: "X".into(),
        error_msg: "x".into(),
        retryable: true,
        jitter: 0.0,
    };
    let retrying = apply(&claimed, &id, &retry, at(2)).unwrap();
    assert_eq!(offered(&retrying), vec![id.clone()], "a retry (once due) waits for a worker");
    let claimed = apply(&retrying, &id, &claim("b"), at(10_000_000)).unwrap();
    let done =
        apply(&claimed, &id, &JobEvent::Complete { lease_token: "b".into(), result: None, message: None }, at(3))
            .unwrap();
    assert!(offered(&done).is_empty(), "a finished job makes no work");
    // A tree: its next step, once the one before succeeded.
    let tree = new_job(2);
    let first = tree.sub_jobs[0].job_id.clone();
    let claimed = apply(&tree, &first, &claim("c"), at(1)).unwrap();
    assert!(offered(&claimed).is_empty(), "the second step waits for the first");
    let next =
        apply(&claimed, &first, &JobEvent::Complete { lease_token: "c".into(), result: None, message: None }, at(2))
            .unwrap();
    assert_eq!(offered(&next), vec![tree.sub_jobs[1].job_id.clone()], "the second step's turn has come");
}
