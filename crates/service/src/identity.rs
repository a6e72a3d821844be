//! The identity service: projects, users, credentials and tokens, and turning a request's proof
//! (an access key or a token) into a `Principal`. Also the per-credential rate limit and the
//! lock on access keys that keep failing their signatures.

use std::collections::HashMap;

use crate::abuse::{KeyedBuckets, SignatureFailures};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobd_auth::identity::{
    enterprise_limit, CredentialRecord, Principal, PrincipalKind, ProjectRecord, ProjectScope, Role, TokenRecord,
    UserRecord,
};
use jobd_auth::secrets::{self, MasterKey};
use jobd_core::ids::parse_enterprise_project_id;
use jobd_core::{Clock, Timestamp, ValidationError};
use jobd_store::{IdentityStore, StoreError};

/// The root credential from the environment. `Debug` never shows the secret.
#[derive(Clone)]
pub struct RootKey {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKey").field("access_key", &self.access_key).field("secret_key", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub token_ttl: Duration,
    /// Requests per second per credential (0: no limit); bursts of twice that are allowed.
    pub rate_limit_per_second: u32,
    /// This many signature failures for one access key from one client address within
    /// `lock_window` lock that key for that address for `lock_for`.
    pub lock_after_failures: u32,
    pub lock_window: Duration,
    pub lock_for: Duration,
    /// Failed authentications (`401`) per second per client address (bursts of 5 times that)
    /// before that address is answered `429` without checking (0: no limit).
    pub failed_auth_per_second: u32,
    /// Token requests (`POST /v3/auth/tokens`) per minute per client address, and failed ones per
    /// minute per user name; bursts of the same number (0: no limit).
    pub password_attempts_per_minute: u32,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            token_ttl: Duration::from_secs(24 * 60 * 60),
            rate_limit_per_second: 1000,
            lock_after_failures: 10,
            lock_window: Duration::from_secs(60),
            lock_for: Duration::from_secs(60),
            failed_auth_per_second: 10,
            password_attempts_per_minute: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the user name, domain or password is wrong")]
    BadPassword,
    #[error("the user has no access to that project")]
    WrongScope,
    /// The user has a virtual MFA device and the request proved no code (`password` alone).
    #[error("the user has a virtual MFA device: authenticate with the methods password and totp")]
    MfaRequired,
    /// The `totp` part names another user or a user without a device, or its code is wrong,
    /// outside ±1 step, or used before.
    #[error("the MFA verification code is wrong, expired or already used, or not this user's")]
    MfaFailed,
    #[error("the token is not valid")]
    InvalidToken,
    #[error("the token expired at {0}")]
    ExpiredToken(Timestamp),
    #[error("the identity store failed: {0}")]
    Store(#[source] StoreError),
}

impl From<StoreError> for IdentityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => IdentityError::Conflict(what),
            other => IdentityError::Store(other),
        }
    }
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

/// An access key's secret and whom it stands for.
pub struct ResolvedKey {
    pub secret_key: String,
    pub principal: Principal,
}

/// A freshly issued token: its text (given out once) and its record.
pub struct IssuedToken {
    pub token: String,
    pub record: TokenRecord,
    pub user: UserRecord,
    /// The project it is scoped to; for a domain-scoped token, its user's project (whose admin
    /// API reach it keeps).
    pub project: ProjectRecord,
    /// What was verified: `password`, and `totp` for a user with a virtual MFA device.
    pub methods: Vec<&'static str>,
}

/// The `totp` part of a token request: whose device, and its current code.
pub struct TotpProof {
    pub user_id: String,
    pub passcode: String,
}

/// A new virtual MFA device, shown once.
pub struct BoundMfaDevice {
    pub user: UserRecord,
    /// `otpauth://totp/jobd:{name}@{domain}?secret=...&issuer=jobd`.
    pub otpauth_uri: String,
}

/// A new credential and its secret (shown once).
pub struct CreatedCredential {
    pub record: CredentialRecord,
    pub secret_key: String,
}

/// How a token request names its scope: a project, or the user's own domain.
pub enum ProjectSelector {
    Id(String),
    Name(String),
    /// `auth.scope.domain` (by id or name): the admin API and the IAM listings, no project's jobs.
    Domain {
        id: Option<String>,
        name: Option<String>,
    },
    /// The user's own project (a user has one): the console's sign-in names none.
    UsersOwn,
}

