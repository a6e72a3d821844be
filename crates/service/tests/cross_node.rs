//! Two jobd "nodes" (two services, each with its own PostgreSQL pool) on one database: a change
//! committed by one wakes the other's waiting claim and long poll through LISTEN/NOTIFY, with no
//! polling fallback to hide a missing notification.

use std::sync::Arc;
use std::time::Duration;

use jobd_core::{JobEvent, JobType, NewJob, ProjectId, ServiceName};
use jobd_service::{ClaimRequest, JobService, SystemClock};
use jobd_store::{PgOptions, PgStore};
use jobd_test_support::database::{connect_test_server, TestDatabase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_wakes_the_other_at_once() {
    let database = TestDatabase::create().await;
    let url = &database.url;
    let node_a =
        JobService::new(Arc::new(PgStore::connect(url, PgOptions::default()).await.unwrap()), Arc::new(SystemClock));
    let node_b =
        JobService::new(Arc::new(PgStore::connect(url, PgOptions::default()).await.unwrap()), Arc::new(SystemClock));
    node_b.follow_other_nodes();

    let request = ClaimRequest {
        worker_id: "w".into(),
        project_ids: None,
        enterprise_project_ids: None,
        services: vec![ServiceName::parse("cfw").unwrap()],
        job_types: vec![],
        simulated: false,
        lease_seconds: 30,
        max_tasks: 1,
    };
    let waiting_claim = {
        let node_b = node_b.clone();
        tokio::spawn(async move { node_b.claim(&request, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let project = ProjectId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let new =
        NewJob::new(project.clone(), ServiceName::parse("cfw").unwrap(), JobType::parse("CreateFirewall").unwrap());
    let job = node_a.create(new, None).await.unwrap().job;
    let claimed = tokio::time::timeout(Duration::from_secs(10), waiting_claim)
        .await
        .expect("node B's claim woke before its 20 s wait ran out")
        .unwrap()
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].task_id, job.job_id);

    let version = claimed[0].tree.version;
    let waiting_poll = {
        let (node_b, project, id) = (node_b.clone(), project.clone(), job.job_id.clone());
        tokio::spawn(
            async move { node_b.wait_for(&project, &id, Duration::from_secs(20), |j| j.version > version).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    node_a.record(&project, &job.job_id, JobEvent::Progress { message: "from node A".into() }).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), waiting_poll)
        .await
        .expect("the long poll woke")
        .unwrap()
        .unwrap();
    assert_eq!(seen.message.as_deref(), Some("from node A"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_leads_maintenance_and_a_dead_leader_is_replaced() {
    use jobd_store::JobStore;
    let database = TestDatabase::create().await;
    let node_a = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
    let node_b = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
    assert!(node_a.lead_maintenance().await.unwrap(), "the first to ask leads");
    assert!(!node_b.lead_maintenance().await.unwrap(), "only one leads");
    assert!(node_a.lead_maintenance().await.unwrap(), "and keeps leading");

    // The leader's session dies (as when its node is killed): PostgreSQL drops its lock. Only
    // this test's database: other tests' sessions (a migrator's advisory lock) are not ours.
    let mut admin = connect_test_server(&database.url).await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND pid <> pg_backend_pid() \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !node_b.lead_maintenance().await.unwrap() {
        assert!(std::time::Instant::now() < deadline, "another node takes over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!node_a.lead_maintenance().await.unwrap(), "the old leader knows it no longer leads");
    drop(admin);
}
