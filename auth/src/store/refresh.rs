//! The `refresh_tokens` table: opaque refresh tokens with rotation and reuse detection.
//!
//! A token is 32 random bytes, base64url without padding; only its SHA-256 is stored (a fast
//! hash is enough for 256 random bits). Tokens come in **families**: login starts one, and each
//! [`rotate_refresh`] marks the presented token used and issues its successor in the same
//! family. Presenting a token that was *already used* means two parties hold it (theft, or a
//! replay): the whole family is revoked, so the thief's and the victim's tokens both stop
//! working and the user must log in again (OAuth 2.0 Security BCP, refresh token rotation).
//!
//! Two concurrent rotations of the same token are serialised by `SELECT … FOR UPDATE`; the
//! second one counts as a reuse.

use crate::error::{AuthError, RefreshError, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use eventdesk_domain::{TenantId, UserId};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, Row};
use std::fmt;
use uuid::Uuid;

/// Random bytes per refresh token.
pub const TOKEN_BYTES: usize = 32;
/// Length of a token (base64url, no padding).
pub const TOKEN_CHARS: usize = 43;
/// Longest accepted refresh-token lifetime.
pub const MAX_TTL: TimeDelta = TimeDelta::days(366);

fn valid_ttl(ttl: TimeDelta) -> bool {
    ttl > TimeDelta::zero() && ttl <= MAX_TTL
}

/// A successful rotation.
#[derive(Clone, PartialEq, Eq)]
pub struct RotateOutcome {
    /// The tenant of the token.
    pub tenant_id: TenantId,
    /// The user of the token (look them up, check they are still active, issue a JWT).
    pub user_id: UserId,
    /// The family (unchanged).
    pub family_id: Uuid,
    /// The successor token, to hand to the client. Never log it.
    pub new_token: String,
}

impl fmt::Debug for RotateOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotateOutcome")
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .field("family_id", &self.family_id)
            .field("new_token", &"<redacted>")
            .finish()
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Inserts a new token of `family` and returns its plaintext.
async fn insert_token(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    family: Uuid,
    ttl: TimeDelta,
    now: DateTime<Utc>,
) -> Result<String, sqlx::Error> {
    let mut random = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut random);
    let token = URL_SAFE_NO_PAD.encode(random);
    sqlx::query(
        "INSERT INTO refresh_tokens \
             (id, tenant_id, user_id, family_id, token_hash, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.0)
    .bind(user.0)
    .bind(family)
    .bind(token_hash(&token))
    .bind(now)
    .bind(now + ttl)
    .execute(conn)
    .await?;
    Ok(token)
}

/// Issues a refresh token for `user` of `tenant`, valid for `ttl` from `now`, in `family`
/// (`None` starts a new family: a login). Returns the plaintext for the client.
pub async fn issue_refresh(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    family: Option<Uuid>,
    ttl: TimeDelta,
    now: DateTime<Utc>,
) -> Result<String> {
    if !valid_ttl(ttl) {
        return Err(AuthError::Config(format!(
            "refresh token lifetime must be positive and at most {} days",
            MAX_TTL.num_days()
        )));
    }
    let family = family.unwrap_or_else(Uuid::now_v7);
    Ok(insert_token(conn, tenant, user, family, ttl, now).await?)
}

/// Rotates `presented`: in one transaction, locks its row; unknown, revoked or expired →
/// [`RefreshError::Invalid`]; already used → revokes the whole family (committed) and returns
/// [`RefreshError::Reused`]; otherwise marks it used and issues its successor (valid `ttl` from
/// `now`) in the same family. (A `ttl` outside `(0, MAX_TTL]` is refused as `Invalid`.)
pub async fn rotate_refresh(
    conn: &mut PgConnection,
    presented: &str,
    ttl: TimeDelta,
    now: DateTime<Utc>,
) -> Result<RotateOutcome, RefreshError> {
    if !valid_ttl(ttl) {
        tracing::error!("refresh token lifetime out of range; rotation refused");
        return Err(RefreshError::Invalid);
    }
    if !well_formed(presented) {
        return Err(RefreshError::Invalid);
    }
    let mut tx = conn.begin().await?;
    let row = sqlx::query(
        "SELECT id, tenant_id, user_id, family_id, expires_at, used_at, revoked_at \
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token_hash(presented))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(RefreshError::Invalid);
    };
    let id: Uuid = row.try_get("id")?;
    let tenant_id = TenantId(row.try_get("tenant_id")?);
    let user_id = UserId(row.try_get("user_id")?);
    let family_id: Uuid = row.try_get("family_id")?;
    let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
    let used_at: Option<DateTime<Utc>> = row.try_get("used_at")?;
    let revoked_at: Option<DateTime<Utc>> = row.try_get("revoked_at")?;

    if revoked_at.is_some() {
        return Err(RefreshError::Invalid);
    }
    if used_at.is_some() {
        revoke_family_sql(&mut tx, family_id, now).await?;
        tx.commit().await?;
        tracing::warn!(
            %tenant_id, %user_id, %family_id,
            "refresh token reused: token family revoked"
        );
        return Err(RefreshError::Reused {
            family_id,
            tenant_id,
            user_id,
        });
    }
    if expires_at <= now {
        return Err(RefreshError::Invalid);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let new_token = insert_token(&mut tx, tenant_id, user_id, family_id, ttl, now).await?;
    tx.commit().await?;
    Ok(RotateOutcome {
        tenant_id,
        user_id,
        family_id,
        new_token,
    })
}

/// Revokes every not-yet-revoked token of `family` (e.g. after a reuse reported elsewhere).
/// Returns how many were revoked.
pub async fn revoke_family(
    conn: &mut PgConnection,
    family: Uuid,
    now: DateTime<Utc>,
) -> Result<u64> {
    Ok(revoke_family_sql(conn, family, now).await?)
}

async fn revoke_family_sql(
    conn: &mut PgConnection,
    family: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Logout: revokes the family of `presented`. False if the token is unknown or its family was
/// already revoked.
pub async fn revoke_by_token(
    conn: &mut PgConnection,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    if !well_formed(presented) {
        return Ok(false);
    }
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 \
         WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) \
           AND revoked_at IS NULL",
    )
    .bind(token_hash(presented))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Revokes every refresh token of `user` in `tenant` (password change, deactivation, "log out
/// everywhere"). Returns how many were revoked.
pub async fn revoke_user_refresh_tokens(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $3 \
         WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(tenant.0)
    .bind(user.0)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_check() {
        let t = URL_SAFE_NO_PAD.encode([7u8; TOKEN_BYTES]);
        assert!(well_formed(&t));
        assert!(!well_formed(""));
        assert!(!well_formed(&t[1..]));
        assert!(!well_formed(&format!("{t}=")));
        assert!(!well_formed(&format!("{}+", &t[1..])));
        assert_eq!(token_hash(&t).len(), 32);
        assert_ne!(token_hash(&t), token_hash(&t[1..]));
    }
}
