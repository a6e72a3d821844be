//! Each background duty on its own, at the test's clock, over a real SQLite store: what it does,
//! what it leaves alone, and that `duties` lists every one with its interval and scope and
//! `spawn` runs them.

use std::sync::Arc;
use std::time::Duration;

use jobd_auth::identity::Role;
use jobd_auth::secrets::MasterKey;
use jobd_core::{Job, JobStatus, JobType, NewJob, ProjectId, ServiceName};
use jobd_service::identity::{IdentityConfig, IdentityService, ProjectSelector};
use jobd_service::maintenance::{
    self, abuse_pruner, job_cleaner, job_timeouts, key_pruner, lease_rescuer, queue_vacuum, token_pruner,
    MaintenanceConfig, Scope,
};
use jobd_service::{ClaimRequest, ClientToken, JobService, ServiceError};
use jobd_store::SqliteStore;
use jobd_test_support::clock::ManualClock;
use jobd_test_support::store_conformance::claim_request;

const HOUR: Duration = Duration::from_secs(60 * 60);

struct Node {
    service: JobService,
    identity: IdentityService,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn node() -> Node {
    node_with(IdentityConfig::default()).await
}

async fn node_with(identity_config: IdentityConfig) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let clock = ManualClock::starting_at_epoch();
    let service = JobService::new(store.clone(), Arc::new(clock.clone()));
    let identity =
        IdentityService::new(store, Arc::new(clock.clone()), MasterKey::derive(b"test key"), None, identity_config);
    Node { service, identity, clock, _dir: dir }
}

fn project() -> ProjectId {
    ProjectId::parse("0123456789abcdef0123456789abcdef").unwrap()
}

fn new_job() -> NewJob {
    NewJob::new(project(), ServiceName::parse("cfw").unwrap(), JobType::parse("CreateFirewall").unwrap())
}

async fn create(node: &Node, job: NewJob) -> Job {
    node.service.create(job, None).await.unwrap().job
}

async fn claim(node: &Node, lease_seconds: u32) -> usize {
    let request = ClaimRequest { lease_seconds, max_tasks: 10, ..claim_request("w", false) };
    node.service.claim(&request, Duration::ZERO).await.unwrap().len()
}

#[tokio::test]
async fn job_timeouts_fails_a_job_past_its_timeout_once() {
    let node = node().await;
    let job = create(&node, NewJob { timeout_seconds: Some(30), ..new_job() }).await;
    let untimed = create(&node, new_job()).await;
    node.clock.advance(HOUR);
    assert_eq!(job_timeouts::run(&node.service).await.unwrap(), 0, "the timeout counts from the start");
    assert_eq!(claim(&node, 3600).await, 2);
    node.clock.advance(Duration::from_millis(29_999));
    assert_eq!(job_timeouts::run(&node.service).await.unwrap(), 0, "not yet due");
    node.clock.advance(Duration::from_millis(1));
    assert_eq!(job_timeouts::run(&node.service).await.unwrap(), 1);
    let job = node.service.get(&project(), &job.job_id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error_code.as_deref(), Some("JOB.TIMEOUT"));
    assert_eq!(job_timeouts::run(&node.service).await.unwrap(), 0, "a failed job is not timed out again");
    node.clock.advance(100 * HOUR);
    assert_eq!(job_timeouts::run(&node.service).await.unwrap(), 0, "a job without a timeout never times out");
    assert_eq!(node.service.get(&project(), &untimed.job_id).await.unwrap().status, JobStatus::Running);
}

#[tokio::test]
async fn lease_rescuer_fails_a_task_whose_last_lease_expired() {
    let node = node().await;
    let last = create(&node, NewJob { max_attempts: 1, ..new_job() }).await;
    assert_eq!(claim(&node, 5).await, 1);
    node.clock.advance(Duration::from_millis(4_999));
    assert_eq!(lease_rescuer::run(&node.service).await.unwrap(), 0, "the lease still holds");
    node.clock.advance(Duration::from_millis(1));
    assert_eq!(lease_rescuer::run(&node.service).await.unwrap(), 1);
    let last = node.service.get(&project(), &last.job_id).await.unwrap();
    assert_eq!(last.status, JobStatus::Failed);
    assert_eq!(last.error_code.as_deref(), Some("JOB.LEASE_EXPIRED"));

    // An attempt with more to come needs no rescue: the next claim takes it over.
    let retried = create(&node, NewJob { max_attempts: 3, ..new_job() }).await;
    assert_eq!(claim(&node, 5).await, 1);
    node.clock.advance(Duration::from_secs(6));
    assert_eq!(lease_rescuer::run(&node.service).await.unwrap(), 0);
    assert_eq!(node.service.get(&project(), &retried.job_id).await.unwrap().status, JobStatus::Running);
}

#[tokio::test]
async fn job_cleaner_deletes_finished_jobs_past_retention_and_keeps_the_rest() {
    let node = node().await;
    let finished = create(&node, new_job()).await;
    let open = create(&node, new_job()).await;
    node.service.cancel(&project(), &finished.job_id).await.unwrap();
    node.clock.advance(HOUR);
    assert_eq!(job_cleaner::run(&node.service, HOUR).await.unwrap(), 0, "ended exactly an hour ago: kept");
    node.clock.advance(Duration::from_millis(1));
    assert_eq!(job_cleaner::run(&node.service, HOUR).await.unwrap(), 1);
    assert!(matches!(node.service.get(&project(), &finished.job_id).await, Err(ServiceError::NotFound(_))));
    node.clock.advance(1000 * HOUR);
    assert_eq!(job_cleaner::run(&node.service, HOUR).await.unwrap(), 0, "open jobs are never deleted");
    assert!(node.service.get(&project(), &open.job_id).await.is_ok());
}

