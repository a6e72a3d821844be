//! Metric labels stay bounded (issue #16, item 5): past the cap of distinct `service` and
//! `job_type` values, jobs are counted under `other`, so `/metrics` does not grow with what
//! producers send. Its own test binary: the cap is process-wide, like the recorder.

mod common;

use std::collections::HashSet;

use common::TestApp;
use http::StatusCode;
use serde_json::json;

async fn metrics_text(app: &TestApp) -> String {
    let request = http::Request::builder().uri("/metrics").body(axum::body::Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The values of `label` in the samples of `metric`.
fn label_values(text: &str, metric: &str, label: &str) -> HashSet<String> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .filter_map(|line| {
            let start = line.find(&format!("{label}=\""))? + label.len() + 2;
            let end = start + line[start..].find('"')?;
            Some(line[start..end].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn job_types_and_services_past_the_cap_are_counted_as_other() {
    jobd_service::metric_labels::set_max_values(5);
    let app = TestApp::new().await;
    for i in 0..40 {
        app.create(json!({"service": format!("svc{}", i % 8), "job_type": format!("Type{i}")})).await;
    }
    let text = metrics_text(&app).await;

    let job_types = label_values(&text, "jobd_jobs_created_total", "job_type");
    assert!(job_types.contains("other"), "{job_types:?}");
    assert!(job_types.len() <= 6, "at most 5 job types and other: {job_types:?}");
    let services = label_values(&text, "jobd_jobs_created_total", "service");
    assert!(services.contains("other"), "{services:?}");
    assert!(services.len() <= 6, "at most 5 services and other: {services:?}");
    let total: f64 = text
        .lines()
        .filter(|line| line.starts_with("jobd_jobs_created_total{"))
        .map(|line| line.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(total, 40.0, "every job is still counted");
    // The queue gauges are bounded the same way.
    let queued = label_values(&text, "jobd_queue_depth", "job_type");
    assert!(queued.len() <= 6, "{queued:?}");
    assert!(queued.contains("other"), "{queued:?}");
}
