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

impl Action {
    pub const ALL: [Action; 4] = [Action::Read, Action::Write, Action::Work, Action::Administer];
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

    /// Whether every action this role allows, `other` allows too.
    pub fn rights_within(self, other: Role) -> bool {
        Action::ALL.into_iter().all(|action| !self.allows(action) || other.allows(action))
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

/// The id jobd gives a domain (it keeps domains as names only): stable, 32 hex characters.
pub fn domain_id(domain: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(domain.as_bytes())[..16])
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
    /// Enterprise projects it and its tokens may see; empty means all of its project's.
    pub enterprise_project_ids: Vec<String>,
    /// Its virtual MFA device's TOTP secret, sealed (`SecretBox`); `None`: no device bound.
    pub totp_secret: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
}

impl UserRecord {
    /// How far the user, and every token issued to it, reaches.
    pub fn reach(&self) -> Reach {
        Reach::new(self.role, ProjectScope::Only(vec![self.project_id.clone()]), &self.enterprise_project_ids)
    }
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
            .field("enterprise_project_ids", &self.enterprise_project_ids)
            .field("totp_secret", &self.totp_secret.as_ref().map(|_| "<redacted>"))
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

impl CredentialRecord {
    /// How far the key reaches.
    pub fn reach(&self) -> Reach {
        Reach::new(self.role, ProjectScope::Only(self.project_ids.clone()), &self.enterprise_project_ids)
    }
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
    /// Enterprise projects it may see (its user's when issued); empty means all of its project's.
    pub enterprise_project_ids: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
    /// Scoped to its user's domain (`auth.scope.domain`): the admin API and the IAM listings,
    /// no project's jobs.
    pub domain_scoped: bool,
}

impl TokenRecord {
    /// How far the token reaches.
    pub fn reach(&self) -> Reach {
        Reach::new(self.role, ProjectScope::Only(vec![self.project_id.clone()]), &self.enterprise_project_ids)
    }
}

/// Which projects a principal may act in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectScope {
    All,
    Only(Vec<String>),
}

impl ProjectScope {
    /// Whether every project of this scope is one of `other`'s.
    pub fn within(&self, other: &ProjectScope) -> bool {
        match (self, other) {
            (_, ProjectScope::All) => true,
            (ProjectScope::All, ProjectScope::Only(_)) => false,
            (ProjectScope::Only(mine), ProjectScope::Only(theirs)) => mine.iter().all(|id| theirs.contains(id)),
        }
    }
}

/// How far a principal (a key, a user, a token, a caller) reaches: the rights of its role, its
/// projects and, within them, its enterprise projects. The one comparison of principals: no
/// principal may create, see in a list, change or remove one whose reach is not `within` its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub role: Role,
    pub projects: ProjectScope,
    /// `None`: every enterprise project of its projects.
    pub enterprise_project_ids: Option<Vec<String>>,
}

impl Reach {
    /// A reach from a stored limit, where an empty list of enterprise projects means all of them.
    pub fn new(role: Role, projects: ProjectScope, enterprise_project_ids: &[String]) -> Self {
        Reach { role, projects, enterprise_project_ids: enterprise_limit(enterprise_project_ids) }
    }

    /// Whether `self` reaches nowhere `other` does not: no right, project or enterprise project more.
    pub fn within(&self, other: &Reach) -> bool {
        let enterprise_projects_within = match (&self.enterprise_project_ids, &other.enterprise_project_ids) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(mine), Some(theirs)) => {
                mine.iter().all(|eps| theirs.iter().any(|granted| granted.eq_ignore_ascii_case(eps)))
            }
        };
        self.role.rights_within(other.role) && self.projects.within(&other.projects) && enterprise_projects_within
    }
}

/// A stored list of enterprise projects as a limit: empty means none (every enterprise project).
pub fn enterprise_limit(enterprise_project_ids: &[String]) -> Option<Vec<String>> {
    (!enterprise_project_ids.is_empty()).then(|| enterprise_project_ids.to_vec())
}

