//! IAM tokens over a real HTTP socket (the router served on loopback, with the test's clock):
//! issue, use on all three dialects, scope, expire, revoke, tamper; and `GET /v3/projects`.

mod common;

use common::TestApp;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use jobd_auth::identity::Role;
use serde_json::{json, Value};

struct Live {
    app: TestApp,
    base: String,
    http: reqwest::Client,
}

async fn live() -> Live {
    let app = TestApp::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Live { app, base, http: reqwest::Client::new() }
}

impl Live {
    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        (status, headers, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
    }

    async fn token(&self, user: &str, password: &str, scope: Value) -> (StatusCode, HeaderMap, Value) {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"name": "acme"}}}}, "scope": {"project": scope}}});
        self.call(Method::POST, "/v3/auth/tokens?nocatalog=true", &[], Some(body)).await
    }
}

fn subject(headers: &HeaderMap) -> String {
    headers.get("x-subject-token").unwrap().to_str().unwrap().to_owned()
}

#[tokio::test]
async fn tokens_are_issued_used_scoped_expired_revoked_and_not_forgeable() {
    let live = live().await;
    let identity = &live.app.identity;
    let own = identity.create_project("cn-north-4").await.unwrap();
    let other = identity.create_project("other").await.unwrap();
    identity.create_user("ann", "acme", "s3cret-password", &own.id, Role::Producer, &[]).await.unwrap();
    identity.create_user("rita", "acme", "s3cret-password", &own.id, Role::Reader, &[]).await.unwrap();

    let (status, headers, body) = live.token("ann", "s3cret-password", json!({"name": "cn-north-4"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = subject(&headers);
    let t = &body["token"];
    assert_eq!(t["project"]["id"], own.id);
    assert_eq!(t["user"]["name"], "ann");
    assert_eq!(t["methods"], json!(["password"]));
    assert_eq!(t["roles"][0]["name"], "producer");
    assert!(t["expires_at"].as_str().unwrap().ends_with('Z') && t.get("catalog").is_none());
    let (_, _, with_catalog) = live
        .call(Method::POST, "/v3/auth/tokens", &[], Some(json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "ann", "password": "s3cret-password", "domain": {"name": "acme"}}}}, "scope": {"project": {"id": own.id}}}})))
        .await;
    assert!(with_catalog["token"]["catalog"].as_array().is_some_and(|c| !c.is_empty()));

    let (status, _, body) = live.token("ann", "wrong", json!({"id": own.id})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], 401);
    let (status, _, _) = live.token("ann", "s3cret-password", json!({"id": other.id})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a user's token is only for its own project");

    // Use the token: create jobs, read them in all three dialects.
    let auth = [("x-auth-token", token.as_str())];
    let mut ids = Vec::new();
    for service in ["cfw", "waf", "elb"] {
        let (status, _, body) = live
            .call(
                Method::POST,
                &format!("/v1/{}/jobs", own.id),
                &auth,
                Some(json!({"service": service, "job_type": "T"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["job"]["job_id"].as_str().unwrap().to_owned());
    }
    for path in [
        format!("/v3/{}/jobs/{}", own.id, ids[0]),
        format!("/v1/{}/waf/async-job/{}", own.id, ids[1]),
        format!("/v3/{}/elb/jobs/{}", own.id, ids[2]),
    ] {
        let (status, headers, body) = live.call(Method::GET, &path, &auth, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(headers.contains_key("x-request-id"));
    }
    let (status, _, body) = live.call(Method::GET, &format!("/v3/{}/elb/jobs", other.id), &auth, None).await;
    assert_eq!((status, body["error_code"].as_str()), (StatusCode::FORBIDDEN, Some("APIGW.0302")));

    // A reader's token reads but cannot create.
    let (_, headers, _) = live.token("rita", "s3cret-password", json!({"id": own.id})).await;
    let reader = subject(&headers);
    let (status, _, _) = live
        .call(
            Method::POST,
            &format!("/v1/{}/jobs", own.id),
            &[("x-auth-token", &reader)],
            Some(json!({"service": "cfw", "job_type": "T"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The caller's projects, by name, as an SDK resolves its project id.
    let (status, _, body) = live.call(Method::GET, "/v3/projects?name=cn-north-4", &auth, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["projects"],
        json!([{"id": own.id, "name": "cn-north-4", "enabled": true, "description": "", "is_domain": false}])
    );
    let (_, _, body) = live.call(Method::GET, "/v3/projects?name=other", &auth, None).await;
    assert_eq!(body["projects"], json!([]), "only the caller's projects");

    // Tampered and unknown tokens.
    let mut tampered = token.clone();
    tampered.replace_range(10..11, if &token[10..11] == "A" { "B" } else { "A" });
    for bad in [tampered.as_str(), "jobd1.nonsense", ""] {
        let (status, _, body) =
            live.call(Method::GET, &format!("/v3/{}/elb/jobs", own.id), &[("x-auth-token", bad)], None).await;
        assert_eq!((status, body["error_code"].as_str()), (StatusCode::UNAUTHORIZED, Some("APIGW.0301")), "{bad}");
    }

    // Revoke: the holder revokes its own token; it stops working at once.
    let (status, _, _) = live
        .call(Method::DELETE, "/v3/auth/tokens", &[("x-auth-token", &reader), ("x-subject-token", &reader)], None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) =
        live.call(Method::GET, &format!("/v3/{}/elb/jobs", own.id), &[("x-auth-token", &reader)], None).await;
    assert_eq!((status, body["error_code"].as_str()), (StatusCode::UNAUTHORIZED, Some("APIGW.0301")));
    let (status, _, _) = live
        .call(Method::DELETE, "/v3/auth/tokens", &[("x-auth-token", &token), ("x-subject-token", "jobd1.other")], None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only an admin revokes another's token");

    // Expiry (24 h by default), on the test's clock.
    live.app.clock.set_ms(24 * 3600 * 1000);
    let (status, _, body) = live.call(Method::GET, &format!("/v3/{}/elb/jobs", own.id), &auth, None).await;
    assert_eq!((status, body["error_code"].as_str()), (StatusCode::UNAUTHORIZED, Some("APIGW.0307")));
}

#[tokio::test]
async fn admin_api_manages_projects_users_and_credentials() {
    let live = live().await;
    let app = &live.app;
    let created = app.signed(Method::POST, "/v1/admin/projects", Some(json!({"name": "team-a"}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let project_id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(project_id.len(), 32);
    assert!(project_id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        app.signed(Method::POST, "/v1/admin/projects", Some(json!({"name": "team-a"}))).await.status,
        StatusCode::CONFLICT
    );

    let user = app
        .signed(Method::POST, "/v1/admin/users", Some(json!({"name": "bob", "domain": "acme", "password": "long enough pw", "project_id": project_id, "role": "reader"})))
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{}", user.body);
    assert!(user.body.get("password").is_none() && user.body.get("password_hash").is_none());
    let bad_role = app
        .signed(Method::POST, "/v1/admin/users", Some(json!({"name": "x", "domain": "acme", "password": "long enough pw", "project_id": project_id, "role": "owner"})))
        .await;
    assert_eq!(bad_role.status, StatusCode::BAD_REQUEST);

    let credential = app
        .signed(
            Method::POST,
            "/v1/admin/credentials",
            Some(json!({"project_ids": [project_id], "role": "producer", "enterprise_project_ids": ["0"]})),
        )
        .await;
    assert_eq!(credential.status, StatusCode::CREATED);
    let (ak, sk) = (credential.body["access_key"].as_str().unwrap(), credential.body["secret_key"].as_str().unwrap());
    let listed = app.signed(Method::GET, "/v1/admin/credentials", None).await;
    let listed_text = listed.body.to_string();
    assert!(listed_text.contains(ak) && !listed_text.contains(sk), "the secret is shown once, never listed");
    let works = app
        .signed_as(
            ak,
            sk,
            Method::POST,
            &format!("/v1/{project_id}/jobs"),
            Some(json!({"service": "cfw", "job_type": "T"})),
        )
        .await;
    assert_eq!(works.status, StatusCode::CREATED);
    assert_eq!(
        app.signed(Method::POST, &format!("/v1/admin/credentials/{ak}/disable"), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.signed_as(ak, sk, Method::GET, &format!("/v1/{project_id}/jobs"), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.signed(Method::DELETE, &format!("/v1/admin/credentials/{ak}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.signed(Method::DELETE, &format!("/v1/admin/credentials/{ak}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    let users = app.signed(Method::GET, "/v1/admin/users", None).await;
    let user_id = users.body["users"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.signed(Method::DELETE, &format!("/v1/admin/users/{user_id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    let _ = HeaderValue::from_static("x");
}

/// Issue #16, item 10: revoking needs the right over the token's own scope. A key of project B that
/// holds a project-A token may not revoke it by also sending it as `X-Auth-Token` (the signature is
/// what authenticates it; the header proves nothing).
#[tokio::test]
async fn a_key_of_another_project_cannot_revoke_a_token_it_holds() {
    let app = common::TestApp::new().await;
    let project_a = app.identity.create_project("a").await.unwrap();
    let project_b = app.identity.create_project("b").await.unwrap();
    app.identity.create_user("ann", "acme", "s3cret-password", &project_a.id, Role::Reader, &[]).await.unwrap();
    let token = app.issue_token("acme", "ann", "s3cret-password", &project_a.id).await;
    for role in [Role::Reader, Role::Admin] {
        let key_b =
            app.identity.create_credential("root", std::slice::from_ref(&project_b.id), role, &[]).await.unwrap();
        let (ak, sk) = (key_b.record.access_key.as_str(), key_b.secret_key.as_str());
        let headers = [("x-auth-token", token.as_str()), ("x-subject-token", token.as_str())];
        let answer = app.signed_as_with_headers(ak, sk, Method::DELETE, "/v3/auth/tokens", &headers).await;
        let expected = if role == Role::Admin { StatusCode::NOT_FOUND } else { StatusCode::FORBIDDEN };
        assert_eq!(answer.status, expected, "a {role} key of project B: {}", answer.body);
        assert!(app.identity.resolve_token(&token).await.is_ok(), "the project-A token still works");
    }
    // Its holder may, and a project-A admin may.
    let own =
        app.with_token_and_headers(&token, Method::DELETE, "/v3/auth/tokens", &[("x-subject-token", &token)]).await;
    assert_eq!(own.status, StatusCode::NO_CONTENT);
    assert!(app.identity.resolve_token(&token).await.is_err());
    let second = app.issue_token("acme", "ann", "s3cret-password", &project_a.id).await;
    let admin_a =
        app.identity.create_credential("root", std::slice::from_ref(&project_a.id), Role::Admin, &[]).await.unwrap();
    let (ak, sk) = (admin_a.record.access_key.as_str(), admin_a.secret_key.as_str());
    let answer =
        app.signed_as_with_headers(ak, sk, Method::DELETE, "/v3/auth/tokens", &[("x-subject-token", &second)]).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    assert!(app.identity.resolve_token(&second).await.is_err());
}
