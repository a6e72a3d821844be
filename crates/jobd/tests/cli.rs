//! The admin commands as a new user runs them: `jobd project|user|credential` against the real
//! binary, then a reader key and a token (from `POST /v3/auth/tokens`) read a job.

use std::io::Write;
use std::process::{Command, Stdio};

use jobd_test_support::server::{Server, ACCESS_KEY, SECRET_KEY};
use serde_json::{json, Value};

fn jobd(base: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jobd"))
        .args(args)
        .env("JOBD_ENDPOINT", base)
        .env("JOBD_ACCESS_KEY", ACCESS_KEY)
        .env("JOBD_SECRET_KEY", SECRET_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    (output.status.success(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

/// `jobd user create NAME --domain acme --password-stdin` as a reader of `project_id` (with
/// `extra` arguments), which must succeed; answers the user as printed.
fn create_reader_with_password(base: &str, project_id: &str, name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["user", "create", "--name", name, "--domain", "acme", "--password-stdin"];
    args.extend(["--project", project_id, "--role", "reader"]);
    args.extend_from_slice(extra);
    args.push("--json");
    let (ok, out, err) = jobd(base, &args, Some("a long password\n"));
    assert!(ok, "{err}");
    json_of(&out)
}

fn json_of(stdout: &str) -> Value {
    assert_eq!(stdout.lines().count(), 1, "--json prints one JSON object: {stdout}");
    serde_json::from_str(stdout).unwrap()
}

#[tokio::test]
async fn a_new_user_sets_up_a_tenant_and_reads_a_job_with_a_key_and_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.wait_healthy().await;
    let base = server.base.clone();

    let (ok, out, err) = jobd(&base, &["project", "create", "--name", "team-a", "--json"], None);
    assert!(ok, "{err}");
    let project = json_of(&out);
    let project_id = project["id"].as_str().unwrap().to_owned();
    assert_eq!(project["name"], "team-a");
    assert!(project_id.len() == 32 && project_id.bytes().all(|b| b.is_ascii_hexdigit()));

    let ann = create_reader_with_password(&base, &project_id, "ann", &[]);
    assert_eq!(ann["name"], "ann");
    assert_eq!(ann["enterprise_project_ids"], json!([]), "root's user sees every enterprise project");
    let ben = create_reader_with_password(&base, &project_id, "ben", &["--enterprise-project", "EPS-A"]);
    assert_eq!(ben["enterprise_project_ids"], json!(["eps-a"]), "a user limited to an enterprise project");
    let (ok, _, err) = jobd(
        &base,
        &["user", "create", "--name", "x", "--domain", "acme", "--project", &project_id, "--role", "reader"],
        None,
    );
    assert!(!ok && err.contains("--password-stdin"), "a password is never a flag: {err}");

    let (ok, out, err) =
        jobd(&base, &["credential", "create", "--project", &project_id, "--role", "reader", "--json"], None);
    assert!(ok, "{err}");
    let credential = json_of(&out);
    let (ak, sk) = (credential["access_key"].as_str().unwrap(), credential["secret_key"].as_str().unwrap());
    let (ok, out, _) = jobd(&base, &["credential", "list", "--json"], None);
    assert!(ok && out.contains(ak) && !out.contains(sk), "listing never shows a secret");

    // A job to read, made by root.
    let endpoint = server.endpoint();
    let (status, created) = endpoint
        .call("POST", &format!("/v1/{project_id}/jobs"), Some(json!({"service": "elb", "job_type": "UPGRADE"})))
        .await
        .unwrap();
    assert_eq!(status, 201);
    let job_id = created["job"]["job_id"].as_str().unwrap();

    // The reader key reads it, and cannot create.
    let reader = endpoint.with_key(ak, sk);
    let (status, body) = reader.call("GET", &format!("/v3/{project_id}/elb/jobs/{job_id}"), None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _) = reader
        .call("POST", &format!("/v1/{project_id}/jobs"), Some(json!({"service": "elb", "job_type": "UPGRADE"})))
        .await
        .unwrap();
    assert_eq!(status, 403);

    // A token for the user, as curl would get it, reads the job too.
    let http = reqwest::Client::new();
    let token_request = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "ann", "password": "a long password", "domain": {"name": "acme"}}}},
        "scope": {"project": {"name": "team-a"}}}});
    let response =
        http.post(format!("{base}/v3/auth/tokens?nocatalog=true")).json(&token_request).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let token = response.headers()["x-subject-token"].to_str().unwrap().to_owned();
    let response = http
        .get(format!("{base}/v3/{project_id}/elb/jobs/{job_id}"))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Disabled keys stop working.
    let (ok, _, err) = jobd(&base, &["credential", "disable", ak], None);
    assert!(ok, "{err}");
    let (status, _) = reader.call("GET", &format!("/v3/{project_id}/elb/jobs/{job_id}"), None).await.unwrap();
    assert_eq!(status, 401);

    // Errors come back readable, with the request id.
    let (ok, _, err) = jobd(&base, &["project", "create", "--name", "team-a"], None);
    assert!(!ok && err.contains("409") && err.contains("request"), "{err}");

    // Nothing secret ever reached the server's (debug-level) log.
    let log = std::fs::read_to_string(jobd_test_support::server::log_path(dir.path())).unwrap();
    assert!(log.contains("request answered"), "the log was written");
    for secret in [sk, SECRET_KEY, "a long password", token.as_str()] {
        assert!(!log.contains(secret), "a secret appears in the log: {secret}");
    }
}

