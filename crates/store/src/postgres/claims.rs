//! Claims: the candidates a claim takes from `task_queue`, best first; the roots it locks when a
//! claim cannot stay in the queue row alone (`pending_claims`).

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

/// A task a claim may take, the root of its tree, and whether its queue row holds a claim.
pub(super) struct Candidate {
    pub(super) job_id: JobId,
    pub(super) root_id: JobId,
    pub(super) pending: bool,
}

impl Candidate {
    /// Whether its claim may stay in `task_queue` alone, as far as the queue row tells: a lone job
    /// whose row holds no claim yet (`pending_claims::may_stay_in_queue` decides the rest).
    fn may_be_queued(&self) -> bool {
        self.job_id == self.root_id && !self.pending
    }
}

/// [`JOB_COLUMNS`] of the row aliased `alias`.
fn job_columns_of(alias: &str) -> String {
    JOB_COLUMNS.split(", ").map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ")
}

/// The job columns of the row aliased `r` (a root a statement locks).
pub(super) static ROOT_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| job_columns_of("r"));

/// The job columns of the row aliased `j` (a candidate's job row, read with it).
static CANDIDATE_JOB_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| job_columns_of("j"));

/// Whether the locked root `r` has sub-jobs. Sub-jobs are created with their root and never
/// added later, so the statement's snapshot answers it as well as a later one would.
/// (A `LIMIT` subquery, not `EXISTS`: the planner may run an `EXISTS` as a hashed subplan that
/// reads every job.)
pub(super) const HAS_SUB_JOBS: &str =
    "(SELECT TRUE FROM jobs AS s WHERE s.parent_job_id = r.job_id LIMIT 1) IS NOT NULL AS has_sub_jobs";

/// Root rows a statement has just locked (each as locked, that is as the last committed write
/// left it), completed into trees: the sub-jobs of those that have any are read by one more
/// statement, after the lock, so they are as current as the root. Each tree as stored and as it
/// stands (`pending_claims`).
pub(super) async fn locked_trees(conn: &mut PgConnection, rows: &[PgRow]) -> Result<HashMap<JobId, (Job, Job)>> {
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
    apply_pending_claims(conn, trees).await
}

/// Up to `limit` claimable tasks not yet `tried`, best first, their `task_queue` rows taken by
/// this transaction (`SKIP LOCKED`: rows another transaction holds are passed over, not waited
/// for), and, read by the same statement, the job rows of those that may be queued (lone jobs
/// whose queue rows hold no claim). While the claim holds the queue rows, no write of their jobs
/// can commit (`pending_claims`). A job row is kept only when it has the version its queue row
/// names: the row is read in the statement's snapshot, while a queue row written by a transaction
/// that committed after it is taken as it now stands, and every write of a job row rewrites its
/// queue row in the same statement. Lone candidates without a row here (rare) are read again.
async fn take_candidates(
    conn: &mut PgConnection,
    request: &ClaimRequest,
    now: Timestamp,
    tried: &[String],
    limit: usize,
) -> Result<(Vec<Candidate>, HashMap<JobId, Job>)> {
    let mut builder = QueryBuilder::<Postgres>::new(
        "WITH c AS (SELECT t.job_id, t.root_id, t.claim_token IS NOT NULL AS pending, t.version, t.priority, \
         t.due_at, t.seq FROM task_queue AS t WHERE t.runnable",
    );
    push_claim_filters(&mut builder, "t", request);
    // Due: `GREATEST(due_at, lease_expires_at)` (`task_queue.due_at`); the claim index walks
    // `due_at`, and a row holding a claim whose lease has not expired is passed over.
    builder.push(" AND t.due_at <= ").push_bind(millis(&now));
    builder.push(" AND COALESCE(t.lease_expires_at, 0) <= ").push_bind(millis(&now));
    if !tried.is_empty() {
        builder.push(" AND t.job_id <> ALL(").push_bind(tried.to_vec()).push(")");
    }
    builder
        .push(" ORDER BY t.priority DESC, t.due_at, t.seq LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .push(" FOR UPDATE OF t SKIP LOCKED) ")
        .push(format!(
            "SELECT c.job_id AS candidate_id, c.root_id AS candidate_root_id, c.pending, \
             c.version AS queued_version, c.priority AS candidate_priority, c.due_at AS candidate_due_at, \
             c.seq AS candidate_seq, {} FROM c LEFT JOIN jobs AS j \
             ON j.job_id = c.job_id AND c.job_id = c.root_id AND NOT c.pending",
            *CANDIDATE_JOB_COLUMNS
        ));
    let rows = builder.build().fetch_all(&mut *conn).await?;
    let mut ranked = Vec::with_capacity(rows.len());
    let mut jobs = HashMap::new();
    for row in &rows {
        let id = |column: &str| -> Result<JobId> { JobId::parse(row.try_get(column)?).map_err(|e| corrupt(column, e)) };
        let candidate = Candidate {
            job_id: id("candidate_id")?,
            root_id: id("candidate_root_id")?,
            pending: row.try_get("pending")?,
        };
        let joined = row.try_get::<Option<i64>, _>("version")?;
        if joined.is_some() && joined == Some(row.try_get::<i64, _>("queued_version")?) {
            jobs.insert(candidate.job_id.clone(), job_from_row(row)?);
        }
        let rank: (i32, i64, i64) =
            (row.try_get("candidate_priority")?, row.try_get("candidate_due_at")?, row.try_get("candidate_seq")?);
        ranked.push((rank, candidate));
    }
    // Best first, as the scan took them: higher priority, then due earlier, then created earlier.
    ranked.sort_by(|((p1, d1, s1), _), ((p2, d2, s2), _)| p2.cmp(p1).then(d1.cmp(d2)).then(s1.cmp(s2)));
    let candidates: Vec<Candidate> = ranked.into_iter().map(|(_, candidate)| candidate).collect();
    let unread: Vec<String> = candidates
        .iter()
        .filter(|c| c.may_be_queued() && !jobs.contains_key(&c.job_id))
        .map(|c| c.job_id.to_string())
        .collect();
    jobs.extend(read_lone_jobs(conn, &unread).await?);
    Ok((candidates, jobs))
}

