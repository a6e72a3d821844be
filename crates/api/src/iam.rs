//! The IAM-compatible identity API: `POST /v3/auth/tokens` (password → token in
//! `X-Subject-Token`), `DELETE /v3/auth/tokens` (revoke), and `GET /v3/projects?name=` (the caller's
//! projects, so an SDK configured without a project id can resolve it).

use axum::body::Body;
use axum::extract::{Extension, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jobd_auth::identity::{Action, Oversight, PrincipalKind, ProjectRecord, ProjectScope};
use jobd_auth::token_request::{parse_token_request, TokenScope};
use jobd_service::identity::{IdentityError, IssuedToken, ProjectSelector};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::caller::{client_address, identity_error, read_body, Caller};
use crate::dialect::Dialect;
use crate::error::{ApiError, ErrorKind};
use crate::AppState;

const DIALECT: Dialect = Dialect::Iam;
const SUBJECT_TOKEN_HEADER: &str = "x-subject-token";

/// `POST /v3/auth/tokens` needs no caller (the body carries the password).
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/v3/auth/tokens", post(create_token))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/auth/tokens", axum::routing::delete(revoke_token))
        .route("/v3/projects", get(list_projects))
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    nocatalog: Option<String>,
}

/// A stable id for a domain name (jobd keeps domains as names).
fn domain_id(domain: &str) -> String {
    hex::encode(&Sha256::digest(domain.as_bytes())[..16])
}

fn iam_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn token_body(issued: &IssuedToken, catalog: Option<Value>) -> Value {
    let domain = json!({"name": issued.user.domain, "id": domain_id(&issued.user.domain)});
    let mut token = json!({
        "expires_at": iam_time(&issued.record.expires_at),
        "issued_at": iam_time(&issued.record.issued_at),
        "methods": ["password"],
        "project": {"id": issued.project.id, "name": issued.project.name, "domain": domain},
        "roles": [{"id": issued.record.role.as_str(), "name": issued.record.role.as_str()}],
        "user": {"id": issued.user.user_id, "name": issued.user.name, "domain": domain, "password_expires_at": ""},
    });
    if let Some(catalog) = catalog {
        token["catalog"] = catalog;
    }
    json!({"token": token})
}

/// Every service jobd answers for, at the address the caller used.
fn catalog(headers: &HeaderMap) -> Value {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let url = format!("http://{host}");
    let services = ["cfw", "waf", "elb", "jobd"];
    Value::Array(
        services
            .iter()
            .map(|service| {
                json!({"type": service, "name": service, "id": service,
                       "endpoints": [{"id": format!("{service}-public"), "interface": "public", "region": "jobd",
                                      "region_id": "jobd", "url": url}]})
            })
            .collect(),
    )
}

async fn create_token(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_body(DIALECT, &parts.headers, body, &state.config).await?;
    let request = parse_token_request(&body).map_err(|e| ApiError::invalid(DIALECT, e.0))?;
    let (domain, name, password) = (request.domain, &request.user_name, &request.password);
    let scope = match request.scope {
        TokenScope::Id(id) => ProjectSelector::Id(id),
        TokenScope::Name(name) => ProjectSelector::Name(name),
    };
    let client = client_address(&parts.extensions);
    if let Err(wait) = state.identity.throttle_password_attempt(client.as_deref(), &domain, name) {
        tracing::warn!(client, domain, name, "token request throttled");
        return Err(ApiError::new(DIALECT, ErrorKind::TooManyRequests(wait)));
    }
    let issued = match state.identity.issue_token(&domain, name, password, scope).await {
        Ok(issued) => issued,
        Err(error) => {
            if matches!(error, IdentityError::BadPassword | IdentityError::WrongScope) {
                state.identity.record_password_failure(&domain, name);
            }
            return Err(identity_error(DIALECT, error));
        }
    };
    tracing::info!(user_id = %issued.user.user_id, project_id = %issued.project.id, "token issued");
    let with_catalog = !matches!(query.nocatalog.as_deref(), Some("true") | Some("True") | Some("1"));
    let body = token_body(&issued, with_catalog.then(|| catalog(&parts.headers)));
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let value =
        HeaderValue::from_str(&issued.token).map_err(|e| ApiError::new(DIALECT, ErrorKind::Internal(e.to_string())))?;
    response.headers_mut().insert(SUBJECT_TOKEN_HEADER, value);
    Ok(response)
}

/// Revokes the token in `X-Subject-Token`: the one the caller authenticated with, or, for an admin,
/// one within its reach.
async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let subject = headers
        .get(SUBJECT_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::invalid(DIALECT, "X-Subject-Token names the token to revoke"))?;
    // Its own only if the caller authenticated with it: a signed request may carry any X-Auth-Token.
    let own = matches!(&caller.principal.kind,
        PrincipalKind::Token { token_hash, .. } if *token_hash == jobd_auth::secrets::hash_token(subject));
    if !own && !caller.principal.may(Action::Administer) {
        return Err(ApiError::new(DIALECT, ErrorKind::Forbidden("only an admin may revoke another's token".into())));
    }
    if !own {
        // An admin revokes only tokens within its reach: other projects' are not found, wider ones
        // (more enterprise projects) refused.
        let record = state.identity.token_record(subject).await.map_err(|e| identity_error(DIALECT, e))?;
        let not_found = || ApiError::new(DIALECT, ErrorKind::ResourceNotFound("token".into()));
        match caller.principal.oversight(&record.ok_or_else(not_found)?.reach()) {
            Oversight::Manages => {}
            Oversight::OutOfSight => return Err(not_found()),
            Oversight::ReachesFurther => {
                return Err(ApiError::new(
                    DIALECT,
                    ErrorKind::Forbidden("the token reaches further than the caller".into()),
                ))
            }
        }
    }
    state.identity.revoke_token(subject).await.map_err(|e| match e {
        jobd_service::identity::IdentityError::InvalidToken => {
            ApiError::new(DIALECT, ErrorKind::ResourceNotFound("token".into()))
        }
        other => identity_error(DIALECT, other),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct ProjectsQuery {
    #[serde(default)]
    name: Option<String>,
}

async fn list_projects(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<ProjectsQuery>,
    _body: Body,
) -> Result<Json<Value>, ApiError> {
    let all = state.identity.list_projects().await.map_err(|e| identity_error(DIALECT, e))?;
    let mine: Vec<ProjectRecord> = match &caller.principal.projects {
        ProjectScope::All => all,
        ProjectScope::Only(ids) => all.into_iter().filter(|p| ids.contains(&p.id)).collect(),
    };
    let projects: Vec<Value> = mine
        .iter()
        .filter(|p| query.name.as_ref().is_none_or(|name| &p.name == name))
        .map(|p| json!({"id": p.id, "name": p.name, "enabled": true, "description": "", "is_domain": false}))
        .collect();
    Ok(Json(json!({"projects": projects, "links": {"self": "/v3/projects"}})))
}
