//! `GET /openapi.json`: an OpenAPI 3.1 document of every route, built from the same declarations
//! the router and the permission check are built from (`endpoint`: each operation's summary,
//! parameters, bodies and statuses), with the response bodies' schemas (and the worker reports'
//! request bodies) derived from the wire types themselves.
//!
//! What it promises is what the handlers do: the constraints on bodies, path values and query
//! parameters are the validators' own (the patterns and limits are constants beside them), every
//! status an operation can answer is declared with its body, and each error status carries the
//! body shape `ApiError::shape` renders it in (IAM's own errors are Keystone-shaped). AK/SK is an
//! `apiKey` in the `Authorization` header (the value is the signature, see `jobd_auth`), the
//! token an `apiKey` in `X-Auth-Token`. schemathesis checks the document against the server
//! (tests/sdk/test_schemathesis.py).

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::routing::on;
use axum::Json;
use jobd_auth::identity::Role;
use jobd_core::ids::ENTERPRISE_PROJECT_ID_PATTERN;
use jobd_core::lease::{MAX_LEASE_SECONDS, MIN_LEASE_SECONDS};
use jobd_core::new_job::{
    MAX_ENTITIES, MAX_ERROR_CODE_LEN, MAX_ID_LEN, MAX_MESSAGE_LEN, MAX_RESOURCE_TYPE_LEN, MAX_SIMULATE_MESSAGES,
    MAX_SUB_JOBS, MAX_TIMEOUT_SECONDS, PRIORITY_RANGE,
};
use jobd_core::retry_policy::MAX_MAX_ATTEMPTS;
use jobd_core::{Execution, JobId, JobStatus, JobType, ProjectId, ServiceName, SimulateSpec};
use jobd_service::identity::{NAME_PATTERN, PASSWORD_LENGTH};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AdditionalProperties, SchemaType};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ArrayBuilder, ComponentsBuilder, ContentBuilder, InfoBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, OpenApi,
    OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, Schema, SchemaFormat, Type,
};
use utoipa::{PartialSchema, ToSchema};

use crate::dialect::Dialect;
use crate::endpoint::{endpoints, Access, Answer, Api, Content, Endpoint, Verb};
use crate::error::{ApiError, ErrorKind, ErrorShape};
use crate::native::CLIENT_TOKEN_PATTERN;
use crate::worker::{self, ReportOutcome};
use crate::{cfw, elb, native, waf};

/// `GET /openapi.json`.
const API: Api = Api::new(Dialect::Native, "native");

pub(crate) const ENDPOINTS: &[Endpoint] = &[API
    .get("/openapi.json", Access::Public, |m| on(m, openapi_json))
    .summary("This document")
    .answers(&[Answer { status: 200, content: Content::AnyObject, description: "Success" }])];

/// A query or header parameter an endpoint reads.
pub struct Parameter {
    name: &'static str,
    location: ParameterIn,
    schema: RefOr<Schema>,
    /// A query parameter that may repeat (an array, exploded).
    repeatable: bool,
    required: bool,
}

impl Parameter {
    /// An optional query parameter.
    fn query(name: &'static str, schema: impl Into<RefOr<Schema>>) -> Parameter {
        Parameter { name, location: ParameterIn::Query, schema: schema.into(), repeatable: false, required: false }
    }

    /// An optional query parameter that may repeat.
    fn repeated(name: &'static str, schema: impl Into<RefOr<Schema>>) -> Parameter {
        Parameter { repeatable: true, ..Parameter::query(name, schema) }
    }

    /// A request header.
    fn header(name: &'static str, schema: ObjectBuilder, required: bool) -> Parameter {
        Parameter { name, location: ParameterIn::Header, schema: schema.into(), repeatable: false, required }
    }
}

/// The query parameters of the endpoints that read some, by what they read.
pub mod parameters {
    use super::*;

    fn wait() -> Parameter {
        Parameter::query(
            "wait_seconds",
            integer(0, 60).description(Some("Hold the answer until the job ends, up to this many seconds")),
        )
    }

