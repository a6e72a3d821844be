//! `GET /openapi.json`: an OpenAPI 3.1 document of every route, built from the same permission
//! table the server enforces (`ROUTE_ACTIONS`) plus the public routes, with the response bodies'
//! schemas (and the worker reports' request bodies) derived from the wire types themselves.

use std::sync::OnceLock;

use axum::Json;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ArrayBuilder, ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OneOfBuilder, OpenApi, OpenApiBuilder,
    PathsBuilder, Ref, RefOr, Required, Schema, Type,
};
use utoipa::{PartialSchema, ToSchema};

use crate::caller::ROUTE_ACTIONS;
use crate::worker::{self, ReportOutcome};
use crate::{cfw, elb, native, waf};

/// Routes that need no caller: method, path, summary.
pub const PUBLIC_ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/healthz", "Liveness"),
    ("GET", "/readyz", "Readiness: the store answers"),
    ("GET", "/metrics", "Prometheus metrics"),
    ("GET", "/openapi.json", "This document"),
    (
        "POST",
        "/v3/auth/tokens",
        "Get a token for a user (IAM password method, plus totp for a user with a virtual MFA device; \
         scoped to a project or to the user's domain); the token is in X-Subject-Token",
    ),
];

/// The schema of a route's success body, and its status.
fn success(method: &str, path: &str) -> (&'static str, Option<&'static str>) {
    match (method, path) {
        ("GET", "/v3/{project_id}/jobs/{job_id}") => ("200", Some("ListJobResponse")),
        ("GET", "/v1/{project_id}/waf/async-job/{job_id}") => ("200", Some("ConfirmAsyncJobResponse")),
        ("GET", "/v3/{project_id}/elb/jobs/{job_id}") => ("200", Some("ShowJobResponse")),
        ("GET", "/v3/{project_id}/elb/jobs") => ("200", Some("ListJobsResponse")),
        ("POST", "/v1/{project_id}/jobs") => ("201", Some("JobEnvelope")),
        ("POST", "/v1/{project_id}/jobs/batch") => ("201", Some("JobBatch")),
        ("GET", "/v1/{project_id}/jobs") => ("200", Some("JobList")),
        ("GET", "/v1/{project_id}/jobs/{job_id}") | ("POST", "/v1/{project_id}/jobs/{job_id}/cancel") => {
            ("200", Some("JobEnvelope"))
        }
        ("POST", "/v1/worker/tasks/batch") => ("200", Some("TaskReportResults")),
        ("POST", p) if p.starts_with("/v1/worker/tasks/") && !p.ends_with("/heartbeat") => ("200", Some("JobEnvelope")),
        (_, p) if p.ends_with("/events") => ("200", None),
        ("POST", "/v1/admin/projects" | "/v1/admin/users" | "/v1/admin/credentials") => ("201", None),
        ("POST", "/v1/admin/users/{user_id}/mfa") => ("201", None),
        ("DELETE", _) => ("204", None),
        ("POST", p) if p.ends_with("/disable") || p.ends_with("/enable") => ("204", None),
        ("POST", "/v3/auth/tokens") => ("201", None),
        _ => ("200", None),
    }
}

/// The schema of a route's request body, where it is documented (otherwise: a JSON object).
fn request(method: &str, path: &str) -> Option<&'static str> {
    match (method, path) {
        ("POST", "/v1/worker/tasks/{job_id}/complete") => Some("TaskComplete"),
        ("POST", "/v1/worker/tasks/{job_id}/fail") => Some("TaskFail"),
        ("POST", "/v1/worker/tasks/{job_id}/heartbeat") => Some("TaskHeartbeat"),
        ("POST", "/v1/worker/tasks/batch") => Some("TaskReportBatch"),
        _ => None,
    }
}

fn tag(path: &str) -> &'static str {
    match crate::dialect::Dialect::of_path(path) {
        crate::Dialect::Cfw => "CFW",
        crate::Dialect::Waf => "WAF",
        crate::Dialect::Elb => "ELB",
        crate::Dialect::Iam => "IAM",
        crate::Dialect::Native if path.starts_with("/v1/worker") => "worker",
        crate::Dialect::Native if path.starts_with("/v1/admin") => "admin",
        crate::Dialect::Native => "native",
    }
}

fn error_body() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("error_code", ObjectBuilder::new().schema_type(Type::String))
        .property("error_msg", ObjectBuilder::new().schema_type(Type::String))
        .property("request_id", ObjectBuilder::new().schema_type(Type::String))
        .required("error_code")
        .required("error_msg")
        .into()
}

