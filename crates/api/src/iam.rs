//! The IAM-compatible identity API: `POST /v3/auth/tokens` (password, plus a virtual MFA code for a
//! user with a device → token in `X-Subject-Token`, scoped to a project or to the user's domain),
//! `DELETE /v3/auth/tokens` (revoke), and what the official SDK cores and the IAM SDK list:
//! `GET /v3/projects?name=` and `GET /v3/auth/projects` (the caller's projects, so an SDK
//! configured without a project id can resolve it), `GET /v3/auth/domains` (the caller's domains,
//! for `GlobalCredentials`), `GET /v3/regions[/{region_id}]` (the one region jobd serves).

use axum::body::Body;
use axum::extract::Path;
use axum::extract::{Extension, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::on;
use axum::Json;
use jobd_auth::identity::{domain_id, Action, Oversight, PrincipalKind, ProjectRecord, ProjectScope};
use jobd_auth::token_request::{parse_token_request, TokenScope};
use jobd_service::identity::{IdentityError, IssuedToken, ProjectSelector, TotpProof};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::caller::{client_address, identity_error, read_body, Caller};
use crate::dialect::Dialect;
use crate::endpoint::{Access, Answer, Api, Endpoint};
use crate::error::{ApiError, ErrorKind};
use crate::AppState;

const DIALECT: Dialect = Dialect::Iam;
const SUBJECT_TOKEN_HEADER: &str = "x-subject-token";

const API: Api = Api::new(DIALECT, "IAM");

/// `POST /v3/auth/tokens` needs no caller (the body carries the password); the rest any
/// authenticated caller: what it may see of projects, domains and regions, and revoking a token
/// it holds. Every IAM route may answer `404` (a project or token named that is not there).
pub(crate) const ENDPOINTS: &[Endpoint] = &[
    API.post("/v3/auth/tokens", Access::Public, |m| on(m, create_token))
        .summary(
            "Get a token for a user (IAM password method, plus totp for a user with a virtual MFA device; \
             scoped to a project or to the user's domain); the token is in X-Subject-Token",
        )
        .request("TokenRequest")
        .answers(&[Answer::json(201, "Token")])
        .answer_header("X-Subject-Token", "The token, for X-Auth-Token")
        .parameters(crate::openapi::parameters::token_request)
        .checks_password()
        .not_found(),
    API.delete("/v3/auth/tokens", Access::AnyCaller, |m| on(m, revoke_token))
        .summary("Revoke a token")
        .answers(&[Answer::NO_CONTENT])
        .parameters(crate::openapi::parameters::subject_token)
        .not_found(),
    API.get("/v3/projects", Access::AnyCaller, |m| on(m, list_projects))
        .summary("List the projects the caller may use")
        .answers(&[Answer::json(200, "IamProjectList")])
        .parameters(crate::openapi::parameters::project_name)
        .not_found(),
    API.get("/v3/auth/projects", Access::AnyCaller, |m| on(m, list_auth_projects))
        .summary("List the projects the caller's token may be scoped to")
        .not_found(),
    API.get("/v3/auth/domains", Access::AnyCaller, |m| on(m, list_auth_domains))
        .summary("List the caller's domain")
        .not_found(),
    API.get("/v3/regions", Access::AnyCaller, |m| on(m, list_regions)).summary("List the regions").not_found(),
    API.get("/v3/regions/{region_id}", Access::AnyCaller, |m| on(m, show_region)).summary("Show a region").not_found(),
];

#[derive(Debug, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    nocatalog: Option<String>,
}

fn iam_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The region jobd answers for: `--region`, else `jobd`.
fn region_of(state: &AppState) -> &str {
    state.config.region.as_deref().unwrap_or("jobd")
}

fn token_body(issued: &IssuedToken, catalog: Option<Value>) -> Value {
    let domain = json!({"name": issued.user.domain, "id": domain_id(&issued.user.domain)});
    let mut token = json!({
        "expires_at": iam_time(&issued.record.expires_at),
        "issued_at": iam_time(&issued.record.issued_at),
        "methods": issued.methods,
        "roles": [{"id": issued.record.role.as_str(), "name": issued.record.role.as_str()}],
        "user": {"id": issued.user.user_id, "name": issued.user.name, "domain": domain, "password_expires_at": ""},
    });
    if issued.record.domain_scoped {
        token["domain"] = domain;
    } else {
        token["project"] = json!({"id": issued.project.id, "name": issued.project.name, "domain": domain});
    }
    if let Some(catalog) = catalog {
        token["catalog"] = catalog;
    }
    json!({"token": token})
}

