//! The isolation matrix: every authenticated route × every role × own project / other project /
//! another enterprise project, with the status each must get. The routes are the server's own
//! declarations (`jobd_api::endpoints()`), so a new route without a request template here fails
//! this test.

mod common;

use common::{TestApp, PROJECT};
use http::{HeaderMap, Method, StatusCode};
use jobd_api::endpoints;
use jobd_auth::identity::Role;
use serde_json::{json, Value};

struct Fixture {
    own: String,
    other: String,
    keys: Vec<(Role, String, String)>,
    /// A key of the own project limited to enterprise project "eps-a".
    eps_limited: (String, String),
    own_job: String,
    other_job: String,
    other_eps_job: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let own = app.identity.create_project("own").await.unwrap().id;
    let other = app.identity.create_project("other").await.unwrap().id;
    let mut keys = Vec::new();
    for role in Role::ALL {
        let created = app.identity.create_credential("test", std::slice::from_ref(&own), role, &[]).await.unwrap();
        keys.push((role, created.record.access_key, created.secret_key));
    }
    let limited = app
        .identity
        .create_credential("test", std::slice::from_ref(&own), Role::Admin, &["eps-a".into()])
        .await
        .unwrap();
    let create = |project: &str, eps: &str| {
        let url = format!("/v1/{project}/jobs");
        let body = json!({"service": "elb", "job_type": "UPGRADE", "enterprise_project_id": eps});
        async move {
            let answer = app.signed(Method::POST, &url, Some(body)).await;
            answer.body["job"]["job_id"].as_str().unwrap().to_owned()
        }
    };
    Fixture {
        own_job: create(&own, "eps-a").await,
        other_job: create(&other, "eps-a").await,
        other_eps_job: create(&own, "eps-b").await,
        own,
        other,
        keys,
        eps_limited: (limited.record.access_key, limited.secret_key),
    }
}

/// A request for a route: its path with parameters filled in, and a body.
fn request_for(method: &str, route: &str, project: &str, job: &str) -> (Method, String, Option<Value>) {
    let path = route.replace("{project_id}", project).replace("{job_id}", job);
    let method: Method = method.parse().unwrap();
    let body = match (method.as_str(), route) {
        ("POST", "/v1/{project_id}/jobs") => {
            Some(json!({"service": "elb", "job_type": "UPGRADE", "enterprise_project_id": "eps-a"}))
        }
        ("POST", "/v1/{project_id}/jobs/batch") => {
            Some(json!({"jobs": [{"service": "elb", "job_type": "UPGRADE", "enterprise_project_id": "eps-a"}]}))
        }
        ("POST", "/v1/{project_id}/jobs/{job_id}/cancel") => None,
        ("POST", "/v1/worker/claim") => Some(json!({"worker_id": "w", "services": ["cfw"]})),
        ("POST", "/v1/worker/tasks/{job_id}/fail") => {
            Some(json!({"lease_token": "t", "error_code": "E", "error_msg": "m"}))
        }
        // The task is named in the body: the project check is per report (see the end of the matrix).
        ("POST", "/v1/worker/tasks/batch") => {
            Some(json!({"reports": [{"job_id": job, "lease_token": "t", "outcome": "complete"}]}))
        }
        ("POST", r) if r.starts_with("/v1/worker/tasks/") => Some(json!({"lease_token": "t"})),
        ("POST", "/v1/admin/projects") => Some(json!({"name": format!("p{}", uuid::Uuid::new_v4().simple())})),
        ("POST", "/v1/admin/users") => Some(
            json!({"name": "u", "domain": "d", "password": "a long password", "project_id": project, "role": "reader"}),
        ),
        ("POST", "/v1/admin/credentials") => Some(json!({"project_ids": [project], "role": "reader"})),
        ("GET" | "DELETE", _) => None,
        ("POST", r) if r.starts_with("/v1/admin/credentials/") => None,
        ("POST", "/v1/admin/users/{user_id}/mfa") => None,
        _ => panic!("no request template for {method} {route}: add one (and think about who may call it)"),
    };
    let path = path.replace("{user_id}", "nobody").replace("{access_key}", "NOSUCHKEY");
    let path = if route == "/v1/{project_id}/waf/async-job/{job_id}" {
        format!("{path}?enterpriseProjectId=all_granted_eps")
    } else {
        path
    };
    (method, path, body)
}

