//! The embedded SQLite backend: one WAL-mode file, a single writer connection, a few readers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jobd_core::{apply, Job, JobEvent, JobId, ProjectId, TaskFlags, Timestamp};
use rusqlite::OptionalExtension;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use jobd_core::{Cursor, Direction, JobQuery};

use crate::batch::KeyPlan;
use crate::codec::{corrupt, enum_text, from_millis, millis, opt_from_millis, to_json, JOB_COLUMNS};
use crate::sqlite_readers::{push_any, Readers, SqlText};
use crate::sqlite_rows::{
    job_from_row, job_ref_from_row, tree_from_rows, LOAD_TREE_SQL, READ_ROW_SQL, READ_SUB_JOBS_SQL,
};
use crate::sqlite_writer::{GroupCommit, QueueLimits, WriteTx};
use crate::tree_cache::TreeCache;
use crate::{
    ChangeNotice, ClaimRequest, ClaimedTask, FinishedJobs, HeldLease, IdempotencyKey, Inserted, JobRef, JobStore,
    NewTree, OpenTasks, QueueStat, Result, StoreError, TaskEvent, TaskScope,
};

/// How much memory the readers' cache of job trees may hold: the jobs being polled now, not the
/// whole store (a tree of a few jobs takes one or two kilobytes).
const TREE_CACHE_BYTES: usize = 64 << 20;

/// The writer connection's page cache, in KiB.
const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// The file the store keeps under the data directory.
pub const DATABASE_FILE: &str = "jobd.sqlite3";
/// The file whose lock says which process serves the data directory.
pub const LOCK_FILE: &str = "jobd.lock";

#[derive(Clone)]
pub struct SqliteStore {
    /// One connection: identity writes use it directly, job writes through `commits`.
    pub(crate) writer: SqlitePool,
    /// Every read, on connections of its own (rusqlite, on the calling thread).
    pub(crate) readers: Readers,
    /// Job writes, grouped into shared commits.
    commits: GroupCommit,
    /// Recently read job trees; each commit evicts the trees it wrote (`tree_cache`).
    trees: Arc<TreeCache>,
    /// Held while the store is open (`lock_data_dir`).
    _data_dir_lock: Arc<std::fs::File>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store under `data_dir` and applies pending migrations.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        let created = !data_dir.exists();
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::DataDir { path: data_dir.to_owned(), source })?;
        // The store holds password hashes and sealed secrets: only jobd's user may read it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let restrict = |path: &Path, mode: u32| {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .map_err(|source| StoreError::DataDir { path: path.to_owned(), source })
            };
            if created {
                restrict(data_dir, 0o700)?;
            }
            let database = data_dir.join(DATABASE_FILE);
            if !database.exists() {
                std::fs::File::create(&database)
                    .map_err(|source| StoreError::DataDir { path: database.clone(), source })?;
            }
            restrict(&database, 0o600)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join(DATABASE_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let data_dir_lock = lock_data_dir(data_dir)?;
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let path = data_dir.join(DATABASE_FILE);
        let readers = Readers::open(&path)?;
        let trees = Arc::new(TreeCache::new(TREE_CACHE_BYTES));
        let data_dir_lock = Arc::new(data_dir_lock);
        // The writer thread holds the lock too: it is released once the last write is done.
        let writer_lock = data_dir_lock.clone();
        let open_writer = Box::new(move || {
            let _held = &writer_lock;
            open_job_writer(&path)
        });
        let commits = GroupCommit::start(open_writer, QueueLimits::default(), trees.clone())?;
        start_checkpointer(data_dir.join(DATABASE_FILE), Arc::downgrade(&data_dir_lock))?;
        Ok(SqliteStore { writer, readers, commits, trees, _data_dir_lock: data_dir_lock })
    }
}

/// How long opening a store waits for the data directory's lock before it says it is in use.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How often the checkpointer copies committed pages from the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// Copies the WAL's committed pages into the database file (a passive checkpoint: it never
/// blocks the writer or a reader) every `CHECKPOINT_EVERY`, on a thread and connection of its
/// own, so the job writer's commits never pay for it. Stops once the store is dropped (`alive`
/// no longer upgrades). Durability does not depend on it: every commit is in the fsynced WAL.
fn start_checkpointer(path: std::path::PathBuf, alive: std::sync::Weak<std::fs::File>) -> Result<()> {
    let conn = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(1))?;
    std::thread::Builder::new()
        .name("jobd-sqlite-checkpointer".to_owned())
        .spawn(move || {
            while alive.upgrade().is_some() {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(%error, "a WAL checkpoint did not run; the next one will");
                }
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite checkpointer thread: {e}")))?;
    Ok(())
}

/// Takes the data directory for this process: one jobd at a time serves a store, since its
/// readers' cache is kept current by its own writer (a second process's writes would not evict
/// it). The lock is the operating system's, so it goes with the process however it ends.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::DataDir { path: path.clone(), source })?;
    // A store of this process closed a moment ago lets go once its writer thread has finished
    // its last writes: wait a little for that, not for another process.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::DataDirInUse(data_dir.to_owned())),
            Err(std::fs::TryLockError::Error(source)) => return Err(StoreError::DataDir { path, source }),
        }
    }
}