#[tokio::test]
async fn key_pruner_forgets_client_tokens_after_at_least_a_day() {
    let node = node().await;
    let token = || Some(ClientToken { token: "token-1".into(), request_hash: "h".into() });
    let first = node.service.create(new_job(), token()).await.unwrap().job;
    node.clock.advance(24 * HOUR);
    // A window shorter than a day is raised to a day.
    assert_eq!(key_pruner::run(&node.service, HOUR).await.unwrap(), 0, "a day is kept");
    let replay = node.service.create(new_job(), token()).await.unwrap();
    assert!(replay.replayed && replay.job.job_id == first.job_id, "the token still answers the first job");
    node.clock.advance(Duration::from_millis(1));
    assert_eq!(key_pruner::run(&node.service, HOUR).await.unwrap(), 1);
    let again = node.service.create(new_job(), token()).await.unwrap();
    assert!(!again.replayed && again.job.job_id != first.job_id, "a forgotten token makes a new job");
}

#[tokio::test]
async fn token_pruner_deletes_tokens_a_day_past_their_expiry() {
    let node = node_with(IdentityConfig { token_ttl: HOUR, ..IdentityConfig::default() }).await;
    let project = node.identity.create_project("pruning").await.unwrap();
    node.identity.create_user("ann", "acme", "a long password", &project.id, Role::Reader, &[]).await.unwrap();
    let issued = node
        .identity
        .issue_token("acme", "ann", "a long password", ProjectSelector::Id(project.id.clone()))
        .await
        .unwrap();
    let duty = token_pruner::duty(&node.identity, &MaintenanceConfig::default());
    assert_eq!(duty.run_once().await.unwrap(), 0, "a live token stays");
    node.clock.advance(HOUR + 24 * HOUR);
    assert_eq!(duty.run_once().await.unwrap(), 0, "an expired token is kept through its grace day");
    node.clock.advance(Duration::from_secs(1));
    assert_eq!(duty.run_once().await.unwrap(), 1);
    assert!(node.identity.resolve_token(&issued.token).await.is_err());
}

#[tokio::test]
async fn abuse_pruner_forgets_full_buckets_only() {
    let node = node_with(IdentityConfig { rate_limit_per_second: 10, ..IdentityConfig::default() }).await;
    let duty = abuse_pruner::duty(&node.identity, &MaintenanceConfig::default());
    assert_eq!(duty.scope, Scope::EveryNode, "each node's counters are its own");
    for _ in 0..5 {
        node.identity.take_rate_token("caller-a").unwrap();
    }
    node.identity.take_rate_token("caller-b").unwrap();
    assert_eq!(duty.run_once().await.unwrap(), 0, "both buckets have tokens to refill");
    node.clock.advance(Duration::from_millis(100)); // b's one token is back, a's five are not
    assert_eq!(duty.run_once().await.unwrap(), 1);
    node.clock.advance(Duration::from_secs(10));
    assert_eq!(duty.run_once().await.unwrap(), 1);
    assert_eq!(duty.run_once().await.unwrap(), 0);
}

#[tokio::test]
async fn every_duty_is_listed_with_its_interval_and_scope() {
    let node = node().await;
    let config = MaintenanceConfig {
        interval: Duration::from_millis(1),
        retention_interval: Duration::from_millis(2),
        abuse_prune_interval: Duration::from_millis(3),
        ..MaintenanceConfig::default()
    };
    let duties = maintenance::duties(&node.service, Some(&node.identity), &config);
    let listed: Vec<(&str, u128, Scope)> =
        duties.iter().map(|duty| (duty.name, duty.interval.as_millis(), duty.scope)).collect();
    assert_eq!(
        listed,
        [
            (job_timeouts::NAME, 1, Scope::Leader),
            (lease_rescuer::NAME, 1, Scope::Leader),
            (queue_vacuum::NAME, 1, Scope::Leader),
            (job_cleaner::NAME, 2, Scope::Leader),
            (key_pruner::NAME, 2, Scope::Leader),
            (token_pruner::NAME, 2, Scope::Leader),
            (abuse_pruner::NAME, 3, Scope::EveryNode),
        ]
    );
    for duty in &duties {
        assert_eq!(duty.run_once().await.unwrap(), 0, "{}: nothing to do on an empty store", duty.name);
    }
    let without_identity = maintenance::duties(&node.service, None, &config);
    assert_eq!(without_identity.len(), 5, "the identity duties need an identity service");
}

#[tokio::test]
async fn spawned_duties_run_at_their_intervals() {
    let node = node().await;
    let job = create(&node, NewJob { timeout_seconds: Some(1), ..new_job() }).await;
    assert_eq!(claim(&node, 3600).await, 1);
    node.clock.advance(Duration::from_secs(2));
    let config = MaintenanceConfig { interval: Duration::from_millis(20), ..MaintenanceConfig::default() };
    let tasks = maintenance::spawn(node.service.clone(), Some(node.identity.clone()), config);
    assert_eq!(tasks.len(), 7, "a task per duty");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = node.service.get(&project(), &job.job_id).await.unwrap();
        if seen.status == JobStatus::Failed {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "job_timeouts never ran: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for task in tasks {
        task.abort();
    }
}