    /// A job's GET that may wait for the job to end (the seed dialects').
    pub fn job_wait() -> Vec<Parameter> {
        vec![wait()]
    }

    /// The native job's GET: a wait, and the version to wait past.
    pub fn native_job() -> Vec<Parameter> {
        let version = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .description(Some("With `wait_seconds`: answer once the job's version exceeds this one"));
        vec![wait(), Parameter::query("version", version)]
    }

    /// The native list's filters and page.
    pub fn native_list() -> Vec<Parameter> {
        let include = string()
            .pattern(Some("^(payload|result)(,(payload|result))*$"))
            .description(Some("Show `payload`, `result` or both (`payload,result`) in the list"));
        vec![
            Parameter::query("service", pattern(ServiceName::PATTERN)),
            Parameter::repeated("job_type", pattern(NO_CONTROL_CHARACTERS)),
            Parameter::repeated("resource_id", pattern(NO_CONTROL_CHARACTERS)),
            Parameter::repeated("status", enum_of(JobStatus::ALL.map(JobStatus::as_str))),
            Parameter::repeated("enterprise_project_id", pattern(ENTERPRISE_PROJECT_ID_PATTERN)),
            Parameter::query("limit", integer(1, i64::from(native::MAX_LIST_LIMIT))),
            Parameter::repeated("include", include),
            Parameter::query("marker", pattern(JobId::PATTERN)),
        ]
    }

    /// The native create's idempotency header.
    pub fn client_token() -> Vec<Parameter> {
        vec![Parameter::header(
            "X-Client-Token",
            pattern(CLIENT_TOKEN_PATTERN).description(Some("Idempotency: a repeat answers the job created with it")),
            false,
        )]
    }

    /// WAF's GET: the enterprise project, and a wait.
    pub fn waf_job() -> Vec<Parameter> {
        let enterprise_project =
            OneOfBuilder::new().item(pattern(ENTERPRISE_PROJECT_ID_PATTERN)).item(enum_of([waf::ALL_GRANTED_EPS, ""]));
        vec![Parameter::query("enterpriseProjectId", enterprise_project), wait()]
    }

    /// ELB's list: page and filters.
    pub fn elb_list() -> Vec<Parameter> {
        let begin_time = string()
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("Jobs created at or after: RFC 3339, also without offset (UTC) or with `+0800`"));
        vec![
            Parameter::query("limit", integer(0, i64::from(elb::MAX_LIMIT)).description(Some("0: the most"))),
            Parameter::query("page_reverse", enum_of(["true", "false", "True", "False"])),
            Parameter::query("marker", pattern(JobId::PATTERN)),
            Parameter::repeated("job_id", pattern(JobId::PATTERN)),
            Parameter::repeated("job_type", pattern(NO_CONTROL_CHARACTERS)),
            Parameter::repeated("error_code", pattern(NO_CONTROL_CHARACTERS)),
            Parameter::repeated("resource_id", pattern(NO_CONTROL_CHARACTERS)),
            Parameter::repeated("status", enum_of(elb::STATUS_FILTER_WORDS)),
            Parameter::repeated("begin_time", begin_time),
        ]
    }

    /// The project event stream's filters.
    pub fn project_events() -> Vec<Parameter> {
        vec![Parameter::query("service", pattern(ServiceName::PATTERN)), Parameter::repeated("job_type", string())]
    }

    /// IAM's token request.
    pub fn token_request() -> Vec<Parameter> {
        vec![Parameter::query("nocatalog", string())]
    }

    /// IAM's token revocation: the token.
    pub fn subject_token() -> Vec<Parameter> {
        vec![Parameter::header(
            "X-Subject-Token",
            string().min_length(Some(1)).description(Some("The token to revoke")),
            true,
        )]
    }

    /// IAM's project list.
    pub fn project_name() -> Vec<Parameter> {
        vec![Parameter::query("name", string())]
    }
}

/// The schema of a path value.
fn path_parameter(name: &str) -> ObjectBuilder {
    match name {
        "project_id" => pattern(ProjectId::PATTERN),
        "job_id" => pattern(JobId::PATTERN),
        _ => string().min_length(Some(1)),
    }
}

