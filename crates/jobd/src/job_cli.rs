//! `jobd job create|get|list|cancel|wait|watch`: jobs from the command line over `jobd-client`,
//! in the native view or as a seed API shows them (`--view cfw|waf|elb`), as tables or as one
//! stable JSON document (`--output json`).
//!
//! Exit codes: 0 done (for `wait` and `watch`: the job `SUCCEEDED`); 1 the job `FAILED`; 2 the
//! wait timed out; 3 the job was `CANCELLED`; 4 the request failed (unknown job, refused
//! credentials, jobd unreachable, a bad setting); 64 the command line is wrong.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use futures_util::StreamExt;
use jobd_client::elb::{ListJobsRequest, ShowJobRequest};
use jobd_client::{
    cfw, waf, Client, Job, JobStatus, ListJobsQuery, NewJob, SimulateOutcome, SimulateSpec, WaitError, WaitOptions,
    WaitStrategy,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::connection::Connection;
use crate::job_progress::{final_line, format_elapsed, Progress};

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_TIMEOUT: u8 = 2;
pub const EXIT_CANCELLED: u8 = 3;
pub const EXIT_ERROR: u8 = 4;
pub const EXIT_USAGE: u8 = 64;

pub const EXIT_CODES_HELP: &str = "Exit codes: 0 done (wait, watch: the job SUCCEEDED), 1 the job FAILED, \
2 the wait timed out, 3 the job was CANCELLED, 4 the request failed, 64 a wrong command line.";

#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(flatten)]
    connection: Connection,
    /// The project of the jobs.
    #[arg(long, global = true, env = "JOBD_PROJECT_ID")]
    project_id: Option<String>,
    /// `table` for people, `json` for scripts (one JSON document; `watch`: one per line).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Which API's view of a job to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum View {
    /// jobd's own API: the whole job.
    Native,
    /// Cloud Firewall's ListJob.
    Cfw,
    /// Web Application Firewall's ConfirmAsyncJob.
    Waf,
    /// Elastic Load Balance's ShowJob / ListJobs.
    Elb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    Auto,
    Events,
    LongPoll,
    Poll,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Create a job (from flags, or a whole JSON body with --body), or many from a JSON Lines file
    /// (--from-file: one create body per line, each may carry "client_token").
    Create(CreateArgs),
    /// Show a job.
    Get {
        job_id: String,
        #[arg(long, value_enum, default_value_t = View::Native)]
        view: View,
        /// WAF's enterpriseProjectId (`0`: the default one; `all_granted_eps`).
        #[arg(long)]
        enterprise_project_id: Option<String>,
        /// Dialect views: hold the answer up to N seconds until the job ends (X-Jobd-Wait).
        /// Native view: with --after-version, a long poll.
        #[arg(long, value_name = "N")]
        wait_seconds: Option<u32>,
        /// Native view: answer once the job's version exceeds V (at most --wait-seconds).
        #[arg(long, value_name = "V", requires = "wait_seconds")]
        after_version: Option<i64>,
    },
    /// List jobs, newest first (native, or ELB's ListJobs).
    List(ListArgs),
    /// Cancel a job and its unfinished sub-jobs.
    Cancel { job_id: String },
    /// Wait for a job to end, showing its progress; the exit code tells how it ended.
    #[command(after_help = EXIT_CODES_HELP)]
    Wait {
        job_id: String,
        /// Give up after this long (`90s`, `10m`, `1h`; plain numbers are seconds).
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        timeout: Duration,
        /// How to learn of changes (auto: events, else long poll, else polling).
        #[arg(long, value_enum, default_value_t = Strategy::Auto)]
        strategy: Strategy,
        /// Plain lines even on a terminal.
        #[arg(long)]
        plain: bool,
    },
    /// Print each change of a job until it ends (from its event stream).
    #[command(after_help = EXIT_CODES_HELP)]
    Watch {
        job_id: String,
        /// Show each change as this API answers it.
        #[arg(long, value_enum, default_value_t = View::Native)]
        view: View,
        /// WAF's enterpriseProjectId.
        #[arg(long)]
        enterprise_project_id: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long, required_unless_present_any = ["body", "from_file"], conflicts_with_all = ["body", "from_file"])]
    service: Option<String>,
    #[arg(long, required_unless_present_any = ["body", "from_file"], conflicts_with_all = ["body", "from_file"])]
    job_type: Option<String>,
    /// The job's payload, a JSON value.
    #[arg(long, value_name = "JSON", conflicts_with = "body")]
    payload: Option<String>,
    #[arg(long, conflicts_with = "body")]
    resource_id: Option<String>,
    /// Let jobd's simulator play the job out over N milliseconds.
    #[arg(long, value_name = "N", conflicts_with = "body")]
    simulate_ms: Option<u64>,
    /// The simulated job fails (implies simulation).
    #[arg(long, conflicts_with = "body")]
    fail: bool,
    /// The simulated failure's code.
    #[arg(long, requires = "fail")]
    error_code: Option<String>,
    /// The simulated failure's message.
    #[arg(long, requires = "fail")]
    error_msg: Option<String>,
    /// A whole create body, from a file or `-` (standard input).
    #[arg(long, value_name = "FILE|-", conflicts_with = "from_file")]
    body: Option<String>,
    /// Many jobs: a JSON Lines file (or `-`), one create body per line, each with an optional
    /// `"client_token"`. Sent in batches of up to 1,000 lines, each batch created whole or not
    /// at all.
    #[arg(long, value_name = "FILE|-")]
    from_file: Option<String>,
    /// Makes the create idempotent: the same token and body answer the same job.
    #[arg(long, conflicts_with = "from_file")]
    client_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// native or elb (CFW and WAF have no list API).
    #[arg(long, value_enum, default_value_t = View::Native)]
    view: View,
    /// Native view: only this service's jobs.
    #[arg(long)]
    service: Option<String>,
    #[arg(long = "job-type")]
    job_types: Vec<String>,
    /// PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED (elb view: INIT, RUNNING, SUCCESS, FAIL, CANCEL).
    #[arg(long = "status")]
    statuses: Vec<String>,
    #[arg(long = "resource-id")]
    resource_ids: Vec<String>,
    /// Jobs per page.
    #[arg(long)]
    limit: Option<u32>,
    /// Start after this job id (the previous page's next marker).
    #[arg(long)]
    marker: Option<String>,
    /// Every page, not just the first.
    #[arg(long)]
    all: bool,
}

