//! How the nodes sharing a database learn of each other's changes (`NOTIFY` after each commit,
//! one `LISTEN`ing session per node), and whether the database can be reached at all.

use super::*;

/// Whether this node can reach the database. The change listener's session is the first to learn
/// that the server went away (its connection closes when the server stops, restarts or crashes),
/// and the first to get back in. While the database is unreachable, every store call fails at once
/// with `Unavailable` (HTTP `503` with `Retry-After`, `/readyz` not ready) instead of waiting out
/// the pool's acquire timeout on a server that is not there; the listener's reconnect lifts that.
#[derive(Debug, Default)]
pub(super) struct Reachability {
    lost: std::sync::atomic::AtomicBool,
    /// When the database was last found again after it was lost.
    regained: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Reachability {
    pub(super) fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Answers whether this changed it.
    pub(super) fn set_lost(&self, lost: bool) -> bool {
        // Found again: when, before it shows as found, so no connection older than the outage is
        // handed out unchecked in between.
        if !lost && self.is_lost() {
            *self.regained.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(std::time::Instant::now());
        }
        self.lost.swap(lost, std::sync::atomic::Ordering::AcqRel) != lost
    }

    /// Whether a connection opened `age` ago may have been cut by an outage: the database is
    /// lost now (only the change listener asks for connections then, to find it again), or the
    /// connection was opened before the database was last found again.
    pub(super) fn may_predate_outage(&self, age: Duration) -> bool {
        let regained = *self.regained.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.is_lost() || regained.is_some_and(|at| age >= at.elapsed())
    }
}

/// A pooled connection idle this long is checked (a round trip) before it is handed out: a
/// proxy, a firewall or the server's `idle_session_timeout` may have cut it meanwhile.
pub(super) const CHECK_IDLE_AFTER: Duration = Duration::from_secs(5);

/// How long one attempt of the listener to reconnect waits for a connection: short, so that it
/// tries again soon after the server is back (the pool's own retries back off up to seconds).
pub(super) const LISTENER_CONNECT_ATTEMPT: Duration = Duration::from_secs(2);

/// The advisory lock key of the maintenance leader (any fixed number; "jobd" in ASCII).
pub(super) const MAINTENANCE_LOCK: i64 = 0x6a6f_6264;

/// The channel other nodes' changes arrive on (`NOTIFY`, delivered when the writer commits).
pub(super) const CHANGES_CHANNEL: &str = "jobd_changes";

/// The most a `NOTIFY` payload may hold is 8,000 bytes; a notice packs trees up to this.
const NOTICE_BYTES: usize = 7_900;

/// Tells the other nodes which trees changed, once the writing transaction has committed. One task
/// gathers the notices that queue up while it sends and sends them all in one statement: notifying
/// costs one short transaction per gathering instead of a step inside every write, whose commit
/// would then take PostgreSQL's notification lock (it serialises the commits of all notifying
/// transactions, each waiting for its WAL flush). One notice names many trees
/// (`<node> <project> <job> <project> <job> ...`, up to [`NOTICE_BYTES`]): each notice is an entry
/// in PostgreSQL's notification queue that every listening session reads, so a burn-down that
/// changed a tree per notice spent a share of the server's work and of every node's on them. A
/// node that dies between a commit and its notice leaves the other nodes to see that change at
/// their periodic re-read.
#[derive(Clone)]
pub(super) struct Notifier {
    queue: tokio::sync::mpsc::UnboundedSender<String>,
}

impl Notifier {
    /// Starts the sending task; it ends when the last store clone is dropped. `node` is this
    /// store's name in change notices, so its own listener can skip them.
    pub(super) fn start(pool: PgPool, node: Arc<str>) -> Self {
        let (queue, mut pending) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut trees = Vec::new();
            while pending.recv_many(&mut trees, 1000).await > 0 {
                trees.sort_unstable();
                trees.dedup();
                let payloads = pack_notices(&node, &trees);
                let sent = sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
                    .bind(CHANGES_CHANNEL)
                    .bind(&payloads)
                    .execute(&pool)
                    .await;
                if let Err(error) = sent {
                    tracing::warn!(%error, changes = trees.len(), "cannot notify the other nodes; they will re-read");
                }
                trees.clear();
            }
        });
        Notifier { queue }
    }

    pub(super) fn changed(&self, tree: &Job) {
        let _ = self.queue.send(format!("{} {}", tree.project_id, tree.job_id));
    }
}

/// `trees` (each `<project> <job>`) as few notices as fit, each starting with `node`.
fn pack_notices(node: &str, trees: &[String]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut payload = String::new();
    for tree in trees {
        if !payload.is_empty() && payload.len() + 1 + tree.len() > NOTICE_BYTES {
            payloads.push(std::mem::take(&mut payload));
        }
        if payload.is_empty() {
            payload.push_str(node);
        }
        payload.push(' ');
        payload.push_str(tree);
    }
    if !payload.is_empty() {
        payloads.push(payload);
    }
    payloads
}

/// The node a notice came from and the trees it names.
fn unpack_notice(payload: &str) -> Option<(&str, impl Iterator<Item = (&str, &str)>)> {
    let mut parts = payload.split(' ');
    let from = parts.next()?;
    Some((from, std::iter::from_fn(move || Some((parts.next()?, parts.next()?)))))
}

/// Listens for other nodes' changes and hands them to `changes`, reconnecting when the database
/// goes away; ends when the store is dropped. Keeps `reachability` up to date on the way.
pub(super) fn spawn_listener(
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
                    let Some((from, trees)) = unpack_notice(notification.payload()) else { continue };
                    if from == &*node {
                        continue;
                    }
                    for (project, job) in trees {
                        if let (Ok(project_id), Ok(job_id)) = (ProjectId::parse(project), JobId::parse(job)) {
                            let _ = changes.send(ChangeNotice { project_id, job_id });
                        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_pack_trees_up_to_the_payload_limit_and_unpack_to_the_same() {
        let trees: Vec<String> = (0..500).map(|i| format!("project{i:04} job{i:028}")).collect();
        let payloads = pack_notices("node1", &trees);
        assert!(payloads.len() > 1, "500 trees do not fit one notice");
        assert!(payloads.iter().all(|p| p.len() <= NOTICE_BYTES));
        let mut unpacked = Vec::new();
        for payload in &payloads {
            let (from, named) = unpack_notice(payload).expect("a notice");
            assert_eq!(from, "node1");
            unpacked.extend(named.map(|(project, job)| format!("{project} {job}")));
        }
        assert_eq!(unpacked, trees);
    }

    #[test]
    fn a_notice_of_one_tree_reads_as_before() {
        let (from, trees) = unpack_notice("node2 p1 j1").expect("a notice");
        assert_eq!((from, trees.collect::<Vec<_>>()), ("node2", vec![("p1", "j1")]));
    }
}
