//! The store conformance suite: every `JobStore` backend runs these cases unchanged (the SQLite
//! and PostgreSQL backends' tests in `jobd-store` expand it).
//!
//! A backend's test file calls `store_conformance_tests!(async_fn_making_a_fresh_store)`, which
//! expands to one `#[tokio::test]` per case. A backend whose fresh store lives outside the test
//! process (a database created on a server) calls
//! `store_conformance_tests!(make, teardown = finish)` instead: `make` answers the store and a
//! fixture, and `finish(fixture)` runs after the case, whether it passed or panicked.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use jobd_core::{
    Entity, Job, JobEvent, JobId, JobStatus, JobType, NewJob, NewSubJob, ProjectId, ServiceName, SimulateSpec,
    Timestamp,
};
use serde_json::json;

use jobd_core::{Direction, JobQuery};

use jobd_auth::identity::{CredentialRecord, ProjectRecord, Role, TokenRecord, UserRecord};

use jobd_store::{
    ClaimRequest, ClaimedTask, IdempotencyKey, Inserted, JobRef, NewTree, Store, StoreError, TaskEvent, TaskScope,
    MAX_BATCH,
};

pub type SharedStore = Arc<dyn Store>;

pub fn at(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
}

fn project(n: u8) -> ProjectId {
    ProjectId::parse(&format!("{n:02x}").repeat(16)).unwrap()
}

fn sample_job(project_id: &ProjectId, service: &str, job_type: &str, sub_jobs: usize, created: i64) -> Job {
    NewJob {
        resource_id: Some(format!("res-{created}")),
        entities: vec![Entity { resource_id: "lb-1".into(), resource_type: "loadbalancer".into() }],
        payload: Some(json!({"size": created, "nested": {"ok": true}})),
        message: Some("queued".into()),
        simulate: None,
        sub_jobs: (0..sub_jobs)
            .map(|i| NewSubJob {
                entities: vec![Entity { resource_id: format!("e-{i}"), resource_type: "listener".into() }],
                simulate: Some(SimulateSpec {
                    duration_ms: 10,
                    outcome: Default::default(),
                    error_code: None,
                    error_msg: None,
                    messages: vec![format!("step {i}")],
                }),
                ..NewSubJob::new(JobType::parse(&format!("STEP_{i}")).unwrap())
            })
            .collect(),
        ..NewJob::new(project_id.clone(), ServiceName::parse(service).unwrap(), JobType::parse(job_type).unwrap())
    }
    .into_job(at(created))
    .unwrap()
}

pub async fn insert_then_get_round_trips_every_field(store: SharedStore) {
    let job = sample_job(&project(1), "elb", "UPGRADE", 3, 0);
    store.insert_job(&job, None).await.unwrap();
    let stored = store.get_job(&job.project_id, &job.job_id).await.unwrap().unwrap();
    assert_eq!(stored, job);
    let sub = &job.sub_jobs[1];
    let stored_sub = store.get_job(&job.project_id, &sub.job_id).await.unwrap().unwrap();
    assert_eq!(&stored_sub, sub, "a sub-job reads alone, with its parent id");
}

pub async fn jobs_are_scoped_to_their_project(store: SharedStore) {
    let job = sample_job(&project(1), "cfw", "createFirewall", 0, 0);
    store.insert_job(&job, None).await.unwrap();
    assert!(store.get_job(&project(2), &job.job_id).await.unwrap().is_none());
    assert!(store.cursor_of(&project(2), &job.job_id).await.unwrap().is_none());
    let err = store.apply_event(&project(2), &job.job_id, &JobEvent::Cancel, at(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(store.list_jobs(&JobQuery::new(project(2))).await.unwrap().is_empty());
}

pub async fn a_duplicate_job_id_is_a_conflict(store: SharedStore) {
    let job = sample_job(&project(1), "cfw", "createFirewall", 0, 0);
    store.insert_job(&job, None).await.unwrap();
    let err = store.insert_job(&job, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

pub async fn events_are_applied_through_the_state_machine_and_kept(store: SharedStore) {
    let job = sample_job(&project(1), "elb", "UPGRADE", 2, 0);
    store.insert_job(&job, None).await.unwrap();
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
    store.insert_job(&job, None).await.unwrap();
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

/// Writes that arrive together (which a store may commit together) succeed or fail each on its own:
/// a refused write changes nothing and takes no other write down with it.
pub async fn a_failing_write_among_concurrent_writes_fails_alone(store: SharedStore) {
    let existing = sample_job(&project(1), "cfw", "createFirewall", 0, 0);
    store.insert_job(&existing, None).await.unwrap();
    store.apply_event(&existing.project_id, &existing.job_id, &JobEvent::Cancel, at(1)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = store.clone();
        let existing = existing.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                // A duplicate id: refused, the stored job untouched.
                0 => {
                    let mut duplicate = sample_job(&project(1), "cfw", "other", 0, 100 + i);
                    duplicate.job_id = existing.job_id.clone();
                    let refused = store.insert_job(&duplicate, None).await;
                    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
                    None
                }
                // An event the state machine refuses: a cancelled job stays cancelled.
                1 => {
                    let refused = store
                        .apply_event(
                            &existing.project_id,
                            &existing.job_id,
                            &JobEvent::Start { message: None },
                            at(100 + i),
                        )
                        .await;
                    assert!(matches!(refused, Err(StoreError::Transition(_))), "{refused:?}");
                    None
                }
                _ => {
                    let job = sample_job(&project(1), "cfw", "createFirewall", 1, 100 + i);
                    store.insert_job(&job, None).await.unwrap();
                    Some(job)
                }
            }
        }));
    }
    let mut created = Vec::new();
    for task in tasks {
        created.extend(task.await.unwrap());
    }
    assert_eq!(created.len(), 20);
    for job in created {
        assert_eq!(store.get_job(&job.project_id, &job.job_id).await.unwrap().unwrap(), job);
    }
    let stored = store.get_job(&existing.project_id, &existing.job_id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Cancelled);
    assert_eq!(stored.job_type, existing.job_type);
}

pub async fn lists_are_newest_first_filtered_and_paged(store: SharedStore) {
    let p = project(3);
    let mut created = Vec::new();
    for i in 0..25 {
        let job_type = if i % 2 == 0 { "even" } else { "odd" };
        let job = sample_job(&p, "elb", job_type, 0, i / 3);
        store.insert_job(&job, None).await.unwrap();
        created.push(job);
    }
    let other_service = sample_job(&p, "cfw", "even", 0, 100);
    store.insert_job(&other_service, None).await.unwrap();
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
    store.insert_job(&job, None).await.unwrap();
    let listed = store.list_jobs(&JobQuery::new(project(4))).await.unwrap();
    assert_eq!(listed, vec![job]);
}

/// A claim of any task by `worker`: a 30 s lease, one task.
pub fn claim_request(worker: &str, simulated: bool) -> ClaimRequest {
    ClaimRequest {
        worker_id: worker.into(),
        project_ids: None,
        enterprise_project_ids: None,
        services: vec![],
        job_types: vec![],
        simulated,
        lease_seconds: 30,
        max_tasks: 1,
    }
}

pub async fn claims_are_exclusive_under_concurrency(store: SharedStore) {
    let p = project(6);
    let mut ids = std::collections::HashSet::new();
    for i in 0..60 {
        let job = sample_job(&p, "cfw", "createFirewall", 0, i);
        ids.insert(job.job_id.clone());
        store.insert_job(&job, None).await.unwrap();
    }
    let mut claimers = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut request = claim_request(&format!("w{worker}"), false);
            request.max_tasks = 3;
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_tasks(&request, at(1_000)).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|task| task.task_id));
            }
        }));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    assert_eq!(claimed.len(), 60, "every task claimed exactly once");
    assert_eq!(claimed.iter().cloned().collect::<std::collections::HashSet<_>>(), ids);
}