/// `300ms`, `90s`, `10m`, `1h`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 90s, 10m or 1h"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("{text:?}: the unit is ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// A request error: exit 4 with the message on stderr.
fn request_failed(error: &anyhow::Error) -> ExitCode {
    eprintln!("Error: {error:#}");
    ExitCode::from(EXIT_ERROR)
}

pub async fn run(args: JobArgs) -> ExitCode {
    match run_command(args).await {
        Ok(code) => code,
        Err(error) => request_failed(&error),
    }
}

struct Session {
    client: Client,
    project_id: String,
    output: Output,
}

async fn run_command(args: JobArgs) -> anyhow::Result<ExitCode> {
    let settings = args.connection.settings(args.project_id)?;
    let Some(project_id) = settings.project_id.clone() else {
        bail!("no project: set JOBD_PROJECT_ID (or --project-id, or project_id in the profile)");
    };
    let context = Session { client: settings.client()?, project_id, output: args.output };
    match args.command {
        JobCommand::Create(create) => create_job(&context, create).await,
        JobCommand::Get { job_id, view, enterprise_project_id, wait_seconds, after_version } => {
            get_job(&context, &job_id, view, enterprise_project_id, wait_seconds, after_version).await
        }
        JobCommand::List(list) => list_jobs(&context, list).await,
        JobCommand::Cancel { job_id } => {
            let job = context.client.cancel_job(&context.project_id, &job_id).await?;
            show_native(&context, &job)?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Wait { job_id, timeout, strategy, plain } => {
            wait_job(&context, &job_id, timeout, strategy, plain).await
        }
        JobCommand::Watch { job_id, view, enterprise_project_id } => {
            watch_job(&context, &job_id, view, enterprise_project_id).await
        }
    }
}

fn read_text(source: &str) -> anyhow::Result<String> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(source).with_context(|| format!("reading {source}"))
    }
}

