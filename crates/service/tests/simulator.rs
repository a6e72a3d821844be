//! The simulator against a real SQLite store: ordered sub-jobs, failures, cancellation, resume.

use std::sync::Arc;
use std::time::Duration;

use jobd_core::*;
use jobd_service::{JobService, Simulator, SystemClock};
use jobd_store::SqliteStore;

async fn service() -> (JobService, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    (JobService::new(Arc::new(store), Arc::new(SystemClock)), dir)
}

fn spec(duration_ms: u64, outcome: SimulateOutcome, messages: &[&str]) -> SimulateSpec {
    SimulateSpec {
        duration_ms,
        outcome,
        error_code: Some("ELB.8902".into()),
        error_msg: Some("traffic switch failed".into()),
        messages: messages.iter().map(|m| m.to_string()).collect(),
    }
}

fn upgrade(outcomes: &[SimulateOutcome]) -> NewJob {
    NewJob {
        resource_id: Some("lb-1".into()),
        sub_jobs: outcomes
            .iter()
            .enumerate()
            .map(|(i, outcome)| NewSubJob {
                simulate: Some(spec(40, *outcome, &["first", "second"])),
                ..NewSubJob::new(JobType::parse(&format!("STEP_{i}")).unwrap())
            })
            .collect(),
        ..NewJob::new(
            ProjectId::parse("0123456789abcdef0123456789abcdef").unwrap(),
            ServiceName::parse("elb").unwrap(),
            JobType::parse("UPGRADE").unwrap(),
        )
    }
}

/// Waits (bounded) on the change feed until the job is terminal, and answers every version seen.
async fn follow_to_end(
    service: &JobService,
    mut changes: tokio::sync::broadcast::Receiver<jobd_service::JobChange>,
    job_id: &JobId,
) -> Vec<Job> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let change = changes.recv().await.unwrap();
            if &change.job.job_id == job_id {
                seen.push((*change.job).clone());
                if change.job.is_terminal() {
                    return;
                }
            }
        }
    })
    .await
    .expect("the job ends");
    let _ = service;
    seen
}

#[tokio::test]
async fn sub_jobs_play_in_order_to_success() {
    let (service, _dir) = service().await;
    Simulator::new(service.clone()).spawn();
    let changes = service.subscribe();
    let job = service.create(upgrade(&[SimulateOutcome::Success; 3]), None).await.unwrap().job;
    let seen = follow_to_end(&service, changes, &job.job_id).await;
    let last = seen.last().unwrap();
    assert_eq!(last.status, JobStatus::Succeeded);
    assert!(last.sub_jobs.iter().all(|s| s.status == JobStatus::Succeeded));
    for pair in last.sub_jobs.windows(2) {
        assert!(pair[0].ended_at <= pair[1].started_at, "sub-jobs ran in order");
    }
    assert!(seen.iter().any(|j| j.message.as_deref() == Some("second")), "progress messages were set");
    assert!(seen.windows(2).all(|w| w[0].version < w[1].version));
}

#[tokio::test]
async fn a_failing_sub_job_fails_the_tree() {
    let (service, _dir) = service().await;
    Simulator::new(service.clone()).spawn();
    let changes = service.subscribe();
    let job = service
        .create(upgrade(&[SimulateOutcome::Success, SimulateOutcome::Failure, SimulateOutcome::Success]), None)
        .await
        .unwrap()
        .job;
    let last = follow_to_end(&service, changes, &job.job_id).await.pop().unwrap();
    assert_eq!(last.status, JobStatus::Failed);
    assert_eq!(last.error_code.as_deref(), Some("ELB.8902"));
    assert_eq!(last.sub_jobs[2].status, JobStatus::Cancelled);
}

#[tokio::test]
async fn a_cancelled_job_is_not_overwritten() {
    let (service, _dir) = service().await;
    Simulator::new(service.clone()).spawn();
    let mut new = upgrade(&[]);
    new.simulate = Some(spec(400, SimulateOutcome::Success, &["working"]));
    let mut changes = service.subscribe();
    let job = service.create(new, None).await.unwrap().job;
    // Wait until the simulator has started it, then cancel.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let change = changes.recv().await.unwrap();
            if change.job.status == JobStatus::Running {
                return;
            }
        }
    })
    .await
    .unwrap();
    let cancelled = service.cancel(&job.project_id, &job.job_id).await.unwrap();
    // Past the simulated end: a late outcome would show up on the feed as a newer version.
    // Expect none.
    let late = tokio::time::timeout(Duration::from_millis(800), async {
        loop {
            let change = changes.recv().await.unwrap();
            // Changes the simulator made before the cancel may still be on their way; anything
            // newer than the cancel must be the cancelled job.
            if change.job.version > cancelled.version && change.job.status != JobStatus::Cancelled {
                return change;
            }
        }
    })
    .await;
    assert!(late.is_err(), "no change after the cancel: {late:?}");
    assert_eq!(service.get(&job.project_id, &job.job_id).await.unwrap().status, JobStatus::Cancelled);
}

#[tokio::test]
async fn open_jobs_resume_after_a_restart() {
    let (service, _dir) = service().await;
    // Created and started while no simulator runs (as if jobd stopped mid-way).
    let mut new = upgrade(&[]);
    new.simulate = Some(spec(50, SimulateOutcome::Success, &["one", "two"]));
    let job = service.create(new, None).await.unwrap().job;
    service.record(&job.project_id, &job.job_id, JobEvent::Start { message: Some("one".into()) }).await.unwrap();
    let changes = service.subscribe();
    Simulator::new(service.clone()).spawn();
    let last = follow_to_end(&service, changes, &job.job_id).await.pop().unwrap();
    assert_eq!(last.status, JobStatus::Succeeded);
    assert_eq!(last.message.as_deref(), Some("two"));
}
