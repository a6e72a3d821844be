//! The server's config file: `jobd config print` shows the effective configuration (file <
//! environment < flag) with secrets redacted, and `jobd serve --config` runs on it.

use std::process::Command;

fn jobd(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jobd"));
    command.args(args);
    for key in
        ["JOBD_LISTEN", "JOBD_RATE_LIMIT_PER_SECOND", "JOBD_ROOT_ACCESS_KEY", "JOBD_ROOT_SECRET_KEY", "JOBD_MASTER_KEY"]
    {
        command.env_remove(key);
    }
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

    std::fs::write(&file, "colour = \"blue\"\n").unwrap();
    let (code, _, err) = jobd(&["config", "print", "--config", path], &[]);
    assert_eq!(code, 64);
    assert!(err.contains("unknown key \"colour\""), "{err}");
}
