//! The worker runtime against the real `jobd` binary: handlers complete jobs made with the client,
//! retryable errors and panics are retried, a cancel reaches `ctx.cancelled()`, compensation tasks
//! reach their handler, a shutdown drains (or, past its timeout, abandons) in-flight tasks, and
//! many quick tasks' ends go in batch calls.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobd_client::{Client, JobStatus, NewJob, NewSubJob, OnFailure, Phase, RetryBackoff, Task, TaskGone};
use jobd_test_support::server::{wait_terminal, Jobd};
use jobd_worker::runtime::{RunReport, StopReason, TaskContext, TaskError, WorkerRuntime, WorkerRuntimeBuilder};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Retries come back at once.
const NO_BACKOFF: RetryBackoff = RetryBackoff { initial_seconds: 0.0, multiplier: 1.0, max_seconds: 0.0 };

/// A runtime running in the background until `stop` is called.
struct Running {
    shutdown: oneshot::Sender<()>,
    handle: JoinHandle<RunReport>,
}

impl Running {
    fn start(builder: WorkerRuntimeBuilder) -> Running {
        let runtime = builder.build().expect("a valid worker");
        let (shutdown, signal) = oneshot::channel::<()>();
        let handle = tokio::spawn(runtime.run_until(async move {
            let _ = signal.await;
        }));
        Running { shutdown, handle }
    }

    async fn stop(self) -> RunReport {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(30), self.handle).await.expect("the worker stops").unwrap()
    }
}

fn worker(client: Client, name: &str) -> WorkerRuntimeBuilder {
    WorkerRuntime::builder(client, name).wait_seconds(20)
}

