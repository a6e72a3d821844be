//! The store conformance suite on PostgreSQL, each test on a fresh database, plus what only a shared
//! server can show: nodes migrating at once, claimers on several nodes, lock behaviour, outages.
//!
//! The server comes from `JOBD_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! its user must be allowed to create databases. Every test creates `jobd_test_<random>` there and
//! drops it at the end. An unreachable server fails the tests: nothing here is ever skipped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobd_core::{
    Execution, Job, JobEvent, JobId, JobQuery, JobStatus, JobType, NewJob, NewSubJob, ProjectId, ServiceName,
};
use jobd_store::{
    ClaimRequest, IdempotencyKey, Inserted, JobStore, NewTree, PgOptions, PgStore, StoreError, TaskEvent, TaskScope,
};
use jobd_test_support::database::{create_test_database, drop_test_database, url_for_database};
use jobd_test_support::store_conformance::{at, SharedStore};
use serde_json::json;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

/// A database of its own on the test server, dropped by `drop_database`.
struct TestDatabase {
    name: String,
    url: String,
}

async fn create_database() -> TestDatabase {
    let (name, url) = create_test_database().await;
    TestDatabase { name, url }
}

async fn drop_database(database: &TestDatabase) {
    drop_test_database(&database.name).await;
}

fn small_pool() -> PgOptions {
    PgOptions { max_connections: 6, ..PgOptions::default() }
}

async fn connect(database: &TestDatabase) -> PgStore {
    PgStore::connect(&database.url, small_pool())
        .await
        .unwrap_or_else(|error| panic!("cannot open the store on {}: {error}", database.name))
}

/// Another session, inside a transaction that holds the rows of `job_id` in `tables`
/// (`FOR UPDATE`, in that order), as a concurrent writer would; `COMMIT` on it lets them go.
async fn hold_rows(database: &TestDatabase, tables: &[&str], job_id: &JobId) -> PgConnection {
    let mut other = PgConnection::connect(&database.url).await.unwrap();
    other.execute("BEGIN").await.unwrap();
    for table in tables {
        sqlx::query(&format!("SELECT 1 FROM {table} WHERE job_id = $1 FOR UPDATE"))
            .bind(job_id.as_str())
            .execute(&mut other)
            .await
            .unwrap();
    }
    other
}

struct Fixture {
    store: Arc<PgStore>,
    database: TestDatabase,
}

async fn fresh_store() -> (SharedStore, Fixture) {
    let database = create_database().await;
    let store = Arc::new(connect(&database).await);
    (store.clone(), Fixture { store, database })
}

async fn finish(fixture: Fixture) {
    fixture.store.close().await;
    drop_database(&fixture.database).await;
}

jobd_test_support::store_conformance_tests!(fresh_store, teardown = finish);

/// Runs `test` on a fresh database and drops it afterwards, even when `test` panics.
async fn with_database<F, Fut>(test: F)
where
    F: FnOnce(Arc<TestDatabase>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let database = Arc::new(create_database().await);
    let outcome = tokio::spawn(test(database.clone())).await;
    drop_database(&database).await;
    if let Err(error) = outcome {
        if error.is_panic() {
            std::panic::resume_unwind(error.into_panic());
        }
        panic!("the test did not finish: {error}");
    }
}

fn project() -> ProjectId {
    ProjectId::parse(&"ab".repeat(16)).unwrap()
}

fn new_job(sub_jobs: usize, execution: Execution, created: i64) -> Job {
    NewJob {
        execution,
        sub_jobs: (0..sub_jobs).map(|i| NewSubJob::new(JobType::parse(&format!("STEP_{i}")).unwrap())).collect(),
        ..NewJob::new(project(), ServiceName::parse("elb").unwrap(), JobType::parse("UPGRADE").unwrap())
    }
    .into_job(at(created))
    .unwrap()
}

fn claim_request(worker: String, max_tasks: u32) -> ClaimRequest {
    ClaimRequest {
        worker_id: worker,
        project_ids: None,
        enterprise_project_ids: None,
        services: vec![],
        job_types: vec![],
        simulated: false,
        lease_seconds: 600,
        max_tasks,
    }
}

