//! Three jobd nodes on one PostgreSQL database (a fresh one for this test), started together.
//! Producers and external workers are spread over the nodes and fail over to the next node when
//! theirs stops answering, as behind a load balancer. Mid-run the node leading maintenance is
//! killed with `kill -9`; another node takes the lead, and afterwards every acknowledged job is
//! terminal, none is lost, none was completed twice, and no status the watcher saw (reading the
//! nodes in turn) went backwards.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobd_test_support::chaos::{Ledger, Load};
use jobd_test_support::database::{with_parameter, TestDatabase};
use jobd_test_support::server::{Launch, Server};
use sqlx::{Connection, PgConnection};

const NODES: usize = 3;
const JOBS: usize = 600;
const PRODUCERS: usize = 3;
const WORKERS: usize = 6;
const MASTER_KEY: &str = "multi-node-test-master-key";

/// The maintenance leader's advisory lock key in jobd's store ("jobd" in ASCII).
const MAINTENANCE_LOCK: i64 = 0x6a6f_6264;

/// The `application_name` of the session holding the maintenance leader's advisory lock.
async fn maintenance_leader(connection: &mut PgConnection) -> Option<String> {
    sqlx::query_scalar(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
    )
    .bind(MAINTENANCE_LOCK)
    .fetch_optional(connection)
    .await
    .expect("pg_locks can be read")
}

/// Waits until a node other than `not` leads maintenance, and answers which one.
async fn wait_for_leader(connection: &mut PgConnection, not: Option<usize>, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let leader = maintenance_leader(connection).await;
        let index = leader.as_deref().and_then(|name| name.strip_prefix("jobd-node-")).and_then(|i| i.parse().ok());
        match index {
            Some(index) if Some(index) != not => return index,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no node (other than {not:?}) took the maintenance lead; the lock: {leader:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_postgresql_lose_one_to_kill_9_and_no_job() {
    let started = Instant::now();
    let database = TestDatabase::create().await;
    let dirs: Vec<tempfile::TempDir> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
    // All three at once: they migrate the fresh database together, under the advisory lock.
    let mut nodes: Vec<Option<Server>> = std::thread::scope(|scope| {
        let starting: Vec<_> = dirs
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let url = with_parameter(&database.url, &format!("application_name=jobd-node-{i}"));
                scope.spawn(move || Server::start_with(dir.path(), 0, &Launch::postgres(&url, MASTER_KEY)))
            })
            .collect();
        starting.into_iter().map(|node| Some(node.join().unwrap())).collect()
    });
    for node in nodes.iter().flatten() {
        node.wait_healthy().await;
    }
    let endpoints = Arc::new(nodes.iter().flatten().map(Server::endpoint).collect::<Vec<_>>());
    let mut watch_db = database.connect().await;
    let leader = wait_for_leader(&mut watch_db, None, Duration::from_secs(15)).await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let load = Load::start(&endpoints, &ledger, PRODUCERS, JOBS / PRODUCERS, WORKERS);

    // Mid-run: a third of the jobs acknowledged, and every node has completed work.
    let deadline = Instant::now() + Duration::from_secs(60);
    let acknowledged_at_kill = loop {
        {
            let ledger = ledger.lock().unwrap();
            if ledger.acknowledged.len() >= JOBS / 3 && ledger.completed_by_node.len() == NODES {
                break ledger.acknowledged.len();
            }
        }
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let killed_at = Instant::now();
    nodes[leader].take().unwrap().stop("-KILL");
    let successor = wait_for_leader(&mut watch_db, Some(leader), Duration::from_secs(15)).await;
    let takeover = killed_at.elapsed();
    watch_db.close().await.ok();

    let survivor = nodes.iter().flatten().next().unwrap().endpoint();
    let verdict = load.finish(&survivor, &ledger, Duration::from_secs(60)).await;
    let panics = nodes.iter().flatten().map(|node| node.log().matches("panicked").count()).sum::<usize>();
    println!(
        "multi-node test: {NODES} nodes on PostgreSQL; node {leader} (the maintenance leader) killed with kill -9 \
         after {acknowledged_at_kill} acknowledged jobs; node {successor} led maintenance {} ms later; {}; {:.1} s",
        takeover.as_millis(),
        verdict.counts(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(panics, 0, "a surviving node panicked");
    assert_eq!(verdict.acknowledged, JOBS / PRODUCERS * PRODUCERS);
    assert_eq!(verdict.completed_by_node.len(), NODES, "every node completed work");
    verdict.assert_clean();
}
