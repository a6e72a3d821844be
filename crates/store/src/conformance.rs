//! The store conformance suite: every `JobStore` backend runs these cases unchanged.
//!
//! A backend's test file calls `store_conformance_tests!(async_fn_making_a_fresh_store)`, which
//! expands to one `#[tokio::test]` per case.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use jobd_core::{
    Entity, Job, JobEvent, JobId, JobStatus, JobType, NewJob, NewSubJob, ProjectId, ServiceName, SimulateSpec,
    Timestamp,
};
use serde_json::json;

use jobd_core::{Direction, JobQuery};

use crate::{JobStore, StoreError};

pub type SharedStore = Arc<dyn JobStore>;

pub fn at(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
}

fn project(n: u8) -> ProjectId {
    ProjectId::parse(&format!("{n:02x}").repeat(16)).unwrap()
}

fn sample_job(project_id: &ProjectId, service: &str, job_type: &str, sub_jobs: usize, created: i64) -> Job {
    NewJob {
        project_id: project_id.clone(),
        enterprise_project_id: "0".into(),
        service: ServiceName::parse(service).unwrap(),
        job_type: JobType::parse(job_type).unwrap(),
        resource_id: Some(format!("res-{created}")),
        entities: vec![Entity { resource_id: "lb-1".into(), resource_type: "loadbalancer".into() }],
        payload: Some(json!({"size": created, "nested": {"ok": true}})),
        message: Some("queued".into()),
        simulate: None,
        sub_jobs: (0..sub_jobs)
            .map(|i| NewSubJob {
                job_type: JobType::parse(&format!("STEP_{i}")).unwrap(),
                resource_id: None,
                entities: vec![Entity { resource_id: format!("e-{i}"), resource_type: "listener".into() }],
                payload: None,
                simulate: Some(SimulateSpec {
                    duration_ms: 10,
                    outcome: Default::default(),
                    error_code: None,
                    error_msg: None,
                    messages: vec![format!("step {i}")],
                }),
            })
            .collect(),
    }
    .into_job(at(created))
    .unwrap()
}

pub async fn insert_then_get_round_trips_every_field(store: SharedStore) {
    let job = sample_job(&project(1), "elb", "UPGRADE", 3, 0);
    store.insert_job(&job).await.unwrap();
    let stored = store.get_job(&job.project_id, &job.job_id).await.unwrap().unwrap();
    assert_eq!(stored, job);
    let sub = &job.sub_jobs[1];
    let stored_sub = store.get_job(&job.project_id, &sub.job_id).await.unwrap().unwrap();
    assert_eq!(&stored_sub, sub, "a sub-job reads alone, with its parent id");
}