// ---- schema builders ----

/// No control characters (`char::is_control`: U+0000–U+001F, U+007F–U+009F), as the validators check.
const NO_CONTROL_CHARACTERS: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn pattern(pattern: &str) -> ObjectBuilder {
    string().pattern(Some(pattern))
}

/// A string of `min` to `max` characters without control characters.
fn text(min: usize, max: usize) -> ObjectBuilder {
    string().min_length(Some(min)).max_length(Some(max)).pattern(Some(NO_CONTROL_CHARACTERS))
}

fn integer(min: i64, max: i64) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(min as f64)).maximum(Some(max as f64))
}

fn number(min: f64, max: f64) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Number).minimum(Some(min)).maximum(Some(max))
}

fn enum_of<'a>(values: impl IntoIterator<Item = &'a str>) -> ObjectBuilder {
    string().enum_values(Some(values))
}

fn array(items: impl Into<RefOr<Schema>>, min: usize, max: Option<usize>) -> ArrayBuilder {
    ArrayBuilder::new().items(items.into()).min_items(Some(min)).max_items(max)
}

fn any_value() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::AnyValue)
}

/// An object of these properties; `closed`: no others are accepted (`deny_unknown_fields`).
fn object(properties: Vec<(&str, RefOr<Schema>)>, required: &[&str], closed: bool) -> ObjectBuilder {
    let mut object = ObjectBuilder::new();
    for (name, schema) in properties {
        object = object.property(name, schema);
    }
    for name in required {
        object = object.required(*name);
    }
    if closed {
        object = object.additional_properties(Some(AdditionalProperties::FreeForm(false)));
    }
    object
}

/// The same, or `null`: serde reads `null` as an absent optional field.
fn or_null(schema: ObjectBuilder, schema_type: Type) -> ObjectBuilder {
    schema.schema_type(SchemaType::from_iter([schema_type, Type::Null]))
}

fn reference(name: &str) -> RefOr<Schema> {
    Ref::from_schema_name(name).into()
}

/// API Gateway's and the services' error body (`ErrorShape::Huawei`).
fn error_body() -> RefOr<Schema> {
    let detail = object(vec![("error_code", string().into()), ("error_msg", string().into())], &[], false);
    object(
        vec![
            ("error_code", string().into()),
            ("error_msg", string().into()),
            ("request_id", string().into()),
            ("details", ArrayBuilder::new().items(detail).description(Some("WAF's authentication errors")).into()),
        ],
        &["error_code", "error_msg"],
        false,
    )
    .into()
}

/// IAM's own error body (`ErrorShape::Keystone`).
fn keystone_error_body() -> RefOr<Schema> {
    let error = object(
        vec![
            ("code", ObjectBuilder::new().schema_type(Type::Integer).into()),
            ("title", string().into()),
            ("message", string().into()),
        ],
        &["code", "title", "message"],
        false,
    );
    object(vec![("error", error.into())], &["error"], false).into()
}