/// The rows of lone jobs whose queue rows this claim holds, as stored (no claim pending).
async fn read_lone_jobs(conn: &mut PgConnection, job_ids: &[String]) -> Result<HashMap<JobId, Job>> {
    if job_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ANY($1)"))
        .bind(job_ids)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            let job = job_from_row(row)?;
            Ok((job.job_id.clone(), job))
        })
        .collect()
}

/// The roots of `root_ids` this transaction can lock now (`SKIP LOCKED`), as trees.
async fn lock_roots(conn: &mut PgConnection, root_ids: &[String]) -> Result<HashMap<JobId, (Job, Job)>> {
    if root_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT {HAS_SUB_JOBS}, {} FROM jobs AS r WHERE r.job_id = ANY($1) AND r.parent_job_id IS NULL \
         FOR UPDATE SKIP LOCKED",
        *ROOT_COLUMNS
    ))
    .bind(root_ids)
    .fetch_all(&mut *conn)
    .await?;
    locked_trees(conn, &rows).await
}

/// A task this claim took.
enum Taken {
    /// Its claim stays in `task_queue`: the lone job as stored and as it now stands.
    Queued(Box<KeptClaim>),
    /// Its tree's rows are written: the tree's root.
    Written(JobId),
}

pub(super) async fn claim_tasks(store: &PgStore, request: &ClaimRequest, now: Timestamp) -> Result<Vec<ClaimedTask>> {
    let wanted = (request.max_tasks as usize).min(MAX_BATCH);
    if wanted == 0 {
        return Ok(Vec::new());
    }
    // The claim must walk `task_queue_claimable` in order and stop at the limit. Whatever the
    // statistics say (they lag behind a queue that fills fast, or see every row runnable right
    // after an analyse), a bitmap scan, or a scan of `task_queue_due` and a sort, would read and
    // sort every waiting task on each claim (116 to 170 ms at 50,000 to 100,000 waiting tasks,
    // against a few ms in index order). The candidates' job rows are read by one index probe
    // each (a nested loop), never by a hash or merge join over the whole of `jobs`. Set in the
    // same round trip as `BEGIN`.
    let mut tx = store
        .pool()?
        .begin_with(
            "BEGIN; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off; \
             SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off",
        )
        .await?;
    // Trees whose rows this claim writes: as stored, and with this batch's claims applied.
    let mut trees: HashMap<JobId, (Job, Job)> = HashMap::new();
    let mut queued = QueuedClaims::default();
    let mut taken: Vec<(Taken, JobId)> = Vec::with_capacity(wanted);
    let mut tried: Vec<String> = Vec::new();
    for _ in 0..CLAIM_ROUNDS {
        let (candidates, mut stored) = take_candidates(&mut tx, request, now, &tried, wanted - taken.len()).await?;
        if candidates.is_empty() {
            break;
        }
        tried.extend(candidates.iter().map(|c| c.job_id.to_string()));
        let mut any_refused = false;
        let mut to_write: Vec<&Candidate> = Vec::new();
        for candidate in &candidates {
            if !candidate.may_be_queued() {
                to_write.push(candidate);
                continue;
            }
            let Some(job) = stored.remove(&candidate.job_id) else {
                any_refused = true;
                continue;
            };
            match apply(&job, &candidate.job_id, &JobEvent::Claim { lease: request.new_lease(now) }, now) {
                Ok(after) if may_stay_in_queue(&job, &after) => {
                    queued.push(&after, now, None);
                    let kept = KeptClaim { stored: job, now: Arc::new(after) };
                    taken.push((Taken::Queued(Box::new(kept)), candidate.job_id.clone()));
                }
                Ok(_) => to_write.push(candidate),
                Err(error) => {
                    any_refused = true;
                    tracing::debug!(job_id = %candidate.job_id, %error, "claim candidate refused");
                }
            }
        }
        if !to_write.is_empty() {
            // These need their roots: the state machine decides on the trees as the last
            // committed write left them (with any claim their queue rows hold applied).
            let roots: Vec<String> =
                to_write.iter().filter(|c| !trees.contains_key(&c.root_id)).map(|c| c.root_id.to_string()).collect();
            for (root_id, pair) in lock_roots(&mut tx, &roots).await? {
                trees.entry(root_id).or_insert(pair);
            }
            for candidate in to_write {
                let Some((_, current)) = trees.get_mut(&candidate.root_id) else {
                    any_refused = true; // another transaction holds the root
                    continue;
                };
                match apply(current, &candidate.job_id, &JobEvent::Claim { lease: request.new_lease(now) }, now) {
                    Ok(next) => {
                        *current = next;
                        taken.push((Taken::Written(candidate.root_id.clone()), candidate.job_id.clone()));
                    }
                    // Claimed (or finished) by a transaction that committed after the candidate
                    // query took its snapshot: skip it, never hand it out.
                    Err(error) => {
                        any_refused = true;
                        tracing::debug!(job_id = %candidate.job_id, %error, "claim candidate taken meanwhile");
                    }
                }
            }
        }
        if !any_refused || taken.len() == wanted {
            break;
        }
    }
    queued.write(&mut tx).await?;
    let mut rows = RowColumns::default();
    for (before, after) in trees.values() {
        rows.push_changes(before, after);
    }
    rows.update(&mut tx).await?;
    tx.commit().await?;
    let mut claimed = Vec::with_capacity(taken.len());
    let mut kept = Vec::new();
    for (how, task_id) in taken {
        let tree = match how {
            Taken::Queued(claim) => {
                let tree = claim.now.clone();
                kept.push(*claim);
                tree
            }
            Taken::Written(root_id) => Arc::new(trees[&root_id].1.clone()),
        };
        store.notifier.changed(&tree);
        claimed.push(ClaimedTask { tree, task_id });
    }
    store.kept_claims.keep(kept);
    Ok(claimed)
}

