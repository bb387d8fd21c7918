//! `/api/v1/roles`: the tenant's custom roles (ADR 0011) — named sets of `resource:action`
//! permissions that users hold instead of their built-in role's (`PATCH /api/v1/users/{id}`
//! with `custom_role_id` assigns one).
//!
//! - `permissions` are checked against the RBAC matrix: an unknown one is `422` naming
//!   `permissions[i]`, and so is the platform permission `tenant:manage`.
//! - Nobody grants what they do not hold: a create, or an update that *adds* permissions to a
//!   role, is `422` naming `permissions[i]` for the first permission the caller lacks (the rule
//!   of API keys), and the attempt is recorded in the security log. The role aggregate decides
//!   this on the state it appends to, so a concurrent change cannot slip between check and
//!   write.
//! - Names are unique per tenant among active roles, case-insensitively: `409`. The built-in
//!   role names are refused (`422` on `name`).
//! - Writes answer once the `directory` read model has applied them, with the role and its
//!   `ETag`; `If-Match` makes `PATCH` and `…/deactivate` conditional (`412`). They drop this
//!   node's cached permission sets of the role's holders at once; other nodes see the change
//!   within `auth::ROLE_CACHE_TTL`.
//! - Deleting is deactivating (`POST …/deactivate`, like users, teams and categories): the role
//!   stays readable, its name is free again, and its holders hold nothing.
//! - Every write is recorded in the tenant's security log (`CustomRoleCreated`,
//!   `CustomRoleUpdated`, `CustomRoleDeactivated`).

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldErrors, RejectionExt};
use crate::extract::{IfMatch, StrictJson, etag};
use crate::routes::directory::{ListParams, created, nullable, path_uuid, query_params};
use crate::routes::incidents::metadata;
use crate::security;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use eventdesk_auth::PermissionSet;
use eventdesk_auth::rbac::{PLATFORM, Permission};
use eventdesk_commands::{CommandError, Executed, Options};
use eventdesk_domain::RoleId;
use eventdesk_domain::directory::{
    Grantable, PermissionName, RoleAggregate, RoleCommand, RoleError, RoleName,
};
use eventdesk_domain::values::Description;
use eventdesk_projections::queries::directory::{self, RoleView};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeSet;

/// The read model writes wait for.
const PROJECTION: &str = "directory";
/// The most permissions one request may list (the matrix has fewer; duplicates are allowed).
pub const MAX_PERMISSIONS: usize = 256;

/// `NotFound` → 404, `AlreadyExists` → 409, `Deactivated` → 422 `deactivated`, a permission
/// that may not be held or granted → 422 on `permissions`.
impl RejectionExt for RoleError {
    fn to_api(&self) -> ApiError {
        match self {
            Self::NotFound => ApiError::NotFound,
            Self::AlreadyExists => ApiError::Conflict(self.to_string()),
            Self::Deactivated => ApiError::Rule {
                code: self.code(),
                message: self.to_string(),
            },
            Self::PlatformPermission | Self::NotGrantable(_) => {
                ApiError::field(PermissionName::FIELD, self.to_string())
            }
        }
    }
}

/// `POST /api/v1/roles` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleCreate {
    name: String,
    #[serde(default)]
    description: Option<String>,
    permissions: Vec<String>,
}

/// `PATCH /api/v1/roles/{id}` body: absent fields are kept, `description: null` clears it,
/// `permissions` replaces the whole set (`null` is refused: `[]` empties it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    permissions: Option<Option<Vec<String>>>,
}

/// Parses a body's `permissions`: each must be a permission of the RBAC matrix, and not the
/// platform's (`422` naming `permissions[i]`). Duplicates collapse.
fn parse_permissions(list: &[String], f: &mut FieldErrors) -> BTreeSet<PermissionName> {
    let mut out = BTreeSet::new();
    if list.len() > MAX_PERMISSIONS {
        f.push(
            PermissionName::FIELD,
            format!("at most {MAX_PERMISSIONS} permissions"),
        );
        return out;
    }
    for (i, raw) in list.iter().enumerate() {
        let field = format!("permissions[{i}]");
        match Permission::parse(raw) {
            Err(_) => f.push(
                &field,
                format!("unknown permission {raw:?}: must be a resource:action of the RBAC matrix"),
            ),
            Ok(p) if p == PLATFORM => f.push(
                &field,
                "tenant:manage is the platform's permission: no tenant role may hold it",
            ),
            Ok(p) => match PermissionName::parse(p.to_string()) {
                Ok(name) => {
                    out.insert(name);
                }
                Err(e) => f.push(&field, e.message()),
            },
        }
    }
    out
}