pub async fn claims_follow_priority_schedule_filters_and_order(store: SharedStore) {
    let p = project(7);
    let mut low = sample_job(&p, "cfw", "createFirewall", 0, 0);
    low.priority = -5;
    let mut high = sample_job(&p, "cfw", "createFirewall", 0, 1);
    high.priority = 5;
    let mut later = sample_job(&p, "cfw", "createFirewall", 0, 2);
    later.run_at = Some(at(50_000));
    later.available_at = at(50_000);
    let other_service = sample_job(&p, "waf", "check", 0, 3);
    let tree = {
        let mut tree = sample_job(&p, "elb", "UPGRADE", 2, 4);
        for sub in &mut tree.sub_jobs {
            sub.simulate = None;
        }
        tree
    };
    for job in [&low, &high, &later, &other_service, &tree] {
        store.insert_job(job, None).await.unwrap();
    }
    let mut request = claim_request("w", false);
    request.services = vec![ServiceName::parse("cfw").unwrap()];
    request.max_tasks = 10;
    let ids = |tasks: Vec<ClaimedTask>| tasks.into_iter().map(|t| t.task_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.claim_tasks(&request, at(1_000)).await.unwrap()),
        vec![high.job_id.clone(), low.job_id.clone()]
    );
    assert_eq!(store.next_due_at(&request).await.unwrap(), Some(at(31_000)), "the earliest lease expiry");
    assert!(store.claim_tasks(&request, at(20_000)).await.unwrap().is_empty());

    let mut elb = claim_request("w", false);
    elb.services = vec![ServiceName::parse("elb").unwrap()];
    elb.max_tasks = 10;
    let first = store.claim_tasks(&elb, at(1_000)).await.unwrap();
    assert_eq!(ids(first.clone()), vec![tree.sub_jobs[0].job_id.clone()], "sub-jobs run in order");
    let token = first[0].task().lease.as_ref().unwrap().token.clone();
    store
        .apply_event(
            &p,
            &tree.sub_jobs[0].job_id,
            &JobEvent::Complete { lease_token: token, result: None, message: None },
            at(1_100),
        )
        .await
        .unwrap();
    assert_eq!(ids(store.claim_tasks(&elb, at(1_200)).await.unwrap()), vec![tree.sub_jobs[1].job_id.clone()]);

    let mut by_type = claim_request("w", false);
    by_type.job_types = vec!["check".into()];
    assert_eq!(ids(store.claim_tasks(&by_type, at(1_000)).await.unwrap()), vec![other_service.job_id.clone()]);
    assert!(store.claim_tasks(&claim_request("sim", true), at(1_000)).await.unwrap().is_empty(), "no simulated tasks");
    let mut elsewhere = claim_request("w", false);
    elsewhere.project_ids = Some(vec![project(99)]);
    assert!(store.claim_tasks(&elsewhere, at(1_000)).await.unwrap().is_empty(), "tasks of other projects stay");
}

pub async fn an_expired_lease_is_taken_over_by_the_next_claim(store: SharedStore) {
    let p = project(8);
    let job = sample_job(&p, "cfw", "createFirewall", 0, 0);
    store.insert_job(&job, None).await.unwrap();
    let mut request = claim_request("a", false);
    request.lease_seconds = 10;
    let first = store.claim_tasks(&request, at(0)).await.unwrap();
    assert_eq!(first[0].task().attempt, 1);
    assert!(store.claim_tasks(&request, at(9_999)).await.unwrap().is_empty());
    let second = store.claim_tasks(&request, at(10_000)).await.unwrap();
    assert_eq!(second[0].task().attempt, 2);
    assert_ne!(second[0].task().lease, first[0].task().lease);
    let third = store.claim_tasks(&request, at(20_000)).await.unwrap();
    assert_eq!(third[0].task().attempt, 3);
    assert!(store.list_expired_last_leases(at(29_999), 10).await.unwrap().is_empty());
    let expired = store.list_expired_last_leases(at(30_000), 10).await.unwrap();
    assert_eq!(expired, vec![JobRef { project_id: p.clone(), job_id: job.job_id.clone() }]);
    assert!(store.claim_tasks(&request, at(40_000)).await.unwrap().is_empty(), "no attempts left");
}

pub async fn idempotency_keys_return_the_first_job(store: SharedStore) {
    let p = project(9);
    let key = IdempotencyKey { project_id: p.clone(), client_token: "token-1".into(), request_hash: "h1".into() };
    let first = sample_job(&p, "cfw", "createFirewall", 1, 0);
    assert_eq!(store.insert_job(&first, Some(&key)).await.unwrap(), Inserted::Created);
    let replay = sample_job(&p, "cfw", "createFirewall", 1, 1);
    assert_eq!(store.insert_job(&replay, Some(&key)).await.unwrap(), Inserted::Existing(Box::new(first.clone())));
    assert!(store.get_job(&p, &replay.job_id).await.unwrap().is_none(), "a replay creates nothing");
    let other = IdempotencyKey { request_hash: "h2".into(), ..key.clone() };
    assert_eq!(store.insert_job(&replay, Some(&other)).await.unwrap(), Inserted::KeyConflict);
    let other_project = IdempotencyKey { project_id: project(10), ..key.clone() };
    let elsewhere = sample_job(&project(10), "cfw", "createFirewall", 0, 2);
    assert_eq!(store.insert_job(&elsewhere, Some(&other_project)).await.unwrap(), Inserted::Created);
    assert_eq!(store.prune_idempotency_keys(at(1)).await.unwrap(), 1, "the key made at 0; the one made at 2 stays");
    let again = sample_job(&p, "cfw", "createFirewall", 0, 3);
    assert_eq!(store.insert_job(&again, Some(&key)).await.unwrap(), Inserted::Created, "keys are pruned by age");
}

