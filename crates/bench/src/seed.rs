//! Filling a store fast: a few template jobs are created through the native API (so every column
//! is what jobd itself writes), run to their end by the built-in simulator, then copied in SQL
//! with new ids and earlier creation times. Copies have no sub-jobs.
//!
//! Copy `i` of template `t` gets the id `clone_id(t, i)`: a bijection of `i`, so ids are unique,
//! scattered over the index like random ones, and known to the bench without reading them back.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use sqlx::{Connection, Executor};

use crate::node::{Backend, Node, Store, PROJECT};

/// The services the copies are spread over, one template each.
pub const SERVICES: [&str; 3] = ["cfw", "waf", "elb"];

/// Multiplying by an odd number is a bijection modulo 2^48.
const SCATTER: u64 = 2_654_435_761;
const MODULUS: u64 = 1 << 48;

pub fn clone_id(template: usize, i: u64) -> String {
    let scattered = (i.wrapping_mul(SCATTER)) % MODULUS;
    if SERVICES[template] == "waf" {
        format!("{:08x}{:024x}", template + 1, scattered)
    } else {
        format!("{:08x}-0000-4000-8000-{:012x}", template + 1, scattered)
    }
}

/// The template jobs, created through the API and awaited until they succeeded.
pub async fn create_templates(node: &Node) -> anyhow::Result<Vec<String>> {
    let client = node.client()?;
    let mut ids = Vec::new();
    for service in SERVICES {
        let body = json!({
            "service": service,
            "job_type": "CreateResource",
            "resource_id": "3f1d2c4b-5a69-4e7d-8c0b-1a2b3c4d5e6f",
            "entities": [{"resource_id": "3f1d2c4b-5a69-4e7d-8c0b-1a2b3c4d5e6f", "resource_type": "resource"}],
            "payload": {"name": "bench", "size": 3},
            "simulate": {"duration_ms": 0, "outcome": "success"},
        });
        let created = client.create_job_from_json(PROJECT, &body, None).await?;
        ids.push(created.job.job_id);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &ids {
        while !client.get_job(PROJECT, id).await?.is_terminal() {
            if Instant::now() > deadline {
                bail!("template job {id} did not finish");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(ids)
}

/// Copies each template `per_template` times, copies numbered `from + 1 ..= from + per_template`,
/// in batches on one connection. Run with the node stopped (SQLite) or idle.
pub async fn copy_templates(store: &Store, templates: &[String], from: u64, per_template: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    match store.backend {
        Backend::Sqlite => copy_sqlite(store, templates, from, per_template).await?,
        Backend::Postgres => copy_postgres(store, templates, from, per_template).await?,
    }
    eprintln!("seeded {} jobs in {:.1} s", per_template * templates.len() as u64, started.elapsed().as_secs_f64());
    Ok(())
}

/// `(first, count)` of each batch of copies numbered `from + 1 ..= from + per_template`.
fn batches(from: u64, per_template: u64) -> impl Iterator<Item = (u64, u64)> {
    const BATCH: u64 = 200_000;
    (0..per_template).step_by(BATCH as usize).map(move |done| (from + done + 1, BATCH.min(per_template - done)))
}

/// The `jobs` columns to copy as they are (all but the key, the id and the creation time).
fn copied_columns(all: Vec<(String,)>) -> String {
    let columns: Vec<String> =
        all.into_iter().map(|(c,)| c).filter(|c| !matches!(c.as_str(), "seq" | "job_id" | "created_at")).collect();
    columns.join(", ")
}

fn check_copied(rows_affected: u64, count: u64) -> anyhow::Result<()> {
    if rows_affected != count {
        bail!("copied {rows_affected} jobs, wanted {count}");
    }
    Ok(())
}

async fn copy_sqlite(store: &Store, templates: &[String], from: u64, per_template: u64) -> anyhow::Result<()> {
    let path = store.data_dir().join("jobd.sqlite3");
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
    let columns =
        copied_columns(sqlx::query_as("SELECT name FROM pragma_table_info('jobs')").fetch_all(&mut db).await?);
    db.execute("PRAGMA synchronous = OFF").await?;
    for (template, template_id) in templates.iter().enumerate() {
        let id = if SERVICES[template] == "waf" {
            format!("printf('%08x%024x', {}, (n.i * {SCATTER}) % {MODULUS})", template + 1)
        } else {
            format!("printf('%08x-0000-4000-8000-%012x', {}, (n.i * {SCATTER}) % {MODULUS})", template + 1)
        };
        let sql = format!(
            "INSERT INTO jobs (job_id, created_at, {columns}) \
             WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
             SELECT {id}, t.created_at - n.i, {columns} FROM jobs t, n WHERE t.job_id = ?3"
        );
        for (first, count) in batches(from, per_template) {
            let mut tx = db.begin().await?;
            let inserted = sqlx::query(&sql)
                .bind(first as i64)
                .bind((first + count - 1) as i64)
                .bind(template_id)
                .execute(&mut *tx)
                .await
                .context("copying template jobs (SQLite)")?;
            tx.commit().await?;
            check_copied(inserted.rows_affected(), count)?;
        }
    }
    Ok(())
}

async fn copy_postgres(store: &Store, templates: &[String], from: u64, per_template: u64) -> anyhow::Result<()> {
    let url = store.database_url().context("a PostgreSQL store has a URL")?;
    let mut db = sqlx::PgConnection::connect(url).await?;
    let columns = copied_columns(
        sqlx::query_as(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'jobs' \
             ORDER BY ordinal_position",
        )
        .fetch_all(&mut db)
        .await?,
    );
    db.execute("SET synchronous_commit = off").await?;
    let scattered = format!("lpad(to_hex((n.i * {SCATTER}) % {MODULUS}), 12, '0')");
    for (template, template_id) in templates.iter().enumerate() {
        let prefix = format!("lpad(to_hex({}), 8, '0')", template + 1);
        let id = if SERVICES[template] == "waf" {
            format!("{prefix} || '000000000000' || {scattered}")
        } else {
            format!("{prefix} || '-0000-4000-8000-' || {scattered}")
        };
        let sql = format!(
            "INSERT INTO jobs (job_id, created_at, {columns}) \
             SELECT {id}, t.created_at - n.i, {columns} \
             FROM jobs t, generate_series($1::bigint, $2::bigint) AS n(i) WHERE t.job_id = $3"
        );
        for (first, count) in batches(from, per_template) {
            let inserted = sqlx::query(&sql)
                .bind(first as i64)
                .bind((first + count - 1) as i64)
                .bind(template_id)
                .execute(&mut db)
                .await
                .context("copying template jobs (PostgreSQL)")?;
            check_copied(inserted.rows_affected(), count)?;
        }
    }
    db.execute("VACUUM ANALYZE jobs").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_ids_are_unique_and_well_formed() {
        let ids: std::collections::HashSet<String> = (1..=10_000).map(|i| clone_id(0, i)).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(uuid::Uuid::parse_str(&clone_id(2, 10_000_000)).is_ok());
        let waf = clone_id(1, 5);
        assert_eq!(waf.len(), 32);
        assert!(waf.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn batches_cover_the_range_once() {
        let all: Vec<(u64, u64)> = batches(10, 450_000).collect();
        assert_eq!(all, vec![(11, 200_000), (200_011, 200_000), (400_011, 50_000)]);
        assert_eq!(batches(0, 0).count(), 0);
    }
}