/// The errors an operation can answer: per status, the kinds of error behind it (their shapes
/// give the body schema).
fn error_statuses(endpoint: &Endpoint) -> Vec<(StatusCode, Vec<ErrorKind>)> {
    use ErrorKind::*;
    let text = String::new;
    let mut statuses = Vec::new();
    let authenticated = endpoint.access.is_authenticated();
    let reads_input = authenticated || endpoint.checks_password;
    if reads_input {
        statuses.push((StatusCode::BAD_REQUEST, vec![InvalidRequest(text())]));
    }
    if authenticated {
        statuses.push((StatusCode::UNAUTHORIZED, vec![Unauthorized(text()), TokenExpired(text())]));
        statuses.push((StatusCode::FORBIDDEN, vec![Forbidden(text())]));
    } else if endpoint.checks_password {
        statuses.push((StatusCode::UNAUTHORIZED, vec![BadCredentials(text())]));
    }
    if endpoint.not_found {
        // The admin API and IAM also answer 404 for a project (or token) named in the body.
        statuses.push((StatusCode::NOT_FOUND, vec![JobNotFound(text()), ResourceNotFound(text())]));
    }
    if reads_input {
        statuses.push((StatusCode::REQUEST_TIMEOUT, vec![RequestTimeout(std::time::Duration::ZERO)]));
    }
    if endpoint.conflict {
        statuses.push((StatusCode::CONFLICT, vec![Conflict(text())]));
    }
    if reads_input {
        statuses.push((StatusCode::PAYLOAD_TOO_LARGE, vec![PayloadTooLarge(None)]));
        statuses.push((StatusCode::TOO_MANY_REQUESTS, vec![TooManyRequests(std::time::Duration::ZERO)]));
    }
    // Shed load, a store that cannot answer, the connection cap.
    if !endpoint.always_answers {
        statuses.push((StatusCode::SERVICE_UNAVAILABLE, vec![Unavailable(text())]));
    }
    statuses
}

/// The body schema of an error status: the shapes its kinds are rendered in.
fn error_schema(dialect: Dialect, kinds: Vec<ErrorKind>) -> RefOr<Schema> {
    let mut shapes: Vec<ErrorShape> = kinds.into_iter().map(|kind| ApiError::new(dialect, kind).shape()).collect();
    shapes.dedup();
    let name = |shape: ErrorShape| match shape {
        ErrorShape::Huawei => "Error",
        ErrorShape::Keystone => "KeystoneError",
    };
    match shapes.as_slice() {
        [shape] => reference(name(*shape)),
        shapes => shapes.iter().fold(OneOfBuilder::new(), |one_of, shape| one_of.item(reference(name(*shape)))).into(),
    }
}

