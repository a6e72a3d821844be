//! Load shedding (issue #16, item 7): past the in-flight bound a request is answered `503` with
//! `Retry-After` at once, in its dialect's error shape; long polls and health checks are not
//! counted, and once the load goes everything answers again.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{TestApp, PROJECT};
use jobd_api::ApiConfig;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn unsigned(app: &TestApp, uri: &str) -> (StatusCode, Option<String>, Value) {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, retry_after, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn past_the_in_flight_bound_requests_are_shed_with_503_and_retry_after() {
    let app = TestApp::with_config(ApiConfig { max_in_flight: 3, ..ApiConfig::default() }).await;
    let created = app.create(json!({"service": "elb", "job_type": "T"})).await;
    let job_id = created["job_id"].as_str().unwrap().to_owned();

    // Three requests whose bodies never arrive hold the three places.
    let mut stuck = Vec::new();
    for _ in 0..3 {
        let body = Body::from_stream(futures_util::stream::pending::<Result<bytes::Bytes, std::io::Error>>());
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v3/auth/tokens")
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        stuck.push(tokio::spawn(app.router.clone().oneshot(request)));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let (status, retry_after, body) = unsigned(&app, &format!("/v3/{PROJECT}/elb/jobs")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(started.elapsed() < Duration::from_millis(500), "shed in {:?}", started.elapsed());
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["error_code"], "JOBD.UNAVAILABLE", "{body}");
    assert!(body["error_msg"].as_str().unwrap().contains("in flight"), "{body}");

    // Not counted: health checks and long polls.
    let (status, _, _) = unsigned(&app, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let poll = app.signed(Method::GET, &format!("/v1/{PROJECT}/jobs/{job_id}?wait_seconds=1&version=999"), None).await;
    assert_eq!(poll.status, StatusCode::OK, "{}", poll.body);

    for request in &stuck {
        request.abort();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let listed = app.signed(Method::GET, &format!("/v3/{PROJECT}/elb/jobs"), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
}
