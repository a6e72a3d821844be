//! `jobd-bench`: jobd's benchmark suite. Each scenario starts the real `jobd` release binary on a
//! fresh store, measures, prints a table (median and every run) and writes JSON.
//!
//! ```text
//! cargo run --release -p jobd-bench -- status-reads            # 1. status reads vs a bare axum handler
//! cargo run --release -p jobd-bench -- throughput              # 2. burn-down and steady state, SQLite and PostgreSQL
//! cargo run --release -p jobd-bench -- notify-latency          # 4. job end -> `jobd job wait` / SSE
//! cargo run --release -p jobd-bench -- scale                   # 5. reads with 10k .. 10M jobs stored
//! cargo run --release -p jobd-bench -- memory                  # 6. RSS idle and with idle watchers
//! ```
//!
//! The peers (scenario 3) are driven by `benches/peers/run`. Results and commands: `BENCHMARKS.md`.

mod baseline;
mod load;
mod node;
mod report;
mod scenarios;
mod seed;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "jobd-bench", about = "jobd's benchmark suite")]
struct Cli {
    /// Runs per scenario; tables show the median and every run.
    #[arg(long, global = true, default_value_t = 3)]
    runs: usize,
    /// Where the JSON report goes (default: target/bench/<scenario>.json).
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// The three dialect GETs under a closed-loop load, against a bare-handler baseline.
    StatusReads(scenarios::status_reads::StatusReadsArgs),
    /// Burn-down of pre-created no-op jobs and a steady state, over the worker API.
    Throughput(scenarios::throughput::ThroughputArgs),
    /// From a job's end to `jobd job wait` returning and to an SSE client seeing it.
    NotifyLatency(scenarios::notify::NotifyArgs),
    /// GET-by-id and first-page list latency as the store grows.
    Scale(scenarios::scale::ScaleArgs),
    /// Resident memory: idle, and with many idle watchers.
    Memory(scenarios::memory::MemoryArgs),
    /// (internal) The baseline server of `status-reads`.
    #[command(hide = true)]
    BaselineServer {
        #[arg(long)]
        answers: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Scenario::BaselineServer { answers } = &cli.scenario {
        return match baseline::serve(answers) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("baseline server: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("jobd-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let runs = cli.runs.max(1);
    let report = match &cli.scenario {
        Scenario::StatusReads(args) => scenarios::status_reads::run(args, runs).await?,
        Scenario::Throughput(args) => scenarios::throughput::run(args, runs).await?,
        Scenario::NotifyLatency(args) => scenarios::notify::run(args, runs).await?,
        Scenario::Scale(args) => scenarios::scale::run(args, runs).await?,
        Scenario::Memory(args) => scenarios::memory::run(args, runs).await?,
        Scenario::BaselineServer { .. } => unreachable!("handled before the runtime starts"),
    };
    report.print();
    let path = cli.json.clone().unwrap_or_else(|| PathBuf::from(format!("target/bench/{}.json", report.scenario)));
    report.write_json(&path)
}
