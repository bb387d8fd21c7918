//! Tenant administration: users, teams, categories (tenant admins) and tenants (platform key).

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{StrictJson, etag};
use crate::routes::incidents::metadata;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventdesk_commands::{CommandError, Options, execute};
use eventdesk_domain::directory::{
    CategoryAggregate, CategoryCommand, RoleError, TeamAggregate, TeamCommand, TenantAggregate,
    TenantCommand, UserAggregate, UserCommand,
};
use eventdesk_domain::values::{
    CategoryName, Department, Description, Email, PersonName, Phone, Role, TeamName, TenantName,
    Username,
};
use eventdesk_domain::{
    Actor, CategoryId, PriorityMatrix, RoleId, StreamId, TeamId, TenantId, UserId,
};
use eventdesk_projections::queries::directory;
use eventdesk_projections::queries::paging::{MAX_LIMIT, Paging};
use serde::Deserialize;

/// `?page=&limit=` or `?cursor=&limit=` for directory lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ListParams {
    /// The paging asked for (`422` naming `limit` or `page` when out of range).
    pub(crate) fn paging(&self) -> ApiResult<Paging> {
        let limit = self.limit.unwrap_or(20);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        if self.page == Some(0) {
            return Err(ApiError::field("page", "must be at least 1"));
        }
        Ok(match &self.cursor {
            Some(c) => Paging::Cursor {
                after: (!c.is_empty()).then(|| c.clone()),
                limit,
            },
            None => Paging::page(self.page.unwrap_or(1), limit),
        })
    }
}