/// Every service jobd answers for, at the address the caller used.
fn catalog(headers: &HeaderMap, region: &str) -> Value {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let url = format!("http://{host}");
    let services = ["cfw", "waf", "elb", "jobd"];
    Value::Array(
        services
            .iter()
            .map(|service| {
                json!({"type": service, "name": service, "id": service,
                       "endpoints": [{"id": format!("{service}-public"), "interface": "public", "region": region,
                                      "region_id": region, "url": url}]})
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
        TokenScope::Domain { id, name } => ProjectSelector::Domain { id, name },
    };
    let client = client_address(&parts.extensions);
    if let Err(wait) = state.identity.throttle_password_attempt(client.as_deref(), &domain, name) {
        tracing::warn!(client, domain, name, "token request throttled");
        return Err(ApiError::new(DIALECT, ErrorKind::TooManyRequests(wait)));
    }
    let totp = request.totp.map(|part| TotpProof { user_id: part.user_id, passcode: part.passcode });
    let issued = match state.identity.issue_token_with_mfa(&domain, name, password, scope, totp).await {
        Ok(issued) => issued,
        Err(error) => {
            if matches!(error, IdentityError::BadPassword | IdentityError::WrongScope | IdentityError::MfaFailed) {
                state.identity.record_password_failure(&domain, name);
            }
            return Err(identity_error(DIALECT, error));
        }
    };
    tracing::info!(user_id = %issued.user.user_id, project_id = %issued.project.id,
                   domain_scoped = issued.record.domain_scoped, methods = ?issued.methods, "token issued");
    let with_catalog = !matches!(query.nocatalog.as_deref(), Some("true") | Some("True") | Some("1"));
    let body = token_body(&issued, with_catalog.then(|| catalog(&parts.headers, region_of(&state))));
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
    let mine = visible_projects(&state, &caller).await?;
    let projects: Vec<Value> = mine
        .iter()
        .filter(|p| query.name.as_ref().is_none_or(|name| &p.name == name))
        .map(|p| json!({"id": p.id, "name": p.name, "enabled": true, "description": "", "is_domain": false}))
        .collect();
    Ok(Json(json!({"projects": projects, "links": {"self": "/v3/projects"}})))
}

/// The projects the caller may act in (`ProjectScope::Only`, or every project for root).
async fn visible_projects(state: &AppState, caller: &Caller) -> Result<Vec<ProjectRecord>, ApiError> {
    let all = state.identity.list_projects().await.map_err(|e| identity_error(DIALECT, e))?;
    Ok(match &caller.principal.projects {
        ProjectScope::All => all,
        ProjectScope::Only(ids) => all.into_iter().filter(|p| ids.contains(&p.id)).collect(),
    })
}

/// The domains the caller belongs to: a token's, its user's; a key's, those of the users of its
/// projects (every domain for root). jobd keeps domains as the users' domain names.
async fn visible_domains(state: &AppState, caller: &Caller) -> Result<Vec<String>, ApiError> {
    let users = state.identity.list_users().await.map_err(|e| identity_error(DIALECT, e))?;
    let mut domains: Vec<String> = match &caller.principal.kind {
        PrincipalKind::Token { user_id, .. } => {
            users.into_iter().filter(|u| &u.user_id == user_id).map(|u| u.domain).collect()
        }
        PrincipalKind::Root | PrincipalKind::AccessKey { .. } => {
            users.into_iter().filter(|u| caller.principal.may_access_project(&u.project_id)).map(|u| u.domain).collect()
        }
    };
    domains.sort();
    domains.dedup();
    Ok(domains)
}

/// The `scheme://host` the caller used, for `links`.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// `GET /v3/auth/projects` (IAM's KeystoneListAuthProjects): the projects the caller may act in,
/// each with the domain of the users in it (the caller's own domain for a token).
async fn list_auth_projects(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let base = base_url(&headers);
    let projects = visible_projects(&state, &caller).await?;
    let users = state.identity.list_users().await.map_err(|e| identity_error(DIALECT, e))?;
    let own_domain = match &caller.principal.kind {
        PrincipalKind::Token { user_id, .. } => users.iter().find(|u| &u.user_id == user_id).map(|u| u.domain.clone()),
        _ => None,
    };
    let projects: Vec<Value> = projects
        .iter()
        .map(|p| {
            let domain = own_domain
                .clone()
                .or_else(|| users.iter().find(|u| u.project_id == p.id).map(|u| u.domain.clone()))
                .map(|domain| domain_id(&domain))
                .unwrap_or_default();
            json!({"id": p.id, "name": p.name, "domain_id": domain, "parent_id": domain, "enabled": true,
                   "is_domain": false, "description": "",
                   "links": {"self": format!("{base}/v3/projects/{}", p.id)}})
        })
        .collect();
    Ok(Json(json!({"projects": projects, "links": {"self": format!("{base}/v3/auth/projects")}})))
}

/// `GET /v3/auth/domains` (IAM's KeystoneListAuthDomains; the SDK cores read the first one's id for
/// `GlobalCredentials`).
async fn list_auth_domains(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let base = base_url(&headers);
    let domains: Vec<Value> = visible_domains(&state, &caller)
        .await?
        .iter()
        .map(|name| {
            let id = domain_id(name);
            json!({"id": id, "name": name, "enabled": true, "description": "",
                   "links": {"self": format!("{base}/v3/domains/{id}")}})
        })
        .collect();
    Ok(Json(json!({"domains": domains, "links": {"self": format!("{base}/v3/auth/domains")}})))
}

fn region_body(base: &str, region: &str) -> Value {
    json!({"id": region, "type": "public", "description": "", "parent_region_id": null,
           "locales": {"zh-cn": region, "en-us": region},
           "links": {"self": format!("{base}/v3/regions/{region}")}})
}

/// `GET /v3/regions` (IAM's KeystoneListRegions): the one region jobd serves.
async fn list_regions(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = base_url(&headers);
    Json(json!({"regions": [region_body(&base, region_of(&state))],
                "links": {"self": format!("{base}/v3/regions"), "previous": null, "next": null}}))
}

/// `GET /v3/regions/{region_id}` (IAM's KeystoneShowRegion): jobd's region, any other is `404`.
async fn show_region(
    State(state): State<AppState>,
    Path(region_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    if region_id != region_of(&state) {
        return Err(ApiError::new(DIALECT, ErrorKind::ResourceNotFound(format!("region {region_id}"))));
    }
    Ok(Json(json!({"region": region_body(&base_url(&headers), &region_id)})))
}
