//! The server's config file: `jobd config print` shows the effective configuration (file <
//! environment < flag) with secrets redacted, and `jobd serve --config` runs on it. A configuration
//! jobd cannot run with is one line on stderr and exit code 2, even with `RUST_BACKTRACE=1`.

use std::process::Command;

fn jobd(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jobd"));
    command.args(args);
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("JOBD_")) {
        command.env_remove(key);
    }
    // Common on developer machines; it must not turn an error into a stack backtrace.
    command.env("RUST_BACKTRACE", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn file_then_environment_then_flags_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobd.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9999\"\nrate_limit_per_second = 5\nroot_access_key = \"FILEAK\"\nroot_secret_key = \"file-secret\"\nmaster_key = \"file-master\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();

    let (code, out, err) = jobd(&["config", "print", "--config", path], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("listen = \"127.0.0.1:9999\""), "{out}");
    assert!(out.contains("rate_limit_per_second = 5"), "{out}");
    assert!(out.contains("root_access_key = \"FILEAK\""), "{out}");
    for secret in ["file-secret", "file-master"] {
        assert!(!out.contains(secret), "secrets are redacted: {out}");
    }

    let (_, out, _) = jobd(&["config", "print", "--config", path], &[("JOBD_RATE_LIMIT_PER_SECOND", "7")]);
    assert!(out.contains("rate_limit_per_second = 7"), "the environment beats the file: {out}");
    let (_, out, _) = jobd(
        &["config", "print", "--config", path, "--rate-limit-per-second", "9"],
        &[("JOBD_RATE_LIMIT_PER_SECOND", "7")],
    );
    assert!(out.contains("rate_limit_per_second = 9"), "a flag beats both: {out}");

    // Every key is printed, in `--help`'s order; one without a value as a comment.
    assert!(out.starts_with("listen = "), "{out}");
    assert!(out.contains("\n# database_url is not set\n"), "{out}");
    assert!(out.contains("\nroot_secret_key = \"<redacted>\"\n"), "{out}");
    assert!(out.contains("\nlog_format = \"human\""), "a global key too: {out}");
    let (_, out, _) = jobd(
        &["config", "print", "--config", path],
        &[("JOBD_DATABASE_URL", "postgres://u:db-password@h/d"), ("JOBD_LOG_FORMAT", "json")],
    );
    assert!(out.contains("database_url = \"<redacted>\""), "{out}");
    assert!(!out.contains("db-password"), "{out}");
    assert!(out.contains("log_format = \"json\""), "{out}");

    std::fs::write(&file, "log_format = \"json\"\nretention_hours = \"a week\"\n").unwrap();
    let (code, _, err) = jobd(&["serve", "--config", path], &[]);
    assert_eq!(code, 2, "a bad value is a configuration error: {err}");
    assert!(err.contains("retention_hours: not a valid value: invalid digit found in string"), "{err}");
    assert_one_line(&err);

    std::fs::write(&file, "colour = \"blue\"\n").unwrap();
    let (code, _, err) = jobd(&["config", "print", "--config", path], &[]);
    assert_eq!(code, 2, "a configuration error: {err}");
    assert!(err.contains("unknown key \"colour\""), "{err}");
    assert_one_line(&err);

    std::fs::write(&file, "rate_limit_per_second = 5\nlisten 127.0.0.1\n").unwrap();
    let (code, _, err) = jobd(&["serve", "--config", path], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not TOML, line 2"), "{err}");
    assert_one_line(&err);
}

/// One line on stderr, no backtrace.
fn assert_one_line(stderr: &str) {
    assert_eq!(stderr.lines().count(), 1, "one line:\n{stderr}");
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
}

#[test]
fn a_configuration_error_is_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().unwrap();
    let serve = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir];
        args.extend_from_slice(extra);
        jobd(&args, env)
    };

    // The case: a database shared by several nodes needs the one master key they share.
    let (code, out, err) = serve(&["--database-url", "postgres://x@127.0.0.1/db"], &[]);
    assert_eq!(code, 2, "{err}");
    assert_one_line(&err);
    assert!(err.contains("set JOBD_MASTER_KEY"), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(!std::path::Path::new(data_dir).exists(), "refused before anything starts");

    let (code, _, err) = serve(&["--retention-hours", "0"], &[]);
    assert_eq!((code, err.as_str()), (2, "Error: --retention-hours must be positive\n"));
    let (code, _, err) = serve(&[], &[("JOBD_ROOT_ACCESS_KEY", "AK")]);
    assert_eq!(code, 2, "{err}");
    assert_one_line(&err);
    let (code, _, err) = jobd(&["config", "print", "--database-url", "mysql://h/db"], &[]);
    assert_eq!((code, err.as_str()), (2, "Error: --database-url must be a postgres:// URL\n"));

    // Not a configuration error, but one line too (exit 1): the address is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, _, err) = jobd(&["serve", "--listen", &address, "--data-dir", data_dir], &[]);
    assert_eq!(code, 1, "{err}");
    assert_one_line(&err);
    assert!(err.contains(&format!("binding {address}")), "{err}");
}
