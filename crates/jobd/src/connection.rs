//! Where the API is and who calls it, for the client commands (`jobd job ...` and the admin
//! commands): from flags, the environment (`JOBD_ENDPOINT`, `JOBD_ACCESS_KEY`, `JOBD_SECRET_KEY`,
//! `JOBD_AUTH_TOKEN`, `JOBD_PROJECT_ID`) or a profile file, `~/.config/jobd/config.toml`; a flag
//! beats the environment, which beats the file.
//!
//! The file holds TOML keys `endpoint`, `access_key`, `secret_key`, `auth_token`, `project_id`: at
//! the top level (every profile), in `[default]` (used without `--profile`) or in `[NAME]` tables
//! (`--profile NAME`), the table's keys winning over the top level's.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use jobd_client::{Auth, Client, Credentials};

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";
const KEYS: [&str; 5] = ["endpoint", "access_key", "secret_key", "auth_token", "project_id"];

/// Where the API is, and the key (or token) to call it with.
#[derive(Clone, Default, Args)]
pub struct Connection {
    /// jobd's address [default: the profile's, else http://127.0.0.1:8080].
    #[arg(long, global = true, env = "JOBD_ENDPOINT")]
    endpoint: Option<String>,
    /// The access key that signs requests.
    #[arg(long, global = true, env = "JOBD_ACCESS_KEY")]
    access_key: Option<String>,
    /// Its secret key. Prefer the environment variable or the profile file to the flag.
    #[arg(long, global = true, env = "JOBD_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// An IAM token (sent as X-Auth-Token) instead of an access key.
    #[arg(long, global = true, env = "JOBD_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// The profile of the config file to use ([NAME]; default: [default]).
    #[arg(long, global = true, env = "JOBD_PROFILE")]
    profile: Option<String>,
    /// The config file [default: ~/.config/jobd/config.toml].
    #[arg(long, global = true, env = "JOBD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<redacted>"))
            .field("profile", &self.profile)
            .field("config", &self.config)
            .finish()
    }
}

/// The settings after flags, environment and file are merged. `Debug` hides the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub endpoint: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub auth_token: Option<String>,
    pub project_id: Option<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<redacted>"))
            .field("project_id", &self.project_id)
            .finish()
    }
}

impl Settings {
    /// Fills what is unset here from `lower`.
    fn or(self, lower: Settings) -> Settings {
        Settings {
            endpoint: self.endpoint.or(lower.endpoint),
            access_key: self.access_key.or(lower.access_key),
            secret_key: self.secret_key.or(lower.secret_key),
            auth_token: self.auth_token.or(lower.auth_token),
            project_id: self.project_id.or(lower.project_id),
        }
    }

    fn set(&mut self, key: &str, value: String) {
        let slot = match key {
            "endpoint" => &mut self.endpoint,
            "access_key" => &mut self.access_key,
            "secret_key" => &mut self.secret_key,
            "auth_token" => &mut self.auth_token,
            _ => &mut self.project_id,
        };
        *slot = Some(value);
    }

    pub fn endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT)
    }

    /// The token if one is set anywhere, else the access key and secret key.
    pub fn auth(&self) -> anyhow::Result<Auth> {
        if let Some(token) = &self.auth_token {
            return Ok(Auth::token(token.clone()));
        }
        let (Some(ak), Some(sk)) = (&self.access_key, &self.secret_key) else {
            bail!(
                "no credentials: set JOBD_ACCESS_KEY and JOBD_SECRET_KEY (or --access-key / --secret-key, \
                 JOBD_AUTH_TOKEN, or a profile in ~/.config/jobd/config.toml)"
            );
        };
        Ok(Auth::AkSk(Credentials::new(ak.clone(), sk.clone())))
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(self.endpoint(), self.auth()?)?)
    }
}

/// `$XDG_CONFIG_HOME/jobd/config.toml`, else `~/.config/jobd/config.toml`.
fn default_config_path() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let config_home = non_empty("XDG_CONFIG_HOME").or_else(|| non_empty("HOME").map(|home| home.join(".config")))?;
    Some(config_home.join("jobd").join("config.toml"))
}

