//! Who is calling: a JWT (`Authorization: Bearer <jwt>`) or an API key
//! (`Authorization: Bearer qg_…` or `X-API-Key: qg_…`), resolved to a [`Principal`].
//! The algorithm of a JWT comes from the configuration, never from the token.
//!
//! A JWT of a tenant's custom role's holder (`role: "custom:<id>"`, ADR 0011) gets the role's
//! permission set as it is *now*: read from `rm_users` and `rm_roles` and kept for at most
//! [`ROLE_CACHE_TTL`] per node ([`RoleCache`]; a write through this node drops its entries at
//! once). A deleted (deactivated) or missing role grants nothing, and neither does a token
//! naming a role the user no longer holds, or a deactivated user's.

use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use eventdesk_auth::apikey::KeyMode;
use eventdesk_auth::rbac::{Action, PLATFORM, Resource};
use eventdesk_auth::{Permission, PermissionSet};
use eventdesk_domain::values::Role;
use eventdesk_domain::{Actor, ApiKeyId, RoleId, TenantId, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// The built-in role, for JWT callers (the base role of a custom role's holder).
    pub role: Option<Role>,
    /// The tenant's custom role whose permissions a JWT caller holds (then `permissions` are
    /// that role's, and `role` only decides incident scoping).
    pub custom_role: Option<RoleId>,
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

    /// True for a requester (role `user`, or a custom role on base role `user`): they only
    /// see incidents they reported.
    pub fn is_requester(&self) -> bool {
        self.role == Some(Role::User)
    }

    /// True if the caller works the desk (any role but requester, or an API key), and so sees
    /// internal work notes. A custom role's holder is an agent only if the role also holds
    /// `work_note:read`.
    pub fn is_agent(&self) -> bool {
        !self.is_requester()
            && (self.custom_role.is_none()
                || self
                    .permissions
                    .contains(Permission::new(Resource::WorkNote, Action::Read)))
    }
}

/// The bearer credential of a request, if any. Browsers cannot set headers on a WebSocket
/// handshake, so `GET /api/v1/ws` also takes it from `?access_token=` (ADR 0019).
pub fn credential(parts: &Parts) -> Option<std::borrow::Cow<'_, str>> {
    if let Some(k) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim().into());
    }
    if let Some(v) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().into());
    }
    if parts.uri.path() == WS_PATH {
        let query = parts.uri.query()?;
        return form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.trim().to_owned().into());
    }
    None
}

/// The live-events endpoint, whose credential may travel in the query.
pub const WS_PATH: &str = "/api/v1/ws";

/// Authenticates a credential.
pub async fn authenticate(state: &AppState, presented: &str) -> Result<Principal, ApiError> {
    if presented.starts_with("qg_") {
        let fingerprint = ApiKeyCache::fingerprint(presented);
        if let Some(p) = state.api_keys.get(&fingerprint) {
            return Ok(p);
        }
        let generation = state.api_keys.generation();
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
        let p = Principal {
            tenant: s.tenant_id,
            user_id: None,
            api_key_id: Some(s.id),
            on_behalf_of: s.created_by,
            role: None,
            custom_role: None,
            permissions: s.permissions,
            kind: match s.mode {
                KeyMode::Live => AuthKind::LiveKey,
                KeyMode::Test => AuthKind::TestKey,
            },
        };
        state.api_keys.put(fingerprint, &p, generation);
        return Ok(p);
    }
    let claims =
        eventdesk_auth::jwt::verify(&state.jwt, presented).map_err(|_| ApiError::Unauthorized)?;
    let tenant = claims.tenant_id();
    let (role, custom_role, permissions) = match claims.custom_role_id() {
        Some(id) => {
            let base = claims.base_role().ok_or(ApiError::Unauthorized)?;
            let id = RoleId(id);
            let permissions = state
                .roles
                .permissions(state, tenant, claims.user_id(), id)
                .await?;
            (base, Some(id), permissions)
        }
        None => {
            let role = claims.builtin_role().ok_or(ApiError::Unauthorized)?;
            (role, None, PermissionSet::from_role(role))
        }
    };
    Ok(Principal {
        tenant,
        user_id: Some(claims.user_id()),
        api_key_id: None,
        on_behalf_of: None,
        role: Some(role),
        custom_role,
        permissions,
        kind: AuthKind::Jwt,
    })
}

/// How long a node trusts a verified API key before looking it up again (ADR 0024): the
/// custom-role cache's bound. A key revoked through this node stops working at once; one
/// revoked through another node within this time.
pub const API_KEY_CACHE_TTL: Duration = Duration::from_secs(2);
/// Entries beyond which expired ones are dropped.
const API_KEY_CACHE_MAX: usize = 10_000;

/// Verified API keys, by a SHA-256 fingerprint of the presented key (the key itself is not
/// kept), for [`API_KEY_CACHE_TTL`]. Only successes are cached: an unknown or revoked key is
/// looked up every time.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyCache(Arc<Mutex<KeyMap>>);

#[derive(Debug, Default)]
struct KeyMap {
    keys: HashMap<[u8; 32], (Instant, Principal)>,
    /// Moves on every revocation, so that a lookup racing one is not cached.
    generation: u64,
}

