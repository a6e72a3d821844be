//! `GET /metrics`: Prometheus text that parses, with names that follow the conventions, and the
//! series an operator needs after real traffic.

mod common;

use std::collections::HashMap;

use common::{TestApp, PROJECT};
use http::{HeaderMap, Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn metrics_parse_and_follow_prometheus_conventions() {
    let app = TestApp::new().await;
    app.create(json!({"service": "cfw", "job_type": "CreateFirewall"})).await;
    app.create(json!({"service": "waf", "job_type": "CheckDomain"})).await;
    let claim =
        app.signed(Method::POST, "/v1/worker/claim", Some(json!({"worker_id": "w", "services": ["cfw"]}))).await;
    let task = &claim.body["task"];
    let url = format!("/v1/worker/tasks/{}/complete", task["job_id"].as_str().unwrap());
    app.signed(Method::POST, &url, Some(json!({"lease_token": task["lease_token"]}))).await;
    app.get(&format!("/v3/{PROJECT}/elb/jobs")).await;

    let request = http::Request::builder().uri("/metrics").body(axum::body::Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "metrics need no caller");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();

    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples: Vec<(String, String, f64)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample line: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                assert!(labels.ends_with('}'), "{line}");
                (name.to_owned(), labels.to_owned())
            }
            None => (series.to_owned(), String::new()),
        };
        assert!(name.starts_with("jobd_"), "every metric is jobd_*: {name}");
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{name}");
        samples.push((name, labels, value));
    }
    for (name, kind) in &types {
        match kind.as_str() {
            "counter" => assert!(name.ends_with("_total"), "a counter ends in _total: {name}"),
            "histogram" => assert!(name.ends_with("_seconds"), "durations are in seconds: {name}"),
            _ => {}
        }
    }
    let has = |name: &str, label: &str| samples.iter().any(|(n, l, v)| n == name && l.contains(label) && *v > 0.0);
    assert!(has("jobd_http_requests_total", r#"route="/v1/{project_id}/jobs""#), "{text}");
    assert!(has("jobd_http_request_duration_seconds_count", r#"route="/v3/{project_id}/elb/jobs""#));
    assert!(has("jobd_jobs_created_total", r#"service="cfw""#));
    assert!(has("jobd_tasks_claimed_total", r#"service="cfw""#));
    assert!(has("jobd_jobs_finished_total", r#"status="SUCCEEDED""#));
    assert!(has("jobd_store_operation_duration_seconds_bucket", r#"operation="claim_tasks""#));
    assert!(has("jobd_queue_depth", r#"service="waf""#), "the waiting WAF job is counted");
    assert!(samples
        .iter()
        .any(|(n, l, _)| n == "jobd_queue_oldest_age_seconds" && l.contains(r#"job_type="CheckDomain""#)));
    let _ = HeaderMap::new();
}
