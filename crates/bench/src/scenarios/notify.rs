//! Scenario 4, notification latency: a job that a worker ends about 300 ms after its creation,
//! watched meanwhile by a `jobd job wait` process and by an SSE client (`jobd-client`'s watch).
//! Latency runs from the moment the worker sends its `complete` (the job ends inside that call)
//! to the `wait` process's exit, and to the SSE client's receipt of the terminal event.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use jobd_client::ClaimRequest;
use serde_json::json;

use crate::node::{jobd_binary, Backend, Node, Store, ACCESS_KEY, PROJECT, SECRET_KEY};
use crate::report::Report;
use crate::stats::Latencies;

#[derive(Debug, clap::Args)]
pub struct NotifyArgs {
    /// Jobs per run (each one watched by both).
    #[arg(long, default_value_t = 30)]
    pub jobs: usize,
    /// How long after its creation the worker ends each job.
    #[arg(long, default_value_t = 300)]
    pub job_ms: u64,
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    pub backend: Backend,
}

struct Sample {
    wait: Duration,
    sse: Duration,
}

async fn one_job(node: &Node, job_ms: u64) -> anyhow::Result<Sample> {
    let client = node.client()?;
    let created_at = Instant::now();
    let created = client.create_job_from_json(PROJECT, &json!({"service": "cfw", "job_type": "Notify"}), None).await?;
    let job_id = created.job.job_id.clone();

    let mut wait = tokio::process::Command::new(jobd_binary()?)
        .args(["job", "wait", &job_id, "--plain", "--timeout", "30s"])
        .env("JOBD_ENDPOINT", &node.base)
        .env("JOBD_ACCESS_KEY", ACCESS_KEY)
        .env("JOBD_SECRET_KEY", SECRET_KEY)
        .env("JOBD_PROJECT_ID", PROJECT)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting jobd job wait")?;
    let waited = tokio::spawn(async move {
        let status = wait.wait().await?;
        anyhow::Ok((status, Instant::now()))
    });
    let mut events = client.watch(PROJECT, &job_id);
    let watched = tokio::spawn(async move {
        while let Some(job) = events.next().await {
            if job?.is_terminal() {
                return anyhow::Ok(Instant::now());
            }
        }
        bail!("the event stream ended before the job did")
    });

    let tasks = client.claim(&ClaimRequest::new("bench-notify", ["cfw"]).wait_seconds(5)).await?;
    let task = tasks.into_iter().find(|t| t.job_id == job_id).context("the worker claimed the job")?;
    tokio::time::sleep_until((created_at + Duration::from_millis(job_ms)).into()).await;
    let ended = Instant::now();
    client.complete(&task, None, None).await?;

    let (status, wait_returned) = tokio::time::timeout(Duration::from_secs(30), waited).await???;
    if !status.success() {
        bail!("jobd job wait exited with {status}");
    }
    let sse_seen = tokio::time::timeout(Duration::from_secs(30), watched).await???;
    Ok(Sample { wait: wait_returned.saturating_duration_since(ended), sse: sse_seen.saturating_duration_since(ended) })
}

pub async fn run(args: &NotifyArgs, runs: usize) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "notify-latency",
        json!({"jobs": args.jobs, "job_ms": args.job_ms, "backend": args.backend, "runs": runs}),
    );
    let store = Store::fresh(args.backend).await?;
    let node = Node::start(&store, &[])?;
    for run in 1..=runs {
        let (mut wait, mut sse) = (Latencies::default(), Latencies::default());
        for _ in 0..args.jobs {
            let sample = one_job(&node, args.job_ms).await?;
            wait.record(sample.wait);
            sse.record(sample.sse);
        }
        let (wait, sse) = (wait.summary(), sse.summary());
        eprintln!("run {run}: jobd job wait p50 {:.2} ms, SSE p50 {:.2} ms", wait.p50_ms, sse.p50_ms);
        report.add("jobd job wait (process exits)", "p50", "ms", wait.p50_ms);
        report.add("jobd job wait (process exits)", "p99", "ms", wait.p99_ms);
        report.add("jobd job wait (process exits)", "max", "ms", wait.max_ms);
        report.add("SSE client (terminal event)", "p50", "ms", sse.p50_ms);
        report.add("SSE client (terminal event)", "p99", "ms", sse.p99_ms);
        report.add("SSE client (terminal event)", "max", "ms", sse.max_ms);
    }
    report.note(format!(
        "each job ends {} ms after its creation; latency from the worker sending `complete` (the job ends inside that call)",
        args.job_ms
    ));
    Ok(report)
}
