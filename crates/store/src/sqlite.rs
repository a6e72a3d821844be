//! The embedded SQLite backend: one WAL-mode file, a single writer connection, a few readers.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use jobd_core::{apply, Job, JobEvent, JobId, JobStatus, JobType, ProjectId, ServiceName, Timestamp};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use jobd_core::{Cursor, Direction, JobQuery};

use crate::{JobStore, Result, StoreError};

/// The file the store keeps under the data directory.
pub const DATABASE_FILE: &str = "jobd.sqlite3";

const JOB_COLUMNS: &str = "seq, job_id, parent_job_id, project_id, enterprise_project_id, service, job_type, \
     status, message, resource_id, entities, error_code, error_msg, payload, result, simulate, \
     created_at, started_at, ended_at, updated_at, version";

#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the store under `data_dir` and applies pending migrations.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::DataDir { path: data_dir.to_owned(), source })?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join(DATABASE_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let readers = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        Ok(SqliteStore { writer, readers })
    }
}

fn millis(t: &Timestamp) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> Result<Timestamp> {
    Utc.timestamp_millis_opt(ms).single().ok_or_else(|| StoreError::Corrupt(format!("bad timestamp {ms}")))
}

fn opt_from_millis(ms: Option<i64>) -> Result<Option<Timestamp>> {
    ms.map(from_millis).transpose()
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain values serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: Option<String>) -> Result<Option<T>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))).transpose()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn job_from_row(row: &SqliteRow) -> Result<Job> {
    let parent: Option<String> = row.try_get("parent_job_id")?;
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
        sub_jobs: Vec::new(),
    })
}

async fn insert_row(conn: &mut SqliteConnection, job: &Job, position: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (job_id, parent_job_id, position, project_id, enterprise_project_id, service, job_type, \
         status, message, resource_id, entities, error_code, error_msg, payload, result, simulate, \
         created_at, started_at, ended_at, updated_at, version) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(job.job_id.as_str())
    .bind(job.parent_job_id.as_ref().map(|p| p.as_str()))
    .bind(position)
    .bind(job.project_id.as_str())
    .bind(&job.enterprise_project_id)
    .bind(job.service.as_str())
    .bind(job.job_type.as_str())
    .bind(job.status.as_str())
    .bind(&job.message)
    .bind(&job.resource_id)
    .bind(to_json(&job.entities))
    .bind(&job.error_code)
    .bind(&job.error_msg)
    .bind(job.payload.as_ref().map(to_json))
    .bind(job.result.as_ref().map(to_json))
    .bind(job.simulate.as_ref().map(to_json))
    .bind(millis(&job.created_at))
    .bind(job.started_at.as_ref().map(millis))
    .bind(job.ended_at.as_ref().map(millis))
    .bind(millis(&job.updated_at))
    .bind(job.version)
    .execute(&mut *conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(job.job_id.to_string()),
        _ => StoreError::Backend(e),
    })?;
    Ok(())
}

async fn update_row(conn: &mut SqliteConnection, job: &Job, previous_version: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE jobs SET status = ?, message = ?, error_code = ?, error_msg = ?, result = ?, \
         started_at = ?, ended_at = ?, updated_at = ?, version = ? WHERE job_id = ? AND version = ?",
    )
    .bind(job.status.as_str())
    .bind(&job.message)
    .bind(&job.error_code)
    .bind(&job.error_msg)
    .bind(job.result.as_ref().map(to_json))
    .bind(job.started_at.as_ref().map(millis))
    .bind(job.ended_at.as_ref().map(millis))
    .bind(millis(&job.updated_at))
    .bind(job.version)
    .bind(job.job_id.as_str())
    .bind(previous_version)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Corrupt(format!("job {} changed under a write", job.job_id)));
    }
    Ok(())
}

/// Loads the sub-jobs of the given parents and attaches them in order.
async fn attach_sub_jobs<'e, E>(executor: E, parents: &mut [Job]) -> Result<()>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    if parents.is_empty() {
        return Ok(());
    }
    let mut builder = QueryBuilder::<Sqlite>::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE parent_job_id IN ("));
    let mut ids = builder.separated(", ");
    for parent in parents.iter() {
        ids.push_bind(parent.job_id.as_str());
    }
    builder.push(") ORDER BY parent_job_id, position");
    let rows = builder.build().fetch_all(executor).await?;
    let index: HashMap<JobId, usize> = parents.iter().enumerate().map(|(i, p)| (p.job_id.clone(), i)).collect();
    for row in &rows {
        let sub = job_from_row(row)?;
        if let Some(&i) = sub.parent_job_id.as_ref().and_then(|parent_id| index.get(parent_id)) {
            parents[i].sub_jobs.push(sub);
        }
    }
    Ok(())
}

