//! Shared by the tests that break things under load (`crash.rs`: `kill -9` of the one node;
//! `multi_node.rs`: three nodes on PostgreSQL, one killed; `pg_restart.rs`: PostgreSQL restarted):
//! producers that create jobs and keep what was acknowledged, external workers on the worker API,
//! a watcher that records every status it sees, and the verdict over all of it.
//!
//! Every client talks to a list of nodes like a load balancer without health checks would: it
//! sticks to one node and moves on to the next after a transport error or a `503`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::{Endpoint, PROJECT};

/// A status's place in `PENDING → RUNNING → terminal`; statuses never go back.
pub fn rank(status: &str) -> u8 {
    match status {
        "PENDING" => 0,
        "RUNNING" => 1,
        _ => 2,
    }
}

#[derive(Default)]
pub struct Ledger {
    pub acknowledged: HashSet<String>,
    /// Every status the watcher saw, per job, in the order seen.
    pub observed: HashMap<String, Vec<String>>,
    /// The job versions that a `complete` answered 200 with, per job.
    pub completions: HashMap<String, HashSet<i64>>,
    /// Completions answered 200, by the index of the node that answered.
    pub completed_by_node: BTreeMap<usize, usize>,
    /// Every answer the clients got, by status (`"transport"`: no answer at all).
    pub answers: BTreeMap<String, usize>,
    /// A sample of the `5xx` bodies other than 503, should there be any.
    pub server_errors: Vec<String>,
}

impl Ledger {
    fn count(&mut self, answer: &Result<(u16, Value), reqwest::Error>) {
        let key = match answer {
            Ok((status, body)) => {
                if *status >= 500 && *status != 503 && self.server_errors.len() < 10 {
                    self.server_errors.push(format!("{status} {body}"));
                }
                status.to_string()
            }
            Err(_) => "transport".to_owned(),
        };
        *self.answers.entry(key).or_default() += 1;
    }
}

pub type SharedLedger = Arc<Mutex<Ledger>>;

/// One client's view of the nodes: it calls `endpoints[current]` and fails over to the next node
/// when that one does not answer or answers `503`.
pub struct Client {
    endpoints: Arc<Vec<Endpoint>>,
    current: usize,
    ledger: SharedLedger,
}

impl Client {
    pub fn new(endpoints: &Arc<Vec<Endpoint>>, first: usize, ledger: &SharedLedger) -> Client {
        Client { endpoints: endpoints.clone(), current: first % endpoints.len(), ledger: ledger.clone() }
    }

    /// The index of the node the next call goes to.
    pub fn node(&self) -> usize {
        self.current
    }

    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let answer = self.endpoints[self.current].call(method, path, body).await;
        self.ledger.lock().unwrap().count(&answer);
        if matches!(answer, Err(_) | Ok((503, _))) {
            self.current = (self.current + 1) % self.endpoints.len();
        }
        answer
    }
}

/// How many jobs a batching producer creates per call.
const CREATE_BATCH: usize = 7;

/// The body of job number `n`: every fifth fails its first attempt at the worker.
fn job_body(n: usize) -> Value {
    json!({"service": "cfw", "job_type": "CreateFirewall", "payload": {"n": n},
           "max_attempts": 10, "retry_backoff": {"initial_seconds": 0.05, "multiplier": 2, "max_seconds": 1}})
}