fn read_body(source: &str) -> anyhow::Result<Value> {
    serde_json::from_str(&read_text(source)?).with_context(|| format!("{source} is not JSON"))
}

/// The create bodies of a JSON Lines file, each with its line number; blank lines are skipped.
fn read_json_lines(source: &str) -> anyhow::Result<Vec<(usize, Value)>> {
    let text = read_text(source)?;
    let mut bodies = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let body: Value =
            serde_json::from_str(line).with_context(|| format!("{source}, line {}: not a JSON value", index + 1))?;
        bodies.push((index + 1, body));
    }
    if bodies.is_empty() {
        bail!("{source} holds no job (one JSON create body per line)");
    }
    Ok(bodies)
}

/// `--from-file`: every line's job, in batches; prints the jobs created (and replayed) in order.
async fn create_jobs(context: &Session, source: &str) -> anyhow::Result<ExitCode> {
    let bodies = read_json_lines(source)?;
    let mut jobs = Vec::with_capacity(bodies.len());
    let mut replayed = Vec::new();
    for batch in bodies.chunks(jobd_client::MAX_JOBS_PER_BATCH) {
        let (first, last) = (batch[0].0, batch[batch.len() - 1].0);
        let items = Value::Array(batch.iter().map(|(_, body)| body.clone()).collect());
        let created = context.client.create_jobs_from_json(&context.project_id, &items).await.with_context(|| {
            let done =
                if jobs.is_empty() { String::new() } else { format!(" ({} jobs before it were created)", jobs.len()) };
            format!("the batch of lines {first} to {last} was refused, none of it created{done}")
        })?;
        replayed.extend(created.replayed.iter().map(|index| jobs.len() + index));
        jobs.extend(created.jobs);
    }
    if context.output == Output::Json {
        print_json(&json!({"jobs": jobs, "replayed": replayed}))?;
    } else {
        let rows: Vec<Vec<String>> = jobs
            .iter()
            .enumerate()
            .map(|(index, job)| {
                let state = if replayed.contains(&index) { "replayed" } else { "created" };
                vec![
                    job.job_id.clone(),
                    job.service.clone(),
                    job.job_type.clone(),
                    job.status.to_string(),
                    state.into(),
                ]
            })
            .collect();
        print!("{}", table(&["JOB ID", "SERVICE", "JOB TYPE", "STATUS", ""], &rows));
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_job(context: &Session, args: CreateArgs) -> anyhow::Result<ExitCode> {
    if let Some(source) = &args.from_file {
        return create_jobs(context, source).await;
    }
    let token = args.client_token.as_deref();
    let created = if let Some(source) = &args.body {
        let body = read_body(source)?;
        context.client.create_job_from_json(&context.project_id, &body, token).await?
    } else {
        let (Some(service), Some(job_type)) = (args.service, args.job_type) else {
            bail!("--service and --job-type are needed without --body");
        };
        let mut job = NewJob::new(service, job_type);
        if let Some(payload) = &args.payload {
            job = job.payload(serde_json::from_str(payload).context("--payload is not JSON")?);
        }
        if let Some(resource_id) = args.resource_id {
            job = job.resource_id(resource_id);
        }
        if args.simulate_ms.is_some() || args.fail {
            job = job.simulate(SimulateSpec {
                duration_ms: args.simulate_ms.unwrap_or(0),
                outcome: if args.fail { SimulateOutcome::Failure } else { SimulateOutcome::Success },
                error_code: args.error_code,
                error_msg: args.error_msg,
                messages: Vec::new(),
            });
        }
        context.client.create_job(&context.project_id, &job, token).await?
    };
    show_native(context, &created.job)?;
    Ok(ExitCode::SUCCESS)
}

/// `{"job": Job}`, or the job as a key-value block with its sub-jobs.
fn show_native(context: &Session, job: &Job) -> anyhow::Result<()> {
    if context.output == Output::Json {
        return print_json(&json!({"job": job}));
    }
    print!("{}", native_table(job));
    Ok(())
}

fn dash(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).filter(|v| !v.is_empty()).unwrap_or_else(|| "-".to_owned())
}

fn key_values(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter().map(|(key, value)| format!("{key:<width$}  {value}\n")).collect()
}

/// Columns padded to their widest cell; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (n, cell) in row.iter().enumerate() {
            widths[n] = widths[n].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut text = String::new();
        for (n, cell) in cells.iter().enumerate() {
            if n + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[n]));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut text = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        text.push_str(&line(row.clone()));
    }
    text
}

