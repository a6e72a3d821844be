//! The server's config file (`jobd serve --config jobd.toml`): the same keys as the flags (`listen`,
//! `data_dir`, `database_url`, ...), lowest in precedence: file < environment < flag.
//!
//! It is read before the command line is parsed, and each key the environment does not already
//! set becomes its `JOBD_*` variable; clap then applies environment and flags on top, as usual.

use std::path::Path;

use crate::config::ConfigError;

/// Every key a config file may hold, with the environment variable it stands for.
pub const KEYS: &[(&str, &str)] = &[
    ("listen", "JOBD_LISTEN"),
    ("data_dir", "JOBD_DATA_DIR"),
    ("max_body_bytes", "JOBD_MAX_BODY_BYTES"),
    ("database_url", "JOBD_DATABASE_URL"),
    ("database_max_connections", "JOBD_DATABASE_MAX_CONNECTIONS"),
    ("database_statement_timeout_ms", "JOBD_DATABASE_STATEMENT_TIMEOUT_MS"),
    ("retention_hours", "JOBD_RETENTION_HOURS"),
    ("token_ttl_hours", "JOBD_TOKEN_TTL_HOURS"),
    ("rate_limit_per_second", "JOBD_RATE_LIMIT_PER_SECOND"),
    ("failed_auth_per_second", "JOBD_FAILED_AUTH_PER_SECOND"),
    ("password_attempts_per_minute", "JOBD_PASSWORD_ATTEMPTS_PER_MINUTE"),
    ("max_connections", "JOBD_MAX_CONNECTIONS"),
    ("max_in_flight", "JOBD_MAX_IN_FLIGHT"),
    ("metrics_max_label_values", "JOBD_METRICS_MAX_LABEL_VALUES"),
    ("header_read_timeout_seconds", "JOBD_HEADER_READ_TIMEOUT_SECONDS"),
    ("body_read_timeout_seconds", "JOBD_BODY_READ_TIMEOUT_SECONDS"),
    ("idle_timeout_seconds", "JOBD_IDLE_TIMEOUT_SECONDS"),
    ("region", "JOBD_REGION"),
    ("master_key", "JOBD_MASTER_KEY"),
    ("root_access_key", "JOBD_ROOT_ACCESS_KEY"),
    ("root_secret_key", "JOBD_ROOT_SECRET_KEY"),
    ("log_format", "JOBD_LOG_FORMAT"),
];

/// The `--config` path of a `serve` or `config print` command line, if any.
pub fn path_in(args: &[String]) -> Option<String> {
    let server_command = args.iter().skip(1).take(2).any(|a| a == "serve" || a == "config");
    if !server_command {
        return None;
    }
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().cloned();
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(path.to_owned());
        }
    }
    None
}

/// Reads the file and sets the environment variable of every key the environment lacks.
/// Call before any thread starts (it sets process environment variables).
pub fn apply(path: &Path) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::File { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|error| invalid(format!("cannot read it: {error}")))?;
    let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
        // One line: the parser's own rendering quotes the offending line over several.
        let line = error.span().map(|span| text[..span.start].matches('\n').count() + 1);
        let message = error.message().trim_end();
        invalid(match line {
            Some(line) => format!("not TOML, line {line}: {message}"),
            None => format!("not TOML: {message}"),
        })
    })?;
    for (key, value) in &table {
        let Some((_, variable)) = KEYS.iter().find(|(name, _)| name == key) else {
            let known: Vec<&str> = KEYS.iter().map(|(name, _)| *name).collect();
            return Err(invalid(format!("unknown key {key:?}; the keys are {}", known.join(", "))));
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => return Err(invalid(format!("{key} must be a string or a number, not {other}"))),
        };
        if std::env::var_os(variable).is_none() {
            // Safe here: called from `main` before the runtime or any other thread exists.
            std::env::set_var(variable, text);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_config_flag_is_found_for_server_commands_only() {
        assert_eq!(path_in(&args("jobd serve --config a.toml")), Some("a.toml".into()));
        assert_eq!(path_in(&args("jobd serve --listen x --config=b.toml")), Some("b.toml".into()));
        assert_eq!(path_in(&args("jobd config print --config c.toml")), Some("c.toml".into()));
        assert_eq!(path_in(&args("jobd job list --config profile.toml")), None, "the job CLI has its own file");
        assert_eq!(path_in(&args("jobd serve")), None);
    }
}
