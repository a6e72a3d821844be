//! `jobd job ...` as a person or a script runs it, against the real binary: create, get in every
//! view, list, cancel, watch, wait and its exit codes, JSON output, the profile file and its
//! precedence, shell completions, and `wait`'s live display under a pseudo-terminal (`script`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use jobd_test_support::server::{Server, ACCESS_KEY, PROJECT, SECRET_KEY};
use serde_json::{json, Value};

/// A `jobd` command with the server's address and the root key in the environment, and a home
/// of its own (so no profile file of the person running the tests is read).
struct Cli {
    base: String,
    home: tempfile::TempDir,
}

impl Cli {
    fn new(server: &Server) -> Cli {
        Cli { base: server.base.clone(), home: tempfile::tempdir().unwrap() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_jobd"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("JOBD_ENDPOINT", &self.base)
            .env("JOBD_ACCESS_KEY", ACCESS_KEY)
            .env("JOBD_SECRET_KEY", SECRET_KEY)
            .env("JOBD_PROJECT_ID", PROJECT)
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("jobd runs")
    }

    fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child =
            self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed and print one JSON document.
    fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert!(output.status.success(), "{args:?}: {}", text(&output.stderr));
        json_document(&output.stdout)
    }

    fn create(&self, args: &[&str]) -> String {
        let mut all = vec!["job", "create", "-o", "json"];
        all.extend_from_slice(args);
        self.json(&all)["job"]["job_id"].as_str().unwrap().to_owned()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_document(stdout: &[u8]) -> Value {
    let stdout = text(stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON document on one line: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("jobd exits, not killed")
}

async fn started() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.wait_healthy().await;
    (server, dir)
}

const UPGRADE: &str = r#"{"service": "elb", "job_type": "UPGRADE", "resource_id": "lb-1", "sub_jobs": [
    {"job_type": "UPGRADE_INIT", "entities": [{"resource_id": "lb-1", "resource_type": "loadbalancer"}],
     "simulate": {"duration_ms": 600, "messages": ["preparing", "health-checking"]}},
    {"job_type": "UPGRADE_TRAFFIC_SWITCH", "simulate": {"duration_ms": 300}},
    {"job_type": "UPGRADE_COMPLETE", "simulate": {"duration_ms": 200}}]}"#;

