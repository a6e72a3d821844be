//! Claims, leases, retries, timeouts and parallel sub-jobs, with an injected clock (time is an
//! argument here, so nothing sleeps), plus a property test over random worker event sequences.

use chrono::{Duration, TimeZone, Utc};
use jobd_core::state_machine::{derive_parent_status, JOB_LEASE_EXPIRED, JOB_TIMEOUT};
use jobd_core::*;
use proptest::prelude::*;

fn at(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
}

fn task(configure: impl FnOnce(&mut NewJob)) -> Job {
    let mut new = NewJob::new(
        ProjectId::parse("p1").unwrap(),
        ServiceName::parse("cfw").unwrap(),
        JobType::parse("CreateFirewall").unwrap(),
    );
    configure(&mut new);
    new.into_job(at(0)).unwrap()
}

fn claim(token: &str, expires_ms: i64) -> JobEvent {
    JobEvent::Claim { lease: Lease { worker_id: "w".into(), token: token.into(), expires_at: at(expires_ms) } }
}

fn heartbeat(token: &str) -> JobEvent {
    JobEvent::Heartbeat { lease_token: token.into(), lease_expires_at: None, message: None }
}

fn complete(token: &str) -> JobEvent {
    JobEvent::Complete { lease_token: token.into(), result: Some(serde_json::json!({"ok": true})), message: None }
}

fn fail_attempt(token: &str, retryable: bool) -> JobEvent {
    JobEvent::FailAttempt {
        lease_token: token.into(),
        error_code: "CFW.X".into(),
        error_msg: "broke".into(),
        retryable,
        jitter: 1.0,
    }
}

#[test]
fn a_claim_is_exclusive_until_its_lease_expires_and_then_taken_over() {
    let job = task(|_| {});
    let id = job.job_id.clone();
    let job = apply(&job, &id, &claim("a", 30_000), at(1)).unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Running, 1));
    assert!(matches!(apply(&job, &id, &claim("b", 60_000), at(2)), Err(TransitionError::NotClaimable { .. })));
    // Expired but not yet taken over: the old lease still works.
    let job = apply(&job, &id, &heartbeat("a"), at(31_000)).unwrap();
    let taken = apply(&job, &id, &claim("b", 90_000), at(31_000)).unwrap();
    assert_eq!(taken.attempt, 2, "an expiry counts as an attempt");
    assert_eq!(taken.status, JobStatus::Running, "a job stays RUNNING between attempts");
    assert!(matches!(apply(&taken, &id, &complete("a"), at(32_000)), Err(TransitionError::LeaseLost { .. })));
    let done = apply(&taken, &id, &complete("b"), at(32_000)).unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    let again = apply(&done, &id, &complete("b"), at(33_000)).unwrap();
    assert_eq!(again, done, "completing twice changes nothing");
}

#[test]
fn retryable_failures_back_off_and_the_last_attempt_fails_the_job() {
    let job = task(|new| new.max_attempts = 2);
    let id = job.job_id.clone();
    let job = apply(&job, &id, &claim("a", 30_000), at(0)).unwrap();
    let job = apply(&job, &id, &fail_attempt("a", true), at(1_000)).unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.available_at, at(2_000), "1 s initial backoff (jitter 1.0 → the full delay)");
    assert!(job.lease.is_none());
    assert!(matches!(apply(&job, &id, &claim("b", 30_000), at(1_500)), Err(TransitionError::NotClaimable { .. })));
    let job = apply(&job, &id, &claim("b", 40_000), at(2_000)).unwrap();
    let job = apply(&job, &id, &fail_attempt("b", true), at(3_000)).unwrap();
    assert_eq!(job.status, JobStatus::Failed, "no attempts left");
    assert_eq!(job.error_code.as_deref(), Some("CFW.X"));
}

#[test]
fn a_fatal_failure_ends_the_job_at_once() {
    let job = task(|_| {});
    let id = job.job_id.clone();
    let job = apply(&job, &id, &claim("a", 30_000), at(0)).unwrap();
    let job = apply(&job, &id, &fail_attempt("a", false), at(1)).unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Failed, 1));
}

