//! Scenario 2, job throughput over the worker API with the Rust worker runtime.
//!
//! - burn-down: `--jobs` no-op jobs are created first (through the native API, `--producers`
//!   concurrent creates; that rate is reported too), then one worker runtime drains them. The drain
//!   time runs from the runtime's start to its return after the last completion was acknowledged.
//! - steady: producers keep `--depth` jobs outstanding (a new job as soon as a worker picked one up)
//!   for `--seconds`; jobs/s done, and pickup latency from the create request to the handler's
//!   start, both stamped with this process's clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use jobd_client::{Client, Task};
use jobd_worker::runtime::{HandlerResult, TaskContext, WorkerRuntime};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use crate::node::{Backend, Node, Store, PROJECT};
use crate::report::Report;
use crate::stats::Latencies;

#[derive(Debug, Clone, clap::Args)]
pub struct ThroughputArgs {
    /// Jobs to burn down.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: u64,
    /// Concurrent creates while filling the queue.
    #[arg(long, default_value_t = 32)]
    pub producers: usize,
    /// Jobs per create call while filling the queue: `1` sends single creates
    /// (`POST /v1/{project}/jobs`), more sends batches (`POST /v1/{project}/jobs/batch`).
    #[arg(long, default_value_t = 1000)]
    pub create_batch: u64,
    /// Handlers the worker runtime runs at once (it claims up to this many per call, 1,000 at most).
    #[arg(long, default_value_t = 2000)]
    pub concurrency: usize,
    /// Claims the burn-down's worker runtime keeps in flight (the runtime's default when unset).
    #[arg(long)]
    pub claims_in_flight: Option<usize>,
    /// Backends to measure, in turn.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub backends: Vec<Backend>,
    /// Steady state: jobs kept outstanding.
    #[arg(long, default_value_t = 64)]
    pub depth: usize,
    /// Steady state: seconds measured (after a warm-up of a quarter of it).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

/// The job every producer creates: no work, one attempt's worth of bookkeeping.
fn no_op_job(n: u64, sent_micros: u64) -> serde_json::Value {
    json!({"service": "cfw", "job_type": "NoOp", "payload": {"n": n, "sent_us": sent_micros}})
}

/// Creates `count` jobs with `producers` concurrent loops, `batch` jobs per call; answers jobs/s.
async fn fill(client: &Client, count: u64, producers: usize, batch: u64) -> anyhow::Result<f64> {
    let batch = batch.max(1);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= count {
                    return anyhow::Ok(());
                }
                if batch == 1 {
                    client.create_job_from_json(PROJECT, &no_op_job(first, 0), None).await?;
                } else {
                    let jobs: Vec<serde_json::Value> =
                        (first..count.min(first + batch)).map(|n| no_op_job(n, 0)).collect();
                    client.create_jobs_from_json(PROJECT, &serde_json::Value::Array(jobs)).await?;
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

pub async fn burn_down(node: &Node, args: &ThroughputArgs) -> anyhow::Result<(f64, f64)> {
    let client = node.client()?;
    let enqueue_rate = fill(&client, args.jobs, args.producers, args.create_batch).await?;
    let mut runtime = WorkerRuntime::builder(client, "bench-burn-down")
        .service("cfw")
        .fallback_handler(|_task: Task, _context: TaskContext| async { HandlerResult::Ok(None) })
        .max_in_flight(args.concurrency)
        .wait_seconds(1);
    if let Some(claims) = args.claims_in_flight {
        runtime = runtime.claims_in_flight(claims);
    }
    let runtime = runtime.build()?;
    // The drain ends when the server has taken the last completion (as the peers' drains end at
    // the last completion written), not when the runtime has shut down: its shutdown waits for
    // the long poll it has in flight, which is not the queue's work.
    let progress = runtime.progress();
    let target = args.jobs;
    let (drained, drained_rx) = tokio::sync::oneshot::channel::<Instant>();
    let watcher = tokio::spawn(async move {
        while progress.now().completed < target {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let _ = drained.send(Instant::now());
    });
    let started = Instant::now();
    let mut drained_at = None;
    let report = runtime.run_until(async { drained_at = drained_rx.await.ok() }).await;
    watcher.abort();
    let drain_seconds =
        drained_at.ok_or_else(|| anyhow::anyhow!("the drain never ended"))?.duration_since(started).as_secs_f64();
    if report.completed != args.jobs {
        bail!("the worker completed {} of {} jobs: {report:?}", report.completed, args.jobs);
    }
    Ok((enqueue_rate, args.jobs as f64 / drain_seconds))
}

pub async fn steady(node: &Node, args: &ThroughputArgs) -> anyhow::Result<(f64, Latencies)> {
    let client = node.client()?;
    let origin = Instant::now();
    let outstanding = Arc::new(Semaphore::new(args.depth));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let picked = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Latencies::with_capacity(1 << 20)));
    let stop = Arc::new(Notify::new());
    let (slots, flag, count, samples) = (outstanding.clone(), measuring.clone(), picked.clone(), latencies.clone());
    let runtime = WorkerRuntime::builder(client.clone(), "bench-steady")
        .service("cfw")
        .fallback_handler(move |task: Task, _context: TaskContext| {
            let (slots, flag, count, samples) = (slots.clone(), flag.clone(), count.clone(), samples.clone());
            async move {
                let sent = task.payload.as_ref().and_then(|p| p["sent_us"].as_u64()).unwrap_or(0);
                let pickup = origin.elapsed().saturating_sub(Duration::from_micros(sent));
                if flag.load(Ordering::Relaxed) {
                    count.fetch_add(1, Ordering::Relaxed);
                    samples.lock().expect("not poisoned").record(pickup);
                }
                slots.add_permits(1);
                HandlerResult::Ok(None)
            }
        })
        .max_in_flight(args.concurrency)
        .wait_seconds(5)
        .build()?;
    let stopped = stop.clone();
    let worker = tokio::spawn(runtime.run_until(async move { stopped.notified().await }));
    let producing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut producers = Vec::new();
    for p in 0..args.producers {
        let (client, slots, producing) = (client.clone(), outstanding.clone(), producing.clone());
        producers.push(tokio::spawn(async move {
            let mut n = p as u64 * 1_000_000_000;
            while producing.load(Ordering::Relaxed) {
                slots.acquire().await?.forget();
                let sent = origin.elapsed().as_micros() as u64;
                client.create_job_from_json(PROJECT, &no_op_job(n, sent), None).await?;
                n += 1;
            }
            anyhow::Ok(())
        }));
    }
    let measure = Duration::from_secs(args.seconds);
    tokio::time::sleep(measure / 4).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    measuring.store(false, Ordering::Relaxed);
    let rate = picked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    producing.store(false, Ordering::Relaxed);
    outstanding.add_permits(args.producers);
    for producer in producers {
        producer.await??;
    }
    stop.notify_one();
    worker.await?;
    let latencies = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    Ok((rate, latencies))
}

/// A lone job at a time: the worker runtime long-polls an empty queue, one job is created, and
/// the time from the create request to the handler's start is recorded; `samples` times.
pub async fn lone_job_pickup(node: &Node, samples: usize) -> anyhow::Result<Latencies> {
    let client = node.client()?;
    let origin = Instant::now();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let runtime = WorkerRuntime::builder(client.clone(), "bench-pickup")
        .service("cfw")
        .fallback_handler(move |_task: Task, _context: TaskContext| {
            let started = started_tx.clone();
            async move {
                let _ = started.send(origin.elapsed());
                HandlerResult::Ok(None)
            }
        })
        .max_in_flight(1)
        .wait_seconds(30)
        .build()?;
    let stop = Arc::new(Notify::new());
    let stopped = stop.clone();
    let worker = tokio::spawn(runtime.run_until(async move { stopped.notified().await }));
    let mut latencies = Latencies::with_capacity(samples);
    // The first few wake the runtime's connection and code paths; not recorded.
    for sample in 0..samples + 5 {
        // Let the worker's claim reach the server and wait there.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = origin.elapsed();
        client.create_job_from_json(PROJECT, &no_op_job(sample as u64, 0), None).await?;
        let Some(started) = tokio::time::timeout(Duration::from_secs(10), started_rx.recv()).await? else {
            bail!("the worker stopped");
        };
        if sample >= 5 {
            latencies.record(started.saturating_sub(sent));
        }
    }
    stop.notify_one();
    worker.await?;
    Ok(latencies)
}

pub async fn run(args: &ThroughputArgs, runs: usize) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "throughput",
        json!({"jobs": args.jobs, "producers": args.producers, "create_batch": args.create_batch, "concurrency": args.concurrency,
               "depth": args.depth, "seconds": args.seconds, "runs": runs, "claims_in_flight": args.claims_in_flight}),
    );
    for &backend in &args.backends {
        for run in 1..=runs {
            // A fresh store per run: every burn-down starts from the same empty queue.
            let store = Store::fresh(backend).await?;
            let node = Node::start(&store, &[])?;
            let (enqueue, drain) = burn_down(&node, args).await?;
            eprintln!("run {run} {backend}: created {enqueue:.0} jobs/s, drained {drain:.0} jobs/s");
            report.add(&format!("burn-down {backend}"), "create", "jobs/s", enqueue);
            report.add(&format!("burn-down {backend}"), "drain", "jobs/s", drain);
            let pickup = lone_job_pickup(&node, 200).await?.summary();
            eprintln!("run {run} {backend}: lone job pickup p50 {:.2} ms, p99 {:.2} ms", pickup.p50_ms, pickup.p99_ms);
            let row = format!("lone job {backend}, create -> handler");
            report.add(&row, "p50", "ms", pickup.p50_ms);
            report.add(&row, "p99", "ms", pickup.p99_ms);
            let (rate, mut latencies) = steady(&node, args).await?;
            let summary = latencies.summary();
            eprintln!("run {run} {backend}: steady {rate:.0} jobs/s, pickup p50 {:.2} ms", summary.p50_ms);
            let row = format!("steady {backend} (depth {})", args.depth);
            report.add(&row, "done", "jobs/s", rate);
            report.add(&row, "pickup p50", "ms", summary.p50_ms);
            report.add(&row, "pickup p99", "ms", summary.p99_ms);
            // Every scenario of the run on this node: the most memory jobd held at any point.
            let peak = node.peak_rss_bytes()? as f64 / (1024.0 * 1024.0);
            eprintln!("run {run} {backend}: peak RSS {peak:.1} MiB");
            report.add(&format!("jobd peak RSS {backend}"), "VmHWM", "MiB", peak);
        }
    }
    Ok(report)
}