fn job_in_path(route: &str) -> bool {
    route.contains("{job_id}")
}

#[tokio::test]
async fn every_route_every_role_every_tenant() {
    let app = TestApp::new().await;
    let f = fixture(&app).await;
    let mut rows = 0;
    let authenticated: Vec<_> = endpoints().filter(|endpoint| endpoint.access.is_authenticated()).collect();
    for endpoint in &authenticated {
        let (method, route, action) = (&endpoint.method.as_str(), &endpoint.path, endpoint.access.action());
        if *method == "DELETE" && *route == "/v3/auth/tokens" {
            continue; // token revocation is covered by the token tests (it needs a token)
        }
        let has_project = route.contains("{project_id}");
        for (role, ak, sk) in &f.keys {
            // Every key here is scoped to one project, and only root creates projects.
            let root_only = *method == "POST" && *route == "/v1/admin/projects";
            let allowed = action.is_none_or(|action| role.allows(action)) && !root_only;
            // Own project, own enterprise project.
            let (m, path, body) = request_for(method, route, &f.own, &f.own_job);
            if route.ends_with("/events") {
                // A stream: only its status matters here.
                let status = app.status_as(ak, sk, m, &path).await;
                rows += 1;
                let expected_refusal = !allowed;
                assert_eq!(status == StatusCode::FORBIDDEN, expected_refusal, "{role} {method} {route}: {status}");
                continue;
            }
            let answer = app.signed_as(ak, sk, m, &path, body).await;
            rows += 1;
            if allowed {
                assert!(
                    !matches!(answer.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                    "{role} {method} {route} (own project) was refused: {} {}",
                    answer.status,
                    answer.body
                );
            } else {
                assert_eq!(answer.status, StatusCode::FORBIDDEN, "{role} {method} {route}: {}", answer.body);
                assert_eq!(answer.body["error_code"], "APIGW.0302");
            }
            if has_project {
                // Another project: refused before anything is looked up, whether the job exists or not.
                for job in [&f.other_job, "00000000-0000-4000-8000-000000000000"] {
                    let (m, path, body) = request_for(method, route, &f.other, job);
                    if route.ends_with("/events") {
                        assert_eq!(app.status_as(ak, sk, m, &path).await, StatusCode::FORBIDDEN, "{route}");
                        continue;
                    }
                    let answer = app.signed_as(ak, sk, m, &path, body).await;
                    rows += 1;
                    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{role} {method} {route} (other project)");
                    assert_eq!(answer.body["error_code"], "APIGW.0302");
                }
            }
        }
        // A key limited to enterprise project eps-a: jobs of eps-b are not found.
        if has_project && job_in_path(route) {
            let (ak, sk) = &f.eps_limited;
            let (m, path, body) = request_for(method, route, &f.own, &f.other_eps_job);
            let answer = app.signed_as(ak, sk, m, &path, body).await;
            rows += 1;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{method} {route} (other enterprise project): {}",
                answer.body
            );
        }
    }
    // Worker calls on a task of another project, or another enterprise project: not found.
    let limited_worker = app
        .identity
        .create_credential("test", std::slice::from_ref(&f.own), Role::Worker, &["eps-a".into()])
        .await
        .unwrap();
    let (wak, wsk) = (limited_worker.record.access_key.as_str(), limited_worker.secret_key.as_str());
    let claimed = app
        .signed_as(
            wak,
            wsk,
            Method::POST,
            "/v1/worker/claim",
            Some(json!({"worker_id": "w", "services": ["elb"], "max_tasks": 10})),
        )
        .await;
    let claimed_ids: Vec<&str> =
        claimed.body["tasks"].as_array().unwrap().iter().map(|t| t["job_id"].as_str().unwrap()).collect();
    assert!(!claimed_ids.is_empty());
    let own_project = jobd_core::ProjectId::parse(&f.own).unwrap();
    for id in &claimed_ids {
        let job = app.service.get(&own_project, &jobd_core::JobId::parse(id).unwrap()).await.unwrap();
        assert_eq!(job.enterprise_project_id, "eps-a", "a worker limited to eps-a claims only eps-a tasks");
    }
    assert!(!claimed_ids.contains(&f.other_eps_job.as_str()));
    let (m, path, body) = request_for("POST", "/v1/worker/tasks/{job_id}/heartbeat", &f.own, &f.other_eps_job);
    assert_eq!(app.signed_as(wak, wsk, m, &path, body).await.status, StatusCode::NOT_FOUND);
    let worker = f.keys.iter().find(|(role, _, _)| *role == Role::Worker).unwrap();
    let (m, path, body) = request_for("POST", "/v1/worker/tasks/{job_id}/heartbeat", &f.own, &f.other_job);
    let answer = app.signed_as(&worker.1, &worker.2, m, &path, body).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // The same in a batch: the report's own slot answers 404.
    for ((ak, sk), job) in [((wak, wsk), &f.other_eps_job), ((worker.1.as_str(), worker.2.as_str()), &f.other_job)] {
        let (m, path, body) = request_for("POST", "/v1/worker/tasks/batch", &f.own, job);
        let answer = app.signed_as(ak, sk, m, &path, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body["results"][0]["status"], 404, "{}", answer.body);
    }
    println!("isolation matrix: {rows} requests checked over {} routes", authenticated.len());
}