/// Cheap to clone (one reference count): every request clones it with the app state.
#[derive(Clone)]
pub struct IdentityService {
    inner: Arc<IdentityState>,
}

impl std::ops::Deref for IdentityService {
    type Target = IdentityState;
    fn deref(&self) -> &IdentityState {
        &self.inner
    }
}

pub struct IdentityState {
    password_work: Arc<tokio::sync::Semaphore>,
    last_touched: Arc<Mutex<HashMap<String, Timestamp>>>,
    store: Arc<dyn IdentityStore>,
    clock: Arc<dyn Clock>,
    master_key: MasterKey,
    root: Option<RootKey>,
    config: IdentityConfig,
    abuse: Arc<AbuseCounters>,
}

/// What `IdentityService` counts against abuse (`crate::abuse`).
struct AbuseCounters {
    /// Requests per principal.
    requests: KeyedBuckets,
    /// Failed authentications per client address.
    failed_auth: KeyedBuckets,
    /// Token requests per client address.
    password_attempts: KeyedBuckets,
    /// Failed token requests per user name (`domain/name`).
    password_failures: KeyedBuckets,
    signatures: SignatureFailures,
}

/// How many password hashes may be computed at once.
const PASSWORD_WORK_AT_ONCE: usize = 2;
/// Expired tokens are kept this long before pruning, so they keep answering "expired" (0307).
const EXPIRED_TOKEN_GRACE: Duration = Duration::from_secs(24 * 60 * 60);
/// How often a credential's `last_used_at` is written at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// At most this many access keys are tracked (signature failures, last use).
const MAX_TRACKED_KEYS: usize = 100_000;

/// A valid argon2 hash of nothing anyone knows, checked when the user does not exist.
static UNKNOWN_USER_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| secrets::hash_password(&uuid::Uuid::new_v4().to_string()).expect("hashing works"));

/// What a project, user or domain name may be, as a regular expression (for `/openapi.json`).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
/// How many characters a user's password has.
pub const PASSWORD_LENGTH: std::ops::RangeInclusive<usize> = 8..=128;

fn check_name(field: &str, value: &str) -> Result<()> {
    let ok = (1..=64).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::field(field, "must be 1 to 64 letters, digits, '-', '_' or '.'").into())
    }
}