async fn load_tree(conn: &mut SqliteConnection, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Job>> {
    let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ? AND project_id = ?"))
        .bind(job_id.as_str())
        .bind(project_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let job = job_from_row(&row)?;
    let root = match &job.parent_job_id {
        None => job,
        Some(parent_id) => {
            let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?"))
                .bind(parent_id.as_str())
                .fetch_one(&mut *conn)
                .await?;
            job_from_row(&row)?
        }
    };
    let mut roots = [root];
    attach_sub_jobs(&mut *conn, &mut roots).await?;
    let [root] = roots;
    Ok(Some(root))
}

/// `AND column IN (values)`; an empty value also matches a job without one (NULL).
fn push_any<'a>(builder: &mut QueryBuilder<'a, Sqlite>, column: &str, values: impl Iterator<Item = String>) {
    let values: Vec<String> = values.collect();
    if values.is_empty() {
        return;
    }
    builder.push(format!(" AND ({column} IN ("));
    let mut list = builder.separated(", ");
    for value in &values {
        list.push_bind(value.clone());
    }
    builder.push(")");
    if values.iter().any(String::is_empty) {
        builder.push(format!(" OR {column} IS NULL"));
    }
    builder.push(")");
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn insert_job(&self, job: &Job) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        insert_row(&mut tx, job, 0).await?;
        for (position, sub) in job.sub_jobs.iter().enumerate() {
            insert_row(&mut tx, sub, position as i64).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_job(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Job>> {
        let mut conn = self.readers.acquire().await?;
        let Some(tree) = load_tree(&mut conn, project_id, job_id).await? else { return Ok(None) };
        if &tree.job_id == job_id {
            return Ok(Some(tree));
        }
        Ok(tree.sub_jobs.into_iter().find(|sub| &sub.job_id == job_id))
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>> {
        let mut builder = QueryBuilder::<Sqlite>::new(format!(
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
        let mut conn = self.readers.acquire().await?;
        let rows = builder.build().fetch_all(&mut *conn).await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        if query.direction == Direction::Newer {
            jobs.reverse();
        }
        attach_sub_jobs(&mut *conn, &mut jobs).await?;
        Ok(jobs)
    }

    async fn cursor_of(&self, project_id: &ProjectId, job_id: &JobId) -> Result<Option<Cursor>> {
        let row = sqlx::query(
            "SELECT created_at, seq FROM jobs WHERE job_id = ? AND project_id = ? AND parent_job_id IS NULL",
        )
        .bind(job_id.as_str())
        .bind(project_id.as_str())
        .fetch_optional(&self.readers)
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
        let mut tx = self.writer.begin().await?;
        let tree =
            load_tree(&mut tx, project_id, job_id).await?.ok_or_else(|| StoreError::NotFound(job_id.to_string()))?;
        let next = apply(&tree, job_id, event, now)?;
        for (old, new) in tree.iter_tree().zip(next.iter_tree()) {
            if new.version != old.version {
                update_row(&mut tx, new, old.version).await?;
            }
        }
        tx.commit().await?;
        Ok(next)
    }

    async fn list_open_simulated_jobs(&self, after: Option<&JobId>, limit: u32) -> Result<Vec<Job>> {
        let mut conn = self.readers.acquire().await?;
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs AS j WHERE parent_job_id IS NULL AND status IN ('PENDING', 'RUNNING') \
             AND (simulate IS NOT NULL OR EXISTS (SELECT 1 FROM jobs AS s WHERE s.parent_job_id = j.job_id \
             AND s.simulate IS NOT NULL)) \
             AND seq > COALESCE((SELECT seq FROM jobs WHERE job_id = ?), 0) ORDER BY seq LIMIT ?"
        ))
        .bind(after.map(|id| id.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        attach_sub_jobs(&mut *conn, &mut jobs).await?;
        Ok(jobs)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }
}