#[tokio::test]
async fn enterprise_project_limits_apply_to_lists_waf_and_create() {
    let app = TestApp::new().await;
    let f = fixture(&app).await;
    let (ak, sk) = &f.eps_limited;
    let list = app.signed_as(ak, sk, Method::GET, &format!("/v1/{}/jobs", f.own), None).await;
    let ids: Vec<&str> = list.body["jobs"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![f.own_job.as_str()], "only granted enterprise projects are listed");
    let elb = app.signed_as(ak, sk, Method::GET, &format!("/v3/{}/elb/jobs", f.own), None).await;
    assert_eq!(elb.body["page_info"]["current_count"], 1);
    let create = app
        .signed_as(
            ak,
            sk,
            Method::POST,
            &format!("/v1/{}/jobs", f.own),
            Some(json!({"service": "cfw", "job_type": "x", "enterprise_project_id": "eps-b"})),
        )
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    let _ = PROJECT;
}

#[tokio::test]
async fn disabled_and_unknown_keys_and_stale_dates_are_401() {
    let app = TestApp::new().await;
    let f = fixture(&app).await;
    let (_, ak, sk) = &f.keys[0];
    let url = format!("/v3/{}/elb/jobs", f.own);
    assert_eq!(app.signed_as(ak, sk, Method::GET, &url, None).await.status, StatusCode::OK);
    app.identity.set_credential_enabled(ak, false).await.unwrap();
    let disabled = app.signed_as(ak, sk, Method::GET, &url, None).await;
    assert_eq!((disabled.status, disabled.body["error_code"].as_str()), (StatusCode::UNAUTHORIZED, Some("APIGW.0301")));
    let unknown = app.signed_as("NOSUCHKEY", sk, Method::GET, &url, None).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    // A request signed 16 minutes ago and replayed now is refused.
    let (_, ak, sk) = &f.keys[1];
    let mut headers = HeaderMap::new();
    headers.insert("host", "127.0.0.1:8080".parse().unwrap());
    let signed_at = jobd_core::Clock::now(&app.clock) - chrono::Duration::minutes(16);
    jobd_auth::Signer::new(ak.clone(), sk.clone()).sign("GET", &url, None, &mut headers, b"", signed_at).unwrap();
    let replay = app.send(Method::GET, &url, headers, vec![]).await;
    assert_eq!((replay.status, replay.body["error_code"].as_str()), (StatusCode::UNAUTHORIZED, Some("APIGW.0301")));
}