impl ApiKeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, KeyMap> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The cache key of a presented API key.
    pub fn fingerprint(presented: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(presented.as_bytes()).into()
    }

    fn get(&self, fingerprint: &[u8; 32]) -> Option<Principal> {
        let map = self.lock();
        map.keys
            .get(fingerprint)
            .filter(|(at, _)| at.elapsed() < API_KEY_CACHE_TTL)
            .map(|(_, p)| p.clone())
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn put(&self, fingerprint: [u8; 32], p: &Principal, generation: u64) {
        let mut map = self.lock();
        if map.generation != generation {
            return;
        }
        if map.keys.len() >= API_KEY_CACHE_MAX {
            map.keys
                .retain(|_, (at, _)| at.elapsed() < API_KEY_CACHE_TTL);
        }
        map.keys.insert(fingerprint, (Instant::now(), p.clone()));
    }

    /// Forgets key `id` (it was just revoked through this node).
    pub fn forget(&self, id: ApiKeyId) {
        let mut map = self.lock();
        map.generation += 1;
        map.keys.retain(|_, (_, p)| p.api_key_id != Some(id));
    }
}

/// How long a node uses a custom role holder's permission set before reading it again.
pub const ROLE_CACHE_TTL: Duration = Duration::from_secs(2);
/// Entries beyond which expired ones are dropped.
const ROLE_CACHE_MAX: usize = 10_000;

/// What custom roles' holders may do, per `(tenant, user)`, for [`ROLE_CACHE_TTL`].
#[derive(Debug, Clone, Default)]
pub struct RoleCache(Arc<Mutex<RoleMap>>);

/// A holder's cached state.
#[derive(Debug, Clone)]
struct Holder {
    /// When it was read.
    at: Instant,
    /// The custom role the user holds now (`None`: none, or the user is deactivated).
    role: Option<RoleId>,
    /// That role's permissions (empty if it is deactivated or missing).
    permissions: PermissionSet,
}

type RoleMap = HashMap<(TenantId, UserId), Holder>;

impl RoleCache {
    /// What `user` of `tenant`, presenting a token for the custom role `role`, may do: the
    /// role's current permissions if the user is active and still holds `role` and `role` is
    /// an active role of the tenant; nothing otherwise. Never the platform permission.
    pub async fn permissions(
        &self,
        state: &AppState,
        tenant: TenantId,
        user: UserId,
        role: RoleId,
    ) -> Result<PermissionSet, ApiError> {
        let now = Instant::now();
        let cached = self
            .lock()
            .get(&(tenant, user))
            .filter(|h| now.duration_since(h.at) < ROLE_CACHE_TTL)
            .cloned();
        let holder = match cached {
            Some(h) => h,
            None => {
                let h = Self::read(state, tenant, user, now).await?;
                let mut map = self.lock();
                if map.len() >= ROLE_CACHE_MAX {
                    map.retain(|_, h| now.duration_since(h.at) < ROLE_CACHE_TTL);
                    if map.len() >= ROLE_CACHE_MAX {
                        map.clear();
                    }
                }
                map.insert((tenant, user), h.clone());
                h
            }
        };
        Ok(if holder.role == Some(role) {
            holder.permissions
        } else {
            PermissionSet::new()
        })
    }

    /// Reads a holder's role and its permissions in one snapshot.
    async fn read(
        state: &AppState,
        tenant: TenantId,
        user: UserId,
        now: Instant,
    ) -> Result<Holder, ApiError> {
        use eventdesk_projections::queries::directory;
        let mut tx = state.tenant_tx(tenant).await?;
        let role = directory::get_user(&mut tx, tenant, user)
            .await?
            .filter(|u| u.is_active)
            .and_then(|u| u.custom_role_id);
        let view = match role {
            Some(r) => directory::get_role(&mut tx, tenant, r).await?,
            None => None,
        };
        tx.commit().await?;
        let mut permissions = match view.filter(|v| v.is_active) {
            Some(v) => PermissionSet::from_stored(&v.permissions),
            None => PermissionSet::new(),
        };
        permissions.remove(PLATFORM);
        Ok(Holder {
            at: now,
            role,
            permissions,
        })
    }

    /// Forgets every holder of `role` (after a write to the role through this node, so their
    /// next request reads it again).
    pub fn invalidate(&self, tenant: TenantId, role: RoleId) {
        self.lock()
            .retain(|(t, _), h| !(*t == tenant && h.role == Some(role)));
    }

    /// Forgets `user` (after a change of their role or their deactivation through this node).
    pub fn invalidate_user(&self, tenant: TenantId, user: UserId) {
        self.lock().remove(&(tenant, user));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RoleMap> {
        // A panic while holding the lock leaves a consistent map: keep using it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The request's principal (authenticated once per request, then kept in its extensions).
async fn principal_of(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
    if let Some(p) = parts.extensions.get::<Principal>() {
        return Ok(p.clone());
    }
    let presented = credential(parts).ok_or(ApiError::Unauthorized)?;
    let p = authenticate(state, &presented).await?;
    parts.extensions.insert(p.clone());
    Ok(p)
}

/// Extracting a principal also waits until the read models show the caller's earlier
/// writes that answered before them (read-your-writes, ADR 0024).
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = principal_of(parts, state).await?;
        crate::consistency::settle(state, &p, &parts.headers).await?;
        Ok(p)
    }
}

/// The principal of a write that reads no read model its caller's earlier writes could be
/// missing from (the incident create): no read-your-writes wait first (ADR 0024).
#[derive(Debug, Clone)]
pub struct Writer(pub Principal);

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // A malformed token is still refused.
        crate::consistency::presented(&parts.headers)?;
        Ok(Writer(principal_of(parts, state).await?))
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
