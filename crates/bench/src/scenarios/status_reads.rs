//! Scenario 1, status reads: the three dialect GETs, AK/SK-signed (pre-signed, replayed within the
//! signature's date window), from a closed-loop generator on loopback, against a store holding
//! `--jobs` jobs; and the same load against the bare-handler baseline in the same run.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use jobd_auth::Signer;
use rand::Rng;
use serde_json::json;

use crate::baseline::Answers;
use crate::load::{self, Prepared};
use crate::node::{Backend, Node, Store, ACCESS_KEY, PROJECT, SECRET_KEY};
use crate::report::Report;
use crate::seed::{self, SERVICES};

#[derive(Debug, clap::Args)]
pub struct StatusReadsArgs {
    /// Jobs in the store (spread evenly over cfw, waf, elb).
    #[arg(long, default_value_t = 100_000)]
    pub jobs: u64,
    /// Keep-alive connections of the closed-loop generator.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds measured per target and run (after a warm-up of a quarter of it).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    pub backend: Backend,
}

/// The dialect GET of copy `i` of the template of `service`.
pub fn dialect_path(service: &str, job_id: &str) -> String {
    match service {
        "cfw" => format!("/v3/{PROJECT}/jobs/{job_id}"),
        "waf" => format!("/v1/{PROJECT}/waf/async-job/{job_id}"),
        _ => format!("/v3/{PROJECT}/elb/jobs/{job_id}"),
    }
}

pub fn signed_get(host: &str, path: &str) -> anyhow::Result<Prepared> {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_str(host)?);
    Signer::new(ACCESS_KEY.to_owned(), SECRET_KEY.to_owned()).sign(
        "GET",
        path,
        None,
        &mut headers,
        b"",
        chrono::Utc::now(),
    )?;
    Ok(Prepared { method: Method::GET, path_and_query: path.to_owned(), headers, body: Bytes::new() })
}

/// 3000 signed GETs of random stored jobs, the three dialects in turn.
pub fn prepare_requests(host: &str, per_service: u64) -> anyhow::Result<Vec<Prepared>> {
    let mut rng = rand::thread_rng();
    (0..3000)
        .map(|k| {
            let template = k % SERVICES.len();
            let id = seed::clone_id(template, rng.gen_range(1..=per_service));
            signed_get(host, &dialect_path(SERVICES[template], &id))
        })
        .collect()
}

/// What jobd answers for one job of each dialect (checked to be 200), for the baseline to echo.
async fn capture_answers(node: &Node) -> anyhow::Result<Answers> {
    let http = reqwest::Client::new();
    let mut bodies = Vec::new();
    for (template, service) in SERVICES.iter().enumerate() {
        let prepared = signed_get(&node.addr, &dialect_path(service, &seed::clone_id(template, 1)))?;
        let response =
            http.get(format!("{}{}", node.base, prepared.path_and_query)).headers(prepared.headers).send().await?;
        let status = response.status();
        let body = response.text().await?;
        if status != 200 {
            bail!("{service} GET answered {status}: {body}");
        }
        bodies.push(body);
    }
    let elb = bodies.pop().expect("three");
    let waf = bodies.pop().expect("three");
    let cfw = bodies.pop().expect("three");
    Ok(Answers { cfw, waf, elb })
}

pub async fn run(args: &StatusReadsArgs, runs: usize) -> anyhow::Result<Report> {
    let per_service = (args.jobs / SERVICES.len() as u64).max(1);
    let mut report = Report::new(
        "status-reads",
        json!({"jobs": per_service * 3, "connections": args.connections, "seconds": args.seconds,
               "backend": args.backend, "runs": runs}),
    );
    let store = Store::fresh(args.backend).await?;
    let node = Node::start(&store, &[])?;
    let templates = seed::create_templates(&node).await?;
    drop(node);
    seed::copy_templates(&store, &templates, 0, per_service).await?;
    let node = Node::start(&store, &[])?;
    let answers = capture_answers(&node).await?;
    let answers_file = tempfile::NamedTempFile::new()?;
    std::fs::write(answers_file.path(), serde_json::to_vec(&answers)?)?;
    let mut baseline_command = Command::new(std::env::current_exe()?);
    baseline_command
        .arg("baseline-server")
        .arg("--answers")
        .arg(answers_file.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let baseline = Node::spawn(baseline_command).context("starting the baseline server")?;
    report.add("jobd", "rss idle", "MiB", node.rss_bytes()? as f64 / 1048576.0);

    let measure = Duration::from_secs(args.seconds);
    let warmup = measure / 4;
    for run in 1..=runs {
        // Signed afresh each run, so every replay stays inside the 15-minute window.
        let requests = Arc::new(prepare_requests(&node.addr, per_service)?);
        let mut rates = [0.0; 2];
        for (index, (name, target)) in [("baseline (bare axum)", &baseline), ("jobd", &node)].into_iter().enumerate() {
            let mut result = load::run(&target.addr, requests.clone(), args.connections, warmup, measure).await?;
            if result.errors > 0 {
                bail!(
                    "{name}: {} of {} requests failed, first: {:?}",
                    result.errors,
                    result.requests,
                    result.first_error
                );
            }
            let summary = result.latencies.summary();
            rates[index] = result.requests_per_second();
            eprintln!(
                "run {run}: {name}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
                rates[index], summary.p50_ms, summary.p99_ms
            );
            report.add(name, "throughput", "req/s", rates[index]);
            report.add(name, "p50", "ms", summary.p50_ms);
            report.add(name, "p99", "ms", summary.p99_ms);
            report.add(name, "p999", "ms", summary.p999_ms);
        }
        report.add("jobd / baseline", "throughput ratio", "x", rates[1] / rates[0]);
        report.add("jobd", "rss peak (under load)", "MiB", node.peak_rss_bytes()? as f64 / 1048576.0);
    }
    report
        .note("the generator, jobd and the baseline share the machine's cores; the ratio is measured within each run");
    Ok(report)
}