pub async fn project_of_names_the_project_of_any_job(store: SharedStore) {
    let (mine, theirs) = (project(12), project(13));
    let job = sample_job(&mine, "elb", "UPGRADE", 2, 0);
    let other = sample_job(&theirs, "elb", "UPGRADE", 0, 1);
    store.insert_job(&job, None).await.unwrap();
    store.insert_job(&other, None).await.unwrap();
    assert_eq!(store.project_of(&job.job_id).await.unwrap(), Some(mine.clone()));
    assert_eq!(store.project_of(&job.sub_jobs[1].job_id).await.unwrap(), Some(mine), "a sub-job's too");
    assert_eq!(store.project_of(&other.job_id).await.unwrap(), Some(theirs));
    let unknown = JobId::parse("00000000-0000-4000-8000-000000000000").unwrap();
    assert_eq!(store.project_of(&unknown).await.unwrap(), None);
}

pub async fn timeouts_are_found_and_old_jobs_pruned(store: SharedStore) {
    let p = project(11);
    let mut timed = sample_job(&p, "cfw", "createFirewall", 0, 0);
    timed.timeout_seconds = Some(5);
    let finished = sample_job(&p, "cfw", "createFirewall", 2, 0);
    store.insert_job(&timed, None).await.unwrap();
    store.insert_job(&finished, None).await.unwrap();
    store.claim_tasks(&ClaimRequest { max_tasks: 1, ..claim_request("w", false) }, at(1_000)).await.unwrap();
    assert!(store.list_timed_out(at(5_999), 10).await.unwrap().is_empty());
    assert_eq!(store.list_timed_out(at(6_000), 10).await.unwrap().len(), 1);
    store.apply_event(&p, &finished.job_id, &JobEvent::Cancel, at(2_000)).await.unwrap();
    assert_eq!(store.prune_finished_jobs(at(2_000), 100).await.unwrap(), 0, "ended at the cutoff is kept");
    assert_eq!(store.prune_finished_jobs(at(2_001), 100).await.unwrap(), 1);
    assert!(store.get_job(&p, &finished.job_id).await.unwrap().is_none());
    assert!(store.get_job(&p, &finished.sub_jobs[0].job_id).await.unwrap().is_none(), "sub-jobs go with it");
    assert!(store.get_job(&p, &timed.job_id).await.unwrap().is_some(), "open jobs stay");
}