#[tokio::test]
async fn repeated_signature_failures_lock_the_key_for_a_while() {
    let app = TestApp::new().await;
    let f = fixture(&app).await;
    let (_, ak, sk) = &f.keys[0];
    let url = format!("/v3/{}/elb/jobs", f.own);
    for _ in 0..10 {
        assert_eq!(app.signed_as(ak, "wrong", Method::GET, &url, None).await.status, StatusCode::UNAUTHORIZED);
    }
    let locked = app.signed_as(ak, sk, Method::GET, &url, None).await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED, "even the right secret is refused while locked");
    assert!(locked.body["error_msg"].as_str().unwrap().contains("locked"));
    app.clock.set_ms(61_000);
    assert_eq!(app.signed_as(ak, sk, Method::GET, &url, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let identity = jobd_service::identity::IdentityConfig { rate_limit_per_second: 2, ..Default::default() };
    let app = TestApp::with_identity_config(Default::default(), identity).await;
    let url = format!("/v3/{PROJECT}/elb/jobs");
    let statuses: Vec<StatusCode> = {
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(app.get(&url).await.status);
        }
        statuses
    };
    assert_eq!(&statuses[..4], &[StatusCode::OK; 4], "a burst of twice the rate passes");
    let limited = app.get(&url).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["error_code"], "APIGW.0308");
    assert!(limited.headers.get("retry-after").is_some());
    app.clock.set_ms(5_000);
    assert_eq!(app.get(&url).await.status, StatusCode::OK, "the bucket refills with time");
}

#[tokio::test]
async fn an_admin_of_one_project_manages_only_that_project() {
    let app = TestApp::new().await;
    let f = fixture(&app).await;
    let (_, ak, sk) = f.keys.iter().find(|(role, _, _)| *role == Role::Admin).unwrap();
    let other_key =
        app.identity.create_credential("root", std::slice::from_ref(&f.other), Role::Reader, &[]).await.unwrap();
    app.identity.create_user("bob", "acme", "a long password", &f.other, Role::Reader, &[]).await.unwrap();

    let create_project = app.signed_as(ak, sk, Method::POST, "/v1/admin/projects", Some(json!({"name": "mine"}))).await;
    assert_eq!(create_project.status, StatusCode::FORBIDDEN, "only root creates projects");
    let elsewhere = app
        .signed_as(
            ak,
            sk,
            Method::POST,
            "/v1/admin/credentials",
            Some(json!({"project_ids": [f.other], "role": "admin"})),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    let user_elsewhere = app
        .signed_as(ak, sk, Method::POST, "/v1/admin/users", Some(json!({"name": "x", "domain": "acme", "password": "a long password", "project_id": f.other, "role": "reader"})))
        .await;
    assert_eq!(user_elsewhere.status, StatusCode::FORBIDDEN);
    let own = app
        .signed_as(
            ak,
            sk,
            Method::POST,
            "/v1/admin/credentials",
            Some(json!({"project_ids": [f.own], "role": "reader"})),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED);

    for (list, key) in
        [("/v1/admin/projects", "projects"), ("/v1/admin/credentials", "credentials"), ("/v1/admin/users", "users")]
    {
        let answer = app.signed_as(ak, sk, Method::GET, list, None).await;
        let text = answer.body[key].to_string();
        assert!(!text.contains(&f.other), "{list} shows nothing of another project: {text}");
    }
    let other_ak = &other_key.record.access_key;
    for (method, path) in [
        (Method::POST, format!("/v1/admin/credentials/{other_ak}/disable")),
        (Method::DELETE, format!("/v1/admin/credentials/{other_ak}")),
    ] {
        assert_eq!(app.signed_as(ak, sk, method, &path, None).await.status, StatusCode::NOT_FOUND);
    }
    let bob = app.identity.list_users().await.unwrap().into_iter().find(|u| u.name == "bob").unwrap();
    let delete_bob = app.signed_as(ak, sk, Method::DELETE, &format!("/v1/admin/users/{}", bob.user_id), None).await;
    assert_eq!(delete_bob.status, StatusCode::NOT_FOUND);
    assert!(app.identity.list_credentials().await.unwrap().iter().any(|c| &c.access_key == other_ak && c.enabled));
}

#[tokio::test]
async fn bad_signatures_with_root_s_key_lock_out_only_the_address_that_sent_them() {
    let app = TestApp::new().await;
    let url = format!("/v3/{PROJECT}/elb/jobs");
    let (attacker, operator) = (([10, 0, 0, 1], 1).into(), ([10, 0, 0, 2], 1).into());
    for _ in 0..12 {
        app.signed_as_from(attacker, common::ACCESS_KEY, "wrong", Method::GET, &url, None).await;
        app.signed_as_from(attacker, "NOSUCHKEY", "x", Method::GET, &url, None).await;
    }
    let root = (common::ACCESS_KEY, common::SECRET_KEY);
    let locked = app.signed_as_from(attacker, root.0, root.1, Method::GET, &url, None).await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED, "the failing address is locked out, even with root's key");
    let answer = app.signed_as_from(operator, root.0, root.1, Method::GET, &url, None).await;
    assert_eq!(answer.status, StatusCode::OK, "root is not locked for anyone else");
    assert_eq!(app.get(&url).await.status, StatusCode::OK);
}

