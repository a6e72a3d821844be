//! Test support shared by the client and worker-runtime tests: find (or build) the real `jobd`
//! binary, start it on a free port with a fresh data directory, and wait on jobs through the client.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use jobd_client::{Client, Credentials, Job, ListJobsQuery, ProjectClient};

pub const ACCESS_KEY: &str = "CLIENTTESTAK";
pub const SECRET_KEY: &str = "client-test-secret";
pub const PROJECT: &str = "0123456789abcdef0123456789abcdef";

/// The `jobd` binary of this build: `target/<profile>/jobd`, next to this test's own `deps/`
/// folder (so `CARGO_TARGET_DIR` and `--release` are followed). `cargo build -p jobd` runs once
/// per test process, so the binary is never missing nor older than the workspace; if that build
/// fails while a binary exists (a crate mid-edit), the existing binary is used with a warning.
pub fn jobd_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| cargo_build(&["-p", "jobd", "--bin", "jobd"], Path::new("jobd")))
}

/// An example of this workspace, built the same way: `target/<profile>/examples/<name>`.
pub fn example_binary(package: &str, name: &str) -> PathBuf {
    cargo_build(&["-p", package, "--example", name], &Path::new("examples").join(name))
}

/// Runs `cargo build <args>` for this test's profile and target directory; answers the artifact at
/// `relative` (without the executable suffix) under the profile directory.
fn cargo_build(args: &[&str], relative: &Path) -> PathBuf {
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug"));
    let mut artifact = profile_dir.join(relative);
    artifact.as_mut_os_string().push(std::env::consts::EXE_SUFFIX);
    let mut build = Command::new(env!("CARGO"));
    build.arg("build").args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    // Cargo runs tests with the variables of the package under test (`CARGO_PKG_NAME`...). Build
    // scripts that watch them (ring's) would see a change and rebuild on every alternation with
    // a plain `cargo build`, so the inner build gets the environment a shell would give it.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let per_package = name.starts_with("CARGO_PKG_")
            || matches!(
                &*name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "OUT_DIR"
            );
        if per_package {
            build.env_remove(&*name);
        }
    }
    if let Some(target_dir) = profile_dir.parent() {
        build.arg("--target-dir").arg(target_dir);
    }
    if profile_dir.file_name().is_some_and(|name| name == "release") {
        build.arg("--release");
    }
    let output = build.output().expect("cargo runs");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            artifact.exists(),
            "`cargo build {}` failed and there is no {}:\n{stderr}",
            args.join(" "),
            artifact.display()
        );
        eprintln!(
            "warning: `cargo build {}` failed; testing the existing {}:\n{stderr}",
            args.join(" "),
            artifact.display()
        );
    }
    assert!(artifact.exists(), "no {} after `cargo build {}`", artifact.display(), args.join(" "));
    artifact
}

/// A running `jobd serve`, killed on drop.
pub struct Jobd {
    child: Child,
    pub endpoint: String,
    _data_dir: tempfile::TempDir,
}

impl Jobd {
    /// Starts jobd on a free 127.0.0.1 port and waits until it answers signed calls.
    pub async fn start() -> Jobd {
        let binary = jobd_binary();
        let data_dir = tempfile::tempdir().expect("a temp dir");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = if std::env::var_os("JOBD_TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() };
        let child = Command::new(binary)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir.path())
            .env("JOBD_ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("JOBD_ROOT_SECRET_KEY", SECRET_KEY)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the jobd binary starts");
        let jobd = Jobd { child, endpoint: format!("http://127.0.0.1:{port}"), _data_dir: data_dir };
        jobd.wait_ready(port).await;
        jobd
    }

    async fn wait_ready(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let project = self.project();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && project.list_jobs(&ListJobsQuery::default().limit(1)).await.is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "jobd did not become ready on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client with the root keys.
    pub fn client(&self) -> Client {
        Client::new(&self.endpoint, Credentials::new(ACCESS_KEY, SECRET_KEY)).expect("a valid endpoint")
    }

    pub fn project(&self) -> ProjectClient {
        self.client().project(PROJECT)
    }
}

impl Drop for Jobd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