pub async fn rollback_compensations_are_claimed_last_first(store: SharedStore) {
    let p = project(12);
    let mut tree = sample_job(&p, "elb", "UPGRADE", 3, 0);
    tree.on_failure = jobd_core::OnFailure::Rollback;
    for sub in &mut tree.sub_jobs {
        sub.simulate = None;
        sub.max_attempts = 1;
    }
    store.insert_job(&tree, None).await.unwrap();
    let mut request = claim_request("w", false);
    request.services = vec![ServiceName::parse("elb").unwrap()];
    request.max_tasks = 10;
    for (i, ok) in [(0, true), (1, true), (2, false)] {
        let task = store.claim_tasks(&request, at(10 + i)).await.unwrap().pop().unwrap();
        assert_eq!(task.task_id, tree.sub_jobs[i as usize].job_id);
        store.apply_event(&p, &task.task_id, &outcome(&task, ok), at(20 + i)).await.unwrap();
    }
    for i in [1usize, 0] {
        let tasks = store.claim_tasks(&request, at(100 + i as i64)).await.unwrap();
        assert_eq!(tasks.len(), 1, "one compensation at a time");
        assert_eq!(tasks[0].task_id, tree.sub_jobs[i].job_id, "last succeeded first");
        assert_eq!(tasks[0].tree.phase, jobd_core::Phase::Rollback);
        store.apply_event(&p, &tasks[0].task_id, &outcome(&tasks[0], true), at(200 + i as i64)).await.unwrap();
    }
    let done = store.get_job(&p, &tree.job_id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert!(store.claim_tasks(&request, at(300)).await.unwrap().is_empty());
}

pub async fn identities_are_kept_and_unique(store: SharedStore) {
    let project = ProjectRecord { id: "a".repeat(32), name: "alpha".into(), created_at: at(0) };
    store.insert_project(&project).await.unwrap();
    let same_name = ProjectRecord { id: "b".repeat(32), ..project.clone() };
    assert!(matches!(store.insert_project(&same_name).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.find_project_by_name("alpha").await.unwrap(), Some(project.clone()));
    assert_eq!(store.get_project(&project.id).await.unwrap(), Some(project.clone()));
    assert_eq!(store.list_projects().await.unwrap(), vec![project.clone()]);

    let user = UserRecord {
        user_id: "u1".into(),
        name: "ann".into(),
        domain: "acme".into(),
        password_hash: "$argon2id$x".into(),
        project_id: project.id.clone(),
        role: Role::Reader,
        enterprise_project_ids: vec!["eps-1".into(), "eps-2".into()],
        totp_secret: None,
        created_at: at(1),
    };
    store.insert_user(&user).await.unwrap();
    assert!(matches!(
        store.insert_user(&UserRecord { user_id: "u2".into(), ..user.clone() }).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.find_user("acme", "ann").await.unwrap(), Some(user.clone()));
    let unlimited =
        UserRecord { user_id: "u3".into(), name: "bob".into(), enterprise_project_ids: Vec::new(), ..user.clone() };
    store.insert_user(&unlimited).await.unwrap();
    assert_eq!(store.list_users().await.unwrap(), vec![user.clone(), unlimited], "the limits round-trip");
    assert_eq!(store.find_user("other", "ann").await.unwrap(), None);

    let credential = CredentialRecord {
        access_key: "AK1".into(),
        sealed_secret: vec![1, 2, 3],
        owner: "root".into(),
        project_ids: vec![project.id.clone()],
        role: Role::Producer,
        enterprise_project_ids: vec!["eps-1".into()],
        enabled: true,
        created_at: at(2),
        last_used_at: None,
    };
    store.insert_credential(&credential).await.unwrap();
    assert_eq!(store.get_credential("AK1").await.unwrap(), Some(credential.clone()));
    assert!(store.set_credential_enabled("AK1", false).await.unwrap());
    store.touch_credential("AK1", at(3)).await.unwrap();
    let stored = store.get_credential("AK1").await.unwrap().unwrap();
    assert_eq!((stored.enabled, stored.last_used_at), (false, Some(at(3))));
    assert!(!store.set_credential_enabled("nope", true).await.unwrap());

    let token = TokenRecord {
        token_hash: "h1".into(),
        user_id: "u1".into(),
        project_id: project.id.clone(),
        role: Role::Reader,
        enterprise_project_ids: vec!["eps-1".into()],
        issued_at: at(4),
        expires_at: at(10_000),
        revoked: false,
        domain_scoped: false,
    };
    assert!(store.insert_token(&token).await.unwrap());
    assert_eq!(store.get_token("h1").await.unwrap(), Some(token.clone()));
    let domain_token = TokenRecord { token_hash: "h2".into(), domain_scoped: true, ..token.clone() };
    assert!(store.insert_token(&domain_token).await.unwrap());
    assert_eq!(store.get_token("h2").await.unwrap(), Some(domain_token), "the scope round-trips");
    assert!(store.delete_user("u1").await.unwrap());
    assert!(store.get_token("h1").await.unwrap().unwrap().revoked, "a deleted user's tokens are revoked");
    assert_eq!(store.prune_tokens(at(10_001)).await.unwrap(), 2);
    assert!(store.delete_credential("AK1").await.unwrap());
    assert!(store.list_credentials().await.unwrap().is_empty());
}

/// A token issued while its user is being deleted: whatever the interleaving, the user is left with
/// no valid token (either the insert is refused, or the deletion revokes what was inserted).
pub async fn a_token_never_outlives_its_deleted_user(store: SharedStore) {
    let project = ProjectRecord { id: "c".repeat(32), name: "gamma".into(), created_at: at(0) };
    store.insert_project(&project).await.unwrap();
    let user = |i: usize| UserRecord {
        user_id: format!("racer-{i}"),
        name: format!("racer-{i}"),
        domain: "acme".into(),
        password_hash: "$argon2id$x".into(),
        project_id: project.id.clone(),
        role: Role::Reader,
        enterprise_project_ids: Vec::new(),
        totp_secret: None,
        created_at: at(1),
    };
    let token = |i: usize| TokenRecord {
        token_hash: format!("racer-token-{i}"),
        user_id: format!("racer-{i}"),
        project_id: project.id.clone(),
        role: Role::Reader,
        enterprise_project_ids: Vec::new(),
        issued_at: at(2),
        expires_at: at(10_000),
        revoked: false,
        domain_scoped: false,
    };
    // The plain order first: after the deletion, no token is accepted for the user.
    store.insert_user(&user(0)).await.unwrap();
    assert!(store.delete_user("racer-0").await.unwrap());
    assert!(!store.insert_token(&token(0)).await.unwrap(), "a token for a deleted user is refused");
    assert_eq!(store.get_token("racer-token-0").await.unwrap(), None);

    let (mut inserted, mut refused) = (0, 0);
    for i in 1..=200 {
        store.insert_user(&user(i)).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let issuing = tokio::spawn({
            let (store, barrier, token) = (store.clone(), barrier.clone(), token(i));
            async move {
                barrier.wait().await;
                store.insert_token(&token).await.unwrap()
            }
        });
        let deleting = tokio::spawn({
            let (store, barrier) = (store.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                store.delete_user(&format!("racer-{i}")).await.unwrap()
            }
        });
        let (was_inserted, was_deleted) = (issuing.await.unwrap(), deleting.await.unwrap());
        assert!(was_deleted);
        let stored = store.get_token(&format!("racer-token-{i}")).await.unwrap();
        if was_inserted {
            inserted += 1;
            assert!(stored.is_some_and(|t| t.revoked), "round {i}: the token inserted before the deletion is revoked");
        } else {
            refused += 1;
            assert_eq!(stored, None, "round {i}: a refused token is not stored");
        }
    }
    println!("token vs user deletion: {inserted} tokens inserted then revoked, {refused} refused");
}

/// A virtual MFA device: bound (and rebound) durably, each step's code used once, later steps
/// only, and a use raced by several callers won by exactly one.
pub async fn mfa_steps_are_used_once_and_in_order(store: SharedStore) {
    let project = ProjectRecord { id: "d".repeat(32), name: "delta".into(), created_at: at(0) };
    store.insert_project(&project).await.unwrap();
    let user = UserRecord {
        user_id: "mfa-user".into(),
        name: "mia".into(),
        domain: "acme".into(),
        password_hash: "$argon2id$x".into(),
        project_id: project.id.clone(),
        role: Role::Reader,
        enterprise_project_ids: Vec::new(),
        totp_secret: None,
        created_at: at(1),
    };
    store.insert_user(&user).await.unwrap();
    assert!(!store.use_mfa_step("mfa-user", 10).await.unwrap(), "no device: no code is accepted");
    assert!(!store.bind_mfa_device("nobody", &[1, 2, 3]).await.unwrap());
    assert!(store.bind_mfa_device("mfa-user", &[1, 2, 3]).await.unwrap());
    assert_eq!(store.find_user("acme", "mia").await.unwrap().unwrap().totp_secret, Some(vec![1, 2, 3]));
    assert!(store.use_mfa_step("mfa-user", 10).await.unwrap());
    assert!(!store.use_mfa_step("mfa-user", 10).await.unwrap(), "the same step twice");
    assert!(!store.use_mfa_step("mfa-user", 9).await.unwrap(), "an earlier step after a later one");
    assert!(store.use_mfa_step("mfa-user", 11).await.unwrap());
    // Rebinding replaces the secret and starts afresh.
    assert!(store.bind_mfa_device("mfa-user", &[4, 5, 6]).await.unwrap());
    assert_eq!(store.list_users().await.unwrap()[0].totp_secret, Some(vec![4, 5, 6]));
    assert!(store.use_mfa_step("mfa-user", 5).await.unwrap());
    // Racing uses of one step: exactly one wins.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.use_mfa_step("mfa-user", 100).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        won += usize::from(racer.await.unwrap());
    }
    assert_eq!(won, 1, "each code is accepted once");
}

pub async fn queue_stats_count_waiting_tasks(store: SharedStore) {
    let p = project(13);
    for i in 0..3 {
        store.insert_job(&sample_job(&p, "cfw", "createFirewall", 0, i), None).await.unwrap();
    }
    let mut later = sample_job(&p, "cfw", "createFirewall", 0, 3);
    later.available_at = at(60_000);
    store.insert_job(&later, None).await.unwrap();
    store.insert_job(&sample_job(&p, "waf", "check", 0, 4), None).await.unwrap();
    store.claim_tasks(&ClaimRequest { max_tasks: 1, ..claim_request("w", false) }, at(1_000)).await.unwrap();
    let mut stats = store.queue_stats(at(1_000)).await.unwrap();
    stats.sort_by(|a, b| a.service.cmp(&b.service));
    let summary: Vec<(String, u64)> = stats.iter().map(|s| (s.service.clone(), s.depth)).collect();
    assert_eq!(summary, vec![("cfw".to_owned(), 2), ("waf".to_owned(), 1)], "claimed and future tasks do not wait");
    assert_eq!(stats[0].oldest_due_at, at(1), "the oldest waiting cfw task was due since its creation");
}

/// The console's overview and workers page: a project's open tasks (waiting, held, the oldest
/// wait), its jobs ended per minute and status, and the leases held now; nothing of another project.
pub async fn console_reads_count_open_tasks_finished_jobs_and_leases(store: SharedStore) {
    let (p, other) = (project(14), project(15));
    let firewalls: Vec<Job> = (0..4).map(|i| sample_job(&p, "cfw", "createFirewall", 0, i)).collect();
    for job in &firewalls {
        store.insert_job(job, None).await.unwrap();
    }
    let upgrade = sample_job(&p, "elb", "UPGRADE", 2, 10);
    store.insert_job(&upgrade, None).await.unwrap();
    store.insert_job(&sample_job(&other, "cfw", "createFirewall", 0, 0), None).await.unwrap();
    let request = ClaimRequest {
        project_ids: Some(vec![p.clone()]),
        services: vec![ServiceName::parse("cfw").unwrap()],
        ..claim_request("w-1", false)
    };
    let claimed = store.claim_tasks(&request, at(1_000)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].task_id, firewalls[0].job_id, "the oldest is claimed first");
    store.apply_event(&p, &firewalls[1].job_id, &JobEvent::Cancel, at(61_000)).await.unwrap();
    store.apply_event(&p, &firewalls[2].job_id, &JobEvent::Cancel, at(125_000)).await.unwrap();

    let mut open = store.open_tasks(&p, at(2_000)).await.unwrap();
    open.sort_by(|a, b| (&a.service, &a.job_type).cmp(&(&b.service, &b.job_type)));
    let summary: Vec<(&str, &str, &str, u64, u64)> = open
        .iter()
        .map(|o| (o.service.as_str(), o.job_type.as_str(), o.enterprise_project_id.as_str(), o.waiting, o.running))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("cfw", "createFirewall", "0", 1, 1),
            ("elb", "STEP_0", "0", 1, 0),
            ("elb", "STEP_1", "0", 0, 0),
            ("elb", "UPGRADE", "0", 0, 0),
        ],
        "one firewall waits and one is held; the upgrade's first step waits (not the second, nor the parent)"
    );
    assert_eq!(open[0].oldest_waiting_due_at, Some(at(3)), "the waiting firewall was due at its creation");
    assert_eq!(open[3].oldest_waiting_due_at, None);
    // Past the lease's expiry the held task waits again.
    let later = store.open_tasks(&p, at(40_000)).await.unwrap();
    let firewall = later.iter().find(|o| o.job_type == "createFirewall").unwrap();
    assert_eq!((firewall.waiting, firewall.running), (2, 0), "an expired lease holds nothing");

    let minute = |ms: i64| at(ms - (1_700_000_000_000 + ms) % 60_000);
    let mut finished = store.finished_jobs(&p, at(0)).await.unwrap();
    finished.sort_by_key(|f| f.minute);
    let summary: Vec<(&str, Timestamp, JobStatus, u64)> =
        finished.iter().map(|f| (f.job_type.as_str(), f.minute, f.status, f.count)).collect();
    assert_eq!(
        summary,
        vec![
            ("createFirewall", minute(61_000), JobStatus::Cancelled, 1),
            ("createFirewall", minute(125_000), JobStatus::Cancelled, 1)
        ]
    );
    assert_eq!(store.finished_jobs(&p, at(100_000)).await.unwrap().len(), 1, "only those ended since");
    assert!(store.finished_jobs(&other, at(0)).await.unwrap().is_empty());

    let leases = store.held_leases(&p, at(2_000), 10).await.unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    let lease = &leases[0];
    assert_eq!(
        (lease.job_id.clone(), lease.worker_id.as_str(), lease.attempt),
        (firewalls[0].job_id.clone(), "w-1", 1)
    );
    assert_eq!(
        (lease.service.as_str(), lease.job_type.as_str(), lease.parent_job_id.clone()),
        ("cfw", "createFirewall", None)
    );
    assert_eq!(lease.lease_expires_at, at(31_000));
    assert_eq!((lease.started_at, lease.updated_at), (Some(at(1_000)), at(1_000)), "claimed at 1 s");
    assert!(store.held_leases(&p, at(40_000), 10).await.unwrap().is_empty(), "an expired lease is not held");
    assert!(store.held_leases(&other, at(2_000), 10).await.unwrap().is_empty());
}

