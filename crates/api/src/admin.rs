//! The admin API (`/v1/admin/...`): projects, users and access-key credentials. Admin role only;
//! an admin creates, sees, changes and removes only principals that reach no further than itself
//! (`Principal::oversight`: other projects' are not found, wider ones in its projects are `403`), and
//! only root creates projects.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::routing::on;
use axum::Json;
use jobd_auth::identity::{Action, CredentialRecord, Oversight, ProjectScope, Reach, Role, UserRecord};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::caller::{identity_error, Caller};
use crate::dialect::Dialect;
use crate::endpoint::{Access, Answer, Api, Endpoint};
use crate::error::{ApiError, ErrorKind};
use crate::time_format;
use crate::AppState;

const DIALECT: Dialect = Dialect::Native;

const API: Api = Api::new(DIALECT, "admin");
const ADMINISTER: Access = Access::Needs(Action::Administer);

pub(crate) const ENDPOINTS: &[Endpoint] = &[
    API.post("/v1/admin/projects", ADMINISTER, |m| on(m, create_project))
        .summary("Create a project")
        .request("CreateProject")
        .answers(&[Answer::json(201, "Project")])
        .not_found()
        .conflict(),
    API.get("/v1/admin/projects", ADMINISTER, |m| on(m, list_projects))
        .summary("List the projects within the caller's reach")
        .answers(&[Answer::json(200, "ProjectList")])
        .not_found(),
    API.post("/v1/admin/users", ADMINISTER, |m| on(m, create_user))
        .summary("Create a user")
        .request("CreateUser")
        .answers(&[Answer::json(201, "User")])
        .not_found()
        .conflict(),
    API.get("/v1/admin/users", ADMINISTER, |m| on(m, list_users))
        .summary("List the users within the caller's reach")
        .answers(&[Answer::json(200, "UserList")])
        .not_found(),
    API.delete("/v1/admin/users/{user_id}", ADMINISTER, |m| on(m, delete_user))
        .summary("Delete a user and revoke its tokens")
        .answers(&[Answer::NO_CONTENT])
        .not_found(),
    API.post("/v1/admin/users/{user_id}/mfa", ADMINISTER, |m| on(m, bind_mfa_device))
        .summary("Bind a virtual MFA device to a user")
        .answers(&[Answer::plain(201)])
        .not_found()
        .conflict(),
    API.post("/v1/admin/credentials", ADMINISTER, |m| on(m, create_credential))
        .summary("Create an access key (its secret is shown this once)")
        .request("CreateCredential")
        .answers(&[Answer::json(201, "CreatedCredential")])
        .not_found()
        .conflict(),
    API.get("/v1/admin/credentials", ADMINISTER, |m| on(m, list_credentials))
        .summary("List the access keys within the caller's reach")
        .answers(&[Answer::json(200, "CredentialList")])
        .not_found(),
    API.post("/v1/admin/credentials/{access_key}/disable", ADMINISTER, |m| on(m, disable_credential))
        .summary("Disable an access key")
        .answers(&[Answer::NO_CONTENT])
        .not_found()
        .conflict(),
    API.post("/v1/admin/credentials/{access_key}/enable", ADMINISTER, |m| on(m, enable_credential))
        .summary("Enable an access key")
        .answers(&[Answer::NO_CONTENT])
        .not_found()
        .conflict(),
    API.delete("/v1/admin/credentials/{access_key}", ADMINISTER, |m| on(m, delete_credential))
        .summary("Delete an access key")
        .answers(&[Answer::NO_CONTENT])
        .not_found(),
];

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid(DIALECT, format!("invalid request body: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid(DIALECT, "the request body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid(DIALECT, format!("invalid request body: {e}")))
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(DIALECT, ErrorKind::Forbidden(message.into()))
}

fn not_found(what: String) -> ApiError {
    ApiError::new(DIALECT, ErrorKind::ResourceNotFound(what))
}