/// The list parameters, or `422` on `query`.
pub(crate) fn query_params(
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<ListParams> {
    q.map(|Query(p)| p)
        .map_err(|e| ApiError::field("query", e.body_text()))
}

/// `201` with `body`, `Location` and `ETag`.
pub(crate) fn created<T: serde::Serialize>(location: String, version: i64, body: T) -> Response {
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

// ------------------------------------------------------------------------------------------
// Users
// ------------------------------------------------------------------------------------------

/// `POST /api/v1/users` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    username: String,
    email: String,
    password: String,
    first_name: String,
    last_name: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    department: Option<String>,
    role: Role,
}

/// `POST /api/v1/users` (admin): registers a user in the caller's tenant.
pub async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value: u, .. }: StrictJson<UserCreate>,
) -> ApiResult<Response> {
    let mut f = FieldErrors::default();
    let username = f.take_as("username", Username::parse(&u.username));
    let email = f.take_as("email", Email::parse(&u.email));
    let first = f.take_as("first_name", PersonName::parse(&u.first_name));
    let last = f.take_as("last_name", PersonName::parse(&u.last_name));
    let phone = u
        .phone
        .as_deref()
        .map(Phone::parse)
        .and_then(|r| f.take_as("phone", r));
    let department = u
        .department
        .as_deref()
        .map(Department::parse)
        .and_then(|r| f.take_as("department", r));
    if let Err(m) = eventdesk_auth::password::check_new_password(&u.password) {
        f.push("password", m);
    }
    f.done()?;
    let (Some(username), Some(email), Some(first), Some(last)) = (username, email, first, last)
    else {
        return Err(ApiError::BadRequest("invalid input".into()));
    };
    check_builtin_grant(&state, &principal, &headers, "role", u.role, None).await?;
    let password = u.password.clone();
    let hash =
        tokio::task::spawn_blocking(move || eventdesk_auth::password::hash_password(&password))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    let id = UserId::new();
    let cmd = UserCommand::Register {
        id,
        tenant_id: principal.tenant,
        username,
        email,
        first_name: first,
        last_name: last,
        phone,
        department,
        role: u.role,
        password_hash: hash,
        actor: principal.actor(),
    };
    let opts = Options {
        metadata: metadata(&principal, &headers),
        ..Default::default()
    };
    let done = eventdesk_commands::user::register_user(
        &state.store,
        &*state.clock,
        principal.tenant,
        cmd,
        &opts,
    )
    .await?;
    state.wait_visible("directory", done.checkpoint()).await;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = directory::get_user(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    let view = view.ok_or(ApiError::NotFound)?;
    Ok(created(format!("/api/v1/users/{id}"), view.version, view))
}

/// Defines `GET` handlers that read one query function in a transaction scoped to the
/// caller's tenant: `list NAME => query` (paged) and `get NAME(IdType) => query` (404 if absent).
macro_rules! scoped_reads {
    ($(#[$doc:meta])* list $name:ident => $query:path; $($rest:tt)*) => {
        $(#[$doc])*
        pub async fn $name(
            State(state): State<AppState>,
            principal: Principal,
            q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
        ) -> ApiResult<Response> {
            let paging = query_params(q)?.paging()?;
            let mut tx = state.tenant_tx(principal.tenant).await?;
            let page = $query(&mut tx, principal.tenant, paging).await?;
            tx.commit().await?;
            Ok(Json(page).into_response())
        }
        scoped_reads!($($rest)*);
    };
    ($(#[$doc:meta])* get $name:ident($id:ident) => $query:path; $($rest:tt)*) => {
        $(#[$doc])*
        pub async fn $name(
            State(state): State<AppState>,
            principal: Principal,
            Path(id): Path<String>,
        ) -> ApiResult<Response> {
            let id = $id(path_uuid(&id)?);
            let mut tx = state.tenant_tx(principal.tenant).await?;
            let view = $query(&mut tx, principal.tenant, id).await?;
            tx.commit().await?;
            Ok(Json(view.ok_or(ApiError::NotFound)?).into_response())
        }
        scoped_reads!($($rest)*);
    };
    () => {};
}

scoped_reads! {
    /// `GET /api/v1/users`.
    list list_users => directory::list_users;
    /// `GET /api/v1/users/{id}`.
    get get_user(UserId) => directory::get_user;
    /// `GET /api/v1/teams`.
    list list_teams => directory::list_teams;
    /// `GET /api/v1/teams/{id}`.
    get get_team(TeamId) => directory::get_team;
    /// `GET /api/v1/categories`.
    list list_categories => directory::list_categories;
    /// `GET /api/v1/categories/{id}`.
    get get_category(CategoryId) => directory::get_category;
}

// ------------------------------------------------------------------------------------------
// Teams and categories
// ------------------------------------------------------------------------------------------

/// `POST /api/v1/teams` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamCreate {
    name: String,
    #[serde(default)]
    manager_id: Option<UserId>,
    #[serde(default)]
    description: Option<String>,
}

/// `POST /api/v1/teams`.
pub async fn create_team(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value, .. }: StrictJson<TeamCreate>,
) -> ApiResult<Response> {
    let name = TeamName::parse(&value.name)?;
    let description = value
        .description
        .as_deref()
        .map(Description::parse)
        .transpose()?;
    let id = TeamId::new();
    let cmd = TeamCommand::Create {
        id,
        name,
        manager_id: value.manager_id,
        description,
        actor: principal.actor(),
    };
    let (view, version) = write_team(&state, &principal, &headers, id, vec![cmd]).await?;
    Ok(created(format!("/api/v1/teams/{id}"), version, view))
}

/// `POST /api/v1/categories` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryCreate {
    name: String,
    #[serde(default)]
    parent_id: Option<CategoryId>,
    #[serde(default)]
    description: Option<String>,
}

/// `POST /api/v1/categories`.
pub async fn create_category(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value, .. }: StrictJson<CategoryCreate>,
) -> ApiResult<Response> {
    let name = CategoryName::parse(&value.name)?;
    let description = value
        .description
        .as_deref()
        .map(Description::parse)
        .transpose()?;
    if let Some(parent) = value.parent_id {
        let mut tx = state.tenant_tx(principal.tenant).await?;
        let found = directory::get_category(&mut tx, principal.tenant, parent).await?;
        tx.commit().await?;
        if found.is_none() {
            return Err(ApiError::field("parent_id", "no such category"));
        }
    }
    let id = CategoryId::new();
    let cmd = CategoryCommand::Create {
        id,
        name,
        parent_id: value.parent_id,
        description,
        actor: principal.actor(),
    };
    let (view, version) = write_category(&state, &principal, &headers, id, cmd).await?;
    Ok(created(format!("/api/v1/categories/{id}"), version, view))
}

// ------------------------------------------------------------------------------------------
// Tenants (platform key only)
// ------------------------------------------------------------------------------------------

/// `POST /api/v1/tenants` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    name: String,
    #[serde(default)]
    priority_matrix: Option<PriorityMatrix>,
}