fn complete(lease_token: String) -> JobEvent {
    JobEvent::Complete { lease_token, result: Some(json!({"ok": true})), message: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_apply_each_migration_once() {
    with_database(|database| async move {
        let mut nodes = Vec::new();
        for _ in 0..8 {
            let url = database.url.clone();
            nodes.push(tokio::spawn(async move { PgStore::connect(&url, small_pool()).await }));
        }
        for node in nodes {
            let store = node.await.unwrap().expect("every node starts");
            store.ping().await.unwrap();
            store.close().await;
        }
        let mut conn = PgConnection::connect(&database.url).await.unwrap();
        let (applied, succeeded): (i64, i64) =
            sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE success) FROM _sqlx_migrations")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let expected = sqlx::migrate!("./migrations/postgres").iter().count() as i64;
        assert_eq!((applied, succeeded), (expected, expected));
        let held: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(held, 0, "no node keeps the migration lock");
    })
    .await;
}

/// 4 nodes × 4 claimers work through 200 jobs (leaves, sequential and parallel trees), completing
/// what they claim, until every job has succeeded: no task is ever held twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn claimers_on_several_nodes_never_hold_a_task_twice() {
    with_database(|database| async move {
        let mut nodes = Vec::new();
        for _ in 0..4 {
            nodes.push(Arc::new(connect(&database).await));
        }
        let mut roots = Vec::new();
        let mut tasks = HashSet::new();
        for i in 0..200 {
            let job = match i % 5 {
                0 => new_job(2, Execution::Sequential, i),
                1 => new_job(3, Execution::Parallel, i),
                _ => new_job(0, Execution::Sequential, i),
            };
            if job.sub_jobs.is_empty() {
                tasks.insert(job.job_id.clone());
            }
            tasks.extend(job.sub_jobs.iter().map(|sub| sub.job_id.clone()));
            nodes[i as usize % 4].insert_job(&job, None).await.unwrap();
            roots.push(job.job_id.clone());
        }
        let total = tasks.len();
        let completed = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut claimers = Vec::new();
        for worker in 0..16usize {
            let store = nodes[worker % 4].clone();
            let other = nodes[(worker + 1) % 4].clone();
            let completed = completed.clone();
            claimers.push(tokio::spawn(async move {
                let request = claim_request(format!("w{worker}"), 1 + worker as u32 % 4);
                let mut mine = Vec::new();
                while completed.load(Ordering::SeqCst) < total {
                    assert!(started.elapsed() < Duration::from_secs(120), "the claimers stalled");
                    let batch = store.claim_tasks(&request, at(1_000)).await.unwrap();
                    if batch.is_empty() {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    for task in batch {
                        assert_eq!(task.task().attempt, 1, "a task is never claimed again while its lease lives");
                        let token = task.task().lease.as_ref().unwrap().token.clone();
                        // Report through another node than the one that handed the task out.
                        other
                            .apply_event(&task.tree.project_id, &task.task_id, &complete(token), at(2_000))
                            .await
                            .unwrap();
                        completed.fetch_add(1, Ordering::SeqCst);
                        mine.push(task.task_id);
                    }
                }
                mine
            }));
        }
        let mut claims: HashMap<JobId, usize> = HashMap::new();
        let mut per_claimer = Vec::new();
        for claimer in claimers {
            let mine = claimer.await.unwrap();
            per_claimer.push(mine.len());
            for task in mine {
                *claims.entry(task).or_default() += 1;
            }
        }
        println!(
            "{} tasks of {} jobs claimed by 16 claimers on 4 nodes in {:?}; per claimer: {per_claimer:?}",
            total,
            roots.len(),
            started.elapsed()
        );
        let twice: Vec<_> = claims.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "tasks held twice: {twice:?}");
        assert_eq!(claims.keys().cloned().collect::<HashSet<_>>(), tasks, "every task claimed");
        for root in &roots {
            let job = nodes[0].get_job(&project(), root).await.unwrap().unwrap();
            assert_eq!(job.status, JobStatus::Succeeded, "{root}");
            assert!(job.sub_jobs.iter().all(|sub| sub.status == JobStatus::Succeeded));
        }
        assert!(nodes[0].claim_tasks(&claim_request("late".into(), 10), at(1_000)).await.unwrap().is_empty());
        for node in nodes {
            node.close().await;
        }
    })
    .await;
}

