//! API errors: one typed enum, mapped once per dialect to an HTTP status, a Huawei error code and
//! a body shape. Handlers return `ApiError`; the `render_errors` middleware writes the body,
//! because only it knows the request id that some shapes carry.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jobd_core::error_code::{self, TaskGone};
use serde_json::{json, Map, Value};

use crate::dialect::Dialect;
use crate::request_id::RequestId;

/// What went wrong, in the API's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Missing, malformed or wrong credentials (a signature that does not verify, an unknown AK).
    Unauthorized(String),
    /// The request body did not arrive within the body read timeout.
    RequestTimeout(std::time::Duration),
    /// A request the HTTP parser refused before routing (`400` malformed, `414` URI too long,
    /// `431` header fields too large).
    Unparsable(StatusCode),
    /// A token past its expiry.
    TokenExpired(String),
    /// A token request with a wrong user, password or scope (IAM answers it, not the gateway).
    BadCredentials(String),
    /// Over the caller's rate limit; retry after the wait.
    TooManyRequests(std::time::Duration),
    /// The caller is known but may not act here (another project, a mismatched `X-Project-Id`).
    Forbidden(String),
    /// No API at this path.
    RouteNotFound,
    /// The path exists, the method does not.
    MethodNotAllowed,
    /// The body is larger than the configured limit (bytes, when known).
    PayloadTooLarge(Option<usize>),
    /// A job id that is not in the dialect's id format.
    InvalidJobId(String),
    /// A body, query or path value the API cannot accept.
    InvalidRequest(String),
    /// No such job for this caller in this dialect.
    JobNotFound(String),
    /// No such project, user or credential (the admin API).
    ResourceNotFound(String),
    /// The job cannot make this move (for example cancelling a finished job).
    Conflict(String),
    /// A worker's call on a task it may no longer touch, and why (each reason its own code).
    TaskGone(TaskGone, String),
    /// A dependency (the store) cannot answer right now.
    Unavailable(String),
    /// A fault of jobd's own.
    Internal(String),
}

/// The two shapes of an error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// API Gateway's and the services': `{"error_code", "error_msg", "request_id"?, "details"?}`.
    Huawei,
    /// IAM's own errors, the Keystone way: `{"error": {"code", "title", "message"}}`.
    Keystone,
}

/// An error in the dialect of the request that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub dialect: Dialect,
    pub kind: ErrorKind,
}

impl ApiError {
    pub fn new(dialect: Dialect, kind: ErrorKind) -> Self {
        ApiError { dialect, kind }
    }

    pub fn invalid(dialect: Dialect, message: impl Into<String>) -> Self {
        ApiError::new(dialect, ErrorKind::InvalidRequest(message.into()))
    }

    /// The same error about a part of the request (`jobs[3]`): a bad request's message names it.
    pub fn within(self, part: String) -> Self {
        match self.kind {
            ErrorKind::InvalidRequest(message) => {
                ApiError { kind: ErrorKind::InvalidRequest(format!("{part}: {message}")), ..self }
            }
            _ => self,
        }
    }

    /// Maps a service error into this dialect.
    pub fn from_service(dialect: Dialect, error: jobd_service::ServiceError) -> Self {
        use jobd_service::ServiceError;
        let kind = match error {
            ServiceError::Invalid(e) => ErrorKind::InvalidRequest(e.to_string()),
            error @ (ServiceError::InvalidItem { .. } | ServiceError::BatchSize { .. }) => {
                ErrorKind::InvalidRequest(error.to_string())
            }
            error @ ServiceError::ItemIdempotencyConflict { .. } => ErrorKind::Conflict(error.to_string()),
            ServiceError::NotFound(id) => ErrorKind::JobNotFound(id),
            ServiceError::Conflict(e) => ErrorKind::Conflict(e.to_string()),
            ServiceError::IdempotencyConflict => ErrorKind::Conflict(
                "X-Client-Token was used before with a different request; use a new token".to_owned(),
            ),
            ServiceError::Store(e) if e.is_unavailable() => ErrorKind::Unavailable(e.to_string()),
            ServiceError::Store(e) => ErrorKind::Internal(e.to_string()),
        };
        ApiError::new(dialect, kind)
    }

    /// The body shape this error is answered in (`/openapi.json` declares the same).
    pub fn shape(&self) -> ErrorShape {
        if self.dialect == Dialect::Iam && !self.is_gateway_error() {
            ErrorShape::Keystone
        } else {
            ErrorShape::Huawei
        }
    }