/// `POST /api/v1/tenants` (platform key): creates an organisation. Its first admin is created
/// with `eventdesk tenant create` or by the platform through `POST /api/v1/users` later.
pub async fn create_tenant(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value, .. }: StrictJson<TenantCreate>,
) -> ApiResult<Response> {
    let name = TenantName::parse(&value.name)?;
    let id = TenantId::new();
    let cmd = TenantCommand::Create {
        id,
        name,
        priority_matrix: value.priority_matrix,
        actor: Actor::System,
    };
    let opts = Options {
        metadata: metadata(&principal, &headers),
        ..Default::default()
    };
    let done = execute::<TenantAggregate>(
        &state.store.with_pool(state.system.clone()),
        &*state.clock,
        id,
        StreamId(id.0),
        cmd,
        &opts,
    )
    .await?;
    state.wait_visible("directory", done.checkpoint()).await;
    let mut conn = state.system.acquire().await?;
    let view = directory::get_tenant(&mut conn, id).await?;
    Ok(created(
        format!("/api/v1/tenants/{id}"),
        done.version,
        view.ok_or(ApiError::NotFound)?,
    ))
}

/// `GET /api/v1/tenants` (platform key).
pub async fn list_tenants(
    State(state): State<AppState>,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let paging = query_params(q)?.paging()?;
    let mut conn = state.system.acquire().await?;
    let page = directory::list_tenants(&mut conn, paging).await?;
    Ok(Json(page).into_response())
}

// ------------------------------------------------------------------------------------------
// Updates and deactivation
// ------------------------------------------------------------------------------------------

/// `null` → `Some(None)` (clear), absent → `None` (keep).
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A path id; anything but a UUID is `404`.
pub(crate) fn path_uuid(raw: &str) -> ApiResult<uuid::Uuid> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// `PATCH /api/v1/users/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    department: Option<Option<String>>,
    #[serde(default)]
    role: Option<Role>,
    /// The tenant's custom role to hold (`null`: none, the built-in role again).
    #[serde(default, deserialize_with = "nullable")]
    custom_role_id: Option<Option<RoleId>>,
}

/// Nobody puts on a user a role holding a permission they lack (ADR 0011): `422` naming
/// `field` for the built-in `role`'s first such permission, recorded in the security log.
async fn check_builtin_grant(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    field: &str,
    role: Role,
    user: Option<UserId>,
) -> ApiResult<()> {
    let wanted = eventdesk_auth::PermissionSet::from_role(role);
    match crate::routes::roles::first_not_held(&wanted, principal) {
        None => Ok(()),
        Some(p) => {
            crate::routes::roles::record_escalation(
                state,
                principal,
                headers,
                serde_json::json!({ "user_id": user, "role": role.as_str() }),
                &p.to_string(),
            )
            .await;
            Err(ApiError::field(
                field,
                format!("the {role} role holds {p}, which you do not hold, so you cannot grant it"),
            ))
        }
    }
}

/// Checks the role changes of a user update (ADR 0011) and returns the user's state before
/// it, with its version, when the body touches a role (the update must then apply to exactly
/// that state). Only actual changes are checked, so re-sending the current values passes.
///
/// - `custom_role_id: <id>`: the role must be one of the tenant's (`404` otherwise, also for
///   another tenant's role) and active (`422` on `custom_role_id`), and the caller must hold
///   every permission it holds (`422` on `custom_role_id`).
/// - `role: <r>`: the caller must hold every permission of `r` (`422` on `role`).
/// - `custom_role_id: null` on a user holding one: they fall back to their built-in role, so
///   the caller must hold its permissions (`422` on `custom_role_id`).
async fn check_role_changes(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: UserId,
    u: &UserUpdate,
) -> ApiResult<Option<(UserAggregate, i64)>> {
    if u.role.is_none() && u.custom_role_id.is_none() {
        return Ok(None);
    }
    let (before, version) =
        eventdesk_commands::load::<UserAggregate>(&state.store, principal.tenant, StreamId(id.0))
            .await?;
    let Some(user) = &before.state else {
        return Err(ApiError::NotFound);
    };
    if let Some(role) = u.role.filter(|r| *r != user.role) {
        check_builtin_grant(state, principal, headers, "role", role, Some(id)).await?;
    }
    match u.custom_role_id {
        Some(Some(role_id)) if user.custom_role_id != Some(role_id) => {
            let role =
                eventdesk_commands::role::assignable_role(&state.store, principal.tenant, role_id)
                    .await
                    .map_err(|e| match e {
                        CommandError::Rejected(RoleError::Deactivated) => {
                            ApiError::field("custom_role_id", "the role is deactivated")
                        }
                        other => other.into(),
                    })?;
            let wanted = eventdesk_auth::PermissionSet::from_stored(
                role.permissions.iter().map(|p| p.as_str()),
            );
            if let Some(p) = crate::routes::roles::first_not_held(&wanted, principal) {
                crate::routes::roles::record_escalation(
                    state,
                    principal,
                    headers,
                    serde_json::json!({ "user_id": id, "custom_role_id": role_id }),
                    &p.to_string(),
                )
                .await;
                return Err(ApiError::field(
                    "custom_role_id",
                    format!("the role holds {p}, which you do not hold, so you cannot grant it"),
                ));
            }
        }
        Some(None) if user.custom_role_id.is_some() => {
            let base = u.role.unwrap_or(user.role);
            check_builtin_grant(state, principal, headers, "custom_role_id", base, Some(id))
                .await?;
        }
        _ => {}
    }
    Ok(Some((before, version)))
}