/// Progress storms on every job of one tree from 4 nodes lose no update (versions count every one),
/// then concurrent claims and completions of its parallel sub-jobs leave a consistent, finished tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_events_on_one_tree_lose_no_update() {
    with_database(|database| async move {
        let mut nodes = Vec::new();
        for _ in 0..4 {
            nodes.push(Arc::new(connect(&database).await));
        }
        let tree = new_job(8, Execution::Parallel, 0);
        nodes[0].insert_job(&tree, None).await.unwrap();
        let targets: Vec<JobId> = tree.iter_tree().map(|job| job.job_id.clone()).collect();
        const EVENTS_PER_JOB: usize = 25;
        let mut writers = Vec::new();
        for (t, target) in targets.iter().enumerate() {
            for e in 0..EVENTS_PER_JOB {
                let store = nodes[(t + e) % 4].clone();
                let target = target.clone();
                writers.push(tokio::spawn(async move {
                    let event = JobEvent::Progress { message: format!("job {t} event {e}") };
                    store.apply_event(&project(), &target, &event, at(10 + e as i64)).await.unwrap();
                }));
            }
        }
        for writer in writers {
            writer.await.unwrap();
        }
        let stored = nodes[1].get_job(&project(), &tree.job_id).await.unwrap().unwrap();
        let events = targets.len() * EVENTS_PER_JOB;
        assert_eq!(stored.version, 1 + events as i64, "the parent counts every event of the tree");
        for sub in &stored.sub_jobs {
            assert_eq!(sub.version, 1 + EVENTS_PER_JOB as i64, "{}", sub.job_id);
        }

        let mut workers = Vec::new();
        for w in 0..8usize {
            let store = nodes[w % 4].clone();
            workers.push(tokio::spawn(async move {
                let batch = store.claim_tasks(&claim_request(format!("w{w}"), 1), at(1_000)).await.unwrap();
                for task in &batch {
                    let token = task.task().lease.as_ref().unwrap().token.clone();
                    store.apply_event(&project(), &task.task_id, &complete(token), at(2_000)).await.unwrap();
                }
                batch.len()
            }));
        }
        let mut claimed = 0;
        for worker in workers {
            claimed += worker.await.unwrap();
        }
        // A claimer may find every sub-job's tree held by another for a moment; sweep up the rest.
        loop {
            let batch = nodes[0].claim_tasks(&claim_request("sweeper".into(), 8), at(1_000)).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for task in &batch {
                let token = task.task().lease.as_ref().unwrap().token.clone();
                nodes[0].apply_event(&project(), &task.task_id, &complete(token), at(2_000)).await.unwrap();
            }
            claimed += batch.len();
        }
        assert_eq!(claimed, 8);
        let done = nodes[2].get_job(&project(), &tree.job_id).await.unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);
        assert!(done.sub_jobs.iter().all(|sub| sub.status == JobStatus::Succeeded && sub.attempt == 1));
        for node in nodes {
            node.close().await;
        }
    })
    .await;
}

/// Nodes creating with one idempotency key at once: one job is created, every other call gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_idempotency_key_on_several_nodes_creates_one_job() {
    with_database(|database| async move {
        let mut nodes = Vec::new();
        for _ in 0..4 {
            nodes.push(Arc::new(connect(&database).await));
        }
        let key = IdempotencyKey { project_id: project(), client_token: "t-1".into(), request_hash: "h".into() };
        let mut calls = Vec::new();
        for i in 0..12usize {
            let (store, key) = (nodes[i % 4].clone(), key.clone());
            calls.push(tokio::spawn(async move {
                let job = new_job(2, Execution::Sequential, i as i64);
                (job.clone(), store.insert_job(&job, Some(&key)).await.unwrap())
            }));
        }
        let mut created = Vec::new();
        let mut existing = Vec::new();
        for call in calls {
            match call.await.unwrap() {
                (job, Inserted::Created) => created.push(job),
                (_, Inserted::Existing(job)) => existing.push(*job),
                (_, Inserted::KeyConflict) => panic!("the same request is no conflict"),
            }
        }
        assert_eq!(created.len(), 1, "one call creates");
        assert!(existing.iter().all(|job| job == &created[0]), "the others get that job, whole");
        let listed = nodes[0].list_jobs(&JobQuery::new(project())).await.unwrap();
        assert_eq!(listed, created);
        for node in nodes {
            node.close().await;
        }
    })
    .await;
}

/// Nodes pruning at once delete every finished job exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_pruning_at_once_delete_each_job_once() {
    with_database(|database| async move {
        let mut nodes = Vec::new();
        for _ in 0..4 {
            nodes.push(Arc::new(connect(&database).await));
        }
        for i in 0..40 {
            let job = new_job(i as usize % 3, Execution::Sequential, i);
            nodes[0].insert_job(&job, None).await.unwrap();
            nodes[0].apply_event(&project(), &job.job_id, &JobEvent::Cancel, at(100)).await.unwrap();
        }
        let mut pruners = Vec::new();
        for node in &nodes {
            let node = node.clone();
            pruners.push(tokio::spawn(async move {
                let mut pruned = 0;
                loop {
                    let n = node.prune_finished_jobs(at(1_000), 3).await.unwrap();
                    if n == 0 {
                        return pruned;
                    }
                    pruned += n;
                }
            }));
        }
        let mut total = 0;
        for pruner in pruners {
            total += pruner.await.unwrap();
        }
        assert_eq!(total, 40);
        assert_eq!(nodes[0].prune_finished_jobs(at(1_000), 100).await.unwrap(), 0);
        let mut query = JobQuery::new(project());
        query.limit = 100;
        assert!(nodes[1].list_jobs(&query).await.unwrap().is_empty());
        for node in nodes {
            node.close().await;
        }
    })
    .await;
}

