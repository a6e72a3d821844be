//! `jobd demo`: jobd on 127.0.0.1 with a fresh embedded store, demo credentials, and a new round
//! of live jobs in all three services every minute, a console user to watch them with, plus a
//! copy-paste official-SDK snippet.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use jobd_auth::identity::Role;
use jobd_core::{Entity, Job, JobType, NewJob, NewSubJob, ProjectId, ServiceName, SimulateOutcome, SimulateSpec};
use jobd_service::JobService;
use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;
use tokio::net::TcpListener;

use crate::config::{RootCredentials, Secret, ServerConfig};
use crate::server;

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address to listen on; if it is taken, any free port on 127.0.0.1 is used.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Keep the demo store here instead of a fresh temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seconds between rounds of new demo jobs.
    #[arg(long, default_value_t = 60)]
    round_seconds: u64,
}

fn spec(duration_ms: u64, messages: &[&str]) -> SimulateSpec {
    SimulateSpec {
        duration_ms,
        outcome: SimulateOutcome::Success,
        error_code: None,
        error_msg: None,
        messages: messages.iter().map(|m| m.to_string()).collect(),
    }
}

fn job(project_id: &ProjectId, service: &str, job_type: &str, resource_id: String) -> NewJob {
    NewJob {
        resource_id: Some(resource_id),
        ..NewJob::new(
            project_id.clone(),
            ServiceName::parse(service).expect("demo service names are valid"),
            JobType::parse(job_type).expect("demo job types are valid"),
        )
    }
}

fn sub_job(job_type: &str, resource_id: &str, simulate: SimulateSpec) -> NewSubJob {
    NewSubJob {
        resource_id: Some(resource_id.to_owned()),
        entities: vec![Entity { resource_id: resource_id.to_owned(), resource_type: "loadbalancer".into() }],
        simulate: Some(simulate),
        ..NewSubJob::new(JobType::parse(job_type).expect("demo job types are valid"))
    }
}

/// One round: an ELB upgrade with three sub-jobs, a CFW firewall creation, a WAF domain check,
/// and an ELB clone whose traffic switch fails.
fn demo_round(project_id: &ProjectId) -> Vec<NewJob> {
    let lb = uuid::Uuid::new_v4().to_string();
    let mut upgrade = job(project_id, "elb", "UPGRADE", lb.clone());
    upgrade.sub_jobs = vec![
        sub_job("UPGRADE_INIT", &lb, spec(15_000, &["Preparing the new version", "Health-checking new members"])),
        sub_job(
            "UPGRADE_TRAFFIC_SWITCH",
            &lb,
            spec(15_000, &["Switching 50% of traffic", "Switching 100% of traffic"]),
        ),
        sub_job("UPGRADE_COMPLETE", &lb, spec(5_000, &["Releasing the old version"])),
    ];

    let mut firewall = job(project_id, "cfw", "CreateFirewall", uuid::Uuid::new_v4().to_string());
    firewall.simulate = Some(spec(30_000, &["Creating the firewall instance", "Configuring protection rules"]));

    let mut domain_check =
        job(project_id, "waf", "CheckDomain", format!("www.example-{}.com", rand::thread_rng().gen_range(100..999)));
    domain_check.simulate = Some(spec(
        25_000,
        &["Checking domain name configuration", "Checking the origin server", "Checking certificates"],
    ));

    let clone_lb = uuid::Uuid::new_v4().to_string();
    let mut failing_clone = job(project_id, "elb", "cloneLoadbalancer", clone_lb.clone());
    let mut broken = spec(12_000, &["Switching traffic to the clone"]);
    broken.outcome = SimulateOutcome::Failure;
    broken.error_code = Some("ELB.8907".into());
    broken.error_msg = Some("The backend server group is being modified; the traffic switch was refused.".into());
    failing_clone.sub_jobs = vec![
        sub_job("CLONE_INIT", &clone_lb, spec(5_000, &["Copying listeners"])),
        sub_job("CLONE_TRAFFIC_SWITCH", &clone_lb, broken),
        sub_job("CLONE_COMPLETE", &clone_lb, spec(2_000, &[])),
    ];
    vec![upgrade, firewall, domain_check, failing_clone]
}

async fn create_round(service: &JobService, project_id: &ProjectId) -> anyhow::Result<Vec<Job>> {
    let mut created = Vec::new();
    for new_job in demo_round(project_id) {
        created.push(service.create(new_job, None).await.context("creating a demo job")?.job);
    }
    Ok(created)
}

/// The console sign-in the banner prints.
struct ConsoleUser {
    domain: String,
    name: String,
    password: String,
}

