//! Workers' events applied in batches. Events on claims this node kept in `task_queue`
//! (`kept_claims`) are written by one statement, without a transaction around it or a read
//! before it; the rest lock their roots in id order, read them, run the state machine over every
//! event and write every changed row by one statement.

use super::*;

pub(super) async fn apply_task_events(
    store: &PgStore,
    events: &[TaskEvent],
    scope: &TaskScope,
    now: Timestamp,
) -> Result<Vec<Result<Job>>> {
    let mut answers: Vec<Option<Result<Job>>> = events.iter().map(|_| None).collect();
    let kept = store.kept_claims.take(events.iter().map(|e| &e.job_id));
    let kept_written = !kept.is_empty() && apply_to_kept_claims(store, events, scope, now, kept, &mut answers).await?;
    let rest: Vec<usize> = (0..events.len()).filter(|&i| answers[i].is_none()).collect();
    if !rest.is_empty() {
        let rest_events: Vec<&TaskEvent> = rest.iter().map(|&i| &events[i]).collect();
        let rest_answers = match apply_to_locked_roots(store, &rest_events, scope, now).await {
            Ok(answers) => answers,
            // Some were written by a statement of their own: they are answered, and each of the
            // others fails as the call would have (nothing was written for them).
            Err(error) if kept_written => {
                rest_events.iter().map(|_| Err(StoreError::Unavailable(error.to_string()))).collect()
            }
            Err(error) => return Err(error),
        };
        for (i, answer) in rest.into_iter().zip(rest_answers) {
            answers[i] = Some(answer);
        }
    }
    Ok(answers.into_iter().map(|answer| answer.expect("every event is answered")).collect())
}

/// The events on claims this node kept: each job's events applied to the job as its claim left
/// it, and every job whose events all applied written by one statement, only where its row still
/// has the version the claim read. That version means the job is as kept (`kept_claims`), so the
/// write needs no lock taken before it: it takes each row's lock as it writes it (the rows come
/// sorted by id, and a batch's plan walks them in that order, a nested loop of index probes),
/// then the queue rows. The events of a job not written (refused, changing nothing, or on a row
/// written since) are left unanswered, for the caller's locked path to decide on the job as it
/// now stands; so are all of them when the server ends the statement to break a deadlock (the
/// same tasks reported twice at once, once on each path, with a plan that took the rows in
/// another order). Answers whether it wrote any.
async fn apply_to_kept_claims(
    store: &PgStore,
    events: &[TaskEvent],
    scope: &TaskScope,
    now: Timestamp,
    mut kept: HashMap<String, KeptClaim>,
    answers: &mut [Option<Result<Job>>],
) -> Result<bool> {
    // Each kept job's events, in the order they came.
    let mut events_of: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, task_event) in events.iter().enumerate() {
        let job_id = task_event.job_id.as_str();
        if kept.contains_key(job_id) {
            events_of.entry(job_id.to_owned()).or_default().push(i);
        }
    }
    // By job id (the map's order): the order the write takes the rows' locks in.
    let mut rows = RowColumns::default();
    // Each job's answers, the last one the job as written.
    let mut outcomes: Vec<(String, Vec<(usize, Job)>)> = Vec::with_capacity(events_of.len());
    for (job_id, indices) in events_of {
        let Some(claim) = kept.remove(&job_id) else { continue };
        let (stored, mut current) = claim.into_pair();
        let all = indices.len();
        let mut applied = Vec::with_capacity(all);
        for i in indices {
            let task_event = &events[i];
            if !current.find(&task_event.job_id).is_some_and(|task| scope.allows(task)) {
                break;
            }
            match apply(&current, &task_event.job_id, &task_event.event, now) {
                Ok(next) => {
                    applied.push((i, next.clone()));
                    current = next;
                }
                Err(_) => break,
            }
        }
        if applied.len() == all {
            rows.push_changes(&stored, &current);
            outcomes.push((job_id, applied));
        }
    }
    if rows.is_empty() {
        return Ok(false);
    }
    let mut conn = store.pool()?.acquire().await?;
    let written: std::collections::HashSet<String> = match rows.update_unchanged(&mut conn).await {
        Ok(written) => written.into_iter().collect(),
        Err(error) if error.is_deadlock() => return Ok(false),
        Err(error) => return Err(error),
    };
    drop(conn);
    let any_written = !written.is_empty();
    for (job_id, applied) in outcomes {
        if let Some((_, tree)) = applied.last().filter(|_| written.contains(&job_id)) {
            store.notifier.changed(tree);
            for (i, job) in applied {
                answers[i] = Some(Ok(job));
            }
        }
    }
    Ok(any_written)
}

/// Events applied under their roots' locks: the roots locked in id order and read, the state
/// machine run over every event, every changed row written by one statement.
async fn apply_to_locked_roots(
    store: &PgStore,
    events: &[&TaskEvent],
    scope: &TaskScope,
    now: Timestamp,
) -> Result<Vec<Result<Job>>> {
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
