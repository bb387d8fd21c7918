//! The errors of this crate. The API maps them to responses (suggested status in each variant's
//! doc); messages never contain secrets, token contents or SQL.

use crate::rbac::Permission;
use eventdesk_domain::{TenantId, UserId};
use uuid::Uuid;

/// `Result` with [`AuthError`] as the default error.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// Everything that can go wrong while authenticating or authorising.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password, or an unknown, malformed or revoked API key. One variant for
    /// all of them so a response cannot tell which. → 401.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// An access or refresh token that is malformed, badly signed, of another algorithm, expired,
    /// not yet valid, or for another issuer/audience. No detail on purpose. → 401.
    #[error("invalid token")]
    InvalidToken,
    /// Authenticated, but the principal lacks this permission. → 403 (log it as a security event).
    #[error("forbidden: missing permission {0}")]
    Forbidden(Permission),
    /// An HS256 secret shorter than [`crate::jwt::MIN_HS256_SECRET_BYTES`]. Start-up error.
    #[error("HS256 secret must be at least {min} bytes, got {actual}")]
    SecretTooShort {
        /// Required minimum length in bytes.
        min: usize,
        /// Length of the secret given.
        actual: usize,
    },
    /// Any other misconfiguration (unreadable or mismatched key files, …). Start-up error.
    #[error("auth configuration: {0}")]
    Config(String),
    /// Hashing or signing failed unexpectedly. → 500.
    #[error("cryptographic operation failed: {0}")]
    Crypto(String),
    /// The database failed. → 500 (or 503).
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// Why a refresh token could not be rotated.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, malformed, expired or revoked. → 401.
    #[error("invalid refresh token")]
    Invalid,
    /// The token had already been used: it was stolen or replayed. The whole family has been
    /// revoked (committed) before this error is returned. → 401; log it as a security event.
    #[error("refresh token reused; family {family_id} revoked")]
    Reused {
        /// The revoked family.
        family_id: Uuid,
        /// Its tenant.
        tenant_id: TenantId,
        /// Its user.
        user_id: UserId,
    },
    /// The database failed. → 500.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl From<RefreshError> for AuthError {
    /// `Invalid` and `Reused` both become [`AuthError::InvalidToken`] (log the reuse first).
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::Invalid | RefreshError::Reused { .. } => Self::InvalidToken,
            RefreshError::Database(e) => Self::Database(e),
        }
    }
}
