//! The operator console at `/console`: a page and its scripts and styles, embedded in the binary
//! (`assets/`, no build step, nothing fetched at run time), and the session it signs in with.
//!
//! - `POST /console/session` `{"domain", "name", "password"}`: the same password check and token
//!   as `POST /v3/auth/tokens` (scoped to the user's own project), kept in an `HttpOnly`,
//!   `SameSite=Strict` cookie (`Secure` when the console is reached over HTTPS) that expires with
//!   the token. The answer carries the session's CSRF token.
//! - `GET /console/session`: who is signed in (and the CSRF token again, for a reloaded page).
//! - `DELETE /console/session`: revokes the token and clears the cookie.
//!
//! The console reads and cancels jobs through the API itself (`/v1/...`, the seed dialects'
//! GETs, the project event stream): `caller::authenticate` takes the session cookie as one more
//! proof, so every call meets the same permission table and project scope as any other caller. A
//! state-changing call with the cookie must carry the CSRF token in `X-Jobd-Csrf` and an `Origin`
//! of the host it was sent to. Every console answer carries a strict `Content-Security-Policy`
//! (scripts from `/console` only, no inline script or style).

pub mod data;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::on;
use axum::Json;
use cookie::{Cookie, SameSite};
use jobd_auth::identity::{PrincipalKind, ProjectScope};
use jobd_service::identity::{IdentityError, ProjectSelector};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::caller::{client_address, identity_error, read_body};
use crate::dialect::Dialect;
use crate::endpoint::{Access, Api, Endpoint};
use crate::error::{ApiError, ErrorKind};
use crate::AppState;

const DIALECT: Dialect = Dialect::Native;
/// The session cookie: the token's text, as `X-Auth-Token` would carry it.
pub const SESSION_COOKIE: &str = "jobd_session";
/// The header a cookie-authenticated state-changing request carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-jobd-csrf";

/// What every console answer is sent with: nothing but the console's own files may run or load.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's files: name, content type, content.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("console.css", "text/css; charset=utf-8", include_bytes!("assets/console.css")),
    ("console.js", "text/javascript; charset=utf-8", include_bytes!("assets/console.js")),
    ("api.js", "text/javascript; charset=utf-8", include_bytes!("assets/api.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_bytes!("assets/dom.js")),
    ("jobs.js", "text/javascript; charset=utf-8", include_bytes!("assets/jobs.js")),
    ("detail.js", "text/javascript; charset=utf-8", include_bytes!("assets/detail.js")),
    ("overview.js", "text/javascript; charset=utf-8", include_bytes!("assets/overview.js")),
    ("workers.js", "text/javascript; charset=utf-8", include_bytes!("assets/workers.js")),
    ("favicon.svg", "image/svg+xml", include_bytes!("assets/favicon.svg")),
];
const INDEX_HTML: &[u8] = include_bytes!("assets/index.html");

const API: Api = Api::new(DIALECT, "console");

/// The console's page, files and session (`Access::Page`: answered with `console_headers`).
pub(crate) const ENDPOINTS: &[Endpoint] = &[
    API.get("/console", Access::Page, |m| on(m, index)).summary("The console's page"),
    API.get("/console/", Access::Page, |m| on(m, || async { Redirect::permanent("/console") }))
        .summary("The console's page, without the trailing slash"),
    API.get("/console/assets/{name}", Access::Page, |m| on(m, asset)).summary("The console's files"),
    API.get("/console/session", Access::Page, |m| on(m, show_session)).summary("Who is signed in"),
    API.post("/console/session", Access::Page, |m| on(m, sign_in)).summary("Sign in"),
    API.delete("/console/session", Access::Page, |m| on(m, sign_out)).summary("Sign out"),
];

/// The security headers of every console answer.
pub(crate) async fn console_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX_HTML).into_response()
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, content) = ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .ok_or_else(|| ApiError::new(DIALECT, ErrorKind::ResourceNotFound(format!("console asset {name}"))))?;
    Ok(([(header::CONTENT_TYPE, *content_type)], *content).into_response())
}

/// The session token in the request's cookies, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == SESSION_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|token| !token.is_empty())
}

/// The CSRF token of a session: derived from its token (which the page's script never sees),
/// so it needs no storage and dies with the session.
pub fn csrf_token(session_token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"jobd-console-csrf\0");
    hasher.update(session_token.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

/// Whether the request's `Origin` is the host it was sent to (a browser sends `Origin` with every
/// state-changing request, cross-site or not).
fn same_origin(headers: &HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => {
            let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            authority.is_some_and(|authority| authority.eq_ignore_ascii_case(host))
        }
        _ => false,
    }
}

/// Checks a state-changing request authenticated by the session cookie: the CSRF token of the
/// session in `X-Jobd-Csrf`, and an `Origin` of this host. `Err` says what is wrong.
pub fn check_state_change(headers: &HeaderMap, session_token: &str) -> Result<(), String> {
    if !same_origin(headers) {
        return Err("a console request that changes something must come from the console's own origin".into());
    }
    let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
    let expected = csrf_token(session_token);
    if subtle::ConstantTimeEq::ct_eq(sent, expected.as_bytes()).into() {
        Ok(())
    } else {
        Err("a console request that changes something needs the session's X-Jobd-Csrf token".into())
    }
}

