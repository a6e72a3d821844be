//! Principals and what they may do: roles, projects, users, access-key credentials and tokens, as
//! records (the store keeps them; this crate only defines and checks them).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a request does, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The three dialects and native GET / list.
    Read,
    /// Native create and cancel.
    Write,
    /// The worker API.
    Work,
    /// Managing projects, users and credentials.
    Administer,
}

/// A principal's role. Each role's rights are fixed here, in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Producer,
    Worker,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Reader, Role::Producer, Role::Worker, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Producer => "producer",
            Role::Worker => "worker",
            Role::Admin => "admin",
        }
    }

    pub fn allows(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Role::Admin, _)
                | (Role::Reader, Action::Read)
                | (Role::Producer, Action::Read | Action::Write)
                | (Role::Worker, Action::Work)
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRole(pub String);

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown role {:?}; expected reader, producer, worker or admin", self.0)
    }
}

impl std::error::Error for UnknownRole {}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|role| role.as_str() == s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// A project: jobs live in one, callers are granted some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A user who gets tokens with a password. `Debug` never shows the password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user_id: String,
    pub name: String,
    pub domain: String,
    pub password_hash: String,
    pub project_id: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("domain", &self.domain)
            .field("password_hash", &"<redacted>")
            .field("project_id", &self.project_id)
            .field("role", &self.role)
            .finish()
    }
}

/// An access key. Its secret is kept sealed (see `SecretBox`); `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub access_key: String,
    pub sealed_secret: Vec<u8>,
    /// Who created it (a user id, or `root`).
    pub owner: String,
    pub project_ids: Vec<String>,
    pub role: Role,
    /// Enterprise projects it may see; empty means all of its projects'.
    pub enterprise_project_ids: Vec<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for CredentialRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialRecord")
            .field("access_key", &self.access_key)
            .field("sealed_secret", &"<redacted>")
            .field("owner", &self.owner)
            .field("project_ids", &self.project_ids)
            .field("role", &self.role)
            .field("enterprise_project_ids", &self.enterprise_project_ids)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// An issued token, stored by the SHA-256 of its text (the text itself is never kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub token_hash: String,
    pub user_id: String,
    pub project_id: String,
    pub role: Role,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

/// Which projects a principal may act in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectScope {
    All,
    Only(Vec<String>),
}

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The root key from the environment.
    Root,
    /// A stored access-key credential.
    AccessKey { access_key: String },
    /// A token issued to a user.
    Token { user_id: String, token_hash: String },
}

/// An authenticated caller and everything its rights depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub role: Role,
    pub projects: ProjectScope,
    /// Enterprise projects it may see; `None` means every one.
    pub enterprise_project_ids: Option<Vec<String>>,
}

impl Principal {
    pub fn root() -> Self {
        Principal {
            kind: PrincipalKind::Root,
            role: Role::Admin,
            projects: ProjectScope::All,
            enterprise_project_ids: None,
        }
    }

    pub fn may(&self, action: Action) -> bool {
        self.role.allows(action)
    }

    pub fn may_access_project(&self, project_id: &str) -> bool {
        match &self.projects {
            ProjectScope::All => true,
            ProjectScope::Only(ids) => ids.iter().any(|id| id == project_id),
        }
    }

    pub fn may_see_enterprise_project(&self, enterprise_project_id: &str) -> bool {
        match &self.enterprise_project_ids {
            None => true,
            Some(ids) => ids.iter().any(|id| id == enterprise_project_id),
        }
    }

    /// Whether every one of `project_ids` is the principal's.
    pub fn may_access_all(&self, project_ids: &[String]) -> bool {
        project_ids.iter().all(|id| self.may_access_project(id))
    }

    /// Whether the principal may act in every project (root, or an unscoped key).
    pub fn is_unscoped(&self) -> bool {
        self.projects == ProjectScope::All
    }

    /// A short name for logs (never a secret).
    pub fn label(&self) -> String {
        match &self.kind {
            PrincipalKind::Root => "root".to_owned(),
            PrincipalKind::AccessKey { access_key } => format!("ak:{access_key}"),
            PrincipalKind::Token { user_id, .. } => format!("user:{user_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_exactly_their_actions() {
        use Action::*;
        let table = [
            (Role::Reader, [true, false, false, false]),
            (Role::Producer, [true, true, false, false]),
            (Role::Worker, [false, false, true, false]),
            (Role::Admin, [true, true, true, true]),
        ];
        for (role, allowed) in table {
            for (action, expected) in [Read, Write, Work, Administer].into_iter().zip(allowed) {
                assert_eq!(role.allows(action), expected, "{role} {action:?}");
            }
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("owner".parse::<Role>().is_err());
    }
}