/// The job writer's connection: WAL, every commit fsynced (`synchronous = FULL`), foreign keys on.
fn open_job_writer(path: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // The writer probes the job-id index at random (each claim and report): a page cache that
    // holds the hot index pages saves a `pread` per probe (the default is 2 MB).
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    // Savepoints copy each page they change to a sub-journal: keep it in memory, not a file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoints run on a thread of their own (`start_checkpointer`), not in the writer's commits.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// `Conflict` naming `what` for a unique violation; other errors as usual.
fn unique(what: impl FnOnce() -> String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| match &e {
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(
                failure.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            ) =>
        {
            StoreError::Conflict(what())
        }
        _ => StoreError::from(e),
    }
}

/// `Job::tree_status` of a root, stored on its row (sub-job rows keep NULL).
fn stored_tree_status(job: &Job) -> Option<&'static str> {
    job.parent_job_id.is_none().then(|| job.tree_status().as_str())
}

/// The root of the tree a row belongs to (trees are one level deep).
fn root_of(job: &Job) -> &JobId {
    job.parent_job_id.as_ref().unwrap_or(&job.job_id)
}

fn insert_row(conn: &WriteTx, job: &Job, position: i64, flags: TaskFlags) -> Result<()> {
    conn.touch(root_of(job));
    let mut statement = conn.prepare_cached(
        "INSERT INTO jobs (job_id, parent_job_id, position, project_id, enterprise_project_id, service, job_type, \
         status, message, resource_id, entities, error_code, error_msg, payload, result, simulate, \
         created_at, started_at, ended_at, updated_at, version, priority, run_at, available_at, max_attempts, \
         attempt, retry_backoff, timeout_seconds, execution, lease_worker_id, lease_token, lease_expires_at, \
         runnable, simulated, deadline_at, on_failure, phase, compensation, rescuable, tree_status) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    statement
        .execute(rusqlite::params![
            job.job_id.as_str(),
            job.parent_job_id.as_ref().map(|p| p.as_str()),
            position,
            job.project_id.as_str(),
            &job.enterprise_project_id,
            job.service.as_str(),
            job.job_type.as_str(),
            job.status.as_str(),
            &job.message,
            &job.resource_id,
            to_json(&job.entities),
            &job.error_code,
            &job.error_msg,
            job.payload.as_ref().map(to_json),
            job.result.as_ref().map(to_json),
            job.simulate.as_ref().map(to_json),
            millis(&job.created_at),
            job.started_at.as_ref().map(millis),
            job.ended_at.as_ref().map(millis),
            millis(&job.updated_at),
            job.version,
            job.priority,
            job.run_at.as_ref().map(millis),
            millis(&job.available_at),
            job.max_attempts,
            job.attempt,
            to_json(&job.retry_backoff),
            job.timeout_seconds,
            job.execution.as_str(),
            job.lease.as_ref().map(|l| l.worker_id.as_str()),
            job.lease.as_ref().map(|l| l.token.as_str()),
            job.lease.as_ref().map(|l| millis(&l.expires_at)),
            flags.runnable,
            job.simulate.is_some(),
            job.deadline().as_ref().map(millis),
            enum_text(&job.on_failure),
            enum_text(&job.phase),
            job.compensation.as_ref().map(to_json),
            flags.rescuable,
            stored_tree_status(job),
        ])
        .map_err(unique(|| job.job_id.to_string()))?;
    Ok(())
}

/// Writes what changed in a row, and only that: an `UPDATE` that names a column rewrites every
/// index holding it (or filtering on it), changed or not, and each rewritten index page is one
/// more page in the commit's WAL frames.
fn update_row(conn: &WriteTx, old: &Job, new: &Job, old_flags: TaskFlags, new_flags: TaskFlags) -> Result<()> {
    use rusqlite::types::Value;
    conn.touch(root_of(new));
    let text = |value: Option<&str>| value.map_or(Value::Null, |text| Value::Text(text.to_owned()));
    let time = |value: Option<&Timestamp>| value.map_or(Value::Null, |at| Value::Integer(millis(at)));
    let mut sql = SqlText::default();
    let mut set = |column: &str, value: Value| {
        sql.sql(if sql.params.is_empty() { "UPDATE jobs SET " } else { ", " });
        sql.sql(column);
        sql.sql(" = ?");
        sql.params.push(value);
    };
    set("version", Value::Integer(new.version));
    set("updated_at", Value::Integer(millis(&new.updated_at)));
    if old.status != new.status {
        set("status", Value::Text(new.status.as_str().to_owned()));
    }
    if old.message != new.message {
        set("message", text(new.message.as_deref()));
    }
    if old.error_code != new.error_code {
        set("error_code", text(new.error_code.as_deref()));
    }
    if old.error_msg != new.error_msg {
        set("error_msg", text(new.error_msg.as_deref()));
    }
    if old.result != new.result {
        set("result", new.result.as_ref().map_or(Value::Null, |result| Value::Text(to_json(result))));
    }
    if old.started_at != new.started_at {
        set("started_at", time(new.started_at.as_ref()));
    }
    if old.ended_at != new.ended_at {
        set("ended_at", time(new.ended_at.as_ref()));
    }
    if old.available_at != new.available_at {
        set("available_at", Value::Integer(millis(&new.available_at)));
    }
    if old.attempt != new.attempt {
        set("attempt", Value::Integer(i64::from(new.attempt)));
    }
    if old.lease != new.lease {
        let lease = new.lease.as_ref();
        set("lease_worker_id", text(lease.map(|l| l.worker_id.as_str())));
        set("lease_token", text(lease.map(|l| l.token.as_str())));
        set("lease_expires_at", time(lease.map(|l| &l.expires_at)));
    }
    if old_flags.runnable != new_flags.runnable {
        set("runnable", Value::Integer(i64::from(new_flags.runnable)));
    }
    if old_flags.rescuable != new_flags.rescuable {
        set("rescuable", Value::Integer(i64::from(new_flags.rescuable)));
    }
    if old.deadline() != new.deadline() {
        set("deadline_at", time(new.deadline().as_ref()));
    }
    if old.phase != new.phase {
        set("phase", Value::Text(enum_text(&new.phase)));
    }
    if old.compensation != new.compensation {
        set("compensation", new.compensation.as_ref().map_or(Value::Null, |c| Value::Text(to_json(c))));
    }
    if stored_tree_status(old) != stored_tree_status(new) {
        set("tree_status", text(stored_tree_status(new)));
    }
    match conn.row_id(&new.job_id) {
        Some(row_id) => {
            sql.sql(" WHERE seq = ");
            sql.bind_int(row_id);
        }
        None => {
            sql.sql(" WHERE job_id = ");
            sql.bind_text(new.job_id.to_string());
        }
    }
    sql.sql(" AND version = ");
    sql.bind_int(old.version);
    let changed = conn.prepare_cached(&sql.text)?.execute(rusqlite::params_from_iter(sql.params.iter()))?;
    if changed != 1 {
        return Err(StoreError::Corrupt(format!("job {} changed under a write", new.job_id)));
    }
    Ok(())
}

/// Writes every row of a tree that changed (its own fields, whether it may run, or for the root
/// where the tree stands).
fn write_tree_changes(conn: &WriteTx, before: &Job, after: &Job) -> Result<()> {
    let (old_flags, new_flags) = (before.task_flags(), after.task_flags());
    let tree_status_changed = before.tree_status() != after.tree_status();
    let pairs = before.iter_tree().zip(after.iter_tree()).zip(old_flags.iter().zip(new_flags.iter()));
    for (index, ((old, new), (old_flag, new_flag))) in pairs.enumerate() {
        if !old.same_row(new) || old_flag != new_flag || (index == 0 && tree_status_changed) {
            update_row(conn, old, new, *old_flag, *new_flag)?;
        }
    }
    Ok(())
}

fn insert_tree(conn: &WriteTx, job: &Job) -> Result<()> {
    let flags = job.task_flags();
    insert_row(conn, job, 0, flags[0])?;
    for (position, sub) in job.sub_jobs.iter().enumerate() {
        insert_row(conn, sub, position as i64, flags[position + 1])?;
    }
    Ok(())
}

/// `AND service IN (..) AND job_type IN (..) AND simulated = ?` for a claim request.
fn push_claim_filters(builder: &mut SqlText, request: &ClaimRequest) {
    builder.sql(" AND simulated = ");
    builder.bind_int(i64::from(request.simulated));
    if let Some(projects) = &request.project_ids {
        if projects.is_empty() {
            builder.sql(" AND 0");
        }
        push_any(builder, "project_id", projects.iter().map(|p| p.to_string()));
    }
    if let Some(enterprise_projects) = &request.enterprise_project_ids {
        if enterprise_projects.is_empty() {
            builder.sql(" AND 0");
        }
        push_any(builder, "enterprise_project_id", enterprise_projects.iter().cloned());
    }
    push_any(builder, "service", request.services.iter().map(|s| s.to_string()));
    push_any(builder, "job_type", request.job_types.iter().cloned());
}

// ---- reads (rusqlite, on the calling thread or a blocking one) ----

/// Runs a dynamic read and maps each row.
fn read_rows<T>(
    conn: &rusqlite::Connection,
    sql: &SqlText,
    map: impl Fn(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(&sql.text)?;
    let mut rows = statement.query(rusqlite::params_from_iter(sql.params.iter()))?;
    let mut mapped = Vec::new();
    while let Some(row) = rows.next()? {
        mapped.push(map(row)?);
    }
    Ok(mapped)
}

/// The tree holding `job_id`, on a reader.
fn read_tree(conn: &rusqlite::Connection, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Job>> {
    let mut statement = conn.prepare_cached(LOAD_TREE_SQL.as_str())?;
    let mut rows = statement.query((job_id.as_str(), project_id.as_str()))?;
    let mut jobs = Vec::new();
    while let Some(row) = rows.next()? {
        jobs.push(job_from_row(row)?);
    }
    tree_from_rows(jobs, job_id)
}

/// Loads the sub-jobs of the given parents and attaches them in order.
fn attach_sub_jobs(conn: &rusqlite::Connection, parents: &mut [Job]) -> Result<()> {
    if parents.is_empty() {
        return Ok(());
    }
    let mut sql = SqlText::default();
    sql.sql(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE parent_job_id IN ("));
    for (i, parent) in parents.iter().enumerate() {
        if i > 0 {
            sql.sql(", ");
        }
        sql.bind_text(parent.job_id.to_string());
    }
    sql.sql(") ORDER BY parent_job_id, position");
    let subs = read_rows(conn, &sql, |row| job_from_row(row))?;
    let index: HashMap<JobId, usize> = parents.iter().enumerate().map(|(i, p)| (p.job_id.clone(), i)).collect();
    for sub in subs {
        if let Some(&i) = sub.parent_job_id.as_ref().and_then(|parent_id| index.get(parent_id)) {
            parents[i].sub_jobs.push(sub);
        }
    }
    Ok(())
}

fn list_jobs(conn: &rusqlite::Connection, query: &JobQuery) -> Result<Vec<Job>> {
    let mut sql = SqlText::default();
    sql.sql(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE parent_job_id IS NULL AND project_id = "));
    sql.bind_text(query.project_id.to_string());
    if let Some(service) = &query.service {
        sql.sql(" AND service = ");
        sql.bind_text(service.to_string());
    }
    if let Some(eps) = &query.enterprise_project_ids {
        if eps.is_empty() {
            return Ok(Vec::new());
        }
        push_any(&mut sql, "enterprise_project_id", eps.iter().cloned());
    }
    push_any(&mut sql, "job_id", query.job_ids.iter().map(|id| id.to_string()));
    push_any(&mut sql, "job_type", query.job_types.iter().cloned());
    push_any(&mut sql, "status", query.statuses.iter().map(|s| s.as_str().to_owned()));
    push_any(&mut sql, "tree_status", query.tree_statuses.iter().map(|s| s.as_str().to_owned()));
    push_any(&mut sql, "resource_id", query.resource_ids.iter().cloned());
    push_any(&mut sql, "error_code", query.error_codes.iter().cloned());
    if let Some(since) = &query.created_since {
        sql.sql(" AND created_at >= ");
        sql.bind_int(millis(since));
    }
    let (compare, order) = match query.direction {
        Direction::Older => ("<", "DESC"),
        Direction::Newer => (">", "ASC"),
    };
    if let Some(cursor) = &query.cursor {
        let at = millis(&cursor.created_at);
        sql.sql(&format!(" AND (created_at {compare} "));
        sql.bind_int(at);
        sql.sql(" OR (created_at = ");
        sql.bind_int(at);
        sql.sql(&format!(" AND seq {compare} "));
        sql.bind_int(cursor.seq);
        sql.sql("))");
    }
    sql.sql(&format!(" ORDER BY created_at {order}, seq {order} LIMIT "));
    sql.bind_int(i64::from(query.limit));
    let mut jobs = read_rows(conn, &sql, |row| job_from_row(row))?;
    if query.direction == Direction::Newer {
        jobs.reverse();
    }
    attach_sub_jobs(conn, &mut jobs)?;
    Ok(jobs)
}

/// Job references (`project_id, job_id` rows) of a static query with two integer parameters.
fn read_job_refs(conn: &rusqlite::Connection, sql: &str, first: i64, second: i64) -> Result<Vec<JobRef>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query((first, second))?;
    let mut refs = Vec::new();
    while let Some(row) = rows.next()? {
        refs.push(job_ref_from_row(row)?);
    }
    Ok(refs)
}

/// What a stored idempotency key says of a new request with it: the job it created (`Existing`),
/// `KeyConflict` for another request, or `None` when the key is free (a key whose job was
/// pruned is forgotten here).
fn stored_key(tx: &rusqlite::Connection, key: &IdempotencyKey) -> Result<Option<Inserted>> {
    let existing: Option<(String, String)> = tx
        .prepare_cached("SELECT request_hash, job_id FROM idempotency_keys WHERE project_id = ? AND client_token = ?")?
        .query_row((key.project_id.as_str(), &key.client_token), |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((hash, job_id)) = existing else { return Ok(None) };
    if hash != key.request_hash {
        return Ok(Some(Inserted::KeyConflict));
    }
    let job_id = JobId::parse(&job_id).map_err(|e| corrupt("job_id", e))?;
    if let Some(job) = read_tree(tx, &key.project_id, &job_id)? {
        return Ok(Some(Inserted::Existing(Box::new(job))));
    }
    tx.prepare_cached("DELETE FROM idempotency_keys WHERE project_id = ? AND client_token = ?")?
        .execute((key.project_id.as_str(), &key.client_token))?;
    Ok(None)
}

fn record_key(tx: &rusqlite::Connection, key: &IdempotencyKey, job: &Job) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO idempotency_keys (project_id, client_token, request_hash, job_id, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )?
    .execute((
        key.project_id.as_str(),
        &key.client_token,
        &key.request_hash,
        job.job_id.as_str(),
        millis(&job.created_at),
    ))?;
    Ok(())
}

/// Inserts a job tree, or answers the job an idempotency key already names.
fn insert_job(tx: &WriteTx, job: &Job, idempotency: Option<&IdempotencyKey>) -> Result<Inserted> {
    if let Some(key) = idempotency {
        if let Some(answer) = stored_key(tx, key)? {
            return Ok(answer);
        }
        record_key(tx, key, job)?;
    }
    insert_tree(tx, job)?;
    Ok(Inserted::Created)
}

/// Inserts a batch of job trees, all or none (the write's savepoint is rolled back on an error).
fn insert_jobs(tx: &WriteTx, trees: &[NewTree]) -> Result<Vec<Inserted>> {
    let plan = KeyPlan::new(trees)?;
    let mut answers: Vec<Option<Inserted>> = vec![None; trees.len()];
    for &index in &plan.first_uses {
        let key = trees[index].idempotency.as_ref().expect("a first use has a key");
        match stored_key(tx, key)? {
            Some(Inserted::KeyConflict) => return Err(StoreError::KeyConflict { index }),
            Some(answer) => answers[index] = Some(answer),
            None => record_key(tx, key, &trees[index].job)?,
        }
    }
    for (index, tree) in trees.iter().enumerate() {
        if plan.creates(index, &answers) {
            insert_tree(tx, &tree.job)?;
        }
    }
    Ok(plan.finish(trees, answers))
}

/// The tree holding `job_id`, whichever project it is in: a lone leased job as the writer kept it
/// (`WriteTx::leased_tree`), else read in simple indexed statements: the row, its root's row when
/// it is a sub-job, and the root's sub-jobs (the writer's path, where `LOAD_TREE_SQL`'s union and
/// sort cost more than these three probes).
fn read_tree_of(tx: &WriteTx, job_id: &JobId) -> Result<Option<Arc<Job>>> {
    if let Some(tree) = tx.leased_tree(job_id) {
        return Ok(Some(tree));
    }
    let Some(job) = read_row(tx, job_id)? else { return Ok(None) };
    let root = match &job.parent_job_id {
        // Only a task holds a lease, and a root with sub-jobs is never a task: a leased root is
        // its whole tree (a worker's report names a task it leased; no query for sub-jobs).
        None if job.lease.is_some() => return Ok(Some(Arc::new(job))),
        None => job,
        Some(parent) => read_row(tx, parent)?
            .ok_or_else(|| StoreError::Corrupt(format!("the tree of job {job_id} is malformed")))?,
    };
    with_sub_jobs(tx, root).map(|tree| Some(Arc::new(tree)))
}

/// One job row, without its sub-jobs.
fn read_row(tx: &WriteTx, job_id: &JobId) -> Result<Option<Job>> {
    let mut statement = tx.prepare_cached(READ_ROW_SQL.as_str())?;
    let mut rows = statement.query([job_id.as_str()])?;
    rows.next()?.map(|row| job_noting_row_id(tx, row)).transpose()
}

/// A row of `JOB_COLUMNS` as a job, its row id (`seq`, the first column) noted for the update
/// that may follow.
fn job_noting_row_id(tx: &WriteTx, row: &rusqlite::Row<'_>) -> Result<Job> {
    let job = job_from_row(row)?;
    tx.note_row_id(&job.job_id, row.get(0)?);
    Ok(job)
}

/// A root row with its sub-jobs attached, in order.
fn with_sub_jobs(tx: &WriteTx, mut root: Job) -> Result<Job> {
    if root.parent_job_id.is_some() {
        return Err(StoreError::Corrupt(format!("job {} is not the root of its tree", root.job_id)));
    }
    let mut statement = tx.prepare_cached(READ_SUB_JOBS_SQL.as_str())?;
    let mut rows = statement.query([root.job_id.as_str()])?;
    while let Some(row) = rows.next()? {
        root.sub_jobs.push(job_noting_row_id(tx, row)?);
    }
    Ok(root)
}

/// Applies worker events one after another, each seeing the ones before it; a refused event
/// writes nothing.
fn apply_task_events(
    tx: &WriteTx,
    events: &[TaskEvent],
    scope: &TaskScope,
    now: Timestamp,
) -> Result<Vec<Result<Job>>> {
    let mut answers = Vec::with_capacity(events.len());
    for TaskEvent { job_id, event } in events {
        let answer = match read_tree_of(tx, job_id)? {
            Some(tree) if tree.find(job_id).is_some_and(|task| scope.allows(task)) => {
                match apply(&tree, job_id, event, now) {
                    Ok(next) => {
                        write_tree_changes(tx, &tree, &next)?;
                        Ok(next)
                    }
                    Err(refused) => Err(StoreError::from(refused)),
                }
            }
            _ => Err(StoreError::NotFound(job_id.to_string())),
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// Applies one event to the tree holding `job_id` and writes what changed.
fn apply_event(tx: &WriteTx, project_id: &ProjectId, job_id: &JobId, event: &JobEvent, now: Timestamp) -> Result<Job> {
    let tree = read_tree_of(tx, job_id)?
        .filter(|tree| &tree.project_id == project_id)
        .ok_or_else(|| StoreError::NotFound(job_id.to_string()))?;
    let next = apply(&tree, job_id, event, now)?;
    write_tree_changes(tx, &tree, &next)?;
    Ok(next)
}

/// Leases up to `request.max_tasks` runnable tasks, best first.
fn claim_tasks(tx: &WriteTx, request: &ClaimRequest, now: Timestamp) -> Result<Vec<ClaimedTask>> {
    let mut sql = SqlText::default();
    // Whole rows: a runnable root has no sub-jobs (a root with sub-jobs is never a task), so its
    // row is its whole tree; a runnable sub-job's tree is read by its root.
    sql.sql(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE runnable = 1"));
    push_claim_filters(&mut sql, request);
    // `due_at`: the later of `available_at` and the lease's expiry (migration 0009), so leased
    // tasks sit at the back of the claim index, not at its head.
    sql.sql(" AND due_at <= ");
    sql.bind_int(millis(&now));
    sql.sql(" ORDER BY priority DESC, due_at, seq LIMIT ");
    sql.bind_int(i64::from(request.max_tasks));
    let candidates = read_rows(tx, &sql, |row| job_noting_row_id(tx, row))?;
    let mut claimed = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let task_id = candidate.job_id.clone();
        let tree = match &candidate.parent_job_id {
            // A runnable root is its whole tree (`Job::task_flags`: a root with sub-jobs is
            // never runnable itself), so no query for sub-jobs it cannot have.
            None => Arc::new(candidate),
            Some(_) => match read_tree_of(tx, &task_id)? {
                Some(tree) => tree,
                None => continue,
            },
        };
        match apply(&tree, &task_id, &JobEvent::Claim { lease: request.new_lease(now) }, now) {
            Ok(next) => {
                write_tree_changes(tx, &tree, &next)?;
                let next = Arc::new(next);
                tx.keep_if_leased(&next);
                claimed.push(ClaimedTask { tree: next, task_id });
            }
            // The derived columns said yes, the state machine said no: skip, never hand out.
            Err(error) => tracing::warn!(job_id = %task_id, %error, "claim candidate refused"),
        }
    }
    Ok(claimed)
}

/// Deletes up to `limit` finished job trees ended before `cutoff`.
fn prune_finished_jobs(tx: &WriteTx, cutoff: Timestamp, limit: u32) -> Result<u64> {
    let roots: Vec<String> = {
        let mut statement = tx.prepare_cached(
            "SELECT job_id FROM jobs WHERE parent_job_id IS NULL AND ended_at IS NOT NULL AND ended_at < ? LIMIT ?",
        )?;
        let rows = statement.query_map((millis(&cutoff), i64::from(limit)), |row| row.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for root in &roots {
        // An id that does not parse was never a cache key: nothing to evict.
        if let Ok(root) = JobId::parse(root) {
            tx.touch(&root);
        }
        tx.prepare_cached("DELETE FROM jobs WHERE parent_job_id = ?")?.execute([root])?;
        tx.prepare_cached("DELETE FROM jobs WHERE job_id = ?")?.execute([root])?;
    }
    Ok(roots.len() as u64)
}

/// Deletes the idempotency keys recorded before `cutoff`.
fn prune_idempotency_keys(tx: &WriteTx, cutoff: Timestamp) -> Result<u64> {
    let deleted = tx.prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?")?.execute([millis(&cutoff)])?;
    Ok(deleted as u64)
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn insert_job(&self, job: &Job, idempotency: Option<&IdempotencyKey>) -> Result<Inserted> {
        let (job, idempotency) = (job.clone(), idempotency.cloned());
        self.commits.write(Box::new(move |tx| insert_job(tx, &job, idempotency.as_ref()))).await
    }

    async fn insert_jobs(&self, trees: &[NewTree]) -> Result<Vec<Inserted>> {
        let trees = trees.to_vec();
        self.commits.write(Box::new(move |tx| insert_jobs(tx, &trees))).await
    }

    async fn get_job(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Job>> {
        Ok(self.get_job_shared(project_id, job_id).await?.map(Arc::unwrap_or_clone))
    }

    async fn get_job_shared(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Arc<Job>>> {
        let ticket = match self.trees.get(project_id, job_id) {
            Ok(tree) => return Ok(Some(tree)),
            Err(ticket) => ticket,
        };
        let Some(tree) = self.readers.read(|conn| read_tree(conn, project_id, job_id))? else { return Ok(None) };
        if &tree.job_id == job_id {
            let tree = Arc::new(tree);
            self.trees.store(ticket, &tree);
            return Ok(Some(tree));
        }
        Ok(tree.sub_jobs.into_iter().find(|sub| &sub.job_id == job_id).map(Arc::new))
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>> {
        let query = query.clone();
        self.readers.read_blocking(move |conn| list_jobs(conn, &query)).await
    }

    async fn project_of(&self, job_id: &JobId) -> Result<Option<ProjectId>> {
        let project: Option<String> = self.readers.read(|conn| {
            let mut statement = conn.prepare_cached("SELECT project_id FROM jobs WHERE job_id = ?")?;
            Ok(statement.query_row([job_id.as_str()], |row| row.get(0)).optional()?)
        })?;
        project.map(|p| ProjectId::parse(&p).map_err(|e| corrupt("project_id", e))).transpose()
    }

    async fn cursor_of(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Cursor>> {
        let row: Option<(i64, i64)> = self.readers.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT created_at, seq FROM jobs WHERE job_id = ? AND project_id = ? AND parent_job_id IS NULL",
            )?;
            Ok(statement
                .query_row((job_id.as_str(), project_id.as_str()), |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?)
        })?;
        row.map(|(created_at, seq)| Ok(Cursor { created_at: from_millis(created_at)?, seq })).transpose()
    }

    async fn apply_event(
        &self,
        project_id: &ProjectId,
        job_id: &JobId,
        event: &JobEvent,
        now: Timestamp,
    ) -> Result<Job> {
        let (project_id, job_id, event) = (project_id.clone(), job_id.clone(), event.clone());
        self.commits.write(Box::new(move |tx| apply_event(tx, &project_id, &job_id, &event, now))).await
    }

    async fn apply_task_events(
        &self,
        events: &[TaskEvent],
        scope: &TaskScope,
        now: Timestamp,
    ) -> Result<Vec<Result<Job>>> {
        let (events, scope) = (events.to_vec(), scope.clone());
        self.commits.write(Box::new(move |tx| apply_task_events(tx, &events, &scope, now))).await
    }

    async fn claim_tasks(&self, request: &ClaimRequest, now: Timestamp) -> Result<Vec<ClaimedTask>> {
        let request = request.clone();
        self.commits.write(Box::new(move |tx| claim_tasks(tx, &request, now))).await
    }

    async fn next_due_at(&self, request: &ClaimRequest) -> Result<Option<Timestamp>> {
        let mut sql = SqlText::default();
        sql.sql("SELECT MIN(due_at) AS due FROM jobs WHERE runnable = 1");
        push_claim_filters(&mut sql, request);
        let due = self
            .readers
            .read_blocking(move |conn| {
                let mut statement = conn.prepare_cached(&sql.text)?;
                Ok(statement.query_row(rusqlite::params_from_iter(sql.params.iter()), |row| row.get(0))?)
            })
            .await?;
        opt_from_millis(due)
    }

    async fn list_timed_out(&self, now: Timestamp, limit: u32) -> Result<Vec<JobRef>> {
        self.readers
            .read_blocking(move |conn| {
                read_job_refs(
                    conn,
                    "SELECT project_id, job_id FROM jobs WHERE deadline_at IS NOT NULL AND deadline_at <= ? \
                     AND status IN ('PENDING', 'RUNNING') ORDER BY deadline_at LIMIT ?",
                    millis(&now),
                    i64::from(limit),
                )
            })
            .await
    }

    async fn list_expired_last_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<JobRef>> {
        self.readers
            .read_blocking(move |conn| {
                read_job_refs(
                    conn,
                    "SELECT project_id, job_id FROM jobs WHERE rescuable = 1 AND lease_expires_at <= ? \
                     ORDER BY lease_expires_at LIMIT ?",
                    millis(&now),
                    i64::from(limit),
                )
            })
            .await
    }

    async fn prune_finished_jobs(&self, cutoff: Timestamp, limit: u32) -> Result<u64> {
        self.commits.write(Box::new(move |tx| prune_finished_jobs(tx, cutoff, limit))).await
    }

    async fn prune_idempotency_keys(&self, cutoff: Timestamp) -> Result<u64> {
        self.commits.write(Box::new(move |tx| prune_idempotency_keys(tx, cutoff))).await
    }

    async fn tidy_claim_path(&self) -> Result<u64> {
        // A delete or update removes its index entries at once: no dead entries to walk over.
        Ok(0)
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<Vec<QueueStat>> {
        self.readers
            .read_blocking(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT service, job_type, COUNT(*) AS depth, MIN(available_at) AS oldest FROM jobs \
                     WHERE runnable = 1 AND available_at <= ?1 AND (lease_expires_at IS NULL OR lease_expires_at <= ?1) \
                     GROUP BY service, job_type",
                )?;
                let mut rows = statement.query([millis(&now)])?;
                let mut stats = Vec::new();
                while let Some(row) = rows.next()? {
                    stats.push(QueueStat {
                        service: row.get(0)?,
                        job_type: row.get(1)?,
                        depth: row.get::<_, i64>(2)?.max(0) as u64,
                        oldest_due_at: from_millis(row.get(3)?)?,
                    });
                }
                Ok(stats)
            })
            .await
    }

    async fn open_tasks(&self, project_id: &ProjectId, now: Timestamp) -> Result<Vec<OpenTasks>> {
        let project_id = project_id.to_string();
        self.readers
            .read_blocking(move |conn| {
                let mut statement = conn.prepare_cached(OPEN_TASKS_SQL)?;
                let mut rows = statement.query(rusqlite::params![project_id, millis(&now)])?;
                let mut stats = Vec::new();
                while let Some(row) = rows.next()? {
                    stats.push(OpenTasks {
                        service: row.get(0)?,
                        job_type: row.get(1)?,
                        enterprise_project_id: row.get(2)?,
                        waiting: row.get::<_, i64>(3)?.max(0) as u64,
                        running: row.get::<_, i64>(4)?.max(0) as u64,
                        oldest_waiting_due_at: opt_from_millis(row.get(5)?)?,
                    });
                }
                Ok(stats)
            })
            .await
    }

    async fn finished_jobs(&self, project_id: &ProjectId, since: Timestamp) -> Result<Vec<FinishedJobs>> {
        let project_id = project_id.to_string();
        self.readers
            .read_blocking(move |conn| {
                let mut statement = conn.prepare_cached(FINISHED_JOBS_SQL)?;
                let mut rows = statement.query(rusqlite::params![project_id, millis(&since)])?;
                let mut counts = Vec::new();
                while let Some(row) = rows.next()? {
                    let status: String = row.get(4)?;
                    counts.push(FinishedJobs {
                        service: row.get(0)?,
                        job_type: row.get(1)?,
                        enterprise_project_id: row.get(2)?,
                        minute: from_millis(row.get(3)?)?,
                        status: status.parse().map_err(|e| corrupt("status", e))?,
                        count: row.get::<_, i64>(5)?.max(0) as u64,
                    });
                }
                Ok(counts)
            })
            .await
    }

    async fn held_leases(&self, project_id: &ProjectId, now: Timestamp, limit: u32) -> Result<Vec<HeldLease>> {
        let project_id = project_id.to_string();
        self.readers
            .read_blocking(move |conn| {
                let mut statement = conn.prepare_cached(HELD_LEASES_SQL)?;
                let mut rows = statement.query(rusqlite::params![project_id, millis(&now), limit])?;
                let mut leases = Vec::new();
                while let Some(row) = rows.next()? {
                    let parent: Option<String> = row.get(1)?;
                    leases.push(HeldLease {
                        job_id: JobId::parse(&row.get::<_, String>(0)?).map_err(|e| corrupt("job_id", e))?,
                        parent_job_id: parent
                            .map(|p| JobId::parse(&p))
                            .transpose()
                            .map_err(|e| corrupt("parent_job_id", e))?,
                        enterprise_project_id: row.get(2)?,
                        service: row.get(3)?,
                        job_type: row.get(4)?,
                        worker_id: row.get(5)?,
                        attempt: row.get::<_, i64>(6)?.max(0) as u32,
                        started_at: opt_from_millis(row.get(7)?)?,
                        updated_at: from_millis(row.get(8)?)?,
                        lease_expires_at: from_millis(row.get(9)?)?,
                    });
                }
                Ok(leases)
            })
            .await
    }

    async fn lead_maintenance(&self) -> Result<bool> {
        Ok(true) // one process owns the file
    }

    fn other_nodes_changes(&self) -> Option<tokio::sync::broadcast::Receiver<ChangeNotice>> {
        None // one process owns the file: there are no other nodes
    }

    async fn ping(&self) -> Result<()> {
        self.readers.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
    }
}

/// `open_tasks`: ?1 the project, ?2 now. Open rows only (the `jobs_open` index).
const OPEN_TASKS_SQL: &str = "SELECT service, job_type, enterprise_project_id, \
     SUM(CASE WHEN runnable = 1 AND available_at <= ?2 AND (lease_expires_at IS NULL OR lease_expires_at <= ?2) \
         THEN 1 ELSE 0 END), \
     SUM(CASE WHEN lease_worker_id IS NOT NULL AND lease_expires_at > ?2 THEN 1 ELSE 0 END), \
     MIN(CASE WHEN runnable = 1 AND available_at <= ?2 AND (lease_expires_at IS NULL OR lease_expires_at <= ?2) \
         THEN available_at END) \
     FROM jobs WHERE status IN ('PENDING', 'RUNNING') AND project_id = ?1 \
     GROUP BY service, job_type, enterprise_project_id";

/// `finished_jobs`: ?1 the project, ?2 since (the `jobs_ended` index).
const FINISHED_JOBS_SQL: &str =
    "SELECT service, job_type, enterprise_project_id, (ended_at / 60000) * 60000 AS minute, \
     status, COUNT(*) FROM jobs \
     WHERE parent_job_id IS NULL AND ended_at IS NOT NULL AND ended_at >= ?2 AND project_id = ?1 \
     GROUP BY service, job_type, enterprise_project_id, minute, status";

/// `held_leases`: ?1 the project, ?2 now, ?3 the limit.
const HELD_LEASES_SQL: &str = "SELECT job_id, parent_job_id, enterprise_project_id, service, job_type, \
     lease_worker_id, attempt, started_at, updated_at, lease_expires_at FROM jobs \
     WHERE status IN ('PENDING', 'RUNNING') AND project_id = ?1 AND lease_worker_id IS NOT NULL \
     AND lease_expires_at > ?2 ORDER BY lease_worker_id, lease_expires_at, job_id LIMIT ?3";
