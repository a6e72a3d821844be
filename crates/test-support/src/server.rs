//! The one way a test starts jobd: the real `jobd` binary on a free port of its own choosing,
//! with root keys, its log beside its data directory; [`Server`] to drive it with signed raw
//! calls ([`Endpoint`]), [`Jobd`] to drive it through `jobd-client`.
//!
//! The binary is the one Cargo built for the test: tests that start jobd live in the `jobd`
//! crate (`crates/jobd/tests`), for which Cargo builds `target/<profile>/jobd` before any test
//! runs (`CARGO_BIN_EXE_jobd`), so it is never missing nor older than the code under test, with
//! a plain `cargo test --workspace` or `cargo test -p jobd` alike.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use jobd_auth::Signer;
use jobd_client::{Client, Credentials, Job, ProjectClient};
use serde_json::Value;

pub const ACCESS_KEY: &str = "BINARYTESTAK";
pub const SECRET_KEY: &str = "binary-test-secret";
pub const PROJECT: &str = "fedcba9876543210fedcba9876543210";

/// The `jobd` binary under test: `CARGO_BIN_EXE_jobd` when Cargo sets it for the running test
/// (newer Cargo does), else `target/<profile>/jobd` beside this test's `deps/` folder, where Cargo
/// puts it for the tests of crate `jobd`. Panics, saying what to do, when it is not there.
pub fn jobd_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let binary = std::env::var_os("CARGO_BIN_EXE_jobd")
            .map(PathBuf::from)
            .unwrap_or_else(|| profile_dir().join(format!("jobd{}", std::env::consts::EXE_SUFFIX)));
        assert!(
            binary.is_file(),
            "there is no jobd binary at {}: a test that starts jobd belongs in crates/jobd/tests, for which \
             Cargo builds the binary first (`cargo test -p jobd`, `cargo test --workspace`)",
            binary.display()
        );
        binary
    })
}

/// An example of this workspace, as `cargo test --workspace` builds it (every member's examples
/// are built with its tests): `target/<profile>/examples/<name>`. Panics, saying how to build it,
/// when it is not there; run with `--workspace` (or build it first) so it is current.
pub fn example_binary(package: &str, name: &str) -> PathBuf {
    let example = profile_dir().join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        example.is_file(),
        "there is no {}: build it with `cargo build -p {package} --example {name}` (`cargo test --workspace` \
         builds every example)",
        example.display()
    );
    example
}

/// `target/<profile>`: the folder above the running test's `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe.parent().expect("a test binary sits in a folder");
    let dir = if deps.ends_with("deps") { deps.parent().unwrap_or(deps) } else { deps };
    dir.to_path_buf()
}

/// Where a test server's stderr goes: beside its data directory, kept across restarts.
pub fn log_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.with_extension("log")
}

pub struct Server {
    child: Child,
    pub base: String,
    pub port: u16,
    data_dir: std::path::PathBuf,
    http: reqwest::Client,
}

impl Server {
    /// Starts jobd on a free port of its own choosing (no race for the port).
    pub fn start(data_dir: &Path) -> Server {
        Self::start_on(data_dir, 0)
    }

    /// Starts jobd on a given port (0: any), to restart it where its clients expect it.
    pub fn start_on(data_dir: &Path, port: u16) -> Server {
        Self::start_with(data_dir, port, &Launch::default())
    }

    /// Starts jobd on a given port (0: any) with more flags and environment (a database URL and
    /// a master key, say).
    pub fn start_with(data_dir: &Path, port: u16, launch: &Launch) -> Server {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path(data_dir)).expect("a log file");
        let mut child = Command::new(jobd_binary())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .args(&launch.args)
            .env("JOBD_ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("JOBD_ROOT_SECRET_KEY", SECRET_KEY)
            .env("JOBD_LOG", "debug,hyper=info,sqlx=warn")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the jobd binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("jobd prints its address");
        let address = line.trim().strip_prefix("jobd listening on ").unwrap_or_else(|| {
            let log = std::fs::read_to_string(log_path(data_dir)).unwrap_or_default();
            panic!("jobd did not start: {line:?}; its log:\n{log}")
        });
        let port = address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        Server { child, base: address.to_owned(), port, data_dir: data_dir.to_owned(), http: reqwest::Client::new() }
    }