/// Reads one profile of a config file's text.
fn profile_of(text: &str, profile: Option<&str>, path: &Path) -> anyhow::Result<Settings> {
    let table: toml::Table = toml::from_str(text).with_context(|| format!("reading {}", path.display()))?;
    let mut base = Settings::default();
    let mut sections = std::collections::BTreeMap::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(section) => {
                sections.insert(key, section);
            }
            toml::Value::String(text) if KEYS.contains(&key.as_str()) => base.set(&key, text),
            _ => bail!("{}: {key} is not one of {} (a string) or a [profile] table", path.display(), KEYS.join(", ")),
        }
    }
    let wanted = profile.unwrap_or("default");
    let Some(section) = sections.remove(wanted) else {
        if profile.is_some() {
            let known: Vec<&String> = sections.keys().collect();
            bail!("{} has no [{wanted}] profile (it has {known:?})", path.display());
        }
        return Ok(base);
    };
    let mut chosen = Settings::default();
    for (key, value) in section {
        match value {
            toml::Value::String(text) if KEYS.contains(&key.as_str()) => chosen.set(&key, text),
            _ => bail!("{}: [{wanted}] {key} is not one of {} (a string)", path.display(), KEYS.join(", ")),
        }
    }
    Ok(chosen.or(base))
}

impl Connection {
    /// The settings from flags and environment over the profile file's, with `project_id` from
    /// the caller's own flag or variable.
    pub fn settings(&self, project_id: Option<String>) -> anyhow::Result<Settings> {
        let given = Settings {
            endpoint: self.endpoint.clone(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            auth_token: self.auth_token.clone(),
            project_id,
        };
        let explicit_path = self.config.clone();
        let Some(path) = explicit_path.clone().or_else(default_config_path) else { return Ok(given) };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit_path.is_none() => {
                if let Some(profile) = &self.profile {
                    bail!("--profile {profile}: there is no {}", path.display());
                }
                return Ok(given);
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let from_file = profile_of(&text, self.profile.as_deref(), &path)?;
        if from_file.secret_key.is_some() || from_file.auth_token.is_some() {
            warn_if_readable_by_others(&path);
        }
        Ok(given.or(from_file))
    }

    /// A client from the merged settings (the admin commands need no project).
    pub fn client(&self) -> anyhow::Result<Client> {
        self.settings(None)?.client()
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path) {
        if metadata.permissions().mode() & 0o077 != 0 {
            eprintln!("warning: {} holds a secret and others may read it: chmod 600 it", path.display());
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
endpoint = "http://top:1"
access_key = "TOP_AK"
secret_key = "top-secret"

[default]
project_id = "p-default"

[staging]
endpoint = "http://staging:2"
project_id = "p-staging"
"#;

    #[test]
    fn profiles_fall_back_to_the_top_level() {
        let path = Path::new("config.toml");
        let default = profile_of(FILE, None, path).unwrap();
        assert_eq!(default.endpoint.as_deref(), Some("http://top:1"));
        assert_eq!(default.project_id.as_deref(), Some("p-default"));
        let staging = profile_of(FILE, Some("staging"), path).unwrap();
        assert_eq!(staging.endpoint.as_deref(), Some("http://staging:2"));
        assert_eq!(staging.access_key.as_deref(), Some("TOP_AK"));
        assert_eq!(staging.project_id.as_deref(), Some("p-staging"));
        assert!(profile_of(FILE, Some("prod"), path).unwrap_err().to_string().contains("no [prod] profile"));
        assert!(profile_of("endpont = \"x\"", None, path).is_err(), "a misspelt key is an error");
        assert!(profile_of("[p]\nsecret = \"x\"", Some("p"), path).is_err());
    }

    #[test]
    fn flags_and_environment_beat_the_file() {
        let file = profile_of(FILE, Some("staging"), Path::new("c")).unwrap();
        let given = Settings { endpoint: Some("http://flag:3".into()), ..Settings::default() };
        let merged = given.or(file);
        assert_eq!(merged.endpoint(), "http://flag:3");
        assert_eq!(merged.project_id.as_deref(), Some("p-staging"));
        assert!(matches!(merged.auth().unwrap(), Auth::AkSk(c) if c.access_key == "TOP_AK"));
        let token = Settings { auth_token: Some("t".into()), ..merged.clone() };
        assert!(matches!(token.auth().unwrap(), Auth::Token(_)));
        assert_eq!(Settings::default().endpoint(), DEFAULT_ENDPOINT);
        assert!(Settings::default().auth().is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let settings = Settings {
            secret_key: Some("very-secret".into()),
            auth_token: Some("tok-secret".into()),
            ..Settings::default()
        };
        let connection = Connection {
            secret_key: Some("very-secret".into()),
            auth_token: Some("tok-secret".into()),
            ..Connection::default()
        };
        for shown in [format!("{settings:?}"), format!("{connection:?}")] {
            assert!(!shown.contains("very-secret") && !shown.contains("tok-secret"), "{shown}");
        }
    }
}
