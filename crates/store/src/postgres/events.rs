//! Workers' events applied in batches: the roots locked in id order and read, the state machine
//! run over every event, every changed row written by one statement.

use super::*;

pub(super) async fn apply_task_events(
    store: &PgStore,
    events: &[TaskEvent],
    scope: &TaskScope,
    now: Timestamp,
) -> Result<Vec<Result<Job>>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let task_ids: Vec<String> = events.iter().map(|e| e.job_id.to_string()).collect();
    let mut tx = store.pool()?.begin().await?;
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
    // Each tree as stored (what the write compares with) and as it stands (what events apply to).
    let mut trees: HashMap<JobId, (Job, Job)> = locked_trees(&mut tx, &rows).await?;
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
            store.notifier.changed(after);
        }
    }
    Ok(answers)
}
