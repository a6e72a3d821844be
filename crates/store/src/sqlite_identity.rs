//! The identity store on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jobd_auth::identity::{CredentialRecord, ProjectRecord, Role, TokenRecord, UserRecord};
use rusqlite::Row;

use crate::codec::{conflict, from_millis, millis};
use crate::{IdentityStore, Result, SqliteStore, StoreError};

// Identity rows are read on the store's readers (rusqlite), by column position: each
// column list and its decoder below go together.

fn time(ms: i64) -> Result<DateTime<Utc>> {
    from_millis(ms)
}

fn role(row: &Row<'_>, index: usize) -> Result<Role> {
    row.get::<_, String>(index)?.parse().map_err(|e| StoreError::Corrupt(format!("role: {e}")))
}

fn list(row: &Row<'_>, index: usize, column: &str) -> Result<Vec<String>> {
    let text = row.get_ref(index)?.as_str().map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))?;
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

macro_rules! project_columns {
    () => {
        "id, name, created_at"
    };
}

fn project(row: &Row<'_>) -> Result<ProjectRecord> {
    Ok(ProjectRecord { id: row.get(0)?, name: row.get(1)?, created_at: time(row.get(2)?)? })
}

macro_rules! user_columns {
    () => {
        "user_id, name, domain, password_hash, project_id, role, enterprise_project_ids, created_at, totp_secret"
    };
}

fn user(row: &Row<'_>) -> Result<UserRecord> {
    Ok(UserRecord {
        user_id: row.get(0)?,
        name: row.get(1)?,
        domain: row.get(2)?,
        password_hash: row.get(3)?,
        project_id: row.get(4)?,
        role: role(row, 5)?,
        enterprise_project_ids: list(row, 6, "enterprise_project_ids")?,
        created_at: time(row.get(7)?)?,
        totp_secret: row.get(8)?,
    })
}

macro_rules! credential_columns {
    () => {
        "access_key, sealed_secret, owner, project_ids, role, enterprise_project_ids, enabled, created_at, last_used_at"
    };
}

fn credential(row: &Row<'_>) -> Result<CredentialRecord> {
    Ok(CredentialRecord {
        access_key: row.get(0)?,
        sealed_secret: row.get(1)?,
        owner: row.get(2)?,
        project_ids: list(row, 3, "project_ids")?,
        role: role(row, 4)?,
        enterprise_project_ids: list(row, 5, "enterprise_project_ids")?,
        enabled: row.get(6)?,
        created_at: time(row.get(7)?)?,
        last_used_at: row.get::<_, Option<i64>>(8)?.map(time).transpose()?,
    })
}

macro_rules! token_columns {
    () => {
        "token_hash, user_id, project_id, role, enterprise_project_ids, issued_at, expires_at, revoked, domain_scoped"
    };
}

fn token(row: &Row<'_>) -> Result<TokenRecord> {
    Ok(TokenRecord {
        token_hash: row.get(0)?,
        user_id: row.get(1)?,
        project_id: row.get(2)?,
        role: role(row, 3)?,
        enterprise_project_ids: list(row, 4, "enterprise_project_ids")?,
        issued_at: time(row.get(5)?)?,
        expires_at: time(row.get(6)?)?,
        revoked: row.get(7)?,
        domain_scoped: row.get(8)?,
    })
}