fn native_table(job: &Job) -> String {
    let attempt =
        if job.attempt > 0 { format!(" (attempt {}/{})", job.attempt, job.max_attempts) } else { String::new() };
    let mut rows = vec![
        ("job", job.job_id.clone()),
        ("service", format!("{} {}", job.service, job.job_type)),
        ("status", format!("{}{attempt}", job.status)),
        ("message", dash(job.message.as_ref())),
        ("resource", dash(job.resource_id.as_ref())),
        ("created", job.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        ("started", dash(job.started_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))),
        ("ended", dash(job.ended_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))),
        ("version", job.version.to_string()),
    ];
    if job.error_code.is_some() || job.error_msg.is_some() {
        rows.push(("error", format!("{}: {}", dash(job.error_code.as_ref()), dash(job.error_msg.as_ref()))));
    }
    if let Some(result) = &job.result {
        rows.push(("result", result.to_string()));
    }
    let mut text = key_values(&rows);
    if !job.sub_jobs.is_empty() {
        let sub_rows: Vec<Vec<String>> = job
            .sub_jobs
            .iter()
            .map(|sub| {
                let detail = match (&sub.error_code, sub.status) {
                    (Some(code), JobStatus::Failed) => format!("{code}: {}", dash(sub.error_msg.as_ref())),
                    _ => dash(sub.message.as_ref()),
                };
                vec![sub.job_id.clone(), sub.job_type.clone(), sub.status.to_string(), detail]
            })
            .collect();
        text.push('\n');
        text.push_str(&table(&["SUB-JOB", "TYPE", "STATUS", "MESSAGE"], &sub_rows));
    }
    text
}

/// A dialect's answer for one job, kept as its own model (printed as-is in JSON).
enum DialectAnswer {
    Cfw(cfw::ListJobResponse),
    Waf(waf::ConfirmAsyncJobResponse),
    Elb(jobd_client::elb::ShowJobResponse),
}

impl DialectAnswer {
    fn to_json(&self) -> anyhow::Result<String> {
        Ok(match self {
            DialectAnswer::Cfw(answer) => serde_json::to_string(answer)?,
            DialectAnswer::Waf(answer) => serde_json::to_string(answer)?,
            DialectAnswer::Elb(answer) => serde_json::to_string(answer)?,
        })
    }

    fn to_table(&self) -> String {
        match self {
            DialectAnswer::Cfw(answer) => {
                let mut rows = vec![
                    ("id", answer.data.id.clone()),
                    ("status", answer.data.status.clone()),
                    ("begin_time", dash(answer.data.begin_time.as_ref())),
                    ("end_time", dash(answer.data.end_time.as_ref())),
                ];
                if answer.error_code.is_some() || answer.error_msg.is_some() {
                    rows.push(("error_code", dash(answer.error_code.as_ref())));
                    rows.push(("error_msg", dash(answer.error_msg.as_ref())));
                }
                key_values(&rows)
            }
            DialectAnswer::Waf(answer) => key_values(&[
                ("job_id", answer.job_id.clone()),
                ("status", answer.status.clone()),
                ("message", dash(Some(&answer.message))),
            ]),
            DialectAnswer::Elb(answer) => {
                let job = &answer.job;
                let mut text = key_values(&[
                    ("job_id", job.job_id.clone()),
                    ("job_type", job.job_type.clone()),
                    ("status", job.status.clone()),
                    ("begin_time", dash(job.begin_time.as_ref())),
                    ("end_time", dash(job.end_time.as_ref())),
                    ("resource_id", dash(Some(&job.resource_id))),
                    ("error", format!("{} {}", dash(Some(&job.error_code)), job.error_msg).trim_end().to_owned()),
                ]);
                if !job.sub_jobs.is_empty() {
                    let rows: Vec<Vec<String>> = job
                        .sub_jobs
                        .iter()
                        .map(|sub| {
                            vec![
                                sub.job_id.clone(),
                                sub.job_type.clone(),
                                sub.status.clone(),
                                dash(sub.begin_time.as_ref()),
                                dash(sub.end_time.as_ref()),
                                format!("{} {}", sub.error_code, sub.error_msg).trim().to_owned(),
                            ]
                        })
                        .collect();
                    text.push('\n');
                    text.push_str(&table(&["SUB_JOB", "JOB_TYPE", "STATUS", "BEGIN_TIME", "END_TIME", "ERROR"], &rows));
                }
                text
            }
        }
    }