async fn echo(task: Task, ctx: TaskContext) -> Result<Option<serde_json::Value>, TaskError> {
    ctx.progress(format!("echoing attempt {}", task.attempt)).await?;
    Ok(Some(json!({"echo": task.payload, "job_type": task.job_type})))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_complete_jobs_created_with_the_client() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let running = Running::start(
        worker(jobd.client(), "echo-worker")
            .service("cfw")
            .handler("Echo", echo)
            .handler("Step", echo)
            .max_in_flight(3),
    );

    let mut ids = Vec::new();
    for n in 0..6 {
        let job = project.create_job(&NewJob::new("cfw", "Echo").payload(json!({"n": n})), None).await.unwrap();
        ids.push(job.job.job_id);
    }
    let parent = NewJob::new("cfw", "Deploy")
        .sub_job(NewSubJob::new("Step").payload(json!({"step": 1})))
        .sub_job(NewSubJob::new("Step").payload(json!({"step": 2})));
    let parent = project.create_job(&parent, None).await.unwrap().job;
    let other_service = project.create_job(&NewJob::new("waf", "Echo"), None).await.unwrap().job;

    for (n, id) in ids.iter().enumerate() {
        let job = wait_terminal(&project, id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
        assert_eq!(job.result, Some(json!({"echo": {"n": n}, "job_type": "Echo"})));
        assert_eq!(job.message.as_deref(), Some("echoing attempt 1"));
        assert_eq!(job.worker_id.as_deref(), Some("echo-worker"));
    }
    let parent = wait_terminal(&project, &parent.job_id).await;
    assert_eq!(parent.status, JobStatus::Succeeded, "{parent:#?}");
    assert_eq!(parent.sub_jobs[1].result, Some(json!({"echo": {"step": 2}, "job_type": "Step"})));

    let report = running.stop().await;
    assert_eq!(report, RunReport { claimed: 8, completed: 8, ..RunReport::default() });
    let untouched = project.get_job(&other_service.job_id).await.unwrap();
    assert_eq!(untouched.status, JobStatus::Pending, "another service's job is never claimed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_errors_and_panics_are_retried_and_fatal_errors_end_the_job() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let running = Running::start(
        worker(jobd.client(), "flaky-worker")
            .service("cfw")
            .handler("Flaky", |task: Task, _ctx: TaskContext| async move {
                if task.attempt < 3 {
                    return Err(TaskError::retryable("CFW.BUSY", format!("busy on attempt {}", task.attempt)));
                }
                Ok(Some(json!({"attempt": task.attempt})))
            })
            .handler("Panicky", |task: Task, _ctx: TaskContext| async move {
                if task.attempt == 1 {
                    panic!("boom on attempt 1");
                }
                Ok(None)
            })
            .handler("Broken", |_task: Task, _ctx: TaskContext| async move {
                Err(TaskError::fatal("CFW.INVALID", "a line\nbreak and no retry"))
            }),
    );
    let create = |job_type: &str| NewJob::new("cfw", job_type).max_attempts(3).retry_backoff(NO_BACKOFF);
    let flaky = project.create_job(&create("Flaky"), None).await.unwrap().job;
    let panicky = project.create_job(&create("Panicky"), None).await.unwrap().job;
    let broken = project.create_job(&create("Broken"), None).await.unwrap().job;

    let flaky = wait_terminal(&project, &flaky.job_id).await;
    assert_eq!(flaky.status, JobStatus::Succeeded, "{flaky:#?}");
    assert_eq!(flaky.attempt, 3);
    assert_eq!(flaky.result, Some(json!({"attempt": 3})));
    let panicky = wait_terminal(&project, &panicky.job_id).await;
    assert_eq!(panicky.status, JobStatus::Succeeded, "a panic is a retryable failure: {panicky:#?}");
    assert_eq!(panicky.attempt, 2);
    let broken = wait_terminal(&project, &broken.job_id).await;
    assert_eq!(broken.status, JobStatus::Failed);
    assert_eq!(broken.attempt, 1, "a fatal error is not retried");
    assert_eq!(broken.error_code.as_deref(), Some("CFW.INVALID"));
    assert_eq!(broken.error_msg.as_deref(), Some("a line break and no retry"), "control characters are cleaned");

    let report = running.stop().await;
    assert_eq!(report, RunReport { claimed: 6, completed: 2, failed: 4, ..RunReport::default() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_mid_handler_fires_cancelled_and_an_unheeding_handler_is_aborted() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let (started_tx, mut started) = mpsc::unbounded_channel::<String>();
    let (stopped_tx, mut stopped) = mpsc::unbounded_channel::<(String, StopReason)>();
    let (dropped_tx, mut dropped) = mpsc::unbounded_channel::<String>();
    let polite = {
        let started_tx = started_tx.clone();
        move |task: Task, ctx: TaskContext| {
            let (started_tx, stopped_tx) = (started_tx.clone(), stopped_tx.clone());
            async move {
                started_tx.send(task.job_id.clone()).unwrap();
                tokio::select! {
                    reason = ctx.cancelled() => {
                        assert!(ctx.is_cancelled());
                        stopped_tx.send((task.job_id.clone(), reason)).unwrap();
                        Err(reason.into())
                    }
                    () = tokio::time::sleep(Duration::from_secs(60)) => Ok(None),
                }
            }
        }
    };
    let stubborn = move |task: Task, _ctx: TaskContext| {
        let (started_tx, dropped_tx) = (started_tx.clone(), dropped_tx.clone());
        async move {
            /// Tells the test when the aborted handler's future is dropped.
            struct OnDrop(mpsc::UnboundedSender<String>, String);
            impl Drop for OnDrop {
                fn drop(&mut self) {
                    let _ = self.0.send(self.1.clone());
                }
            }
            let _guard = OnDrop(dropped_tx, task.job_id.clone());
            started_tx.send(task.job_id.clone()).unwrap();
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(None)
        }
    };
    let running = Running::start(
        worker(jobd.client(), "cancel-worker")
            .service("cfw")
            .handler("Polite", polite)
            .handler("Stubborn", stubborn)
            .lease_seconds(3)
            .cancel_grace(Duration::from_millis(300)),
    );

    let polite_job = project.create_job(&NewJob::new("cfw", "Polite"), None).await.unwrap().job;
    let stubborn_job = project.create_job(&NewJob::new("cfw", "Stubborn"), None).await.unwrap().job;
    let mut seen = vec![recv(&mut started).await, recv(&mut started).await];
    seen.sort_unstable();
    let mut expected = vec![polite_job.job_id.clone(), stubborn_job.job_id.clone()];
    expected.sort_unstable();
    assert_eq!(seen, expected);

    let cancelled_at = Instant::now();
    project.cancel_job(&polite_job.job_id).await.unwrap();
    project.cancel_job(&stubborn_job.job_id).await.unwrap();
    let (job_id, reason) = recv(&mut stopped).await;
    assert_eq!(job_id, polite_job.job_id);
    assert_eq!(reason, StopReason::Gone(TaskGone::Cancelled));
    assert_eq!(recv(&mut dropped).await, stubborn_job.job_id, "the handler that ignored the cancel was aborted");
    assert!(cancelled_at.elapsed() < Duration::from_secs(5), "heartbeats every lease/3 = 1 s noticed the cancel");

    for id in [&polite_job.job_id, &stubborn_job.job_id] {
        assert_eq!(project.get_job(id).await.unwrap().status, JobStatus::Cancelled, "nothing overwrote the cancel");
    }
    let report = running.stop().await;
    assert_eq!(report, RunReport { claimed: 2, stopped: 2, ..RunReport::default() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_drains_the_in_flight_task_and_claims_no_more() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let (started_tx, mut started) = mpsc::unbounded_channel::<String>();
    let running = Running::start(
        worker(jobd.client(), "draining-worker")
            .service("cfw")
            .handler("Slow", move |task: Task, ctx: TaskContext| {
                let started_tx = started_tx.clone();
                async move {
                    started_tx.send(task.job_id.clone()).unwrap();
                    for step in 1..=3 {
                        tokio::time::sleep(Duration::from_millis(400)).await;
                        ctx.progress(format!("step {step}/3")).await?;
                    }
                    Ok(Some(json!({"steps": 3})))
                }
            })
            .max_in_flight(1)
            .drain_timeout(Duration::from_secs(20)),
    );
    let first = project.create_job(&NewJob::new("cfw", "Slow"), None).await.unwrap().job;
    assert_eq!(recv(&mut started).await, first.job_id);

    let report = running.stop().await;
    let first = project.get_job(&first.job_id).await.unwrap();
    assert_eq!(first.status, JobStatus::Succeeded, "the in-flight task finished before run_until returned");
    assert_eq!(first.message.as_deref(), Some("step 3/3"));
    assert_eq!(report, RunReport { claimed: 1, completed: 1, ..RunReport::default() });

    let later = project.create_job(&NewJob::new("cfw", "Slow"), None).await.unwrap().job;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(project.get_job(&later.job_id).await.unwrap().status, JobStatus::Pending, "nothing claims after");
    assert!(started.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_drain_timeout_a_task_is_failed_retryably_and_taken_over() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let (started_tx, mut started) = mpsc::unbounded_channel::<u32>();
    let running = Running::start(
        worker(jobd.client(), "stuck-worker")
            .service("cfw")
            .handler("Stuck", move |task: Task, _ctx: TaskContext| {
                let started_tx = started_tx.clone();
                async move {
                    started_tx.send(task.attempt).unwrap();
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    Ok(None)
                }
            })
            .drain_timeout(Duration::from_millis(300)),
    );
    let job =
        project.create_job(&NewJob::new("cfw", "Stuck").max_attempts(3).retry_backoff(NO_BACKOFF), None).await.unwrap();
    assert_eq!(recv(&mut started).await, 1);
    let stopping = Instant::now();
    let report = running.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(5), "bounded by the drain timeout: {:?}", stopping.elapsed());
    assert_eq!(report, RunReport { claimed: 1, abandoned: 1, ..RunReport::default() });
    let after = project.get_job(&job.job.job_id).await.unwrap();
    assert_eq!(after.status, JobStatus::Running, "retried, not failed: {after:#?}");

    let next = Running::start(worker(jobd.client(), "next-worker").service("cfw").handler("Stuck", echo));
    let done = wait_terminal(&project, &job.job.job_id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempt, 2, "the next worker took it over at once, without waiting for the lease");
    assert_eq!(done.worker_id.as_deref(), Some("next-worker"));
    next.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compensation_tasks_reach_the_compensation_handler() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let compensations = Arc::new(AtomicU32::new(0));
    let running = Running::start(
        worker(jobd.client(), "saga-worker")
            .service("elb")
            .handler("Provision", echo)
            .compensation("Provision", {
                let compensations = compensations.clone();
                move |task: Task, _ctx: TaskContext| {
                    let compensations = compensations.clone();
                    async move {
                        assert_eq!(task.phase, Phase::Rollback);
                        compensations.fetch_add(1, Ordering::SeqCst);
                        Ok(Some(json!({"undone": task.payload})))
                    }
                }
            })
            .handler("Reserve", echo)
            .handler("Configure", |_task: Task, _ctx: TaskContext| async move {
                Err(TaskError::fatal("ELB.CONFIG", "cannot configure"))
            }),
    );

    let saga = |first: &str| {
        NewJob::new("elb", "CreateLoadbalancer")
            .on_failure(OnFailure::Rollback)
            .sub_job(NewSubJob::new(first).payload(json!({"what": first})))
            .sub_job(NewSubJob::new("Configure"))
            .max_attempts(1)
    };
    let compensated = project.create_job(&saga("Provision"), None).await.unwrap().job;
    let uncompensable = project.create_job(&saga("Reserve"), None).await.unwrap().job;

    let done = wait_terminal(&project, &compensated.job_id).await;
    assert_eq!(done.status, JobStatus::Failed, "{done:#?}");
    let compensation = done.sub_jobs[0].compensation.as_ref().expect("the succeeded sub-job was compensated");
    assert_eq!(compensation.status, JobStatus::Succeeded, "{done:#?}");
    assert_eq!(compensations.load(Ordering::SeqCst), 1);

    let done = wait_terminal(&project, &uncompensable.job_id).await;
    assert_eq!(done.status, JobStatus::Failed, "{done:#?}");
    let compensation = done.sub_jobs[0].compensation.as_ref().expect("a compensation was attempted");
    assert_eq!(compensation.status, JobStatus::Failed, "{done:#?}");
    assert_eq!(compensation.error_code.as_deref(), Some("JOBD.NO_COMPENSATION"));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_quick_tasks_are_reported_in_batches() {
    const TASKS: usize = 300;
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let mut ids = Vec::with_capacity(TASKS);
    for n in 0..TASKS {
        ids.push(
            project.create_job(&NewJob::new("cfw", "Noop").payload(json!({"n": n})), None).await.unwrap().job.job_id,
        );
    }
    let running = Running::start(
        worker(jobd.client(), "batching-worker")
            .service("cfw")
            .handler("Noop", |_task: Task, _ctx: TaskContext| async move { Ok(None) })
            .max_in_flight(64),
    );
    for id in &ids {
        assert_eq!(wait_terminal(&project, id).await.status, JobStatus::Succeeded);
    }
    let report = running.stop().await;
    assert_eq!(report, RunReport { claimed: TASKS as u64, completed: TASKS as u64, ..RunReport::default() });

    let metrics = metrics(&jobd.endpoint).await;
    let requests = |route: &str| -> u64 {
        let label = format!("route=\"{route}\"");
        metrics
            .lines()
            .filter(|line| line.starts_with("jobd_http_requests_total{") && line.contains(&label))
            .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
            .sum()
    };
    let batches = requests("/v1/worker/tasks/batch");
    assert_eq!(requests("/v1/worker/tasks/{job_id}/complete"), 0, "every end went in a batch");
    assert!((1..=TASKS as u64 / 3).contains(&batches), "{TASKS} ends in {batches} batch calls");
}

/// `GET /metrics` of the server, over a plain HTTP/1.0 exchange.
async fn metrics(endpoint: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

async fn recv<T>(channel: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), channel.recv()).await.expect("in time").expect("open")
}

/// The example worker as a process, killed on drop.
struct ExampleWorker(std::process::Child);

impl Drop for ExampleWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_worker_example_runs_jobs_retries_and_stops_on_ctrl_c() {
    let example = jobd_test_support::server::example_binary("jobd-worker", "echo_worker");
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let child = std::process::Command::new(example)
        .args(["--services", "cfw,waf", "--step-ms=50", "--worker-id", "example-worker"])
        .env("JOBD_ENDPOINT", &jobd.endpoint)
        .env("JOBD_ACCESS_KEY", jobd_test_support::server::ACCESS_KEY)
        .env("JOBD_SECRET_KEY", jobd_test_support::server::SECRET_KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the example starts");
    let mut worker = ExampleWorker(child);

    let payload = json!({"fail_times": 1, "name": "fw-1"});
    let retried =
        NewJob::new("cfw", "CreateFirewall").payload(payload.clone()).max_attempts(3).retry_backoff(NO_BACKOFF);
    let retried = project.create_job(&retried, None).await.unwrap().job;
    let plain = project.create_job(&NewJob::new("waf", "CreateHost").payload(json!([1, 2])), None).await.unwrap().job;
    let retried = wait_terminal(&project, &retried.job_id).await;
    assert_eq!(retried.status, JobStatus::Succeeded, "{retried:#?}");
    assert_eq!(retried.attempt, 2, "fail_times 1: the first attempt failed retryably");
    assert_eq!(retried.result, Some(json!({"echo": payload})));
    assert_eq!(retried.message.as_deref(), Some("step 5/5"));
    assert_eq!(retried.worker_id.as_deref(), Some("example-worker"));
    let plain = wait_terminal(&project, &plain.job_id).await;
    assert_eq!(plain.result, Some(json!({"echo": [1, 2]})));

    // Ctrl-C while a job runs: the job still finishes, then the worker exits 0.
    let slow = project.create_job(&NewJob::new("cfw", "Slow"), None).await.unwrap().job;
    jobd_test_support::server::wait_for_job(&project, &slow.job_id, Duration::from_secs(20), |job| {
        job.status == JobStatus::Running
    })
    .await;
    let interrupted = std::process::Command::new("kill").args(["-INT", &worker.0.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = worker.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the example did not stop after Ctrl-C");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let slow = project.get_job(&slow.job_id).await.unwrap();
    assert_eq!(slow.status, JobStatus::Succeeded, "the job in hand was finished before exiting: {slow:#?}");
}
