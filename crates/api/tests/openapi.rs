//! `GET /openapi.json` documents every route the server has (every declared endpoint but the
//! console's pages), with its method, and the schemas of the seed dialects' bodies.

mod common;

use common::TestApp;
use http::StatusCode;
use jobd_api::{endpoints, Access};
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
    let routes = endpoints().filter(|e| e.access != Access::Page).map(|e| (e.method.as_str(), e.path));
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

async fn document() -> Value {
    let app = TestApp::new().await;
    let request = http::Request::builder().uri("/openapi.json").body(axum::body::Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request).await.unwrap();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// Issue #16 item 12: AK/SK is a signature in `Authorization` (an `apiKey`, not an HTTP bearer
/// scheme, so generic tools do not send `Authorization: Bearer`), the token an `apiKey` in
/// `X-Auth-Token`; every authenticated operation takes either, the public ones neither.
#[tokio::test]
async fn security_schemes_are_the_ones_the_server_reads() {
    let document = document().await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["aksk"]["type"], "apiKey", "{schemes}");
    assert_eq!(schemes["aksk"]["in"], "header");
    assert_eq!(schemes["aksk"]["name"], "Authorization");
    assert!(schemes["aksk"].get("scheme").is_none(), "no HTTP scheme: {schemes}");
    assert_eq!(schemes["token"]["type"], "apiKey");
    assert_eq!(schemes["token"]["in"], "header");
    assert_eq!(schemes["token"]["name"], "X-Auth-Token");
    for endpoint in endpoints().filter(|e| e.access != Access::Page) {
        let (method, path) = (endpoint.method.as_str(), endpoint.path);
        let operation = &document["paths"][path][method.to_lowercase()];
        if endpoint.access.is_authenticated() {
            let security = &operation["security"];
            assert_eq!(security, &serde_json::json!([{"aksk": []}, {"token": []}]), "{method} {path}");
        } else {
            assert!(operation.get("security").is_none(), "{method} {path} needs no caller");
        }
    }
}

/// IAM's own errors are declared as they are answered, the Keystone way; the gateway's (a bad
/// signature, throttling, too large a body) in the Huawei shape, in every dialect.
#[tokio::test]
async fn error_bodies_are_declared_in_the_shape_they_are_answered() {
    let document = document().await;
    let schema = |method: &str, path: &str, status: &str| {
        let content = &document["paths"][path][method]["responses"][status]["content"]["application/json"];
        content["schema"]["$ref"].as_str().unwrap_or_else(|| panic!("{method} {path} {status}: {content}")).to_owned()
    };
    let keystone = "#/components/schemas/KeystoneError";
    let huawei = "#/components/schemas/Error";
    assert_eq!(schema("post", "/v3/auth/tokens", "400"), keystone);
    assert_eq!(schema("post", "/v3/auth/tokens", "401"), keystone, "a wrong password is IAM's own answer");
    assert_eq!(schema("post", "/v3/auth/tokens", "429"), huawei);
    assert_eq!(schema("post", "/v3/auth/tokens", "413"), huawei);
    assert_eq!(schema("delete", "/v3/auth/tokens", "404"), keystone);
    assert_eq!(schema("delete", "/v3/auth/tokens", "401"), huawei, "a bad signature is the gateway's");
    assert_eq!(schema("get", "/v3/projects", "503"), keystone);
    assert_eq!(schema("get", "/v3/{project_id}/jobs/{job_id}", "404"), huawei);
    let keystone_error = &document["components"]["schemas"]["KeystoneError"];
    assert_eq!(keystone_error["required"], serde_json::json!(["error"]));
    let fields: Vec<&String> =
        keystone_error["properties"]["error"]["properties"].as_object().unwrap().keys().collect();
    assert_eq!(fields, ["code", "message", "title"]);
    // Every status an operation can answer: an authenticated GET of a job, a create.
    let statuses = |method: &str, path: &str| -> Vec<String> {
        document["paths"][path][method]["responses"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(
        statuses("get", "/v1/{project_id}/jobs/{job_id}"),
        ["200", "400", "401", "403", "404", "408", "413", "429", "503"]
    );
    assert_eq!(
        statuses("post", "/v1/{project_id}/jobs"),
        ["200", "201", "400", "401", "403", "408", "409", "413", "429", "503"]
    );
    assert_eq!(statuses("post", "/v1/worker/claim"), ["200", "204", "400", "401", "403", "408", "413", "429", "503"]);
    let shed = &document["paths"]["/v1/{project_id}/jobs"]["get"]["responses"]["503"];
    assert!(shed["headers"]["Retry-After"].is_object(), "{shed}");
}

/// The constraints are the validators' own: path values, query parameters and bodies.
#[tokio::test]
async fn constraints_are_the_validators() {
    let document = document().await;
    let parameter = |method: &str, path: &str, name: &str| {
        document["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))["schema"]
            .clone()
    };
    let job = "/v1/{project_id}/jobs/{job_id}";
    assert_eq!(parameter("get", job, "project_id")["pattern"], jobd_core::ProjectId::PATTERN);
    assert_eq!(parameter("get", job, "job_id")["pattern"], jobd_core::JobId::PATTERN);
    assert_eq!(parameter("get", job, "wait_seconds")["maximum"], 60);
    let limit = parameter("get", "/v3/{project_id}/elb/jobs", "limit");
    assert_eq!((limit["minimum"].as_i64(), limit["maximum"].as_i64()), (Some(0), Some(2000)));
    let status = parameter("get", "/v1/{project_id}/jobs", "status");
    assert_eq!(status["items"]["enum"], serde_json::json!(["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]));
    let create = &document["components"]["schemas"]["CreateJob"];
    assert_eq!(create["additionalProperties"], false, "unknown fields are refused");
    assert_eq!(create["required"], serde_json::json!(["service", "job_type"]));
    let properties = &create["properties"];
    assert_eq!(properties["service"]["pattern"], jobd_core::ServiceName::PATTERN);
    assert_eq!(properties["job_type"]["pattern"], jobd_core::JobType::PATTERN);
    assert_eq!(properties["resource_id"]["maxLength"], jobd_core::new_job::MAX_ID_LEN);
    assert_eq!(properties["message"]["maxLength"], jobd_core::new_job::MAX_MESSAGE_LEN);
    assert_eq!(properties["sub_jobs"]["maxItems"], jobd_core::new_job::MAX_SUB_JOBS);
    assert_eq!(properties["priority"]["minimum"], -1000);
    assert!(properties["payload"].get("type").is_none(), "any JSON value: {}", properties["payload"]);
    let fail = &document["components"]["schemas"]["TaskFail"];
    assert_eq!(fail["properties"]["error_code"]["maxLength"], 64);
    assert_eq!(fail["additionalProperties"], false);
    let user = &document["components"]["schemas"]["CreateUser"]["properties"];
    assert_eq!(user["password"]["minLength"], 8);
    assert_eq!(user["role"]["enum"], serde_json::json!(["reader", "producer", "worker", "admin"]));
    let shown = &document["components"]["schemas"]["NativeJob"]["properties"]["payload"];
    assert!(shown.get("type").is_none(), "a job shows any JSON payload: {shown}");
}
