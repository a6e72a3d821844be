//! The crash test: the real binary is killed with `kill -9` again and again while producers create
//! jobs (one per call, and in batches) and external workers run them over the worker API
//! (reporting one end per call, and in batches). Afterwards every acknowledged job
//! exists and is terminal, no observed status ever went backwards, and no job was completed twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobd_test_support::chaos::{Ledger, Load};
use jobd_test_support::server::Server;

const JOBS: usize = 1500;
const PRODUCERS: usize = 3;
const WORKERS: usize = 6;
const KILLS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_again_and_again_loses_nothing_and_applies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    server.wait_healthy().await;
    let endpoint = server.endpoint();
    let endpoints = Arc::new(vec![endpoint.clone()]);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let load = Load::start(&endpoints, &ledger, PRODUCERS, JOBS / PRODUCERS, WORKERS);

    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(700 + 150 * kill as u64)).await;
        let port = server.port;
        server.stop("-KILL");
        server = Server::start_on(dir.path(), port);
        server.wait_healthy().await;
    }

    // Let the workers finish: every acknowledged job must end.
    let verdict = load.finish(&endpoint, &ledger, Duration::from_secs(120)).await;
    println!("crash test: {KILLS} kill -9, {}", verdict.counts());
    assert_eq!(verdict.acknowledged, JOBS / PRODUCERS * PRODUCERS);
    verdict.assert_clean();
}