/// What `principal` may grant: the permissions they hold.
pub(crate) fn grantable(principal: &Principal) -> Grantable {
    Grantable::Only(
        principal
            .permissions
            .iter()
            .filter_map(|p| PermissionName::parse(p.to_string()).ok())
            .collect(),
    )
}

/// The first permission of `wanted` that `principal` does not hold.
pub(crate) fn first_not_held(wanted: &PermissionSet, principal: &Principal) -> Option<Permission> {
    wanted.iter().find(|p| !principal.permissions.contains(*p))
}

/// Records a refused attempt to grant `permission` in the security log.
pub(crate) async fn record_escalation(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    target: serde_json::Value,
    permission: &str,
) {
    security::record(
        state,
        principal.tenant,
        "PrivilegeEscalationRefused",
        &principal.actor_label(),
        metadata(principal, headers).request_id,
        json!({ "target": target, "permission": permission }),
    )
    .await;
}

/// Maps a role command's failure: a taken name is `409`, an ungrantable permission is `422`
/// naming its index in `requested` (and is recorded in the security log).
async fn role_error(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: RoleId,
    requested: &[String],
    e: CommandError<RoleError>,
) -> ApiError {
    match e {
        CommandError::Taken { .. } => {
            ApiError::Conflict("an active role of this tenant already has this name".into())
        }
        CommandError::Rejected(RoleError::NotGrantable(p)) => {
            record_escalation(
                state,
                principal,
                headers,
                json!({ "role_id": id }),
                p.as_str(),
            )
            .await;
            let field = requested.iter().position(|r| r == p.as_str()).map_or_else(
                || PermissionName::FIELD.to_owned(),
                |i| format!("permissions[{i}]"),
            );
            ApiError::field(
                field,
                format!("you do not hold {p}, so you cannot grant it"),
            )
        }
        other => other.into(),
    }
}

