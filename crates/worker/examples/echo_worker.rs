//! An example jobd worker to copy: it runs every job type of the services you name by working
//! through a few timed steps (reporting "step 1/5", "step 2/5"... as the job's message) and answers
//! `{"echo": <the job's payload>}`.
//!
//! ```text
//! JOBD_ACCESS_KEY=... JOBD_SECRET_KEY=... \
//!     cargo run -p jobd-worker --example echo_worker -- --services cfw,waf,elb
//! ```
//!
//! - `JOBD_ENDPOINT` (default `http://127.0.0.1:8080`), `JOBD_ACCESS_KEY`, `JOBD_SECRET_KEY`.
//! - `--services cfw,waf` (required), `--concurrency N` (default 4), `--worker-id ID`,
//!   `--step-ms N` (default 1000: five steps of a second each).
//! - A payload with `"fail_times": N` makes attempts 1 to N fail retryably, so you can watch jobd
//!   retry: create the job with `"max_attempts"` above N.
//! - Cancel a job while it runs and the worker stops it at its next step.
//! - Ctrl-C stops claiming and lets the running jobs finish; a second Ctrl-C quits at once (the
//!   jobs' leases then expire and jobd hands them to another worker).
//! - Kill the worker mid-job (`kill -9`) and start it again: once the lease (30 s) expires, the job
//!   is retried and finishes.
//! - `--project P --create N` first creates N jobs of the first service in project P for it to run
//!   (the first one asks to fail once), so you have work to watch.

use std::process::ExitCode;
use std::time::Duration;

use jobd_client::{Client, Credentials, NewJob, Task};
use jobd_worker::runtime::{HandlerResult, TaskContext, TaskError, WorkerRuntime};
use serde_json::{json, Value};

const STEPS: u32 = 5;
const USAGE: &str = "usage: echo_worker --services cfw,waf,elb [--concurrency N] [--worker-id ID] [--step-ms N]
                   [--project P --create N]

environment: JOBD_ENDPOINT (default http://127.0.0.1:8080), JOBD_ACCESS_KEY, JOBD_SECRET_KEY";

/// The command line.
struct Args {
    services: Vec<String>,
    concurrency: usize,
    worker_id: String,
    step: Duration,
    project: Option<String>,
    create: u64,
}

impl Args {
    fn parse(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut args = Args {
            services: Vec::new(),
            concurrency: 4,
            worker_id: format!("echo-worker-{}", std::process::id()),
            step: Duration::from_millis(1000),
            project: None,
            create: 0,
        };
        while let Some(arg) = raw.next() {
            // Both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            let value = inline.or_else(|| raw.next()).ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let number = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag} takes a number, not {v:?}"));
            match flag.as_str() {
                "--services" => {
                    args.services.extend(value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned))
                }
                "--concurrency" => args.concurrency = number(&value)?.max(1) as usize,
                "--worker-id" => args.worker_id = value,
                "--step-ms" => args.step = Duration::from_millis(number(&value)?),
                "--project" => args.project = Some(value),
                "--create" => args.create = number(&value)?,
                _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
            }
        }
        if args.services.is_empty() {
            return Err(format!("name at least one service with --services\n{USAGE}"));
        }
        if args.create > 0 && args.project.is_none() {
            return Err(format!("--create needs --project\n{USAGE}"));
        }
        Ok(args)
    }
}

/// Works through the steps, then echoes the payload back as the job's result.
async fn echo(task: Task, ctx: TaskContext, step: Duration) -> HandlerResult {
    tracing::info!(job_id = %task.job_id, job_type = %task.job_type, attempt = task.attempt, "working");
    for n in 1..=STEPS {
        // `?`: when the job was cancelled (or timed out), stop here; nothing more is reported.
        ctx.progress(format!("step {n}/{STEPS}")).await?;
        tokio::select! {
            reason = ctx.cancelled() => return Err(reason.into()),
            () = tokio::time::sleep(step) => {}
        }
    }
    let fail_times = task.payload.as_ref().and_then(|p| p.get("fail_times")).and_then(Value::as_u64).unwrap_or(0);
    if u64::from(task.attempt) <= fail_times {
        return Err(TaskError::retryable(
            "ECHO.ASKED_TO_FAIL",
            format!("attempt {} fails, as fail_times = {fail_times} asks", task.attempt),
        ));
    }
    Ok(Some(json!({"echo": task.payload})))
}

/// Undoes an echo when a later sub-job of a rollback parent failed: there is nothing to undo.
async fn undo(task: Task, ctx: TaskContext) -> HandlerResult {
    ctx.progress("undoing").await?;
    Ok(Some(json!({"undone": task.payload})))
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JOBD_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();

    if std::env::args().skip(1).any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let endpoint = std::env::var("JOBD_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    let Some(credentials) = Credentials::from_env() else {
        eprintln!("set JOBD_ACCESS_KEY and JOBD_SECRET_KEY (the keys jobd serves with)");
        return ExitCode::from(2);
    };
    let client = match Client::new(&endpoint, credentials) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };

    if let Some(project) = &args.project {
        for n in 0..args.create {
            let payload = json!({"n": n, "fail_times": if n == 0 { 1 } else { 0 }});
            let job = NewJob::new(args.services[0].clone(), "EchoJob").payload(payload);
            match client.create_job(project, &job, None).await {
                Ok(created) => println!("created {} job {}", args.services[0], created.job.job_id),
                Err(error) => {
                    eprintln!("cannot create a job: {error}");
                    return ExitCode::from(1);
                }
            }
        }
    }

    let mut builder = WorkerRuntime::builder(client, args.worker_id.clone()).max_in_flight(args.concurrency);
    for service in &args.services {
        let step = args.step;
        builder = builder
            .service(service)
            .fallback_handler(move |task: Task, ctx: TaskContext| echo(task, ctx, step))
            .fallback_compensation(undo);
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };

    println!("{} works on {} for {} (Ctrl-C to stop)", args.worker_id, endpoint, args.services.join(", "));
    let report = runtime
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("stopping: finishing the jobs in hand (Ctrl-C again to quit now)");
            tokio::spawn(async {
                let _ = tokio::signal::ctrl_c().await;
                std::process::exit(130);
            });
        })
        .await;
    println!(
        "stopped: {} claimed, {} completed, {} failed, {} stopped, {} abandoned",
        report.claimed, report.completed, report.failed, report.stopped, report.abandoned
    );
    ExitCode::SUCCESS
}