#[test]
fn the_last_attempts_expired_lease_fails_the_job() {
    let job = task(|new| new.max_attempts = 1);
    let id = job.job_id.clone();
    let job = apply(&job, &id, &claim("a", 10_000), at(0)).unwrap();
    assert!(matches!(apply(&job, &id, &JobEvent::ExpireLease, at(9_999)), Err(TransitionError::NotDue { .. })));
    let job = apply(&job, &id, &JobEvent::ExpireLease, at(10_000)).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error_code.as_deref(), Some(JOB_LEASE_EXPIRED));
}

#[test]
fn a_timeout_fails_for_good_and_revokes_the_lease() {
    let job = task(|new| new.timeout_seconds = Some(10));
    let id = job.job_id.clone();
    let job = apply(&job, &id, &claim("a", 60_000), at(0)).unwrap();
    assert!(matches!(apply(&job, &id, &JobEvent::TimeOut, at(9_999)), Err(TransitionError::NotDue { .. })));
    let job = apply(&job, &id, &JobEvent::TimeOut, at(10_000)).unwrap();
    assert_eq!(job.error_code.as_deref(), Some(JOB_TIMEOUT));
    assert!(matches!(
        apply(&job, &id, &heartbeat("a"), at(10_001)),
        Err(TransitionError::AlreadyTerminal { status: JobStatus::Failed, .. })
    ));
}

#[test]
fn a_scheduled_job_waits_for_its_time() {
    let job = task(|new| new.run_at = Some(at(5_000)));
    let id = job.job_id.clone();
    assert!(apply(&job, &id, &claim("a", 60_000), at(4_999)).is_err());
    assert!(apply(&job, &id, &claim("a", 60_000), at(5_000)).is_ok());
}

#[test]
fn cancellation_reaches_the_worker_through_its_heartbeat() {
    let job = task(|_| {});
    let id = job.job_id.clone();
    let job = apply(&job, &id, &claim("a", 60_000), at(0)).unwrap();
    let job = apply(&job, &id, &JobEvent::Cancel, at(1)).unwrap();
    assert!(matches!(
        apply(&job, &id, &heartbeat("a"), at(2)),
        Err(TransitionError::AlreadyTerminal { status: JobStatus::Cancelled, .. })
    ));
}

#[test]
fn parallel_sub_jobs_run_together_and_one_failure_cancels_the_rest() {
    let job = task(|new| {
        new.execution = Execution::Parallel;
        new.sub_jobs = (0..3).map(|i| NewSubJob::new(JobType::parse(&format!("S{i}")).unwrap())).collect();
    });
    assert_eq!(runnable(&job), vec![false, true, true, true]);
    let ids: Vec<JobId> = job.sub_jobs.iter().map(|s| s.job_id.clone()).collect();
    let job = apply(&job, &ids[2], &claim("c", 60_000), at(0)).unwrap();
    let job = apply(&job, &ids[0], &claim("a", 60_000), at(0)).unwrap();
    let job = apply(&job, &ids[0], &fail_attempt("a", false), at(1)).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.sub_jobs[1].status, JobStatus::Cancelled);
    assert_eq!(job.sub_jobs[2].status, JobStatus::Cancelled, "a running sibling is cancelled too");
    assert_eq!(runnable(&job), vec![false, false, false, false]);
}

#[test]
fn sequential_sub_jobs_become_runnable_one_by_one() {
    let job = task(|new| {
        new.sub_jobs = (0..2).map(|i| NewSubJob::new(JobType::parse(&format!("S{i}")).unwrap())).collect();
    });
    assert_eq!(runnable(&job), vec![false, true, false]);
    let first = job.sub_jobs[0].job_id.clone();
    assert!(matches!(
        apply(&job, &job.sub_jobs[1].job_id.clone(), &claim("x", 60_000), at(0)),
        Err(TransitionError::OutOfOrder { .. })
    ));
    let job = apply(&job, &first, &claim("a", 60_000), at(0)).unwrap();
    let job = apply(&job, &first, &complete("a"), at(1)).unwrap();
    assert_eq!(runnable(&job), vec![false, false, true]);
}

fn runnable(job: &Job) -> Vec<bool> {
    job.task_flags().iter().map(|flags| flags.runnable).collect()
}

fn three_step_rollback() -> Job {
    task(|new| {
        new.on_failure = OnFailure::Rollback;
        new.max_attempts = 1;
        new.sub_jobs = (0..3).map(|i| NewSubJob::new(JobType::parse(&format!("S{i}")).unwrap())).collect();
    })
}