async fn read_role(state: &AppState, principal: &Principal, id: RoleId) -> ApiResult<RoleView> {
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = directory::get_role(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    view.ok_or(ApiError::NotFound)
}

/// `body` as JSON with `ETag: "<version>"`.
fn with_etag(view: &RoleView) -> Response {
    let mut resp = Json(view).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(view.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// After a write: waits for the read model, forgets this node's cached holders of the role,
/// and reads the role back.
async fn after_write(
    state: &AppState,
    principal: &Principal,
    id: RoleId,
    done: &Executed<RoleAggregate>,
) -> ApiResult<RoleView> {
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    state.roles.invalidate(principal.tenant, id);
    read_role(state, principal, id).await
}

fn options(principal: &Principal, headers: &HeaderMap, if_match: IfMatch) -> Options {
    Options {
        metadata: metadata(principal, headers),
        if_match: if_match.0,
        ..Default::default()
    }
}

/// `POST /api/v1/roles`.
pub async fn create_role(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value: b, .. }: StrictJson<RoleCreate>,
) -> ApiResult<Response> {
    let mut f = FieldErrors::default();
    let name = f.take_as("name", RoleName::parse(&b.name));
    let description = b
        .description
        .as_deref()
        .map(Description::parse)
        .and_then(|r| f.take_as("description", r));
    let permissions = parse_permissions(&b.permissions, &mut f);
    f.done()?;
    let Some(name) = name else {
        return Err(ApiError::field("name", "is required"));
    };
    let id = RoleId::new();
    let cmd = RoleCommand::Create {
        id,
        name,
        description,
        permissions,
        grantable: grantable(&principal),
        actor: principal.actor(),
    };
    let opts = options(&principal, &headers, IfMatch(None));
    let done = match eventdesk_commands::role::create_role(
        &state.store,
        &*state.clock,
        principal.tenant,
        cmd,
        &opts,
    )
    .await
    {
        Ok(done) => done,
        Err(e) => {
            return Err(role_error(&state, &principal, &headers, id, &b.permissions, e).await);
        }
    };
    let view = after_write(&state, &principal, id, &done).await?;
    security::record(
        &state,
        principal.tenant,
        "CustomRoleCreated",
        &principal.actor_label(),
        opts.metadata.request_id.clone(),
        json!({ "role_id": id, "name": view.name, "permissions": view.permissions }),
    )
    .await;
    Ok(created(format!("/api/v1/roles/{id}"), view.version, view))
}

/// `GET /api/v1/roles`: the tenant's custom roles (active and deactivated) by name, paged as
/// the other directory lists.
pub async fn list_roles(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let paging = query_params(q)?.paging()?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let page = directory::list_roles(&mut tx, principal.tenant, paging).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
}

/// `GET /api/v1/roles/{id}` (with its `ETag`).
pub async fn get_role(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = RoleId(path_uuid(&id)?);
    let view = read_role(&state, &principal, id).await?;
    Ok(with_etag(&view))
}

/// `PATCH /api/v1/roles/{id}`.
pub async fn update_role(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    if_match: IfMatch,
    StrictJson { value: u, .. }: StrictJson<RoleUpdate>,
) -> ApiResult<Response> {
    let id = RoleId(path_uuid(&id)?);
    let mut f = FieldErrors::default();
    let name = u
        .name
        .as_deref()
        .map(RoleName::parse)
        .and_then(|r| f.take_as("name", r));
    let description = match &u.description {
        None => None,
        Some(None) => Some(None),
        Some(Some(d)) => f.take_as("description", Description::parse(d)).map(Some),
    };
    let requested = u.permissions.clone().flatten().unwrap_or_default();
    let permissions = match &u.permissions {
        None => None,
        Some(None) => {
            f.push(
                PermissionName::FIELD,
                "must be an array of permissions (`[]` for none)",
            );
            None
        }
        Some(Some(list)) => Some(parse_permissions(list, &mut f)),
    };
    f.done()?;
    let cmd = RoleCommand::Update {
        name,
        description,
        permissions,
        grantable: grantable(&principal),
        actor: principal.actor(),
    };
    let opts = options(&principal, &headers, if_match);
    let done = match eventdesk_commands::role::update_role(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        vec![cmd],
        &opts,
    )
    .await
    {
        Ok(done) => done,
        Err(e) => return Err(role_error(&state, &principal, &headers, id, &requested, e).await),
    };
    let view = after_write(&state, &principal, id, &done).await?;
    if done.appended.is_some() {
        security::record(
            &state,
            principal.tenant,
            "CustomRoleUpdated",
            &principal.actor_label(),
            opts.metadata.request_id.clone(),
            json!({ "role_id": id, "name": view.name, "permissions": view.permissions }),
        )
        .await;
    }
    Ok(with_etag(&view))
}

/// `POST /api/v1/roles/{id}/deactivate`: the role stays readable, its name is free again, and
/// its holders hold no permission from then on (within `ROLE_CACHE_TTL` on other nodes).
pub async fn deactivate_role(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let id = RoleId(path_uuid(&id)?);
    let opts = options(&principal, &headers, if_match);
    let done = match eventdesk_commands::role::update_role(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        vec![RoleCommand::Deactivate {
            actor: principal.actor(),
        }],
        &opts,
    )
    .await
    {
        Ok(done) => done,
        Err(e) => return Err(role_error(&state, &principal, &headers, id, &[], e).await),
    };
    let view = after_write(&state, &principal, id, &done).await?;
    if done.appended.is_some() {
        security::record(
            &state,
            principal.tenant,
            "CustomRoleDeactivated",
            &principal.actor_label(),
            opts.metadata.request_id.clone(),
            json!({ "role_id": id, "name": view.name }),
        )
        .await;
    }
    Ok(with_etag(&view))
}
