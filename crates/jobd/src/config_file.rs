//! The server's config file (`jobd serve --config jobd.toml`) and what `jobd config print` shows.
//!
//! The keys are not listed here: they are the arguments of `jobd serve` that have an environment
//! variable (declared once, in `ServeArgs`, or on the command line's root for the global
//! `--log-format`), and a key's name in the file is its argument's id, the field's name. A file's
//! values become those arguments' defaults, so clap's own precedence puts them under the
//! environment and the flags: flag > environment > file > built-in default. Nothing writes the
//! process environment.

use std::path::Path;

use clap::{Arg, Command};

use crate::config::ConfigError;

/// The subcommands that take `--config` and the server's keys, as paths from the root.
pub const SERVER_COMMANDS: &[&[&str]] = &[&["serve"], &["config", "print"]];

/// `jobd serve` as parsed: with the global arguments propagated to it.
pub fn serve_command(root: &Command) -> Command {
    let mut root = root.clone();
    root.build();
    root.find_subcommand(SERVER_COMMANDS[0][0]).cloned().expect("jobd has a serve command")
}

/// The configuration keys of `serve_command`, in the order `--help` lists them.
pub fn keys(serve: &Command) -> impl Iterator<Item = &Arg> {
    serve.get_arguments().filter(|arg| arg.get_env().is_some())
}

/// The file key of an argument: its id (the field's name).
pub fn key_name(arg: &Arg) -> &str {
    arg.get_id().as_str()
}

/// `root` with the file's values as the defaults of the server's keys. Every key and value is
/// checked first: an unknown key, a value of the wrong type or one the key's own parser refuses
/// is a `ConfigError` naming the key.
pub fn layer(root: Command, path: &Path) -> Result<Command, ConfigError> {
    let values = read(&serve_command(&root), path)?;
    let mut root = root;
    for (key, value) in values {
        let is_global = root.get_arguments().any(|arg| arg.get_id() == key.as_str());
        if is_global {
            root = root.mut_arg(&key, |arg| arg.default_value(value.clone()));
            continue;
        }
        for command_path in SERVER_COMMANDS {
            root = with_default(root, command_path, &key, &value);
        }
    }
    Ok(root)
}

/// Sets the default of `key` in the subcommand at `path` below `command`.
fn with_default(command: Command, path: &[&str], key: &str, value: &str) -> Command {
    in_subcommand(command, path, &|command| command.mut_arg(key, |arg| arg.default_value(value.to_owned())))
}

/// `root` where the server's commands never show an environment variable's value in `--help`:
/// secrecy is the type `Secret`, which clap cannot see, so no value is shown.
pub fn hide_env_values(root: Command) -> Command {
    SERVER_COMMANDS.iter().fold(root, |root, path| {
        in_subcommand(root, path, &|command| command.mut_args(|arg| arg.hide_env_values(true)))
    })
}

/// `change` applied to the subcommand at `path` below `command`.
fn in_subcommand(command: Command, path: &[&str], change: &dyn Fn(Command) -> Command) -> Command {
    match path.split_first() {
        None => change(command),
        Some((name, rest)) => command.mut_subcommand(name, |sub| in_subcommand(sub, rest, change)),
    }
}

/// The file's `(key, value)` pairs, each value as the command line would spell it.
fn read(serve: &Command, path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
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
    let mut values = Vec::with_capacity(table.len());
    for (key, value) in table {
        let Some(arg) = keys(serve).find(|arg| key_name(arg) == key) else {
            let known: Vec<&str> = keys(serve).map(key_name).collect();
            return Err(invalid(format!("unknown key {key:?}; the keys are {}", known.join(", "))));
        };
        let text = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Boolean(flag) => flag.to_string(),
            other => return Err(invalid(format!("{key} must be a string, an integer or a boolean, not {other}"))),
        };
        check_value(arg, &text).map_err(|reason| invalid(format!("{key}: {reason}")))?;
        values.push((key, text));
    }
    Ok(values)
}

/// Whether the argument's own parser takes `value`; if not, why, in one line. (A secret's parser
/// takes every value, so a secret is never in the reason.)
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or(arg.get_id().as_str());
    // Alone, and without its environment variable, so only `value` is parsed.
    let probe = Command::new("jobd").no_binary_name(true).arg(arg.clone().global(false).env(None).required(false));
    match probe.try_get_matches_from([format!("--{long}={value}")]) {
        Ok(_) => Ok(()),
        Err(error) => {
            let possible: Vec<String> = arg.get_possible_values().iter().map(|v| v.get_name().to_owned()).collect();
            Err(match std::error::Error::source(&error) {
                Some(cause) => format!("not a valid value: {cause}"),
                None if !possible.is_empty() => format!("not one of {}", possible.join(", ")),
                None => format!("not a valid value ({})", error.kind()),
            })
        }
    }
}

