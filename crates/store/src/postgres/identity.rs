//! The identity store on PostgreSQL: the same tables and semantics as on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jobd_auth::identity::{CredentialRecord, ProjectRecord, Role, TokenRecord, UserRecord};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::codec::{conflict, from_millis, millis};
use crate::{IdentityStore, PgStore, Result, StoreError};
fn time(ms: i64) -> Result<DateTime<Utc>> {
    from_millis(ms)
}

fn role(row: &PgRow) -> Result<Role> {
    row.try_get::<String, _>("role")?.parse().map_err(|e| StoreError::Corrupt(format!("role: {e}")))
}

fn list(row: &PgRow, column: &str) -> Result<Vec<String>> {
    serde_json::from_str(&row.try_get::<String, _>(column)?).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn to_json_list(values: &[String]) -> String {
    serde_json::to_string(values).expect("strings serialize")
}
fn project(row: &PgRow) -> Result<ProjectRecord> {
    Ok(ProjectRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: time(row.try_get("created_at")?)?,
    })
}

fn user(row: &PgRow) -> Result<UserRecord> {
    Ok(UserRecord {
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        domain: row.try_get("domain")?,
        password_hash: row.try_get("password_hash")?,
        project_id: row.try_get("project_id")?,
        role: role(row)?,
        enterprise_project_ids: list(row, "enterprise_project_ids")?,
        created_at: time(row.try_get("created_at")?)?,
        totp_secret: row.try_get("totp_secret")?,
    })
}

fn credential(row: &PgRow) -> Result<CredentialRecord> {
    Ok(CredentialRecord {
        access_key: row.try_get("access_key")?,
        sealed_secret: row.try_get("sealed_secret")?,
        owner: row.try_get("owner")?,
        project_ids: list(row, "project_ids")?,
        role: role(row)?,
        enterprise_project_ids: list(row, "enterprise_project_ids")?,
        enabled: row.try_get("enabled")?,
        created_at: time(row.try_get("created_at")?)?,
        last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(time).transpose()?,
    })
}

fn token(row: &PgRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        token_hash: row.try_get("token_hash")?,
        user_id: row.try_get("user_id")?,
        project_id: row.try_get("project_id")?,
        role: role(row)?,
        enterprise_project_ids: list(row, "enterprise_project_ids")?,
        issued_at: time(row.try_get("issued_at")?)?,
        expires_at: time(row.try_get("expires_at")?)?,
        revoked: row.try_get("revoked")?,
        domain_scoped: row.try_get("domain_scoped")?,
    })
}

