//! The admin API (`/v1/admin/...`): projects, users and access-key credentials. Needs an admin key.

use serde::{Deserialize, Serialize};

use crate::client::{path, Call, Client};
use crate::error::Result;

/// A project: jobs live in one, credentials are granted some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A virtual MFA device just bound to a user: the URI an authenticator app reads (shown once).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MfaDevice {
    pub user_id: String,
    pub otpauth_uri: String,
}

/// A user who gets tokens with a password (the password itself is never answered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub project_id: String,
    pub role: String,
    /// Enterprise projects it and its tokens may see (empty: all).
    #[serde(default)]
    pub enterprise_project_ids: Vec<String>,
    /// Whether a virtual MFA device is bound (its tokens then need a code).
    #[serde(default)]
    pub mfa: bool,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// An access key. `secret_key` is present only in the answer that created it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub access_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    pub owner: String,
    pub project_ids: Vec<String>,
    pub role: String,
    pub enterprise_project_ids: Vec<String>,
    pub enabled: bool,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub last_used_at: Option<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .field("project_ids", &self.project_ids)
            .field("role", &self.role)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// A new user.
#[derive(Clone, Serialize)]
pub struct NewUser {
    pub name: String,
    pub domain: String,
    pub password: String,
    pub project_id: String,
    pub role: String,
    /// Limit the user and its tokens to these enterprise projects; empty: the creating key's own
    /// limit (none for an unrestricted admin).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enterprise_project_ids: Vec<String>,
}

/// A new credential.
#[derive(Debug, Clone, Serialize)]
pub struct NewCredential {
    pub project_ids: Vec<String>,
    pub role: String,
    pub enterprise_project_ids: Vec<String>,
}

#[derive(Deserialize)]
struct Projects {
    projects: Vec<Project>,
}

#[derive(Deserialize)]
struct Users {
    users: Vec<User>,
}

#[derive(Deserialize)]
struct Credentials {
    credentials: Vec<Credential>,
}

impl Client {
    pub async fn create_project(&self, name: &str) -> Result<Project> {
        let call = Call::post(path(&["v1", "admin", "projects"])?).json(&serde_json::json!({"name": name}))?;
        self.send(call).await?.json()
    }

    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        Ok(self.send(Call::get(path(&["v1", "admin", "projects"])?)).await?.json::<Projects>()?.projects)
    }

    pub async fn create_user(&self, user: &NewUser) -> Result<User> {
        self.send(Call::post(path(&["v1", "admin", "users"])?).json(user)?).await?.json()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self.send(Call::get(path(&["v1", "admin", "users"])?)).await?.json::<Users>()?.users)
    }

    /// Binds a new virtual MFA device to a user (replacing any other): its `otpauth://` URI,
    /// shown this once.
    pub async fn bind_mfa_device(&self, user_id: &str) -> Result<MfaDevice> {
        self.send(Call::post(path(&["v1", "admin", "users", user_id, "mfa"])?)).await?.json()
    }

    pub async fn delete_user(&self, user_id: &str) -> Result<()> {
        self.send(Call::new(http::Method::DELETE, &["v1", "admin", "users", user_id])?).await?;
        Ok(())
    }

    /// Creates an access key; the answer carries its secret key, shown this once.
    pub async fn create_credential(&self, credential: &NewCredential) -> Result<Credential> {
        self.send(Call::post(path(&["v1", "admin", "credentials"])?).json(credential)?).await?.json()
    }

    pub async fn list_credentials(&self) -> Result<Vec<Credential>> {
        Ok(self.send(Call::get(path(&["v1", "admin", "credentials"])?)).await?.json::<Credentials>()?.credentials)
    }

    pub async fn set_credential_enabled(&self, access_key: &str, enabled: bool) -> Result<()> {
        let verb = if enabled { "enable" } else { "disable" };
        self.send(Call::post(path(&["v1", "admin", "credentials", access_key, verb])?)).await?;
        Ok(())
    }

    pub async fn delete_credential(&self, access_key: &str) -> Result<()> {
        self.send(Call::new(http::Method::DELETE, &["v1", "admin", "credentials", access_key])?).await?;
        Ok(())
    }
}
