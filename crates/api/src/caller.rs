//! Who is calling: request authentication and the project check, done once for every API route.
//!
//! Today a caller proves itself with an `SDK-HMAC-SHA256` (or `-SM3`) signature made with an
//! access key known to a `CredentialSource` (the root key from the environment). Tokens
//! (`X-Auth-Token`) and scoped credentials plug in here later.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use jobd_auth::{Authorization, RequestParts, VerifyOptions};

use crate::dialect::Dialect;
use crate::error::{ApiError, ErrorKind};
use crate::AppState;

/// What a caller is allowed to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The operator's key from the environment: may act in every project.
    Root,
}

/// A secret key and whom it belongs to. `Debug` never prints the secret.
#[derive(Clone)]
pub struct Credential {
    pub secret_key: String,
    pub principal: Principal,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential").field("secret_key", &"<redacted>").field("principal", &self.principal).finish()
    }
}

/// Where access keys are looked up.
#[async_trait]
pub trait CredentialSource: Send + Sync + 'static {
    async fn lookup(&self, access_key: &str) -> Option<Credential>;
}

/// A fixed set of credentials (the root key from the environment).
#[derive(Debug, Default, Clone)]
pub struct StaticCredentials {
    by_access_key: HashMap<String, Credential>,
}

impl StaticCredentials {
    pub fn with_root(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        let mut by_access_key = HashMap::new();
        by_access_key
            .insert(access_key.into(), Credential { secret_key: secret_key.into(), principal: Principal::Root });
        StaticCredentials { by_access_key }
    }
}

#[async_trait]
impl CredentialSource for StaticCredentials {
    async fn lookup(&self, access_key: &str) -> Option<Credential> {
        self.by_access_key.get(access_key).cloned()
    }
}

/// The authenticated caller of a request, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct Caller {
    pub access_key: String,
    pub principal: Principal,
}

impl Caller {
    pub fn may_access_project(&self, _project_id: &str) -> bool {
        match self.principal {
            Principal::Root => true,
        }
    }
}

/// Buffers the body (enforcing the size limit), verifies the caller and the project, and hands
/// the request on with the `Caller` attached.
pub async fn authenticate(
    State(state): State<AppState>,
    path_params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let dialect = Dialect::of_path(request.uri().path());
    let (parts, body) = request.into_parts();
    let limit = state.config.max_body_bytes;
    let too_large = || ApiError::new(dialect, ErrorKind::PayloadTooLarge(Some(limit)));
    let declared_length =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Err(too_large()),
        Err(error) => return Err(ApiError::invalid(dialect, format!("cannot read the request body: {error}"))),
    };

    let unauthorized = |detail: &str| ApiError::new(dialect, ErrorKind::Unauthorized(detail.to_owned()));
    let caller = match parts.headers.get(header::AUTHORIZATION) {
        Some(_) => {
            let authorization = Authorization::from_headers(&parts.headers)
                .map_err(|e| unauthorized(&format!("verify aksk signature fail: {e}")))?;
            let credential = state
                .credentials
                .lookup(&authorization.access_key)
                .await
                .ok_or_else(|| unauthorized("verify aksk signature fail: the access key is not valid"))?;
            let request_parts = RequestParts {
                method: parts.method.as_str(),
                raw_path: parts.uri.path(),
                raw_query: parts.uri.query(),
                headers: &parts.headers,
                body: &body,
            };
            let options = VerifyOptions { max_clock_skew: state.config.max_clock_skew, ..VerifyOptions::default() };
            jobd_auth::verify(
                &request_parts,
                &authorization,
                credential.secret_key.as_bytes(),
                state.service.now(),
                &options,
            )
            .map_err(|e| unauthorized(&format!("verify aksk signature fail: {e}")))?;
            Caller { access_key: authorization.access_key, principal: credential.principal }
        }
        None if parts.headers.contains_key("x-auth-token") => {
            return Err(unauthorized("decrypt token fail: X-Auth-Token is not accepted by this server yet"))
        }
        None => return Err(unauthorized("x-auth-token not found and no Authorization header")),
    };

    let path_params = path_params
        .map_err(|_| ApiError::invalid(dialect, "a path segment is not valid UTF-8 once percent-decoded"))?;
    if let Some((_, project_id)) = path_params.iter().find(|(name, _)| *name == "project_id") {
        if let Some(header_project) = parts.headers.get("x-project-id") {
            if header_project.as_bytes() != project_id.as_bytes() {
                return Err(ApiError::new(
                    dialect,
                    ErrorKind::Forbidden("X-Project-Id does not match the project in the path".to_owned()),
                ));
            }
        }
        if !caller.may_access_project(project_id) {
            return Err(ApiError::new(dialect, ErrorKind::Forbidden(format!("no access to project {project_id}"))));
        }
    }

    let mut request = Request::from_parts(parts, Body::from(body));
    tracing::debug!(access_key = %caller.access_key, "caller authenticated");
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}
