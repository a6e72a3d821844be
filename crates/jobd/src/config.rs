//! Configuration: the server's keys, declared once in [`ServeArgs`] (flag, environment variable,
//! file key, default, secrecy), and the validated [`ServerConfig`] built from them.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

use crate::http_server::{self, ConnectionLimits};

/// The default of `--body-read-timeout-seconds` (`ApiConfig::default()` agrees).
pub const DEFAULT_BODY_READ_TIMEOUT_SECONDS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
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

/// `jobd serve` and `jobd config print`: `--config` and the server's configuration keys.
///
/// Each field with an `env` is one configuration key, declared here once: its flag (`long`), its
/// environment variable, its config-file key (the field's name: `config_file` reads the keys off
/// this declaration), its default, and its secrecy (the type [`Secret`]). `jobd config print`
/// serialises it (`Serialize`), `Debug` derives from it, and a test checks README's table
/// against it. Precedence is clap's own: flag > environment > default, where the config file's
/// values become the defaults (`config_file::layer`). `--log-format`, global to every command, is
/// declared on the command line's root and is a key too.
#[derive(Clone, Debug, Args, Serialize)]
pub struct ServeArgs {
    /// A TOML file with the same keys as these flags (`listen`, `data_dir`, `database_url`, ...);
    /// the environment and flags override it.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "JOBD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the embedded SQLite store.
    #[arg(long, env = "JOBD_DATA_DIR", default_value = "./jobd-data")]
    pub data_dir: PathBuf,
    /// A `postgres://` URL: keep jobs in PostgreSQL (several jobd nodes may share it) instead of
    /// the embedded SQLite store. TLS and the like come from the URL (`?sslmode=require`).
    #[arg(long, env = "JOBD_DATABASE_URL")]
    pub database_url: Option<Secret>,
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
    /// Failed authentications per second per client address (bursts of 5 times that) before the
    /// address is answered `429` (0: no limit).
    #[arg(long, env = "JOBD_FAILED_AUTH_PER_SECOND", default_value_t = 10)]
    pub failed_auth_per_second: u32,
    /// Token requests per minute per client address, and failed ones per minute per user name
    /// (0: no limit).
    #[arg(long, env = "JOBD_PASSWORD_ATTEMPTS_PER_MINUTE", default_value_t = 10)]
    pub password_attempts_per_minute: u32,
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
    /// The region id jobd serves (e.g. `cn-north-4`): `V11-HMAC-SHA256` (derived) signatures are
    /// verified for it; without it they are refused.
    #[arg(long, env = "JOBD_REGION")]
    pub region: Option<String>,
    /// Key material that seals access-key secrets (default: a key file in the data directory).
    #[arg(long, env = "JOBD_MASTER_KEY")]
    pub master_key: Option<Secret>,
    /// Root access key (may act in every project).
    #[arg(long, env = "JOBD_ROOT_ACCESS_KEY")]
    pub root_access_key: Option<String>,
    /// Root secret key. Prefer the environment variable to the flag.
    #[arg(long, env = "JOBD_ROOT_SECRET_KEY")]
    pub root_secret_key: Option<Secret>,
}

/// A secret configuration value (a key, a password, a URL that may hold one). `Debug` and
/// `Serialize` (what `jobd config print` shows) write `<redacted>`; only [`Secret::expose`]
/// reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// What a secret shows instead of itself.
pub const REDACTED: &str = "<redacted>";

/// A root key pair. `Debug` never shows the secret.
#[derive(Clone, Debug)]
pub struct RootCredentials {
    pub access_key: String,
    pub secret_key: Secret,
}

/// A PostgreSQL store. `Debug` never shows the URL (it may hold a password).
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub max_connections: u32,
    pub statement_timeout: std::time::Duration,
}

/// The validated server configuration. `Debug` never shows a secret.
#[derive(Clone, Debug)]
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
    pub master_key: Option<Secret>,
    pub root: Option<RootCredentials>,
}

impl ServeArgs {
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        let root = match (self.root_access_key, self.root_secret_key) {
            (Some(access_key), Some(secret_key)) if !access_key.is_empty() && !secret_key.expose().is_empty() => {
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
            Some(url) if !url.expose().is_empty() => {
                if !(url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://")) {
                    return Err(ConfigError::NotAPostgresUrl);
                }
                // Nodes sharing PostgreSQL must unseal each other's secrets: one key, given to
                // all of them (a key file in one node's data directory would not do).
                if self.master_key.as_ref().is_none_or(|key| key.expose().is_empty()) {
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
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[test]
    fn secrets_never_show_in_debug_or_print_output() {
        let command = Serve::command();
        let matches = command
            .try_get_matches_from([
                "serve",
                "--database-url=postgres://u:db-password@h/d",
                "--master-key=master-secret",
                "--root-access-key=AK",
                "--root-secret-key=very-secret",
            ])
            .unwrap();
        let args = Serve::from_arg_matches(&matches).unwrap().args;
        let config = args.clone().into_config().unwrap();
        let printed = toml::Table::try_from(&args).unwrap().to_string();
        for shown in [format!("{args:?}"), format!("{config:?}"), printed] {
            assert!(!shown.contains("very-secret"), "{shown}");
            assert!(!shown.contains("master-secret"), "{shown}");
            assert!(!shown.contains("db-password"), "{shown}");
            assert!(shown.contains("AK"), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
    }
}
