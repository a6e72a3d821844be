//! A test harness: the real router over a real SQLite store, a settable clock, and requests
//! signed with the same signer the official SDKs' algorithm is verified against.

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use jobd_api::{ApiConfig, AppState};
use jobd_auth::secrets::MasterKey;
use jobd_auth::Signer;
use jobd_core::Clock;
use jobd_service::identity::{IdentityConfig, IdentityService, RootKey};
use jobd_service::JobService;
use jobd_store::SqliteStore;
use serde_json::Value;
use tower::ServiceExt;

pub const ACCESS_KEY: &str = "TESTROOTACCESSKEY";
pub const SECRET_KEY: &str = "test-root-secret-key";
pub const PROJECT: &str = "0123456789abcdef0123456789abcdef";

pub use jobd_test_support::clock::ManualClock;

pub struct TestApp {
    pub router: Router,
    pub service: JobService,
    pub identity: IdentityService,
    pub clock: ManualClock,
    _dir: tempfile::TempDir,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(ApiConfig::default()).await
    }

    pub async fn with_config(config: ApiConfig) -> Self {
        Self::with_identity_config(config, IdentityConfig { rate_limit_per_second: 0, ..IdentityConfig::default() })
            .await
    }

    pub async fn with_identity_config(config: ApiConfig, identity_config: IdentityConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let clock = ManualClock::starting_now();
        clock.set_ms(0);
        let service = JobService::new(store.clone(), Arc::new(clock.clone()));
        let root = RootKey { access_key: ACCESS_KEY.into(), secret_key: SECRET_KEY.into() };
        let identity = IdentityService::new(
            store,
            Arc::new(clock.clone()),
            MasterKey::derive(b"test master key"),
            Some(root),
            identity_config,
        );
        let state = AppState::new(service.clone(), identity.clone(), config);
        TestApp { router: jobd_api::app(state), service, identity, clock, _dir: dir }
    }

    /// Sends a request signed like the official SDKs sign (host, content-type, x-project-id,
    /// x-sdk-date), with the given secret key.
    pub async fn signed_with(&self, secret_key: &str, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.signed_as(ACCESS_KEY, secret_key, method, uri, body).await
    }

    /// The headers of a root-signed request for `host`.
    pub fn root_headers(&self, host: &str, method: &Method, uri: &str, body: &[u8]) -> HeaderMap {
        self.headers_for(ACCESS_KEY, SECRET_KEY, host, method, uri, body)
    }

    fn headers_for(&self, ak: &str, sk: &str, host: &str, method: &Method, uri: &str, body: &[u8]) -> HeaderMap {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_str(host).unwrap());
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Signer::new(ak, sk).sign(method.as_str(), path, query, &mut headers, body, self.clock.now()).unwrap();
        headers
    }

    /// A request signed with another access key.
    pub async fn signed_as(
        &self,
        access_key: &str,
        secret_key: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Answer {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let headers = self.headers_for(access_key, secret_key, "127.0.0.1:8080", &method, uri, &body);
        self.send(method, uri, headers, body).await
    }

    /// A request signed with an access key, from the TCP peer `client`.
    pub async fn signed_as_from(
        &self,
        client: std::net::SocketAddr,
        access_key: &str,
        secret_key: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Answer {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let headers = self.headers_for(access_key, secret_key, "127.0.0.1:8080", &method, uri, &body);
        self.send_from(Some(client), method, uri, headers, body).await
    }

    /// A signed request with more (unsigned) headers.
    pub async fn signed_as_with_headers(
        &self,
        access_key: &str,
        secret_key: &str,
        method: Method,
        uri: &str,
        extra: &[(&'static str, &str)],
    ) -> Answer {
        let mut headers = self.headers_for(access_key, secret_key, "127.0.0.1:8080", &method, uri, b"");
        for (name, value) in extra {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        self.send(method, uri, headers, Vec::new()).await
    }

    /// Only the status of a signed request (for streams that do not end).
    pub async fn status_as(&self, access_key: &str, secret_key: &str, method: Method, uri: &str) -> StatusCode {
        let headers = self.headers_for(access_key, secret_key, "127.0.0.1:8080", &method, uri, b"");
        let mut request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        *request.headers_mut() = headers;
        self.router.clone().oneshot(request).await.unwrap().status()
    }

    /// Serves the router on a loopback socket; answers its base URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = self.router.clone();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        base
    }

    pub async fn signed(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.signed_with(SECRET_KEY, method, uri, body).await
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.signed(Method::GET, uri, None).await
    }

    pub async fn send(&self, method: Method, uri: &str, headers: HeaderMap, body: Vec<u8>) -> Answer {
        self.send_from(None, method, uri, headers, body).await
    }

    /// A request as if from the TCP peer `client` (what jobd's server attaches), or in-process.
    pub async fn send_from(
        &self,
        client: Option<std::net::SocketAddr>,
        method: Method,
        uri: &str,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri).body(Body::from(body)).unwrap();
        *request.headers_mut() = headers;
        if let Some(client) = client {
            request.extensions_mut().insert(axum::extract::ConnectInfo(client));
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(headers.get("x-request-id").is_some_and(|v| !v.is_empty()), "every answer has a request id");
        if status == StatusCode::NO_CONTENT {
            assert!(bytes.is_empty());
            return Answer { status, headers, body: Value::Null };
        }
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("every answer is JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        assert_eq!(headers.get("content-type").unwrap(), "application/json", "content type of {body}");
        assert!(headers.get("x-request-id").is_some_and(|v| !v.is_empty()), "every answer has a request id");
        Answer { status, headers, body }
    }

    /// A request authenticated with an `X-Auth-Token`.
    pub async fn with_token(&self, token: &str, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-auth-token", HeaderValue::from_str(token).unwrap());
        self.send(method, uri, headers, body).await
    }

    /// A bodiless request authenticated with an `X-Auth-Token`, with more headers.
    pub async fn with_token_and_headers(
        &self,
        token: &str,
        method: Method,
        uri: &str,
        extra: &[(&'static str, &str)],
    ) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert("x-auth-token", HeaderValue::from_str(token).unwrap());
        for (name, value) in extra {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        self.send(method, uri, headers, Vec::new()).await
    }

    /// A user's token for its project (`POST /v3/auth/tokens`, the password way).
    pub async fn issue_token(&self, domain: &str, name: &str, password: &str, project_id: &str) -> String {
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": name, "password": password, "domain": {"name": domain}}}},
            "scope": {"project": {"id": project_id}}}});
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let answer = self
            .send(Method::POST, "/v3/auth/tokens?nocatalog=true", headers, serde_json::to_vec(&body).unwrap())
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "token for {name}@{domain}: {}", answer.body);
        answer.headers.get("x-subject-token").unwrap().to_str().unwrap().to_owned()
    }

    /// Creates a job through the native API and answers its JSON.
    pub async fn create(&self, body: Value) -> Value {
        let answer = self.signed(Method::POST, &format!("/v1/{PROJECT}/jobs"), Some(body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["job"].clone()
    }
}

/// Replaces volatile values (job ids, request ids) with stable placeholders for snapshots.
pub fn redact(value: &Value, job_ids: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if k == "request_id" { Value::String("[request_id]".into()) } else { redact(v, job_ids) };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact(v, job_ids)).collect()),
        Value::String(s) => {
            let mut s = s.clone();
            for (i, id) in job_ids.iter().enumerate() {
                s = s.replace(id, &format!("[job_id_{i}]"));
            }
            Value::String(s)
        }
        other => other.clone(),
    }
}
