//! Who is calling, and may they: authentication (an AK/SK signature, an `X-Auth-Token`, or the
//! console's session cookie), the rate limit, the role's right to the route (its `Access` in the
//! route's declaration, `endpoint`), and the project check — once, for every API route.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use jobd_auth::identity::{Action, Principal};
use jobd_auth::{Authorization, RequestParts, VerifyOptions};
use jobd_service::identity::IdentityError;

use crate::dialect::Dialect;
use crate::endpoint::{self, Access};
use crate::error::{ApiError, ErrorKind};
use crate::{ApiConfig, AppState};

pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";

/// The authenticated caller of a request, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
}

/// Reads a body up to the limit (`413` past it) within the body read timeout (`408` past it).
pub async fn read_body(
    dialect: Dialect,
    headers: &http::HeaderMap,
    body: Body,
    config: &ApiConfig,
) -> Result<Bytes, ApiError> {
    let limit = config.max_body_bytes;
    let too_large = || ApiError::new(dialect, ErrorKind::PayloadTooLarge(Some(limit)));
    let declared_length =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    if axum::body::HttpBody::is_end_stream(&body) {
        return Ok(Bytes::new()); // no body (a GET, mostly): nothing to wait for
    }
    let read = tokio::time::timeout(config.body_read_timeout, Limited::new(body, limit).collect());
    let Ok(collected) = read.await else {
        return Err(ApiError::new(dialect, ErrorKind::RequestTimeout(config.body_read_timeout)));
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) => Err(ApiError::invalid(dialect, format!("cannot read the request body: {error}"))),
    }
}

/// The layer of every authenticated route: `authorize`, counted and timed as
/// `telemetry::record_http` counts the other routes.
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    crate::telemetry::counted(request, |request| async move {
        authorize(state, request, next).await.unwrap_or_else(axum::response::IntoResponse::into_response)
    })
    .await
}

/// Buffers the body, authenticates, rate-limits, checks the role and the project, and hands the
/// request on with the `Caller` attached.
async fn authorize(state: AppState, request: Request, next: Next) -> Result<Response, ApiError> {
    // The route's declarations (`endpoint`): its dialect, and the endpoint of this method.
    let declared = request.extensions().get::<MatchedPath>().and_then(|matched| endpoint::lookup(matched.as_str()));
    let dialect = declared.map_or_else(|| Dialect::of_path(request.uri().path()), |declared| declared.dialect);
    let (parts, body) = request.into_parts();
    let body = read_body(dialect, &parts.headers, body, &state.config).await?;

    // In-process requests (no TCP peer) share the address `-` for lock-outs and are not
    // throttled by address.
    let peer = client_address(&parts.extensions);
    let client = peer.clone().unwrap_or_else(|| "-".to_owned());
    if let Some(peer) = &peer {
        if let Err(wait) = state.identity.check_failed_auth(peer) {
            return Err(ApiError::new(dialect, ErrorKind::TooManyRequests(wait)));
        }
    }
    let principal = match principal_of(&state, dialect, &client, &parts, &body).await {
        Ok(principal) => principal,
        Err(error) => {
            let failed = matches!(error.kind, ErrorKind::Unauthorized(_) | ErrorKind::TokenExpired(_));
            if let Some(peer) = peer.as_deref().filter(|_| failed) {
                state.identity.record_failed_auth(peer);
            }
            return Err(error);
        }
    };

    if let Err(wait) = state.identity.take_rate_token(&principal.label()) {
        return Err(ApiError::new(dialect, ErrorKind::TooManyRequests(wait)));
    }

    let forbidden = |detail: String| ApiError::new(dialect, ErrorKind::Forbidden(detail));
    let undeclared = || {
        let matched = parts.extensions.get::<MatchedPath>().map_or("", |matched| matched.as_str());
        forbidden(format!("{} {matched} has no permission row", parts.method))
    };
    match declared.map(|declared| declared.endpoint(&parts.method)) {
        Some(Some(endpoint)) => match endpoint.access {
            Access::Needs(action) if !principal.may(action) => {
                return Err(forbidden(format!(
                    "the {} role may not call {} {}",
                    principal.role, parts.method, endpoint.path
                )))
            }
            // A domain-scoped token: the admin API and the IAM listings, no project's jobs.
            Access::Needs(Action::Read | Action::Write | Action::Work) if principal.is_domain_scoped() => {
                return Err(forbidden(
                    "a domain-scoped token reads no project's jobs: get a project-scoped token (auth.scope.project)"
                        .to_owned(),
                ))
            }
            Access::Needs(_) | Access::AnyCaller => {}
            // Never behind this layer: refused, should it ever be.
            Access::Public | Access::Page => return Err(undeclared()),
        },
        // The path exists with other methods: the router answers 405 itself.
        Some(None) => {}
        None => return Err(undeclared()),
    }

    // The project in the path, read through the route's declaration (as the router decodes it).
    let project_id = match declared.and_then(|declared| declared.raw_project_id(parts.uri.path())) {
        Some(raw) => Some(
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| ApiError::invalid(dialect, "a path segment is not valid UTF-8 once percent-decoded"))?,
        ),
        None => None,
    };
    if let Some(project_id) = project_id.as_deref() {
        if let Some(header_project) = parts.headers.get("x-project-id") {
            if header_project.as_bytes() != project_id.as_bytes() {
                return Err(forbidden("X-Project-Id does not match the project in the path".to_owned()));
            }
        }
        if !principal.may_access_project(project_id) {
            return Err(forbidden(format!("no access to project {project_id}")));
        }
    }

    state.identity.touch(&principal).await;
    tracing::debug!(caller = %principal.label(), "caller authenticated");
    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(Caller { principal });
    Ok(next.run(request).await)
}