/// `{"reports": [...]}`: each report is the body of its single route (`TaskComplete`, `TaskFail`)
/// plus `job_id` and `outcome`.
fn report_batch() -> RefOr<Schema> {
    let mut reports = OneOfBuilder::new();
    for outcome in ReportOutcome::ALL {
        let mut report = task_report(outcome);
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

/// A derived body schema with the validators' constraints on its fields (`fields` replaces
/// those properties, keeping their descriptions), closed to other fields (`deny_unknown_fields`).
fn constrained(schema: RefOr<Schema>, fields: Vec<(&str, ObjectBuilder)>) -> utoipa::openapi::schema::Object {
    let RefOr::T(Schema::Object(mut object)) = schema else { unreachable!("the schema of a struct is an object") };
    for (name, constraint) in fields {
        let description = match object.properties.get(name) {
            Some(RefOr::T(Schema::Object(field))) => field.description.clone(),
            _ => None,
        };
        object.properties.insert(name.to_owned(), constraint.description(description).into());
    }
    object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    object
}

/// The worker's report bodies, as their routes read them.
fn task_report(outcome: ReportOutcome) -> utoipa::openapi::schema::Object {
    let optional_message = || or_null(text(0, MAX_MESSAGE_LEN), Type::String);
    match outcome {
        ReportOutcome::Complete => {
            constrained(worker::CompleteBody::schema(), vec![("message", optional_message()), ("result", any_value())])
        }
        ReportOutcome::Fail => constrained(
            worker::FailBody::schema(),
            vec![("error_code", text(1, MAX_ERROR_CODE_LEN)), ("error_msg", text(0, MAX_MESSAGE_LEN))],
        ),
        ReportOutcome::Heartbeat => {
            let extend = integer(i64::from(MIN_LEASE_SECONDS), i64::from(MAX_LEASE_SECONDS));
            constrained(
                worker::HeartbeatBody::schema(),
                vec![("message", optional_message()), ("extend_seconds", or_null(extend, Type::Integer))],
            )
        }
    }
}

/// A job's request body (`sub_job`: one of its `sub_jobs`), with what `NewJob::validate` checks.
fn job_request(sub_job: bool) -> ObjectBuilder {
    let entity = object(
        vec![("resource_id", text(1, MAX_ID_LEN).into()), ("resource_type", text(1, MAX_RESOURCE_TYPE_LEN).into())],
        &["resource_id", "resource_type"],
        true,
    );
    let simulate = object(
        vec![
            ("duration_ms", integer(0, SimulateSpec::MAX_DURATION_MS as i64).into()),
            ("outcome", enum_of(["success", "failure"]).into()),
            ("error_code", text(1, MAX_ERROR_CODE_LEN).into()),
            ("error_msg", text(0, MAX_MESSAGE_LEN).into()),
            ("messages", array(text(0, MAX_MESSAGE_LEN), 0, Some(MAX_SIMULATE_MESSAGES)).into()),
        ],
        &[],
        true,
    )
    .description(Some("Play the job out with the built-in simulator"));
    let attempts = || or_null(integer(1, i64::from(MAX_MAX_ATTEMPTS)), Type::Integer);
    let timeout = || or_null(integer(1, i64::from(MAX_TIMEOUT_SECONDS)), Type::Integer);
    let mut properties: Vec<(&str, RefOr<Schema>)> = vec![
        ("job_type", pattern(JobType::PATTERN).into()),
        ("resource_id", or_null(text(1, MAX_ID_LEN), Type::String).into()),
        ("entities", array(entity, 0, Some(MAX_ENTITIES)).into()),
        ("payload", any_value().description(Some("Any JSON value, handed to the worker")).into()),
        ("simulate", or_null(simulate, Type::Object).into()),
        ("max_attempts", attempts().into()),
        ("timeout_seconds", timeout().into()),
    ];
    if sub_job {
        return object(properties, &["job_type"], true);
    }
    let backoff = object(
        vec![
            ("initial_seconds", number(0.0, 86_400.0).into()),
            ("multiplier", number(1.0, 100.0).into()),
            ("max_seconds", number(0.0, 86_400.0).description(Some("At least initial_seconds")).into()),
        ],
        &[],
        true,
    );
    properties.extend([
        ("service", pattern(ServiceName::PATTERN).into()),
        ("enterprise_project_id", or_null(pattern(ENTERPRISE_PROJECT_ID_PATTERN), Type::String).into()),
        ("message", or_null(text(0, MAX_MESSAGE_LEN), Type::String).into()),
        (
            "sub_jobs",
            array(job_request(true), 0, Some(MAX_SUB_JOBS))
                .description(Some("Run in order (or in parallel); `simulate` then belongs on each sub-job"))
                .into(),
        ),
        (
            "priority",
            or_null(integer(i64::from(*PRIORITY_RANGE.start()), i64::from(*PRIORITY_RANGE.end())), Type::Integer)
                .into(),
        ),
        (
            "run_at",
            or_null(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))), Type::String).into(),
        ),
        ("retry_backoff", or_null(backoff, Type::Object).into()),
        ("execution", enum_of([Execution::Sequential.as_str(), Execution::Parallel.as_str()]).into()),
        (
            "on_failure",
            enum_of(["fail", "rollback"]).description(Some("`rollback` needs sub-jobs to compensate")).into(),
        ),
    ]);
    object(properties, &["service", "job_type"], true)
}

