//! A PostgreSQL cluster of a test's own, which the test may stop, crash and restart (the shared
//! test server's databases are in `database`). It needs PostgreSQL's server binaries (`initdb`,
//! `pg_ctl`); nothing here is ever skipped: a missing binary fails the test with what to do.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory holding `initdb` and `pg_ctl`: `JOBD_PG_BINDIR`, `pg_config --bindir`, `PATH`,
/// or the newest `/usr/lib/postgresql/*/bin`. Panics, saying where it looked, when there is none.
pub fn server_bindir() -> PathBuf {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = std::env::var("JOBD_PG_BINDIR") {
        candidates.push(dir.into());
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        if output.status.success() {
            candidates.push(String::from_utf8_lossy(&output.stdout).trim().into());
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .collect();
    versioned.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    candidates.extend(versioned.into_iter().map(|(_, dir)| dir));
    candidates.iter().find(|dir| usable(dir)).cloned().unwrap_or_else(|| {
        panic!(
            "PostgreSQL's server binaries (initdb, pg_ctl) were not found in JOBD_PG_BINDIR, `pg_config \
             --bindir`, PATH or /usr/lib/postgresql/*/bin (looked in {candidates:?}). This test starts a \
             private cluster: install the PostgreSQL server (Debian: apt-get install postgresql) or set \
             JOBD_PG_BINDIR."
        )
    })
}

/// Whether this process runs as root (PostgreSQL's tools refuse to).
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match status.lines().find_map(|line| line.strip_prefix("Uid:")) {
        Some(ids) => ids.split_whitespace().nth(1) == Some("0"), // real, effective, ...
        None => Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0"),
    }
}

/// A PostgreSQL cluster of the test's own, in a temporary directory, on a free port of
/// 127.0.0.1 (and a Unix socket in that directory), with trust authentication for `postgres`.
/// Stopped (`-m immediate`) when dropped, panic or not. As root, the tools run as `postgres`.
pub struct PrivateCluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

impl PrivateCluster {
    pub fn start() -> PrivateCluster {
        let bindir = server_bindir();
        let as_postgres = is_root();
        // As root the directory must be reachable by `postgres`: /tmp rather than a TMPDIR that may
        // sit in root's home.
        let dir = if as_postgres { tempfile::tempdir_in("/tmp") } else { tempfile::tempdir() }.unwrap();
        std::fs::create_dir(dir.path().join("socket")).unwrap();
        if as_postgres {
            let chown = Command::new("chown").arg("-R").arg("postgres:").arg(dir.path()).output();
            match chown {
                Ok(output) if output.status.success() => {}
                other => panic!(
                    "running as root, the private cluster's directory must belong to the `postgres` user, \
                     but chown failed ({other:?}); create that user or run the test as another user"
                ),
            }
        }
        let mut cluster = PrivateCluster { dir, bindir, port: 0, as_postgres };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &["-D", data.to_str().unwrap(), "--auth=trust", "--username=postgres", "--no-sync", "--encoding=UTF8"],
        );
        // A free port now may be taken a moment later: try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            match cluster.try_pg_ctl(&["start"]) {
                Ok(_) => return cluster,
                Err(error) => last_error = error,
            }
        }
        panic!("the private PostgreSQL cluster did not start: {last_error}\n{}", cluster.log());
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl stop -m MODE` (`fast`: clients are told; `immediate`: as a crash, with recovery on
    /// the next start).
    pub fn stop(&self, mode: &str) {
        self.pg_ctl(&["stop", "-m", mode]);
    }

    /// Starts the cluster again on the same port.
    pub fn start_again(&self) {
        self.pg_ctl(&["start"]);
    }

    /// `pg_ctl restart -m MODE`.
    pub fn restart(&self, mode: &str) {
        self.pg_ctl(&["restart", "-m", mode]);
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) {
        if let Err(error) = self.try_pg_ctl(args) {
            panic!("pg_ctl {args:?} failed: {error}\n{}", self.log());
        }
    }

    fn try_pg_ctl(&self, args: &[&str]) -> Result<Output, String> {
        let data = self.data_dir();
        let log = self.dir.path().join("postgres.log");
        let socket = self.dir.path().join("socket");
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, socket.display());
        let mut all = vec!["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w", "-t", "60", "-o", &options];
        all.extend_from_slice(args);
        self.try_run("pg_ctl", &all)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        self.try_run(tool, args).unwrap_or_else(|error| panic!("{tool} failed: {error}"))
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> Result<Output, String> {
        let program = self.bindir.join(tool);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        // The socket directory, data directory and log are all in `dir`; run from there too (a
        // current directory `postgres` cannot read makes the tools complain).
        command.args(args).current_dir(self.dir.path());
        let output = command.output().map_err(|error| format!("cannot run {}: {error}", program.display()))?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(format!(
                "{} {args:?}: {}\n{}{}",
                program.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.try_run("pg_ctl", &["-D", self.data_dir().to_str().unwrap(), "-w", "stop", "-m", "immediate"]);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