/// Who acts in the principal-management tests: a signed key or a user's token.
enum Actor {
    Key { access_key: String, secret_key: String },
    Token(String),
}

impl Actor {
    fn key((access_key, secret_key): &(String, String)) -> Self {
        Actor::Key { access_key: access_key.clone(), secret_key: secret_key.clone() }
    }

    async fn call(&self, app: &TestApp, method: Method, uri: &str, body: Option<Value>) -> common::Answer {
        match self {
            Actor::Key { access_key, secret_key } => app.signed_as(access_key, secret_key, method, uri, body).await,
            Actor::Token(token) => app.with_token(token, method, uri, body).await,
        }
    }

    /// Revokes a token (`DELETE /v3/auth/tokens` with `X-Subject-Token`).
    async fn revoke(&self, app: &TestApp, subject: &str) -> common::Answer {
        let extra = [("x-subject-token", subject)];
        match self {
            Actor::Key { access_key, secret_key } => {
                app.signed_as_with_headers(access_key, secret_key, Method::DELETE, "/v3/auth/tokens", &extra).await
            }
            Actor::Token(token) => app.with_token_and_headers(token, Method::DELETE, "/v3/auth/tokens", &extra).await,
        }
    }
}

fn user_body(name: &str, project: &str, role: &str, enterprise_project_ids: Option<&[&str]>) -> Value {
    let mut body = json!({"name": name, "domain": "acme", "password": "a long password", "project_id": project,
                          "role": role});
    if let Some(ids) = enterprise_project_ids {
        body["enterprise_project_ids"] = json!(ids);
    }
    body
}

fn assert_refused(answer: &common::Answer, what: &str) {
    assert_eq!(
        (answer.status, answer.body["error_code"].as_str()),
        (StatusCode::FORBIDDEN, Some("APIGW.0302")),
        "{what}: {}",
        answer.body
    );
}