fn keyed(job: Job, token: Option<&str>, hash: &str) -> NewTree {
    let idempotency = token.map(|token| IdempotencyKey {
        project_id: job.project_id.clone(),
        client_token: token.to_owned(),
        request_hash: hash.to_owned(),
    });
    NewTree { job, idempotency }
}

pub async fn a_batch_insert_is_all_or_nothing_with_keys_per_item(store: SharedStore) {
    let p = project(20);
    let earlier = sample_job(&p, "elb", "UPGRADE", 0, 0);
    let key = IdempotencyKey { project_id: p.clone(), client_token: "t-0".into(), request_hash: "h0".into() };
    assert_eq!(store.insert_job(&earlier, Some(&key)).await.unwrap(), Inserted::Created);

    // A token used before with another request: nothing of the batch is stored.
    let fresh = sample_job(&p, "elb", "UPGRADE", 2, 1);
    let conflicting = sample_job(&p, "elb", "UPGRADE", 0, 2);
    let refused =
        store.insert_jobs(&[keyed(fresh.clone(), None, ""), keyed(conflicting.clone(), Some("t-0"), "other")]).await;
    assert!(matches!(refused, Err(StoreError::KeyConflict { index: 1 })), "{refused:?}");
    assert!(store.get_job(&p, &fresh.job_id).await.unwrap().is_none(), "all or nothing");

    // A duplicate token within the batch, with the same request: one job, named twice.
    let a = sample_job(&p, "elb", "UPGRADE", 3, 3);
    let a_again = sample_job(&p, "elb", "UPGRADE", 3, 4);
    let replay = sample_job(&p, "elb", "UPGRADE", 0, 5);
    let plain = sample_job(&p, "cfw", "createFirewall", 0, 6);
    let answers = store
        .insert_jobs(&[
            keyed(a.clone(), Some("t-1"), "h1"),
            keyed(a_again.clone(), Some("t-1"), "h1"),
            keyed(replay.clone(), Some("t-0"), "h0"),
            keyed(plain.clone(), None, ""),
        ])
        .await
        .unwrap();
    assert_eq!(
        answers,
        vec![
            Inserted::Created,
            Inserted::Existing(Box::new(a.clone())),
            Inserted::Existing(Box::new(earlier.clone())),
            Inserted::Created,
        ]
    );
    assert_eq!(store.get_job(&p, &a.job_id).await.unwrap(), Some(a.clone()), "sub-jobs and all");
    assert_eq!(store.get_job(&p, &plain.job_id).await.unwrap(), Some(plain.clone()));
    for absent in [&a_again, &replay] {
        assert!(store.get_job(&p, &absent.job_id).await.unwrap().is_none(), "a replay creates nothing");
    }
    // The same token with another request within one batch.
    let b = sample_job(&p, "elb", "UPGRADE", 0, 7);
    let b2 = sample_job(&p, "elb", "UPGRADE", 0, 8);
    let refused = store.insert_jobs(&[keyed(b.clone(), Some("t-2"), "x"), keyed(b2, Some("t-2"), "y")]).await;
    assert!(matches!(refused, Err(StoreError::KeyConflict { index: 1 })), "{refused:?}");
    assert!(store.get_job(&p, &b.job_id).await.unwrap().is_none());
    // Over the cap, and empty.
    let many: Vec<NewTree> =
        (0..=MAX_BATCH as i64).map(|i| keyed(sample_job(&p, "cfw", "createFirewall", 0, 10 + i), None, "")).collect();
    assert!(matches!(store.insert_jobs(&many).await, Err(StoreError::BatchSize { .. })));
    assert!(matches!(store.insert_jobs(&[]).await, Err(StoreError::BatchSize { .. })));
    // The cap itself goes through, in order.
    let answers = store.insert_jobs(&many[..MAX_BATCH]).await.unwrap();
    assert!(answers.iter().all(|a| *a == Inserted::Created));
    let listed = store.list_jobs(&JobQuery { limit: 5, ..JobQuery::new(p.clone()) }).await.unwrap();
    assert_eq!(listed[0].job_id, many[MAX_BATCH - 1].job.job_id, "newest first");
}

