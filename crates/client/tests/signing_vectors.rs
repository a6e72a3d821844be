//! The client's request path against the official SDK's signatures
//! (`shared/vectors/huawei-sdk-signing.json`, made by `huaweicloudsdkcore`'s Python signer with a
//! pinned date and `User-Agent`): each typed dialect call, prepared by [`Client::prepare`] at the
//! vector's date, puts the same URI, the same headers and the same `Authorization` on the wire.

use std::path::PathBuf;

use jobd_client::elb::{ListJobsRequest, ShowJobRequest};
use jobd_client::{cfw, waf, ApiRequest, Call, Client, Credentials};
use serde_json::Value;

const PROJECT: &str = "0123456789abcdef0123456789abcdef";

/// Vectors the client cannot make, and why; every other vector must be matched below.
const NOT_MADE_BY_THE_CLIENT: &[(&str, &str)] = &[
    ("v11_derived_get_cfw_list_job", "the client signs with SDK-HMAC-SHA256 only (jobd verifies V11 too)"),
    ("sm3_get_cfw_list_job", "the client signs with SDK-HMAC-SHA256 only (jobd verifies SM3 too)"),
    (
        "go_style_content_type_not_signed",
        "the Go SDK leaves Content-Type unsigned; this client signs it, as Python does",
    ),
];

fn vectors() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/huawei-sdk-signing.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the signing vectors are required at {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("the vector file is JSON");
    doc["vectors"].as_array().expect("a vectors array").clone()
}

/// The call the client makes for the vector's request, through its typed models where one exists.
fn call_for(vector: &Value) -> Call {
    let name = vector["name"].as_str().unwrap();
    match name {
        "get_no_query_elb_show_job" => {
            ShowJobRequest::new("8f1a1f5e-7d4c-4a8b-9e0b-1c2d3e4f5a6b").to_call(PROJECT).unwrap()
        }
        "get_query_bool_repeated_elb_list_jobs" => {
            // The vector's `query_params_input`, in its order; the client sorts them as the SDK does.
            let mut request = ListJobsRequest::default();
            for pair in vector["query_params_input"].as_array().unwrap() {
                let (key, value) = (pair[0].as_str().unwrap(), &pair[1]);
                let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
                request = match key {
                    "limit" => request.limit(value.as_u64().unwrap() as u32),
                    "page_reverse" => request.page_reverse(value.as_bool().unwrap()),
                    "status" => request.status(text),
                    "marker" => request.marker(text),
                    "begin_time" => request.begin_time(text),
                    "job_type" => request.job_type(text),
                    other => panic!("{name}: no ListJobsRequest field for {other}"),
                };
            }
            request.to_call(PROJECT).unwrap()
        }
        "get_waf_confirm_async_job" => {
            waf::ConfirmAsyncJobRequest::new(PROJECT).enterprise_project_id("0").to_call(PROJECT).unwrap()
        }
        "path_param_with_space_and_slash" => cfw::ListJobRequest::new("a b/c").to_call(PROJECT).unwrap(),
        "post_json_body" => {
            // No model posts here; a raw call with the exact body bytes goes the same way.
            let body = vector["body"].as_str().unwrap().as_bytes().to_vec();
            Call::new(http::Method::POST, &["v1", PROJECT, "waf", "async-job"])
                .unwrap()
                .body(body, "application/json")
                .header("X-Project-Id", PROJECT)
                .unwrap()
        }
        other => panic!("vector {other} is new: make its call here, or list it in NOT_MADE_BY_THE_CLIENT"),
    }
}

#[test]
fn the_client_puts_the_official_sdks_signatures_on_the_wire() {
    let mut matched = Vec::new();
    for vector in vectors() {
        let name = vector["name"].as_str().unwrap();
        if NOT_MADE_BY_THE_CLIENT.iter().any(|(skipped, _)| *skipped == name) {
            continue;
        }
        let sent = vector["headers_as_sent"].as_object().unwrap();
        let header = |wanted: &str| {
            sent.iter().find(|(k, _)| k.eq_ignore_ascii_case(wanted)).map(|(_, v)| v.as_str().unwrap()).unwrap()
        };
        let endpoint = vector["url"].as_str().unwrap().split('/').take(3).collect::<Vec<_>>().join("/");
        let credentials = Credentials::new(vector["ak"].as_str().unwrap(), vector["sk"].as_str().unwrap());
        let client =
            Client::builder(&endpoint, credentials).header("User-Agent", header("User-Agent")).build().unwrap();
        let at = jobd_auth::parse_sdk_date(header("X-Sdk-Date")).unwrap();

        let request = client.prepare(&call_for(&vector), at).unwrap();

        assert_eq!(request.method().as_str(), vector["method"].as_str().unwrap(), "{name}");
        assert_eq!(request.uri().to_string(), vector["url"].as_str().unwrap(), "{name}: the URL");
        let ours: Vec<(String, String)> =
            request.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
        let mut theirs: Vec<(String, String)> =
            sent.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_owned())).collect();
        let mut ours_sorted = ours.clone();
        ours_sorted.sort();
        theirs.sort();
        assert_eq!(ours_sorted, theirs, "{name}: every header, Authorization included");
        assert_eq!(header("Authorization"), vector["authorization"].as_str().unwrap());
        let body = vector["body"].as_str().map(str::as_bytes).unwrap_or_default();
        assert_eq!(request.body().as_slice(), body, "{name}: the body");
        matched.push(name.to_owned());
    }
    assert_eq!(matched.len(), 5, "the five SDK-HMAC-SHA256 Python vectors: {matched:?}");
}

#[test]
fn a_token_client_signs_nothing() {
    let client = Client::new("http://127.0.0.1:8080", jobd_client::Auth::token("tok-secret")).unwrap();
    let call = ShowJobRequest::new("j").to_call(PROJECT).unwrap();
    let request = client.prepare(&call, chrono::Utc::now()).unwrap();
    assert_eq!(request.headers()["x-auth-token"], "tok-secret");
    assert!(request.headers().get("authorization").is_none());
    assert!(request.headers().get("x-sdk-date").is_none());
    assert!(!format!("{client:?}").contains("tok-secret"), "Debug never shows the token");
}