#[tokio::test]
async fn user_mfa_bind_prints_a_device_whose_codes_then_guard_the_users_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.wait_healthy().await;
    let base = server.base.clone();
    let (ok, out, err) = jobd(&base, &["project", "create", "--name", "team-m", "--json"], None);
    assert!(ok, "{err}");
    let project_id = json_of(&out)["id"].as_str().unwrap().to_owned();
    let user_id = create_reader_with_password(&base, &project_id, "mo", &[])["id"].as_str().unwrap().to_owned();

    let (ok, out, err) = jobd(&base, &["user", "mfa", "bind", &user_id], None);
    assert!(ok, "{err}");
    let uri = out.lines().next().unwrap().to_owned();
    assert!(uri.starts_with("otpauth://totp/jobd:mo%40acme?secret="), "{out}");
    assert!(out.contains("shown this once"), "{out}");
    let device = totp_rs::TOTP::from_url(&uri).unwrap();
    let (ok, out, _) = jobd(&base, &["user", "list", "--json"], None);
    assert!(ok);
    assert_eq!(json_of(&out)["users"][0]["mfa"], true);
    let (ok, _, err) = jobd(&base, &["user", "mfa", "bind", "no-such-user"], None);
    assert!(!ok && err.contains("404"), "{err}");

    let http = reqwest::Client::new();
    let token_request = |totp: Option<Value>| {
        let mut methods = vec!["password"];
        let mut identity = json!({"password": {"user": {
            "name": "mo", "password": "a long password", "domain": {"name": "acme"}}}});
        if let Some(totp) = totp {
            methods.push("totp");
            identity["totp"] = totp;
        }
        identity["methods"] = json!(methods);
        json!({"auth": {"identity": identity, "scope": {"project": {"id": project_id}}}})
    };
    let post = |body: Value| {
        let http = http.clone();
        let url = format!("{base}/v3/auth/tokens?nocatalog=true");
        async move { http.post(url).json(&body).send().await.unwrap() }
    };
    // Password alone: refused now.
    let refused = post(token_request(None)).await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("MFA"), "{body}");
    // The current code: a token whose methods say both were verified.
    let code = device.generate_current().unwrap();
    let proof = json!({"user": {"id": user_id, "passcode": code}});
    let issued = post(token_request(Some(proof.clone()))).await;
    assert_eq!(issued.status(), 201);
    let body: Value = issued.json().await.unwrap();
    assert_eq!(body["token"]["methods"], json!(["password", "totp"]));
    // The same code once more: refused.
    assert_eq!(post(token_request(Some(proof))).await.status(), 401);

    // The device's secret never reached the server's log.
    let secret = uri.split("secret=").nth(1).unwrap().split('&').next().unwrap();
    let log = std::fs::read_to_string(jobd_test_support::server::log_path(dir.path())).unwrap();
    assert!(!log.contains(secret), "the MFA secret appears in the log");
}