pub async fn a_batch_of_task_events_answers_each_event(store: SharedStore) {
    let p = project(21);
    let other = project(22);
    let mut jobs = Vec::new();
    for i in 0..3 {
        let job = sample_job(&p, "cfw", "createFirewall", 0, i);
        store.insert_job(&job, None).await.unwrap();
        jobs.push(job);
    }
    let taken_over = sample_job(&p, "cfw", "deleteFirewall", 0, 3);
    store.insert_job(&taken_over, None).await.unwrap();
    let foreign = sample_job(&other, "cfw", "createFirewall", 0, 4);
    store.insert_job(&foreign, None).await.unwrap();
    // One worker holds `taken_over` under a short lease; another claimer takes it over once the
    // lease has expired, so the first worker's report on it is stale.
    let mut short = claim_request("w", false);
    short.job_types = vec!["deleteFirewall".into()];
    short.lease_seconds = 10;
    let stale_lease = store.claim_tasks(&short, at(10)).await.unwrap()[0].task().lease.clone().unwrap();
    let mut request = claim_request("w", false);
    request.max_tasks = 10;
    request.lease_seconds = 600;
    let claimed = store.claim_tasks(&request, at(100)).await.unwrap();
    assert_eq!(claimed.len(), 4, "the three jobs and the other project's");
    let retaken = store.claim_tasks(&ClaimRequest { worker_id: "other-worker".into(), ..short }, at(10_011)).await;
    assert_eq!(retaken.unwrap()[0].task_id, taken_over.job_id);
    let token =
        |id: &JobId| claimed.iter().find(|t| &t.task_id == id).unwrap().task().lease.as_ref().unwrap().token.clone();
    let complete = |id: &JobId, lease_token: String| TaskEvent {
        job_id: id.clone(),
        event: JobEvent::Complete { lease_token, result: Some(json!({"ok": 1})), message: None },
    };
    let unknown = JobId::parse("00000000-0000-4000-8000-000000000001").unwrap();
    let events = vec![
        complete(&jobs[0].job_id, token(&jobs[0].job_id)),
        complete(&jobs[1].job_id, "not-the-lease".into()),
        TaskEvent {
            job_id: jobs[2].job_id.clone(),
            event: JobEvent::Heartbeat {
                lease_token: token(&jobs[2].job_id),
                lease_expires_at: Some(at(200_000)),
                message: Some("half way".into()),
            },
        },
        complete(&taken_over.job_id, stale_lease.token),
        complete(&unknown, "t".into()),
        complete(&foreign.job_id, token(&foreign.job_id)),
    ];
    let scope = TaskScope { project_ids: Some(vec![p.clone()]), enterprise_project_ids: None };
    let answers = store.apply_task_events(&events, &scope, at(10_012)).await.unwrap();
    assert_eq!(answers.len(), 6);
    assert_eq!(answers[0].as_ref().unwrap().status, JobStatus::Succeeded);
    assert!(matches!(answers[1], Err(StoreError::Transition(_))), "{:?}", answers[1]);
    assert_eq!(answers[2].as_ref().unwrap().message.as_deref(), Some("half way"));
    assert!(matches!(answers[3], Err(StoreError::Transition(_))), "a stale report: {:?}", answers[3]);
    assert!(matches!(answers[4], Err(StoreError::NotFound(_))), "{:?}", answers[4]);
    assert!(matches!(answers[5], Err(StoreError::NotFound(_))), "another project's task: {:?}", answers[5]);
    // What was applied is stored; what was refused changed nothing.
    assert_eq!(store.get_job(&p, &jobs[0].job_id).await.unwrap().unwrap().status, JobStatus::Succeeded);
    assert_eq!(store.get_job(&p, &jobs[1].job_id).await.unwrap().unwrap().status, JobStatus::Running);
    let held = store.get_job(&p, &jobs[2].job_id).await.unwrap().unwrap();
    assert_eq!(held.lease.unwrap().expires_at, at(200_000));
    let retaken = store.get_job(&p, &taken_over.job_id).await.unwrap().unwrap();
    assert_eq!((retaken.status, retaken.lease.unwrap().worker_id.as_str()), (JobStatus::Running, "other-worker"));
    assert_eq!(store.get_job(&other, &foreign.job_id).await.unwrap().unwrap().status, JobStatus::Running);
}