/// Checks and folds a list of enterprise projects (a limit: empty means all of them).
fn parse_enterprise_projects(enterprise_project_ids: &[String]) -> Result<Vec<String>> {
    Ok(enterprise_project_ids.iter().map(|eps| parse_enterprise_project_id(eps)).collect::<Result<Vec<_>, _>>()?)
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl IdentityService {
    pub fn new(
        store: Arc<dyn IdentityStore>,
        clock: Arc<dyn Clock>,
        master_key: MasterKey,
        root: Option<RootKey>,
        config: IdentityConfig,
    ) -> Self {
        let state = IdentityState {
            password_work: Arc::new(tokio::sync::Semaphore::new(PASSWORD_WORK_AT_ONCE)),
            last_touched: Arc::new(Mutex::new(HashMap::new())),
            store,
            clock,
            master_key,
            root,
            abuse: Arc::new(AbuseCounters {
                requests: KeyedBuckets::new(
                    f64::from(config.rate_limit_per_second),
                    f64::from(config.rate_limit_per_second) * 2.0,
                ),
                failed_auth: KeyedBuckets::new(
                    f64::from(config.failed_auth_per_second),
                    f64::from(config.failed_auth_per_second) * 5.0,
                ),
                password_attempts: KeyedBuckets::new(
                    f64::from(config.password_attempts_per_minute) / 60.0,
                    f64::from(config.password_attempts_per_minute),
                ),
                password_failures: KeyedBuckets::new(
                    f64::from(config.password_attempts_per_minute) / 60.0,
                    f64::from(config.password_attempts_per_minute),
                ),
                signatures: SignatureFailures::new(config.lock_after_failures, config.lock_window, config.lock_for),
            }),
            config,
        };
        IdentityService { inner: Arc::new(state) }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    // ---- management ----

    pub async fn create_project(&self, name: &str) -> Result<ProjectRecord> {
        check_name("name", name)?;
        let project = ProjectRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: name.to_owned(),
            created_at: self.now(),
        };
        self.store.insert_project(&project).await?;
        Ok(project)
    }

    pub async fn list_projects(&self) -> Result<Vec<ProjectRecord>> {
        Ok(self.store.list_projects().await?)
    }

    async fn require_project(&self, project_id: &str) -> Result<ProjectRecord> {
        self.store
            .get_project(project_id)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("project {project_id}")))
    }

    /// A user of one project, limited to `enterprise_project_ids` (empty: all of them); its tokens
    /// carry the same limit.
    pub async fn create_user(
        &self,
        name: &str,
        domain: &str,
        password: &str,
        project_id: &str,
        role: Role,
        enterprise_project_ids: &[String],
    ) -> Result<UserRecord> {
        check_name("name", name)?;
        check_name("domain", domain)?;
        if !PASSWORD_LENGTH.contains(&password.chars().count()) {
            let (min, max) = (PASSWORD_LENGTH.start(), PASSWORD_LENGTH.end());
            return Err(ValidationError::field("password", format!("must be {min} to {max} characters")).into());
        }
        let enterprise_project_ids = parse_enterprise_projects(enterprise_project_ids)?;
        self.require_project(project_id).await?;
        let password = password.to_owned();
        let password_hash = self
            .run_password_work(move || secrets::hash_password(&password))
            .await
            .map_err(|e| ValidationError::field("password", e.to_string()))?;
        let user = UserRecord {
            user_id: uuid::Uuid::new_v4().simple().to_string(),
            name: name.to_owned(),
            domain: domain.to_owned(),
            password_hash,
            project_id: project_id.to_owned(),
            role,
            enterprise_project_ids,
            totp_secret: None,
            created_at: self.now(),
        };
        self.store.insert_user(&user).await?;
        Ok(user)
    }

    pub async fn list_users(&self) -> Result<Vec<UserRecord>> {
        Ok(self.store.list_users().await?)
    }

    /// Binds a new virtual MFA device to a user (replacing any other) and returns it, once: its
    /// secret is kept sealed and never shown again.
    pub async fn bind_mfa_device(&self, user_id: &str) -> Result<BoundMfaDevice> {
        let not_found = || IdentityError::NotFound(format!("user {user_id}"));
        let user = self.list_users().await?.into_iter().find(|u| u.user_id == user_id).ok_or_else(not_found)?;
        let secret = jobd_auth::mfa::generate_secret();
        let otpauth_uri = jobd_auth::mfa::otpauth_uri(&secret, &format!("{}@{}", user.name, user.domain))
            .ok_or_else(|| ValidationError::field("user", "cannot make an MFA device for this user"))?;
        let sealed = self.master_key.seal_bytes(&secret);
        if !self.store.bind_mfa_device(user_id, &sealed).await? {
            return Err(not_found());
        }
        Ok(BoundMfaDevice { user: UserRecord { totp_secret: Some(sealed), ..user }, otpauth_uri })
    }

    pub async fn delete_user(&self, user_id: &str) -> Result<()> {
        if self.store.delete_user(user_id).await? {
            Ok(())
        } else {
            Err(IdentityError::NotFound(format!("user {user_id}")))
        }
    }

    pub async fn create_credential(
        &self,
        owner: &str,
        project_ids: &[String],
        role: Role,
        enterprise_project_ids: &[String],
    ) -> Result<CreatedCredential> {
        if project_ids.is_empty() {
            return Err(ValidationError::field("project_ids", "must name at least one project").into());
        }
        for project_id in project_ids {
            self.require_project(project_id).await?;
        }
        let enterprise_project_ids = parse_enterprise_projects(enterprise_project_ids)?;
        let (access_key, secret_key) = secrets::generate_access_key_pair();
        let record = CredentialRecord {
            access_key,
            sealed_secret: self.master_key.seal(&secret_key),
            owner: owner.to_owned(),
            project_ids: project_ids.to_vec(),
            role,
            enterprise_project_ids,
            enabled: true,
            created_at: self.now(),
            last_used_at: None,
        };
        self.store.insert_credential(&record).await?;
        Ok(CreatedCredential { record, secret_key })
    }

    /// One stored credential (enabled or not).
    pub async fn get_credential(&self, access_key: &str) -> Result<Option<CredentialRecord>> {
        Ok(self.store.get_credential(access_key).await?)
    }

    pub async fn list_credentials(&self) -> Result<Vec<CredentialRecord>> {
        Ok(self.store.list_credentials().await?)
    }

    pub async fn set_credential_enabled(&self, access_key: &str, enabled: bool) -> Result<()> {
        if self.store.set_credential_enabled(access_key, enabled).await? {
            Ok(())
        } else {
            Err(IdentityError::NotFound(format!("credential {access_key}")))
        }
    }

    pub async fn delete_credential(&self, access_key: &str) -> Result<()> {
        if self.store.delete_credential(access_key).await? {
            Ok(())
        } else {
            Err(IdentityError::NotFound(format!("credential {access_key}")))
        }
    }

    /// Runs argon2 on the blocking pool, at most a few at once, so password checks never stall
    /// the async workers that answer every other request.
    async fn run_password_work<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let _permit = self.password_work.acquire().await.expect("the semaphore is never closed");
        tokio::task::spawn_blocking(work).await.expect("password hashing does not panic")
    }

    // ---- tokens ----

    pub async fn issue_token(
        &self,
        domain: &str,
        name: &str,
        password: &str,
        scope: ProjectSelector,
    ) -> Result<IssuedToken> {
        self.issue_token_with_mfa(domain, name, password, scope, None).await
    }

    /// Checks a `totp` proof for `user` (who passed its password): `Ok(true)` when the user has a
    /// device and the proof holds a code of it not used before; `Ok(false)` for a user without a
    /// device and no proof.
    async fn check_mfa(&self, user: &UserRecord, totp: Option<&TotpProof>) -> Result<bool> {
        let (sealed, proof) = match (&user.totp_secret, totp) {
            (None, None) => return Ok(false),
            (Some(_), None) => return Err(IdentityError::MfaRequired),
            (None, Some(_)) => return Err(IdentityError::MfaFailed),
            (Some(sealed), Some(proof)) => (sealed, proof),
        };
        if proof.user_id != user.user_id {
            return Err(IdentityError::MfaFailed);
        }
        let secret = self.master_key.unseal_bytes(sealed).map_err(|e| {
            tracing::error!(user_id = %user.user_id, error = %e, "cannot unseal an MFA secret: is the master key right?");
            IdentityError::MfaFailed
        })?;
        let unix_seconds = u64::try_from(self.now().timestamp()).unwrap_or_default();
        let step =
            jobd_auth::mfa::matching_step(&secret, &proof.passcode, unix_seconds).ok_or(IdentityError::MfaFailed)?;
        let step = i64::try_from(step).map_err(|_| IdentityError::MfaFailed)?;
        if self.store.use_mfa_step(&user.user_id, step).await? {
            Ok(true)
        } else {
            Err(IdentityError::MfaFailed)
        }
    }

    /// A token for a user's password, and for a user with a virtual MFA device its current code
    /// (`totp`): without one such a user is refused (`MfaRequired`).
    pub async fn issue_token_with_mfa(
        &self,
        domain: &str,
        name: &str,
        password: &str,
        scope: ProjectSelector,
        totp: Option<TotpProof>,
    ) -> Result<IssuedToken> {
        let user = self.store.find_user(domain, name).await?;
        // Verify even for an unknown user (against a fixed hash), so timing does not tell who exists;
        // argon2 runs off the async workers, a few at a time.
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| UNKNOWN_USER_HASH.clone());
        let password = password.to_owned();
        let matches = self.run_password_work(move || secrets::verify_password(&password, &stored_hash)).await;
        let Some(user) = user.filter(|_| matches) else {
            return Err(IdentityError::BadPassword);
        };
        let with_totp = self.check_mfa(&user, totp.as_ref()).await?;
        let domain_scoped = matches!(scope, ProjectSelector::Domain { .. });
        let project = match scope {
            ProjectSelector::Id(id) => self.store.get_project(&id).await?,
            ProjectSelector::Name(name) => self.store.find_project_by_name(&name).await?,
            ProjectSelector::Domain { id, name } => {
                let own = id.as_ref().is_none_or(|id| *id == jobd_auth::identity::domain_id(&user.domain))
                    && name.as_ref().is_none_or(|name| *name == user.domain)
                    && (id.is_some() || name.is_some());
                if !own {
                    return Err(IdentityError::WrongScope);
                }
                self.store.get_project(&user.project_id).await?
            }
            ProjectSelector::UsersOwn => self.store.get_project(&user.project_id).await?,
        };
        let project = project.filter(|p| p.id == user.project_id).ok_or(IdentityError::WrongScope)?;
        let (token, token_hash) = secrets::generate_token();
        let issued_at = self.now();
        let record = TokenRecord {
            token_hash,
            user_id: user.user_id.clone(),
            project_id: project.id.clone(),
            role: user.role,
            enterprise_project_ids: user.enterprise_project_ids.clone(),
            issued_at,
            expires_at: issued_at + to_chrono(self.config.token_ttl),
            revoked: false,
            domain_scoped,
        };
        // The user may have been deleted since it was read (the password check takes a while): the
        // store inserts the token only if the user still exists, so no token outlives its user.
        if !self.store.insert_token(&record).await? {
            return Err(IdentityError::BadPassword);
        }
        let methods = if with_totp { vec!["password", "totp"] } else { vec!["password"] };
        Ok(IssuedToken { token, record, user, project, methods })
    }

    pub async fn revoke_token(&self, token: &str) -> Result<()> {
        if self.store.revoke_token(&secrets::hash_token(token)).await? {
            Ok(())
        } else {
            Err(IdentityError::InvalidToken)
        }
    }

    /// Whether a principal authenticated earlier still stands (for long-lived streams): its token
    /// is neither revoked nor expired, its key still enabled.
    pub async fn still_valid(&self, principal: &Principal) -> bool {
        match &principal.kind {
            PrincipalKind::Root => true,
            PrincipalKind::AccessKey { access_key } => {
                matches!(self.store.get_credential(access_key).await, Ok(Some(c)) if c.enabled)
            }
            PrincipalKind::Token { token_hash, .. } => matches!(
                self.store.get_token(token_hash).await,
                Ok(Some(t)) if !t.revoked && t.expires_at > self.now()
            ),
        }
    }

    /// The stored record of a token (revoked or expired too), if it exists.
    pub async fn token_record(&self, token: &str) -> Result<Option<TokenRecord>> {
        Ok(self.store.get_token(&secrets::hash_token(token)).await?)
    }

    /// The principal of a token: invalid (unknown, revoked) or expired tokens are refused.
    pub async fn resolve_token(&self, token: &str) -> Result<Principal> {
        let record = self.store.get_token(&secrets::hash_token(token)).await?.ok_or(IdentityError::InvalidToken)?;
        if record.revoked {
            return Err(IdentityError::InvalidToken);
        }
        if record.expires_at <= self.now() {
            return Err(IdentityError::ExpiredToken(record.expires_at));
        }
        Ok(Principal {
            kind: PrincipalKind::Token {
                user_id: record.user_id,
                token_hash: record.token_hash,
                domain_scoped: record.domain_scoped,
            },
            role: record.role,
            projects: ProjectScope::Only(vec![record.project_id]),
            enterprise_project_ids: enterprise_limit(&record.enterprise_project_ids),
        })
    }

    /// The secret and principal of an enabled access key (root included).
    pub async fn resolve_access_key(&self, access_key: &str) -> Result<Option<ResolvedKey>> {
        if let Some(root) = self.root.as_ref().filter(|root| root.access_key == access_key) {
            return Ok(Some(ResolvedKey { secret_key: root.secret_key.clone(), principal: Principal::root() }));
        }
        let Some(record) = self.store.get_credential(access_key).await?.filter(|c| c.enabled) else { return Ok(None) };
        let secret_key = self.master_key.unseal(&record.sealed_secret).map_err(|e| {
            tracing::error!(access_key, error = %e, "cannot unseal a credential's secret: is the master key right?");
            IdentityError::InvalidToken
        })?;
        Ok(Some(ResolvedKey {
            secret_key,
            principal: Principal {
                kind: PrincipalKind::AccessKey { access_key: record.access_key },
                role: record.role,
                projects: ProjectScope::Only(record.project_ids),
                enterprise_project_ids: enterprise_limit(&record.enterprise_project_ids),
            },
        }))
    }

    /// Remembers when a credential was last used (best effort).
    pub async fn touch(&self, principal: &Principal) {
        if let PrincipalKind::AccessKey { access_key } = &principal.kind {
            let now = self.now();
            {
                let mut last = self.last_touched.lock().expect("touch times");
                if last.get(access_key).is_some_and(|at| now - *at < to_chrono(TOUCH_EVERY)) {
                    return;
                }
                if last.len() >= MAX_TRACKED_KEYS {
                    last.clear();
                }
                last.insert(access_key.clone(), now);
            }
            if let Err(error) = self.store.touch_credential(access_key, self.now()).await {
                tracing::debug!(%error, "cannot record a credential's last use");
            }
        }
    }

    // ---- abuse ----

    /// Takes one request from the caller's bucket; `Err(wait)` when it is empty.
    pub fn take_rate_token(&self, caller: &str) -> Result<(), Duration> {
        self.abuse.requests.take(caller, self.now())
    }

    /// Whether an access key is locked for this client address after repeated signature
    /// failures from it. Counted for every key, known or not (root included), so a lock tells
    /// nothing about which keys exist, and locks only the address that failed.
    pub fn is_locked(&self, client: &str, access_key: &str) -> bool {
        // The usual case, nothing failed lately, asks neither the clock nor a keyed map.
        !self.abuse.signatures.is_empty() && self.abuse.signatures.is_locked(client, access_key, self.now())
    }

    /// Counts a failed signature from a client address with an access key.
    pub fn record_signature_failure(&self, client: &str, access_key: &str) {
        if self.abuse.signatures.record_failure(client, access_key, self.now()) {
            tracing::warn!(
                client,
                access_key,
                "access key locked for this client address after repeated signature failures"
            );
        }
    }

    pub fn record_signature_success(&self, client: &str, access_key: &str) {
        self.abuse.signatures.record_success(client, access_key);
    }

    /// `Err(wait)` while a client address has failed authentication too often.
    pub fn check_failed_auth(&self, client: &str) -> Result<(), Duration> {
        if self.abuse.failed_auth.is_empty() {
            return Ok(()); // no address has failed lately: nothing to look up
        }
        self.abuse.failed_auth.check(client, self.now())
    }

    /// Counts a failed authentication (`401`) from a client address.
    pub fn record_failed_auth(&self, client: &str) {
        let _ = self.abuse.failed_auth.take(client, self.now());
    }

    /// Takes one token request of a client address (when known) and checks the user name's
    /// failures: `Err(wait)` when either is used up. Called before the password is checked.
    pub fn throttle_password_attempt(&self, client: Option<&str>, domain: &str, name: &str) -> Result<(), Duration> {
        let now = self.now();
        self.abuse.password_failures.check(&format!("{domain}/{name}"), now)?;
        match client {
            Some(client) => self.abuse.password_attempts.take(client, now),
            None => Ok(()),
        }
    }

    /// Counts a failed token request against the user name.
    pub fn record_password_failure(&self, domain: &str, name: &str) {
        let _ = self.abuse.password_failures.take(&format!("{domain}/{name}"), self.now());
    }

    /// Forgets abuse counters with nothing left to remember (full buckets, failures past their
    /// window); every node runs it for its own counters. Answers how many keys were forgotten.
    pub fn prune_abuse_counters(&self) -> u64 {
        let now = self.now();
        let abuse = &self.abuse;
        let buckets = [&abuse.requests, &abuse.failed_auth, &abuse.password_attempts, &abuse.password_failures];
        let forgotten: usize = buckets.iter().map(|buckets| buckets.prune(now)).sum();
        (forgotten + abuse.signatures.prune(now)) as u64
    }

    pub async fn prune_expired_tokens(&self) -> Result<u64> {
        Ok(self.store.prune_tokens(self.now() - to_chrono(EXPIRED_TOKEN_GRACE)).await?)
    }
}