#[tokio::test]
async fn create_get_list_and_cancel_print_stable_json() {
    let (server, _dir) = started().await;
    let cli = Cli::new(&server);

    let created = cli.json(&[
        "job",
        "create",
        "-o",
        "json",
        "--service",
        "cfw",
        "--job-type",
        "CreateFirewall",
        "--payload",
        r#"{"name": "fw-1"}"#,
        "--resource-id",
        "fw-1",
        "--simulate-ms",
        "300",
    ]);
    let job = &created["job"];
    assert_eq!((job["service"].as_str(), job["job_type"].as_str()), (Some("cfw"), Some("CreateFirewall")));
    assert_eq!(job["payload"], json!({"name": "fw-1"}));
    let firewall = job["job_id"].as_str().unwrap().to_owned();

    // The same job through every view that knows it; --wait-seconds holds the dialect answer.
    let cfw = cli.json(&["job", "get", &firewall, "--view", "cfw", "--wait-seconds", "20", "-o", "json"]);
    assert_eq!(cfw["data"]["id"], firewall.as_str());
    assert_eq!(cfw["data"]["status"], "Success");
    let native = cli.json(&["job", "get", &firewall, "-o", "json"]);
    assert_eq!(native["job"]["status"], "SUCCEEDED");
    assert_eq!(native, cli.json(&["job", "get", &firewall, "-o", "json"]), "the same document twice");
    let wrong_service = cli.run(&["job", "get", &firewall, "--view", "elb"]);
    assert_eq!(code(&wrong_service), 4, "ELB does not show CFW's jobs");
    assert!(text(&wrong_service.stderr).contains("ELB.8904"), "{}", text(&wrong_service.stderr));

    let output = cli.run_with_stdin(&["job", "create", "--body", "-", "-o", "json"], UPGRADE);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let upgrade = json_document(&output.stdout)["job"]["job_id"].as_str().unwrap().to_owned();
    let elb = cli.json(&["job", "get", &upgrade, "--view", "elb", "--wait-seconds", "20", "-o", "json"]);
    assert_eq!(elb["job"]["status"], "COMPLETE");
    let steps: Vec<&str> =
        elb["job"]["sub_jobs"].as_array().unwrap().iter().map(|s| s["job_type"].as_str().unwrap()).collect();
    assert_eq!(steps, ["UPGRADE_INIT", "UPGRADE_TRAFFIC_SWITCH", "UPGRADE_COMPLETE"]);
    assert_eq!(elb["job"]["sub_jobs"][0]["entities"][0]["resource_type"], "loadbalancer");
    let table = cli.run(&["job", "get", &upgrade]);
    let table = text(&table.stdout);
    assert!(table.contains("SUCCEEDED") && table.contains("UPGRADE_TRAFFIC_SWITCH"), "{table}");

    let waf_check = cli.create(&["--service", "waf", "--job-type", "CheckDomain", "--simulate-ms", "100"]);
    let waf = cli.json(&[
        "job",
        "get",
        &waf_check,
        "--view",
        "waf",
        "--enterprise-project-id",
        "0",
        "--wait-seconds",
        "20",
        "-o",
        "json",
    ]);
    assert_eq!((waf["job_id"].as_str(), waf["status"].as_str()), (Some(waf_check.as_str()), Some("SUCCESS")));

    // Lists: native (filtered), ELB's ListJobs, and every page.
    let listed = cli.json(&["job", "list", "--service", "elb", "-o", "json"]);
    let ids: Vec<&str> = listed["jobs"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [upgrade.as_str()]);
    assert_eq!(listed["next_marker"], Value::Null);
    let every = cli.json(&["job", "list", "--limit", "1", "--all", "-o", "json"]);
    assert_eq!(every["jobs"].as_array().unwrap().len(), 3, "three jobs, one page at a time");
    let elb_list = cli.json(&["job", "list", "--view", "elb", "--limit", "10", "-o", "json"]);
    assert_eq!(elb_list["page_info"]["current_count"], 1);
    let cfw_list = cli.run(&["job", "list", "--view", "cfw"]);
    assert_eq!(code(&cfw_list), 4);
    assert!(text(&cfw_list.stderr).contains("no list API"));

    // Cancel: a job no worker takes, then a finished one (409).
    let idle = cli.create(&["--service", "elb", "--job-type", "UPGRADE"]);
    let cancelled = cli.json(&["job", "cancel", &idle, "-o", "json"]);
    assert_eq!(cancelled["job"]["status"], "CANCELLED");
    let again = cli.run(&["job", "cancel", &idle]);
    assert_eq!(code(&again), 4);
    assert!(text(&again.stderr).contains("409"), "{}", text(&again.stderr));

    // Errors: an unknown job, a wrong command line, no project.
    let unknown = cli.run(&["job", "get", "00000000-0000-4000-8000-000000000000"]);
    assert_eq!(code(&unknown), 4);
    assert!(text(&unknown.stderr).contains("JOBD.JOB_NOT_FOUND"), "{}", text(&unknown.stderr));
    assert_eq!(code(&cli.run(&["job", "get"])), 64, "a missing argument is a usage error");
    assert_eq!(code(&cli.run(&["job", "create", "--service", "elb"])), 64);
    let no_project = cli.command(&["job", "list"]).env_remove("JOBD_PROJECT_ID").output().unwrap();
    assert_eq!(code(&no_project), 4);
    assert!(text(&no_project.stderr).contains("JOBD_PROJECT_ID"));
}

