//! The PostgreSQL backend (13+): one database shared by any number of jobd nodes.
//!
//! Concurrency rests on one rule: a job row is locked or written only by a transaction that holds
//! the lock on its tree's root row. `apply_event` waits for that one root lock (`FOR UPDATE`), so
//! events on one tree serialize. Claims and pruning take roots with `FOR UPDATE SKIP LOCKED`, so
//! they never wait for anyone; after taking a root they reload the tree and let
//! `jobd_core::apply` decide, so a candidate another node claimed a moment ago is refused, never
//! handed out twice. No transaction waits for a lock while holding one another transaction can
//! wait for, so there are no deadlocks.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jobd_core::{
    apply, Cursor, Direction, Execution, Job, JobEvent, JobId, JobQuery, JobStatus, JobType, Lease, ProjectId,
    ServiceName, Timestamp,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Postgres, QueryBuilder, Row};

use crate::codec::{corrupt, from_json, from_millis, millis, opt_from_millis};
use crate::postgres_rows::{load_trees, RowColumns};
use crate::{
    ChangeNotice, ClaimRequest, ClaimedTask, IdempotencyKey, Inserted, JobRef, JobStore, NewTree, QueueStat, Result,
    StoreError, TaskEvent, TaskScope, MAX_BATCH,
};
use std::collections::HashMap;

pub(crate) const JOB_COLUMNS: &str =
    "seq, job_id, parent_job_id, project_id, enterprise_project_id, service, job_type, \
     status, message, resource_id, entities, error_code, error_msg, payload, result, simulate, \
     created_at, started_at, ended_at, updated_at, version, priority, run_at, available_at, max_attempts, \
     attempt, retry_backoff, timeout_seconds, execution, lease_worker_id, lease_token, lease_expires_at, \
     on_failure, phase, compensation";

/// How many times one claim looks for candidates again after some it took turned out to have been
/// claimed (by a transaction that committed after its query began) in the meantime.
const CLAIM_ROUNDS: usize = 4;

/// How a node uses the database. TLS and everything else about the connection (`sslmode`,
/// `sslrootcert`, `application_name`, `options`, ...) come from the URL.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections this node keeps at most.
    pub max_connections: u32,
    /// How long a call waits for a free (or new) connection before failing with `Unavailable`.
    pub acquire_timeout: Duration,
    /// The server cancels any statement that runs longer (`Unavailable`); `None` keeps the
    /// server's (or the URL's) setting. Migrations run without it.
    pub statement_timeout: Option<Duration>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_secs(30)),
        }
    }
}

#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    changes: tokio::sync::broadcast::Sender<ChangeNotice>,
    /// While this node leads maintenance: the session holding the leader's advisory lock.
    leader_session: Arc<tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<Postgres>>>>,
    /// Whether the database can be reached, as the change listener last saw it.
    reachability: Arc<Reachability>,
    /// Sends this node's changes to the others.
    notifier: Notifier,
}

/// Whether this node can reach the database. The change listener's session is the first to learn
/// that the server went away (its connection closes when the server stops, restarts or crashes),
/// and the first to get back in. While the database is unreachable, every store call fails at once
/// with `Unavailable` (HTTP `503` with `Retry-After`, `/readyz` not ready) instead of waiting out
/// the pool's acquire timeout on a server that is not there; the listener's reconnect lifts that.
#[derive(Debug, Default)]
struct Reachability {
    lost: std::sync::atomic::AtomicBool,
}

impl Reachability {
    fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Answers whether this changed it.
    fn set_lost(&self, lost: bool) -> bool {
        self.lost.swap(lost, std::sync::atomic::Ordering::AcqRel) != lost
    }
}

/// How long one attempt of the listener to reconnect waits for a connection: short, so that it
/// tries again soon after the server is back (the pool's own retries back off up to seconds).
const LISTENER_CONNECT_ATTEMPT: Duration = Duration::from_secs(2);

/// The advisory lock key of the maintenance leader (any fixed number; "jobd" in ASCII).
const MAINTENANCE_LOCK: i64 = 0x6a6f_6264;

/// The channel other nodes' changes arrive on (`NOTIFY`, delivered when the writer commits).
const CHANGES_CHANNEL: &str = "jobd_changes";

/// Tells the other nodes which trees changed, once the writing transaction has committed. One task
/// gathers the notices that queue up while it sends and sends them all in one statement: notifying
/// costs one short transaction per gathering instead of a step inside every write, whose commit
/// would then take PostgreSQL's notification lock (it serialises the commits of all notifying
/// transactions, each waiting for its WAL flush). A node that dies between a commit and its notice
/// leaves the other nodes to see that change at their periodic re-read.
#[derive(Clone)]
struct Notifier {
    /// This store's name in change notices, so its own listener can skip them.
    node: Arc<str>,
    queue: tokio::sync::mpsc::UnboundedSender<String>,
}

impl Notifier {
    /// Starts the sending task; it ends when the last store clone is dropped.
    fn start(pool: PgPool, node: Arc<str>) -> Self {
        let (queue, mut pending) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut payloads = Vec::new();
            while pending.recv_many(&mut payloads, 1000).await > 0 {
                payloads.sort_unstable();
                payloads.dedup();
                let sent = sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
                    .bind(CHANGES_CHANNEL)
                    .bind(&payloads)
                    .execute(&pool)
                    .await;
                if let Err(error) = sent {
                    tracing::warn!(%error, changes = payloads.len(), "cannot notify the other nodes; they will re-read");
                }
                payloads.clear();
            }
        });
        Notifier { node, queue }
    }

    fn changed(&self, tree: &Job) {
        let _ = self.queue.send(format!("{} {} {}", self.node, tree.project_id, tree.job_id));
    }
}

