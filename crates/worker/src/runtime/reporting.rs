//! Reporting attempts' ends: each task hands its end to one reporter task, which sends whatever
//! has queued up in one batch call as soon as the previous one returns, and hands each task its
//! own answer; transport errors are retried while the lease may hold.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jobd_client::{Backoff, Client, TaskLease, TaskOutcome, TaskReport, MAX_REPORTS_PER_BATCH};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::context::{clean_text, stop_reason_of, MAX_CODE_CHARS, MAX_TEXT_CHARS};
use super::{Shared, FIRST_RETRY, WORKER_SHUTDOWN};

pub(super) const HANDLER_ERROR: &str = "JOBD.HANDLER_ERROR";

/// A batch of reports stops growing past this many bytes of JSON (the server's default body limit
/// is 1 MiB; a batch it still finds too large is sent report by report).
pub(super) const REPORT_BATCH_BYTES: usize = 256 * 1024;

/// Report batches sent at once: while one is in the server's commit the next is on its way, and
/// the server's group commit may take both together. Two reports of one task (an attempt that
/// lost its lease, then the next) may so arrive in either order; the lease token in each settles
/// it, as it would for two workers.
const BATCHES_IN_FLIGHT: usize = 2;

/// What to tell the worker API at the end of an attempt.
pub(super) enum Report {
    Complete(Option<Value>),
    Fail {
        code: String,
        message: String,
        retryable: bool,
    },
    /// Aborted at shutdown: a retryable failure, counted as abandoned rather than failed.
    Abandon,
}

