//! The body of an IAM token request (`POST /v3/auth/tokens`, the password method): the one parser
//! of it (the HTTP layer maps its error to a Keystone-shaped `400`; `fuzz/` feeds it arbitrary
//! bytes).
//!
//! ```json
//! {"auth": {"identity": {"methods": ["password"],
//!                        "password": {"user": {"name": "u", "password": "p", "domain": {"name": "d"}}}},
//!           "scope": {"project": {"id": "..."}}}}
//! ```
//! The scope names the project by `id` or by `name` (an `id` wins when both are given), or a domain
//! (`auth.scope.domain`, by `id` or `name`). With the methods `password` and `totp`, the body also
//! carries `auth.identity.totp.user` (`id`, `passcode`): virtual MFA.

use serde::Deserialize;

/// Why a body is not a token request; the message is written for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidTokenRequest(pub String);

/// What a token is asked for: a project (by id or name) or a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    Id(String),
    Name(String),
    Domain { id: Option<String>, name: Option<String> },
}

/// The `totp` part of a request: whose code it is and the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpPart {
    pub user_id: String,
    pub passcode: String,
}

/// A password token request, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordTokenRequest {
    pub domain: String,
    pub user_name: String,
    pub password: String,
    pub scope: TokenScope,
    /// Present exactly when the methods include `totp`.
    pub totp: Option<TotpPart>,
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
    #[serde(default)]
    totp: Option<TotpBody>,
}

#[derive(Debug, Deserialize)]
struct TotpBody {
    user: TotpUser,
}

#[derive(Debug, Deserialize)]
struct TotpUser {
    id: String,
    passcode: String,
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
    #[serde(default)]
    domain: Option<NamedRef>,
}

/// Reads a token request body.
pub fn parse_token_request(body: &[u8]) -> Result<PasswordTokenRequest, InvalidTokenRequest> {
    let invalid = |m: String| InvalidTokenRequest(m);
    let request: TokenRequest =
        serde_json::from_slice(body).map_err(|e| invalid(format!("invalid token request: {e}")))?;
    let methods = &request.auth.identity.methods;
    if !methods.iter().any(|m| m == "password") || methods.iter().any(|m| m != "password" && m != "totp") {
        return Err(invalid("the methods are \"password\", or \"password\" and \"totp\"".into()));
    }
    let totp = match (methods.iter().any(|m| m == "totp"), request.auth.identity.totp) {
        (true, Some(totp)) => Some(TotpPart { user_id: totp.user.id, passcode: totp.user.passcode }),
        (true, None) => return Err(invalid("the totp method needs auth.identity.totp.user".into())),
        (false, Some(_)) => return Err(invalid("auth.identity.totp is given without the totp method".into())),
        (false, None) => None,
    };
    let password =
        request.auth.identity.password.ok_or_else(|| invalid("auth.identity.password is required".into()))?;
    let domain = password
        .user
        .domain
        .name
        .ok_or_else(|| invalid("auth.identity.password.user.domain.name is required".into()))?;
    let scope = match request.auth.scope.map(|s| (s.project, s.domain)) {
        Some((Some(NamedRef { id: Some(id), .. }), None)) => TokenScope::Id(id),
        Some((Some(NamedRef { name: Some(name), .. }), None)) => TokenScope::Name(name),
        Some((None, Some(NamedRef { id, name }))) if id.is_some() || name.is_some() => TokenScope::Domain { id, name },
        _ => {
            return Err(invalid(
                "one scope is required: auth.scope.project (id or name) or auth.scope.domain (id or name)".into(),
            ))
        }
    };
    Ok(PasswordTokenRequest { domain, user_name: password.user.name, password: password.user.password, scope, totp })
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
