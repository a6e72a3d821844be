//! `GET /openapi.json` documents every route the server has: each row of the permission table and
//! each public route, with its method, and the schemas of the seed dialects' bodies.

mod common;

use common::TestApp;
use http::StatusCode;
use jobd_api::openapi::PUBLIC_ROUTES;
use jobd_api::ROUTE_ACTIONS;
use serde_json::Value;

#[tokio::test]
async fn every_route_is_in_the_document() {
    let app = TestApp::new().await;
    let request = http::Request::builder().uri("/openapi.json").body(axum::body::Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the document needs no caller");
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let document: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "OpenAPI 3.1");
    let routes = ROUTE_ACTIONS.iter().map(|(m, p, _)| (*m, *p)).chain(PUBLIC_ROUTES.iter().map(|(m, p, _)| (*m, *p)));
    let mut count = 0;
    for (method, path) in routes {
        let operation = &document["paths"][path][method.to_lowercase()];
        assert!(operation.is_object(), "{method} {path} is missing from /openapi.json");
        assert!(operation["operationId"].is_string());
        count += 1;
    }
    let operations: usize =
        document["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
    assert_eq!(operations, count, "no route in the document that the server does not have");
    for schema in
        ["ListJobResponse", "ConfirmAsyncJobResponse", "ShowJobResponse", "ListJobsResponse", "JobEnvelope", "Error"]
    {
        assert!(document["components"]["schemas"][schema].is_object(), "schema {schema}");
    }
    let schemas = &document["components"]["schemas"];
    for schema in ["TaskComplete", "TaskFail", "TaskReportBatch", "TaskReportResults", "TaskReportResult"] {
        assert!(schemas[schema].is_object(), "schema {schema}");
    }
    let batch = &document["paths"]["/v1/worker/tasks/batch"]["post"];
    let schema_of = |content: &Value| content["application/json"]["schema"]["$ref"].clone();
    assert_eq!(schema_of(&batch["requestBody"]["content"]), "#/components/schemas/TaskReportBatch");
    assert_eq!(schema_of(&batch["responses"]["200"]["content"]), "#/components/schemas/TaskReportResults");
    let complete = &document["paths"]["/v1/worker/tasks/{job_id}/complete"]["post"];
    assert_eq!(schema_of(&complete["requestBody"]["content"]), "#/components/schemas/TaskComplete");
    let reports = &schemas["TaskReportBatch"]["properties"]["reports"];
    assert_eq!(reports["maxItems"], 1000);
    let kinds = reports["items"]["oneOf"].as_array().unwrap();
    let outcomes: Vec<&Value> = kinds.iter().map(|kind| &kind["properties"]["outcome"]["enum"][0]).collect();
    assert_eq!(outcomes, [&Value::from("complete"), &Value::from("fail"), &Value::from("heartbeat")]);
    let create_batch = &document["paths"]["/v1/{project_id}/jobs/batch"]["post"];
    assert_eq!(schema_of(&create_batch["responses"]["201"]["content"]), "#/components/schemas/JobBatch");
    for kind in kinds {
        let required: Vec<&str> = kind["required"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        assert!(["job_id", "outcome", "lease_token"].iter().all(|field| required.contains(field)), "{kind}");
    }
    let main_job = &document["components"]["schemas"]["MainJob"]["properties"];
    assert!(main_job["sub_jobs"].is_object() && main_job["begin_time"].is_object(), "{main_job}");
}
