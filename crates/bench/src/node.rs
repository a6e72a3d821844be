//! A jobd node under test: the real release binary, started on a free port with a fresh store
//! (a temporary SQLite directory or a new PostgreSQL database), rate limiting off.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};
use sqlx::Connection;

pub const ACCESS_KEY: &str = "BENCHROOTAK";
pub const SECRET_KEY: &str = "bench-root-secret";
pub const PROJECT: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";
const MASTER_KEY: &str = "jobd-bench-master-key-material-0123456789";

/// Where the store lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// The PostgreSQL server the bench makes its databases on (`JOBD_BENCH_DATABASE_URL`). Plain TCP
/// on loopback by default, as the peers' drivers connect (`benches/peers`): the server has TLS
/// on, and a client that prefers TLS would measure encryption as well.
pub fn postgres_admin_url() -> String {
    std::env::var("JOBD_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

/// A store made for one measurement, removed on drop.
pub struct Store {
    pub backend: Backend,
    /// SQLite: the data directory.
    dir: tempfile::TempDir,
    /// PostgreSQL: the database's URL and name.
    database: Option<(String, String)>,
}

impl Store {
    pub async fn fresh(backend: Backend) -> anyhow::Result<Store> {
        let dir = tempfile::Builder::new().prefix("jobd-bench-").tempdir()?;
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("jobd_bench_{}", uuid::Uuid::new_v4().simple());
                let mut connection = sqlx::PgConnection::connect(&admin)
                    .await
                    .with_context(|| format!("connecting to PostgreSQL at {admin} (set JOBD_BENCH_DATABASE_URL)"))?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut connection).await?;
                let (server, query) = admin.split_once('?').unwrap_or((admin.as_str(), ""));
                let (base, _) = server.rsplit_once('/').context("a database URL ends in /database")?;
                let query = if query.is_empty() { String::new() } else { format!("?{query}") };
                Some((format!("{base}/{name}{query}"), name))
            }
        };
        Ok(Store { backend, dir, database })
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(|(url, _)| url.as_str())
    }

    /// What the store occupies on disk: the SQLite files, or the jobs table with its indexes.
    pub async fn bytes(&self) -> anyhow::Result<u64> {
        match self.database_url() {
            None => {
                let mut total = 0;
                for entry in std::fs::read_dir(self.data_dir())? {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with("jobd.") || name.ends_with(".db") || name.contains(".db-") {
                        total += entry.metadata()?.len();
                    }
                }
                Ok(total)
            }
            Some(url) => {
                let mut connection = sqlx::PgConnection::connect(url).await?;
                let (bytes,): (i64,) =
                    sqlx::query_as("SELECT pg_total_relation_size('jobs')").fetch_one(&mut connection).await?;
                Ok(bytes as u64)
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some((_, name)) = self.database.take() {
            // Best effort, outside any runtime: psql is on every machine with the server.
            let admin = postgres_admin_url();
            let _ = Command::new("psql")
                .args([admin.as_str(), "-qc", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The `jobd` binary beside this one (same profile), built first when run through cargo.
pub fn jobd_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let binary = me.with_file_name("jobd");
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = me.parent().and_then(Path::file_name).is_some_and(|p| p == "release");
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "jobd", "--bin", "jobd"]);
        if release {
            build.arg("--release");
        }
        if !build.status()?.success() {
            bail!("building the jobd binary failed");
        }
    }
    if !binary.exists() {
        bail!("no jobd binary at {} (cargo build --release -p jobd)", binary.display());
    }
    Ok(binary)
}

pub struct Node {
    child: Child,
    pub base: String,
    pub addr: String,
}

impl Node {
    /// Starts jobd on the store with `extra` flags and waits for its address line.
    /// `JOBD_BENCH_WRAP` (e.g. `valgrind --tool=callgrind`) runs jobd under a profiler.
    pub fn start(store: &Store, extra: &[&str]) -> anyhow::Result<Node> {
        let binary = jobd_binary()?;
        let wrapper = std::env::var("JOBD_BENCH_WRAP").unwrap_or_default();
        let mut wrapper = wrapper.split_whitespace();
        let mut command = match wrapper.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(wrapper).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--rate-limit-per-second", "0", "--data-dir"])
            .arg(store.data_dir())
            .args(extra)
            .env("JOBD_ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("JOBD_ROOT_SECRET_KEY", SECRET_KEY)
            .env("JOBD_MASTER_KEY", MASTER_KEY)
            .env("JOBD_LOG", std::env::var("JOBD_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = store.database_url() {
            command.args(["--database-url", url]);
        }
        Self::spawn(command)
    }

    /// Starts any server process that prints `... listening on http://ADDR` as its first line.
    pub fn spawn(mut command: Command) -> anyhow::Result<Node> {
        let mut child = command.spawn().context("starting the server")?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let Some((_, address)) = line.trim().split_once("listening on http://") else {
            let _ = child.kill();
            bail!("the server did not start: {line:?}");
        };
        let addr = address.to_owned();
        Ok(Node { child, base: format!("http://{addr}"), addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, in bytes (`VmRSS` of `/proc/PID/status`).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        rss_of(self.pid(), "VmRSS:")
    }

    /// The most resident memory so far (`VmHWM`).
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        rss_of(self.pid(), "VmHWM:")
    }

    pub fn client(&self) -> anyhow::Result<jobd_client::Client> {
        Ok(jobd_client::Client::new(&self.base, jobd_client::Credentials::new(ACCESS_KEY, SECRET_KEY))?)
    }
}

fn rss_of(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(field)).context("no such field in /proc/PID/status")?;
    let kib: u64 = line.trim_start_matches(field).trim().trim_end_matches("kB").trim().parse()?;
    Ok(kib * 1024)
}

impl Drop for Node {
    /// SIGTERM first (jobd shuts down gracefully, a profiler writes its output), SIGKILL after 30 s.
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