pub async fn a_batch_of_events_on_one_tree_applies_in_order(store: SharedStore) {
    let p = project(23);
    let mut parallel = sample_job(&p, "elb", "UPGRADE", 3, 0);
    parallel.execution = jobd_core::Execution::Parallel;
    let parallel = Job { sub_jobs: parallel.sub_jobs.clone(), ..parallel };
    store.insert_job(&parallel, None).await.unwrap();
    let mut request = claim_request("w", true);
    request.max_tasks = 10;
    let claimed = store.claim_tasks(&request, at(1)).await.unwrap();
    assert_eq!(claimed.len(), 3, "every parallel sub-job in one claim");
    let events: Vec<TaskEvent> = claimed
        .iter()
        .map(|task| TaskEvent {
            job_id: task.task_id.clone(),
            event: JobEvent::Complete {
                lease_token: task.task().lease.as_ref().unwrap().token.clone(),
                result: None,
                message: None,
            },
        })
        .collect();
    let answers = store.apply_task_events(&events, &TaskScope::default(), at(2)).await.unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let last = answers.last().unwrap().as_ref().unwrap();
    assert_eq!(last.status, JobStatus::Succeeded, "the parent ends with its last sub-job");
    assert_eq!(store.get_job(&p, &parallel.job_id).await.unwrap().as_ref(), Some(last));
}

/// A tree of job type `kind` in `p` whose sub-jobs (`{kind}_0`, ...) are worked by real workers
/// with one attempt each.
fn worker_tree(p: &ProjectId, kind: &str, sub_jobs: usize, on_failure: jobd_core::OnFailure, created: i64) -> Job {
    let mut tree = sample_job(p, "elb", kind, sub_jobs, created);
    tree.on_failure = on_failure;
    tree.simulate = None;
    tree.max_attempts = 1;
    for (i, sub) in tree.sub_jobs.iter_mut().enumerate() {
        sub.job_type = JobType::parse(&format!("{kind}_{i}")).unwrap();
        sub.simulate = None;
        sub.max_attempts = 1;
    }
    tree
}

/// A read after every kind of write sees that write, though the tree was read (and may be kept
/// by a cache of recent reads) just before it: a claim and a report that change only a sub-job
/// row, a single event on the root, and pruning.
pub async fn a_read_after_each_write_sees_it(store: SharedStore) {
    let p = project(25);
    let tree = worker_tree(&p, "SEEN", 2, jobd_core::OnFailure::Fail, 0);
    store.insert_job(&tree, None).await.unwrap();
    let read = || async { store.get_job_shared(&p, &tree.job_id).await.unwrap() };
    let first = read().await.expect("inserted");
    assert_eq!(first.sub_jobs[0].status, JobStatus::Pending);

    let task = take(&store, "SEEN_0", 10).await;
    let claimed = read().await.unwrap();
    assert_eq!(claimed.sub_jobs[0].status, JobStatus::Running, "the claim is seen");
    assert!(claimed.version > first.version);

    report(&store, &task, true, 11).await;
    let reported = read().await.unwrap();
    assert_eq!(reported.sub_jobs[0].status, JobStatus::Succeeded, "the report is seen");

    store.apply_event(&p, &tree.job_id, &JobEvent::Cancel, at(12)).await.unwrap();
    let cancelled = read().await.unwrap();
    assert!(cancelled.is_terminal(), "the cancel is seen: {:?}", cancelled.status);

    assert_eq!(store.prune_finished_jobs(at(1_000_000), 100).await.unwrap(), 1);
    assert!(read().await.is_none(), "the pruned tree is gone");
    assert!(store.get_job(&p, &tree.job_id).await.unwrap().is_none());
}

/// Claims the one task of `job_type` due now.
async fn take(store: &SharedStore, job_type: &str, now: i64) -> ClaimedTask {
    let mut request = claim_request("w", false);
    request.job_types = vec![job_type.to_owned()];
    let mut tasks = store.claim_tasks(&request, at(now)).await.unwrap();
    assert_eq!(tasks.len(), 1, "one {job_type} task due at {now}");
    tasks.pop().unwrap()
}

/// The event that ends a claimed task: complete, or fail for good.
fn outcome(task: &ClaimedTask, ok: bool) -> JobEvent {
    let lease_token = task.task().lease.as_ref().unwrap().token.clone();
    if ok {
        JobEvent::Complete { lease_token, result: None, message: None }
    } else {
        JobEvent::FailAttempt {
            lease_token,
            error_code: "E".into(),
            error_msg: "x".into(),
            retryable: false,
            jitter: 0.0,
        }
    }
}

/// Ends a claimed task through the batch verb (one event in the batch).
async fn report(store: &SharedStore, task: &ClaimedTask, ok: bool, now: i64) -> Job {
    let event = TaskEvent { job_id: task.task_id.clone(), event: outcome(task, ok) };
    let mut answers = store.apply_task_events(&[event], &TaskScope::default(), at(now)).await.unwrap();
    answers.pop().unwrap().unwrap()
}

