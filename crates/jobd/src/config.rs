//! Configuration: one struct per subcommand, from flags and environment (flag beats env).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::http_server::{self, ConnectionLimits};

/// The default of `--body-read-timeout-seconds` (`ApiConfig::default()` agrees).
pub const DEFAULT_BODY_READ_TIMEOUT_SECONDS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// The log level of `serve` and the client commands when `JOBD_LOG` is not set.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn";
/// The log level of `demo` when `JOBD_LOG` is not set: its banner is what a newcomer reads, so
/// only warnings share the terminal with it.
pub const DEMO_LOG_FILTER: &str = "warn";

/// Logs on stderr at `JOBD_LOG` (an `EnvFilter` directive), else at `default_filter`.
pub fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_env("JOBD_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A configuration jobd cannot run with: reported in one line, exit code 2 (`EXIT_CONFIG`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("set both JOBD_ROOT_ACCESS_KEY and JOBD_ROOT_SECRET_KEY, or neither")]
    HalfARootKey,
    #[error("{flag} must be positive")]
    NotPositive { flag: &'static str },
    #[error("--database-url must be a postgres:// URL")]
    NotAPostgresUrl,
    #[error("with --database-url, set JOBD_MASTER_KEY (the same on every node) to seal access-key secrets")]
    MasterKeyRequired,
    #[error("the config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// The exit code of a configuration error (the command line itself is `EXIT_USAGE`, 64).
pub const EXIT_CONFIG: u8 = 2;

#[derive(Clone, Args)]
pub struct ServeArgs {
    /// A TOML file with the same keys as these flags (`listen`, `data_dir`, `database_url`, ...);
    /// the environment and flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "JOBD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the embedded SQLite store.
    #[arg(long, env = "JOBD_DATA_DIR", default_value = "./jobd-data")]
    pub data_dir: PathBuf,
    /// A `postgres://` URL: keep jobs in PostgreSQL (several jobd nodes may share it) instead of
    /// the embedded SQLite store. TLS and the like come from the URL (`?sslmode=require`).
    #[arg(long, env = "JOBD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL connection pool size.
    #[arg(long, env = "JOBD_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// PostgreSQL statement timeout, in milliseconds.
    #[arg(long, env = "JOBD_DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = 30_000)]
    pub database_statement_timeout_ms: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "JOBD_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Finished jobs are deleted this many hours after they end.
    #[arg(long, env = "JOBD_RETENTION_HOURS", default_value_t = 7 * 24)]
    pub retention_hours: u64,
    /// Tokens from `POST /v3/auth/tokens` expire after this many hours.
    #[arg(long, env = "JOBD_TOKEN_TTL_HOURS", default_value_t = 24)]
    pub token_ttl_hours: u64,
    /// Requests per second per credential or token (0: no limit); bursts of twice that pass.
    #[arg(long, env = "JOBD_RATE_LIMIT_PER_SECOND", default_value_t = 1000)]
    pub rate_limit_per_second: u32,
    /// Connections served at once; past it `/healthz` still answers and the rest get `503`.
    #[arg(long, env = "JOBD_MAX_CONNECTIONS", default_value_t = http_server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Requests in flight at once before more are answered `503` with `Retry-After` (0: no
    /// bound); long polls and event streams are not counted.
    #[arg(long, env = "JOBD_MAX_IN_FLIGHT", default_value_t = jobd_api::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Distinct values kept per metric label (`service`, `job_type`); later ones count as `other`.
    #[arg(long, env = "JOBD_METRICS_MAX_LABEL_VALUES", default_value_t = jobd_service::metric_labels::DEFAULT_MAX_LABEL_VALUES)]
    pub metrics_max_label_values: usize,
    /// Seconds a connection has to send a complete request head (from its accept, or from the
    /// first byte of its next request).
    #[arg(long, env = "JOBD_HEADER_READ_TIMEOUT_SECONDS", default_value_t = http_server::DEFAULT_HEADER_READ_TIMEOUT_SECONDS)]
    pub header_read_timeout_seconds: u64,
    /// Seconds a request body has to arrive once its head has (`408` past it).
    #[arg(long, env = "JOBD_BODY_READ_TIMEOUT_SECONDS", default_value_t = DEFAULT_BODY_READ_TIMEOUT_SECONDS)]
    pub body_read_timeout_seconds: u64,
    /// Seconds a keep-alive connection may wait between requests.
    #[arg(long, env = "JOBD_IDLE_TIMEOUT_SECONDS", default_value_t = http_server::DEFAULT_IDLE_TIMEOUT_SECONDS)]
    pub idle_timeout_seconds: u64,
    /// Failed authentications per second per client address (bursts of 5 times that) before the
    /// address is answered `429` (0: no limit).
    #[arg(long, env = "JOBD_FAILED_AUTH_PER_SECOND", default_value_t = 10)]
    pub failed_auth_per_second: u32,
    /// Token requests per minute per client address, and failed ones per minute per user name
    /// (0: no limit).
    #[arg(long, env = "JOBD_PASSWORD_ATTEMPTS_PER_MINUTE", default_value_t = 10)]
    pub password_attempts_per_minute: u32,
    /// The region id jobd serves (e.g. `cn-north-4`): `V11-HMAC-SHA256` (derived) signatures are
    /// verified for it; without it they are refused.
    #[arg(long, env = "JOBD_REGION")]
    pub region: Option<String>,
    /// Key material that seals access-key secrets (default: a key file in the data directory).
    #[arg(long, env = "JOBD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Root access key (may act in every project).
    #[arg(long, env = "JOBD_ROOT_ACCESS_KEY", hide_env_values = true)]
    pub root_access_key: Option<String>,
    /// Root secret key. Prefer the environment variable to the flag.
    #[arg(long, env = "JOBD_ROOT_SECRET_KEY", hide_env_values = true)]
    pub root_secret_key: Option<String>,
}

impl fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeArgs")
            .field("config", &self.config)
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("database_url", &self.database_url.as_ref().map(|_| "<redacted>"))
            .field("retention_hours", &self.retention_hours)
            .field("token_ttl_hours", &self.token_ttl_hours)
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("failed_auth_per_second", &self.failed_auth_per_second)
            .field("password_attempts_per_minute", &self.password_attempts_per_minute)
            .field("max_connections", &self.max_connections)
            .field("max_in_flight", &self.max_in_flight)
            .field("metrics_max_label_values", &self.metrics_max_label_values)
            .field("header_read_timeout_seconds", &self.header_read_timeout_seconds)
            .field("body_read_timeout_seconds", &self.body_read_timeout_seconds)
            .field("idle_timeout_seconds", &self.idle_timeout_seconds)
            .field("master_key", &self.master_key.as_ref().map(|_| "<redacted>"))
            .field("root_access_key", &self.root_access_key)
            .field("root_secret_key", &self.root_secret_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A root key pair. `Debug` never shows the secret.
#[derive(Clone)]
pub struct RootCredentials {
    pub access_key: String,
    pub secret_key: String,
}

impl fmt::Debug for RootCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// A PostgreSQL store. `Debug` never shows the URL (it may hold a password).
#[derive(Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    pub statement_timeout: std::time::Duration,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &"<redacted>")
            .field("max_connections", &self.max_connections)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// The validated server configuration. `Debug` never shows a secret.
#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub max_body_bytes: usize,
    pub database: Option<DatabaseConfig>,
    pub retention: std::time::Duration,
    pub token_ttl: std::time::Duration,
    pub rate_limit_per_second: u32,
    pub failed_auth_per_second: u32,
    pub password_attempts_per_minute: u32,
    pub connections: ConnectionLimits,
    pub body_read_timeout: Duration,
    pub max_in_flight: usize,
    pub metrics_max_label_values: usize,
    pub region: Option<String>,
    pub master_key: Option<String>,
    pub root: Option<RootCredentials>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("database", &self.database)
            .field("retention", &self.retention)
            .field("token_ttl", &self.token_ttl)
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("failed_auth_per_second", &self.failed_auth_per_second)
            .field("password_attempts_per_minute", &self.password_attempts_per_minute)
            .field("connections", &self.connections)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("metrics_max_label_values", &self.metrics_max_label_values)
            .field("region", &self.region)
            .field("master_key", &self.master_key.as_ref().map(|_| "<redacted>"))
            .field("root", &self.root)
            .finish()
    }
}

impl ServerConfig {
    /// The effective configuration as TOML, secrets redacted (`jobd config print`).
    pub fn to_toml(&self) -> String {
        let redacted = |present: bool| if present { "\"<redacted>\"" } else { "\"\"" };
        let mut lines = vec![
            format!("listen = \"{}\"", self.listen),
            format!("data_dir = {:?}", self.data_dir.display().to_string()),
            format!("max_body_bytes = {}", self.max_body_bytes),
            format!("database_url = {}", redacted(self.database.is_some())),
        ];
        if let Some(database) = &self.database {
            lines.push(format!("database_max_connections = {}", database.max_connections));
            lines.push(format!("database_statement_timeout_ms = {}", database.statement_timeout.as_millis()));
        }
        lines.extend([
            format!("retention_hours = {}", self.retention.as_secs() / 3600),
            format!("token_ttl_hours = {}", self.token_ttl.as_secs() / 3600),
            format!("rate_limit_per_second = {}", self.rate_limit_per_second),
            format!("failed_auth_per_second = {}", self.failed_auth_per_second),
            format!("password_attempts_per_minute = {}", self.password_attempts_per_minute),
            format!("max_connections = {}", self.connections.max_connections),
            format!("header_read_timeout_seconds = {}", self.connections.header_read_timeout.as_secs()),
            format!("body_read_timeout_seconds = {}", self.body_read_timeout.as_secs()),
            format!("idle_timeout_seconds = {}", self.connections.idle_timeout.as_secs()),
            format!("max_in_flight = {}", self.max_in_flight),
            format!("metrics_max_label_values = {}", self.metrics_max_label_values),
            format!("region = {:?}", self.region.clone().unwrap_or_default()),
            format!("master_key = {}", redacted(self.master_key.is_some())),
            format!("root_access_key = {:?}", self.root.as_ref().map(|r| r.access_key.clone()).unwrap_or_default()),
            format!("root_secret_key = {}", redacted(self.root.is_some())),
        ]);
        lines.join("\n")
    }
}

impl ServeArgs {
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        let root = match (self.root_access_key, self.root_secret_key) {
            (Some(access_key), Some(secret_key)) if !access_key.is_empty() && !secret_key.is_empty() => {
                Some(RootCredentials { access_key, secret_key })
            }
            (None, None) => None,
            _ => return Err(ConfigError::HalfARootKey),
        };
        for (flag, value) in [
            ("--max-body-bytes", self.max_body_bytes as u64),
            ("--retention-hours", self.retention_hours),
            ("--token-ttl-hours", self.token_ttl_hours),
            ("--max-connections", self.max_connections as u64),
            ("--header-read-timeout-seconds", self.header_read_timeout_seconds),
            ("--body-read-timeout-seconds", self.body_read_timeout_seconds),
            ("--idle-timeout-seconds", self.idle_timeout_seconds),
        ] {
            if value == 0 {
                return Err(ConfigError::NotPositive { flag });
            }
        }
        let database = match self.database_url {
            Some(url) if !url.is_empty() => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(ConfigError::NotAPostgresUrl);
                }
                // Nodes sharing PostgreSQL must unseal each other's secrets: one key, given to
                // all of them (a key file in one node's data directory would not do).
                if self.master_key.as_deref().unwrap_or_default().is_empty() {
                    return Err(ConfigError::MasterKeyRequired);
                }
                Some(DatabaseConfig {
                    url,
                    max_connections: self.database_max_connections.max(1),
                    statement_timeout: std::time::Duration::from_millis(self.database_statement_timeout_ms),
                })
            }
            _ => None,
        };
        Ok(ServerConfig {
            listen: self.listen,
            data_dir: self.data_dir,
            max_body_bytes: self.max_body_bytes,
            database,
            retention: std::time::Duration::from_secs(self.retention_hours * 3600),
            token_ttl: std::time::Duration::from_secs(self.token_ttl_hours * 3600),
            rate_limit_per_second: self.rate_limit_per_second,
            failed_auth_per_second: self.failed_auth_per_second,
            password_attempts_per_minute: self.password_attempts_per_minute,
            connections: ConnectionLimits {
                max_connections: self.max_connections,
                header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
                idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            },
            body_read_timeout: Duration::from_secs(self.body_read_timeout_seconds),
            max_in_flight: self.max_in_flight,
            metrics_max_label_values: self.metrics_max_label_values,
            region: self.region.filter(|region| !region.is_empty()),
            master_key: self.master_key,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let args = ServeArgs {
            config: None,
            listen: "127.0.0.1:1".parse().unwrap(),
            data_dir: "d".into(),
            max_body_bytes: 1,
            database_url: Some("postgres://u:db-password@h/d".into()),
            database_max_connections: 1,
            database_statement_timeout_ms: 1,
            retention_hours: 1,
            token_ttl_hours: 1,
            rate_limit_per_second: 0,
            failed_auth_per_second: 0,
            password_attempts_per_minute: 0,
            max_connections: 1,
            max_in_flight: 1,
            metrics_max_label_values: 1,
            header_read_timeout_seconds: 1,
            body_read_timeout_seconds: 1,
            idle_timeout_seconds: 1,
            region: None,
            master_key: Some("master-secret".into()),
            root_access_key: Some("AK".into()),
            root_secret_key: Some("very-secret".into()),
        };
        let config = args.clone().into_config().unwrap();
        for shown in [format!("{args:?}"), format!("{config:?}")] {
            assert!(!shown.contains("very-secret"), "{shown}");
            assert!(!shown.contains("master-secret"), "{shown}");
            assert!(!shown.contains("db-password"), "{shown}");
            assert!(shown.contains("AK"));
        }
    }
}