/// What a principal may do to another principal (a key, a user, a token) of a given reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversight {
    /// Within its reach: it may create, see, change and remove it.
    Manages,
    /// In its projects but reaching further: it may neither create, see, change nor remove it (`403`).
    ReachesFurther,
    /// Outside its projects: as if it did not exist (`404`; creating one there is `403`).
    OutOfSight,
}

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The root key from the environment.
    Root,
    /// A stored access-key credential.
    AccessKey { access_key: String },
    /// A token issued to a user; `domain_scoped` when it was scoped to the user's domain (it
    /// reads no project's jobs).
    Token { user_id: String, token_hash: String, domain_scoped: bool },
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

    /// How far the principal reaches.
    pub fn reach(&self) -> Reach {
        Reach {
            role: self.role,
            projects: self.projects.clone(),
            enterprise_project_ids: self.enterprise_project_ids.clone(),
        }
    }

    /// What the principal may do to a principal of reach `target`. Whether it may administer at
    /// all is its role's business (the route's action); this is only about reach.
    pub fn oversight(&self, target: &Reach) -> Oversight {
        if !target.projects.within(&self.projects) {
            Oversight::OutOfSight
        } else if target.within(&self.reach()) {
            Oversight::Manages
        } else {
            Oversight::ReachesFurther
        }
    }

    /// Whether the principal is a domain-scoped token: it may use the admin API and the IAM
    /// listings, and no project's jobs.
    pub fn is_domain_scoped(&self) -> bool {
        matches!(self.kind, PrincipalKind::Token { domain_scoped: true, .. })
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

    fn only(ids: &[&str]) -> ProjectScope {
        ProjectScope::Only(ids.iter().map(|id| id.to_string()).collect())
    }

    fn reach(role: Role, projects: ProjectScope, eps: &[&str]) -> Reach {
        Reach::new(role, projects, &eps.iter().map(|id| id.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_reach_is_within_another_only_if_no_right_project_or_enterprise_project_is_more() {
        use Role::*;
        let admin_of_p = reach(Admin, only(&["p"]), &[]);
        let admin_of_p_eps_a = reach(Admin, only(&["p"]), &["eps-a"]);
        let cases = [
            // (target, manager, within)
            (reach(Reader, only(&["p"]), &[]), admin_of_p.clone(), true),
            (reach(Admin, only(&["p"]), &[]), admin_of_p.clone(), true),
            (reach(Admin, only(&["p"]), &["eps-a"]), admin_of_p.clone(), true),
            (reach(Admin, only(&["p", "q"]), &[]), admin_of_p.clone(), false),
            (reach(Admin, only(&["q"]), &[]), admin_of_p.clone(), false),
            (reach(Admin, ProjectScope::All, &[]), admin_of_p.clone(), false),
            // Enterprise projects: all of them is more than some; a subset is within, case aside.
            (reach(Reader, only(&["p"]), &[]), admin_of_p_eps_a.clone(), false),
            (reach(Reader, only(&["p"]), &["eps-a"]), admin_of_p_eps_a.clone(), true),
            (reach(Reader, only(&["p"]), &["EPS-A"]), admin_of_p_eps_a.clone(), true),
            (reach(Reader, only(&["p"]), &["eps-b"]), admin_of_p_eps_a.clone(), false),
            (reach(Reader, only(&["p"]), &["eps-a", "eps-b"]), admin_of_p_eps_a.clone(), false),
            (reach(Reader, only(&["p"]), &["eps-a"]), reach(Admin, only(&["p"]), &["eps-a", "eps-b"]), true),
            // Rights: a role with a right the other lacks is not within it.
            (reach(Worker, only(&["p"]), &[]), reach(Producer, only(&["p"]), &[]), false),
            (reach(Reader, only(&["p"]), &[]), reach(Producer, only(&["p"]), &[]), true),
            (reach(Admin, only(&["p"]), &[]), reach(Producer, only(&["p"]), &[]), false),
            // Root reaches everything.
            (reach(Admin, ProjectScope::All, &[]), Principal::root().reach(), true),
        ];
        for (target, manager, within) in cases {
            assert_eq!(target.within(&manager), within, "{target:?} within {manager:?}");
        }
        for role in Role::ALL {
            assert!(role.rights_within(Admin) && role.rights_within(role));
        }
    }

    #[test]
    fn oversight_hides_other_projects_and_refuses_wider_reach() {
        let limited = Principal {
            kind: PrincipalKind::AccessKey { access_key: "AK".into() },
            role: Role::Admin,
            projects: only(&["p"]),
            enterprise_project_ids: Some(vec!["eps-a".into()]),
        };
        assert_eq!(limited.oversight(&reach(Role::Admin, only(&["p"]), &["eps-a"])), Oversight::Manages);
        assert_eq!(limited.oversight(&limited.reach()), Oversight::Manages, "its own reach");
        assert_eq!(limited.oversight(&reach(Role::Reader, only(&["p"]), &[])), Oversight::ReachesFurther);
        assert_eq!(limited.oversight(&reach(Role::Reader, only(&["p"]), &["eps-b"])), Oversight::ReachesFurther);
        assert_eq!(limited.oversight(&reach(Role::Reader, only(&["q"]), &["eps-a"])), Oversight::OutOfSight);
        assert_eq!(limited.oversight(&reach(Role::Reader, only(&["p", "q"]), &[])), Oversight::OutOfSight);
        assert_eq!(Principal::root().oversight(&reach(Role::Admin, ProjectScope::All, &[])), Oversight::Manages);
    }
}