/// `JobStore::claim_offered`: the claim of a lone job this node has just committed, kept in its
/// queue row as any claim of a lone job is (`pending_claims`), by one statement that writes it
/// only while the queue row holds no claim and names the version `offered` has (no write of the
/// job since). A job without a lease has one state per version (a write that keeps the version
/// changes only a lease's expiry), so that row is `offered`.
pub(super) async fn claim_offered(
    store: &PgStore,
    request: &ClaimRequest,
    offered: &Job,
    now: Timestamp,
) -> Result<Option<ClaimedTask>> {
    // A lone job, without sub-jobs or a parent, is checked with the claim (`may_stay_in_queue`).
    if offered.lease.is_some() || !request.takes_task(offered) {
        return Ok(None);
    }
    let after = match apply(offered, &offered.job_id, &JobEvent::Claim { lease: request.new_lease(now) }, now) {
        Ok(after) if may_stay_in_queue(offered, &after) => after,
        _ => return Ok(None),
    };
    let mut queued = QueuedClaims::default();
    queued.push(&after, now, Some(offered.version));
    if queued.write_where_unclaimed(&mut *store.pool()?.acquire().await?).await? == 0 {
        return Ok(None);
    }
    let tree = Arc::new(after);
    store.notifier.changed(&tree);
    store.kept_claims.keep([KeptClaim { stored: offered.clone(), now: tree.clone() }]);
    Ok(Some(ClaimedTask { tree, task_id: offered.job_id.clone() }))
}