async fn user_response(
    state: &AppState,
    principal: &Principal,
    id: UserId,
    done: eventdesk_commands::Executed<eventdesk_domain::directory::UserAggregate>,
) -> ApiResult<Response> {
    state.wait_visible("directory", done.checkpoint()).await;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = directory::get_user(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    let view = view.ok_or(ApiError::NotFound)?;
    let mut resp = Json(&view).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(view.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// `PATCH /api/v1/users/{id}` (admin): profile fields, built-in role and custom role. A
/// change of either role is recorded in the security log; nobody grants a role holding a
/// permission they lack (see [`check_role_changes`]). A new custom role applies to the
/// user's next access token (login or refresh); a token for a role they no longer hold stops
/// granting anything within `auth::ROLE_CACHE_TTL`.
pub async fn update_user(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    StrictJson { value: u, .. }: StrictJson<UserUpdate>,
) -> ApiResult<Response> {
    let id = UserId(path_uuid(&id)?);
    let actor = principal.actor();
    let mut f = FieldErrors::default();
    let email = u
        .email
        .as_deref()
        .map(Email::parse)
        .and_then(|r| f.take_as("email", r));
    let first = u
        .first_name
        .as_deref()
        .map(PersonName::parse)
        .and_then(|r| f.take_as("first_name", r));
    let last = u
        .last_name
        .as_deref()
        .map(PersonName::parse)
        .and_then(|r| f.take_as("last_name", r));
    let phone = match &u.phone {
        None => None,
        Some(None) => Some(None),
        Some(Some(p)) => f.take_as("phone", Phone::parse(p)).map(Some),
    };
    let department = match &u.department {
        None => None,
        Some(None) => Some(None),
        Some(Some(d)) => f.take_as("department", Department::parse(d)).map(Some),
    };
    f.done()?;
    let mut commands = Vec::new();
    if email.is_some()
        || first.is_some()
        || last.is_some()
        || phone.is_some()
        || department.is_some()
    {
        commands.push(UserCommand::UpdateProfile {
            email,
            first_name: first,
            last_name: last,
            phone,
            department,
            actor,
        });
    }
    if let Some(role) = u.role {
        commands.push(UserCommand::ChangeRole { role, actor });
    }
    if let Some(custom_role_id) = u.custom_role_id {
        commands.push(UserCommand::AssignCustomRole {
            custom_role_id,
            actor,
        });
    }
    let before = check_role_changes(&state, &principal, &headers, id, &u).await?;
    let opts = Options {
        metadata: metadata(&principal, &headers),
        // The role checks read the user: write only on the state they read.
        if_match: before.as_ref().map(|(_, version)| *version),
        ..Default::default()
    };
    let done = eventdesk_commands::user::update_user(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        commands,
        &opts,
    )
    .await
    .map_err(|e| match e {
        CommandError::PreconditionFailed { .. } => {
            ApiError::Conflict("the user was modified concurrently; retry".into())
        }
        other => other.into(),
    })?;
    let roles_of = |agg: &UserAggregate| agg.state.as_ref().map(|s| (s.role, s.custom_role_id));
    let (old, new) = (
        before.as_ref().and_then(|(agg, _)| roles_of(agg)),
        roles_of(&done.state),
    );
    if let (Some((old_role, old_custom)), Some((new_role, new_custom))) = (old, new) {
        if old_role != new_role {
            crate::security::record(
                &state,
                principal.tenant,
                "RoleChanged",
                &principal.actor_label(),
                opts.metadata.request_id.clone(),
                serde_json::json!({ "user_id": id, "role": new_role.as_str() }),
            )
            .await;
        }
        if old_custom != new_custom {
            crate::security::record(
                &state,
                principal.tenant,
                "CustomRoleAssigned",
                &principal.actor_label(),
                opts.metadata.request_id.clone(),
                serde_json::json!({
                    "user_id": id,
                    "custom_role_id": new_custom,
                    "previous_custom_role_id": old_custom,
                }),
            )
            .await;
        }
    }
    let resp = user_response(&state, &principal, id, done).await;
    // After the read model has the change (user_response waits for it).
    state.roles.invalidate_user(principal.tenant, id);
    resp
}

/// `POST /api/v1/users/{id}/deactivate` (admin): the user can no longer log in, and their
/// refresh tokens are revoked.
pub async fn deactivate_user(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = UserId(path_uuid(&id)?);
    if principal.user_id == Some(id) {
        return Err(ApiError::Rule {
            code: "cannot_deactivate_self",
            message: "an administrator cannot deactivate their own account".into(),
        });
    }
    let opts = Options {
        metadata: metadata(&principal, &headers),
        ..Default::default()
    };
    let done = eventdesk_commands::user::update_user(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        vec![UserCommand::Deactivate {
            actor: principal.actor(),
        }],
        &opts,
    )
    .await?;
    let mut conn = state.db.pool.acquire().await?;
    eventdesk_auth::store::revoke_user_refresh_tokens(
        &mut conn,
        principal.tenant,
        id,
        state.clock.now(),
    )
    .await
    .map_err(ApiError::internal)?;
    drop(conn);
    let resp = user_response(&state, &principal, id, done).await;
    // A custom role's holder holds nothing once deactivated (ADR 0011): at once on this node.
    state.roles.invalidate_user(principal.tenant, id);
    resp
}

/// `POST /api/v1/users/{id}/reactivate` (admin).
pub async fn reactivate_user(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = UserId(path_uuid(&id)?);
    let opts = Options {
        metadata: metadata(&principal, &headers),
        ..Default::default()
    };
    let done = eventdesk_commands::user::update_user(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        vec![UserCommand::Reactivate {
            actor: principal.actor(),
        }],
        &opts,
    )
    .await?;
    let resp = user_response(&state, &principal, id, done).await;
    state.roles.invalidate_user(principal.tenant, id);
    resp
}

/// `PATCH /api/v1/teams/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    manager_id: Option<Option<UserId>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    /// Members to add.
    #[serde(default)]
    add_members: Vec<UserId>,
    /// Members to remove.
    #[serde(default)]
    remove_members: Vec<UserId>,
}

async fn write_team(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: TeamId,
    commands: Vec<TeamCommand>,
) -> ApiResult<(directory::TeamView, i64)> {
    let opts = Options {
        metadata: metadata(principal, headers),
        ..Default::default()
    };
    let done = eventdesk_commands::execute_many::<TeamAggregate>(
        &state.store,
        &*state.clock,
        principal.tenant,
        StreamId(id.0),
        commands,
        &opts,
    )
    .await?;
    state.wait_visible("directory", done.checkpoint()).await;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = directory::get_team(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    Ok((view.ok_or(ApiError::NotFound)?, done.version))
}

async fn run_team(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: TeamId,
    commands: Vec<TeamCommand>,
) -> ApiResult<Response> {
    let (view, _) = write_team(state, principal, headers, id, commands).await?;
    Ok(Json(view).into_response())
}

/// Every user id must be a user of the caller's tenant.
async fn check_users(
    state: &AppState,
    principal: &Principal,
    field: &str,
    ids: &[UserId],
) -> ApiResult<()> {
    let mut tx = state.tenant_tx(principal.tenant).await?;
    for id in ids {
        if directory::get_user(&mut tx, principal.tenant, *id)
            .await?
            .is_none()
        {
            return Err(ApiError::field(field, format!("no such user {id}")));
        }
    }
    tx.commit().await?;
    Ok(())
}

/// `PATCH /api/v1/teams/{id}`: name, manager, description, and membership changes.
pub async fn update_team(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    StrictJson { value: u, .. }: StrictJson<TeamUpdate>,
) -> ApiResult<Response> {
    let id = TeamId(path_uuid(&id)?);
    let actor = principal.actor();
    let mut f = FieldErrors::default();
    let name = u
        .name
        .as_deref()
        .map(TeamName::parse)
        .and_then(|r| f.take_as("name", r));
    let description = match &u.description {
        None => None,
        Some(None) => Some(None),
        Some(Some(d)) => f.take_as("description", Description::parse(d)).map(Some),
    };
    f.done()?;
    let managers: Vec<UserId> = u.manager_id.flatten().into_iter().collect();
    check_users(&state, &principal, "manager_id", &managers).await?;
    check_users(&state, &principal, "add_members", &u.add_members).await?;
    let mut commands = Vec::new();
    if name.is_some() || description.is_some() || u.manager_id.is_some() {
        commands.push(TeamCommand::Update {
            name,
            manager_id: u.manager_id,
            description,
            actor,
        });
    }
    commands.extend(
        u.add_members
            .iter()
            .map(|&user_id| TeamCommand::AddMember { user_id, actor }),
    );
    commands.extend(
        u.remove_members
            .iter()
            .map(|&user_id| TeamCommand::RemoveMember { user_id, actor }),
    );
    run_team(&state, &principal, &headers, id, commands).await
}

/// `POST /api/v1/teams/{id}/deactivate`.
pub async fn deactivate_team(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = TeamId(path_uuid(&id)?);
    let actor = principal.actor();
    run_team(
        &state,
        &principal,
        &headers,
        id,
        vec![TeamCommand::Deactivate { actor }],
    )
    .await
}

/// `PATCH /api/v1/categories/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    parent_id: Option<Option<CategoryId>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
}

async fn write_category(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: CategoryId,
    command: CategoryCommand,
) -> ApiResult<(directory::CategoryView, i64)> {
    let opts = Options {
        metadata: metadata(principal, headers),
        ..Default::default()
    };
    let done = execute::<CategoryAggregate>(
        &state.store,
        &*state.clock,
        principal.tenant,
        StreamId(id.0),
        command,
        &opts,
    )
    .await?;
    state.wait_visible("directory", done.checkpoint()).await;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = directory::get_category(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    Ok((view.ok_or(ApiError::NotFound)?, done.version))
}

async fn run_category(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: CategoryId,
    command: CategoryCommand,
) -> ApiResult<Response> {
    let (view, _) = write_category(state, principal, headers, id, command).await?;
    Ok(Json(view).into_response())
}

/// `PATCH /api/v1/categories/{id}`: moving a category under one of its own descendants (a loop
/// in the tree) is refused with 422 on `parent_id`.
pub async fn update_category(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    StrictJson { value: u, .. }: StrictJson<CategoryUpdate>,
) -> ApiResult<Response> {
    let id = CategoryId(path_uuid(&id)?);
    let mut f = FieldErrors::default();
    let name = u
        .name
        .as_deref()
        .map(CategoryName::parse)
        .and_then(|r| f.take_as("name", r));
    let description = match &u.description {
        None => None,
        Some(None) => Some(None),
        Some(Some(d)) => f.take_as("description", Description::parse(d)).map(Some),
    };
    f.done()?;
    if let Some(Some(parent)) = u.parent_id {
        // Walk up from the new parent: reaching `id` would close a loop.
        let mut tx = state.tenant_tx(principal.tenant).await?;
        let mut cursor = Some(parent);
        let mut depth = 0;
        while let Some(c) = cursor {
            if c == id {
                return Err(ApiError::field(
                    "parent_id",
                    "would make the category its own ancestor",
                ));
            }
            depth += 1;
            if depth > 64 {
                return Err(ApiError::field(
                    "parent_id",
                    "the category tree is deeper than 64 levels",
                ));
            }
            cursor = match directory::get_category(&mut tx, principal.tenant, c).await? {
                Some(cat) => cat.parent_id,
                None if c == parent => {
                    return Err(ApiError::field("parent_id", "no such category"));
                }
                None => None,
            };
        }
        tx.commit().await?;
    }
    let cmd = CategoryCommand::Update {
        name,
        parent_id: u.parent_id,
        description,
        actor: principal.actor(),
    };
    run_category(&state, &principal, &headers, id, cmd).await
}

/// `POST /api/v1/categories/{id}/deactivate`.
pub async fn deactivate_category(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = CategoryId(path_uuid(&id)?);
    let actor = principal.actor();
    run_category(
        &state,
        &principal,
        &headers,
        id,
        CategoryCommand::Deactivate { actor },
    )
    .await
}
