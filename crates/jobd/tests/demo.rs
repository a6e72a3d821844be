//! `jobd demo` as a newcomer starts it: the banner alone on the terminal (no log lines on stderr
//! at the default level), and the keys and project id it prints read the jobs it names.
//! `JOBD_LOG` still asks for more.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use jobd_test_support::server::Endpoint;
use serde_json::{json, Value};

/// A running `jobd demo` and what its banner said.
struct Demo {
    child: Child,
    /// Kept open: the demo prints a line for every new round of jobs.
    _stdout: BufReader<ChildStdout>,
    banner: Vec<String>,
    stderr: PathBuf,
}

impl Demo {
    /// Starts the demo on a free port and reads its banner (up to the snippet's closing `PY`).
    fn start(dir: &Path, jobd_log: Option<&str>) -> Demo {
        let stderr = dir.join("demo.stderr");
        let mut command = Command::new(env!("CARGO_BIN_EXE_jobd"));
        command
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .env_remove("JOBD_LOG")
            .env_remove("JOBD_ROOT_ACCESS_KEY")
            .env_remove("JOBD_ROOT_SECRET_KEY")
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()));
        if let Some(filter) = jobd_log {
            command.env("JOBD_LOG", filter);
        }
        let mut child = command.spawn().expect("the jobd binary starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut banner = Vec::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let log = std::fs::read_to_string(&stderr).unwrap_or_default();
                panic!("the demo ended before its banner did: {banner:#?}\nits stderr:\n{log}");
            }
            let line = line.trim_end().to_owned();
            let last = line == "PY";
            banner.push(line);
            if last {
                break;
            }
        }
        Demo { child, _stdout: stdout, banner, stderr }
    }

    /// The value after `label` on the banner line that starts with it (after the indent).
    fn value(&self, label: &str) -> String {
        self.banner
            .iter()
            .find_map(|line| line.trim_start().strip_prefix(label))
            .map(|rest| rest.split_whitespace().last().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no {label:?} in the banner: {:#?}", self.banner))
    }

    fn endpoint(&self) -> String {
        let line = self.banner.iter().find(|l| l.starts_with("jobd demo is running at ")).expect("the first line");
        line.split_whitespace().nth(5).expect("an address").to_owned()
    }

    /// Ctrl-C, as the banner says; answers the demo's stderr.
    fn interrupt(mut self) -> String {
        Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the demo did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = std::fs::read_to_string(&self.stderr).unwrap();
        assert!(status.success(), "Ctrl-C stops the demo cleanly: {status}; stderr:\n{log}");
        log
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the simulator has claimed the job's first task (a claim was an INFO line).
async fn wait_running(endpoint: &Endpoint, project_id: &str, job_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = endpoint.call("GET", &format!("/v1/{project_id}/jobs/{job_id}"), None).await.unwrap();
        assert_eq!(status, 200, "the printed keys and project id read the printed job: {body}");
        if body["job"]["status"] == "RUNNING" {
            assert_eq!(body["job"]["job_type"], "UPGRADE", "{body}");
            return;
        }
        assert!(Instant::now() < deadline, "the demo's ELB upgrade never started: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|line| ["TRACE", "DEBUG", "INFO"].iter().any(|level| line.contains(level))).collect()
}

#[tokio::test]
async fn the_banner_stands_alone_and_its_keys_read_its_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), None);
    let banner = demo.banner.join("\n");
    assert!(banner.contains("Logs (stderr) show warnings only; JOBD_LOG=info shows more."), "{banner}");
    for label in ["access key", "secret key", "project id", "ELB UPGRADE (3 sub-jobs)", "print(client.show_job("] {
        assert!(banner.contains(label), "{label:?} is in the banner:\n{banner}");
    }

    let endpoint = Endpoint::new(&demo.endpoint(), &demo.value("access key"), &demo.value("secret key"));
    let (status, _, _) = endpoint.get_unsigned("/readyz").await.unwrap();
    assert_eq!(status, 200);
    wait_running(&endpoint, &demo.value("project id"), &demo.value("ELB UPGRADE (3 sub-jobs)")).await;
    let wrong = endpoint.with_key(&demo.value("access key"), "not-the-printed-secret");
    let (status, _) = wrong.call("GET", &format!("/v1/{}/jobs", demo.value("project id")), None).await.unwrap();
    assert_eq!(status, 401, "the demo checks signatures");

    console_shows_the_demo_jobs(&demo).await;

    let stderr = demo.interrupt();
    assert!(log_lines(&stderr).is_empty(), "no INFO (or finer) lines beside the banner:\n{stderr}");
}

/// The printed console URL answers the console, and the printed user signs in there and sees the
/// demo's jobs (through the API, with the console's session cookie).
async fn console_shows_the_demo_jobs(demo: &Demo) {
    let endpoint = demo.endpoint();
    let line = demo.banner.iter().find(|l| l.contains("/console")).expect("the console's URL in the banner");
    let url = line.split_whitespace().last().unwrap();
    assert_eq!(url, format!("{endpoint}/console"));
    let http = reqwest::Client::new();
    let page = http.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/console/assets/console.js"));
    let sign_in =
        json!({"domain": demo.value("domain"), "name": demo.value("user name"), "password": demo.value("password")});
    let answer = http
        .post(format!("{endpoint}/console/session"))
        .header("origin", &endpoint)
        .json(&sign_in)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201, "the printed console user signs in");
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let session: Value = answer.json().await.unwrap();
    assert_eq!(session["project"]["id"], demo.value("project id"), "the demo's project");
    assert_eq!(session["may_cancel"], true, "the demo user is a producer");
    let list = http
        .get(format!("{endpoint}/v1/{}/jobs", demo.value("project id")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let list: Value = list.json().await.unwrap();
    let ids: Vec<&str> = list["jobs"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert!(ids.contains(&demo.value("ELB UPGRADE (3 sub-jobs)").as_str()), "the demo's jobs are listed: {ids:?}");
}

#[tokio::test]
async fn jobd_log_still_shows_more() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), Some("info"));
    assert!(!demo.banner.iter().any(|line| line.contains("JOBD_LOG")), "no advice to set what is set");
    let endpoint = Endpoint::new(&demo.endpoint(), &demo.value("access key"), &demo.value("secret key"));
    wait_running(&endpoint, &demo.value("project id"), &demo.value("ELB UPGRADE (3 sub-jobs)")).await;
    let stderr = demo.interrupt();
    assert!(stderr.lines().any(|line| line.contains("INFO") && line.contains("job created")), "{stderr}");
}
