//! Scenario 6, memory: jobd's resident set idle, and with `--watchers` idle SSE streams open
//! (spread over a few jobs that do not change). Under load: see `status-reads`, which reports the
//! peak RSS during its run.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

use crate::load::Prepared;
use crate::node::{Backend, Node, Store, PROJECT};
use crate::report::Report;
use crate::scenarios::status_reads::signed_get;

/// The bare-handler baseline server (it also serves idle event streams).
fn baseline_server() -> anyhow::Result<Node> {
    let answers = tempfile::NamedTempFile::new()?;
    let empty = crate::baseline::Answers { cfw: "{}".into(), waf: "{}".into(), elb: "{}".into() };
    std::fs::write(answers.path(), serde_json::to_vec(&empty)?)?;
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .arg("baseline-server")
        .arg("--answers")
        .arg(answers.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    // The server has read the file once it prints its address.
    Node::spawn(command)
}

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// Idle SSE streams to hold open.
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    pub backend: Backend,
}

/// Opens one event stream and reads its first event; answers the still-open body.
async fn open_watcher(addr: String, prepared: Arc<Prepared>) -> anyhow::Result<hyper::body::Incoming> {
    let stream = TcpStream::connect(&addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = Request::get(prepared.path_and_query.as_str()).body(Empty::<Bytes>::new())?;
    *request.headers_mut() = prepared.headers.clone();
    let response = sender.send_request(request).await?;
    if response.status() != 200 {
        bail!("the event stream answered {}", response.status());
    }
    let mut body = response.into_body();
    // The current state comes first.
    loop {
        let frame = body.frame().await.context("the stream ended")??;
        if frame.data_ref().is_some_and(|d| d.windows(5).any(|w| w == b"data:")) {
            return Ok(body);
        }
    }
}

/// Opens `count` watchers over `streams` in waves of 100 (as watchers arrive over time, not all
/// in one burst, whose transient per-request memory would stay in the allocator's high-water mark).
async fn open_watchers(
    addr: &str,
    streams: &[Arc<Prepared>],
    count: usize,
) -> anyhow::Result<Vec<hyper::body::Incoming>> {
    let mut open = Vec::with_capacity(count);
    while open.len() < count {
        let wave: Vec<_> = (open.len()..count.min(open.len() + 100))
            .map(|index| tokio::spawn(open_watcher(addr.to_owned(), streams[index % streams.len()].clone())))
            .collect();
        for task in wave {
            open.push(task.await??);
        }
    }
    Ok(open)
}

pub async fn run(args: &MemoryArgs, runs: usize) -> anyhow::Result<Report> {
    let mut report = Report::new("memory", json!({"watchers": args.watchers, "backend": args.backend, "runs": runs}));
    for run in 1..=runs {
        let store = Store::fresh(args.backend).await?;
        // Room for every watcher above the default connection cap (10,000).
        let cap = (args.watchers + 1000).max(10_000).to_string();
        let node = Node::start(&store, &["--max-connections", &cap])?;
        let client = node.client()?;
        let mut streams = Vec::new();
        for _ in 0..100 {
            let job =
                client.create_job_from_json(PROJECT, &json!({"service": "cfw", "job_type": "Idle"}), None).await?;
            let path = format!("/v1/{PROJECT}/jobs/{}/events", job.job.job_id);
            streams.push(Arc::new(signed_get(&node.addr, &path)?));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = node.rss_bytes()? as f64;
        let open = open_watchers(&node.addr, &streams, args.watchers).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let watching = node.rss_bytes()? as f64;
        eprintln!(
            "run {run}: idle {:.1} MiB, with {} watchers {:.1} MiB",
            idle / 1048576.0,
            open.len(),
            watching / 1048576.0
        );
        report.add("jobd idle", "rss", "MiB", idle / 1048576.0);
        report.add(&format!("jobd with {} idle SSE watchers", args.watchers), "rss", "MiB", watching / 1048576.0);
        report.add("per watcher", "rss", "KiB", (watching - idle) / args.watchers as f64 / 1024.0);
        drop(open);
        drop(node);

        // The same watchers against a bare axum event stream, for scale.
        let baseline = baseline_server()?;
        let path = Arc::new(signed_get(&baseline.addr, &format!("/v1/{PROJECT}/jobs/x/events"))?);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = baseline.rss_bytes()? as f64;
        let open = open_watchers(&baseline.addr, &[path], args.watchers).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let watching = baseline.rss_bytes()? as f64;
        report.add("bare axum SSE, per watcher", "rss", "KiB", (watching - idle) / args.watchers as f64 / 1024.0);
        drop(open);
    }
    Ok(report)
}