pub async fn jobs_are_scoped_to_their_project(store: SharedStore) {
    let job = sample_job(&project(1), "cfw", "createFirewall", 0, 0);
    store.insert_job(&job).await.unwrap();
    assert!(store.get_job(&project(2), &job.job_id).await.unwrap().is_none());
    assert!(store.cursor_of(&project(2), &job.job_id).await.unwrap().is_none());
    let err = store.apply_event(&project(2), &job.job_id, &JobEvent::Cancel, at(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(store.list_jobs(&JobQuery::new(project(2))).await.unwrap().is_empty());
}

pub async fn a_duplicate_job_id_is_a_conflict(store: SharedStore) {
    let job = sample_job(&project(1), "cfw", "createFirewall", 0, 0);
    store.insert_job(&job).await.unwrap();
    let err = store.insert_job(&job).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

pub async fn events_are_applied_through_the_state_machine_and_kept(store: SharedStore) {
    let job = sample_job(&project(1), "elb", "UPGRADE", 2, 0);
    store.insert_job(&job).await.unwrap();
    let first = job.sub_jobs[0].job_id.clone();
    let second = job.sub_jobs[1].job_id.clone();
    let tree = store
        .apply_event(&job.project_id, &first, &JobEvent::Start { message: Some("init".into()) }, at(5))
        .await
        .unwrap();
    assert_eq!(tree.status, JobStatus::Running);
    assert_eq!(tree.version, 2);
    assert_eq!(store.get_job(&job.project_id, &job.job_id).await.unwrap().unwrap(), tree);

    let refused =
        store.apply_event(&job.project_id, &second, &JobEvent::Start { message: None }, at(6)).await.unwrap_err();
    assert!(matches!(refused, StoreError::Transition(_)), "{refused}");
    assert_eq!(
        store.get_job(&job.project_id, &job.job_id).await.unwrap().unwrap(),
        tree,
        "a refused event changes nothing"
    );

    store
        .apply_event(
            &job.project_id,
            &first,
            &JobEvent::Fail { error_code: "E1".into(), error_msg: "boom".into() },
            at(7),
        )
        .await
        .unwrap();
    let stored = store.get_job(&job.project_id, &job.job_id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Failed);
    assert_eq!(stored.error_code.as_deref(), Some("E1"));
    assert_eq!(stored.sub_jobs[1].status, JobStatus::Cancelled);
    assert_eq!(stored.ended_at, Some(at(7)));
    let err = store.apply_event(&job.project_id, &job.job_id, &JobEvent::Cancel, at(8)).await.unwrap_err();
    assert!(matches!(err, StoreError::Transition(_)), "a finished job cannot be cancelled: {err}");
}

pub async fn unknown_jobs_are_not_found(store: SharedStore) {
    let unknown = JobId::parse("00000000-0000-4000-8000-000000000000").unwrap();
    assert!(store.get_job(&project(1), &unknown).await.unwrap().is_none());
    let err = store.apply_event(&project(1), &unknown, &JobEvent::Cancel, at(0)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
}

pub async fn concurrent_events_are_never_lost(store: SharedStore) {
    let job = sample_job(&project(1), "cfw", "createFirewall", 0, 0);
    store.insert_job(&job).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let (p, id) = (job.project_id.clone(), job.job_id.clone());
        tasks.push(tokio::spawn(async move {
            store.apply_event(&p, &id, &JobEvent::Progress { message: format!("m{i}") }, at(i + 1)).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stored = store.get_job(&job.project_id, &job.job_id).await.unwrap().unwrap();
    assert_eq!(stored.version, 21, "every one of 20 changes raised the version once");
}

pub async fn lists_are_newest_first_filtered_and_paged(store: SharedStore) {
    let p = project(3);
    let mut created = Vec::new();
    for i in 0..25 {
        let job_type = if i % 2 == 0 { "even" } else { "odd" };
        let job = sample_job(&p, "elb", job_type, 0, i / 3);
        store.insert_job(&job).await.unwrap();
        created.push(job);
    }
    let other_service = sample_job(&p, "cfw", "even", 0, 100);
    store.insert_job(&other_service).await.unwrap();
    let newest_first: Vec<JobId> = created.iter().rev().map(|j| j.job_id.clone()).collect();

    let mut query = JobQuery::new(p.clone());
    query.service = Some(ServiceName::parse("elb").unwrap());
    query.limit = 10;
    let page1 = store.list_jobs(&query).await.unwrap();
    let ids = |jobs: &[Job]| jobs.iter().map(|j| j.job_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&page1), newest_first[..10]);

    query.cursor = store.cursor_of(&p, &page1[9].job_id).await.unwrap();
    let page2 = store.list_jobs(&query).await.unwrap();
    assert_eq!(ids(&page2), newest_first[10..20]);
    query.cursor = store.cursor_of(&p, &page2[9].job_id).await.unwrap();
    let page3 = store.list_jobs(&query).await.unwrap();
    assert_eq!(ids(&page3), newest_first[20..]);

    query.direction = Direction::Newer;
    query.cursor = store.cursor_of(&p, &page3[0].job_id).await.unwrap();
    assert_eq!(ids(&store.list_jobs(&query).await.unwrap()), newest_first[10..20]);
    query.cursor = store.cursor_of(&p, &page2[0].job_id).await.unwrap();
    assert_eq!(ids(&store.list_jobs(&query).await.unwrap()), newest_first[..10]);

    let mut by_type = JobQuery::new(p.clone());
    by_type.job_types = vec!["odd".into()];
    by_type.limit = 100;
    let odd = store.list_jobs(&by_type).await.unwrap();
    assert_eq!(odd.len(), 12);
    assert!(odd.iter().all(|j| j.job_type.as_str() == "odd"));

    store
        .apply_event(
            &p,
            &created[4].job_id,
            &JobEvent::Fail { error_code: "X.1".into(), error_msg: "x".into() },
            at(50),
        )
        .await
        .unwrap();
    let mut by_status = JobQuery::new(p.clone()).with_statuses([JobStatus::Failed]);
    by_status.error_codes = vec!["X.1".into()];
    assert_eq!(ids(&store.list_jobs(&by_status).await.unwrap()), vec![created[4].job_id.clone()]);

    let mut by_resource = JobQuery::new(p.clone());
    by_resource.resource_ids = vec!["res-2".into()];
    assert_eq!(store.list_jobs(&by_resource).await.unwrap().len(), 3);

    let mut by_id = JobQuery::new(p.clone());
    by_id.job_ids = vec![created[7].job_id.clone(), other_service.job_id.clone()];
    assert_eq!(store.list_jobs(&by_id).await.unwrap().len(), 2);

    let mut since = JobQuery::new(p.clone());
    since.service = Some(ServiceName::parse("elb").unwrap());
    since.created_since = Some(at(7));
    assert_eq!(store.list_jobs(&since).await.unwrap().len(), 4, "jobs 21..24 were created at 7 and 8");

    let mut eps = JobQuery::new(p.clone());
    eps.enterprise_project_ids = Some(vec!["other".into()]);
    assert!(store.list_jobs(&eps).await.unwrap().is_empty());
}

pub async fn lists_carry_sub_jobs_in_order(store: SharedStore) {
    let job = sample_job(&project(4), "elb", "UPGRADE", 3, 0);
    store.insert_job(&job).await.unwrap();
    let listed = store.list_jobs(&JobQuery::new(project(4))).await.unwrap();
    assert_eq!(listed, vec![job]);
}

pub async fn open_simulated_jobs_are_found(store: SharedStore) {
    let p = project(5);
    let with_subs = sample_job(&p, "elb", "UPGRADE", 2, 0);
    let plain = sample_job(&p, "cfw", "createFirewall", 0, 1);
    let mut simulated = sample_job(&p, "waf", "check", 0, 2);
    simulated.simulate = Some(SimulateSpec {
        duration_ms: 5,
        outcome: Default::default(),
        error_code: None,
        error_msg: None,
        messages: vec![],
    });
    for job in [&with_subs, &plain, &simulated] {
        store.insert_job(job).await.unwrap();
    }
    let open: Vec<JobId> =
        store.list_open_simulated_jobs(None, 100).await.unwrap().into_iter().map(|j| j.job_id).collect();
    assert_eq!(open, vec![with_subs.job_id.clone(), simulated.job_id.clone()]);
    store.apply_event(&p, &simulated.job_id, &JobEvent::Cancel, at(3)).await.unwrap();
    let open: Vec<JobId> =
        store.list_open_simulated_jobs(None, 100).await.unwrap().into_iter().map(|j| j.job_id).collect();
    assert_eq!(open, vec![with_subs.job_id.clone()]);
    let after = store.list_open_simulated_jobs(Some(&with_subs.job_id), 100).await.unwrap();
    assert!(after.is_empty(), "pages continue after the given job");
}

/// Expands to one test per conformance case; `$make` is an async fn returning `SharedStore`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:path) => {
        $crate::store_conformance_tests!(@cases $make;
            insert_then_get_round_trips_every_field,
            jobs_are_scoped_to_their_project,
            a_duplicate_job_id_is_a_conflict,
            events_are_applied_through_the_state_machine_and_kept,
            unknown_jobs_are_not_found,
            concurrent_events_are_never_lost,
            lists_are_newest_first_filtered_and_paged,
            lists_carry_sub_jobs_in_order,
            open_simulated_jobs_are_found
        );
    };
    (@cases $make:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make().await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}