/// The effective configuration as TOML, from the serialised `ServeArgs` (secrets already
/// `<redacted>`) and the global keys: one line per key of `serve`, in its order; a key without a
/// value is a comment.
pub fn render(serve: &Command, values: &toml::Table) -> String {
    keys(serve)
        .map(|arg| {
            let key = key_name(arg);
            match values.get(key) {
                Some(value) => format!("{key} = {value}"),
                None => format!("# {key} is not set"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Cli;

    /// README's configuration table: flag → (environment variable, default, whether the
    /// description says "secret"), as written there.
    fn readme_table() -> BTreeMap<String, (String, String, bool)> {
        let readme = include_str!("../../../README.md");
        let mut rows = BTreeMap::new();
        for line in readme.lines().filter(|line| line.starts_with("| `--")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, flag, env, default, description, ..] = cells[..] else { panic!("a short row: {line}") };
            let row = (env.to_owned(), default.to_owned(), description.starts_with("secret"));
            let previous = rows.insert(flag.trim_matches('`').to_owned(), row);
            assert!(previous.is_none(), "{flag} twice in README");
        }
        rows
    }

    /// The file keys whose type is `Secret`: those `config print` shows as `<redacted>` when set.
    fn secret_keys(serve: &Command) -> Vec<String> {
        use clap::{Args, FromArgMatches};
        // Every key without a default set, to "1" (which every such key takes today).
        let unset = keys(serve).filter(|arg| arg.get_default_values().is_empty() && arg.get_long().is_some());
        let line: Vec<String> = unset.map(|arg| format!("--{}=1", arg.get_long().unwrap_or_default())).collect();
        let matches = crate::config::ServeArgs::augment_args(Command::new("serve").no_binary_name(true))
            .try_get_matches_from(line)
            .unwrap();
        let args = crate::config::ServeArgs::from_arg_matches(&matches).unwrap();
        let values = toml::Table::try_from(&args).unwrap();
        let redacted = toml::Value::String(crate::config::REDACTED.into());
        values.into_iter().filter(|(_, value)| *value == redacted).map(|(key, _)| key).collect()
    }

    #[test]
    fn readme_documents_every_key_as_declared_and_nothing_else() {
        let serve = serve_command(&Cli::parser());
        let mut readme = readme_table();
        let secrets = secret_keys(&serve);
        assert!(secrets.contains(&"root_secret_key".to_owned()), "{secrets:?}");
        for arg in keys(&serve) {
            let long = arg.get_long().unwrap_or_default();
            // README says so: a key's name in the file is its flag's, with `_` for `-`.
            assert_eq!(key_name(arg).replace('_', "-"), long, "the file key of --{long}");
            let env = format!("`{}`", arg.get_env().unwrap().to_string_lossy());
            let default = match arg.get_default_values() {
                [] => "—".to_owned(),
                values => format!("`{}`", values.iter().map(|v| v.to_string_lossy()).collect::<Vec<_>>().join(",")),
            };
            let flag = format!("--{long}");
            let Some(documented) = readme.remove(&flag) else {
                panic!("README's configuration table has no row for {flag} ({env}, default {default})");
            };
            let secret = secrets.iter().any(|secret| secret == key_name(arg));
            assert_eq!(documented, (env, default, secret), "README's row for {flag} (env, default, \"secret\")");
        }
        assert!(readme.is_empty(), "README documents keys jobd does not have: {readme:?}");
    }

    #[test]
    fn print_shows_every_key_and_the_file_takes_every_key() {
        let serve = serve_command(&Cli::parser());
        let names: Vec<&str> = keys(&serve).map(key_name).collect();
        assert!(names.contains(&"listen") && names.contains(&"log_format"), "{names:?}");
        assert!(!names.contains(&"config"), "--config is no key");
        let printed = render(&serve, &toml::Table::new());
        for name in &names {
            assert!(printed.contains(&format!("# {name} is not set")), "{printed}");
        }
    }

    fn layered(file: &str) -> Result<Command, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.toml");
        std::fs::write(&path, file).unwrap();
        layer(Cli::parser(), &path)
    }

    #[test]
    fn a_bad_value_or_key_is_an_error_naming_the_key() {
        let reason = |file: &str| match layered(file) {
            Err(ConfigError::File { reason, .. }) => reason,
            other => panic!("{file}: {other:?}"),
        };
        assert_eq!(
            reason("rate_limit_per_second = \"lots\""),
            "rate_limit_per_second: not a valid value: invalid digit found in string"
        );
        assert_eq!(
            reason("rate_limit_per_second = -1"),
            "rate_limit_per_second: not a valid value: -1 is not in 0..=4294967295"
        );
        assert_eq!(reason("listen = \"anywhere\""), "listen: not a valid value: invalid socket address syntax");
        assert_eq!(reason("log_format = \"xml\""), "log_format: not one of human, json");
        assert_eq!(reason("listen = [1]"), "listen must be a string, an integer or a boolean, not [1]");
        let unknown = reason("colour = \"blue\"");
        assert!(unknown.starts_with("unknown key \"colour\"; the keys are listen, data_dir, "), "{unknown}");
    }

    #[test]
    fn file_values_are_the_defaults_of_the_server_commands() {
        let root = layered("rate_limit_per_second = 5\nlog_format = \"json\"\n").unwrap();
        let serve = serve_command(&root);
        let default_of = |id: &str| {
            let arg = keys(&serve).find(|arg| key_name(arg) == id).unwrap();
            arg.get_default_values()[0].to_string_lossy().into_owned()
        };
        assert_eq!(default_of("rate_limit_per_second"), "5");
        assert_eq!(default_of("log_format"), "json");
        assert_eq!(default_of("listen"), "127.0.0.1:8080", "keys the file leaves keep theirs");
    }
}
