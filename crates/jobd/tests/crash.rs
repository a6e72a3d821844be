//! The crash test: the real binary is killed with `kill -9` again and again while producers create
//! jobs and external workers run them over the worker API. Afterwards every acknowledged job
//! exists and is terminal, no observed status ever went backwards, and no job was completed twice.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Endpoint, Server, PROJECT};

const JOBS: usize = 1500;
const WORKERS: usize = 6;
const KILLS: usize = 6;

fn rank(status: &str) -> u8 {
    match status {
        "PENDING" => 0,
        "RUNNING" => 1,
        _ => 2,
    }
}

#[derive(Default)]
struct Ledger {
    acknowledged: HashSet<String>,
    /// Every status a watcher saw, per job, in the order seen.
    observed: HashMap<String, Vec<String>>,
    /// The job versions that a `complete` answered 200 with, per job.
    completions: HashMap<String, HashSet<i64>>,
}

async fn producer(endpoint: Endpoint, ledger: Arc<Mutex<Ledger>>, count: usize, offset: usize) {
    for i in 0..count {
        let body = json!({"service": "cfw", "job_type": "CreateFirewall", "payload": {"n": offset + i},
                          "max_attempts": 10, "retry_backoff": {"initial_seconds": 0.05, "multiplier": 2, "max_seconds": 1}});
        loop {
            match endpoint.call("POST", &format!("/v1/{PROJECT}/jobs"), Some(body.clone())).await {
                Ok((201, answer)) => {
                    let id = answer["job"]["job_id"].as_str().unwrap().to_owned();
                    ledger.lock().unwrap().acknowledged.insert(id);
                    break;
                }
                // Down or restarting: an unacknowledged create may or may not exist; try again.
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

async fn worker(endpoint: Endpoint, ledger: Arc<Mutex<Ledger>>, name: String, stop: Arc<AtomicBool>) {
    let claim = json!({"worker_id": name, "services": ["cfw"], "lease_seconds": 2, "wait_seconds": 1, "max_tasks": 10});
    while !stop.load(Ordering::Relaxed) {
        let tasks = match endpoint.call("POST", "/v1/worker/claim", Some(claim.clone())).await {
            Ok((200, answer)) => answer["tasks"].as_array().cloned().unwrap_or_default(),
            Ok(_) => continue,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        for task in tasks {
            let id = task["job_id"].as_str().unwrap().to_owned();
            let token = task["lease_token"].clone();
            let n = task["payload"]["n"].as_u64().unwrap();
            // Every fifth job fails its first attempt, retryably.
            let (verb, body) = if n % 5 == 0 && task["attempt"] == 1 {
                ("fail", json!({"lease_token": token, "error_code": "CFW.FLAKY", "error_msg": "try again"}))
            } else {
                ("complete", json!({"lease_token": token, "result": {"n": n}}))
            };
            if let Ok((200, answer)) = endpoint.call("POST", &format!("/v1/worker/tasks/{id}/{verb}"), Some(body)).await
            {
                if verb == "complete" {
                    let version = answer["job"]["version"].as_i64().unwrap();
                    ledger.lock().unwrap().completions.entry(id).or_default().insert(version);
                }
            }
        }
    }
}

async fn watcher(endpoint: Endpoint, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let mut marker: Option<String> = None;
        loop {
            let path = match &marker {
                Some(m) => format!("/v1/{PROJECT}/jobs?limit=1000&marker={m}"),
                None => format!("/v1/{PROJECT}/jobs?limit=1000"),
            };
            let Ok((200, page)) = endpoint.call("GET", &path, None).await else { break };
            let mut ledger = ledger.lock().unwrap();
            for job in page["jobs"].as_array().unwrap() {
                let id = job["job_id"].as_str().unwrap().to_owned();
                let status = job["status"].as_str().unwrap().to_owned();
                let seen = ledger.observed.entry(id).or_default();
                if seen.last() != Some(&status) {
                    seen.push(status);
                }
            }
            match page["next_marker"].as_str() {
                Some(next) => marker = Some(next.to_owned()),
                None => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_again_and_again_loses_nothing_and_applies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    server.wait_healthy().await;
    let endpoint = server.endpoint();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));

    let producers: Vec<_> =
        (0..3).map(|p| tokio::spawn(producer(endpoint.clone(), ledger.clone(), JOBS / 3, p * (JOBS / 3)))).collect();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(endpoint.clone(), ledger.clone(), format!("worker-{w}"), stop.clone())))
        .collect();
    let watcher = tokio::spawn(watcher(endpoint.clone(), ledger.clone(), stop.clone()));

    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(700 + 150 * kill as u64)).await;
        let port = server.port;
        server.stop("-KILL");
        server = Server::start_on(dir.path(), port);
        server.wait_healthy().await;
    }
    for producer in producers {
        producer.await.unwrap();
    }

    // Let the workers finish: every acknowledged job must end.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut open = usize::MAX;
    while Instant::now() < deadline {
        let ids: Vec<String> = ledger.lock().unwrap().acknowledged.iter().cloned().collect();
        open = 0;
        for id in &ids {
            let (status, body) = endpoint.call("GET", &format!("/v1/{PROJECT}/jobs/{id}"), None).await.unwrap();
            assert_eq!(status, 200, "acknowledged job {id} exists: {body}");
            if rank(body["job"]["status"].as_str().unwrap()) < 2 {
                open += 1;
            }
        }
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // one more watcher pass
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    watcher.await.unwrap();

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let mut final_status: HashMap<String, Value> = HashMap::new();
    for id in &ledger.acknowledged {
        let (_, body) = endpoint.call("GET", &format!("/v1/{PROJECT}/jobs/{id}"), None).await.unwrap();
        final_status.insert(id.clone(), body["job"].clone());
    }
    let succeeded = final_status.values().filter(|j| j["status"] == "SUCCEEDED").count();
    let retried = final_status.values().filter(|j| j["attempt"].as_u64().unwrap_or(0) > 1).count();
    let backwards: Vec<_> = ledger
        .observed
        .iter()
        .filter(|(_, seen)| seen.windows(2).any(|w| rank(&w[1]) < rank(&w[0]) || (rank(&w[0]) == 2 && w[0] != w[1])))
        .collect();
    let twice: Vec<_> = ledger.completions.iter().filter(|(_, versions)| versions.len() > 1).collect();
    println!(
        "crash test: {} kill -9, {} jobs acknowledged, {} succeeded, {} retried, {} still open, \
         {} jobs watched, {} went backwards, {} completed twice",
        KILLS,
        ledger.acknowledged.len(),
        succeeded,
        retried,
        open,
        ledger.observed.len(),
        backwards.len(),
        twice.len()
    );
    assert_eq!(ledger.acknowledged.len(), JOBS / 3 * 3);
    assert_eq!(open, 0, "every acknowledged job reached a terminal status");
    assert_eq!(succeeded, ledger.acknowledged.len(), "every job succeeded in the end (10 attempts each)");
    assert!(backwards.is_empty(), "statuses went backwards: {backwards:?}");
    assert!(twice.is_empty(), "completions applied twice: {twice:?}");
    for (id, job) in &final_status {
        assert!(job["result"]["n"].is_u64(), "job {id} carries the result of its completion");
    }
}
