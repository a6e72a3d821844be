//! Batch inserts on PostgreSQL: all trees in one multi-row statement, and the idempotency keys
//! they carry settled first.

use super::*;
use crate::batch::KeyPlan;

/// Settles every first use of a key in the batch: a key stored before answers its job
/// (`Existing`), or fails the batch (`KeyConflict`) when the request differs; the others are
/// recorded for the jobs this batch creates. Another transaction may record the same key at
/// the same moment: our insert waits for its commit and skips the key, and the next round
/// finds its job.
async fn resolve_keys(
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

pub(super) async fn insert_jobs(store: &PgStore, trees: &[NewTree]) -> Result<Vec<Inserted>> {
    let plan = KeyPlan::new(trees)?;
    let mut answers: Vec<Option<Inserted>> = vec![None; trees.len()];
    if plan.first_uses.is_empty() {
        // No key to settle: the one statement that inserts every row is its own transaction
        // (one round trip instead of three: no `BEGIN`, no `COMMIT`).
        let mut rows = RowColumns::default();
        for tree in trees {
            rows.push_new_tree(&tree.job)?;
        }
        rows.insert(&mut *store.pool()?.acquire().await?).await?;
    } else {
        let mut tx = store.pool()?.begin().await?;
        resolve_keys(&mut tx, trees, &plan, &mut answers).await?;
        let mut rows = RowColumns::default();
        for (index, tree) in trees.iter().enumerate() {
            if plan.creates(index, &answers) {
                rows.push_new_tree(&tree.job)?;
            }
        }
        rows.insert(&mut tx).await?;
        tx.commit().await?;
    }
    let answers = plan.finish(trees, answers);
    for (tree, answer) in trees.iter().zip(&answers) {
        if *answer == Inserted::Created {
            store.notifier.changed(&tree.job);
        }
    }
    Ok(answers)
}