    fn is_gateway_error(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Unauthorized(_)
                | ErrorKind::TokenExpired(_)
                | ErrorKind::TooManyRequests(_)
                | ErrorKind::Forbidden(_)
                | ErrorKind::RouteNotFound
                | ErrorKind::MethodNotAllowed
                | ErrorKind::PayloadTooLarge(_)
                | ErrorKind::RequestTimeout(_)
                | ErrorKind::Unparsable(_)
        )
    }

    /// The one table from (dialect, kind) to HTTP status, error code and message.
    pub fn status_code_message(&self) -> (StatusCode, &'static str, String) {
        use Dialect::*;
        use ErrorKind::*;
        match (&self.kind, self.dialect) {
            (Unauthorized(detail), _) => {
                (StatusCode::UNAUTHORIZED, "APIGW.0301", format!("Incorrect IAM authentication information: {detail}"))
            }
            (BadCredentials(detail), _) => (StatusCode::UNAUTHORIZED, "APIGW.0301", detail.clone()),
            (TokenExpired(detail), _) => {
                (StatusCode::UNAUTHORIZED, "APIGW.0307", format!("The token must be updated: {detail}"))
            }
            (TooManyRequests(_), _) => {
                (StatusCode::TOO_MANY_REQUESTS, "APIGW.0308", "The throttling threshold has been reached.".to_owned())
            }
            (Forbidden(detail), _) => (
                StatusCode::FORBIDDEN,
                "APIGW.0302",
                format!("The IAM user is not authorized to access the API: {detail}"),
            ),
            (RouteNotFound, _) => (
                StatusCode::NOT_FOUND,
                error_code::ROUTE_NOT_FOUND,
                "The API does not exist or has not been published in the environment.".to_owned(),
            ),
            (MethodNotAllowed, _) => (
                StatusCode::METHOD_NOT_ALLOWED,
                error_code::ROUTE_NOT_FOUND,
                "The API does not exist: the method is not allowed on this path.".to_owned(),
            ),
            (PayloadTooLarge(limit), _) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "APIGW.0201",
                match limit {
                    Some(limit) => format!("Request entity too large. The limit is {limit} bytes."),
                    None => "Request entity too large.".to_owned(),
                },
            ),
            (RequestTimeout(limit), _) => (
                StatusCode::REQUEST_TIMEOUT,
                "APIGW.0201",
                format!("Request error: the body did not arrive within {} s.", limit.as_secs_f64()),
            ),
            (Unparsable(status), _) => (
                *status,
                "APIGW.0201",
                format!("Request error: {}.", status.canonical_reason().unwrap_or("malformed request").to_lowercase()),
            ),
            (InvalidJobId(m), Native | Iam) | (InvalidRequest(m), Native | Iam) => {
                (StatusCode::BAD_REQUEST, error_code::INVALID_REQUEST, m.clone())
            }
            (InvalidJobId(m), Cfw) | (InvalidRequest(m), Cfw) => {
                (StatusCode::BAD_REQUEST, "CFW.00200001", format!("Invalid parameter: {m}"))
            }
            (InvalidJobId(m), Waf) => (StatusCode::BAD_REQUEST, "WAF.00011004", format!("id.illegal: {m}")),
            (InvalidRequest(m), Waf) => (StatusCode::BAD_REQUEST, "WAF.00011002", format!("url.param.illegal: {m}")),
            (InvalidJobId(m), Elb) | (InvalidRequest(m), Elb) => {
                (StatusCode::BAD_REQUEST, "ELB.8902", format!("Invalid request: {m}"))
            }
            (ResourceNotFound(what), _) => (StatusCode::NOT_FOUND, error_code::NOT_FOUND, format!("{what} not found")),
            (JobNotFound(id), Native | Iam) => {
                (StatusCode::NOT_FOUND, error_code::JOB_NOT_FOUND, format!("job {id} not found"))
            }
            (JobNotFound(id), Cfw) => {
                (StatusCode::NOT_FOUND, "CFW.00200005", format!("Object not found: job {id} does not exist."))
            }
            (JobNotFound(id), Waf) => {
                (StatusCode::NOT_FOUND, "WAF.00014001", format!("resource.not.found: job {id} does not exist"))
            }
            (JobNotFound(id), Elb) => (StatusCode::NOT_FOUND, "ELB.8904", format!("job {id} could not be found.")),
            (Conflict(m), _) => (StatusCode::CONFLICT, error_code::JOB_CONFLICT, m.clone()),
            (TaskGone(reason, m), _) => (StatusCode::CONFLICT, reason.error_code(), m.clone()),
            (Unavailable(m), _) => {
                (StatusCode::SERVICE_UNAVAILABLE, error_code::UNAVAILABLE, format!("Service unavailable: {m}"))
            }
            (Internal(_), Native | Iam) => {
                (StatusCode::INTERNAL_SERVER_ERROR, error_code::INTERNAL, "Internal server error.".to_owned())
            }
            (Internal(_), Cfw) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "CFW.00300001", "Failed to query the database.".to_owned())
            }
            (Internal(_), Waf) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "WAF.00010001", "Internal server error.".to_owned())
            }
            (Internal(_), Elb) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "APIGW.0601", "Internal server error.".to_owned())
            }
        }
    }

    /// The response: status, `application/json`, and the dialect's body shape.
    pub fn render(&self, request_id: Option<&RequestId>) -> Response {
        let (status, code, message) = self.status_code_message();
        if let ErrorKind::Internal(detail) = &self.kind {
            tracing::error!(%detail, "internal error");
        }
        let mut body = Map::new();
        if self.shape() == ErrorShape::Keystone {
            // IAM answers its own errors the Keystone way.
            let title = status.canonical_reason().unwrap_or("Error");
            let body = json!({"error": {"code": status.as_u16(), "message": message, "title": title}});
            return (status, axum::Json(body)).into_response();
        }
        body.insert("error_code".into(), json!(code));
        body.insert("error_msg".into(), json!(message));
        let with_request_id = self.is_gateway_error() || matches!(self.dialect, Dialect::Native | Dialect::Elb);
        if with_request_id {
            if let Some(id) = request_id {
                body.insert("request_id".into(), json!(id.as_str()));
            }
        }
        let auth_error =
            matches!(self.kind, ErrorKind::Unauthorized(_) | ErrorKind::TokenExpired(_) | ErrorKind::Forbidden(_));
        if self.dialect == Dialect::Waf && auth_error {
            body.insert("details".into(), json!([{"error_code": code, "error_msg": message}]));
        }
        let mut response = (status, axum::Json(Value::Object(body))).into_response();
        match &self.kind {
            ErrorKind::Unavailable(_) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ErrorKind::TooManyRequests(wait) => crate::caller::retry_after(&mut response, *wait),
            _ => {}
        }
        response
    }
}