/// Reports an attempt's end, retrying transport errors while the lease may still hold.
pub(super) async fn send_report(shared: &Shared, lease: &TaskLease, report: Report) {
    let deadline =
        Instant::now() + Duration::from_secs(u64::from(shared.config.lease_seconds)).max(Duration::from_secs(5));
    let counters = &shared.counters;
    // What the end counts as once reported (an abandoned task was counted when it was abandoned).
    let (report, counter) = match report {
        Report::Complete(result) => (TaskReport::complete(lease, result, None), Some(&counters.completed)),
        Report::Fail { code, message, retryable } => {
            let code = clean_text(&code, MAX_CODE_CHARS);
            let code = if code.is_empty() { HANDLER_ERROR.to_owned() } else { code };
            (TaskReport::fail(lease, code, clean_text(&message, MAX_TEXT_CHARS), retryable), Some(&counters.failed))
        }
        Report::Abandon => {
            let message = format!("worker {} shut down before the task finished", shared.worker_id);
            (TaskReport::fail(lease, WORKER_SHUTDOWN, clean_text(&message, MAX_TEXT_CHARS), true), None)
        }
    };
    let mut backoff = Backoff::new(FIRST_RETRY, Duration::from_secs(5));
    loop {
        let error = match shared.reporter.send(&report).await {
            Ok(()) => {
                if let Some(counter) = counter {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!("attempt reported");
                return;
            }
            Err(error) => error,
        };
        if let Some(reason) = stop_reason_of(&error) {
            tracing::info!(%reason, "the task was gone before its end was reported");
            if counter.is_some() {
                counters.stopped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if !error.is_retryable() || Instant::now() >= deadline {
            tracing::error!(%error, "cannot report the attempt's end; its lease will expire");
            return;
        }
        let delay = backoff.next_delay_at_least(error.retry_after());
        tracing::warn!(%error, ?delay, "reporting failed; trying again");
        tokio::time::sleep(delay).await;
    }
}

/// How one report went: the task's own answer, or the whole batch's error (shared by its reports).
pub(super) type Reported = Result<(), Arc<jobd_client::Error>>;

/// Sends attempts' ends: through the reporter task in batches, or each on its own route once the
/// server has shown it has no batch route.
pub(super) struct Reporter {
    pub(super) client: Client,
    pub(super) queue: mpsc::UnboundedSender<Queued>,
    /// False once the server answered a batch `404` (a jobd older than the batch route).
    pub(super) batched: Arc<AtomicBool>,
}

/// A report waiting for the next batch, and where its answer goes.
pub(super) struct Queued {
    pub(super) report: TaskReport,
    /// Its size as JSON, to keep batches under [`REPORT_BATCH_BYTES`].
    pub(super) bytes: usize,
    pub(super) answer: oneshot::Sender<Reported>,
}

impl Reporter {
    /// Reports one attempt's end and answers how the server took it, as the single route would.
    pub(super) async fn send(&self, report: &TaskReport) -> Reported {
        if self.batched.load(Ordering::Relaxed) {
            let (answer, answered) = oneshot::channel();
            let bytes = serde_json::to_vec(report).map_or(0, |json| json.len());
            if self.queue.send(Queued { report: report.clone(), bytes, answer }).is_ok() {
                if let Ok(reported) = answered.await {
                    return reported;
                }
            }
            // The reporter task has stopped (the runtime returned): send it alone.
        }
        send_alone(&self.client, report).await.map_err(Arc::new)
    }
}

/// One report on its own route, `.../complete` or `.../fail`.
pub(super) async fn send_alone(client: &Client, report: &TaskReport) -> Result<(), jobd_client::Error> {
    match &report.outcome {
        TaskOutcome::Complete { result, message } => {
            client.complete(report, result.as_ref(), message.as_deref()).await.map(drop)
        }
        TaskOutcome::Fail { error_code, error_msg, retryable } => {
            client.fail(report, error_code, error_msg, *retryable).await.map(drop)
        }
    }
}

/// The reporter task: sends whatever is queued as one batch as soon as the previous batch call
/// returns (no fixed delay), and hands each report's answer back to its task.
pub(super) async fn report_loop(client: Client, batched: Arc<AtomicBool>, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let mut waiting = VecDeque::new();
    // Batches ask for status words only, until a server refuses the field (a jobd older than it).
    let brief = Arc::new(AtomicBool::new(true));
    let mut in_flight = tokio::task::JoinSet::new();
    let mut open = true;
    loop {
        while let Ok(queued) = queue.try_recv() {
            waiting.push_back(queued);
        }
        while in_flight.len() < BATCHES_IN_FLIGHT && !waiting.is_empty() {
            let batch = next_batch(&mut waiting);
            let (reports, answers) = batch.into_iter().map(|queued| (queued.report, queued.answer)).unzip();
            if batched.load(Ordering::Relaxed) {
                let (client, batched, brief) = (client.clone(), batched.clone(), brief.clone());
                in_flight.spawn(async move { send_batch(&client, &batched, &brief, reports, answers).await });
            } else {
                send_each(&client, reports, answers);
            }
        }
        if !open && waiting.is_empty() && in_flight.is_empty() {
            return;
        }
        tokio::select! {
            received = queue.recv(), if open => match received {
                Some(queued) => waiting.push_back(queued),
                None => open = false,
            },
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
    }
}

/// Takes the next batch off the front of the queue, in order: at most [`MAX_REPORTS_PER_BATCH`]
/// reports and about [`REPORT_BATCH_BYTES`], each task at most once (the server refuses a batch
/// naming a task twice; a second report of a task, from an attempt that lost its lease to the
/// next one on this same worker, waits for the next batch).
pub(super) fn next_batch(waiting: &mut VecDeque<Queued>) -> Vec<Queued> {
    let mut batch: Vec<Queued> = Vec::new();
    let mut tasks = HashSet::new();
    let mut bytes = 0;
    let mut deferred = VecDeque::new();
    while let Some(queued) = waiting.pop_front() {
        let full =
            batch.len() == MAX_REPORTS_PER_BATCH || (!batch.is_empty() && bytes + queued.bytes > REPORT_BATCH_BYTES);
        if full {
            waiting.push_front(queued);
            break;
        }
        if tasks.insert(queued.report.job_id.clone()) {
            bytes += queued.bytes;
            batch.push(queued);
        } else {
            deferred.push_back(queued);
        }
    }
    deferred.append(waiting);
    *waiting = deferred;
    batch
}

/// One batch call; per report, whether the server took it (answered with status words when
/// `brief`, with whole tasks otherwise).
async fn report_batch(
    client: &Client,
    brief: bool,
    reports: &[TaskReport],
) -> jobd_client::Result<Vec<jobd_client::Result<()>>> {
    if brief {
        Ok(client.report_batch_statuses(reports).await?.into_iter().map(|result| result.map(drop)).collect())
    } else {
        Ok(client.report_batch(reports).await?.into_iter().map(|result| result.map(drop)).collect())
    }
}

/// One batch call; each report's answer goes back to its task.
pub(super) async fn send_batch(
    client: &Client,
    batched: &AtomicBool,
    brief: &AtomicBool,
    reports: Vec<TaskReport>,
    answers: Vec<oneshot::Sender<Reported>>,
) {
    let mut sent = report_batch(client, brief.load(Ordering::Relaxed), &reports).await;
    if matches!(&sent, Err(error) if error.status() == Some(400)) && brief.load(Ordering::Relaxed) {
        tracing::info!("the server refused status-only batch answers (an older jobd); asking for whole tasks");
        brief.store(false, Ordering::Relaxed);
        sent = report_batch(client, false, &reports).await;
    }
    match sent {
        Ok(results) => {
            for (answer, result) in answers.into_iter().zip(results) {
                let _ = answer.send(result.map_err(Arc::new));
            }
        }
        Err(error) if error.status() == Some(404) => {
            tracing::info!(%error, "the server has no batch route (an older jobd); reporting each task on its own");
            batched.store(false, Ordering::Relaxed);
            send_each(client, reports, answers);
        }
        // A server fault in one report must not cost the others: each is sent again on its own
        // route (a report already applied answers there as the task's current state).
        Err(error) if error.status() == Some(500) => {
            tracing::warn!(%error, reports = reports.len(), "the batch failed on the server; reporting its tasks one by one");
            send_each(client, reports, answers);
        }
        Err(error) if error.status() == Some(413) => {
            tracing::warn!(%error, reports = reports.len(), "the batch was too large; reporting its tasks one by one");
            send_each(client, reports, answers);
        }
        Err(error) => {
            let error = Arc::new(error);
            for answer in answers {
                let _ = answer.send(Err(error.clone()));
            }
        }
    }
}

/// Sends each report on its own route, concurrently, as the tasks did before batching.
pub(super) fn send_each(client: &Client, reports: Vec<TaskReport>, answers: Vec<oneshot::Sender<Reported>>) {
    for (report, answer) in reports.into_iter().zip(answers) {
        let client = client.clone();
        tokio::spawn(async move {
            let _ = answer.send(send_alone(&client, &report).await.map_err(Arc::new));
        });
    }
}

#[cfg(test)]
mod tests {
    use jobd_client::Credentials;

    use super::*;

    #[test]
    fn a_batch_takes_each_task_once_in_queue_order_within_its_limits() {
        let queued = |job_id: &str, bytes: usize| Queued {
            report: TaskReport::complete(&(job_id, "t"), None, None),
            bytes,
            answer: oneshot::channel().0,
        };
        let ids = |reports: &mut dyn Iterator<Item = &Queued>| -> Vec<String> {
            reports.map(|queued| queued.report.job_id.clone()).collect()
        };
        let mut waiting: VecDeque<Queued> = ["a", "b", "a", "c", "a"].iter().map(|id| queued(id, 10)).collect();
        let batch = next_batch(&mut waiting);
        assert_eq!(ids(&mut batch.iter()), ["a", "b", "c"]);
        assert_eq!(ids(&mut waiting.iter()), ["a", "a"], "a task's later reports wait, in order");
        assert_eq!(ids(&mut next_batch(&mut waiting).iter()), ["a"]);
        assert_eq!(ids(&mut next_batch(&mut waiting).iter()), ["a"]);
        assert!(waiting.is_empty());

        let mut waiting: VecDeque<Queued> =
            (0..2 * MAX_REPORTS_PER_BATCH + 50).map(|n| queued(&n.to_string(), 10)).collect();
        let sizes: Vec<usize> =
            std::iter::from_fn(|| Some(next_batch(&mut waiting).len()).filter(|n| *n > 0)).collect();
        assert_eq!(sizes, [MAX_REPORTS_PER_BATCH, MAX_REPORTS_PER_BATCH, 50]);

        let big = REPORT_BATCH_BYTES / 2 + 1;
        let mut waiting: VecDeque<Queued> = [queued("x", big), queued("y", big), queued("z", 3 * big)].into();
        let sizes: Vec<usize> =
            std::iter::from_fn(|| Some(next_batch(&mut waiting).len()).filter(|n| *n > 0)).collect();
        assert_eq!(sizes, [1, 1, 1], "large reports go alone, even one past the limit");
    }

    /// A stand-in for a jobd older than the batch route: `404` to a batch, `200` to each task's own
    /// `complete`. Answers a client of it and the paths it was asked for.
    async fn older_jobd() -> (Client, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = paths.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let mut line = String::new();
                    while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
                        let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                        let mut length = 0;
                        loop {
                            let mut header = String::new();
                            stream.read_line(&mut header).await.unwrap();
                            if header == "\r\n" {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':') {
                                if name.eq_ignore_ascii_case("content-length") {
                                    length = value.trim().parse().unwrap();
                                }
                            }
                        }
                        stream.read_exact(&mut vec![0; length]).await.unwrap();
                        seen.lock().unwrap().push(path.clone());
                        let (status, body) = match path.strip_suffix("/complete") {
                            Some(task) => {
                                let job = serde_json::json!({
                                    "job_id": task.rsplit('/').next().unwrap(), "project_id": "p", "service": "cfw",
                                    "job_type": "T", "status": "SUCCEEDED", "created_at": "2024-01-01T00:00:00Z",
                                    "updated_at": "2024-01-01T00:00:00Z"
                                });
                                ("200 OK", serde_json::json!({ "job": job }))
                            }
                            None => {
                                ("404 Not Found", serde_json::json!({"error_code": "APIGW.0101", "error_msg": "none"}))
                            }
                        };
                        let body = body.to_string();
                        let answer = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        stream.get_mut().write_all(answer.as_bytes()).await.unwrap();
                        line.clear();
                    }
                });
            }
        });
        (Client::new(&endpoint, Credentials::new("AK", "SK")).unwrap(), paths)
    }

    #[tokio::test]
    async fn against_a_jobd_without_the_batch_route_each_end_goes_on_its_own() {
        let (client, paths) = older_jobd().await;
        let (queue, queued) = mpsc::unbounded_channel();
        let reporter = Reporter { client: client.clone(), queue, batched: Arc::new(AtomicBool::new(true)) };
        let reporting = tokio::spawn(report_loop(client, reporter.batched.clone(), queued));
        let report = |job_id: &str| TaskReport::complete(&(job_id, "t"), None, None);
        let (a, b) = (report("a"), report("b"));
        let (a, b) = tokio::join!(reporter.send(&a), reporter.send(&b));
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert!(reporter.send(&report("c")).await.is_ok());
        let mut paths = paths.lock().unwrap().clone();
        paths.sort();
        assert_eq!(
            paths,
            [
                "/v1/worker/tasks/a/complete",
                "/v1/worker/tasks/b/complete",
                "/v1/worker/tasks/batch",
                "/v1/worker/tasks/c/complete"
            ],
            "one batch was tried, then every end went alone"
        );
        reporting.abort();
    }
}