/// Issue #16, item 1: an admin key limited to enterprise project eps-a creates an admin user; that
/// user's token must stay inside eps-a (no eps-b job read or cancelled, no unrestricted key minted),
/// and the limited key may not list, disable, enable or delete the project's unrestricted admin key.
#[tokio::test]
async fn a_limited_admin_cannot_escape_its_enterprise_projects_through_a_user_it_creates() {
    let app = TestApp::new().await;
    let f = fixture(&app).await;
    let limited = Actor::key(&f.eps_limited);
    let created =
        limited.call(&app, Method::POST, "/v1/admin/users", Some(user_body("eve", &f.own, "admin", None))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["enterprise_project_ids"], json!(["eps-a"]), "the user inherits its creator's limit");
    let eve = Actor::Token(app.issue_token("acme", "eve", "a long password", &f.own).await);

    for (method, path) in [
        (Method::GET, format!("/v1/{}/jobs/{}", f.own, f.other_eps_job)),
        (Method::GET, format!("/v3/{}/elb/jobs/{}", f.own, f.other_eps_job)),
        (Method::POST, format!("/v1/{}/jobs/{}/cancel", f.own, f.other_eps_job)),
    ] {
        let answer = eve.call(&app, method.clone(), &path, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path} with the user's token: {}", answer.body);
    }
    let own_project = jobd_core::ProjectId::parse(&f.own).unwrap();
    let eps_b_job = app.service.get(&own_project, &jobd_core::JobId::parse(&f.other_eps_job).unwrap()).await.unwrap();
    assert!(!eps_b_job.status.is_terminal(), "the eps-b job was not cancelled: {:?}", eps_b_job.status);
    let list = eve.call(&app, Method::GET, &format!("/v1/{}/jobs", f.own), None).await;
    let ids: Vec<&str> = list.body["jobs"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![f.own_job.as_str()], "the token lists only eps-a jobs");

    for actor in [&limited, &eve] {
        let unrestricted = actor
            .call(&app, Method::POST, "/v1/admin/credentials", Some(json!({"project_ids": [f.own], "role": "admin"})))
            .await;
        assert_refused(&unrestricted, "minting an unrestricted admin key");
        let user =
            actor.call(&app, Method::POST, "/v1/admin/users", Some(user_body("mallory", &f.own, "admin", Some(&[]))));
        assert_refused(&user.await, "creating an unrestricted admin user");
    }

    let (_, admin_ak, _) = f.keys.iter().find(|(role, _, _)| *role == Role::Admin).unwrap();
    for actor in [&limited, &eve] {
        let listed = actor.call(&app, Method::GET, "/v1/admin/credentials", None).await;
        assert_eq!(listed.status, StatusCode::OK);
        assert!(!listed.body.to_string().contains(admin_ak.as_str()), "the unrestricted key is not listed");
        for (method, path) in [
            (Method::POST, format!("/v1/admin/credentials/{admin_ak}/disable")),
            (Method::POST, format!("/v1/admin/credentials/{admin_ak}/enable")),
            (Method::DELETE, format!("/v1/admin/credentials/{admin_ak}")),
        ] {
            assert_refused(&actor.call(&app, method.clone(), &path, None).await, &format!("{method} {path}"));
        }
    }
    let stored = app.identity.get_credential(admin_ak).await.unwrap().expect("the unrestricted key still exists");
    assert!(stored.enabled, "and is still enabled");
}

/// What an admin may do to a principal of some grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Within the admin's reach: created, listed, changed, removed.
    Managed,
    /// In the admin's projects but reaching further (more enterprise projects): 403, not listed.
    Forbidden,
    /// In another project: creating it is 403, changing it 404, never listed.
    Hidden,
}

