//! The identity store: projects, users, credentials and tokens, in domain verbs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jobd_auth::identity::{CredentialRecord, ProjectRecord, TokenRecord, UserRecord};

use crate::Result;

/// Durable storage of who may call jobd. Every `Ok` write is durable.
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// Fails with `Conflict` when the id or the name is taken.
    async fn insert_project(&self, project: &ProjectRecord) -> Result<()>;
    async fn list_projects(&self) -> Result<Vec<ProjectRecord>>;
    async fn get_project(&self, id: &str) -> Result<Option<ProjectRecord>>;
    async fn find_project_by_name(&self, name: &str) -> Result<Option<ProjectRecord>>;

    /// Fails with `Conflict` when the domain already has a user of that name.
    async fn insert_user(&self, user: &UserRecord) -> Result<()>;
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
    async fn find_user(&self, domain: &str, name: &str) -> Result<Option<UserRecord>>;
    /// Deletes a user and revokes its tokens; `false` if there was none.
    async fn delete_user(&self, user_id: &str) -> Result<bool>;
    /// Binds a virtual MFA device (its sealed TOTP secret) to a user, replacing any other, and
    /// forgets the last step used; `false` if there is no such user.
    async fn bind_mfa_device(&self, user_id: &str, sealed_secret: &[u8]) -> Result<bool>;
    /// Records that the user's code of `step` was used, in one statement: `true` only if the user
    /// has a device and no code of this step or a later one was used before (so each code is
    /// accepted once, even by nodes racing each other).
    async fn use_mfa_step(&self, user_id: &str, step: i64) -> Result<bool>;

    async fn insert_credential(&self, credential: &CredentialRecord) -> Result<()>;
    async fn get_credential(&self, access_key: &str) -> Result<Option<CredentialRecord>>;
    async fn list_credentials(&self) -> Result<Vec<CredentialRecord>>;
    /// `false` if there is no such credential.
    async fn set_credential_enabled(&self, access_key: &str, enabled: bool) -> Result<bool>;
    async fn delete_credential(&self, access_key: &str) -> Result<bool>;
    async fn touch_credential(&self, access_key: &str, now: DateTime<Utc>) -> Result<()>;

    /// Inserts a token only if its user still exists, checked in the same statement: `false` (and
    /// nothing inserted) if the user is gone. With `delete_user`, whatever the interleaving, a
    /// deleted user is left with no valid token: either the deletion waits for the insert and
    /// revokes the token, or the insert waits for the deletion and finds no user.
    async fn insert_token(&self, token: &TokenRecord) -> Result<bool>;
    async fn get_token(&self, token_hash: &str) -> Result<Option<TokenRecord>>;
    /// `false` if there is no such token.
    async fn revoke_token(&self, token_hash: &str) -> Result<bool>;
    /// Deletes tokens that expired before `cutoff`.
    async fn prune_tokens(&self, cutoff: DateTime<Utc>) -> Result<u64>;
}