#[async_trait]
impl IdentityStore for PgStore {
    async fn insert_project(&self, p: &ProjectRecord) -> Result<()> {
        sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&p.id)
            .bind(&p.name)
            .bind(millis(&p.created_at))
            .execute(self.pool()?)
            .await
            .map_err(conflict(format!("project {}", p.name)))?;
        Ok(())
    }

    async fn list_projects(&self) -> Result<Vec<ProjectRecord>> {
        let rows = sqlx::query("SELECT * FROM projects ORDER BY name").fetch_all(self.pool()?).await?;
        rows.iter().map(project).collect()
    }

    async fn get_project(&self, id: &str) -> Result<Option<ProjectRecord>> {
        let row = sqlx::query("SELECT * FROM projects WHERE id = $1").bind(id).fetch_optional(self.pool()?).await?;
        row.as_ref().map(project).transpose()
    }

    async fn find_project_by_name(&self, name: &str) -> Result<Option<ProjectRecord>> {
        let row = sqlx::query("SELECT * FROM projects WHERE name = $1").bind(name).fetch_optional(self.pool()?).await?;
        row.as_ref().map(project).transpose()
    }

    async fn insert_user(&self, u: &UserRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (user_id, name, domain, password_hash, project_id, role, enterprise_project_ids, \
             created_at, totp_secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&u.user_id)
        .bind(&u.name)
        .bind(&u.domain)
        .bind(&u.password_hash)
        .bind(&u.project_id)
        .bind(u.role.as_str())
        .bind(to_json_list(&u.enterprise_project_ids))
        .bind(millis(&u.created_at))
        .bind(&u.totp_secret)
        .execute(self.pool()?)
        .await
        .map_err(conflict(format!("user {} in domain {}", u.name, u.domain)))?;
        Ok(())
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY domain, name").fetch_all(self.pool()?).await?;
        rows.iter().map(user).collect()
    }

    async fn find_user(&self, domain: &str, name: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE domain = $1 AND name = $2")
            .bind(domain)
            .bind(name)
            .fetch_optional(self.pool()?)
            .await?;
        row.as_ref().map(user).transpose()
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool> {
        let mut tx = self.pool()?.begin().await?;
        let gone = sqlx::query("DELETE FROM users WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE tokens SET revoked = TRUE WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(gone.rows_affected() == 1)
    }

    async fn bind_mfa_device(&self, user_id: &str, sealed_secret: &[u8]) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET totp_secret = $1, totp_last_step = NULL WHERE user_id = $2")
            .bind(sealed_secret)
            .bind(user_id)
            .execute(self.pool()?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_mfa_step(&self, user_id: &str, step: i64) -> Result<bool> {
        // One statement: the row lock orders racing uses, and the second sees the first's step.
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE user_id = $2 AND totp_secret IS NOT NULL \
             AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(self.pool()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_credential(&self, c: &CredentialRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO credentials (access_key, sealed_secret, owner, project_ids, role, enterprise_project_ids, \
             enabled, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&c.access_key)
        .bind(&c.sealed_secret)
        .bind(&c.owner)
        .bind(to_json_list(&c.project_ids))
        .bind(c.role.as_str())
        .bind(to_json_list(&c.enterprise_project_ids))
        .bind(c.enabled)
        .bind(millis(&c.created_at))
        .bind(c.last_used_at.as_ref().map(millis))
        .execute(self.pool()?)
        .await
        .map_err(conflict(format!("access key {}", c.access_key)))?;
        Ok(())
    }

    async fn get_credential(&self, access_key: &str) -> Result<Option<CredentialRecord>> {
        let row = sqlx::query("SELECT * FROM credentials WHERE access_key = $1")
            .bind(access_key)
            .fetch_optional(self.pool()?)
            .await?;
        row.as_ref().map(credential).transpose()
    }

    async fn list_credentials(&self) -> Result<Vec<CredentialRecord>> {
        let rows =
            sqlx::query("SELECT * FROM credentials ORDER BY created_at, access_key").fetch_all(self.pool()?).await?;
        rows.iter().map(credential).collect()
    }

    async fn set_credential_enabled(&self, access_key: &str, enabled: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE credentials SET enabled = $1 WHERE access_key = $2")
            .bind(enabled)
            .bind(access_key)
            .execute(self.pool()?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_credential(&self, access_key: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM credentials WHERE access_key = $1").bind(access_key).execute(self.pool()?).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_credential(&self, access_key: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE credentials SET last_used_at = $1 WHERE access_key = $2")
            .bind(millis(&now))
            .bind(access_key)
            .execute(self.pool()?)
            .await?;
        Ok(())
    }

    async fn insert_token(&self, t: &TokenRecord) -> Result<bool> {
        // `FOR SHARE` locks the user row until the insert commits: a concurrent `DELETE` of the user
        // waits for it (and its `UPDATE tokens` then sees and revokes the token), and an insert
        // that waited for a committed `DELETE` finds no row and inserts nothing.
        let done = sqlx::query(
            "INSERT INTO tokens (token_hash, user_id, project_id, role, enterprise_project_ids, issued_at, \
             expires_at, revoked, domain_scoped) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
             WHERE EXISTS (SELECT 1 FROM users WHERE user_id = $2 FOR SHARE)",
        )
        .bind(&t.token_hash)
        .bind(&t.user_id)
        .bind(&t.project_id)
        .bind(t.role.as_str())
        .bind(to_json_list(&t.enterprise_project_ids))
        .bind(millis(&t.issued_at))
        .bind(millis(&t.expires_at))
        .bind(t.revoked)
        .bind(t.domain_scoped)
        .execute(self.pool()?)
        .await
        .map_err(conflict("token".to_owned()))?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(self.pool()?)
            .await?;
        row.as_ref().map(token).transpose()
    }

    async fn revoke_token(&self, token_hash: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE tokens SET revoked = TRUE WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.pool()?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_tokens(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM tokens WHERE expires_at < $1").bind(millis(&cutoff)).execute(self.pool()?).await?;
        Ok(done.rows_affected())
    }
}
