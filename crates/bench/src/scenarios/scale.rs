//! Scenario 5, scale: GET-by-id (the three dialects in turn) and first-page lists (native and ELB)
//! on one connection, with the store grown to each `--sizes` in turn; store bytes per job.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::load::{self, Prepared};
use crate::node::{Backend, Node, Store, PROJECT};
use crate::report::Report;
use crate::scenarios::status_reads::{prepare_requests, signed_get};
use crate::seed::{self, SERVICES};
use crate::stats::LatencySummary;

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Store sizes to measure at, ascending (jobs; spread over cfw, waf, elb).
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000,10000000")]
    pub sizes: Vec<u64>,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub backends: Vec<Backend>,
    /// Seconds of sequential requests per measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
}

async fn latency(node: &Node, requests: Vec<Prepared>, seconds: u64) -> anyhow::Result<LatencySummary> {
    let mut result =
        load::run(&node.addr, Arc::new(requests), 1, Duration::from_secs(1), Duration::from_secs(seconds)).await?;
    if result.errors > 0 {
        anyhow::bail!("{} requests failed, first: {:?}", result.errors, result.first_error);
    }
    Ok(result.latencies.summary())
}

/// The first page of the native list (all services) and of ELB's `ListJobs`.
fn native_list(node: &Node) -> anyhow::Result<Vec<Prepared>> {
    Ok(vec![signed_get(&node.addr, &format!("/v1/{PROJECT}/jobs"))?])
}

fn elb_list(node: &Node) -> anyhow::Result<Vec<Prepared>> {
    Ok(vec![signed_get(&node.addr, &format!("/v3/{PROJECT}/elb/jobs"))?])
}

pub async fn run(args: &ScaleArgs, runs: usize) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "scale",
        json!({"sizes": args.sizes, "backends": args.backends, "seconds": args.seconds, "runs": runs}),
    );
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    for &backend in &args.backends {
        let store = Store::fresh(backend).await?;
        let node = Node::start(&store, &[])?;
        let templates = seed::create_templates(&node).await?;
        drop(node);
        let mut per_service = 0;
        for &size in &sizes {
            let target = (size / SERVICES.len() as u64).max(1);
            if target > per_service {
                seed::copy_templates(&store, &templates, per_service, target - per_service).await?;
                per_service = target;
            }
            let stored = per_service * SERVICES.len() as u64;
            let node = Node::start(&store, &[])?;
            let row = format!("{backend} {stored} jobs");
            for run in 1..=runs {
                let get = latency(&node, prepare_requests(&node.addr, per_service)?, args.seconds).await?;
                let native = latency(&node, native_list(&node)?, args.seconds).await?;
                let elb = latency(&node, elb_list(&node)?, args.seconds).await?;
                eprintln!(
                    "run {run} {row}: GET p50 {:.3} ms, native list p50 {:.3} ms, ELB list p50 {:.3} ms",
                    get.p50_ms, native.p50_ms, elb.p50_ms
                );
                report.add(&row, "GET p50", "ms", get.p50_ms);
                report.add(&row, "GET p99", "ms", get.p99_ms);
                report.add(&row, "native list p50", "ms", native.p50_ms);
                report.add(&row, "native list p99", "ms", native.p99_ms);
                report.add(&row, "ELB list p50", "ms", elb.p50_ms);
                report.add(&row, "ELB list p99", "ms", elb.p99_ms);
            }
            drop(node);
            report.add(&row, "store bytes per job", "B", store.bytes().await? as f64 / stored as f64);
        }
        let (Some(&smallest), Some(&largest)) = (sizes.first(), sizes.last()) else { continue };
        let name = |size: u64| format!("{backend} {} jobs", (size / 3).max(1) * 3);
        for metric in ["GET p50", "native list p50", "ELB list p50"] {
            if let (Some(small), Some(large)) =
                (report.median_of(&name(smallest), metric), report.median_of(&name(largest), metric))
            {
                report.add(&format!("{backend} ratio largest/smallest"), metric, "x", large / small);
            }
        }
    }
    report.note("one connection, requests back to back; copies have no sub-jobs; lists are first pages of the default size (native 100 jobs, ELB 2000)");
    Ok(report)
}
