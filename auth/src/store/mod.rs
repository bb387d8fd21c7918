//! The SQL of this crate: API keys ([`api_keys`]) and refresh tokens ([`refresh`]), over the
//! tables of `migrations/0005_auth.sql`.
//!
//! Functions take `&mut PgConnection`, so they run on a pooled connection
//! (`&mut *pool.acquire().await?`) or inside the caller's transaction (`&mut *tx`). Queries
//! are runtime-checked (`sqlx::query(..).bind(..)`), parameterised, and each lives in exactly one
//! function.
//!
//! These tables have **no row-level security**: an API key is found by its prefix and a refresh
//! token by its hash *before* the tenant is known (the credential is what names the tenant).
//! Every tenant-scoped operation (list, revoke) filters on `tenant_id` explicitly.

pub mod api_keys;
pub mod refresh;

pub use api_keys::{
    ApiKeyRecord, ApiKeySummary, authenticate_api_key, find_api_key_by_prefix, insert_api_key,
    list_api_keys, revoke_api_key, touch_last_used,
};
pub use refresh::{
    RotateOutcome, issue_refresh, revoke_by_token, revoke_family, revoke_user_refresh_tokens,
    rotate_refresh,
};