impl IntoResponse for ApiError {
    /// Marks the response; `render_errors` turns it into the dialect's body.
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self.status_code_message().0;
        response.extensions_mut().insert(self);
        response
    }
}

/// Writes every `ApiError` in its dialect's shape, and wraps any other error response (from a
/// layer or extractor outside our control) in the same shape.
pub(crate) fn render_answer(mut response: Response, request_id: &RequestId, uri: &axum::http::Uri) -> Response {
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        return error.render(Some(request_id));
    }
    let status = response.status();
    let is_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let kind = match status {
            StatusCode::NOT_FOUND => ErrorKind::RouteNotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorKind::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::PayloadTooLarge(None),
            s if s.is_client_error() => {
                ErrorKind::InvalidRequest(s.canonical_reason().unwrap_or("bad request").to_owned())
            }
            _ => ErrorKind::Internal(format!("unexpected status {status}")),
        };
        // The dialect of the path is looked up only for a stray error.
        let mut rendered = ApiError::new(Dialect::of_path(uri.path()), kind).render(Some(request_id));
        // Keep what the router computed, such as the methods a 405 path allows.
        if let Some(allow) = response.headers().get(header::ALLOW) {
            rendered.headers_mut().insert(header::ALLOW, allow.clone());
        }
        return rendered;
    }
    response
}

/// The whole HTTP/1.1 answer to a request the HTTP parser refused (`status` 400, 414 or 431):
/// the gateway error shape with a fresh request id, then the connection closes. Answers the bytes
/// and the request id (for the log line).
pub fn unparsable_request_answer(status: StatusCode) -> (Vec<u8>, String) {
    let request_id = RequestId::generate();
    let error = ApiError::new(Dialect::Native, ErrorKind::Unparsable(status));
    let (status, code, message) = error.status_code_message();
    let body = json!({"error_code": code, "error_msg": message, "request_id": request_id.as_str()}).to_string();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\nx-request-id: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        request_id.as_str(),
        body.len()
    );
    ([head.into_bytes(), body.into_bytes()].concat(), request_id.as_str().to_owned())
}

pub async fn route_not_found(request: Request) -> ApiError {
    ApiError::new(Dialect::of_path(request.uri().path()), ErrorKind::RouteNotFound)
}

/// A handler that panicked answers a JSON 500 (rendered by `render_errors`), not a dropped connection.
pub fn panic_to_internal_error(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::new(Dialect::Native, ErrorKind::Internal(format!("handler panicked: {detail}"))).into_response()
}