/// The secret an unknown access key is checked against, so that it costs what a known key with a
/// wrong signature costs (and fails the same way).
const UNKNOWN_KEY_SECRET: &str = "jobd: no such access key; this secret signs nothing";

/// Turns the request's proof (a signature or a token) into a principal. An unknown access key and
/// a known one with a wrong signature are answered alike, after the same work.
async fn principal_of(
    state: &AppState,
    dialect: Dialect,
    client: &str,
    parts: &http::request::Parts,
    body: &Bytes,
) -> Result<Principal, ApiError> {
    let unauthorized = |detail: String| ApiError::new(dialect, ErrorKind::Unauthorized(detail));
    if !parts.headers.contains_key(header::AUTHORIZATION) {
        let Some(token) = parts.headers.get(AUTH_TOKEN_HEADER) else {
            return console_session_principal(state, dialect, parts).await;
        };
        let token = token.to_str().map_err(|_| unauthorized("decrypt token fail".into()))?;
        return state.identity.resolve_token(token).await.map_err(|e| identity_error(dialect, e));
    }
    let authorization = Authorization::from_headers(&parts.headers)
        .map_err(|e| unauthorized(format!("verify aksk signature fail: {e}")))?;
    let access_key = authorization.access_key.clone();
    if state.identity.is_locked(client, &access_key) {
        return Err(unauthorized(
            "verify aksk signature fail: the access key is locked for this address after repeated failures; retry later".into(),
        ));
    }
    let resolved = state.identity.resolve_access_key(&access_key).await.map_err(|e| identity_error(dialect, e))?;
    let secret_key = resolved.as_ref().map_or(UNKNOWN_KEY_SECRET, |resolved| resolved.secret_key.as_str());
    let request_parts = RequestParts {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body,
    };
    let options = VerifyOptions {
        max_clock_skew: state.config.max_clock_skew,
        derive_region: state.config.region.clone(),
        derive_service: Some(dialect.service_name().to_owned()),
    };
    let verified =
        jobd_auth::verify(&request_parts, &authorization, secret_key.as_bytes(), state.identity.now(), &options);
    match (verified, resolved) {
        (Ok(()), Some(resolved)) => {
            state.identity.record_signature_success(client, &access_key);
            Ok(resolved.principal)
        }
        (verified, resolved) => {
            if tracing::enabled!(tracing::Level::DEBUG) {
                let canonical = jobd_auth::canonical_request(
                    &request_parts,
                    &authorization.signed_headers,
                    authorization.algorithm,
                );
                let known = resolved.is_some();
                tracing::debug!(
                    access_key,
                    known,
                    ?canonical,
                    "signature did not verify; the canonical request the server built"
                );
            }
            state.identity.record_signature_failure(client, &access_key);
            let error = match verified {
                Err(error) => error.to_string(),
                // Only the unknown key's stand-in secret could get here, by a signature made with it.
                Ok(()) => jobd_auth::AuthError::SignatureMismatch.to_string(),
            };
            Err(unauthorized(format!("verify aksk signature fail: {error}")))
        }
    }
}

/// The console's session cookie as the proof (`console`): its token, and for a request that
/// changes something, the session's CSRF token and the console's own origin.
async fn console_session_principal(
    state: &AppState,
    dialect: Dialect,
    parts: &http::request::Parts,
) -> Result<Principal, ApiError> {
    let Some(token) = crate::console::session_token(&parts.headers) else {
        return Err(ApiError::new(dialect, ErrorKind::Unauthorized("x-auth-token not found".into())));
    };
    let principal = state.identity.resolve_token(&token).await.map_err(|e| identity_error(dialect, e))?;
    if !crate::console::is_safe(&parts.method) {
        crate::console::check_state_change(&parts.headers, &token)
            .map_err(|detail| ApiError::new(dialect, ErrorKind::Forbidden(detail)))?;
    }
    Ok(principal)
}

/// The client's IP address (the TCP peer); `None` for a request made in-process.
pub fn client_address(extensions: &http::Extensions) -> Option<String> {
    extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|ConnectInfo(address)| address.ip().to_string())
}

/// Maps identity failures met while authenticating.
pub fn identity_error(dialect: Dialect, error: IdentityError) -> ApiError {
    let kind = match error {
        IdentityError::ExpiredToken(at) => ErrorKind::TokenExpired(format!("token expires, expires_at: {at}")),
        IdentityError::InvalidToken => ErrorKind::Unauthorized("decrypt token fail".into()),
        IdentityError::BadPassword
        | IdentityError::WrongScope
        | IdentityError::MfaRequired
        | IdentityError::MfaFailed => ErrorKind::BadCredentials(error.to_string()),
        IdentityError::Invalid(e) => ErrorKind::InvalidRequest(e.to_string()),
        IdentityError::Conflict(what) => ErrorKind::Conflict(format!("{what} already exists")),
        IdentityError::NotFound(what) => ErrorKind::ResourceNotFound(what),
        IdentityError::Store(e) if e.is_unavailable() => ErrorKind::Unavailable(e.to_string()),
        IdentityError::Store(e) => ErrorKind::Internal(e.to_string()),
    };
    ApiError::new(dialect, kind)
}

/// `Retry-After` for a rate-limited answer.
pub fn retry_after(response: &mut Response, wait: Duration) {
    let seconds = wait.as_secs().max(1).to_string();
    if let Ok(value) = HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
}
