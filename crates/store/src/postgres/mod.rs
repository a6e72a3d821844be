//! The PostgreSQL backend (13+): one database shared by any number of jobd nodes.
//!
//! Concurrency rests on one rule: a job row is written only by a transaction that holds the lock
//! on its tree's root row and, for a lone job (no sub-jobs), on its `task_queue` row as well.
//! `apply_event` waits for the root lock (`FOR UPDATE`), then for the queue row, so events on one
//! tree serialize. Claims take `task_queue` rows with `FOR UPDATE SKIP LOCKED` and never wait: a
//! lone job's claim stays in its queue row (`pending_claims`), any other claim then takes the
//! roots it needs with `SKIP LOCKED` too and reloads them, letting `jobd_core::apply` decide, so a
//! candidate another node claimed a moment ago is refused, never handed out twice. Pruning takes
//! roots with `SKIP LOCKED`. Only transactions that never wait hold a queue row before a root, so
//! there are no deadlocks (a batch of events waits for several roots, always in id order, so two
//! batches never wait for each other in a cycle). A worker's report on a claim this node kept in
//! `task_queue` (`kept_claims`) takes no lock before its write: the write itself locks the row,
//! then the queue row, and writes only where the row still has the version the claim read.
//!
//! By duty: `rows` (the one mapping of a job to its row, set-based writes that keep `task_queue`
//! in step, tree loads), `claims`, `pending_claims` (claims kept in `task_queue` until the job's
//! next write), `kept_claims` (those claims, remembered for their reports), `events` (workers'
//! events in batches), `inserts` (batch creates and their
//! idempotency keys), `notifier` (changes to and from the other nodes, and whether the database
//! can be reached), `identity` (the identity store); this file holds the store itself,
//! migrations, the maintenance leader and the single-row verbs.

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

mod claims;
mod events;
mod identity;
mod inserts;
mod kept_claims;
mod notifier;
mod pending_claims;
mod rows;

use self::claims::*;
use self::kept_claims::*;
use self::notifier::*;
use self::pending_claims::*;
use self::rows::*;
use crate::codec::{corrupt, from_json, from_millis, millis, opt_from_millis, JOB_COLUMNS};
use crate::{
    ChangeNotice, ClaimRequest, ClaimedTask, FinishedJobs, HeldLease, IdempotencyKey, Inserted, JobRef, JobStore,
    NewTree, OpenTasks, QueueStat, Result, StoreError, TaskEvent, TaskScope, MAX_BATCH,
};
use std::collections::HashMap;

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
    /// No vacuum of the claim path before this (`claims::vacuum_task_queue`: set when a vacuum
    /// could not clear the dead rows).
    vacuum_not_before: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// Claims this node kept in `task_queue`, until their reports (`kept_claims`).
    kept_claims: Arc<KeptClaims>,
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
        let reachability = Arc::new(Reachability::default());
        // A pooled connection is checked with a round trip before it is handed out only when it
        // may be broken: idle for a while, or older than the last outage the change listener
        // saw. sqlx's default checks every one, which was a round trip more on every store call
        // (a sixth of a lone job's way from its create to its claim).
        let checked = reachability.clone();
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(move |connection, meta| {
                let suspect = meta.idle_for >= CHECK_IDLE_AFTER || checked.may_predate_outage(meta.age);
                Box::pin(async move { Ok(!suspect || connection.ping().await.is_ok()) })
            })
            .connect_with(pooled)
            .await?;
        let node: Arc<str> = Arc::from(uuid::Uuid::new_v4().simple().to_string());
        let (changes, _) = tokio::sync::broadcast::channel(4096);
        spawn_listener(pool.clone(), node.clone(), changes.downgrade(), reachability.clone());
        let notifier = Notifier::start(pool.clone(), node.clone());
        Ok(PgStore {
            pool,
            changes,
            leader_session: Arc::new(tokio::sync::Mutex::new(None)),
            reachability,
            notifier,
            vacuum_not_before: Arc::new(std::sync::Mutex::new(None)),
            kept_claims: Arc::new(KeptClaims::default()),
        })
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