/// A claim passes over a tree another transaction holds instead of waiting for it, while an event
/// on that tree waits its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_passes_over_a_held_tree_and_an_event_waits_for_it() {
    with_database(|database| async move {
        let store = Arc::new(connect(&database).await);
        let mut held = new_job(0, Execution::Sequential, 0);
        held.priority = 10;
        let free = new_job(0, Execution::Sequential, 1);
        store.insert_job(&held, None).await.unwrap();
        store.insert_job(&free, None).await.unwrap();

        // Held as a writer holds a tree: its root, then the queue row of a lone root.
        let mut other = hold_rows(&database, &["jobs", "task_queue"], &held.job_id).await;

        let claim =
            tokio::time::timeout(Duration::from_secs(5), store.claim_tasks(&claim_request("w".into(), 2), at(1_000)))
                .await
                .expect("a claim never waits for a held tree")
                .unwrap();
        let ids: Vec<JobId> = claim.iter().map(|task| task.task_id.clone()).collect();
        assert_eq!(ids, vec![free.job_id.clone()], "the held tree is passed over, however high its priority");

        let waiting = {
            let store = store.clone();
            let id = held.job_id.clone();
            tokio::spawn(async move {
                store.apply_event(&project(), &id, &JobEvent::Progress { message: "m".into() }, at(1_100)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "an event waits for the transaction holding its tree");
        other.execute("COMMIT").await.unwrap();
        let after = waiting.await.unwrap().unwrap();
        assert_eq!(after.message.as_deref(), Some("m"));

        let claim = store.claim_tasks(&claim_request("w".into(), 2), at(1_200)).await.unwrap();
        assert_eq!(claim.iter().map(|task| task.task_id.clone()).collect::<Vec<_>>(), vec![held.job_id.clone()]);
        store.close().await;
    })
    .await;
}

/// A claim of a lone job keeps its lease in the queue row (`pending_claims`): a writer that took
/// the job's root before the claim waits for the claim's queue row, then writes on the job as the
/// claim left it; readers see the claim at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_holding_the_root_sees_a_claim_taken_meanwhile() {
    with_database(|database| async move {
        let store = Arc::new(connect(&database).await);
        let job = new_job(0, Execution::Sequential, 0);
        store.insert_job(&job, None).await.unwrap();

        // A writer between its two locks: the root is taken, the queue row not yet.
        let mut other = hold_rows(&database, &["jobs"], &job.job_id).await;
        let claim =
            tokio::time::timeout(Duration::from_secs(5), store.claim_tasks(&claim_request("w".into(), 1), at(1_000)))
                .await
                .expect("a claim never waits for a held root")
                .unwrap();
        assert_eq!(claim.len(), 1, "a lone job's claim needs no root lock");
        let lease = claim[0].task().lease.clone().expect("a claimed task holds a lease");
        let read = store.get_job(&project(), &job.job_id).await.unwrap().unwrap();
        assert_eq!(read, *claim[0].tree, "a read sees the claim as the claim answered it");
        let mut running = JobQuery::new(project());
        running.statuses = vec![JobStatus::Running];
        assert_eq!(store.list_jobs(&running).await.unwrap().len(), 1, "a status filter sees the claim");
        let held = store.held_leases(&project(), at(1_000), 10).await.unwrap();
        assert_eq!(held.iter().map(|h| (&h.job_id, h.attempt)).collect::<Vec<_>>(), vec![(&job.job_id, 1)]);

        // The writer goes on: the event on the job waits for the root, then applies to the job
        // as the claim left it, and the claim is written into the row with it.
        let waiting = {
            let store = store.clone();
            let id = job.job_id.clone();
            let token = lease.token.clone();
            tokio::spawn(async move {
                store
                    .apply_event(
                        &project(),
                        &id,
                        &JobEvent::Heartbeat { lease_token: token, lease_expires_at: None, message: Some("h".into()) },
                        at(1_100),
                    )
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "an event waits for the transaction holding its root");
        other.execute("COMMIT").await.unwrap();
        let after = waiting.await.unwrap().unwrap();
        assert_eq!(after.status, JobStatus::Running);
        assert_eq!(after.attempt, 1);
        assert_eq!(after.lease.as_ref().map(|l| &l.token), Some(&lease.token));
        assert_eq!(after.message.as_deref(), Some("h"));
        let (stored_status, pending): (String, Option<String>) = sqlx::query_as(
            "SELECT j.status, q.claim_token FROM jobs j JOIN task_queue q ON q.job_id = j.job_id WHERE j.job_id = $1",
        )
        .bind(job.job_id.as_str())
        .fetch_one(&mut other)
        .await
        .unwrap();
        assert_eq!((stored_status.as_str(), pending), ("RUNNING", None), "the write took the claim into the row");
        assert_eq!(store.get_job(&project(), &job.job_id).await.unwrap().unwrap(), after);
        store.close().await;
    })
    .await;
}

/// Held leases come in holder, then expiry order, up to the limit, whether the lease is in the job
/// row (a claim that wrote it: here a job with a timeout) or in `task_queue` (`pending_claims`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_leases_order_row_and_queue_leases_alike() {
    with_database(|database| async move {
        let store = connect(&database).await;
        // Claimed in priority order: `timed` by "a" (its lease in the row), `first` by "b",
        // `second` by "a" with the shortest lease (both kept in the queue row).
        let mut timed = new_job(0, Execution::Sequential, 0);
        (timed.priority, timed.timeout_seconds) = (3, Some(3_600));
        let mut first = new_job(0, Execution::Sequential, 1);
        first.priority = 2;
        let second = new_job(0, Execution::Sequential, 2);
        for job in [&timed, &first, &second] {
            store.insert_job(job, None).await.unwrap();
        }
        for (worker, lease_seconds) in [("a", 60), ("b", 60), ("a", 30)] {
            let request = ClaimRequest { lease_seconds, ..claim_request(worker.into(), 1) };
            assert_eq!(store.claim_tasks(&request, at(1_000)).await.unwrap().len(), 1);
        }
        let held = store.held_leases(&project(), at(2_000), 2).await.unwrap();
        let order: Vec<(&str, &JobId)> = held.iter().map(|h| (h.worker_id.as_str(), &h.job_id)).collect();
        assert_eq!(order, vec![("a", &second.job_id), ("a", &timed.job_id)]);
        assert_eq!(store.held_leases(&project(), at(2_000), 10).await.unwrap().len(), 3);
        store.close().await;
    })
    .await;
}

/// `count` jobs without sub-jobs, created at 0, 1, ... ms, without idempotency keys.
fn lone_jobs(count: i64) -> Vec<NewTree> {
    (0..count).map(|i| NewTree { job: new_job(0, Execution::Sequential, i), idempotency: None }).collect()
}

/// Creates `count` jobs, claims and completes them all: `task_queue` is left with dead rows only.
async fn burn_down(store: &PgStore, count: i64) {
    let trees = lone_jobs(count);
    for chunk in trees.chunks(500) {
        store.insert_jobs(chunk).await.unwrap();
    }
    let mut done = 0;
    while done < trees.len() {
        let claimed = store.claim_tasks(&claim_request("w".into(), 500), at(10_000)).await.unwrap();
        assert!(!claimed.is_empty(), "{done} of {} done and nothing to claim", trees.len());
        let events: Vec<TaskEvent> = claimed
            .iter()
            .map(|task| TaskEvent {
                job_id: task.task_id.clone(),
                event: complete(task.task().lease.as_ref().unwrap().token.clone()),
            })
            .collect();
        let answers = store.apply_task_events(&events, &TaskScope::default(), at(10_001)).await.unwrap();
        assert!(answers.iter().all(Result::is_ok));
        done += claimed.len();
    }
}

/// Calls `tidy_claim_path` until it vacuums (a backend hands its counts to the statistics at
/// most once a second while busy, and within 10 s once idle); answers the dead rows it counted.
async fn tidy_until_vacuumed(store: &PgStore) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dead = store.tidy_claim_path().await.unwrap();
        if dead > 0 {
            return dead;
        }
        assert!(Instant::now() < deadline, "the dead queue rows were never vacuumed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Claims and completions leave dead `task_queue` rows; once past the threshold the claim path
/// is vacuumed (the dead rows counted, the statistics' count back near 0), and claims still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_path_is_vacuumed_once_dead_rows_pile_up() {
    with_database(|database| async move {
        let store = connect(&database).await;
        assert_eq!(store.tidy_claim_path().await.unwrap(), 0, "nothing dead on a fresh store");
        burn_down(&store, 2_500).await;
        let dead = tidy_until_vacuumed(&store).await;
        assert!(dead >= 2_000, "{dead} dead rows counted");
        let mut conn = PgConnection::connect(&database.url).await.unwrap();
        let vacuumed: Option<i64> =
            sqlx::query_scalar("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'task_queue'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(vacuumed.unwrap_or(0) >= 1, "task_queue was vacuumed");
        // Counts still on their way to the statistics may ask for one more run; then nothing.
        let deadline = Instant::now() + Duration::from_secs(20);
        while store.tidy_claim_path().await.unwrap() > 0 {
            assert!(Instant::now() < deadline, "the claim path never came clean");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        store.insert_job(&new_job(0, Execution::Sequential, 20_000), None).await.unwrap();
        assert_eq!(store.claim_tasks(&claim_request("w".into(), 10), at(30_000)).await.unwrap().len(), 1);
        store.close().await;
    })
    .await;
}

/// A vacuum that cannot clear the dead rows (a snapshot older than them is still open) is not
/// repeated at every run of the duty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vacuum_that_cannot_clear_the_claim_path_is_not_repeated() {
    with_database(|database| async move {
        let store = connect(&database).await;
        // A reader holding a snapshot from before the burn-down keeps every dead row alive.
        let mut reader = PgConnection::connect(&database.url).await.unwrap();
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
        reader.execute("SELECT count(*) FROM task_queue").await.unwrap();
        burn_down(&store, 2_500).await;
        tidy_until_vacuumed(&store).await;
        let mut conn = PgConnection::connect(&database.url).await.unwrap();
        let (dead, vacuums): (i64, i64) =
            sqlx::query_as("SELECT n_dead_tup, vacuum_count FROM pg_stat_user_tables WHERE relname = 'task_queue'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(dead >= 2_000, "the old snapshot kept the rows: {dead} dead");
        for _ in 0..5 {
            assert_eq!(store.tidy_claim_path().await.unwrap(), 0, "no vacuum again so soon");
        }
        let (again,): (i64,) =
            sqlx::query_as("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'task_queue'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(again, vacuums, "no vacuum ran");
        reader.execute("COMMIT").await.unwrap();
        store.close().await;
    })
    .await;
}

/// `statement_timeout` bounds a call stuck behind a lock, and answers `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statement_timeout_bounds_a_stuck_call() {
    with_database(|database| async move {
        let options = PgOptions { statement_timeout: Some(Duration::from_millis(300)), ..small_pool() };
        let store = PgStore::connect(&database.url, options).await.unwrap();
        let job = new_job(0, Execution::Sequential, 0);
        store.insert_job(&job, None).await.unwrap();
        let mut other = hold_rows(&database, &["jobs"], &job.job_id).await;
        let started = Instant::now();
        let error = store.apply_event(&project(), &job.job_id, &JobEvent::Cancel, at(1)).await.unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        other.execute("ROLLBACK").await.unwrap();
        let cancelled = store.apply_event(&project(), &job.job_id, &JobEvent::Cancel, at(1)).await.unwrap();
        assert_eq!(cancelled.status, JobStatus::Cancelled);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_or_closed_database_is_unavailable() {
    let options = PgOptions { acquire_timeout: Duration::from_secs(2), ..PgOptions::default() };
    // Port 1 on the loopback: nothing listens there.
    let error = PgStore::connect("postgres://postgres@127.0.0.1:1/jobd", options).await.err().expect("no server");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");

    with_database(|database| async move {
        let store = connect(&database).await;
        store.ping().await.unwrap();
        store.close().await;
        let error = store.ping().await.unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
        let error = store.get_job(&project(), &JobId::parse(&"0".repeat(32)).unwrap()).await.unwrap_err();
        assert!(error.is_unavailable(), "{error}");
    })
    .await;
}

/// JSON is kept as the text serde_json wrote: numbers keep their kind, `\u0000` is fine.
#[tokio::test]
async fn json_values_round_trip_exactly() {
    with_database(|database| async move {
        let store = connect(&database).await;
        let mut job = new_job(0, Execution::Sequential, 0);
        job.payload =
            Some(json!({"float": 1e15, "int": 1_000_000_000_000_000u64, "nul": "a\u{0}b", "z": 1, "a": [0.1]}));
        store.insert_job(&job, None).await.unwrap();
        let stored = store.get_job(&project(), &job.job_id).await.unwrap().unwrap();
        assert_eq!(stored, job);
        assert_eq!(
            serde_json::to_string(&stored.payload).unwrap(),
            serde_json::to_string(&job.payload).unwrap(),
            "the same text"
        );
        store.close().await;
    })
    .await;
}

#[test]
fn test_urls_keep_everything_but_the_database() {
    assert_eq!(
        url_for_database("postgres://u:p@h:5432/postgres?sslmode=require", "x"),
        "postgres://u:p@h:5432/x?sslmode=require"
    );
    assert_eq!(url_for_database("postgres://h", "x"), "postgres://h/x");
}

/// A claim kept in `task_queue` (a lone job's first attempts, `pending_claims`) changes no column
/// an index holds: the server writes each claimed row beside the old one (a HOT update) and adds
/// no index entry. Checked on the server's own count of updates and HOT updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_kept_in_the_queue_are_hot_updates() {
    with_database(|database| async move {
        let store = connect(&database).await;
        let trees = lone_jobs(200);
        store.insert_jobs(&trees).await.unwrap();
        assert_eq!(store.claim_tasks(&claim_request("w".into(), 200), at(30_000)).await.unwrap().len(), 200);
        let mut conn = PgConnection::connect(&database.url).await.unwrap();
        // The store's session hands its counts to the statistics once idle (up to 10 s later).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (updated, hot): (i64, i64) =
                sqlx::query_as("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'task_queue'")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            if updated >= 200 {
                assert_eq!(hot, updated, "every claim kept in the queue is a HOT update");
                break;
            }
            assert!(Instant::now() < deadline, "the statistics never counted the claims ({updated} updates)");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        store.close().await;
    })
    .await;
}

/// The pool hands out connections without a round trip to check them, except those that may be
/// broken: when every session of the store is cut (as a server restart does), the change listener
/// finds the database again, and the pooled connections opened before are checked and replaced,
/// so no store call fails on one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_cut_by_an_outage_are_replaced_before_use() {
    with_database(|database| async move {
        let store = connect(&database).await;
        let trees = lone_jobs(20);
        store.insert_jobs(&trees).await.unwrap();
        let job = &trees[0].job;
        // Several pooled connections, all idle now.
        let reads: Vec<_> = (0..4).map(|_| store.get_job(&job.project_id, &job.job_id)).collect();
        for read in futures_util::future::join_all(reads).await {
            assert!(read.unwrap().is_some());
        }
        let mut admin = PgConnection::connect(&url_for_database(&database.url, "postgres")).await.unwrap();
        let cut: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database.name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert!(cut.len() >= 2, "the listener's session and pooled ones were cut ({} sessions)", cut.len());
        // The listener sees its session go and reconnects at once.
        tokio::time::sleep(Duration::from_secs(1)).await;
        for round in 0..10 {
            let reads: Vec<_> = (0..4).map(|_| store.get_job(&job.project_id, &job.job_id)).collect();
            for read in futures_util::future::join_all(reads).await {
                let read = read.unwrap_or_else(|error| panic!("round {round}: a cut connection was used: {error}"));
                assert!(read.is_some());
            }
        }
        assert_eq!(store.claim_tasks(&claim_request("w".into(), 20), at(30_000)).await.unwrap().len(), 20);
        store.close().await;
    })
    .await;
}

/// A claim reads its candidates' job rows in the statement that takes their queue rows, and keeps
/// a row only when its version is the one the queue row names; otherwise (a write that committed
/// while the statement ran) it reads the row again. Here the queue row names another version: the
/// claim still takes the job, as it now stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_whose_row_disagrees_with_its_queue_row_is_read_again() {
    with_database(|database| async move {
        let store = connect(&database).await;
        let job = new_job(0, Execution::Sequential, 0);
        store.insert_job(&job, None).await.unwrap();
        let mut other = PgConnection::connect(&database.url).await.unwrap();
        let (queued,): (i64,) = sqlx::query_as("SELECT version FROM task_queue WHERE job_id = $1")
            .bind(job.job_id.as_str())
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert_eq!(queued, job.version, "the queue row names the job row's version");
        sqlx::query("UPDATE task_queue SET version = version + 1 WHERE job_id = $1")
            .bind(job.job_id.as_str())
            .execute(&mut other)
            .await
            .unwrap();
        let claimed = store.claim_tasks(&claim_request("w".into(), 1), at(30_000)).await.unwrap();
        assert_eq!(claimed.len(), 1, "the candidate was read again and taken");
        assert_eq!(claimed[0].task_id, job.job_id);
        assert_eq!(claimed[0].task().attempt, 1);
        store.close().await;
    })
    .await;
}

/// A node keeps the claims it kept in `task_queue` for their reports (`kept_claims`), and writes
/// a report on one only while the job's row is still the row the claim was decided on. Here
/// another node cancels one claimed job and heartbeats another (a new expiry only: the job's
/// version stays, while its row moves on from the row the claim read) between the claim and the
/// reports: the first report is refused on the cancelled job,
/// the second applies to the job as the other node's heartbeat left it (its lease's expiry),
/// and the third, untouched, to the job as claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_on_a_claim_another_node_wrote_since_reads_the_job_again() {
    with_database(|database| async move {
        let (here, there) = (connect(&database).await, connect(&database).await);
        here.insert_jobs(&lone_jobs(3)).await.unwrap();
        let claimed = here.claim_tasks(&claim_request("w".into(), 3), at(1_000)).await.unwrap();
        assert_eq!(claimed.len(), 3);
        let token = |i: usize| claimed[i].task().lease.as_ref().unwrap().token.clone();

        let cancelled = there.apply_event(&project(), &claimed[0].task_id, &JobEvent::Cancel, at(1_100)).await.unwrap();
        assert_eq!(cancelled.status, JobStatus::Cancelled);
        let extended = at(900_000);
        let beat = JobEvent::Heartbeat { lease_token: token(1), lease_expires_at: Some(extended), message: None };
        let beaten = there
            .apply_task_events(
                &[TaskEvent { job_id: claimed[1].task_id.clone(), event: beat }],
                &TaskScope::default(),
                at(1_200),
            )
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        assert_eq!(beaten.version, claimed[1].task().version, "a new expiry alone keeps the version");

        let note = JobEvent::Heartbeat { lease_token: token(1), lease_expires_at: None, message: Some("here".into()) };
        let events = vec![
            TaskEvent { job_id: claimed[0].task_id.clone(), event: complete(token(0)) },
            TaskEvent { job_id: claimed[1].task_id.clone(), event: note },
            TaskEvent { job_id: claimed[2].task_id.clone(), event: complete(token(2)) },
        ];
        let answers = here.apply_task_events(&events, &TaskScope::default(), at(1_300)).await.unwrap();
        assert!(answers[0].is_err(), "a cancelled job cannot complete: {:?}", answers[0]);
        let noted = answers[1].as_ref().expect("the heartbeat applies");
        assert_eq!(noted.message.as_deref(), Some("here"));
        assert_eq!(
            noted.lease.as_ref().map(|lease| lease.expires_at),
            Some(extended),
            "applied to the job as the other node left it"
        );
        let done = answers[2].as_ref().expect("the untouched job completes");
        assert_eq!((done.status, done.version), (JobStatus::Succeeded, claimed[2].task().version + 1));
        for (i, answer) in answers.iter().enumerate() {
            let stored = here.get_job(&project(), &claimed[i].task_id).await.unwrap().unwrap();
            match answer {
                Ok(job) => assert_eq!(&stored, job),
                Err(_) => assert_eq!(stored, cancelled),
            }
        }
        here.close().await;
        there.close().await;
    })
    .await;
}

/// `claim_offered` takes a lone job this node has just committed by one statement, only while its
/// queue row holds no claim and the job's row has not been written since; otherwise it answers
/// `None` (the caller claims as usual). The claim is kept (`kept_claims`) for the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offered_job_is_claimed_directly_unless_claimed_or_written_since() {
    with_database(|database| async move {
        let store = connect(&database).await;
        let jobs: Vec<Job> = (0..3).map(|i| new_job(0, Execution::Sequential, i)).collect();
        for job in &jobs {
            store.insert_job(job, None).await.unwrap();
        }
        let request = claim_request("w".into(), 1);

        let taken = store.claim_offered(&request, &jobs[0], at(1_000)).await.unwrap().expect("taken directly");
        assert_eq!(
            (taken.task_id.clone(), taken.task().status, taken.task().attempt),
            (jobs[0].job_id.clone(), JobStatus::Running, 1)
        );
        assert_eq!(store.get_job(&project(), &jobs[0].job_id).await.unwrap().unwrap(), *taken.tree);
        assert!(store.claim_offered(&request, &jobs[0], at(1_000)).await.unwrap().is_none(), "claimed already");
        let token = taken.task().lease.as_ref().unwrap().token.clone();
        let done = store
            .apply_task_events(
                &[TaskEvent { job_id: jobs[0].job_id.clone(), event: complete(token) }],
                &TaskScope::default(),
                at(1_100),
            )
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);

        store.apply_event(&project(), &jobs[1].job_id, &JobEvent::Cancel, at(1_000)).await.unwrap();
        assert!(store.claim_offered(&request, &jobs[1], at(1_000)).await.unwrap().is_none(), "written since");

        let mut other_service = request.clone();
        other_service.services = vec![ServiceName::parse("waf").unwrap()];
        assert!(
            store.claim_offered(&other_service, &jobs[2], at(1_000)).await.unwrap().is_none(),
            "not taken by the filters"
        );
        let claimed = store.claim_tasks(&request, at(1_000)).await.unwrap();
        assert_eq!(
            claimed.iter().map(|c| &c.task_id).collect::<Vec<_>>(),
            vec![&jobs[2].job_id],
            "only the third is left"
        );
        store.close().await;
    })
    .await;
}

/// Events on kept claims are written by a statement of their own before the rest; when the rest
/// then fail (here a root held past the statement timeout), the written ones stay answered and
/// each of the others is answered `Unavailable`, nothing written for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_locked_part_fails_still_answers_its_kept_part() {
    with_database(|database| async move {
        let options = PgOptions { statement_timeout: Some(Duration::from_millis(300)), ..small_pool() };
        let here = PgStore::connect(&database.url, options).await.unwrap();
        let there = connect(&database).await;
        here.insert_jobs(&lone_jobs(2)).await.unwrap();
        let claimed = here.claim_tasks(&claim_request("w".into(), 2), at(1_000)).await.unwrap();
        assert_eq!(claimed.len(), 2);
        let token = |i: usize| claimed[i].task().lease.as_ref().unwrap().token.clone();
        // The second job's row moves on (another node's write), and its root is then held.
        let note = JobEvent::Heartbeat { lease_token: token(1), lease_expires_at: None, message: Some("there".into()) };
        there
            .apply_task_events(
                &[TaskEvent { job_id: claimed[1].task_id.clone(), event: note }],
                &TaskScope::default(),
                at(1_100),
            )
            .await
            .unwrap();
        let mut holder = hold_rows(&database, &["jobs"], &claimed[1].task_id).await;

        let events: Vec<TaskEvent> =
            (0..2).map(|i| TaskEvent { job_id: claimed[i].task_id.clone(), event: complete(token(i)) }).collect();
        let answers = here.apply_task_events(&events, &TaskScope::default(), at(1_200)).await.unwrap();
        assert_eq!(answers[0].as_ref().map(|job| job.status).ok(), Some(JobStatus::Succeeded));
        assert!(matches!(answers[1], Err(StoreError::Unavailable(_))), "{:?}", answers[1]);
        holder.execute("COMMIT").await.unwrap();
        let stored = |i: usize| {
            let (store, id) = (&there, claimed[i].task_id.clone());
            async move { store.get_job(&project(), &id).await.unwrap().unwrap() }
        };
        assert_eq!(stored(0).await.status, JobStatus::Succeeded);
        assert_eq!(stored(1).await.status, JobStatus::Running, "nothing was written for the other");
        here.close().await;
        there.close().await;
    })
    .await;
}