/// Every request body the document names, but the worker reports'.
fn request_schemas() -> Vec<(&'static str, RefOr<Schema>)> {
    let name = || pattern(NAME_PATTERN);
    let role = || enum_of(Role::ALL.map(Role::as_str));
    let enterprise_projects = || array(pattern(ENTERPRISE_PROJECT_ID_PATTERN), 0, None);
    let mut batch_item = job_request(false);
    batch_item = batch_item.property(
        "client_token",
        pattern(CLIENT_TOKEN_PATTERN).description(Some("As X-Client-Token: replays the job created with it")),
    );
    let named = |with_id: bool| {
        let mut properties = vec![("name", string().into())];
        if with_id {
            properties.push(("id", string().into()));
        }
        object(properties, &[], false)
    };
    let user = object(
        vec![("name", string().into()), ("password", string().into()), ("domain", named(true).required("name").into())],
        &["name", "password", "domain"],
        false,
    );
    let identity = object(
        vec![
            (
                "methods",
                ArrayBuilder::new()
                    .items(string())
                    .description(Some("Must hold \"password\", the one method jobd supports"))
                    .into(),
            ),
            ("password", object(vec![("user", user.into())], &["user"], false).into()),
        ],
        &["methods", "password"],
        false,
    );
    let project = ObjectBuilder::new()
        .property("id", string())
        .property("name", string())
        .min_properties(Some(1))
        .description(Some("The project by id or by name"));
    let scope = object(vec![("project", project.into())], &["project"], false);
    let auth = object(vec![("identity", identity.into()), ("scope", scope.into())], &["identity", "scope"], false);
    vec![
        ("CreateJob", job_request(false).into()),
        (
            "CreateJobBatch",
            object(vec![("jobs", array(batch_item, 1, Some(jobd_service::MAX_BATCH)).into())], &["jobs"], true).into(),
        ),
        (
            "Claim",
            object(
                vec![
                    ("worker_id", text(1, worker::MAX_WORKER_ID_LEN).into()),
                    ("services", array(pattern(ServiceName::PATTERN), 1, None).into()),
                    ("job_types", array(string(), 1, None).into()),
                    (
                        "lease_seconds",
                        or_null(integer(i64::from(MIN_LEASE_SECONDS), i64::from(MAX_LEASE_SECONDS)), Type::Integer)
                            .into(),
                    ),
                    ("wait_seconds", or_null(integer(0, i64::from(worker::MAX_WAIT_SECONDS)), Type::Integer).into()),
                    ("max_tasks", or_null(integer(1, i64::from(worker::MAX_TASKS_PER_CLAIM)), Type::Integer).into()),
                ],
                &["worker_id", "services"],
                true,
            )
            .into(),
        ),
        ("CreateProject", object(vec![("name", name().into())], &["name"], true).into()),
        (
            "CreateUser",
            object(
                vec![
                    ("name", name().into()),
                    ("domain", name().into()),
                    (
                        "password",
                        string()
                            .min_length(Some(*PASSWORD_LENGTH.start()))
                            .max_length(Some(*PASSWORD_LENGTH.end()))
                            .into(),
                    ),
                    ("project_id", string().description(Some("An existing project")).into()),
                    ("role", role().into()),
                    (
                        "enterprise_project_ids",
                        enterprise_projects()
                            .description(Some("Absent: the creator's own limit; empty: every enterprise project"))
                            .into(),
                    ),
                ],
                &["name", "domain", "password", "project_id", "role"],
                true,
            )
            .into(),
        ),
        (
            "CreateCredential",
            object(
                vec![
                    ("project_ids", array(string(), 1, None).description(Some("Existing projects")).into()),
                    ("role", role().into()),
                    ("enterprise_project_ids", enterprise_projects().into()),
                ],
                &["project_ids", "role"],
                true,
            )
            .into(),
        ),
        ("TokenRequest", object(vec![("auth", auth.into())], &["auth"], false).into()),
    ]
}