/// The isolation matrix of principal management: admins of different reach (an unrestricted admin
/// key, a key limited to eps-a, and the tokens of admin users of either kind) × principals of every
/// grant (all enterprise projects, eps-a, eps-b, both, another project) × create, list, disable,
/// enable and delete, for keys and users, and revoking users' tokens.
#[tokio::test]
async fn admins_manage_only_principals_within_their_reach() {
    let app = TestApp::new().await;
    let f = fixture(&app).await;
    for (name, eps) in [("full-admin", &[][..]), ("eps-a-admin", &["eps-a"][..])] {
        let made = app.signed(Method::POST, "/v1/admin/users", Some(user_body(name, &f.own, "admin", Some(eps)))).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    }
    let (_, admin_ak, admin_sk) = f.keys.iter().find(|(role, _, _)| *role == Role::Admin).unwrap();
    let actors = [
        ("unrestricted admin key", Actor::key(&(admin_ak.clone(), admin_sk.clone())), false),
        ("eps-a admin key", Actor::key(&f.eps_limited), true),
        (
            "unrestricted admin user",
            Actor::Token(app.issue_token("acme", "full-admin", "a long password", &f.own).await),
            false,
        ),
        (
            "eps-a admin user",
            Actor::Token(app.issue_token("acme", "eps-a-admin", "a long password", &f.own).await),
            true,
        ),
    ];
    let grants: [(&str, &str, &[&str]); 5] = [
        ("all enterprise projects", &f.own, &[]),
        ("eps-a", &f.own, &["eps-a"]),
        ("eps-b", &f.own, &["eps-b"]),
        ("eps-a and eps-b", &f.own, &["eps-a", "eps-b"]),
        ("another project", &f.other, &[]),
    ];
    let expect = |limited: bool, project: &str, eps: &[&str]| {
        if project != f.own {
            Expect::Hidden
        } else if !limited || eps == ["eps-a"] {
            Expect::Managed
        } else {
            Expect::Forbidden
        }
    };
    let mut rows = 0;
    for (actor_index, (actor_name, actor, limited)) in actors.iter().enumerate() {
        for (grant_index, (grant, project, eps)) in grants.iter().enumerate() {
            let expected = expect(*limited, project, eps);
            let what = format!("{actor_name} on a principal of {grant}");
            let refused_or =
                |status: StatusCode| if expected == Expect::Managed { status } else { StatusCode::FORBIDDEN };

            // Create a key and a user of this grant.
            let key_body = json!({"project_ids": [project], "role": "reader", "enterprise_project_ids": eps});
            let created = actor.call(&app, Method::POST, "/v1/admin/credentials", Some(key_body)).await;
            assert_eq!(created.status, refused_or(StatusCode::CREATED), "{what}: create key: {}", created.body);
            let name = format!("u{actor_index}-{grant_index}");
            let created = actor
                .call(&app, Method::POST, "/v1/admin/users", Some(user_body(&name, project, "reader", Some(eps))))
                .await;
            assert_eq!(created.status, refused_or(StatusCode::CREATED), "{what}: create user: {}", created.body);
            rows += 2;

            // A key and a user of this grant made by root: listed, changed and removed only within reach.
            let owned: Vec<String> = eps.iter().map(|eps| eps.to_string()).collect();
            let key =
                app.identity.create_credential("root", &[project.to_string()], Role::Reader, &owned).await.unwrap();
            let access_key = key.record.access_key;
            let user_name = format!("t{actor_index}-{grant_index}");
            let made = app
                .signed(Method::POST, "/v1/admin/users", Some(user_body(&user_name, project, "reader", Some(eps))))
                .await;
            assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
            let user_id = made.body["id"].as_str().unwrap().to_owned();

            let token = app.issue_token("acme", &user_name, "a long password", project).await;
            let revoked = actor.revoke(&app, &token).await;
            let revoke_status = match expected {
                Expect::Managed => StatusCode::NO_CONTENT,
                Expect::Forbidden => StatusCode::FORBIDDEN,
                Expect::Hidden => StatusCode::NOT_FOUND,
            };
            assert_eq!(revoked.status, revoke_status, "{what}: revoke the user's token: {}", revoked.body);
            let still_valid = app.identity.resolve_token(&token).await.is_ok();
            assert_eq!(still_valid, expected != Expect::Managed, "{what}: the token is revoked only within reach");
            rows += 1;

            let keys = actor.call(&app, Method::GET, "/v1/admin/credentials", None).await;
            let users = actor.call(&app, Method::GET, "/v1/admin/users", None).await;
            let listed = expected == Expect::Managed;
            assert_eq!(keys.body.to_string().contains(&access_key), listed, "{what}: key listed: {}", keys.body);
            assert_eq!(users.body.to_string().contains(&user_id), listed, "{what}: user listed: {}", users.body);
            rows += 2;

            let change = match expected {
                Expect::Managed => StatusCode::NO_CONTENT,
                Expect::Forbidden => StatusCode::FORBIDDEN,
                Expect::Hidden => StatusCode::NOT_FOUND,
            };
            for (method, path) in [
                (Method::POST, format!("/v1/admin/credentials/{access_key}/disable")),
                (Method::POST, format!("/v1/admin/credentials/{access_key}/enable")),
                (Method::DELETE, format!("/v1/admin/credentials/{access_key}")),
                (Method::DELETE, format!("/v1/admin/users/{user_id}")),
            ] {
                let answer = actor.call(&app, method.clone(), &path, None).await;
                assert_eq!(answer.status, change, "{what}: {method} {path}: {}", answer.body);
                if change == StatusCode::FORBIDDEN {
                    assert_eq!(answer.body["error_code"], "APIGW.0302");
                }
                rows += 1;
            }
            let key_left = app.identity.get_credential(&access_key).await.unwrap();
            assert_eq!(key_left.is_none(), listed, "{what}: the key is removed only within reach");
            assert!(key_left.is_none_or(|k| k.enabled), "{what}: a key out of reach stays enabled");
            let user_left = app.identity.list_users().await.unwrap().iter().any(|u| u.user_id == user_id);
            assert_eq!(!user_left, listed, "{what}: the user is removed only within reach");
        }
    }
    println!("principal management matrix: {rows} requests checked");
}