#[tokio::test]
async fn wait_exits_by_how_the_job_ended() {
    let (server, _dir) = started().await;
    let cli = Cli::new(&server);

    // Success: plain progress lines (stdout is no terminal), then the success line; quickly.
    let output = cli.run_with_stdin(&["job", "create", "--body", "-", "-o", "json"], UPGRADE);
    let upgrade = json_document(&output.stdout)["job"]["job_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let output = cli.run(&["job", "wait", &upgrade]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    assert!(started.elapsed() < Duration::from_secs(10));
    let stdout = text(&output.stdout);
    assert!(!stdout.contains('\u{1b}'), "no terminal escapes when not on a terminal: {stdout:?}");
    for expected in ["UPGRADE_INIT", "UPGRADE_TRAFFIC_SWITCH", "UPGRADE_COMPLETE", "health-checking"] {
        assert!(stdout.contains(expected), "{expected} in {stdout}");
    }
    let last = stdout.lines().next_back().unwrap();
    assert!(last.contains(&upgrade) && last.contains("SUCCEEDED"), "{last}");

    // Failure: exit 1, the code and message on stderr; in JSON, the outcome and the job.
    let broken = cli.create(&[
        "--service",
        "elb",
        "--job-type",
        "CLONE",
        "--simulate-ms",
        "200",
        "--fail",
        "--error-code",
        "ELB.8907",
        "--error-msg",
        "traffic switch refused",
    ]);
    let output = cli.run(&["job", "wait", &broken]);
    assert_eq!(code(&output), 1);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("FAILED") && stderr.contains("ELB.8907: traffic switch refused"), "{stderr}");
    let output = cli.run(&["job", "wait", &broken, "-o", "json"]);
    assert_eq!(code(&output), 1);
    let document = json_document(&output.stdout);
    assert_eq!(document["outcome"], "failed");
    assert_eq!(
        (document["error_code"].as_str(), document["job"]["status"].as_str()),
        (Some("ELB.8907"), Some("FAILED"))
    );

    // Timeout: exit 2, after about the time given.
    let idle = cli.create(&["--service", "elb", "--job-type", "UPGRADE"]);
    let started = Instant::now();
    let output = cli.run(&["job", "wait", &idle, "--timeout", "1s"]);
    assert_eq!(code(&output), 2, "{}", text(&output.stderr));
    assert!(started.elapsed() >= Duration::from_secs(1) && started.elapsed() < Duration::from_secs(8));
    assert!(text(&output.stderr).contains("did not finish"), "{}", text(&output.stderr));
    let output = cli.run(&["job", "wait", &idle, "--timeout", "300ms", "-o", "json"]);
    assert_eq!((code(&output), json_document(&output.stdout)["outcome"].clone()), (2, json!("timeout")));

    // Cancelled while waiting: exit 3.
    let waiting = cli
        .command(&["job", "wait", &idle, "--timeout", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(cli.run(&["job", "cancel", &idle]).status.success());
    let output = waiting.wait_with_output().unwrap();
    assert_eq!(code(&output), 3, "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("CANCELLED"));

    // Each strategy gets there; an unknown job is a request error.
    for strategy in ["events", "long-poll", "poll"] {
        let job = cli.create(&["--service", "cfw", "--job-type", "CreateFirewall", "--simulate-ms", "200"]);
        let output = cli.run(&["job", "wait", &job, "--strategy", strategy]);
        assert_eq!(code(&output), 0, "{strategy}: {}", text(&output.stderr));
    }
    assert_eq!(code(&cli.run(&["job", "wait", "00000000-0000-4000-8000-000000000000"])), 4);
}

#[tokio::test]
async fn watch_prints_each_change_until_the_end() {
    let (server, _dir) = started().await;
    let cli = Cli::new(&server);
    let output = cli.run_with_stdin(&["job", "create", "--body", "-", "-o", "json"], UPGRADE);
    let upgrade = json_document(&output.stdout)["job"]["job_id"].as_str().unwrap().to_owned();

    let output = cli.run(&["job", "watch", &upgrade, "-o", "json"]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let states: Vec<Value> = text(&output.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert!(states.len() >= 3, "{states:?}");
    let versions: Vec<i64> = states.iter().map(|s| s["job"]["version"].as_i64().unwrap()).collect();
    assert!(versions.windows(2).all(|pair| pair[0] < pair[1]), "{versions:?}");
    assert_eq!(states.last().unwrap()["job"]["status"], "SUCCEEDED");

    // As ELB shows it: one line per change of ELB's answer, ending COMPLETE.
    let broken = cli.create(&["--service", "elb", "--job-type", "CLONE", "--simulate-ms", "300", "--fail"]);
    let output = cli.run(&["job", "watch", &broken, "--view", "elb"]);
    assert_eq!(code(&output), 1, "the exit code follows the job");
    let stdout = text(&output.stdout);
    assert!(stdout.lines().next_back().unwrap().contains("FAIL"), "{stdout}");
}

#[tokio::test]
async fn a_profile_file_gives_what_flags_and_environment_do_not() {
    let (server, _dir) = started().await;
    let cli = Cli::new(&server);
    let job = cli.create(&["--service", "cfw", "--job-type", "CreateFirewall"]);
    let config_dir = cli.home.path().join(".config/jobd");
    std::fs::create_dir_all(&config_dir).unwrap();
    let config = config_dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "endpoint = \"{base}\"\naccess_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n\n\
             [default]\nproject_id = \"{PROJECT}\"\n\n\
             [broken]\nproject_id = \"{PROJECT}\"\nsecret_key = \"not-the-secret\"\n\n\
             [elsewhere]\nproject_id = \"{PROJECT}\"\nendpoint = \"http://127.0.0.1:9\"\n",
            base = server.base
        ),
    )
    .unwrap();
    set_private(&config);
    let bare = |args: &[&str]| {
        let mut command = cli.command(args);
        for name in ["JOBD_ENDPOINT", "JOBD_ACCESS_KEY", "JOBD_SECRET_KEY", "JOBD_PROJECT_ID"] {
            command.env_remove(name);
        }
        command
    };

    // Everything from the file (the top level, and [default] without --profile).
    let output = bare(&["job", "get", &job, "-o", "json"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(json_document(&output.stdout)["job"]["job_id"], job.as_str());
    // A profile whose secret is wrong is refused; the environment's secret beats it; a flag beats both.
    let output = bare(&["job", "get", &job, "--profile", "broken"]).output().unwrap();
    assert_eq!(code(&output), 4);
    assert!(text(&output.stderr).contains("APIGW.0301"), "{}", text(&output.stderr));
    let output =
        bare(&["job", "get", &job, "--profile", "broken"]).env("JOBD_SECRET_KEY", SECRET_KEY).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = bare(&["job", "get", &job, "--profile", "broken", "--secret-key", "wrong-again"])
        .env("JOBD_SECRET_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(code(&output), 4, "the flag wins over the environment");
    // The endpoint too: the file's is unreachable, the flag's is jobd.
    let output = bare(&["job", "get", &job, "--profile", "elsewhere"]).output().unwrap();
    assert_eq!(code(&output), 4);
    let output = bare(&["job", "get", &job, "--profile", "elsewhere", "--endpoint", &server.base]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = bare(&["job", "get", &job, "--profile", "nosuch"]).output().unwrap();
    assert_eq!(code(&output), 4);
    assert!(text(&output.stderr).contains("no [nosuch] profile"), "{}", text(&output.stderr));
}

#[cfg(unix)]
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[cfg(not(unix))]
fn set_private(_path: &Path) {}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(env!("CARGO_BIN_EXE_jobd")).args(["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        let script = text(&output.stdout);
        assert!(script.contains("jobd") && script.contains("watch") && script.contains("view"), "{shell}");
    }
    let wrong = Command::new(env!("CARGO_BIN_EXE_jobd")).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(code(&wrong), 64);
}

/// Removes terminal escape sequences (`ESC [ ... letter`).
fn strip_escapes(raw: &str) -> String {
    let mut plain = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
}

#[tokio::test]
async fn wait_draws_live_progress_on_a_terminal() {
    let script = Command::new("script").arg("--version").output();
    assert!(
        script.is_ok_and(|o| o.status.success()),
        "this test runs `jobd job wait` in a pseudo-terminal with util-linux's `script`: install it"
    );
    let (server, _dir) = started().await;
    let cli = Cli::new(&server);
    let output = cli.run_with_stdin(&["job", "create", "--body", "-", "-o", "json"], UPGRADE);
    let upgrade = json_document(&output.stdout)["job"]["job_id"].as_str().unwrap().to_owned();

    let binary = env!("CARGO_BIN_EXE_jobd").replace('\'', r"'\''");
    let inner = format!("'{binary}' job wait {upgrade}");
    let output = Command::new("script")
        .args(["-qfec", &inner, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", cli.home.path())
        .env("TERM", "xterm-256color")
        .env("JOBD_ENDPOINT", &server.base)
        .env("JOBD_ACCESS_KEY", ACCESS_KEY)
        .env("JOBD_SECRET_KEY", SECRET_KEY)
        .env("JOBD_PROJECT_ID", PROJECT)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let raw = text(&output.stdout);
    assert_eq!(code(&output), 0, "{raw}\n{}", text(&output.stderr));
    assert!(raw.contains("\u{1b}["), "a terminal gets a redrawn display: {raw:?}");
    assert!(["⠋", "⠙", "⠹"].iter().any(|frame| raw.contains(frame)), "a spinner turns: {raw:?}");
    let screen = strip_escapes(&raw);
    for expected in
        [upgrade.as_str(), "elb", "UPGRADE_INIT", "UPGRADE_TRAFFIC_SWITCH", "UPGRADE_COMPLETE", "RUNNING", "PENDING"]
    {
        assert!(screen.contains(expected), "{expected} on the screen: {screen}");
    }
    assert!(screen.contains("preparing") || screen.contains("health-checking"), "sub-job messages: {screen}");
    let last = screen.lines().map(str::trim).rfind(|line| !line.is_empty()).unwrap();
    assert!(last.starts_with('✔') && last.contains(&upgrade) && last.contains("SUCCEEDED in"), "{last:?}");
}

#[tokio::test]
async fn create_from_a_json_lines_file_sends_batches_in_order() {
    let (server, _data) = started().await;
    let cli = Cli::new(&server);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.jsonl");
    // 1,201 lines: two batches (1,000 and 201); a blank line is skipped; one line carries a token.
    let mut lines: Vec<String> =
        (0..1200).map(|n| json!({"service": "cfw", "job_type": "NoOp", "payload": {"n": n}}).to_string()).collect();
    lines.insert(600, String::new());
    lines.push(json!({"service": "elb", "job_type": "UPGRADE", "client_token": "line-token"}).to_string());
    std::fs::write(&file, lines.join("\n")).unwrap();
    let path = file.to_str().unwrap();
    let created = cli.json(&["job", "create", "--from-file", path, "--output", "json"]);
    let jobs = created["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1201);
    assert_eq!(jobs[0]["payload"]["n"], 0, "in file order");
    assert_eq!(jobs[1199]["payload"]["n"], 1199);
    assert_eq!(jobs[1200]["job_type"], "UPGRADE");
    assert_eq!(created["replayed"], json!([]));

    // The token line again, from standard input: the same job, replayed.
    let again = json!({"service": "elb", "job_type": "UPGRADE", "client_token": "line-token"}).to_string();
    let output = cli.run_with_stdin(&["job", "create", "--from-file", "-", "--output", "json"], &again);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let replay = json_document(&output.stdout);
    assert_eq!(replay["jobs"][0]["job_id"], jobs[1200]["job_id"]);
    assert_eq!(replay["replayed"], json!([0]));

    // A bad line in a batch: nothing of that batch is created, and the error names the item.
    let bad = [json!({"service": "cfw", "job_type": "NoOp"}), json!({"service": "cfw"})]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let before = cli.json(&["job", "list", "--output", "json", "--limit", "1"]);
    let output = cli.run_with_stdin(&["job", "create", "--from-file", "-"], &bad);
    assert!(!output.status.success());
    let message = text(&output.stderr);
    assert!(message.contains("lines 1 to 2") && message.contains("jobs[1]"), "{message}");
    let after = cli.json(&["job", "list", "--output", "json", "--limit", "1"]);
    assert_eq!(before["jobs"][0]["job_id"], after["jobs"][0]["job_id"], "all or nothing");
    // A line that is not JSON is refused before anything is sent.
    let output = cli.run_with_stdin(&["job", "create", "--from-file", "-"], "{\"service\": \"cfw\"}\nnot json\n");
    assert!(text(&output.stderr).contains("line 2"), "{}", text(&output.stderr));
}