/// Rows through `task_queue` since its last vacuum past which the claim path is vacuumed, once
/// they outnumber the live rows [`DEAD_PER_LIVE`] times.
const DEAD_QUEUE_ROWS: i64 = 2_000;
const DEAD_PER_LIVE: i64 = 8;
/// How long the claim path is left alone after a vacuum that could not clear it.
const VACUUM_BACKOFF: std::time::Duration = std::time::Duration::from_secs(60);

/// `VACUUM`s `task_queue` once it is mostly dead entries; answers how many rows went through it
/// since its last vacuum (as the server's statistics count them). Every completion leaves a dead
/// row, and its index entries stay in the claim index until a vacuum: after a burn-down of
/// 100,000 jobs each claim of a lone job walked over all of them (3 ms instead of 1 ms) until
/// autovacuum woke, up to a minute later. The count is of rows inserted since the last vacuum (or
/// the dead rows, if more): each put entries in the indexes, and once the queue is mostly empty
/// those entries are mostly dead. The server's count of dead rows alone is not enough: a page
/// pruned on the way (claims are HOT updates, and a read prunes a page full of their old
/// versions) takes its dead rows off the count and leaves their index entries behind. Only a
/// queue that is mostly dead: a vacuum reads the whole table and its indexes, which during the
/// burn-down itself (100,000 live rows) took 300 ms a run and slowed the drain more than walking
/// the dead entries did. `SKIP_LOCKED`: when autovacuum is at it already, this run does nothing;
/// `TRUNCATE false`: the emptied pages are kept for the next rows rather than cut off the file,
/// which would take a lock claims wait for. A vacuum that leaves the rows dead (an old snapshot
/// still sees them, or the role does not own the table) is not repeated for
/// [`VACUUM_BACKOFF`], as autovacuum would not.
pub(super) async fn vacuum_task_queue(store: &PgStore) -> Result<u64> {
    let not_before = *store.vacuum_not_before.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if not_before.is_some_and(|at| std::time::Instant::now() < at) {
        return Ok(0);
    }
    let pool = store.pool()?;
    let counts = queue_row_counts(pool).await?;
    let passed = counts.inserted_since_vacuum.max(counts.dead);
    if passed < DEAD_QUEUE_ROWS {
        return Ok(0);
    }
    // The live rows counted, not taken from the statistics: a session that went idle may hold its
    // counts back for long (a thousand deletes seen held for a minute), and a live count too high
    // would keep the vacuum off. At most `passed / DEAD_PER_LIVE + 1` rows are read.
    let most_live = passed / DEAD_PER_LIVE;
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM (SELECT FROM task_queue LIMIT $1) AS live")
        .bind(most_live + 1)
        .fetch_one(pool)
        .await?;
    if live > most_live {
        return Ok(0);
    }
    sqlx::query("VACUUM (SKIP_LOCKED, TRUNCATE false) task_queue").execute(pool).await?;
    // A vacuum that did nothing (autovacuum held the table, or the role does not own it) leaves
    // the count of inserted rows as it was; one an old snapshot kept from clearing the dead rows
    // leaves them counted.
    let after = queue_row_counts(pool).await?;
    let left = after.inserted_since_vacuum.max(after.dead);
    if left >= DEAD_QUEUE_ROWS {
        tracing::info!(dead = left, "the claim path's dead rows outlived a vacuum; next try in a minute");
        *store.vacuum_not_before.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(std::time::Instant::now() + VACUUM_BACKOFF);
    }
    Ok(u64::try_from(passed).unwrap_or(0))
}

/// `task_queue`'s dead rows and rows inserted since its last vacuum, as the server's statistics
/// count them.
#[derive(sqlx::FromRow)]
struct QueueRowCounts {
    dead: i64,
    inserted_since_vacuum: i64,
}

async fn queue_row_counts(pool: &sqlx::PgPool) -> Result<QueueRowCounts> {
    let counts: Option<QueueRowCounts> = sqlx::query_as(
        "SELECT n_dead_tup AS dead, n_ins_since_vacuum AS inserted_since_vacuum \
         FROM pg_stat_user_tables WHERE relid = 'task_queue'::regclass",
    )
    .fetch_optional(pool)
    .await?;
    Ok(counts.unwrap_or(QueueRowCounts { dead: 0, inserted_since_vacuum: 0 }))
}
