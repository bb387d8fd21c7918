//! Who is calling: a JWT (`Authorization: Bearer <jwt>`) or an API key
//! (`Authorization: Bearer qg_…` or `X-API-Key: qg_…`), resolved to a [`Principal`].
//! The algorithm of a JWT comes from the configuration, never from the token.

use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use eventdesk_auth::apikey::KeyMode;
use eventdesk_auth::{Permission, PermissionSet};
use eventdesk_domain::values::Role;
use eventdesk_domain::{Actor, ApiKeyId, TenantId, UserId};

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// A signed-in user (JWT).
    Jwt,
    /// A live API key.
    LiveKey,
    /// A test API key: its actions never reach external systems.
    TestKey,
}

impl AuthKind {
    /// Label used in logs and rate-limit keys.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Jwt => "jwt",
            AuthKind::LiveKey => "live_key",
            AuthKind::TestKey => "test_key",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The caller's tenant (the platform key's tenant is the nil UUID).
    pub tenant: TenantId,
    /// The user, for JWT callers.
    pub user_id: Option<UserId>,
    /// The API key, for key callers.
    pub api_key_id: Option<ApiKeyId>,
    /// For key callers: the user who created the key (the reporter of incidents it logs).
    pub on_behalf_of: Option<UserId>,
    /// The role, for JWT callers.
    pub role: Option<Role>,
    /// What the caller may do.
    pub permissions: PermissionSet,
    /// How the caller authenticated.
    pub kind: AuthKind,
}

impl Principal {
    /// The actor recorded on events.
    pub fn actor(&self) -> Actor {
        match (self.user_id, self.api_key_id) {
            (Some(u), _) => Actor::User(u),
            (None, Some(k)) => Actor::ApiKey(k),
            (None, None) => Actor::System,
        }
    }

    /// `user:<id>` / `api_key:<id>` for event metadata.
    pub fn actor_label(&self) -> String {
        self.actor().to_string()
    }

    /// Fails with 403 unless the caller holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.permissions.contains(p) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// True for a requester (role `user`): they only see incidents they reported.
    pub fn is_requester(&self) -> bool {
        self.role == Some(Role::User)
    }

    /// True if the caller works the desk (any role but requester, or an API key).
    pub fn is_agent(&self) -> bool {
        !self.is_requester()
    }
}

/// The bearer credential of a request, if any.
fn credential(parts: &Parts) -> Option<&str> {
    if let Some(k) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim());
    }
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Authenticates a credential.
pub async fn authenticate(state: &AppState, presented: &str) -> Result<Principal, ApiError> {
    if presented.starts_with("qg_") {
        let mut conn = state.system.acquire().await?;
        let rec = eventdesk_auth::store::authenticate_api_key(
            &mut conn,
            presented,
            state.pepper.expose().as_bytes(),
        )
        .await
        .map_err(|e| match e {
            eventdesk_auth::AuthError::Database(db) => ApiError::from(db),
            _ => ApiError::Unauthorized,
        })?;
        let s = rec.summary;
        return Ok(Principal {
            tenant: s.tenant_id,
            user_id: None,
            api_key_id: Some(s.id),
            on_behalf_of: s.created_by,
            role: None,
            permissions: s.permissions,
            kind: match s.mode {
                KeyMode::Live => AuthKind::LiveKey,
                KeyMode::Test => AuthKind::TestKey,
            },
        });
    }
    let claims =
        eventdesk_auth::jwt::verify(&state.jwt, presented).map_err(|_| ApiError::Unauthorized)?;
    let role = claims.builtin_role().ok_or(ApiError::Unauthorized)?;
    Ok(Principal {
        tenant: claims.tenant_id(),
        user_id: Some(claims.user_id()),
        api_key_id: None,
        on_behalf_of: None,
        role: Some(role),
        permissions: PermissionSet::from_role(role),
        kind: AuthKind::Jwt,
    })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let presented = credential(parts).ok_or(ApiError::Unauthorized)?;
        let p = authenticate(state, presented).await?;
        parts.extensions.insert(p.clone());
        Ok(p)
    }
}

impl OptionalFromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        match credential(parts) {
            None => Ok(None),
            Some(_) => <Principal as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .map(Some),
        }
    }
}
