//! Every declared route (`jobd_api::endpoints()`) is routed, guarded as declared and documented:
//! the router, the permission check, the dialect lookup and `/openapi.json` are all derived from
//! the one declaration, and this test holds them to it.

mod common;

use std::collections::{HashMap, HashSet};

use axum::body::Body;
use common::{TestApp, PROJECT};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use jobd_api::endpoint::Content;
use jobd_api::{endpoints, Access, Dialect, Endpoint};
use serde_json::Value;
use tower::ServiceExt;

/// The path with every `{name}` filled in.
fn filled(endpoint: &Endpoint) -> String {
    endpoint
        .path
        .split('/')
        .map(|segment| match segment {
            "{project_id}" => PROJECT,
            "{job_id}" => "00000000-0000-4000-8000-000000000000",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn unauthenticated(app: &TestApp, method: &str, uri: &str) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_declared_route_is_routed_authorised_and_documented() {
    let app = TestApp::new().await;
    let (status, document) = unauthenticated(&app, "GET", "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let mut seen = HashSet::new();
    let mut dialects: HashMap<&str, Dialect> = HashMap::new();
    for endpoint in endpoints() {
        let method = endpoint.method.as_str();
        assert!(seen.insert((method, endpoint.path)), "{endpoint:?} is declared twice");
        let dialect = *dialects.entry(endpoint.path).or_insert(endpoint.dialect);
        assert_eq!(dialect, endpoint.dialect, "{endpoint:?}: one path, one dialect");
        assert!(!endpoint.summary.is_empty(), "{endpoint:?} has no summary");
        let uri = filled(endpoint);
        assert_eq!(Dialect::of_path(&uri), endpoint.dialect, "{endpoint:?}: the dialect of {uri}");

        // Routed, and guarded as declared: no caller is refused by `caller::authenticate` (401),
        // never by a missing permission row (403) or the router (404, 405).
        let (status, body) = unauthenticated(&app, method, &uri).await;
        if endpoint.access.is_authenticated() {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{endpoint:?}: {body}");
        } else {
            // The handler answers (its own 404 for a console file `x`, its own 401 for no
            // session), not the router (`APIGW.0101`) nor `caller::authenticate`.
            let routed = body["error_code"] != "APIGW.0101";
            let authenticated = body["error_msg"].as_str().is_some_and(|m| m.contains("x-auth-token not found"));
            assert!(routed && !authenticated, "{endpoint:?} answered {status}: {body}");
        }

        // Documented, with the schemas it names; the console's pages are not an API.
        let operation = &document["paths"][endpoint.path][method.to_lowercase()];
        if endpoint.access == Access::Page {
            assert!(operation.is_null(), "{endpoint:?} is a page, not in the document");
            continue;
        }
        assert!(operation.is_object(), "{endpoint:?} is missing from /openapi.json");
        let answered = endpoint.answers.iter().filter_map(|answer| match answer.content {
            Content::Json(name) => Some(name),
            _ => None,
        });
        for name in endpoint.request.into_iter().chain(answered) {
            assert!(schemas.contains_key(name), "{endpoint:?} names the schema {name}, which is not in the document");
        }
    }
    let operations: usize =
        document["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
    let documented = endpoints().filter(|endpoint| endpoint.access != Access::Page).count();
    assert_eq!(operations, documented, "no operation in the document that is not declared");
}

/// A method not declared on a declared path is the router's `405` (after authentication, as
/// every other answer on an authenticated path), and an undeclared path `404`.
#[tokio::test]
async fn undeclared_methods_and_paths_are_refused() {
    let app = TestApp::new().await;
    let answer = app.signed(Method::DELETE, &format!("/v1/{PROJECT}/jobs"), None).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{}", answer.body);
    assert_eq!(answer.body["error_code"], "APIGW.0101");
    let answer = app.signed(Method::GET, &format!("/v1/{PROJECT}/things"), None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    assert_eq!(answer.body["error_code"], "APIGW.0101");
}
