//! The `api_keys` table.

use crate::apikey::{self, GeneratedKey, KeyMode};
use crate::error::{AuthError, Result};
use crate::rbac::PermissionSet;
use chrono::{DateTime, Utc};
use eventdesk_domain::{ApiKeyId, TenantId, UserId};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// An API key as listed: everything but the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeySummary {
    /// Key id.
    pub id: ApiKeyId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Display name.
    pub name: String,
    /// Lookup prefix, e.g. `qg_live_Ab3x-9Qz` (safe to show).
    pub prefix: String,
    /// Live or test.
    pub mode: KeyMode,
    /// What the key may do.
    pub permissions: PermissionSet,
    /// The user who created it, if any.
    pub created_by: Option<UserId>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An API key with its hash, for authentication. Never serialise it to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The listed fields.
    pub summary: ApiKeySummary,
    /// HMAC-SHA256(pepper, key).
    pub hash: Vec<u8>,
}

/// The columns of [`ApiKeySummary`], in the order [`summary_from_row`] reads them.
macro_rules! summary_columns {
    () => {
        "id, tenant_id, name, prefix, mode, permissions, created_by, created_at, last_used_at, \
         revoked_at"
    };
}

fn summary_from_row(row: &PgRow) -> Result<ApiKeySummary, sqlx::Error> {
    let mode: String = row.try_get("mode")?;
    let permissions: Vec<String> = row.try_get("permissions")?;
    Ok(ApiKeySummary {
        id: ApiKeyId(row.try_get("id")?),
        tenant_id: TenantId(row.try_get("tenant_id")?),
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        mode: mode.parse().map_err(|e| sqlx::Error::ColumnDecode {
            index: "mode".to_owned(),
            source: Box::new(e),
        })?,
        permissions: PermissionSet::from_stored(permissions),
        created_by: row.try_get::<Option<Uuid>, _>("created_by")?.map(UserId),
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Stores a freshly [generated](crate::apikey::generate) key of `tenant`. `name` must be
/// 1..=200 characters (checked by the table). Returns what the API shows (plus the plaintext,
/// which the caller has and shows once).
///
/// A prefix collision (48 random bits: astronomically unlikely) fails with a unique violation
/// (SQLSTATE 23505); generating a new key and retrying is the remedy.
pub async fn insert_api_key(
    conn: &mut PgConnection,
    tenant: TenantId,
    name: &str,
    key: &GeneratedKey,
    permissions: &PermissionSet,
    created_by: Option<UserId>,
) -> Result<ApiKeySummary> {
    let row = sqlx::query(concat!(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, hash, mode, permissions, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
        summary_columns!()
    ))
    .bind(ApiKeyId::new().0)
    .bind(tenant.0)
    .bind(name)
    .bind(&key.prefix)
    .bind(&key.hash[..])
    .bind(key.mode.as_str())
    .bind(permissions.to_strings())
    .bind(created_by.map(|u| u.0))
    .fetch_one(conn)
    .await?;
    Ok(summary_from_row(&row)?)
}

/// The key with this prefix, in any tenant (the caller does not know the tenant yet), revoked
/// or not. Prefer [`authenticate_api_key`], which also checks the hash and revocation.
pub async fn find_api_key_by_prefix(
    conn: &mut PgConnection,
    prefix: &str,
) -> Result<Option<ApiKeyRecord>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        summary_columns!(),
        ", hash FROM api_keys WHERE prefix = $1"
    ))
    .bind(prefix)
    .fetch_optional(conn)
    .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(ApiKeyRecord {
            summary: summary_from_row(&row)?,
            hash: row.try_get("hash")?,
        })),
    }
}

/// Authenticates a presented key: shape ([`apikey::parse`]), lookup by prefix, constant-time
/// hash comparison with `pepper`, not revoked. On success records the use
/// ([`touch_last_used`]; a failure there is only logged) and returns the key (its tenant, mode and permissions). Every failure
/// is [`AuthError::InvalidCredentials`].
pub async fn authenticate_api_key(
    conn: &mut PgConnection,
    presented: &str,
    pepper: &[u8],
) -> Result<ApiKeyRecord> {
    let Some((mode, prefix)) = apikey::parse(presented) else {
        return Err(AuthError::InvalidCredentials);
    };
    let Some(record) = find_api_key_by_prefix(&mut *conn, &prefix).await? else {
        return Err(AuthError::InvalidCredentials);
    };
    let valid = apikey::verify(presented, &record.hash, pepper)
        && record.summary.mode == mode
        && record.summary.revoked_at.is_none();
    if !valid {
        return Err(AuthError::InvalidCredentials);
    }
    // Bookkeeping only: a failure here must not refuse a valid key.
    if let Err(e) = touch_last_used(conn, record.summary.id).await {
        tracing::warn!(error = %e, api_key_id = %record.summary.id, "could not record API key use");
    }
    Ok(record)
}

/// The keys of `tenant`, newest first, revoked ones included (with `revoked_at`).
pub async fn list_api_keys(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<ApiKeySummary>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        summary_columns!(),
        " FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(tenant.0)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(summary_from_row)
        .collect::<Result<_, _>>()?)
}

/// Revokes key `id` of `tenant`. False if there is no such key in that tenant (another
/// tenant's key is "not found") or it was already revoked.
pub async fn revoke_api_key(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ApiKeyId,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(tenant.0)
    .bind(id.0)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a use of key `id`. Writes at most once a minute per key, so a busy key does not turn
/// every request into a row update.
pub async fn touch_last_used(conn: &mut PgConnection, id: ApiKeyId) -> Result<()> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now() \
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(id.0)
    .execute(conn)
    .await?;
    Ok(())
}