/// `{"reports": [...]}`: each report is the body of its single route (`TaskComplete`, `TaskFail`)
/// plus `job_id` and `outcome`.
fn report_batch() -> RefOr<Schema> {
    let mut reports = OneOfBuilder::new();
    for outcome in ReportOutcome::ALL {
        let body = match outcome {
            ReportOutcome::Complete => worker::CompleteBody::schema(),
            ReportOutcome::Fail => worker::FailBody::schema(),
            ReportOutcome::Heartbeat => worker::HeartbeatBody::schema(),
        };
        let RefOr::T(Schema::Object(mut report)) = body else { unreachable!("the schema of a struct is an object") };
        report.properties.insert("job_id".to_owned(), ObjectBuilder::new().schema_type(Type::String).into());
        let outcome_schema = ObjectBuilder::new().schema_type(Type::String).enum_values(Some([outcome.as_str()]));
        report.properties.insert("outcome".to_owned(), outcome_schema.into());
        report.required.extend(["job_id".to_owned(), "outcome".to_owned()]);
        report.description =
            Some(format!("A report with outcome `{0}`: the body of `.../{0}` plus `job_id`.", outcome.as_str()));
        reports = reports.item(Schema::Object(report));
    }
    let reports = ArrayBuilder::new()
        .items(reports)
        .min_items(Some(1))
        .max_items(Some(worker::MAX_REPORTS_PER_BATCH))
        .description(Some("Each task at most once."));
    let answer = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(worker::ReportAnswer::ALL.map(worker::ReportAnswer::as_str)))
        .default(Some(worker::ReportAnswer::Job.as_str().into()))
        .description(Some("What each `200` result carries: the task (`job`) or only its status word (`status`)."));
    ObjectBuilder::new().property("reports", reports).required("reports").property("answer", answer).into()
}

fn add<T: ToSchema>(components: ComponentsBuilder) -> ComponentsBuilder {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    components.schema(T::name(), T::schema()).schemas_from_iter(nested)
}

fn operation(method: &str, path: &str, summary: &str, authenticated: bool) -> utoipa::openapi::path::Operation {
    let id = format!("{}_{}", method.to_lowercase(), path.trim_matches('/').replace(['/', '{', '}', '.', '-'], "_"));
    let mut builder = OperationBuilder::new().operation_id(Some(id)).summary(Some(summary)).tag(tag(path));
    for parameter in path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(parameter)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    if method == "POST" {
        let schema: RefOr<Schema> = match request(method, path) {
            Some(name) => Ref::from_schema_name(name).into(),
            None => ObjectBuilder::new().schema_type(Type::Object).into(),
        };
        let body = ContentBuilder::new().schema(Some(schema)).build();
        builder = builder.request_body(Some(RequestBodyBuilder::new().content("application/json", body).build()));
    }
    let (status, schema) = success(method, path);
    let mut ok = ResponseBuilder::new().description("Success");
    if let Some(name) = schema {
        ok = ok.content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).build());
    } else if path.ends_with("/events") {
        ok = ok.content("text/event-stream", ContentBuilder::new().build());
    }
    builder = builder.response(status, ok.build());
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build())
            .build()
    };
    builder = builder.response("400", error("Bad request")).response("404", error("Not found"));
    if authenticated {
        builder = builder
            .response("401", error("No valid signature or token"))
            .response("403", error("Not allowed for this caller or project"))
            .response("429", error("Over the caller's rate limit"))
            .security(SecurityRequirement::new("aksk", Vec::<String>::new()))
            .security(SecurityRequirement::new("token", Vec::<String>::new()));
    }
    builder.build()
}

fn http_method(method: &str) -> HttpMethod {
    match method {
        "POST" => HttpMethod::Post,
        "DELETE" => HttpMethod::Delete,
        "PUT" => HttpMethod::Put,
        _ => HttpMethod::Get,
    }
}

/// Builds the document (every authenticated route of `ROUTE_ACTIONS` and every public route).
pub fn build() -> OpenApi {
    let mut paths = PathsBuilder::new();
    let routes = PUBLIC_ROUTES.iter().map(|(m, p, summary)| (*m, *p, summary.to_string(), false)).chain(
        ROUTE_ACTIONS.iter().map(|(m, p, action)| {
            let summary = match action {
                Some(action) => format!("{m} {p} (needs the {action:?} right)"),
                None => format!("{m} {p} (any authenticated caller)"),
            };
            (*m, *p, summary, true)
        }),
    );
    for (method, path, summary, authenticated) in routes {
        paths = paths.path(path, PathItem::new(http_method(method), operation(method, path, &summary, authenticated)));
    }
    let mut components = ComponentsBuilder::new().schema("Error", error_body());
    components = add::<cfw::ListJobResponse>(components);
    components = add::<waf::ConfirmAsyncJobResponse>(components);
    components = add::<elb::ShowJobResponse>(components);
    components = add::<elb::ListJobsResponse>(components);
    components = add::<native::JobEnvelope>(components);
    components = add::<native::JobList>(components);
    components = add::<native::JobBatch>(components);
    components = add::<worker::CompleteBody>(components);
    components = add::<worker::FailBody>(components);
    components = add::<worker::HeartbeatBody>(components);
    components = add::<worker::TaskReportResults>(components).schema("TaskReportBatch", report_batch());
    let aksk = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("SDK-HMAC-SHA256 Access=AK, SignedHeaders=..., Signature=... (with X-Sdk-Date)")
            .build(),
    );
    let token = SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Auth-Token")));
    let components = components.security_scheme("aksk", aksk).security_scheme("token", token).build();
    OpenApiBuilder::new()
        .info(InfoBuilder::new().title("jobd").version(env!("CARGO_PKG_VERSION")).description(Some(
            "Asynchronous jobs for cloud control planes: the native, worker, admin and IAM APIs and \
             Huawei Cloud's CFW, WAF and ELB job-status APIs.",
        )))
        .paths(paths.build())
        .components(Some(components))
        .build()
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> Json<OpenApi> {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    Json(DOCUMENT.get_or_init(build).clone())
}
