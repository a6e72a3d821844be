//! `JobService` on its own, over a real SQLite store: naming tasks by id alone (`get_task`, on
//! every worker call, through the store's `project_of`) and the scope of worker events.

use std::sync::Arc;
use std::time::Duration;

use jobd_core::{JobEvent, JobId, JobType, NewJob, NewSubJob, ProjectId, ServiceName};
use jobd_service::{JobService, ServiceError, TaskScope};
use jobd_store::SqliteStore;
use jobd_test_support::clock::ManualClock;
use jobd_test_support::store_conformance::claim_request;

fn project(n: u8) -> ProjectId {
    ProjectId::parse(&format!("{n:02x}").repeat(16)).unwrap()
}

async fn service() -> (JobService, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    (JobService::new(store, Arc::new(ManualClock::starting_at_epoch())), dir)
}

fn two_steps(project_id: ProjectId) -> NewJob {
    NewJob {
        sub_jobs: ["STEP_A", "STEP_B"].iter().map(|t| NewSubJob::new(JobType::parse(t).unwrap())).collect(),
        ..NewJob::new(project_id, ServiceName::parse("elb").unwrap(), JobType::parse("UPGRADE").unwrap())
    }
}

#[tokio::test]
async fn a_task_named_by_id_alone_is_found_in_its_own_project() {
    let (service, _dir) = service().await;
    let mine = service.create(two_steps(project(1)), None).await.unwrap().job;
    let theirs = service.create(two_steps(project(2)), None).await.unwrap().job;
    for job in [&mine, &theirs] {
        let found = service.get_task(&job.job_id).await.unwrap();
        assert_eq!((&found.job_id, &found.project_id), (&job.job_id, &job.project_id));
        let step = &job.sub_jobs[1];
        let found = service.get_task(&step.job_id).await.unwrap();
        assert_eq!(found.job_id, step.job_id, "a sub-job is found by its own id");
        assert_eq!(found.project_id, job.project_id);
    }
    let unknown = JobId::parse("00000000-0000-4000-8000-000000000000").unwrap();
    assert!(matches!(service.get_task(&unknown).await, Err(ServiceError::NotFound(_))));
}

#[tokio::test]
async fn a_worker_event_outside_its_scope_is_not_found() {
    let (service, _dir) = service().await;
    let job = service.create(NewJob { sub_jobs: vec![], ..two_steps(project(1)) }, None).await.unwrap().job;
    let claimed = service.claim(&claim_request("w", false), Duration::ZERO).await.unwrap();
    let token = claimed[0].task().lease.as_ref().unwrap().token.clone();
    let beat = JobEvent::Heartbeat { lease_token: token, lease_expires_at: None, message: Some("half".into()) };
    let elsewhere = TaskScope { project_ids: Some(vec![project(2)]), ..TaskScope::default() };
    let refused = service.record_task_event(&job.job_id, beat.clone(), &elsewhere).await;
    assert!(matches!(refused, Err(ServiceError::NotFound(_))), "{refused:?}");
    let own = TaskScope { project_ids: Some(vec![project(1)]), ..TaskScope::default() };
    let kept = service.record_task_event(&job.job_id, beat, &own).await.unwrap();
    assert_eq!(kept.message.as_deref(), Some("half"));
}