    pub async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(log_path(&self.data_dir)).unwrap_or_default();
        panic!("jobd did not become healthy; its log:\n{log}");
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.endpoint().call(method, path, body).await.expect("jobd answers")
    }

    /// A handle that outlives this process: it keeps calling the same address across restarts.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            base: self.base.clone(),
            http: self.http.clone(),
            access_key: ACCESS_KEY.to_owned(),
            secret_key: SECRET_KEY.to_owned(),
        }
    }

    /// A `jobd-client` client with the root keys.
    pub fn client(&self) -> Client {
        Client::new(&self.base, Credentials::new(ACCESS_KEY, SECRET_KEY)).expect("a valid endpoint")
    }

    pub async fn job(&self, job_id: &str) -> Value {
        let (status, body) = self.call("GET", &format!("/v1/{PROJECT}/jobs/{job_id}"), None).await;
        assert_eq!(status, 200, "{body}");
        body["job"].clone()
    }

    /// Waits until the job of `project_id` reaches `wanted`.
    pub async fn wait_for_status_in(&self, project_id: &str, job_id: &str, wanted: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.call("GET", &format!("/v1/{project_id}/jobs/{job_id}"), None).await;
            assert_eq!(status, 200, "{body}");
            if body["job"]["status"] == wanted {
                return body["job"].clone();
            }
            assert!(Instant::now() < deadline, "job {job_id} never reached {wanted}: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_for_status(&self, job_id: &str, wanted: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = self.job(job_id).await;
            if job["status"] == wanted {
                return job;
            }
            assert!(Instant::now() < deadline, "job {job_id} never reached {wanted}: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and answers how the process ended (waiting at most `within`).
    pub fn terminate(mut self, within: Duration) -> Option<std::process::ExitStatus> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The process id, to find this node in logs and the database.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where this server's stderr goes.
    pub fn log(&self) -> String {
        std::fs::read_to_string(log_path(&self.data_dir)).unwrap_or_default()
    }

    pub fn stop(mut self, signal: &str) {
        Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A jobd on a data directory of its own (removed when this is dropped), healthy, for tests that
/// drive it through `jobd-client`.
pub struct Jobd {
    server: Server,
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub endpoint: String,
    _data_dir: tempfile::TempDir,
}

impl Jobd {
    /// Starts jobd on a free port and waits until it is healthy.
    pub async fn start() -> Jobd {
        let data_dir = tempfile::tempdir().expect("a temp dir");
        let server = Server::start(&data_dir.path().join("data"));
        server.wait_healthy().await;
        Jobd { endpoint: server.base.clone(), server, _data_dir: data_dir }
    }

    /// A client with the root keys.
    pub fn client(&self) -> Client {
        self.server.client()
    }

    /// The root keys' client of [`PROJECT`].
    pub fn project(&self) -> ProjectClient {
        self.client().project(PROJECT)
    }

    /// The server, for raw calls and its log.
    pub fn server(&self) -> &Server {
        &self.server
    }
}

/// Polls the job until `done` holds for it, at most `timeout`.
pub async fn wait_for_job(
    project: &ProjectClient,
    job_id: &str,
    timeout: Duration,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + timeout;
    loop {
        let job = project.get_job(job_id).await.expect("the job reads");
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {job_id} did not get there in {timeout:?}: {job:#?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the job is terminal.
pub async fn wait_terminal(project: &ProjectClient, job_id: &str) -> Job {
    wait_for_job(project, job_id, Duration::from_secs(30), Job::is_terminal).await
}

/// More for `Server::start_with`: flags after the defaults, and environment variables.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Launch {
    pub fn arg(mut self, arg: impl Into<String>) -> Launch {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Launch {
        self.env.push((key.into(), value.into()));
        self
    }

    /// jobd on a PostgreSQL database, with a master key (required there; the same on every node).
    pub fn postgres(database_url: &str, master_key: &str) -> Launch {
        Launch::default().arg("--database-url").arg(database_url).env("JOBD_MASTER_KEY", master_key)
    }
}

/// Signed calls to a jobd address; transport errors are returned, not fatal (jobd may be down).
#[derive(Clone)]
pub struct Endpoint {
    pub base: String,
    http: reqwest::Client,
    access_key: String,
    secret_key: String,
}

impl Endpoint {
    /// Signed calls to a jobd that some other way started (`jobd demo`, say).
    pub fn new(base: &str, access_key: &str, secret_key: &str) -> Endpoint {
        Endpoint {
            base: base.to_owned(),
            http: reqwest::Client::new(),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
        }
    }

    /// The same address, signing with another key.
    pub fn with_key(&self, access_key: &str, secret_key: &str) -> Endpoint {
        Endpoint { access_key: access_key.to_owned(), secret_key: secret_key.to_owned(), ..self.clone() }
    }

    /// Opens a signed GET whose body is read later (an event stream).
    pub async fn open_stream(&self, path: &str) -> Result<reqwest::Response, reqwest::Error> {
        let mut headers = HeaderMap::new();
        let host = self.base.trim_start_matches("http://").to_owned();
        headers.insert("host", HeaderValue::from_str(&host).unwrap());
        Signer::new(self.access_key.clone(), self.secret_key.clone())
            .sign("GET", path, None, &mut headers, b"", chrono::Utc::now())
            .unwrap();
        self.http.get(format!("{}{path}", self.base)).headers(headers).send().await
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value), reqwest::Error> {
        let (status, _, value) = self.call_full(method, path, body).await?;
        Ok((status, value))
    }

    /// An unsigned GET (`/readyz`, `/healthz`), with the answer's headers.
    pub async fn get_unsigned(&self, path: &str) -> Result<(u16, HeaderMap, Value), reqwest::Error> {
        let response = self.http.get(format!("{}{path}", self.base)).timeout(Duration::from_secs(30)).send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok((status, headers, value))
    }

    /// A signed call, with the answer's headers.
    pub async fn call_full(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, HeaderMap, Value), reqwest::Error> {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let mut headers = HeaderMap::new();
        let host = self.base.trim_start_matches("http://").to_owned();
        headers.insert("host", HeaderValue::from_str(&host).unwrap());
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let (raw_path, raw_query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        Signer::new(self.access_key.clone(), self.secret_key.clone())
            .sign(method, raw_path, raw_query, &mut headers, &body, chrono::Utc::now())
            .unwrap();
        let request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .headers(headers)
            .timeout(Duration::from_secs(30))
            .body(body)
            .build()
            .unwrap();
        let response = self.http.execute(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok((status, headers, value))
    }
}