    /// One line for `watch`: the status words.
    fn summary(&self) -> String {
        match self {
            DialectAnswer::Cfw(answer) => format!("{} {}", answer.data.id, answer.data.status),
            DialectAnswer::Waf(answer) => {
                format!("{} {} {}", answer.job_id, answer.status, answer.message).trim_end().to_owned()
            }
            DialectAnswer::Elb(answer) => {
                let steps: Vec<String> =
                    answer.job.sub_jobs.iter().map(|sub| format!("{}={}", sub.job_type, sub.status)).collect();
                format!("{} {} {}", answer.job.job_id, answer.job.status, steps.join(" ")).trim_end().to_owned()
            }
        }
    }
}

async fn dialect_answer(
    context: &Session,
    job_id: &str,
    view: View,
    enterprise_project_id: Option<&str>,
    wait_seconds: Option<u32>,
) -> anyhow::Result<DialectAnswer> {
    let project = context.client.project(&context.project_id);
    Ok(match view {
        View::Cfw => {
            let mut request = cfw::ListJobRequest::new(job_id);
            request.wait_seconds = wait_seconds;
            DialectAnswer::Cfw(project.cfw().list_job(&request).await?)
        }
        View::Waf => {
            let mut request = waf::ConfirmAsyncJobRequest::new(job_id);
            request.enterprise_project_id = enterprise_project_id.map(str::to_owned);
            request.wait_seconds = wait_seconds;
            DialectAnswer::Waf(project.waf().confirm_async_job(&request).await?)
        }
        View::Elb => {
            let mut request = ShowJobRequest::new(job_id);
            request.wait_seconds = wait_seconds;
            DialectAnswer::Elb(project.elb().show_job(&request).await?)
        }
        View::Native => unreachable!("the native view is no dialect"),
    })
}

async fn get_job(
    context: &Session,
    job_id: &str,
    view: View,
    enterprise_project_id: Option<String>,
    wait_seconds: Option<u32>,
    after_version: Option<i64>,
) -> anyhow::Result<ExitCode> {
    if view == View::Native {
        let job = match (after_version, wait_seconds) {
            (Some(version), Some(seconds)) => {
                let wait = Duration::from_secs(seconds.into());
                context.client.get_job_after(&context.project_id, job_id, version, wait).await?
            }
            _ => context.client.get_job(&context.project_id, job_id).await?,
        };
        show_native(context, &job)?;
        return Ok(ExitCode::SUCCESS);
    }
    if after_version.is_some() {
        bail!("--after-version is for the native view");
    }
    let answer = dialect_answer(context, job_id, view, enterprise_project_id.as_deref(), wait_seconds).await?;
    match context.output {
        Output::Json => println!("{}", answer.to_json()?),
        Output::Table => print!("{}", answer.to_table()),
    }
    Ok(ExitCode::SUCCESS)
}

async fn list_jobs(context: &Session, args: ListArgs) -> anyhow::Result<ExitCode> {
    match args.view {
        View::Native => list_native(context, args).await,
        View::Elb => list_elb(context, args).await,
        View::Cfw | View::Waf => bail!("CFW and WAF have no list API: use --view native or --view elb"),
    }
}