/// Whether the page was reached over HTTPS (jobd itself speaks HTTP; a TLS proxy in front says
/// so in `X-Forwarded-Proto`, and the browser in `Origin`).
fn over_tls(headers: &HeaderMap) -> bool {
    let forwarded = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    forwarded.is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
        || origin.is_some_and(|o| o.starts_with("https://"))
}

fn session_cookie(value: String, headers: &HeaderMap, max_age: cookie::time::Duration) -> HeaderValue {
    let cookie = Cookie::build((SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(over_tls(headers))
        .max_age(max_age)
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("a cookie of token characters is a header value")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    domain: String,
    name: String,
    password: String,
}

/// What the page knows of its session.
fn session_body(
    user_name: &str,
    domain: &str,
    project_id: &str,
    project_name: &str,
    role: &str,
    expires_at: &chrono::DateTime<chrono::Utc>,
    token: &str,
) -> Value {
    json!({
        "user": {"name": user_name, "domain": domain},
        "project": {"id": project_id, "name": project_name},
        "role": role,
        "may_cancel": jobd_auth::identity::Role::allows(role.parse().unwrap_or(jobd_auth::identity::Role::Reader),
            jobd_auth::identity::Action::Write),
        "expires_at": crate::time_format::native(expires_at),
        "csrf_token": csrf_token(token),
    })
}

async fn sign_in(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    // A sign-in forced on the browser by another site would sign it in as someone else.
    if !same_origin(&parts.headers) {
        return Err(ApiError::new(DIALECT, ErrorKind::Forbidden("sign in from the console's own page".into())));
    }
    let body = read_body(DIALECT, &parts.headers, body, &state.config).await?;
    let form: SignIn = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(DIALECT, format!("a sign-in is {{\"domain\", \"name\", \"password\"}}: {e}")))?;
    let client = client_address(&parts.extensions);
    if let Err(wait) = state.identity.throttle_password_attempt(client.as_deref(), &form.domain, &form.name) {
        return Err(ApiError::new(DIALECT, ErrorKind::TooManyRequests(wait)));
    }
    let issued =
        match state.identity.issue_token(&form.domain, &form.name, &form.password, ProjectSelector::UsersOwn).await {
            Ok(issued) => issued,
            Err(error) => {
                if matches!(error, IdentityError::BadPassword | IdentityError::WrongScope) {
                    state.identity.record_password_failure(&form.domain, &form.name);
                }
                return Err(identity_error(DIALECT, error));
            }
        };
    tracing::info!(user_id = %issued.user.user_id, "console session opened");
    let lifetime = (issued.record.expires_at - state.identity.now()).num_seconds().max(0);
    let body = session_body(
        &issued.user.name,
        &issued.user.domain,
        &issued.project.id,
        &issued.project.name,
        issued.record.role.as_str(),
        &issued.record.expires_at,
        &issued.token,
    );
    let cookie = session_cookie(issued.token, &parts.headers, cookie::time::Duration::seconds(lifetime));
    Ok((StatusCode::CREATED, [(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

fn signed_out() -> ApiError {
    ApiError::new(DIALECT, ErrorKind::Unauthorized("not signed in to the console".into()))
}

async fn show_session(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let token = session_token(&headers).ok_or_else(signed_out)?;
    let principal = state.identity.resolve_token(&token).await.map_err(|e| identity_error(DIALECT, e))?;
    let record = state.identity.token_record(&token).await.map_err(|e| identity_error(DIALECT, e))?;
    let (PrincipalKind::Token { user_id, .. }, Some(record)) = (&principal.kind, record) else {
        return Err(signed_out());
    };
    let users = state.identity.list_users().await.map_err(|e| identity_error(DIALECT, e))?;
    let user = users.iter().find(|user| &user.user_id == user_id).ok_or_else(signed_out)?;
    let ProjectScope::Only(projects) = &principal.projects else { return Err(signed_out()) };
    let project_id = projects.first().ok_or_else(signed_out)?;
    let project_name = state
        .identity
        .list_projects()
        .await
        .map_err(|e| identity_error(DIALECT, e))?
        .into_iter()
        .find(|p| &p.id == project_id)
        .map(|p| p.name)
        .unwrap_or_default();
    Ok(Json(session_body(
        &user.name,
        &user.domain,
        project_id,
        &project_name,
        record.role.as_str(),
        &record.expires_at,
        &token,
    )))
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap, _body: Body) -> Result<Response, ApiError> {
    let token = session_token(&headers).ok_or_else(signed_out)?;
    check_state_change(&headers, &token).map_err(|detail| ApiError::new(DIALECT, ErrorKind::Forbidden(detail)))?;
    match state.identity.revoke_token(&token).await {
        // Already revoked or unknown: signed out all the same.
        Ok(()) | Err(IdentityError::InvalidToken) => {}
        Err(error) => return Err(identity_error(DIALECT, error)),
    }
    let cleared = session_cookie(String::new(), &headers, cookie::time::Duration::ZERO);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cleared)]).into_response())
}

/// Whether a request is one the session cookie may authenticate without a CSRF check.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}