/// Listens for other nodes' changes and hands them to `changes`, reconnecting when the database
/// goes away; ends when the store is dropped. Keeps `reachability` up to date on the way.
fn spawn_listener(
    pool: PgPool,
    node: Arc<str>,
    changes: tokio::sync::broadcast::WeakSender<ChangeNotice>,
    reachability: Arc<Reachability>,
) {
    /// Why one listening session ended.
    enum Ended {
        /// The store was dropped: stop.
        StoreDropped,
        /// The connection closed (the server stopped, restarted or crashed).
        ConnectionLost,
    }
    tokio::spawn(async move {
        loop {
            let listener = async {
                let mut listener =
                    match tokio::time::timeout(LISTENER_CONNECT_ATTEMPT, PgListener::connect_with(&pool)).await {
                        Ok(connected) => connected?,
                        Err(_) => return Err(sqlx::Error::PoolTimedOut),
                    };
                // Report a lost connection at once (`try_recv` answers `None`) rather than
                // reconnecting inside `recv` for as long as the pool's acquire timeout.
                listener.eager_reconnect(false);
                listener.listen(CHANGES_CHANNEL).await?;
                if reachability.set_lost(false) {
                    tracing::info!("PostgreSQL is reachable again");
                }
                loop {
                    let Some(notification) = listener.try_recv().await? else {
                        return Ok::<Ended, sqlx::Error>(Ended::ConnectionLost);
                    };
                    let Some(changes) = changes.upgrade() else { return Ok(Ended::StoreDropped) };
                    let mut parts = notification.payload().split(' ');
                    let (Some(from), Some(project), Some(job)) = (parts.next(), parts.next(), parts.next()) else {
                        continue;
                    };
                    if from == &*node {
                        continue;
                    }
                    if let (Ok(project_id), Ok(job_id)) = (ProjectId::parse(project), JobId::parse(job)) {
                        let _ = changes.send(ChangeNotice { project_id, job_id });
                    }
                }
            };
            match listener.await {
                Ok(Ended::StoreDropped) => return,
                Ok(Ended::ConnectionLost) => {
                    if pool.is_closed() || changes.upgrade().is_none() {
                        return;
                    }
                    if reachability.set_lost(true) {
                        tracing::warn!("lost the connection to PostgreSQL; answering 503 until it is back");
                    }
                }
                Err(error) => {
                    if pool.is_closed() || changes.upgrade().is_none() {
                        return;
                    }
                    let error = StoreError::from(error);
                    let unreachable = error.is_unavailable();
                    if unreachable && reachability.set_lost(true) {
                        tracing::warn!(%error, "cannot reach PostgreSQL; answering 503 until it is back");
                    } else if !unreachable {
                        tracing::warn!(%error, "the PostgreSQL change listener failed; reconnecting");
                    }
                    // Connection attempts wait up to `LISTENER_CONNECT_ATTEMPT` themselves; this
                    // only keeps an error that comes at once (TLS, authentication) from spinning.
                    tokio::time::sleep(Duration::from_millis(if unreachable { 200 } else { 1000 })).await;
                }
            }
        }
    });
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?sslmode=...`), applies
    /// pending migrations, and opens the pool. Safe when several nodes start at once: migrations
    /// run under a PostgreSQL advisory lock.
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)?;
        Self::connect_with(connect, options).await
    }

    /// As `connect`, with the connection already described.
    pub async fn connect_with(connect: PgConnectOptions, options: PgOptions) -> Result<Self> {
        migrate(&connect, options.acquire_timeout).await?;
        // jobd's statements touch a few rows each by index, in batches of up to 1,000 keys: JIT
        // compiling them costs more than running them (200 ms seen for a 1,000-key batch), and
        // with the default random_page_cost the planner reads a whole table where 1,000 index
        // probes of cached pages take a tenth of the time. Both apply to jobd's sessions only.
        let mut pooled = connect.options([("jit", "off"), ("random_page_cost", "1.1")]);
        if let Some(timeout) = options.statement_timeout {
            pooled = pooled.options([("statement_timeout", format!("{}ms", timeout.as_millis().max(1)))]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(pooled)
            .await?;
        let node: Arc<str> = Arc::from(uuid::Uuid::new_v4().simple().to_string());
        let (changes, _) = tokio::sync::broadcast::channel(4096);
        let reachability = Arc::new(Reachability::default());
        spawn_listener(pool.clone(), node.clone(), changes.downgrade(), reachability.clone());
        let notifier = Notifier::start(pool.clone(), node.clone());
        Ok(PgStore { pool, changes, leader_session: Arc::new(tokio::sync::Mutex::new(None)), reachability, notifier })
    }

    /// The pool, unless the database is known to be unreachable right now: then `Unavailable` at
    /// once (see `Reachability`).
    pub(crate) fn pool(&self) -> Result<&PgPool> {
        if self.reachability.is_lost() {
            return Err(StoreError::Unavailable("PostgreSQL is unreachable; reconnecting".to_owned()));
        }
        Ok(&self.pool)
    }

    /// Closes every connection; later calls fail with `Unavailable`.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Applies pending migrations on a connection of its own, closed afterwards.
///
/// sqlx's migrator takes `pg_advisory_lock` (keyed by the database name) before it even creates
/// `_sqlx_migrations`, and releases it when done, so nodes starting together apply each migration
/// once, one after another; each migration runs in its own transaction. The lock belongs to the
/// session, and the migrator skips the unlock when a migration fails: closing the connection here
/// ends the session, which releases the lock on every path.
async fn migrate(connect: &PgConnectOptions, acquire_timeout: Duration) -> Result<()> {
    // One direct connection first: it fails at once, with the real reason ("connection refused",
    // "password authentication failed", a TLS error), where a pool would only time out.
    connect.connect().await?.close().await?;
    // Waiting for another node's migrations, or running a long one, is not a stuck statement.
    let unbounded = connect.clone().options([("statement_timeout", "0")]);
    // A pool of one rather than a bare connection: sqlx's migrator future is `Send` only so.
    let single =
        PgPoolOptions::new().max_connections(1).acquire_timeout(acquire_timeout).connect_with(unbounded).await?;
    let outcome = sqlx::migrate!("./migrations/postgres").run(&single).await;
    single.close().await;
    Ok(outcome?)
}

/// A count stored as BIGINT, back to the domain's `u32`.
fn count(row: &PgRow, column: &str) -> Result<u32> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|e| corrupt(column, e))
}

fn enum_from_text<T: serde::de::DeserializeOwned>(row: &PgRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_value(serde_json::Value::String(text)).map_err(|e| corrupt(column, e))
}

pub(crate) fn job_from_row(row: &PgRow) -> Result<Job> {
    let parent: Option<String> = row.try_get("parent_job_id")?;
    let timeout_seconds: Option<i64> = row.try_get("timeout_seconds")?;
    Ok(Job {
        job_id: JobId::parse(row.try_get("job_id")?).map_err(|e| corrupt("job_id", e))?,
        parent_job_id: parent.map(|p| JobId::parse(&p)).transpose().map_err(|e| corrupt("parent_job_id", e))?,
        project_id: ProjectId::parse(row.try_get("project_id")?).map_err(|e| corrupt("project_id", e))?,
        enterprise_project_id: row.try_get("enterprise_project_id")?,
        service: ServiceName::parse(row.try_get("service")?).map_err(|e| corrupt("service", e))?,
        job_type: JobType::parse(row.try_get("job_type")?).map_err(|e| corrupt("job_type", e))?,
        status: JobStatus::from_str(row.try_get("status")?).map_err(|e| corrupt("status", e))?,
        message: row.try_get("message")?,
        resource_id: row.try_get("resource_id")?,
        entities: from_json("entities", row.try_get("entities")?)?.unwrap_or_default(),
        error_code: row.try_get("error_code")?,
        error_msg: row.try_get("error_msg")?,
        payload: from_json("payload", row.try_get("payload")?)?,
        result: from_json("result", row.try_get("result")?)?,
        simulate: from_json("simulate", row.try_get("simulate")?)?,
        created_at: from_millis(row.try_get("created_at")?)?,
        started_at: opt_from_millis(row.try_get("started_at")?)?,
        ended_at: opt_from_millis(row.try_get("ended_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
        version: row.try_get("version")?,
        priority: row.try_get("priority")?,
        run_at: opt_from_millis(row.try_get("run_at")?)?,
        available_at: from_millis(row.try_get("available_at")?)?,
        max_attempts: count(row, "max_attempts")?,
        attempt: count(row, "attempt")?,
        retry_backoff: from_json("retry_backoff", row.try_get("retry_backoff")?)?.unwrap_or_default(),
        timeout_seconds: timeout_seconds.map(u32::try_from).transpose().map_err(|e| corrupt("timeout_seconds", e))?,
        execution: Execution::parse(row.try_get("execution")?).ok_or_else(|| corrupt("execution", "unknown value"))?,
        lease: match (
            row.try_get::<Option<String>, _>("lease_worker_id")?,
            row.try_get::<Option<String>, _>("lease_token")?,
            row.try_get::<Option<i64>, _>("lease_expires_at")?,
        ) {
            (Some(worker_id), Some(token), Some(expires_at)) => {
                Some(Lease { worker_id, token, expires_at: from_millis(expires_at)? })
            }
            _ => None,
        },
        on_failure: enum_from_text(row, "on_failure")?,
        phase: enum_from_text(row, "phase")?,
        compensation: from_json("compensation", row.try_get("compensation")?)?,
        sub_jobs: Vec::new(),
    })
}

fn job_ref(row: &PgRow) -> Result<JobRef> {
    Ok(JobRef {
        project_id: ProjectId::parse(row.try_get("project_id")?).map_err(|e| corrupt("project_id", e))?,
        job_id: JobId::parse(row.try_get("job_id")?).map_err(|e| corrupt("job_id", e))?,
    })
}

/// Writes every row of a tree that changed. The caller holds the tree's root lock.
async fn write_tree_changes(conn: &mut PgConnection, before: &Job, after: &Job) -> Result<()> {
    let mut rows = RowColumns::default();
    rows.push_changes(before, after);
    rows.update(conn).await
}

async fn insert_tree(conn: &mut PgConnection, job: &Job) -> Result<()> {
    let mut rows = RowColumns::default();
    rows.push_new_tree(job)?;
    rows.insert(conn).await
}

/// How `load_tree` locks the rows it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TreeLock {
    /// Plain reads (inside a snapshot transaction, for a consistent tree).
    None,
    /// Keeps writers out until the transaction ends.
    Share,
    /// The tree is ours to change: waits for the current holder.
    Update,
}

impl TreeLock {
    fn clause(self) -> &'static str {
        match self {
            TreeLock::None => "",
            TreeLock::Share => " FOR SHARE",
            TreeLock::Update => " FOR UPDATE",
        }
    }
}

/// The whole tree a job (or sub-job) of this project belongs to: its root first (locked first),
/// then the root's sub-jobs in order.
async fn load_tree(
    conn: &mut PgConnection,
    project_id: &ProjectId,
    job_id: &JobId,
    lock: TreeLock,
) -> Result<Option<Job>> {
    let root = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = \
         (SELECT COALESCE(parent_job_id, job_id) FROM jobs WHERE job_id = $1 AND project_id = $2){}",
        lock.clause()
    ))
    .bind(job_id.as_str())
    .bind(project_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(root) = root else { return Ok(None) };
    let mut root = job_from_row(&root)?;
    let subs = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE parent_job_id = $1 ORDER BY position{}",
        lock.clause()
    ))
    .bind(root.job_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    root.sub_jobs = subs.iter().map(job_from_row).collect::<Result<_>>()?;
    Ok(root.find(job_id).is_some().then_some(root))
}

/// Loads the sub-jobs of the given parents and attaches them in order.
async fn attach_sub_jobs(conn: &mut PgConnection, parents: &mut [Job]) -> Result<()> {
    if parents.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = parents.iter().map(|p| p.job_id.to_string()).collect();
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE parent_job_id = ANY($1) ORDER BY parent_job_id, position"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let index: std::collections::HashMap<JobId, usize> =
        parents.iter().enumerate().map(|(i, p)| (p.job_id.clone(), i)).collect();
    for row in &rows {
        let sub = job_from_row(row)?;
        if let Some(&i) = sub.parent_job_id.as_ref().and_then(|parent_id| index.get(parent_id)) {
            parents[i].sub_jobs.push(sub);
        }
    }
    Ok(())
}

/// `AND column = ANY(values)`; an empty value also matches a job without one (NULL).
fn push_any(builder: &mut QueryBuilder<'_, Postgres>, column: &str, values: impl Iterator<Item = String>) {
    let values: Vec<String> = values.collect();
    if values.is_empty() {
        return;
    }
    let or_null = values.iter().any(String::is_empty);
    builder.push(format!(" AND ({column} = ANY(")).push_bind(values).push(")");
    if or_null {
        builder.push(format!(" OR {column} IS NULL"));
    }
    builder.push(")");
}

/// The filters of a claim request, on the task columns of `table` (an alias, or `jobs`).
fn push_claim_filters(builder: &mut QueryBuilder<'_, Postgres>, table: &str, request: &ClaimRequest) {
    builder.push(format!(" AND {table}.simulated = ")).push_bind(request.simulated);
    if let Some(projects) = &request.project_ids {
        if projects.is_empty() {
            builder.push(" AND FALSE");
        }
        push_any(builder, &format!("{table}.project_id"), projects.iter().map(|p| p.to_string()));
    }
    if let Some(enterprise_projects) = &request.enterprise_project_ids {
        if enterprise_projects.is_empty() {
            builder.push(" AND FALSE");
        }
        push_any(builder, &format!("{table}.enterprise_project_id"), enterprise_projects.iter().cloned());
    }
    // One service by equality: the claim index (simulated, service, priority, due_at, seq) then
    // hands out rows in claim order and the scan stops at the limit; `= ANY` of one value would
    // make the planner sort every waiting task.
    match request.services.as_slice() {
        [service] => {
            builder.push(format!(" AND {table}.service = ")).push_bind(service.to_string());
        }
        services => push_any(builder, &format!("{table}.service"), services.iter().map(|s| s.to_string())),
    }
    push_any(builder, &format!("{table}.job_type"), request.job_types.iter().cloned());
}

/// A task a claim may take, and the root of its tree (locked by the claim).
struct Candidate {
    job_id: JobId,
    root_id: JobId,
}

/// The job columns of the row aliased `r` (a root a statement locks).
static ROOT_COLUMNS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| JOB_COLUMNS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", "));

/// Whether the locked root `r` has sub-jobs. Sub-jobs are created with their root and never
/// added later, so the statement's snapshot answers it as well as a later one would.
/// (A `LIMIT` subquery, not `EXISTS`: the planner may run an `EXISTS` as a hashed subplan that
/// reads every job.)
const HAS_SUB_JOBS: &str =
    "(SELECT TRUE FROM jobs AS s WHERE s.parent_job_id = r.job_id LIMIT 1) IS NOT NULL AS has_sub_jobs";

/// Root rows a statement has just locked (each as locked, that is as the last committed write
/// left it), completed into trees: the sub-jobs of those that have any are read by one more
/// statement, after the lock, so they are as current as the root.
async fn locked_trees(conn: &mut PgConnection, rows: &[PgRow]) -> Result<HashMap<JobId, Job>> {
    let mut trees: HashMap<JobId, Job> = HashMap::with_capacity(rows.len());
    let mut with_sub_jobs: Vec<Job> = Vec::new();
    for row in rows {
        let root = job_from_row(row)?;
        if trees.contains_key(&root.job_id) || with_sub_jobs.iter().any(|r| r.job_id == root.job_id) {
            continue; // two tasks of one tree
        }
        if row.try_get::<bool, _>("has_sub_jobs")? {
            with_sub_jobs.push(root);
        } else {
            trees.insert(root.job_id.clone(), root);
        }
    }
    attach_sub_jobs(conn, &mut with_sub_jobs).await?;
    trees.extend(with_sub_jobs.into_iter().map(|tree| (tree.job_id.clone(), tree)));
    Ok(trees)
}

/// Up to `limit` claimable tasks not yet `tried`, best first, with their roots locked by this
/// transaction (`SKIP LOCKED`: trees another transaction holds are passed over, not waited for)
/// and loaded. Only roots are locked here, so this never holds a sub-job row without its root.
async fn lock_claim_candidates(
    conn: &mut PgConnection,
    request: &ClaimRequest,
    now: Timestamp,
    tried: &[String],
    limit: usize,
) -> Result<(Vec<Candidate>, HashMap<JobId, Job>)> {
    let now = millis(&now);
    let mut builder = QueryBuilder::<Postgres>::new(format!(
        "SELECT t.job_id AS task_id, {HAS_SUB_JOBS}, {} FROM task_queue AS t \
         JOIN jobs AS r ON r.job_id = t.root_id WHERE t.runnable",
        *ROOT_COLUMNS
    ));
    push_claim_filters(&mut builder, "t", request);
    builder.push(" AND t.due_at <= ").push_bind(now);
    if !tried.is_empty() {
        builder.push(" AND t.job_id <> ALL(").push_bind(tried.to_vec()).push(")");
    }
    builder
        .push(" ORDER BY t.priority DESC, t.due_at, t.seq LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .push(" FOR UPDATE OF r SKIP LOCKED");
    let rows = builder.build().fetch_all(&mut *conn).await?;
    let candidates = rows
        .iter()
        .map(|row| {
            let id =
                |column: &str| -> Result<JobId> { JobId::parse(row.try_get(column)?).map_err(|e| corrupt(column, e)) };
            Ok(Candidate { job_id: id("task_id")?, root_id: id("job_id")? })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((candidates, locked_trees(conn, &rows).await?))
}

/// Idempotency keys of a batch insert on PostgreSQL.
mod idempotency {
    use super::*;
    pub(super) use crate::batch::KeyPlan;

    pub(super) fn plan(trees: &[NewTree]) -> Result<KeyPlan> {
        KeyPlan::new(trees)
    }

    /// Settles every first use of a key in the batch: a key stored before answers its job
    /// (`Existing`), or fails the batch (`KeyConflict`) when the request differs; the others are
    /// recorded for the jobs this batch creates. Another transaction may record the same key at
    /// the same moment: our insert waits for its commit and skips the key, and the next round
    /// finds its job.
    pub(super) async fn resolve(
        tx: &mut PgConnection,
        trees: &[NewTree],
        plan: &KeyPlan,
        answers: &mut [Option<Inserted>],
    ) -> Result<()> {
        let mut pending: Vec<usize> = plan.first_uses.clone();
        for _ in 0..3 {
            let key = |index: &usize| trees[*index].idempotency.as_ref().expect("a first use has a key");
            let projects: Vec<String> = pending.iter().map(|i| key(i).project_id.to_string()).collect();
            let tokens: Vec<String> = pending.iter().map(|i| key(i).client_token.clone()).collect();
            let stored = sqlx::query(
                "SELECT k.project_id, k.client_token, k.request_hash, k.job_id FROM idempotency_keys AS k \
                 JOIN unnest($1::text[], $2::text[]) AS u(project_id, client_token) \
                 ON k.project_id = u.project_id AND k.client_token = u.client_token",
            )
            .bind(&projects)
            .bind(&tokens)
            .fetch_all(&mut *tx)
            .await?;
            let mut named: Vec<(usize, String)> = Vec::new();
            for row in &stored {
                let project: String = row.try_get("project_id")?;
                let token: String = row.try_get("client_token")?;
                let Some(index) = plan.first_use_of(&project, &token) else { continue };
                let hash: String = row.try_get("request_hash")?;
                if hash != key(&index).request_hash {
                    return Err(StoreError::KeyConflict { index });
                }
                named.push((index, row.try_get("job_id")?));
            }
            let roots: Vec<String> = named.iter().map(|(_, job_id)| job_id.clone()).collect();
            let existing = load_trees(&mut *tx, &roots).await?;
            let mut forgotten: Vec<usize> = Vec::new();
            for (index, job_id) in named {
                match JobId::parse(&job_id).ok().and_then(|id| existing.get(&id)) {
                    Some(tree) => answers[index] = Some(Inserted::Existing(Box::new(tree.clone()))),
                    // The job was pruned: the key is forgotten with it.
                    None => forgotten.push(index),
                }
            }
            if !forgotten.is_empty() {
                let projects: Vec<String> = forgotten.iter().map(|i| key(i).project_id.to_string()).collect();
                let tokens: Vec<String> = forgotten.iter().map(|i| key(i).client_token.clone()).collect();
                sqlx::query(
                    "DELETE FROM idempotency_keys AS k USING unnest($1::text[], $2::text[]) AS u(project_id, client_token) \
                     WHERE k.project_id = u.project_id AND k.client_token = u.client_token",
                )
                .bind(&projects)
                .bind(&tokens)
                .execute(&mut *tx)
                .await?;
            }
            pending.retain(|index| answers[*index].is_none());
            if pending.is_empty() {
                return Ok(());
            }
            let column = |f: fn(&IdempotencyKey, &Job) -> String| -> Vec<String> {
                pending.iter().map(|i| f(key(i), &trees[*i].job)).collect()
            };
            let created_at: Vec<i64> = pending.iter().map(|i| millis(&trees[*i].job.created_at)).collect();
            let recorded = sqlx::query(
                "INSERT INTO idempotency_keys (project_id, client_token, request_hash, job_id, created_at) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) \
                 ON CONFLICT DO NOTHING RETURNING project_id, client_token",
            )
            .bind(column(|k, _| k.project_id.to_string()))
            .bind(column(|k, _| k.client_token.clone()))
            .bind(column(|k, _| k.request_hash.clone()))
            .bind(column(|_, job| job.job_id.to_string()))
            .bind(created_at)
            .fetch_all(&mut *tx)
            .await?;
            let mut recorded_now = std::collections::HashSet::new();
            for row in &recorded {
                let project: String = row.try_get("project_id")?;
                let token: String = row.try_get("client_token")?;
                if let Some(index) = plan.first_use_of(&project, &token) {
                    recorded_now.insert(index);
                }
            }
            // Recorded keys belong to jobs this batch creates; the rest were recorded by
            // another transaction meanwhile and are looked up again.
            pending.retain(|index| !recorded_now.contains(index));
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::Conflict("idempotency keys (contended)".to_owned()))
    }
}

#[async_trait]
impl JobStore for PgStore {
    async fn insert_job(&self, job: &Job, idempotency: Option<&IdempotencyKey>) -> Result<Inserted> {
        let mut tx = self.pool()?.begin().await?;
        if let Some(key) = idempotency {
            // Another node may be inserting the same key: its row makes our insert wait for its
            // commit, then do nothing, and the next round finds its job.
            let mut recorded = false;
            for _ in 0..3 {
                let existing = sqlx::query(
                    "SELECT request_hash, job_id FROM idempotency_keys WHERE project_id = $1 AND client_token = $2",
                )
                .bind(key.project_id.as_str())
                .bind(&key.client_token)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = existing {
                    let hash: String = row.try_get("request_hash")?;
                    if hash != key.request_hash {
                        return Ok(Inserted::KeyConflict);
                    }
                    let job_id = JobId::parse(row.try_get("job_id")?).map_err(|e| corrupt("job_id", e))?;
                    match load_tree(&mut tx, &key.project_id, &job_id, TreeLock::Share).await? {
                        // A key names the top-level job it created: the tree is that job.
                        Some(tree) => return Ok(Inserted::Existing(Box::new(tree))),
                        // The job was pruned: the key is forgotten with it.
                        None => {
                            sqlx::query(
                                "DELETE FROM idempotency_keys WHERE project_id = $1 AND client_token = $2 \
                                 AND job_id = $3",
                            )
                            .bind(key.project_id.as_str())
                            .bind(&key.client_token)
                            .bind(job_id.as_str())
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_keys (project_id, client_token, request_hash, job_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(key.project_id.as_str())
                .bind(&key.client_token)
                .bind(&key.request_hash)
                .bind(job.job_id.as_str())
                .bind(millis(&job.created_at))
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 1 {
                    recorded = true;
                    break;
                }
            }
            if !recorded {
                return Err(StoreError::Conflict(format!("idempotency key {} (contended)", key.client_token)));
            }
        }
        insert_tree(&mut tx, job).await?;
        tx.commit().await?;
        self.notifier.changed(job);
        Ok(Inserted::Created)
    }

    async fn insert_jobs(&self, trees: &[NewTree]) -> Result<Vec<Inserted>> {
        let mut tx = self.pool()?.begin().await?;
        let plan = idempotency::plan(trees)?;
        let mut answers: Vec<Option<Inserted>> = vec![None; trees.len()];
        if !plan.first_uses.is_empty() {
            idempotency::resolve(&mut tx, trees, &plan, &mut answers).await?;
        }
        let mut rows = RowColumns::default();
        for (index, tree) in trees.iter().enumerate() {
            if plan.creates(index, &answers) {
                rows.push_new_tree(&tree.job)?;
            }
        }
        rows.insert(&mut tx).await?;
        tx.commit().await?;
        let answers = plan.finish(trees, answers);
        for (tree, answer) in trees.iter().zip(&answers) {
            if *answer == Inserted::Created {
                self.notifier.changed(&tree.job);
            }
        }
        Ok(answers)
    }

    async fn get_job(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Job>> {
        let mut tx = self.pool()?.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let tree = load_tree(&mut tx, project_id, job_id, TreeLock::None).await?;
        tx.commit().await?;
        let Some(tree) = tree else { return Ok(None) };
        if &tree.job_id == job_id {
            return Ok(Some(tree));
        }
        Ok(tree.sub_jobs.into_iter().find(|sub| &sub.job_id == job_id))
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>> {
        let mut builder = QueryBuilder::<Postgres>::new(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE parent_job_id IS NULL AND project_id = "
        ));
        builder.push_bind(query.project_id.as_str());
        if let Some(service) = &query.service {
            builder.push(" AND service = ").push_bind(service.as_str());
        }
        if let Some(eps) = &query.enterprise_project_ids {
            if eps.is_empty() {
                return Ok(Vec::new());
            }
            push_any(&mut builder, "enterprise_project_id", eps.iter().cloned());
        }
        push_any(&mut builder, "job_id", query.job_ids.iter().map(|id| id.to_string()));
        push_any(&mut builder, "job_type", query.job_types.iter().cloned());
        push_any(&mut builder, "status", query.statuses.iter().map(|s| s.as_str().to_owned()));
        push_any(&mut builder, "resource_id", query.resource_ids.iter().cloned());
        push_any(&mut builder, "error_code", query.error_codes.iter().cloned());
        if let Some(since) = &query.created_since {
            builder.push(" AND created_at >= ").push_bind(millis(since));
        }
        let (compare, order) = match query.direction {
            Direction::Older => ("<", "DESC"),
            Direction::Newer => (">", "ASC"),
        };
        if let Some(cursor) = &query.cursor {
            let at = millis(&cursor.created_at);
            builder
                .push(format!(" AND (created_at {compare} "))
                .push_bind(at)
                .push(" OR (created_at = ")
                .push_bind(at)
                .push(format!(" AND seq {compare} "))
                .push_bind(cursor.seq)
                .push("))");
        }
        builder.push(format!(" ORDER BY created_at {order}, seq {order} LIMIT ")).push_bind(i64::from(query.limit));
        // One snapshot for the page and its sub-jobs: no tree is read half before, half after a write.
        let mut tx = self.pool()?.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let rows = builder.build().fetch_all(&mut *tx).await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        if query.direction == Direction::Newer {
            jobs.reverse();
        }
        attach_sub_jobs(&mut tx, &mut jobs).await?;
        tx.commit().await?;
        Ok(jobs)
    }

    async fn project_of(&self, job_id: &JobId) -> Result<Option<ProjectId>> {
        let project: Option<String> = sqlx::query_scalar("SELECT project_id FROM jobs WHERE job_id = $1")
            .bind(job_id.as_str())
            .fetch_optional(self.pool()?)
            .await?;
        project.map(|p| ProjectId::parse(&p).map_err(|e| corrupt("project_id", e))).transpose()
    }

    async fn cursor_of(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Cursor>> {
        let row = sqlx::query(
            "SELECT created_at, seq FROM jobs WHERE job_id = $1 AND project_id = $2 AND parent_job_id IS NULL",
        )
        .bind(job_id.as_str())
        .bind(project_id.as_str())
        .fetch_optional(self.pool()?)
        .await?;
        row.map(|row| Ok(Cursor { created_at: from_millis(row.try_get("created_at")?)?, seq: row.try_get("seq")? }))
            .transpose()
    }

    async fn apply_event(
        &self,
        project_id: &ProjectId,
        job_id: &JobId,
        event: &JobEvent,
        now: Timestamp,
    ) -> Result<Job> {
        let mut tx = self.pool()?.begin().await?;
        let tree = load_tree(&mut tx, project_id, job_id, TreeLock::Update)
            .await?
            .ok_or_else(|| StoreError::NotFound(job_id.to_string()))?;
        let next = apply(&tree, job_id, event, now)?;
        write_tree_changes(&mut tx, &tree, &next).await?;
        tx.commit().await?;
        self.notifier.changed(&next);
        Ok(next)
    }

    async fn claim_tasks(&self, request: &ClaimRequest, now: Timestamp) -> Result<Vec<ClaimedTask>> {
        let wanted = (request.max_tasks as usize).min(MAX_BATCH);
        if wanted == 0 {
            return Ok(Vec::new());
        }
        let expires_at = now + chrono::Duration::seconds(i64::from(request.lease_seconds));
        // The claim must walk `task_queue_claimable` in order, lock each candidate's root through
        // its primary key, and stop at the limit. Whatever the statistics say (they lag behind a
        // queue that fills fast, or see every row runnable right after an analyse), a bitmap scan
        // or a hash join would read and sort every waiting task on each claim (170 ms at 100,000
        // waiting tasks, against 7 ms in index order). Set in the same round trip as `BEGIN`.
        let mut tx = self
            .pool()?
            .begin_with("BEGIN; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
            .await?;
        // Each tree as read (before) and with this batch's claims applied (after).
        let mut trees: HashMap<JobId, (Job, Job)> = HashMap::new();
        let mut claimed: Vec<(JobId, JobId)> = Vec::with_capacity(wanted);
        let mut tried: Vec<String> = Vec::new();
        for _ in 0..CLAIM_ROUNDS {
            // One statement picks the candidates, locks their roots and reads them; one more reads
            // the sub-jobs of those roots that have any.
            let (candidates, locked) =
                lock_claim_candidates(&mut tx, request, now, &tried, wanted - claimed.len()).await?;
            if candidates.is_empty() {
                break;
            }
            for (root_id, tree) in locked {
                trees.entry(root_id).or_insert_with(|| (tree.clone(), tree));
            }
            // The roots are ours now: the state machine decides on the trees as the last
            // committed write left them.
            let mut any_refused = false;
            for candidate in candidates {
                tried.push(candidate.job_id.to_string());
                let Some((_, current)) = trees.get_mut(&candidate.root_id) else {
                    any_refused = true;
                    continue;
                };
                let lease = Lease {
                    worker_id: request.worker_id.clone(),
                    token: uuid::Uuid::new_v4().simple().to_string(),
                    expires_at,
                };
                match apply(current, &candidate.job_id, &JobEvent::Claim { lease }, now) {
                    Ok(next) => {
                        *current = next;
                        claimed.push((candidate.root_id, candidate.job_id));
                    }
                    // Claimed (or finished) by a transaction that committed after the candidate
                    // query took its snapshot: skip it, never hand it out.
                    Err(error) => {
                        any_refused = true;
                        tracing::debug!(job_id = %candidate.job_id, %error, "claim candidate taken meanwhile");
                    }
                }
            }
            if !any_refused || claimed.len() == wanted {
                break;
            }
        }
        // One statement writes every changed row.
        let mut rows = RowColumns::default();
        for (before, after) in trees.values() {
            rows.push_changes(before, after);
        }
        rows.update(&mut tx).await?;
        tx.commit().await?;
        for (_, after) in trees.values() {
            if after.iter_tree().any(|job| claimed.iter().any(|(_, task)| task == &job.job_id)) {
                self.notifier.changed(after);
            }
        }
        Ok(claimed
            .into_iter()
            .map(|(root_id, task_id)| ClaimedTask { tree: trees[&root_id].1.clone(), task_id })
            .collect())
    }

    async fn apply_task_events(
        &self,
        events: &[TaskEvent],
        scope: &TaskScope,
        now: Timestamp,
    ) -> Result<Vec<Result<Job>>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let task_ids: Vec<String> = events.iter().map(|e| e.job_id.to_string()).collect();
        let mut tx = self.pool()?.begin().await?;
        // Every batch locks its roots in the same order (by id), so two batches never wait for
        // each other in a cycle; single events hold one root, claims and pruning never wait.
        let rows = sqlx::query(&format!(
            "SELECT {HAS_SUB_JOBS}, {} FROM jobs AS r WHERE r.job_id = ANY(ARRAY( \
             SELECT COALESCE(parent_job_id, job_id) FROM jobs WHERE job_id = ANY($1))) ORDER BY r.job_id FOR UPDATE",
            *ROOT_COLUMNS
        ))
        .bind(&task_ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut trees: HashMap<JobId, (Job, Job)> =
            locked_trees(&mut tx, &rows).await?.into_iter().map(|(id, tree)| (id, (tree.clone(), tree))).collect();
        let mut root_of: HashMap<String, JobId> = HashMap::with_capacity(task_ids.len());
        for (root_id, (tree, _)) in &trees {
            for job in tree.iter_tree() {
                root_of.insert(job.job_id.to_string(), root_id.clone());
            }
        }
        let mut answers = Vec::with_capacity(events.len());
        for (task_event, task_id) in events.iter().zip(&task_ids) {
            let job_id = &task_event.job_id;
            let current = root_of.get(task_id).and_then(|root_id| trees.get_mut(root_id)).map(|(_, after)| after);
            let answer = match current {
                Some(tree) if tree.find(job_id).is_some_and(|task| scope.allows(task)) => {
                    match apply(tree, job_id, &task_event.event, now) {
                        Ok(next) => {
                            *tree = next.clone();
                            Ok(next)
                        }
                        Err(refused) => Err(StoreError::from(refused)),
                    }
                }
                _ => Err(StoreError::NotFound(job_id.to_string())),
            };
            answers.push(answer);
        }
        let mut rows = RowColumns::default();
        for (before, after) in trees.values() {
            rows.push_changes(before, after);
        }
        rows.update(&mut tx).await?;
        tx.commit().await?;
        for (before, after) in trees.values() {
            if before != after {
                self.notifier.changed(after);
            }
        }
        Ok(answers)
    }

    async fn next_due_at(&self, request: &ClaimRequest) -> Result<Option<Timestamp>> {
        let mut builder =
            QueryBuilder::<Postgres>::new("SELECT MIN(q.due_at) AS due FROM task_queue AS q WHERE q.runnable");
        push_claim_filters(&mut builder, "q", request);
        let row = builder.build().fetch_one(self.pool()?).await?;
        opt_from_millis(row.try_get("due")?)
    }

    async fn list_timed_out(&self, now: Timestamp, limit: u32) -> Result<Vec<JobRef>> {
        let rows = sqlx::query(
            "SELECT project_id, job_id FROM jobs WHERE deadline_at IS NOT NULL AND deadline_at <= $1 \
             AND status IN ('PENDING', 'RUNNING') ORDER BY deadline_at LIMIT $2",
        )
        .bind(millis(&now))
        .bind(i64::from(limit))
        .fetch_all(self.pool()?)
        .await?;
        rows.iter().map(job_ref).collect()
    }

    async fn list_expired_last_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<JobRef>> {
        let rows = sqlx::query(
            "SELECT project_id, job_id FROM task_queue WHERE rescuable AND lease_expires_at <= $1 \
             ORDER BY lease_expires_at LIMIT $2",
        )
        .bind(millis(&now))
        .bind(i64::from(limit))
        .fetch_all(self.pool()?)
        .await?;
        rows.iter().map(job_ref).collect()
    }

    async fn prune(&self, cutoff: Timestamp, keys_cutoff: Timestamp, limit: u32) -> Result<u64> {
        let mut tx = self.pool()?.begin().await?;
        // Roots only, skipping any another transaction holds (a finished job refuses every event,
        // so it is pruned by a later round).
        let roots: Vec<String> = sqlx::query_scalar(
            "SELECT job_id FROM jobs WHERE parent_job_id IS NULL AND ended_at IS NOT NULL AND ended_at < $1 \
             LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(millis(&cutoff))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if !roots.is_empty() {
            // A finished tree has no queued task; this only keeps a stray row from outliving it.
            sqlx::query("DELETE FROM task_queue WHERE root_id = ANY($1)").bind(&roots).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM jobs WHERE parent_job_id = ANY($1)").bind(&roots).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM jobs WHERE job_id = ANY($1)").bind(&roots).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(millis(&keys_cutoff))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(roots.len() as u64)
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<Vec<QueueStat>> {
        let rows = sqlx::query(
            "SELECT service, job_type, COUNT(*) AS depth, MIN(available_at) AS oldest FROM task_queue \
             WHERE runnable AND due_at <= $1 GROUP BY service, job_type",
        )
        .bind(millis(&now))
        .fetch_all(self.pool()?)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QueueStat {
                    service: row.try_get("service")?,
                    job_type: row.try_get("job_type")?,
                    depth: row.try_get::<i64, _>("depth")?.max(0) as u64,
                    oldest_due_at: from_millis(row.try_get("oldest")?)?,
                })
            })
            .collect()
    }

    fn other_nodes_changes(&self) -> Option<tokio::sync::broadcast::Receiver<ChangeNotice>> {
        Some(self.changes.subscribe())
    }

    /// The leader holds a session-level advisory lock on a connection of its own; when its process
    /// or connection dies, PostgreSQL releases the lock and the next node to ask takes over.
    async fn lead_maintenance(&self) -> Result<bool> {
        let mut session = self.leader_session.lock().await;
        if let Some(connection) = session.as_mut() {
            if sqlx::query("SELECT 1").execute(&mut **connection).await.is_ok() {
                return Ok(true);
            }
            *session = None; // the session died, and with it the lock
        }
        let mut connection = self.pool()?.acquire().await?;
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(MAINTENANCE_LOCK)
            .fetch_one(&mut *connection)
            .await?;
        if acquired {
            // Keep the session (and so the lock) out of the pool for as long as this node leads.
            *session = Some(connection);
        }
        Ok(acquired)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.pool()?).await?;
        Ok(())
    }
}
