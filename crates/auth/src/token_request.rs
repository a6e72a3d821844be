//! The body of an IAM token request (`POST /v3/auth/tokens`, the password method): the one parser
//! of it (the HTTP layer maps its error to a Keystone-shaped `400`; `fuzz/` feeds it arbitrary
//! bytes).
//!
//! ```json
//! {"auth": {"identity": {"methods": ["password"],
//!                        "password": {"user": {"name": "u", "password": "p", "domain": {"name": "d"}}}},
//!           "scope": {"project": {"id": "..."}}}}
//! ```
//! The scope names the project by `id` or by `name` (an `id` wins when both are given).

use serde::Deserialize;

/// Why a body is not a token request; the message is written for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidTokenRequest(pub String);

/// The project a token is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    Id(String),
    Name(String),
}

/// A password token request, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordTokenRequest {
    pub domain: String,
    pub user_name: String,
    pub password: String,
    pub scope: TokenScope,
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    auth: AuthBody,
}

#[derive(Debug, Deserialize)]
struct AuthBody {
    identity: IdentityBody,
    #[serde(default)]
    scope: Option<ScopeBody>,
}

#[derive(Debug, Deserialize)]
struct IdentityBody {
    methods: Vec<String>,
    #[serde(default)]
    password: Option<PasswordBody>,
}

#[derive(Debug, Deserialize)]
struct PasswordBody {
    user: UserBody,
}

#[derive(Debug, Deserialize)]
struct UserBody {
    name: String,
    password: String,
    domain: NamedRef,
}

#[derive(Debug, Deserialize)]
struct NamedRef {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ScopeBody {
    #[serde(default)]
    project: Option<NamedRef>,
}

/// Reads a token request body.
pub fn parse_token_request(body: &[u8]) -> Result<PasswordTokenRequest, InvalidTokenRequest> {
    let invalid = |m: String| InvalidTokenRequest(m);
    let request: TokenRequest =
        serde_json::from_slice(body).map_err(|e| invalid(format!("invalid token request: {e}")))?;
    if !request.auth.identity.methods.iter().any(|m| m == "password") {
        return Err(invalid("only the \"password\" method is supported".into()));
    }
    let password =
        request.auth.identity.password.ok_or_else(|| invalid("auth.identity.password is required".into()))?;
    let domain = password
        .user
        .domain
        .name
        .ok_or_else(|| invalid("auth.identity.password.user.domain.name is required".into()))?;
    let scope = match request.auth.scope.and_then(|s| s.project) {
        Some(NamedRef { id: Some(id), .. }) => TokenScope::Id(id),
        Some(NamedRef { name: Some(name), .. }) => TokenScope::Name(name),
        _ => return Err(invalid("a project scope (auth.scope.project.id or .name) is required".into())),
    };
    Ok(PasswordTokenRequest { domain, user_name: password.user.name, password: password.user.password, scope })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_password_request_and_refuses_what_lacks_a_part() {
        let body = br#"{"auth": {"identity": {"methods": ["password"], "password": {"user":
            {"name": "u", "password": "p", "domain": {"name": "d"}}}}, "scope": {"project": {"name": "n"}}}}"#;
        let request = parse_token_request(body).unwrap();
        assert_eq!(request.scope, TokenScope::Name("n".into()));
        assert_eq!((request.domain.as_str(), request.user_name.as_str(), request.password.as_str()), ("d", "u", "p"));
        for bad in [&b"[]"[..], b"{\"auth\": {\"identity\": {\"methods\": [\"token\"]}}}", b"\xff"] {
            assert!(parse_token_request(bad).is_err());
        }
    }
}