async fn list_native(context: &Session, args: ListArgs) -> anyhow::Result<ExitCode> {
    let mut query = ListJobsQuery {
        service: args.service,
        job_types: args.job_types,
        resource_ids: args.resource_ids,
        limit: args.limit,
        marker: args.marker,
        ..ListJobsQuery::default()
    };
    for status in &args.statuses {
        query.statuses.push(status.parse().map_err(|e| anyhow::anyhow!("--status {status}: {e}"))?);
    }
    let mut jobs = Vec::new();
    let next_marker = loop {
        let page = context.client.list_jobs(&context.project_id, &query).await?;
        let empty = page.jobs.is_empty();
        jobs.extend(page.jobs);
        match page.next_marker {
            Some(marker) if args.all && !empty => query.marker = Some(marker),
            next => break next,
        }
    };
    if context.output == Output::Json {
        print_json(&json!({"jobs": jobs, "next_marker": next_marker}))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            vec![
                job.job_id.clone(),
                job.service.clone(),
                job.job_type.clone(),
                job.status.to_string(),
                job.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                dash(job.message.as_ref()),
            ]
        })
        .collect();
    print!("{}", table(&["JOB_ID", "SERVICE", "JOB_TYPE", "STATUS", "CREATED", "MESSAGE"], &rows));
    if let Some(marker) = next_marker {
        println!("(more: --marker {marker})");
    }
    Ok(ExitCode::SUCCESS)
}

async fn list_elb(context: &Session, args: ListArgs) -> anyhow::Result<ExitCode> {
    if args.service.is_some() {
        bail!("--service is for the native view (ELB lists only ELB's jobs)");
    }
    let request = ListJobsRequest {
        limit: args.limit,
        marker: args.marker,
        job_type: args.job_types,
        status: args.statuses,
        resource_id: args.resource_ids,
        ..ListJobsRequest::default()
    };
    let elb = context.client.project(&context.project_id).elb();
    let (jobs, page_info) = if args.all {
        (elb.list_jobs_pages(request).all_jobs().await?, None)
    } else {
        let page = elb.list_jobs(&request).await?;
        if context.output == Output::Json {
            print_json(&page)?;
            return Ok(ExitCode::SUCCESS);
        }
        (page.jobs, Some(page.page_info))
    };
    if context.output == Output::Json {
        print_json(&json!({"jobs": jobs}))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            vec![
                job.job_id.clone(),
                job.job_type.clone(),
                job.status.clone(),
                dash(job.begin_time.as_ref()),
                dash(job.end_time.as_ref()),
                dash(Some(&job.error_code)),
            ]
        })
        .collect();
    print!("{}", table(&["JOB_ID", "JOB_TYPE", "STATUS", "BEGIN_TIME", "END_TIME", "ERROR_CODE"], &rows));
    // ELB names a next marker on every page; only a full page may have a next one.
    let full = args.limit.filter(|limit| *limit > 0).is_some_and(|limit| jobs.len() >= limit as usize);
    if let Some(marker) = page_info.and_then(|info| info.next_marker).filter(|_| full) {
        println!("(next page: --marker {marker})");
    }
    Ok(ExitCode::SUCCESS)
}

/// The exit code of a terminal job.
fn exit_code_of(status: JobStatus) -> ExitCode {
    match status {
        JobStatus::Failed => ExitCode::from(EXIT_FAILED),
        JobStatus::Cancelled => ExitCode::from(EXIT_CANCELLED),
        _ => ExitCode::SUCCESS,
    }
}

