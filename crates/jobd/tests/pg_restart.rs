//! PostgreSQL goes away under load: jobd runs on a private PostgreSQL cluster of this test's own
//! (`initdb`, `pg_ctl` on a free port; the shared test server is never touched), producers and
//! an external worker keep going, and the cluster is restarted (`pg_ctl restart -m fast`), then
//! stopped as if it crashed (`-m immediate`) for a few seconds and started again. During the
//! outage every request answers `503` with a Huawei-shaped body and `Retry-After`, and `/readyz`
//! is not ready; jobd reconnects by itself, and afterwards every acknowledged job is terminal,
//! none is lost, none was completed twice, and no status went backwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobd_test_support::chaos::{Ledger, Load, SharedLedger};
use jobd_test_support::private_cluster::PrivateCluster;
use jobd_test_support::server::{Endpoint, Launch, Server, PROJECT};
use serde_json::Value;

const JOBS: usize = 400;
const PRODUCERS: usize = 2;
const WORKERS: usize = 3;
const OUTAGE: Duration = Duration::from_secs(3);

/// One look at the node: `/readyz`, and a signed API call, with when each was sent and answered.
struct Probe {
    sent: Instant,
    answered: Instant,
    ready: Option<u16>,
    api: Option<(u16, Option<String>, Value)>,
}

async fn prober(endpoint: Endpoint, probes: Arc<Mutex<Vec<Probe>>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let ready = endpoint.get_unsigned("/readyz").await.ok().map(|(status, _, _)| status);
        let api = endpoint.call_full("GET", &format!("/v1/{PROJECT}/jobs?limit=1"), None).await.ok().map(
            |(status, headers, body)| {
                let retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                (status, retry_after, body)
            },
        );
        probes.lock().unwrap().push(Probe { sent, answered: Instant::now(), ready, api });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_acknowledged(ledger: &SharedLedger, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while ledger.lock().unwrap().acknowledged.len() < count {
        assert!(Instant::now() < deadline, "fewer than {count} jobs were acknowledged in a minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_restarts_answer_503_then_recover_and_lose_nothing() {
    let started = Instant::now();
    let cluster = PrivateCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), 0, &Launch::postgres(&cluster.url(), "pg-restart-test-master-key"));
    server.wait_healthy().await;
    let endpoint = server.endpoint();
    let (status, _, _) = endpoint.get_unsigned("/readyz").await.unwrap();
    assert_eq!(status, 200, "ready before the outage");

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let load = Load::start(&Arc::new(vec![endpoint.clone()]), &ledger, PRODUCERS, JOBS / PRODUCERS, WORKERS);
    let probes = Arc::new(Mutex::new(Vec::new()));
    let stop_probing = Arc::new(AtomicBool::new(false));
    let probing = tokio::spawn(prober(endpoint.clone(), probes.clone(), stop_probing.clone()));

    // A restart, as an operator does it: clients are told, the server is back within a second.
    wait_for_acknowledged(&ledger, JOBS / 5).await;
    let restarting = Instant::now();
    tokio::task::block_in_place(|| cluster.restart("fast"));
    let restart_took = restarting.elapsed();

    // A crash: nothing is told, the server is gone for a while, then recovers from its WAL.
    wait_for_acknowledged(&ledger, JOBS / 2).await;
    let acknowledged_at_crash = ledger.lock().unwrap().acknowledged.len();
    tokio::task::block_in_place(|| cluster.stop("immediate"));
    let down_at = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let starting_at = Instant::now();
    tokio::task::block_in_place(|| cluster.start_again());
    let up_at = Instant::now();

    // jobd finds the database again by itself.
    let deadline = up_at + Duration::from_secs(20);
    loop {
        if let Ok((200, _, _)) = endpoint.get_unsigned("/readyz").await {
            break;
        }
        assert!(Instant::now() < deadline, "jobd did not become ready after PostgreSQL came back:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_after = up_at.elapsed();

    let verdict = load.finish(&endpoint, &ledger, Duration::from_secs(60)).await;
    stop_probing.store(true, Ordering::Relaxed);
    probing.await.unwrap();

    // What the probes saw while the database was down (after a moment for jobd to notice).
    let probes = std::mem::take(&mut *probes.lock().unwrap());
    let during: Vec<&Probe> =
        probes.iter().filter(|p| p.sent >= down_at + Duration::from_millis(500) && p.answered <= starting_at).collect();
    let ready_during: Vec<Option<u16>> = during.iter().map(|p| p.ready).collect();
    let tally = |statuses: Vec<Option<u16>>| {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for status in statuses {
            *counts.entry(status.map_or("no answer".to_owned(), |s| s.to_string())).or_default() += 1;
        }
        counts
    };
    let api_during: Vec<&(u16, Option<String>, Value)> = during.iter().filter_map(|p| p.api.as_ref()).collect();
    let answered_503 = verdict.answers.get("503").copied().unwrap_or(0);
    println!(
        "pg_restart test: restart -m fast took {} ms; crash (stop -m immediate) after {acknowledged_at_crash} \
         acknowledged jobs, down {} ms, ready {} ms after PostgreSQL was back; {} probes during the outage, \
         /readyz {:?}, API {:?}; clients got 503 {answered_503} times; {}; {:.1} s",
        restart_took.as_millis(),
        (starting_at - down_at).as_millis(),
        ready_after.as_millis(),
        during.len(),
        tally(ready_during.clone()),
        tally(during.iter().map(|p| p.api.as_ref().map(|(status, _, _)| *status)).collect()),
        verdict.counts(),
        started.elapsed().as_secs_f64()
    );

    assert!(during.len() >= 5, "the prober kept probing during the outage");
    for ready in &ready_during {
        assert!(
            matches!(ready, Some(status) if *status != 200),
            "/readyz said ready with the database down: {ready_during:?}"
        );
    }
    assert_eq!(api_during.len(), during.len(), "jobd answered every request during the outage");
    let slowest = during.iter().map(|p| p.answered - p.sent).max().unwrap();
    assert!(slowest < Duration::from_secs(2), "503s come at once, not after a connection timeout: {slowest:?}");
    for (status, retry_after, body) in &api_during {
        assert_eq!(*status, 503, "requests answer 503 while the database is down: {body}");
        assert!(body["error_code"].is_string() && body["error_msg"].is_string(), "a Huawei-shaped body: {body}");
        let retry_after = retry_after.as_deref().unwrap_or_else(|| panic!("a 503 without Retry-After: {body}"));
        assert!(retry_after.parse::<u64>().is_ok(), "Retry-After in seconds: {retry_after}");
    }
    let last = probes.last().expect("probes");
    assert_eq!(last.ready, Some(200), "/readyz is ready again at the end");
    assert_eq!(last.api.as_ref().map(|(status, _, _)| *status), Some(200), "the API answers again at the end");
    assert!(answered_503 > 0, "the producers and the worker saw 503s");
    assert_eq!(verdict.acknowledged, JOBS / PRODUCERS * PRODUCERS);
    verdict.assert_clean();
}
