//! Claims: the candidates a claim takes from `task_queue`, best first, with their roots locked.

use super::*;

/// The filters of a claim request, on the task columns of `table` (an alias, or `jobs`).
pub(super) fn push_claim_filters(builder: &mut QueryBuilder<'_, Postgres>, table: &str, request: &ClaimRequest) {
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
pub(super) struct Candidate {
    pub(super) job_id: JobId,
    pub(super) root_id: JobId,
}

/// The job columns of the row aliased `r` (a root a statement locks).
pub(super) static ROOT_COLUMNS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| JOB_COLUMNS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", "));

/// Whether the locked root `r` has sub-jobs. Sub-jobs are created with their root and never
/// added later, so the statement's snapshot answers it as well as a later one would.
/// (A `LIMIT` subquery, not `EXISTS`: the planner may run an `EXISTS` as a hashed subplan that
/// reads every job.)
pub(super) const HAS_SUB_JOBS: &str =
    "(SELECT TRUE FROM jobs AS s WHERE s.parent_job_id = r.job_id LIMIT 1) IS NOT NULL AS has_sub_jobs";

/// `has_sub_jobs` of a claim candidate's root, without reading a row: a task is either a job
/// without sub-jobs (its own root) or a sub-job, and `task_queue` holds tasks only.
const TASK_UNDER_ROOT: &str = "t.job_id <> t.root_id AS has_sub_jobs";

/// Root rows a statement has just locked (each as locked, that is as the last committed write
/// left it), completed into trees: the sub-jobs of those that have any are read by one more
/// statement, after the lock, so they are as current as the root.
pub(super) async fn locked_trees(conn: &mut PgConnection, rows: &[PgRow]) -> Result<HashMap<JobId, Job>> {
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
pub(super) async fn lock_claim_candidates(
    conn: &mut PgConnection,
    request: &ClaimRequest,
    now: Timestamp,
    tried: &[String],
    limit: usize,
) -> Result<(Vec<Candidate>, HashMap<JobId, Job>)> {
    let now = millis(&now);
    let mut builder = QueryBuilder::<Postgres>::new(format!(
        "SELECT t.job_id AS task_id, {TASK_UNDER_ROOT}, {} FROM task_queue AS t \
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

pub(super) async fn claim_tasks(store: &PgStore, request: &ClaimRequest, now: Timestamp) -> Result<Vec<ClaimedTask>> {
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
    let mut tx = store
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
        let (candidates, locked) = lock_claim_candidates(&mut tx, request, now, &tried, wanted - claimed.len()).await?;
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
            store.notifier.changed(after);
        }
    }
    Ok(claimed.into_iter().map(|(root_id, task_id)| ClaimedTask { tree: trees[&root_id].1.clone(), task_id }).collect())
}