async fn wait_job(
    context: &Session,
    job_id: &str,
    timeout: Duration,
    strategy: Strategy,
    plain: bool,
) -> anyhow::Result<ExitCode> {
    let strategy = match strategy {
        Strategy::Auto => WaitStrategy::Auto,
        Strategy::Events => WaitStrategy::Events,
        Strategy::LongPoll => WaitStrategy::LongPoll,
        Strategy::Poll => WaitStrategy::Poll,
    };
    let options = WaitOptions::new(timeout).strategy(strategy);
    let show_progress = context.output == Output::Table;
    let mut progress = Progress::new(show_progress && !plain && std::io::stdout().is_terminal());
    let (changes, mut changed) = tokio::sync::mpsc::unbounded_channel::<Job>();
    let started = Instant::now();
    let waiting = context.client.wait_for_with(&context.project_id, job_id, &options, |job| {
        let _ = changes.send(job.clone());
    });
    tokio::pin!(waiting);
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    let outcome = loop {
        tokio::select! {
            outcome = &mut waiting => break outcome,
            Some(job) = changed.recv() => if show_progress { progress.update(&job, started.elapsed()) },
            _ = ticks.tick() => if show_progress { progress.tick(started.elapsed()) },
        }
    };
    while let Ok(job) = changed.try_recv() {
        if show_progress {
            progress.update(&job, started.elapsed());
        }
    }
    let elapsed = started.elapsed();
    if show_progress {
        progress.finish(elapsed);
    }
    let (code, word, job) = match &outcome {
        Ok(job) => (ExitCode::SUCCESS, "succeeded", Some(job)),
        Err(WaitError::Failed { job, .. }) => (ExitCode::from(EXIT_FAILED), "failed", Some(&**job)),
        Err(WaitError::Cancelled { job }) => (ExitCode::from(EXIT_CANCELLED), "cancelled", Some(&**job)),
        Err(WaitError::Timeout { last_seen, .. }) => (ExitCode::from(EXIT_TIMEOUT), "timeout", last_seen.as_deref()),
        Err(WaitError::Api(error)) => return Err(anyhow::anyhow!("cannot wait for job {job_id}: {error}")),
    };
    if context.output == Output::Json {
        let mut document = json!({"outcome": word, "job": job, "elapsed_seconds": elapsed.as_secs_f64()});
        if let Err(WaitError::Failed { error_code, error_msg, .. }) = &outcome {
            document["error_code"] = json!(error_code);
            document["error_msg"] = json!(error_msg);
        }
        print_json(&document)?;
        return Ok(code);
    }
    match (&outcome, job) {
        (Ok(job), _) => println!("{}", final_line(job, elapsed)),
        (Err(WaitError::Timeout { .. }), last) => {
            let status = last.map(|job| job.status.to_string()).unwrap_or_else(|| "unseen".to_owned());
            eprintln!("job {job_id} did not finish within {} (still {status})", format_elapsed(timeout));
        }
        (Err(_), Some(job)) => eprintln!("{}", final_line(job, elapsed)),
        (Err(_), None) => {}
    }
    Ok(code)
}

async fn watch_job(
    context: &Session,
    job_id: &str,
    view: View,
    enterprise_project_id: Option<String>,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut progress = Progress::new(false);
    let mut watch = context.client.watch(&context.project_id, job_id);
    let mut last_shown = String::new();
    let mut last_status = None;
    while let Some(job) = watch.next().await {
        let job = job?;
        last_status = Some(job.status);
        if view == View::Native {
            match context.output {
                Output::Json => print_json(&json!({"job": job}))?,
                Output::Table => {
                    for line in progress.plain_changes(&job, started.elapsed()) {
                        println!("{line}");
                    }
                }
            }
            continue;
        }
        let answer = dialect_answer(context, job_id, view, enterprise_project_id.as_deref(), None).await?;
        let shown = answer.to_json()?;
        if shown != last_shown {
            match context.output {
                Output::Json => println!("{shown}"),
                Output::Table => println!("{:>8}  {}", format_elapsed(started.elapsed()), answer.summary()),
            }
            last_shown = shown;
        }
    }
    Ok(last_status.map_or(ExitCode::SUCCESS, exit_code_of))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn tables_pad_all_but_the_last_column() {
        let text = table(&["A", "BB", "C"], &[vec!["xxx".into(), "y".into(), "z z".into()]]);
        assert_eq!(text, "A    BB  C\nxxx  y   z z\n");
    }
}