fn random_key(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let (data_dir, _temporary) = match args.data_dir {
        Some(dir) => (dir, None),
        None => {
            let temporary = tempfile::Builder::new().prefix("jobd-demo-").tempdir()?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    let root = RootCredentials {
        access_key: std::env::var("JOBD_ROOT_ACCESS_KEY")
            .unwrap_or_else(|_| format!("DEMO{}", random_key(16).to_uppercase())),
        secret_key: Secret::new(std::env::var("JOBD_ROOT_SECRET_KEY").unwrap_or_else(|_| random_key(40))),
    };
    // Said in the banner rather than logged: nothing but the banner should greet a newcomer.
    let (listener, taken) = match TcpListener::bind(args.listen).await {
        Ok(listener) => (listener, None),
        Err(error) => (TcpListener::bind("127.0.0.1:0").await?, Some(format!("{} is taken ({error})", args.listen))),
    };
    let config = ServerConfig {
        listen: listener.local_addr()?,
        data_dir,
        max_body_bytes: 1024 * 1024,
        database: None,
        retention: std::time::Duration::from_secs(24 * 3600),
        token_ttl: std::time::Duration::from_secs(24 * 3600),
        rate_limit_per_second: 0,
        failed_auth_per_second: jobd_service::identity::IdentityConfig::default().failed_auth_per_second,
        password_attempts_per_minute: jobd_service::identity::IdentityConfig::default().password_attempts_per_minute,
        connections: crate::http_server::ConnectionLimits::default(),
        body_read_timeout: jobd_api::ApiConfig::default().body_read_timeout,
        max_in_flight: jobd_api::DEFAULT_MAX_IN_FLIGHT,
        metrics_max_label_values: jobd_service::metric_labels::DEFAULT_MAX_LABEL_VALUES,
        region: None,
        master_key: None,
        root: Some(root.clone()),
    };
    let server = server::start(&config, listener).await?;
    // A project of the identity store (so a user may belong to it), and the console's demo user:
    // a producer there, so it may cancel the demo's jobs.
    let project = server.identity.create_project("demo").await.context("creating the demo project")?;
    let project_id = ProjectId::parse(&project.id).context("the demo project's id")?;
    let console_user = ConsoleUser { domain: "demo".into(), name: "demo".into(), password: random_key(16) };
    server
        .identity
        .create_user(&console_user.name, &console_user.domain, &console_user.password, &project.id, Role::Producer, &[])
        .await
        .context("creating the console's demo user")?;
    let first = create_round(&server.service, &project_id).await?;
    print_welcome(&server.local_addr, taken.as_deref(), &root, &console_user, &project_id, &first);

    let service = server.service.clone();
    let round_seconds = args.round_seconds.max(1);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(round_seconds));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match create_round(&service, &project_id).await {
                Ok(jobs) => {
                    let ids: Vec<String> = jobs.iter().map(|j| format!("{}:{}", j.service, j.job_id)).collect();
                    println!("new demo jobs: {}", ids.join("  "));
                }
                Err(error) => tracing::warn!(%error, "cannot create demo jobs"),
            }
        }
    });
    server.task.await?
}

fn print_welcome(
    addr: &SocketAddr,
    taken: Option<&str>,
    root: &RootCredentials,
    console_user: &ConsoleUser,
    project_id: &ProjectId,
    jobs: &[Job],
) {
    let endpoint = format!("http://{addr}");
    let mut notes = String::new();
    if let Some(taken) = taken {
        notes.push_str(&format!("{taken}: jobd took a free port.\n"));
    }
    if std::env::var_os("JOBD_LOG").is_none() {
        notes.push_str("Logs (stderr) show warnings only; JOBD_LOG=info shows more.\n");
    }
    let find = |service: &str, job_type: &str| {
        jobs.iter()
            .find(|j| j.service.is(service) && j.job_type.as_str() == job_type)
            .map(|j| j.job_id.to_string())
            .unwrap_or_default()
    };
    let upgrade = find("elb", "UPGRADE");
    println!(
        r#"
jobd demo is running at {endpoint} (embedded SQLite store). Ctrl-C stops it.
{notes}
Watch the jobs run in the console: {endpoint}/console
  domain      {domain}
  user name   {user}
  password    {password}

Or call the APIs with the root key:
  access key  {ak}
  secret key  {sk}
  project id  {project_id}

Live demo jobs (a new round starts every minute):
  ELB UPGRADE (3 sub-jobs)         {upgrade}
  CFW CreateFirewall               {cfw}
  WAF CheckDomain                  {waf}
  ELB cloneLoadbalancer (fails)    {clone}

Read them with the official Huawei Cloud SDKs (pip install huaweicloudsdkelb huaweicloudsdkcfw huaweicloudsdkwaf):

python3 - <<'PY'
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkelb.v3 import ElbClient, ShowJobRequest
client = (ElbClient.new_builder()
          .with_credentials(BasicCredentials("{ak}", "{sk}", "{project_id}"))
          .with_endpoints(["{endpoint}"])
          .build())
print(client.show_job(ShowJobRequest(job_id="{upgrade}")))
PY
"#,
        ak = root.access_key,
        sk = root.secret_key.expose(),
        domain = console_user.domain,
        user = console_user.name,
        password = console_user.password,
        cfw = find("cfw", "CreateFirewall"),
        waf = find("waf", "CheckDomain"),
        clone = find("elb", "cloneLoadbalancer"),
    );
}
