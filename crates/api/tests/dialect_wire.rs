//! Exact wire bodies of every dialect (insta snapshots), on success and on error, through the
//! real router, signature verification and SQLite store.

mod common;

use common::{redact, TestApp, PROJECT};
use http::{Method, StatusCode};
use jobd_core::{JobEvent, JobId, ProjectId};
use serde_json::{json, Value};

fn project() -> ProjectId {
    ProjectId::parse(PROJECT).unwrap()
}

fn id_of(job: &Value) -> String {
    job["job_id"].as_str().unwrap().to_owned()
}

async fn record(app: &TestApp, job_id: &str, event: JobEvent) {
    app.service.record(&project(), &JobId::parse(job_id).unwrap(), event).await.unwrap();
}

fn fail(code: &str, msg: &str) -> JobEvent {
    JobEvent::Fail { error_code: code.into(), error_msg: msg.into() }
}

#[tokio::test]
async fn cfw_list_job_through_its_states() {
    let app = TestApp::new().await;
    let ok = id_of(&app.create(json!({"service": "cfw", "job_type": "CreateFirewall"})).await);
    let bad = id_of(&app.create(json!({"service": "cfw", "job_type": "CreateFirewall"})).await);
    let ids = [ok.as_str(), bad.as_str()];

    let pending = app.get(&format!("/v3/{PROJECT}/jobs/{ok}")).await;
    assert_eq!(pending.status, StatusCode::OK);
    insta::assert_json_snapshot!("cfw_pending", redact(&pending.body, &ids));

    app.clock.set_ms(1_500);
    record(&app, &ok, JobEvent::Start { message: Some("creating".into()) }).await;
    app.clock.set_ms(14_000);
    record(&app, &ok, JobEvent::Succeed { result: None, message: None }).await;
    let done = app.get(&format!("/v3/{PROJECT}/jobs/{ok}")).await;
    insta::assert_json_snapshot!("cfw_success", redact(&done.body, &ids));

    record(&app, &bad, fail("CFW.00109004", "HTTP request error")).await;
    let failed = app.get(&format!("/v3/{PROJECT}/jobs/{bad}")).await;
    insta::assert_json_snapshot!("cfw_failed", redact(&failed.body, &ids));

    let unknown = app.get(&format!("/v3/{PROJECT}/jobs/00000000-0000-4000-8000-000000000000")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    insta::assert_json_snapshot!("cfw_not_found", unknown.body);

    let malformed = app.get(&format!("/v3/{PROJECT}/jobs/job-1")).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!("cfw_malformed_id", malformed.body);
}

#[tokio::test]
async fn waf_confirm_async_job_through_its_states() {
    let app = TestApp::new().await;
    let job =
        app.create(json!({"service": "waf", "job_type": "CheckDomain", "message": "Waiting for a checker"})).await;
    let id = id_of(&job);
    assert_eq!(id.len(), 32, "WAF ids are 32 hex characters");
    let ids = [id.as_str()];
    let url = format!("/v1/{PROJECT}/waf/async-job/{id}?enterpriseProjectId=0");

    record(&app, &id, JobEvent::Start { message: Some("Checking domain name configuration".into()) }).await;
    let running = app.get(&url).await;
    assert_eq!(running.status, StatusCode::OK);
    insta::assert_json_snapshot!("waf_running", redact(&running.body, &ids));

    record(&app, &id, fail("WAF.00022002", "The domain name does not resolve to WAF")).await;
    let failed = app.get(&format!("/v1/{PROJECT}/waf/async-job/{id}")).await;
    insta::assert_json_snapshot!("waf_failed", redact(&failed.body, &ids));

    let other_eps = app.get(&format!("/v1/{PROJECT}/waf/async-job/{id}?enterpriseProjectId=other-eps")).await;
    assert_eq!(other_eps.status, StatusCode::NOT_FOUND, "a job of the default project is not in another one");
    let all = app.get(&format!("/v1/{PROJECT}/waf/async-job/{id}?enterpriseProjectId=all_granted_eps")).await;
    assert_eq!(all.status, StatusCode::OK);

    let cancelled = id_of(&app.create(json!({"service": "waf", "job_type": "CheckDomain"})).await);
    app.signed(Method::POST, &format!("/v1/{PROJECT}/jobs/{cancelled}/cancel"), None).await;
    let answer = app.get(&format!("/v1/{PROJECT}/waf/async-job/{cancelled}")).await;
    insta::assert_json_snapshot!("waf_cancelled", redact(&answer.body, &[cancelled.as_str()]));

    let unknown = app.get(&format!("/v1/{PROJECT}/waf/async-job/0123456789abcdef0123456789abcdef")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    insta::assert_json_snapshot!("waf_not_found", unknown.body);

    let malformed = app.get(&format!("/v1/{PROJECT}/waf/async-job/not-an-id")).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!("waf_malformed_id", malformed.body);

    let bad_eps = app.get(&format!("/v1/{PROJECT}/waf/async-job/{id}?enterpriseProjectId=no%20spaces")).await;
    assert_eq!(bad_eps.status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!("waf_bad_query", bad_eps.body);

    let unauthorized = app.signed_with("wrong", Method::GET, &url, None).await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    insta::assert_json_snapshot!("waf_unauthorized", redact(&unauthorized.body, &[]));
}

#[tokio::test]
async fn elb_show_job_with_sub_jobs_through_its_states() {
    let app = TestApp::new().await;
    let lb = "9f5b432c-987e-4777-a1bc-6642be4b2b50";
    let entity = json!([{"resource_id": lb, "resource_type": "loadbalancer"}]);
    let job = app
        .create(json!({
            "service": "elb", "job_type": "UPGRADE", "resource_id": lb,
            "sub_jobs": [
                {"job_type": "UPGRADE_INIT", "entities": entity},
                {"job_type": "UPGRADE_TRAFFIC_SWITCH", "entities": entity},
                {"job_type": "UPGRADE_COMPLETE", "entities": entity}
            ]
        }))
        .await;
    let id = id_of(&job);
    let subs: Vec<String> = job["sub_jobs"].as_array().unwrap().iter().map(id_of).collect();
    let ids = [id.as_str(), subs[0].as_str(), subs[1].as_str(), subs[2].as_str()];
    let url = format!("/v3/{PROJECT}/elb/jobs/{id}");

    let pending = app.get(&url).await;
    insta::assert_json_snapshot!("elb_pending", redact(&pending.body, &ids));

    app.clock.set_ms(1_000);
    record(&app, &subs[0], JobEvent::Start { message: None }).await;
    let running = app.get(&url).await;
    insta::assert_json_snapshot!("elb_running", redact(&running.body, &ids));

    for (i, sub) in subs.iter().enumerate() {
        app.clock.set_ms(2_000 + i as i64 * 1_000);
        record(&app, sub, JobEvent::Succeed { result: None, message: None }).await;
    }
    let complete = app.get(&url).await;
    insta::assert_json_snapshot!("elb_complete", redact(&complete.body, &ids));

    let unknown = app.get(&format!("/v3/{PROJECT}/elb/jobs/00000000-0000-4000-8000-000000000000")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    insta::assert_json_snapshot!("elb_not_found", redact(&unknown.body, &[]));

    let malformed = app.get(&format!("/v3/{PROJECT}/elb/jobs/123")).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!("elb_malformed_id", redact(&malformed.body, &[]));
}

#[tokio::test]
async fn elb_failed_sub_job_fails_and_cancels() {
    let app = TestApp::new().await;
    let job = app
        .create(json!({"service": "elb", "job_type": "UPGRADE", "sub_jobs": [
            {"job_type": "UPGRADE_INIT"}, {"job_type": "UPGRADE_TRAFFIC_SWITCH"}, {"job_type": "UPGRADE_COMPLETE"}
        ]}))
        .await;
    let id = id_of(&job);
    let subs: Vec<String> = job["sub_jobs"].as_array().unwrap().iter().map(id_of).collect();
    record(&app, &subs[0], JobEvent::Succeed { result: None, message: None }).await;
    record(&app, &subs[1], fail("ELB.8907", "traffic switch refused")).await;
    let answer = app.get(&format!("/v3/{PROJECT}/elb/jobs/{id}")).await;
    let ids = [id.as_str(), subs[0].as_str(), subs[1].as_str(), subs[2].as_str()];
    insta::assert_json_snapshot!("elb_failed", redact(&answer.body, &ids));
}

#[tokio::test]
async fn elb_list_jobs_pages_and_errors() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        app.clock.set_ms(i * 1000);
        ids.push(id_of(&app.create(json!({"service": "elb", "job_type": "cloneLoadbalancer"})).await));
    }
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let page = app.get(&format!("/v3/{PROJECT}/elb/jobs?limit=2")).await;
    assert_eq!(page.status, StatusCode::OK);
    insta::assert_json_snapshot!("elb_list_first_page", redact(&page.body, &id_refs));

    let next = app.get(&format!("/v3/{PROJECT}/elb/jobs?limit=2&marker={}", ids[1])).await;
    insta::assert_json_snapshot!("elb_list_last_page", redact(&next.body, &id_refs));

    let back = app.get(&format!("/v3/{PROJECT}/elb/jobs?limit=2&marker={}&page_reverse=true", ids[0])).await;
    insta::assert_json_snapshot!("elb_list_reverse_page", redact(&back.body, &id_refs));

    let empty = app.get(&format!("/v3/{PROJECT}/elb/jobs?job_type=none")).await;
    insta::assert_json_snapshot!("elb_list_empty", redact(&empty.body, &id_refs));

    let unknown_marker = app.get(&format!("/v3/{PROJECT}/elb/jobs?marker=00000000-0000-4000-8000-000000000000")).await;
    assert_eq!(unknown_marker.status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!("elb_list_unknown_marker", redact(&unknown_marker.body, &[]));

    for bad in ["limit=2001", "limit=-1", "limit=x", "page_reverse=maybe", "status=DONE", "begin_time=yesterday"] {
        let answer = app.get(&format!("/v3/{PROJECT}/elb/jobs?{bad}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {}", answer.body);
        assert_eq!(answer.body["error_code"], "ELB.8902");
    }
}

#[tokio::test]
async fn native_job_bodies() {
    let app = TestApp::new().await;
    let created = app
        .signed(
            Method::POST,
            &format!("/v1/{PROJECT}/jobs"),
            Some(json!({
                "service": "elb", "job_type": "UPGRADE", "resource_id": "lb-1",
                "entities": [{"resource_id": "lb-1", "resource_type": "loadbalancer"}],
                "payload": {"flavor": "L7"}, "message": "queued",
                "sub_jobs": [{"job_type": "UPGRADE_INIT", "payload": {"step": 1},
                              "simulate": {"duration_ms": 10, "outcome": "success", "messages": ["init"]}}]
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = id_of(&created.body["job"]);
    let sub = id_of(&created.body["job"]["sub_jobs"][0]);
    let ids = [id.as_str(), sub.as_str()];
    insta::assert_json_snapshot!("native_created", redact(&created.body, &ids));

    let cancelled = app.signed(Method::POST, &format!("/v1/{PROJECT}/jobs/{id}/cancel"), None).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    let again = app.signed(Method::POST, &format!("/v1/{PROJECT}/jobs/{id}/cancel"), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    insta::assert_json_snapshot!("native_cancel_finished", redact(&again.body, &ids));

    let list = app.get(&format!("/v1/{PROJECT}/jobs?status=CANCELLED&limit=1")).await;
    assert_eq!(list.body["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["next_marker"], Value::Null);

    let unknown_field = app
        .signed(
            Method::POST,
            &format!("/v1/{PROJECT}/jobs"),
            Some(json!({"service": "cfw", "job_type": "x", "color": 1})),
        )
        .await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!("native_unknown_field", redact(&unknown_field.body, &[]));
}

#[tokio::test]
async fn gateway_errors_have_the_apigw_shape() {
    let app = TestApp::new().await;
    let no_route = app.send(Method::GET, "/v9/nothing/here", Default::default(), vec![]).await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
    insta::assert_json_snapshot!("gateway_route_not_found", redact(&no_route.body, &[]));

    let wrong_method = app.signed(Method::DELETE, &format!("/v3/{PROJECT}/elb/jobs"), None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    insta::assert_json_snapshot!("gateway_method_not_allowed", redact(&wrong_method.body, &[]));

    let unsigned = app.send(Method::GET, &format!("/v3/{PROJECT}/elb/jobs"), Default::default(), vec![]).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    insta::assert_json_snapshot!("gateway_unauthorized_elb", redact(&unsigned.body, &[]));

    let wrong_secret = app
        .signed_with("nope", Method::GET, &format!("/v3/{PROJECT}/jobs/00000000-0000-4000-8000-000000000000"), None)
        .await;
    assert_eq!(wrong_secret.status, StatusCode::UNAUTHORIZED);
    insta::assert_json_snapshot!("gateway_unauthorized_cfw", redact(&wrong_secret.body, &[]));
}