/// Runs sub-jobs 0 and 1 to success and fails sub-job 2: the parent starts rolling back.
fn failed_third_step() -> Job {
    let mut job = three_step_rollback();
    for i in 0..2 {
        let id = job.sub_jobs[i].job_id.clone();
        job = apply(&job, &id, &claim(&format!("run{i}"), 60_000), at(0)).unwrap();
        job = apply(&job, &id, &complete(&format!("run{i}")), at(1)).unwrap();
    }
    let third = job.sub_jobs[2].job_id.clone();
    job = apply(&job, &third, &claim("run2", 60_000), at(2)).unwrap();
    apply(&job, &third, &fail_attempt("run2", false), at(3)).unwrap()
}

#[test]
fn a_rollback_compensates_succeeded_sub_jobs_in_reverse_order() {
    let job = failed_third_step();
    assert_eq!((job.status, job.phase), (JobStatus::Running, Phase::Rollback));
    assert_eq!(job.error_code.as_deref(), Some("CFW.X"), "the parent keeps the failure that started the rollback");
    assert!(job.sub_jobs[0].compensation.is_some() && job.sub_jobs[1].compensation.is_some());
    assert!(job.sub_jobs[2].compensation.is_none(), "the failed sub-job has nothing to compensate");
    assert_eq!(runnable(&job), vec![false, false, true, false], "the last succeeded sub-job goes first");
    let (first, second) = (job.sub_jobs[0].job_id.clone(), job.sub_jobs[1].job_id.clone());
    assert!(matches!(apply(&job, &first, &claim("c0", 60_000), at(4)), Err(TransitionError::OutOfOrder { .. })));
    let job = apply(&job, &second, &claim("c1", 60_000), at(4)).unwrap();
    assert_eq!(job.sub_jobs[1].compensation.as_ref().unwrap().status, JobStatus::Running);
    let job = apply(&job, &second, &complete("c1"), at(5)).unwrap();
    let job = apply(&job, &first, &claim("c0", 60_000), at(6)).unwrap();
    let job = apply(&job, &first, &complete("c0"), at(7)).unwrap();
    assert_eq!(job.status, JobStatus::Failed, "a finished rollback ends the parent FAILED");
    assert!(job.sub_jobs.iter().filter_map(|s| s.compensation.as_ref()).all(|c| c.status == JobStatus::Succeeded));
}

#[test]
fn a_failed_compensation_ends_the_rollback() {
    let job = failed_third_step();
    let (first, second) = (job.sub_jobs[0].job_id.clone(), job.sub_jobs[1].job_id.clone());
    let job = apply(&job, &second, &claim("c1", 60_000), at(4)).unwrap();
    let job = apply(&job, &second, &fail_attempt("c1", true), at(5)).unwrap();
    assert_eq!(job.status, JobStatus::Failed, "max_attempts 1: no retry");
    assert_eq!(job.sub_jobs[1].compensation.as_ref().unwrap().status, JobStatus::Failed);
    assert_eq!(job.sub_jobs[0].compensation.as_ref().unwrap().status, JobStatus::Cancelled, "the rest never run");
    assert!(apply(&job, &first, &claim("c0", 60_000), at(6)).is_err());
}

// ---- properties ----

#[derive(Debug, Clone)]
enum WorkerStep {
    Claim,
    Heartbeat { stale: bool },
    Complete { stale: bool },
    FailAttempt { retryable: bool },
    ExpireLease,
    TimeOut,
    Cancel,
}