pub async fn lists_filter_by_where_the_tree_stands_on_every_write_path(store: SharedStore) {
    use jobd_core::{OnFailure, TreeStatus};
    let p = project(24);
    // Written by the single insert, the batch insert, claims, single events and event batches.
    let pending = worker_tree(&p, "PENDING", 0, OnFailure::Fail, 0);
    let cancelled = worker_tree(&p, "CANCELLED", 2, OnFailure::Fail, 1);
    store.insert_job(&pending, None).await.unwrap();
    store.insert_job(&cancelled, None).await.unwrap();
    let running = worker_tree(&p, "RUNNING", 0, OnFailure::Fail, 2);
    let done = worker_tree(&p, "DONE", 0, OnFailure::Fail, 3);
    let failed = worker_tree(&p, "FAILED", 0, OnFailure::Fail, 4);
    let rolling = worker_tree(&p, "ROLLING", 2, OnFailure::Rollback, 5);
    let rollback_failed = worker_tree(&p, "ROLLFAIL", 2, OnFailure::Rollback, 6);
    let rolled_back = worker_tree(&p, "ROLLED", 2, OnFailure::Rollback, 7);
    let batch: Vec<NewTree> = [&running, &done, &failed, &rolling, &rollback_failed, &rolled_back]
        .into_iter()
        .map(|job| NewTree { job: job.clone(), idempotency: None })
        .collect();
    store.insert_jobs(&batch).await.unwrap();

    store.apply_event(&p, &cancelled.job_id, &JobEvent::Cancel, at(10)).await.unwrap();
    take(&store, "RUNNING", 11).await;
    let task = take(&store, "DONE", 12).await;
    report(&store, &task, true, 13).await;
    let task = take(&store, "FAILED", 14).await;
    store.apply_event(&p, &task.task_id, &outcome(&task, false), at(15)).await.unwrap();
    for (kind, compensation_ok) in [("ROLLING", None), ("ROLLFAIL", Some(false)), ("ROLLED", Some(true))] {
        let first = take(&store, &format!("{kind}_0"), 20).await;
        report(&store, &first, true, 21).await;
        let second = take(&store, &format!("{kind}_1"), 22).await;
        let tree = report(&store, &second, false, 23).await;
        assert_eq!(tree.tree_status(), TreeStatus::RollingBack, "{kind}: compensating the first sub-job");
        if let Some(ok) = compensation_ok {
            let compensation = take(&store, &format!("{kind}_0"), 24).await;
            store.apply_event(&p, &compensation.task_id, &outcome(&compensation, ok), at(25)).await.unwrap();
        }
    }

    let expected = [
        (&pending, TreeStatus::Pending),
        (&running, TreeStatus::Running),
        (&rolling, TreeStatus::RollingBack),
        (&done, TreeStatus::Succeeded),
        (&failed, TreeStatus::Failed),
        (&rolled_back, TreeStatus::Failed),
        (&rollback_failed, TreeStatus::RollbackFailed),
        (&cancelled, TreeStatus::Cancelled),
    ];
    for (job, status) in expected {
        let stored = store.get_job(&p, &job.job_id).await.unwrap().unwrap();
        assert_eq!(stored.tree_status(), status, "{}", job.job_type);
    }
    for status in TreeStatus::ALL {
        let query = JobQuery { tree_statuses: vec![status], ..JobQuery::new(p.clone()) };
        let mut listed: Vec<JobId> = store.list_jobs(&query).await.unwrap().into_iter().map(|j| j.job_id).collect();
        let mut wanted: Vec<JobId> =
            expected.iter().filter(|(_, s)| *s == status).map(|(job, _)| job.job_id.clone()).collect();
        listed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        wanted.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(listed, wanted, "{status}");
    }
    // Several values: any matches; combined with the plain status: both must.
    let query = JobQuery {
        tree_statuses: vec![TreeStatus::RollbackFailed, TreeStatus::RollingBack],
        statuses: vec![JobStatus::Failed],
        ..JobQuery::new(p.clone())
    };
    let listed: Vec<JobId> = store.list_jobs(&query).await.unwrap().into_iter().map(|j| j.job_id).collect();
    assert_eq!(listed, vec![rollback_failed.job_id.clone()]);
}

/// Expands to one test per conformance case; `$make` is an async fn returning `SharedStore`, or,
/// with `teardown = $finish`, `(SharedStore, F)` where `$finish(F)` is awaited after the case.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:path) => {
        $crate::store_conformance_tests!(@all [$make] []);
    };
    ($make:path, teardown = $finish:path) => {
        $crate::store_conformance_tests!(@all [$make] [$finish]);
    };
    (@all [$make:path] [$($finish:path)?]) => {
        $crate::store_conformance_tests!(@cases [$make] [$($finish)?];
            insert_then_get_round_trips_every_field,
            jobs_are_scoped_to_their_project,
            a_duplicate_job_id_is_a_conflict,
            events_are_applied_through_the_state_machine_and_kept,
            unknown_jobs_are_not_found,
            concurrent_events_are_never_lost,
            a_failing_write_among_concurrent_writes_fails_alone,
            lists_are_newest_first_filtered_and_paged,
            lists_carry_sub_jobs_in_order,
            claims_are_exclusive_under_concurrency,
            claims_follow_priority_schedule_filters_and_order,
            an_expired_lease_is_taken_over_by_the_next_claim,
            idempotency_keys_return_the_first_job,
            timeouts_are_found_and_old_jobs_pruned,
            project_of_names_the_project_of_any_job,
            rollback_compensations_are_claimed_last_first,
            identities_are_kept_and_unique,
            a_token_never_outlives_its_deleted_user,
            queue_stats_count_waiting_tasks,
            console_reads_count_open_tasks_finished_jobs_and_leases,
            a_batch_insert_is_all_or_nothing_with_keys_per_item,
            a_batch_of_task_events_answers_each_event,
            a_read_after_each_write_sees_it,
            a_batch_of_events_on_one_tree_applies_in_order,
            lists_filter_by_where_the_tree_stands_on_every_write_path,
            mfa_steps_are_used_once_and_in_order
        );
    };
    (@cases [$make:path] []; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make().await;
                $crate::store_conformance::$case(store).await;
            }
        )*
    };
    (@cases [$make:path] [$finish:path]; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, fixture) = $make().await;
                // The case runs on its own task so that a failing case still reaches the teardown.
                let outcome = tokio::spawn($crate::store_conformance::$case(store)).await;
                $finish(fixture).await;
                if let Err(error) = outcome {
                    if error.is_panic() {
                        std::panic::resume_unwind(error.into_panic());
                    }
                    panic!("the case did not finish: {error}");
                }
            }
        )*
    };
}
