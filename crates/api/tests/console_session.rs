//! The console's session (`/console/session`) and the session cookie as a proof on the API: the
//! cookie's attributes and lifetime, the Origin check on sign-in, CSRF on state-changing calls,
//! sign-out revoking the token, and the console's security headers.

mod common;

use axum::body::Body;
use common::TestApp;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use jobd_auth::identity::Role;
use serde_json::{json, Value};
use tower::ServiceExt;

const ORIGIN: &str = "http://console.test";
const HOST: &str = "console.test";

struct Fixture {
    app: TestApp,
    project: String,
}

async fn fixture() -> Fixture {
    let app = TestApp::new().await;
    let project = app.identity.create_project("alpha").await.unwrap().id;
    for (name, role) in [("ada", Role::Producer), ("rita", Role::Reader)] {
        app.identity.create_user(name, "acme", "a long password", &project, role, &[]).await.unwrap();
    }
    Fixture { app, project }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("host", HeaderValue::from_static(HOST));
    for (name, value) in pairs {
        headers.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    headers
}

impl Fixture {
    async fn sign_in(&self, name: &str, password: &str, extra: &[(&'static str, &str)]) -> common::Answer {
        let body = json!({"domain": "acme", "name": name, "password": password});
        let mut pairs = vec![("origin", ORIGIN)];
        pairs.extend_from_slice(extra);
        self.app.send(Method::POST, "/console/session", headers(&pairs), serde_json::to_vec(&body).unwrap()).await
    }

    /// Signs in; answers the cookie (`name=value`) and the CSRF token.
    async fn session(&self, name: &str) -> (String, String) {
        let answer = self.sign_in(name, "a long password", &[]).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let cookie = answer.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        (cookie, answer.body["csrf_token"].as_str().unwrap().to_owned())
    }

    async fn with_cookie(
        &self,
        method: Method,
        uri: &str,
        cookie: &str,
        extra: &[(&'static str, &str)],
    ) -> common::Answer {
        let mut pairs = vec![("cookie", cookie)];
        pairs.extend_from_slice(extra);
        self.app.send(method, uri, headers(&pairs), Vec::new()).await
    }

    async fn create(&self) -> String {
        let answer = self
            .app
            .signed(
                Method::POST,
                &format!("/v1/{}/jobs", self.project),
                Some(json!({"service": "svc", "job_type": "T"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["job"]["job_id"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_that_expires_with_the_token() {
    let f = fixture().await;
    let answer = f.sign_in("ada", "a long password", &[]).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let cookie = answer.headers["set-cookie"].to_str().unwrap();
    for attribute in ["jobd_session=", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=86400"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure (the browser would drop it): {cookie}");
    assert_eq!(answer.body["role"], "producer");
    assert_eq!(answer.body["may_cancel"], true);
    assert_eq!(answer.body["project"]["id"], f.project.as_str());
    assert_eq!(answer.body["user"]["name"], "ada");

    // Behind a TLS proxy the cookie is Secure.
    let over_tls = f.sign_in("ada", "a long password", &[("x-forwarded-proto", "https")]).await;
    assert!(over_tls.headers["set-cookie"].to_str().unwrap().contains("Secure"));

    // The session reads back; the CSRF token is the same.
    let (cookie, csrf) = f.session("rita").await;
    let shown = f.with_cookie(Method::GET, "/console/session", &cookie, &[]).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["csrf_token"], csrf.as_str());
    assert_eq!(shown.body["may_cancel"], false, "a reader");

    // The token expires after its lifetime, and the cookie with it.
    f.app.clock.set_ms(86_400_000 + 1);
    let expired = f.with_cookie(Method::GET, &format!("/v1/{}/jobs", f.project), &cookie, &[]).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED, "{}", expired.body);
}

#[tokio::test]
async fn sign_in_is_refused_without_the_password_or_from_another_origin() {
    let f = fixture().await;
    let wrong = f.sign_in("ada", "not the password", &[]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(wrong.headers.get("set-cookie").is_none());
    let body = serde_json::to_vec(&json!({"domain": "acme", "name": "ada", "password": "a long password"})).unwrap();
    for origin in [None, Some("http://evil.test")] {
        let mut pairs = Vec::new();
        if let Some(origin) = origin {
            pairs.push(("origin", origin));
        }
        let answer = f.app.send(Method::POST, "/console/session", headers(&pairs), body.clone()).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "origin {origin:?}: {}", answer.body);
    }
    let missing = f
        .app
        .send(Method::POST, "/console/session", headers(&[("origin", ORIGIN)]), br#"{"name":"ada"}"#.to_vec())
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.body);
}

#[tokio::test]
async fn the_cookie_proves_the_caller_and_changes_need_the_csrf_token_and_origin() {
    let f = fixture().await;
    let (cookie, csrf) = f.session("ada").await;
    let list = f.with_cookie(Method::GET, &format!("/v1/{}/jobs", f.project), &cookie, &[]).await;
    assert_eq!(list.status, StatusCode::OK, "a read needs only the cookie: {}", list.body);

    let job = f.create().await;
    let cancel = format!("/v1/{}/jobs/{job}/cancel", f.project);
    let refused: [&[(&'static str, &str)]; 4] = [
        &[],
        &[("origin", ORIGIN)],
        &[("origin", ORIGIN), ("x-jobd-csrf", "0123456789abcdef0123456789abcdef")],
        &[("origin", "http://evil.test"), ("x-jobd-csrf", csrf.as_str())],
    ];
    for extra in refused {
        let answer = f.with_cookie(Method::POST, &cancel, &cookie, extra).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{extra:?}: {}", answer.body);
    }
    let answer = f.with_cookie(Method::POST, &cancel, &cookie, &[("origin", ORIGIN), ("x-jobd-csrf", &csrf)]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["job"]["status"], "CANCELLED");

    // Another project's path is refused as for any other caller; a reader may not cancel.
    let other = f.app.identity.create_project("beta").await.unwrap().id;
    let answer = f.with_cookie(Method::GET, &format!("/v1/{other}/jobs"), &cookie, &[]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let (reader, reader_csrf) = f.session("rita").await;
    let job = f.create().await;
    let answer = f
        .with_cookie(
            Method::POST,
            &format!("/v1/{}/jobs/{job}/cancel", f.project),
            &reader,
            &[("origin", ORIGIN), ("x-jobd-csrf", &reader_csrf)],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);

    // A forged cookie proves nothing.
    let answer = f.with_cookie(Method::GET, &format!("/v1/{}/jobs", f.project), "jobd_session=forged", &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_out_revokes_the_token() {
    let f = fixture().await;
    let (cookie, csrf) = f.session("ada").await;
    let without_csrf = f.with_cookie(Method::DELETE, "/console/session", &cookie, &[("origin", ORIGIN)]).await;
    assert_eq!(without_csrf.status, StatusCode::FORBIDDEN, "{}", without_csrf.body);
    let answer =
        f.with_cookie(Method::DELETE, "/console/session", &cookie, &[("origin", ORIGIN), ("x-jobd-csrf", &csrf)]).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let cleared = answer.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("jobd_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    let after = f.with_cookie(Method::GET, &format!("/v1/{}/jobs", f.project), &cookie, &[]).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "the token is revoked: {}", after.body);
    let session = f.with_cookie(Method::GET, "/console/session", &cookie, &[]).await;
    assert_eq!(session.status, StatusCode::UNAUTHORIZED);
}

async fn raw_get(app: &TestApp, uri: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    let f = fixture().await;
    let (status, headers, body) = raw_get(&f.app, "/console").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = String::from_utf8(body).unwrap();
    assert!(!html.contains("<script>") && !html.contains("style="), "no inline script or style");
    // Every file the page names is served, with its type.
    for (asset, content_type) in [
        ("console.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("jobs.js", "text/javascript; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = raw_get(&f.app, &format!("/console/assets/{asset}")).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert_eq!(headers["content-type"], content_type);
        assert!(headers.contains_key("content-security-policy"));
        assert!(!body.is_empty());
    }
    let (status, _, body) = raw_get(&f.app, "/console/assets/nothing.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["error_code"].is_string(), "{body}");
}