fn worker_step() -> impl Strategy<Value = (usize, WorkerStep, i64)> {
    (
        0usize..4,
        prop_oneof![
            3 => Just(WorkerStep::Claim),
            2 => any::<bool>().prop_map(|stale| WorkerStep::Heartbeat { stale }),
            2 => any::<bool>().prop_map(|stale| WorkerStep::Complete { stale }),
            2 => any::<bool>().prop_map(|retryable| WorkerStep::FailAttempt { retryable }),
            1 => Just(WorkerStep::ExpireLease),
            1 => Just(WorkerStep::TimeOut),
            1 => Just(WorkerStep::Cancel),
        ],
        0i64..20_000,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_worker_sequences_keep_every_invariant(
        sub_job_count in 0usize..4,
        parallel in any::<bool>(),
        max_attempts in 1u32..4,
        rollback in any::<bool>(),
        steps in proptest::collection::vec(worker_step(), 0..60),
    ) {
        let mut tree = task(|new| {
            new.max_attempts = max_attempts;
            if rollback && sub_job_count > 0 {
                new.on_failure = OnFailure::Rollback;
            }
            new.timeout_seconds = Some(60);
            new.execution = if parallel { Execution::Parallel } else { Execution::Sequential };
            new.sub_jobs = (0..sub_job_count).map(|i| NewSubJob::new(JobType::parse(&format!("S{i}")).unwrap())).collect();
        });
        let ids: Vec<JobId> = tree.iter_tree().map(|j| j.job_id.clone()).collect();
        let mut now = at(0);
        let mut claims = 0u32;
        for (step_number, (target, step, advance_ms)) in steps.iter().enumerate() {
            now += Duration::milliseconds(*advance_ms);
            let target = &ids[target % ids.len()];
            let current_token = tree.find(target).and_then(|j| j.lease.as_ref()).map(|l| l.token.clone());
            let token = |stale: bool| if stale { "stale".to_owned() } else { current_token.clone().unwrap_or_default() };
            let event = match step {
                WorkerStep::Claim => {
                    claims += 1;
                    JobEvent::Claim { lease: Lease { worker_id: "w".into(), token: format!("t{claims}"), expires_at: now + Duration::seconds(10) } }
                }
                WorkerStep::Heartbeat { stale } => JobEvent::Heartbeat { lease_token: token(*stale), lease_expires_at: Some(now + Duration::seconds(10)), message: Some(format!("beat {step_number}")) },
                WorkerStep::Complete { stale } => JobEvent::Complete { lease_token: token(*stale), result: None, message: None },
                WorkerStep::FailAttempt { retryable } => JobEvent::FailAttempt { lease_token: token(false), error_code: format!("E{step_number}"), error_msg: "x".into(), retryable: *retryable, jitter: 0.5 },
                WorkerStep::ExpireLease => JobEvent::ExpireLease,
                WorkerStep::TimeOut => JobEvent::TimeOut,
                WorkerStep::Cancel => JobEvent::Cancel,
            };
            if let Ok(next) = apply(&tree, target, &event, now) {
                for (old, new) in tree.iter_tree().zip(next.iter_tree()) {
                    prop_assert!(new.status.rank() >= old.status.rank(), "status went back: {} -> {}", old.status, new.status);
                    if old.is_terminal() {
                        // A succeeded sub-job may still be compensated; its own outcome never changes.
                        prop_assert_eq!(
                            (old.status, old.ended_at, &old.error_code, &old.result),
                            (new.status, new.ended_at, &new.error_code, &new.result),
                            "a terminal job's outcome never changes"
                        );
                    }
                    if let (Some(before), Some(after)) = (&old.compensation, &new.compensation) {
                        prop_assert!(after.status.rank() >= before.status.rank(), "a compensation never goes back");
                        if before.is_terminal() {
                            prop_assert_eq!(before, after);
                        }
                    }
                    prop_assert!(old.compensation.is_none() || new.compensation.is_some());
                    prop_assert!(new.attempt >= old.attempt);
                    prop_assert!(new.attempt <= new.max_attempts, "never more attempts than allowed");
                    prop_assert!(new.version >= old.version);
                }
                if let JobEvent::Claim { lease } = &event {
                    let claimed = next.find(target).unwrap();
                    prop_assert_eq!(claimed.lease.as_ref(), Some(lease), "a claim holds the only lease");
                }
                tree = next;
            }
            if tree.has_sub_jobs() {
                if tree.phase == Phase::Run {
                    prop_assert_eq!(tree.status, derive_parent_status(&tree.sub_jobs));
                } else {
                    let compensations: Vec<_> = tree.sub_jobs.iter().filter_map(|s| s.compensation.as_ref()).collect();
                    prop_assert!(!compensations.is_empty(), "a rollback has something to compensate");
                    prop_assert_eq!(tree.is_terminal(), compensations.iter().all(|c| c.is_terminal()));
                    if tree.status == JobStatus::Running {
                        prop_assert!(tree.sub_jobs.iter().any(|s| s.status == JobStatus::Failed));
                    }
                }
                if tree.is_terminal() {
                    prop_assert!(tree.sub_jobs.iter().all(|s| s.is_terminal()));
                }
            }
            for job in tree.iter_tree() {
                prop_assert_eq!(job.is_terminal(), job.ended_at.is_some());
            }
        }
    }
}