impl SqliteStore {
    /// At most one row of `sql` with `params`, decoded.
    fn read_one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        decode: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        self.readers.read(|conn| {
            let mut statement = conn.prepare_cached(sql)?;
            let mut rows = statement.query(params)?;
            rows.next()?.map(decode).transpose()
        })
    }

    /// Every row of `sql`, decoded.
    fn read_all<T>(&self, sql: &str, decode: impl Fn(&Row<'_>) -> Result<T>) -> Result<Vec<T>> {
        self.readers.read(|conn| {
            let mut statement = conn.prepare_cached(sql)?;
            let mut rows = statement.query([])?;
            let mut all = Vec::new();
            while let Some(row) = rows.next()? {
                all.push(decode(row)?);
            }
            Ok(all)
        })
    }
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn insert_project(&self, p: &ProjectRecord) -> Result<()> {
        sqlx::query("INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)")
            .bind(&p.id)
            .bind(&p.name)
            .bind(millis(&p.created_at))
            .execute(&self.writer)
            .await
            .map_err(conflict(format!("project {}", p.name)))?;
        Ok(())
    }

    async fn list_projects(&self) -> Result<Vec<ProjectRecord>> {
        self.read_all(concat!("SELECT ", project_columns!(), " FROM projects ORDER BY name"), project)
    }

    async fn get_project(&self, id: &str) -> Result<Option<ProjectRecord>> {
        self.read_one(concat!("SELECT ", project_columns!(), " FROM projects WHERE id = ?"), [id], project)
    }

    async fn find_project_by_name(&self, name: &str) -> Result<Option<ProjectRecord>> {
        self.read_one(concat!("SELECT ", project_columns!(), " FROM projects WHERE name = ?"), [name], project)
    }

    async fn insert_user(&self, u: &UserRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (user_id, name, domain, password_hash, project_id, role, enterprise_project_ids, \
             created_at, totp_secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.user_id)
        .bind(&u.name)
        .bind(&u.domain)
        .bind(&u.password_hash)
        .bind(&u.project_id)
        .bind(u.role.as_str())
        .bind(serde_json::to_string(&u.enterprise_project_ids).expect("strings serialize"))
        .bind(millis(&u.created_at))
        .bind(&u.totp_secret)
        .execute(&self.writer)
        .await
        .map_err(conflict(format!("user {} in domain {}", u.name, u.domain)))?;
        Ok(())
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        self.read_all(concat!("SELECT ", user_columns!(), " FROM users ORDER BY domain, name"), user)
    }

    async fn find_user(&self, domain: &str, name: &str) -> Result<Option<UserRecord>> {
        self.read_one(
            concat!("SELECT ", user_columns!(), " FROM users WHERE domain = ? AND name = ?"),
            [domain, name],
            user,
        )
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let gone = sqlx::query("DELETE FROM users WHERE user_id = ?").bind(user_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE tokens SET revoked = 1 WHERE user_id = ?").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(gone.rows_affected() == 1)
    }

    async fn bind_mfa_device(&self, user_id: &str, sealed_secret: &[u8]) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET totp_secret = ?, totp_last_step = NULL WHERE user_id = ?")
            .bind(sealed_secret)
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_mfa_step(&self, user_id: &str, step: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = ? WHERE user_id = ? AND totp_secret IS NOT NULL \
             AND (totp_last_step IS NULL OR totp_last_step < ?)",
        )
        .bind(step)
        .bind(user_id)
        .bind(step)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_credential(&self, c: &CredentialRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO credentials (access_key, sealed_secret, owner, project_ids, role, enterprise_project_ids, \
             enabled, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.access_key)
        .bind(&c.sealed_secret)
        .bind(&c.owner)
        .bind(serde_json::to_string(&c.project_ids).expect("strings serialize"))
        .bind(c.role.as_str())
        .bind(serde_json::to_string(&c.enterprise_project_ids).expect("strings serialize"))
        .bind(c.enabled)
        .bind(millis(&c.created_at))
        .bind(c.last_used_at.as_ref().map(millis))
        .execute(&self.writer)
        .await
        .map_err(conflict(format!("access key {}", c.access_key)))?;
        Ok(())
    }

    async fn get_credential(&self, access_key: &str) -> Result<Option<CredentialRecord>> {
        self.read_one(
            concat!("SELECT ", credential_columns!(), " FROM credentials WHERE access_key = ?"),
            [access_key],
            credential,
        )
    }

    async fn list_credentials(&self) -> Result<Vec<CredentialRecord>> {
        self.read_all(
            concat!("SELECT ", credential_columns!(), " FROM credentials ORDER BY created_at, access_key"),
            credential,
        )
    }

    async fn set_credential_enabled(&self, access_key: &str, enabled: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE credentials SET enabled = ? WHERE access_key = ?")
            .bind(enabled)
            .bind(access_key)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_credential(&self, access_key: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM credentials WHERE access_key = ?").bind(access_key).execute(&self.writer).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_credential(&self, access_key: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE credentials SET last_used_at = ? WHERE access_key = ?")
            .bind(millis(&now))
            .bind(access_key)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn insert_token(&self, t: &TokenRecord) -> Result<bool> {
        // One statement on the one writer connection: it and `delete_user`'s transaction run one
        // after the other, never interleaved.
        let done = sqlx::query(
            "INSERT INTO tokens (token_hash, user_id, project_id, role, enterprise_project_ids, issued_at, \
             expires_at, revoked, domain_scoped) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? \
             WHERE EXISTS (SELECT 1 FROM users WHERE user_id = ?)",
        )
        .bind(&t.token_hash)
        .bind(&t.user_id)
        .bind(&t.project_id)
        .bind(t.role.as_str())
        .bind(serde_json::to_string(&t.enterprise_project_ids).expect("strings serialize"))
        .bind(millis(&t.issued_at))
        .bind(millis(&t.expires_at))
        .bind(t.revoked)
        .bind(t.domain_scoped)
        .bind(&t.user_id)
        .execute(&self.writer)
        .await
        .map_err(conflict("token".to_owned()))?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        self.read_one(concat!("SELECT ", token_columns!(), " FROM tokens WHERE token_hash = ?"), [token_hash], token)
    }

    async fn revoke_token(&self, token_hash: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE tokens SET revoked = 1 WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_tokens(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM tokens WHERE expires_at < ?").bind(millis(&cutoff)).execute(&self.writer).await?;
        Ok(done.rows_affected())
    }
}