/// Creates `count` jobs numbered from `offset` (fewer if `stop` is set first), retrying each call
/// until it is acknowledged; with `batched`, `CREATE_BATCH` jobs per `POST .../jobs/batch`.
pub async fn producer(mut client: Client, count: usize, offset: usize, batched: bool, stop: Arc<AtomicBool>) {
    let per_call = if batched { CREATE_BATCH } else { 1 };
    let mut next = 0;
    while next < count {
        let numbers: Vec<usize> = (offset + next..offset + count.min(next + per_call)).collect();
        let (path, body) = if batched {
            let jobs: Vec<Value> = numbers.iter().map(|n| job_body(*n)).collect();
            (format!("/v1/{PROJECT}/jobs/batch"), json!({ "jobs": jobs }))
        } else {
            (format!("/v1/{PROJECT}/jobs"), job_body(numbers[0]))
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match client.call("POST", &path, Some(body.clone())).await {
                Ok((201, answer)) => {
                    let ids: Vec<String> = if batched {
                        answer["jobs"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|j| j["job_id"].as_str().unwrap().to_owned())
                            .collect()
                    } else {
                        vec![answer["job"]["job_id"].as_str().unwrap().to_owned()]
                    };
                    assert_eq!(ids.len(), numbers.len(), "a batch answers every job");
                    client.ledger.lock().unwrap().acknowledged.extend(ids);
                    break;
                }
                // Down or restarting: an unacknowledged create may or may not exist; try again.
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        next += numbers.len();
    }
}

/// Claims and works tasks until `stop`: completes them, except that a job whose `n` is a multiple
/// of five fails its first attempt, retryably. With `batched`, the attempts' ends of one claim go
/// in one `POST /v1/worker/tasks/batch`.
pub async fn worker(mut client: Client, name: String, batched: bool, stop: Arc<AtomicBool>) {
    let claim = json!({"worker_id": name, "services": ["cfw"], "lease_seconds": 2, "wait_seconds": 1, "max_tasks": 10});
    while !stop.load(Ordering::Relaxed) {
        let tasks = match client.call("POST", "/v1/worker/claim", Some(claim.clone())).await {
            Ok((200, answer)) => answer["tasks"].as_array().cloned().unwrap_or_default(),
            Ok((204, _)) => continue,
            // Down, restarting, or the database unavailable: back off a little.
            _ => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let reports: Vec<(String, &str, Value)> = tasks
            .iter()
            .map(|task| {
                let id = task["job_id"].as_str().unwrap().to_owned();
                let token = task["lease_token"].clone();
                let n = task["payload"]["n"].as_u64().unwrap();
                if n % 5 == 0 && task["attempt"] == 1 {
                    (id, "fail", json!({"lease_token": token, "error_code": "CFW.FLAKY", "error_msg": "try again"}))
                } else {
                    (id, "complete", json!({"lease_token": token, "result": {"n": n}}))
                }
            })
            .collect();
        let node = client.node();
        // The ends answered 200, with the job each answered.
        let mut done: Vec<(String, &str, Value)> = Vec::new();
        if batched && !reports.is_empty() {
            let batch: Vec<Value> = reports
                .iter()
                .map(|(id, verb, body)| {
                    let mut report = body.clone();
                    report["job_id"] = json!(id);
                    report["outcome"] = json!(verb);
                    report
                })
                .collect();
            if let Ok((200, answer)) =
                client.call("POST", "/v1/worker/tasks/batch", Some(json!({ "reports": batch }))).await
            {
                for ((id, verb, _), result) in reports.iter().zip(answer["results"].as_array().unwrap()) {
                    assert_eq!(result["job_id"], json!(id), "results come in request order");
                    if result["status"] == 200 {
                        done.push((id.clone(), verb, result["job"].clone()));
                    }
                }
            }
        } else {
            for (id, verb, body) in reports {
                if let Ok((200, answer)) =
                    client.call("POST", &format!("/v1/worker/tasks/{id}/{verb}"), Some(body)).await
                {
                    done.push((id, verb, answer["job"].clone()));
                }
            }
        }
        let mut ledger = client.ledger.lock().unwrap();
        for (id, verb, job) in done {
            if verb == "complete" {
                ledger.completions.entry(id).or_default().insert(job["version"].as_i64().unwrap());
                *ledger.completed_by_node.entry(node).or_default() += 1;
            }
        }
    }
}

/// Lists every job again and again until `stop`, recording each status change it sees. Each pass
/// reads the next node in turn, so a later pass on another node must never show an older status.
pub async fn watcher(mut client: Client, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let mut marker: Option<String> = None;
        loop {
            let path = match &marker {
                Some(m) => format!("/v1/{PROJECT}/jobs?limit=1000&marker={m}"),
                None => format!("/v1/{PROJECT}/jobs?limit=1000"),
            };
            let Ok((200, page)) = client.call("GET", &path, None).await else { break };
            let mut ledger = client.ledger.lock().unwrap();
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
        client.current = (client.current + 1) % client.endpoints.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts the jobs not yet terminal (acknowledged or not: an unacknowledged create may exist too)
/// through `endpoint` until there are none or `within` runs out, and answers how many are left.
pub async fn wait_until_all_terminal(endpoint: &Endpoint, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut open = 0;
        for status in ["PENDING", "RUNNING"] {
            let mut marker: Option<String> = None;
            loop {
                let path = match &marker {
                    Some(m) => format!("/v1/{PROJECT}/jobs?status={status}&limit=1000&marker={m}"),
                    None => format!("/v1/{PROJECT}/jobs?status={status}&limit=1000"),
                };
                let (answer, page) = endpoint.call("GET", &path, None).await.unwrap();
                assert_eq!(answer, 200, "{page}");
                open += page["jobs"].as_array().unwrap().len();
                match page["next_marker"].as_str() {
                    Some(next) => marker = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        if open == 0 || Instant::now() >= deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What became of every acknowledged job, and what was seen on the way.
pub struct Verdict {
    pub acknowledged: usize,
    pub succeeded: usize,
    pub retried: usize,
    pub open: usize,
    pub watched: usize,
    pub backwards: Vec<(String, Vec<String>)>,
    pub twice: Vec<(String, HashSet<i64>)>,
    pub without_result: Vec<String>,
    pub completed_by_node: BTreeMap<usize, usize>,
    pub answers: BTreeMap<String, usize>,
    pub server_errors: Vec<String>,
}

impl Verdict {
    /// Reads the final state of every acknowledged job through `endpoint` and judges the ledger.
    pub async fn judge(endpoint: &Endpoint, ledger: Ledger) -> Verdict {
        let mut finals: HashMap<String, Value> = HashMap::new();
        for id in &ledger.acknowledged {
            let (status, body) = endpoint.call("GET", &format!("/v1/{PROJECT}/jobs/{id}"), None).await.unwrap();
            assert_eq!(status, 200, "acknowledged job {id} exists: {body}");
            finals.insert(id.clone(), body["job"].clone());
        }
        let status_of = |job: &Value| job["status"].as_str().unwrap_or_default().to_owned();
        Verdict {
            acknowledged: ledger.acknowledged.len(),
            succeeded: finals.values().filter(|j| j["status"] == "SUCCEEDED").count(),
            retried: finals.values().filter(|j| j["attempt"].as_u64().unwrap_or(0) > 1).count(),
            open: finals.values().filter(|j| rank(&status_of(j)) < 2).count(),
            watched: ledger.observed.len(),
            backwards: ledger
                .observed
                .iter()
                .filter(|(_, seen)| {
                    seen.windows(2).any(|w| rank(&w[1]) < rank(&w[0]) || (rank(&w[0]) == 2 && w[0] != w[1]))
                })
                .map(|(id, seen)| (id.clone(), seen.clone()))
                .collect(),
            twice: ledger
                .completions
                .iter()
                .filter(|(_, versions)| versions.len() > 1)
                .map(|(id, versions)| (id.clone(), versions.clone()))
                .collect(),
            without_result: finals
                .iter()
                .filter(|(_, job)| !job["result"]["n"].is_u64())
                .map(|(id, _)| id.clone())
                .collect(),
            completed_by_node: ledger.completed_by_node,
            answers: ledger.answers,
            server_errors: ledger.server_errors,
        }
    }

    /// The counts, one line.
    pub fn counts(&self) -> String {
        format!(
            "{} jobs acknowledged, {} succeeded, {} retried, {} still open, {} jobs watched, {} went backwards, \
             {} completed twice; completions by node {:?}; answers {:?}",
            self.acknowledged,
            self.succeeded,
            self.retried,
            self.open,
            self.watched,
            self.backwards.len(),
            self.twice.len(),
            self.completed_by_node,
            self.answers,
        )
    }

    /// Every acknowledged job ended (and succeeded: ten attempts each), carries its result, was
    /// completed once, and never went back; no answer was a server error other than `503`.
    pub fn assert_clean(&self) {
        assert_eq!(self.open, 0, "every acknowledged job reached a terminal status");
        assert_eq!(self.succeeded, self.acknowledged, "every job succeeded in the end (10 attempts each)");
        assert!(self.backwards.is_empty(), "statuses went backwards: {:?}", self.backwards);
        assert!(self.twice.is_empty(), "completions applied twice: {:?}", self.twice);
        assert!(self.without_result.is_empty(), "jobs without their completion's result: {:?}", self.without_result);
        assert!(self.server_errors.is_empty(), "server errors other than 503: {:?}", self.server_errors);
    }
}

/// Starts `producers` producers (`per_producer` jobs each) and `workers` workers, spread round
/// robin over the nodes, and one watcher. `stop_producing` ends production early; `stop` ends
/// workers and watcher.
pub struct Load {
    pub producers: Vec<tokio::task::JoinHandle<()>>,
    pub workers: Vec<tokio::task::JoinHandle<()>>,
    pub watcher: tokio::task::JoinHandle<()>,
    pub stop: Arc<AtomicBool>,
    pub stop_producing: Arc<AtomicBool>,
}

impl Load {
    pub fn start(
        endpoints: &Arc<Vec<Endpoint>>,
        ledger: &SharedLedger,
        producers: usize,
        per_producer: usize,
        workers: usize,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_producing = Arc::new(AtomicBool::new(false));
        let producers = (0..producers)
            .map(|p| {
                let client = Client::new(endpoints, p, ledger);
                // Every other producer creates in batches, every other worker reports in batches.
                tokio::spawn(producer(client, per_producer, p * per_producer, p % 2 == 1, stop_producing.clone()))
            })
            .collect();
        let workers = (0..workers)
            .map(|w| {
                let client = Client::new(endpoints, w, ledger);
                tokio::spawn(worker(client, format!("worker-{w}"), w % 2 == 1, stop.clone()))
            })
            .collect();
        let watcher = tokio::spawn(watcher(Client::new(endpoints, 0, ledger), stop.clone()));
        Load { producers, workers, watcher, stop, stop_producing }
    }

    /// Waits for the producers to finish.
    pub async fn produced(&mut self) {
        for producer in self.producers.drain(..) {
            producer.await.unwrap();
        }
    }

    /// Waits (up to `within`) until every acknowledged job is terminal, lets the watcher make one
    /// more pass, stops the workers and the watcher, and judges what happened through `endpoint`.
    pub async fn finish(mut self, endpoint: &Endpoint, ledger: &SharedLedger, within: Duration) -> Verdict {
        self.produced().await;
        wait_until_all_terminal(endpoint, within).await;
        tokio::time::sleep(Duration::from_millis(300)).await; // one more watcher pass
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        self.watcher.await.unwrap();
        let ledger = std::mem::take(&mut *ledger.lock().unwrap());
        Verdict::judge(endpoint, ledger).await
    }
}
