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
use eventdesk_commands::{Options, execute};
use eventdesk_domain::directory::{
    CategoryAggregate, CategoryCommand, TeamAggregate, TeamCommand, TenantAggregate, TenantCommand,
    UserCommand,
};
use eventdesk_domain::values::{
    CategoryName, Department, Description, Email, PersonName, Phone, Role, TeamName, TenantName,
    Username,
};
use eventdesk_domain::{Actor, CategoryId, PriorityMatrix, StreamId, TeamId, TenantId, UserId};
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
    fn paging(&self) -> ApiResult<Paging> {
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

fn query_params(
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<ListParams> {
    q.map(|Query(p)| p)
        .map_err(|e| ApiError::field("query", e.body_text()))
}

fn created<T: serde::Serialize>(location: String, version: i64, body: T) -> Response {
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

/// `GET /api/v1/users`.
pub async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let paging = query_params(q)?.paging()?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let page = directory::list_users(&mut tx, principal.tenant, paging).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
}

/// `GET /api/v1/users/{id}`.
pub async fn get_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = UserId(id.parse().map_err(|_| ApiError::NotFound)?);
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = directory::get_user(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    Ok(Json(view.ok_or(ApiError::NotFound)?).into_response())
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
    let opts = Options {
        metadata: metadata(&principal, &headers),
        ..Default::default()
    };
    let done = execute::<TeamAggregate>(
        &state.store,
        &*state.clock,
        principal.tenant,
        StreamId(id.0),
        cmd,
        &opts,
    )
    .await?;
    state.wait_visible("directory", done.checkpoint()).await;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = directory::get_team(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    Ok(created(
        format!("/api/v1/teams/{id}"),
        done.version,
        view.ok_or(ApiError::NotFound)?,
    ))
}

/// `GET /api/v1/teams`.
pub async fn list_teams(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let paging = query_params(q)?.paging()?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let page = directory::list_teams(&mut tx, principal.tenant, paging).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
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
    let opts = Options {
        metadata: metadata(&principal, &headers),
        ..Default::default()
    };
    let done = execute::<CategoryAggregate>(
        &state.store,
        &*state.clock,
        principal.tenant,
        StreamId(id.0),
        cmd,
        &opts,
    )
    .await?;
    state.wait_visible("directory", done.checkpoint()).await;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = directory::get_category(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    Ok(created(
        format!("/api/v1/categories/{id}"),
        done.version,
        view.ok_or(ApiError::NotFound)?,
    ))
}

/// `GET /api/v1/categories`.
pub async fn list_categories(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let paging = query_params(q)?.paging()?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let page = directory::list_categories(&mut tx, principal.tenant, paging).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
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
