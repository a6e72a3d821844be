//! What a native list answer may cost (issue #16, item 6): payloads and results are left out
//! unless asked for (`include=payload,result`), and a page ends early with a `next_marker` once
//! its jobs pass the byte budget; following the markers still reads every job once.

mod common;

use axum::http::{Method, StatusCode};
use common::{TestApp, PROJECT};
use jobd_api::ApiConfig;
use serde_json::{json, Value};

const PAYLOAD_BYTES: usize = 100 * 1024;

async fn app_with_big_jobs(list_page_bytes: usize) -> (TestApp, Vec<String>) {
    let app = TestApp::with_config(ApiConfig { list_page_bytes, ..ApiConfig::default() }).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let payload = json!({"blob": "x".repeat(PAYLOAD_BYTES), "n": i});
        let created = app.create(json!({"service": "cfw", "job_type": "T", "payload": payload})).await;
        ids.push(created["job_id"].as_str().unwrap().to_owned());
    }
    (app, ids)
}

fn size(value: &Value) -> usize {
    serde_json::to_vec(value).unwrap().len()
}

#[tokio::test]
async fn lists_leave_payloads_and_results_out_unless_asked() {
    let (app, ids) = app_with_big_jobs(4 * 1024 * 1024).await;
    let list = app.get(&format!("/v1/{PROJECT}/jobs")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let jobs = list.body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 5);
    for job in jobs {
        assert!(job.get("payload").is_none() && job.get("result").is_none(), "{}", job["job_id"]);
    }
    assert!(size(&list.body) < 20 * 1024, "a list of five jobs is {} bytes", size(&list.body));

    let with = app.get(&format!("/v1/{PROJECT}/jobs?include=payload,result")).await;
    let jobs = with.body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 5);
    assert!(jobs.iter().all(|job| job["payload"]["blob"].as_str().unwrap().len() == PAYLOAD_BYTES));
    assert!(jobs.iter().all(|job| job.get("result") == Some(&Value::Null)), "asked for: shown, null");

    // A single job still shows everything.
    let one = app.signed(Method::GET, &format!("/v1/{PROJECT}/jobs/{}", ids[0]), None).await;
    assert_eq!(one.body["job"]["payload"]["n"], 0);

    let bad = app.get(&format!("/v1/{PROJECT}/jobs?include=secrets")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
}

#[tokio::test]
async fn a_page_ends_early_past_the_byte_budget_and_markers_read_every_job_once() {
    let (app, mut ids) = app_with_big_jobs(250 * 1024).await;
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut uri = format!("/v1/{PROJECT}/jobs?include=payload&limit=100");
    let mut pages = 0;
    loop {
        let page = app.get(&uri).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages += 1;
        let jobs = page.body["jobs"].as_array().unwrap();
        assert!(!jobs.is_empty());
        assert!(size(&page.body) < 260 * 1024, "a page of {} bytes", size(&page.body));
        seen.extend(jobs.iter().map(|job| job["job_id"].as_str().unwrap().to_owned()));
        match page.body["next_marker"].as_str() {
            Some(marker) => uri = format!("/v1/{PROJECT}/jobs?include=payload&limit=100&marker={marker}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every job once, newest first");
    assert_eq!(pages, 3, "two jobs of ~100 KiB per 250 KiB page");
}