/// Refuses creating a principal that would reach further than the caller.
fn require_creatable(caller: &Caller, reach: &Reach) -> Result<(), ApiError> {
    match caller.principal.oversight(reach) {
        Oversight::Manages => Ok(()),
        Oversight::OutOfSight => Err(forbidden("an admin may only manage its own projects")),
        Oversight::ReachesFurther => Err(forbidden(
            "an admin may not grant more than it has: an admin limited to enterprise projects may only grant those",
        )),
    }
}

/// Refuses changing or removing a principal the caller may not manage: out of sight is not found
/// (no leak of other projects' principals), a wider one in its projects is `403`.
fn require_managed(caller: &Caller, reach: &Reach, what: String) -> Result<(), ApiError> {
    match caller.principal.oversight(reach) {
        Oversight::Manages => Ok(()),
        Oversight::OutOfSight => Err(not_found(what)),
        Oversight::ReachesFurther => {
            Err(forbidden(format!("{what} reaches further than the caller: an admin manages only its equals or less")))
        }
    }
}

fn listed(caller: &Caller, reach: &Reach) -> bool {
    caller.principal.oversight(reach) == Oversight::Manages
}

/// The stored credential, if the caller may manage it.
async fn managed_credential(state: &AppState, caller: &Caller, access_key: &str) -> Result<CredentialRecord, ApiError> {
    let credential = state.identity.get_credential(access_key).await.map_err(|e| identity_error(DIALECT, e))?;
    let what = format!("credential {access_key}");
    let credential = credential.ok_or_else(|| not_found(what.clone()))?;
    require_managed(caller, &credential.reach(), what)?;
    Ok(credential)
}

fn role(raw: &str) -> Result<Role, ApiError> {
    raw.parse().map_err(|e: jobd_auth::identity::UnknownRole| ApiError::invalid(DIALECT, e.to_string()))
}

fn user_view(user: &UserRecord) -> Value {
    json!({"id": user.user_id, "name": user.name, "domain": user.domain, "project_id": user.project_id,
           "role": user.role.as_str(), "enterprise_project_ids": user.enterprise_project_ids,
           "mfa": user.totp_secret.is_some(), "created_at": time_format::native(&user.created_at)})
}

fn credential_view(c: &CredentialRecord) -> Value {
    json!({"access_key": c.access_key, "owner": c.owner, "project_ids": c.project_ids, "role": c.role.as_str(),
           "enterprise_project_ids": c.enterprise_project_ids, "enabled": c.enabled,
           "created_at": time_format::native(&c.created_at),
           "last_used_at": c.last_used_at.as_ref().map(time_format::native)})
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    name: String,
}

async fn create_project(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !caller.principal.is_unscoped() {
        return Err(forbidden("only root creates projects"));
    }
    let body: CreateProject = parse(&body)?;
    let project = state.identity.create_project(&body.name).await.map_err(|e| identity_error(DIALECT, e))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": project.id, "name": project.name, "created_at": time_format::native(&project.created_at)})),
    ))
}