/// The answers of the admin and IAM APIs and the health routes (written with `json!`).
fn answer_schemas() -> Vec<(&'static str, RefOr<Schema>)> {
    let nullable_string = || ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]));
    let strings = || ArrayBuilder::new().items(string());
    let project = object(
        vec![("id", string().into()), ("name", string().into()), ("created_at", string().into())],
        &["id", "name", "created_at"],
        false,
    );
    let user = object(
        vec![
            ("id", string().into()),
            ("name", string().into()),
            ("domain", string().into()),
            ("project_id", string().into()),
            ("role", string().into()),
            ("enterprise_project_ids", strings().into()),
            ("created_at", string().into()),
        ],
        &["id", "name", "domain", "project_id", "role", "enterprise_project_ids", "created_at"],
        false,
    );
    let credential = || {
        object(
            vec![
                ("access_key", string().into()),
                ("owner", string().into()),
                ("project_ids", strings().into()),
                ("role", string().into()),
                ("enterprise_project_ids", strings().into()),
                ("enabled", ObjectBuilder::new().schema_type(Type::Boolean).into()),
                ("created_at", string().into()),
                ("last_used_at", nullable_string().into()),
            ],
            &["access_key", "owner", "project_ids", "role", "enterprise_project_ids", "enabled", "created_at"],
            false,
        )
    };
    let list =
        |field: &str, item: &str| object(vec![(field, ArrayBuilder::new().items(reference(item)).into())], &[], false);
    let named = || object(vec![("id", string().into()), ("name", string().into())], &["id", "name"], false);
    let token = object(
        vec![
            ("expires_at", string().into()),
            ("issued_at", string().into()),
            ("methods", strings().into()),
            ("project", named().property("domain", named()).into()),
            ("roles", ArrayBuilder::new().items(named()).into()),
            ("user", named().property("domain", named()).into()),
            ("catalog", ArrayBuilder::new().items(ObjectBuilder::new()).description(Some("Unless `nocatalog`")).into()),
        ],
        &["expires_at", "issued_at", "methods", "project", "roles", "user"],
        false,
    );
    let iam_project = named()
        .property("enabled", ObjectBuilder::new().schema_type(Type::Boolean))
        .property("description", string())
        .property("is_domain", ObjectBuilder::new().schema_type(Type::Boolean));
    vec![
        ("Project", project.into()),
        ("ProjectList", list("projects", "Project").required("projects").into()),
        ("User", user.into()),
        ("UserList", list("users", "User").required("users").into()),
        ("Credential", credential().into()),
        (
            "CreatedCredential",
            credential()
                .property("secret_key", string().description(Some("Shown this once")))
                .required("secret_key")
                .into(),
        ),
        ("CredentialList", list("credentials", "Credential").required("credentials").into()),
        ("Token", object(vec![("token", token.into())], &["token"], false).into()),
        (
            "IamProjectList",
            object(
                vec![
                    ("projects", ArrayBuilder::new().items(iam_project).into()),
                    ("links", ObjectBuilder::new().into()),
                ],
                &["projects"],
                false,
            )
            .into(),
        ),
        ("Health", object(vec![("status", string().into())], &["status"], false).into()),
    ]
}

fn add<T: ToSchema>(components: ComponentsBuilder) -> ComponentsBuilder {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    components.schema(T::name(), T::schema()).schemas_from_iter(nested)
}

/// The summary of an authenticated endpoint says who may call it.
fn summary(endpoint: &Endpoint) -> String {
    match endpoint.access {
        Access::Needs(action) => format!("{} (needs the {action:?} right)", endpoint.summary),
        Access::AnyCaller => format!("{} (any authenticated caller)", endpoint.summary),
        Access::Public | Access::Page => endpoint.summary.to_owned(),
    }
}

