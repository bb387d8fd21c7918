//! # eventdesk-auth
//!
//! **Owns:** credentials and the permission model —
//! - [`password`]: Argon2id password hashing (OWASP parameters, PHC strings) and a constant-cost
//!   dummy verification for unknown usernames;
//! - [`jwt`]: access-token issue and verification (HS256 or RS256, the algorithm fixed by the
//!   configuration, never by the token);
//! - [`apikey`]: API keys (`qg_live_…` / `qg_test_…`): generation, parsing, peppered HMAC
//!   hashing and constant-time verification;
//! - [`rbac`]: `resource:action` permissions, the built-in role matrix and permission sets
//!   (a tenant's custom role is just a named [`rbac::PermissionSet`]);
//! - [`store`]: the SQL for the `api_keys` and `refresh_tokens` tables, including refresh-token
//!   rotation with reuse detection (`migrations/0005_auth.sql`).
//!
//! **Must not:** know HTTP or axum (no status codes, headers or extractors: the API maps
//! [`AuthError`] to responses), nor business rules (whether a requester may see *this* incident
//! is the API's and the domain's decision; this crate only answers "does this principal hold
//! `incident:read`?"). It holds no users: the caller looks the user up and hands over the stored
//! password hash and role.

pub mod apikey;
pub mod error;
pub mod jwt;
pub mod password;
pub mod rbac;
pub mod store;

pub use error::{AuthError, RefreshError, Result};
pub use jwt::{Claims, JwtAlgorithm, JwtConfig};
pub use rbac::{Action, Permission, PermissionSet, Resource};