async fn list_projects(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let projects = state.identity.list_projects().await.map_err(|e| identity_error(DIALECT, e))?;
    let projects: Vec<Value> = projects
        .iter()
        .filter(|p| caller.principal.may_access_project(&p.id))
        .map(|p| json!({"id": p.id, "name": p.name, "created_at": time_format::native(&p.created_at)}))
        .collect();
    Ok(Json(json!({"projects": projects})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    name: String,
    domain: String,
    password: String,
    project_id: String,
    role: String,
    /// Absent: the creator's own limit (none for an unrestricted admin); `[]`: every enterprise project.
    #[serde(default)]
    enterprise_project_ids: Option<Vec<String>>,
}

async fn create_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: CreateUser = parse(&body)?;
    let role = role(&body.role)?;
    // A user inherits its creator's limit unless it names one (which must then be within it).
    let enterprise_project_ids = body
        .enterprise_project_ids
        .unwrap_or_else(|| caller.principal.enterprise_project_ids.clone().unwrap_or_default());
    let reach = Reach::new(role, ProjectScope::Only(vec![body.project_id.clone()]), &enterprise_project_ids);
    require_creatable(&caller, &reach)?;
    let user = state
        .identity
        .create_user(&body.name, &body.domain, &body.password, &body.project_id, role, &enterprise_project_ids)
        .await
        .map_err(|e| identity_error(DIALECT, e))?;
    Ok((StatusCode::CREATED, Json(user_view(&user))))
}

async fn list_users(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let users = state.identity.list_users().await.map_err(|e| identity_error(DIALECT, e))?;
    let users: Vec<Value> = users.iter().filter(|u| listed(&caller, &u.reach())).map(user_view).collect();
    Ok(Json(json!({"users": users})))
}

async fn delete_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let users = state.identity.list_users().await.map_err(|e| identity_error(DIALECT, e))?;
    let user = users.iter().find(|u| u.user_id == user_id).ok_or_else(|| not_found(format!("user {user_id}")))?;
    require_managed(&caller, &user.reach(), format!("user {user_id}"))?;
    state.identity.delete_user(&user_id).await.map_err(|e| identity_error(DIALECT, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `201 {"user_id", "otpauth_uri"}`: a new virtual MFA device for the user (replacing any other),
/// shown this once; from then on the user's tokens need its current code.
async fn bind_mfa_device(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let users = state.identity.list_users().await.map_err(|e| identity_error(DIALECT, e))?;
    let user = users.iter().find(|u| u.user_id == user_id).ok_or_else(|| not_found(format!("user {user_id}")))?;
    require_managed(&caller, &user.reach(), format!("user {user_id}"))?;
    let device = state.identity.bind_mfa_device(&user_id).await.map_err(|e| identity_error(DIALECT, e))?;
    tracing::info!(user_id, caller = %caller.principal.label(), "virtual MFA device bound");
    Ok((StatusCode::CREATED, Json(json!({"user_id": user_id, "otpauth_uri": device.otpauth_uri}))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCredential {
    project_ids: Vec<String>,
    role: String,
    #[serde(default)]
    enterprise_project_ids: Vec<String>,
}

/// `201` with the new access key and its secret key — the only time the secret is shown.
async fn create_credential(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: CreateCredential = parse(&body)?;
    let role = role(&body.role)?;
    let reach = Reach::new(role, ProjectScope::Only(body.project_ids.clone()), &body.enterprise_project_ids);
    require_creatable(&caller, &reach)?;
    let created = state
        .identity
        .create_credential(&caller.principal.label(), &body.project_ids, role, &body.enterprise_project_ids)
        .await
        .map_err(|e| identity_error(DIALECT, e))?;
    let mut view = credential_view(&created.record);
    view["secret_key"] = json!(created.secret_key);
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list_credentials(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let credentials = state.identity.list_credentials().await.map_err(|e| identity_error(DIALECT, e))?;
    let credentials: Vec<Value> =
        credentials.iter().filter(|c| listed(&caller, &c.reach())).map(credential_view).collect();
    Ok(Json(json!({"credentials": credentials})))
}

async fn disable_credential(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(access_key): Path<String>,
) -> Result<StatusCode, ApiError> {
    managed_credential(&state, &caller, &access_key).await?;
    state.identity.set_credential_enabled(&access_key, false).await.map_err(|e| identity_error(DIALECT, e))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn enable_credential(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(access_key): Path<String>,
) -> Result<StatusCode, ApiError> {
    managed_credential(&state, &caller, &access_key).await?;
    state.identity.set_credential_enabled(&access_key, true).await.map_err(|e| identity_error(DIALECT, e))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_credential(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(access_key): Path<String>,
) -> Result<StatusCode, ApiError> {
    managed_credential(&state, &caller, &access_key).await?;
    state.identity.delete_credential(&access_key).await.map_err(|e| identity_error(DIALECT, e))?;
    Ok(StatusCode::NO_CONTENT)
}