fn operation(endpoint: &Endpoint) -> utoipa::openapi::path::Operation {
    let (method, path) = (endpoint.method.as_str(), endpoint.path);
    let id = format!("{}_{}", method.to_lowercase(), path.trim_matches('/').replace(['/', '{', '}', '.', '-'], "_"));
    let mut builder = OperationBuilder::new().operation_id(Some(id)).summary(Some(summary(endpoint))).tag(endpoint.tag);
    for parameter in path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(parameter)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(path_parameter(parameter))),
        );
    }
    for Parameter { name, location, schema, repeatable, required } in (endpoint.parameters)() {
        let schema = if repeatable { ArrayBuilder::new().items(schema).into() } else { schema };
        let required = if required { Required::True } else { Required::False };
        let parameter =
            ParameterBuilder::new().name(name).parameter_in(location).required(required).schema(Some(schema));
        let parameter = if repeatable { parameter.explode(Some(true)) } else { parameter };
        builder = builder.parameter(parameter);
    }
    if endpoint.method == Verb::Post {
        let schema: RefOr<Schema> = match endpoint.request {
            Some(name) => reference(name),
            None => ObjectBuilder::new().schema_type(Type::Object).into(),
        };
        let body = ContentBuilder::new().schema(Some(schema)).build();
        let required = if endpoint.request.is_some() { Required::True } else { Required::False };
        let body = RequestBodyBuilder::new().content("application/json", body).required(Some(required));
        builder = builder.request_body(Some(body.build()));
    }
    for answer in endpoint.answers {
        let mut ok = ResponseBuilder::new().description(answer.description);
        let content = match answer.content {
            Content::Undescribed => None,
            Content::Json(name) => Some(("application/json", reference(name))),
            Content::AnyObject => Some(("application/json", ObjectBuilder::new().schema_type(Type::Object).into())),
            Content::Text => Some(("text/plain", string().into())),
            Content::EventStream => Some(("text/event-stream", string().into())),
        };
        if let Some((content_type, schema)) = content {
            ok = ok.content(content_type, ContentBuilder::new().schema(Some(schema)).build());
        }
        if let Some((name, description)) = endpoint.answer_header {
            ok = ok.header(name, HeaderBuilder::new().schema(string()).description(Some(description)).build());
        }
        builder = builder.response(answer.status.to_string(), ok.build());
    }
    for (status, kinds) in error_statuses(endpoint) {
        let description = status.canonical_reason().unwrap_or("Error");
        let mut response = ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new().schema(Some(error_schema(endpoint.dialect, kinds))).build(),
        );
        if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
            let retry_after = HeaderBuilder::new().schema(integer(1, i64::from(u32::MAX))).description(Some("Seconds"));
            response = response.header("Retry-After", retry_after.build());
        }
        builder = builder.response(status.as_str(), response.build());
    }
    if endpoint.access.is_authenticated() {
        builder = builder
            .security(SecurityRequirement::new("aksk", Vec::<String>::new()))
            .security(SecurityRequirement::new("token", Vec::<String>::new()));
    }
    builder.build()
}

fn http_method(verb: Verb) -> HttpMethod {
    match verb {
        Verb::Get => HttpMethod::Get,
        Verb::Post => HttpMethod::Post,
        Verb::Delete => HttpMethod::Delete,
    }
}

/// Builds the document: every declared endpoint but the console's pages.
pub fn build() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for endpoint in endpoints().filter(|endpoint| endpoint.access != Access::Page) {
        paths = paths.path(endpoint.path, PathItem::new(http_method(endpoint.method), operation(endpoint)));
    }
    let mut components = ComponentsBuilder::new()
        .schema("Error", error_body())
        .schema("KeystoneError", keystone_error_body())
        .schemas_from_iter(request_schemas())
        .schemas_from_iter(answer_schemas());
    components = add::<cfw::ListJobResponse>(components);
    components = add::<waf::ConfirmAsyncJobResponse>(components);
    components = add::<elb::ShowJobResponse>(components);
    components = add::<elb::ListJobsResponse>(components);
    components = add::<native::JobEnvelope>(components);
    components = add::<native::JobList>(components);
    components = add::<native::JobBatch>(components);
    for (name, outcome) in [
        ("TaskComplete", ReportOutcome::Complete),
        ("TaskFail", ReportOutcome::Fail),
        ("TaskHeartbeat", ReportOutcome::Heartbeat),
    ] {
        components = components.schema(name, task_report(outcome));
    }
    components = add::<worker::TaskReportResults>(components).schema("TaskReportBatch", report_batch());
    components = add::<worker::ClaimAnswer>(components);
    components = add::<worker::HeartbeatAnswer>(components);
    // Not a bearer token: the value is a signature over the request (Huawei Cloud's AK/SK).
    let aksk = SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
        "Authorization",
        "AK/SK: `SDK-HMAC-SHA256 Access=AK, SignedHeaders=..., Signature=...` (or `SDK-HMAC-SM3`, \
         `V11-HMAC-SHA256`) with `X-Sdk-Date`, signed over the method, path, query, signed headers and \
         body as Huawei Cloud's SDKs sign",
    )));
    let token = SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
        "X-Auth-Token",
        "A token from `POST /v3/auth/tokens` (its `X-Subject-Token`)",
    )));
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