#[async_trait]
impl JobStore for PgStore {
    async fn insert_job(&self, job: &Job, idempotency: Option<&IdempotencyKey>) -> Result<Inserted> {
        // One job is a batch of one: the same statements, the same handling of keys.
        let tree = NewTree { job: job.clone(), idempotency: idempotency.cloned() };
        match inserts::insert_jobs(self, std::slice::from_ref(&tree)).await {
            Ok(mut answers) => Ok(answers.pop().expect("one answer per tree")),
            Err(StoreError::KeyConflict { .. }) => Ok(Inserted::KeyConflict),
            Err(error) => Err(error),
        }
    }

    async fn insert_jobs(&self, trees: &[NewTree]) -> Result<Vec<Inserted>> {
        inserts::insert_jobs(self, trees).await
    }

    async fn get_job(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Job>> {
        // One statement, so one snapshot and one round trip: the root and its sub-jobs as one
        // committed state (a transaction around two statements cost four round trips a read).
        let rows = sqlx::query(&format!(
            "WITH target AS (SELECT COALESCE(parent_job_id, job_id) AS root FROM jobs \
             WHERE job_id = $1 AND project_id = $2) \
             SELECT {JOB_COLUMNS}, position, {} FROM jobs WHERE job_id = (SELECT root FROM target) \
             UNION ALL \
             SELECT {JOB_COLUMNS}, position, {NO_PENDING_CLAIM} FROM jobs \
             WHERE parent_job_id = (SELECT root FROM target) \
             ORDER BY parent_job_id NULLS FIRST, position",
            pending_claim_column("jobs")
        ))
        .bind(job_id.as_str())
        .bind(project_id.as_str())
        .fetch_all(self.pool()?)
        .await?;
        let mut jobs = rows.iter().map(job_now_from_row);
        let Some(root) = jobs.next().transpose()? else { return Ok(None) };
        let tree = Job { sub_jobs: jobs.collect::<Result<_>>()?, ..root };
        if tree.parent_job_id.is_some()
            || tree.sub_jobs.iter().any(|sub| sub.parent_job_id.as_ref() != Some(&tree.job_id))
        {
            return Err(StoreError::Corrupt(format!("the tree of job {job_id} is malformed")));
        }
        if &tree.job_id == job_id {
            return Ok(Some(tree));
        }
        Ok(tree.sub_jobs.into_iter().find(|sub| &sub.job_id == job_id))
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>> {
        let mut builder = QueryBuilder::<Postgres>::new(format!(
            "SELECT {JOB_COLUMNS}, {} FROM jobs WHERE parent_job_id IS NULL AND project_id = ",
            pending_claim_column("jobs")
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
        push_any(&mut builder, &status_now("jobs", "status"), query.statuses.iter().map(|s| s.as_str().to_owned()));
        push_any(
            &mut builder,
            &status_now("jobs", "tree_status"),
            query.tree_statuses.iter().map(|s| s.as_str().to_owned()),
        );
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
        let mut jobs = rows.iter().map(job_now_from_row).collect::<Result<Vec<_>>>()?;
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
        let (stored, tree) =
            lock_tree(&mut tx, project_id, job_id).await?.ok_or_else(|| StoreError::NotFound(job_id.to_string()))?;
        let next = apply(&tree, job_id, event, now)?;
        write_tree_changes(&mut tx, &stored, &next).await?;
        tx.commit().await?;
        self.notifier.changed(&next);
        Ok(next)
    }

    async fn claim_tasks(&self, request: &ClaimRequest, now: Timestamp) -> Result<Vec<ClaimedTask>> {
        claims::claim_tasks(self, request, now).await
    }

    async fn claim_offered(
        &self,
        request: &ClaimRequest,
        offered: &Job,
        now: Timestamp,
    ) -> Result<Option<ClaimedTask>> {
        claims::claim_offered(self, request, offered, now).await
    }

    async fn apply_task_events(
        &self,
        events: &[TaskEvent],
        scope: &TaskScope,
        now: Timestamp,
    ) -> Result<Vec<Result<Job>>> {
        events::apply_task_events(self, events, scope, now).await
    }

    async fn next_due_at(&self, request: &ClaimRequest) -> Result<Option<Timestamp>> {
        // A task is due at `GREATEST(due_at, lease_expires_at)`, which no index holds. A row
        // without a claim is due at its `due_at`, so none past the earliest such row can be
        // earlier: only the rows up to it are read (those holding claims come first, as few as
        // the tasks in flight), both walks in `task_queue_due` order.
        let mut builder = QueryBuilder::<Postgres>::new(
            "SELECT MIN(GREATEST(q.due_at, COALESCE(q.lease_expires_at, 0))) AS due FROM task_queue AS q \
             WHERE q.runnable",
        );
        push_claim_filters(&mut builder, "q", request);
        builder.push(" AND q.due_at <= COALESCE((SELECT MIN(u.due_at) FROM task_queue AS u WHERE u.runnable");
        push_claim_filters(&mut builder, "u", request);
        builder.push(" AND u.claim_token IS NULL), 9223372036854775807)");
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
            // A rescuable row's `due_at` is its lease's expiry (migration 0011).
            "SELECT project_id, job_id FROM task_queue WHERE rescuable AND due_at <= $1 \
             ORDER BY due_at LIMIT $2",
        )
        .bind(millis(&now))
        .bind(i64::from(limit))
        .fetch_all(self.pool()?)
        .await?;
        rows.iter().map(job_ref).collect()
    }

    async fn prune_finished_jobs(&self, cutoff: Timestamp, limit: u32) -> Result<u64> {
        let mut tx = self.pool()?.begin().await?;
        // Roots only, skipping any another transaction holds (a finished job refuses every event,
        // so it is pruned by a later round).
        let ended: Vec<(i64, String)> = sqlx::query_as(
            "SELECT e.ended_at, e.job_id FROM ended_roots AS e JOIN jobs AS r ON r.job_id = e.job_id \
             WHERE e.ended_at < $1 ORDER BY e.ended_at LIMIT $2 FOR UPDATE OF r SKIP LOCKED",
        )
        .bind(millis(&cutoff))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let (ended_at, roots): (Vec<i64>, Vec<String>) = ended.into_iter().unzip();
        if !roots.is_empty() {
            sqlx::query(
                "DELETE FROM ended_roots AS e USING unnest($1::int8[], $2::text[]) AS d(ended_at, job_id) \
                 WHERE e.ended_at = d.ended_at AND e.job_id = d.job_id",
            )
            .bind(&ended_at)
            .bind(&roots)
            .execute(&mut *tx)
            .await?;
            // A finished tree has no queued task; this only keeps a stray row from outliving it.
            sqlx::query("DELETE FROM task_queue WHERE root_id = ANY($1)").bind(&roots).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM jobs WHERE parent_job_id = ANY($1)").bind(&roots).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM jobs WHERE job_id = ANY($1)").bind(&roots).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(roots.len() as u64)
    }

    async fn prune_idempotency_keys(&self, cutoff: Timestamp) -> Result<u64> {
        let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(millis(&cutoff))
            .execute(self.pool()?)
            .await?;
        Ok(deleted.rows_affected())
    }

    async fn tidy_claim_path(&self) -> Result<u64> {
        claims::vacuum_task_queue(self).await
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<Vec<QueueStat>> {
        let rows = sqlx::query(
            "SELECT service, job_type, COUNT(*) AS depth, MIN(available_at) AS oldest FROM task_queue \
             WHERE runnable AND due_at <= $1 AND COALESCE(lease_expires_at, 0) <= $1 GROUP BY service, job_type",
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

    async fn open_tasks(&self, project_id: &ProjectId, now: Timestamp) -> Result<Vec<OpenTasks>> {
        let rows = sqlx::query(
            "SELECT service, job_type, enterprise_project_id, \
             COUNT(*) FILTER (WHERE runnable AND available_at <= $2 \
                 AND (lease_expires_at IS NULL OR lease_expires_at <= $2)) AS waiting, \
             COUNT(*) FILTER (WHERE lease_worker_id IS NOT NULL AND lease_expires_at > $2) AS running, \
             MIN(available_at) FILTER (WHERE runnable AND available_at <= $2 \
                 AND (lease_expires_at IS NULL OR lease_expires_at <= $2)) AS oldest \
             FROM (SELECT j.service, j.job_type, j.enterprise_project_id, j.available_at, \
                 COALESCE(q.runnable, j.runnable) AS runnable, \
                 COALESCE(q.claim_worker_id, j.lease_worker_id) AS lease_worker_id, \
                 COALESCE(q.lease_expires_at, j.lease_expires_at) AS lease_expires_at \
                 FROM jobs AS j LEFT JOIN task_queue AS q ON q.job_id = j.job_id AND q.claim_token IS NOT NULL \
                 WHERE j.status IN ('PENDING', 'RUNNING') AND j.project_id = $1) AS open_jobs \
             GROUP BY service, job_type, enterprise_project_id",
        )
        .bind(project_id.as_str())
        .bind(millis(&now))
        .fetch_all(self.pool()?)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OpenTasks {
                    service: row.try_get("service")?,
                    job_type: row.try_get("job_type")?,
                    enterprise_project_id: row.try_get("enterprise_project_id")?,
                    waiting: row.try_get::<i64, _>("waiting")?.max(0) as u64,
                    running: row.try_get::<i64, _>("running")?.max(0) as u64,
                    oldest_waiting_due_at: opt_from_millis(row.try_get("oldest")?)?,
                })
            })
            .collect()
    }

    async fn finished_jobs(&self, project_id: &ProjectId, since: Timestamp) -> Result<Vec<FinishedJobs>> {
        let rows = sqlx::query(
            "SELECT j.service, j.job_type, j.enterprise_project_id, (e.ended_at / 60000) * 60000 AS minute, \
             j.status, COUNT(*) AS count FROM ended_roots AS e JOIN jobs AS j ON j.job_id = e.job_id \
             WHERE e.ended_at >= $2 AND j.project_id = $1 \
             GROUP BY j.service, j.job_type, j.enterprise_project_id, minute, j.status",
        )
        .bind(project_id.as_str())
        .bind(millis(&since))
        .fetch_all(self.pool()?)
        .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                Ok(FinishedJobs {
                    service: row.try_get("service")?,
                    job_type: row.try_get("job_type")?,
                    enterprise_project_id: row.try_get("enterprise_project_id")?,
                    minute: from_millis(row.try_get("minute")?)?,
                    status: status.parse().map_err(|e| corrupt("status", e))?,
                    count: row.try_get::<i64, _>("count")?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn held_leases(&self, project_id: &ProjectId, now: Timestamp, limit: u32) -> Result<Vec<HeldLease>> {
        // Leases in job rows, and those of claims `task_queue` holds (`pending_claims`): a claim's
        // lease is the job's lease once applied, so the database orders and limits by either,
        // and the jobs as they stand tell the worker, attempt and times of both alike.
        let claim = queue_row_holding_a_claim("open");
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS}, {} FROM (SELECT open.*, \
                 COALESCE((SELECT q.claim_worker_id {claim}), open.lease_worker_id) AS holder, \
                 COALESCE((SELECT q.lease_expires_at {claim}), open.lease_expires_at) AS held_until \
                 FROM jobs AS open WHERE open.status IN ('PENDING', 'RUNNING') AND open.project_id = $1) AS jobs \
             WHERE holder IS NOT NULL AND held_until > $2 ORDER BY holder, held_until, job_id LIMIT $3",
            pending_claim_column("jobs"),
        ))
        .bind(project_id.as_str())
        .bind(millis(&now))
        .bind(i64::from(limit))
        .fetch_all(self.pool()?)
        .await?;
        let mut held = Vec::with_capacity(rows.len());
        for row in &rows {
            let job = job_now_from_row(row)?;
            let Some(lease) = job.lease.filter(|lease| lease.expires_at > now) else { continue };
            held.push(HeldLease {
                job_id: job.job_id,
                parent_job_id: job.parent_job_id,
                enterprise_project_id: job.enterprise_project_id,
                service: job.service.to_string(),
                job_type: job.job_type.to_string(),
                worker_id: lease.worker_id,
                attempt: job.attempt,
                started_at: job.started_at,
                updated_at: job.updated_at,
                lease_expires_at: lease.expires_at,
            });
        }
        Ok(held)
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
