//! Tenants, users, teams, categories and custom roles.

use super::paging::{Cursor, ListQuery, Select, fetch_page};
use super::{Page, Paging, QueryError, Result, parse_col};
use chrono::{DateTime, Utc};
use eventdesk_domain::values::Role;
use eventdesk_domain::{CategoryId, PriorityMatrix, RoleId, TeamId, TenantId, UserId};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

/// A user as listed and shown (the seed's `User`; never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserView {
    /// Id.
    pub id: UserId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Login name (case preserved).
    pub username: String,
    /// The lower-cased login name (the uniqueness and sort key; not serialised).
    #[serde(skip)]
    pub username_canonical: String,
    /// E-mail.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Phone.
    pub phone: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Built-in role (the base role while a custom role is assigned).
    pub role: Role,
    /// The tenant's custom role whose permissions the user holds (`null`: the built-in
    /// role's).
    pub custom_role_id: Option<RoleId>,
    /// Whether the account is enabled.
    pub is_active: bool,
    /// Registered.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Stream version (the ETag).
    pub version: i64,
}

/// What login needs about a user, found by username across all tenants. The password hash is
/// never serialised and is redacted from `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct UserAuthRow {
    /// The user's tenant.
    pub tenant_id: TenantId,
    /// Id.
    pub id: UserId,
    /// Login name.
    pub username: String,
    /// Built-in role (the base role while a custom role is assigned).
    pub role: Role,
    /// The custom role, if one is assigned.
    pub custom_role_id: Option<RoleId>,
    /// Whether the account is enabled.
    pub is_active: bool,
    /// Argon2id PHC string.
    #[serde(skip)]
    pub password_hash: String,
}

impl std::fmt::Debug for UserAuthRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAuthRow")
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("custom_role_id", &self.custom_role_id)
            .field("is_active", &self.is_active)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// A team (assignment group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamView {
    /// Id.
    pub id: TeamId,
    /// Name.
    pub name: String,
    /// Manager.
    pub manager_id: Option<UserId>,
    /// Description.
    pub description: Option<String>,
    /// Members, by id.
    pub members: Vec<UserId>,
    /// Whether the team is active.
    pub is_active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Stream version (the ETag).
    pub version: i64,
}

/// A category (tree node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryView {
    /// Id.
    pub id: CategoryId,
    /// Name.
    pub name: String,
    /// Parent.
    pub parent_id: Option<CategoryId>,
    /// Description.
    pub description: Option<String>,
    /// Whether the category is active.
    pub is_active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Stream version (the ETag).
    pub version: i64,
}

/// A tenant (organisation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantView {
    /// Id.
    pub id: TenantId,
    /// Name.
    pub name: String,
    /// Whether the tenant is active.
    pub is_active: bool,
    /// Impact × urgency → priority.
    pub priority_matrix: PriorityMatrix,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Stream version (the ETag).
    pub version: i64,
}

const USER_COLUMNS: &str = "SELECT r.id, r.tenant_id, r.username, r.username_canonical, \
     r.email, r.first_name, r.last_name, r.phone, r.department, r.role, r.custom_role_id, \
     r.is_active, \
     r.created_at, r.updated_at, r.version FROM rm_users r";
const TEAM_COLUMNS: &str = "SELECT r.id, r.name, r.manager_id, r.description, r.members, \
     r.is_active, r.created_at, r.updated_at, r.version FROM rm_teams r";
const CATEGORY_COLUMNS: &str = "SELECT r.id, r.name, r.parent_id, r.description, r.is_active, \
     r.created_at, r.updated_at, r.version FROM rm_categories r";
const TENANT_COLUMNS: &str = "SELECT r.id, r.name, r.is_active, r.priority_matrix, \
     r.created_at, r.updated_at, r.version FROM rm_tenants r";

fn user_row(row: &PgRow) -> Result<UserView> {
    Ok(UserView {
        id: UserId(row.try_get("id")?),
        tenant_id: TenantId(row.try_get("tenant_id")?),
        username: row.try_get("username")?,
        username_canonical: row.try_get("username_canonical")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        phone: row.try_get("phone")?,
        department: row.try_get("department")?,
        role: parse_col(row, "role")?,
        custom_role_id: row
            .try_get::<Option<Uuid>, _>("custom_role_id")?
            .map(RoleId),
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

fn team_row(row: &PgRow) -> Result<TeamView> {
    let members: Vec<Uuid> = row.try_get("members")?;
    Ok(TeamView {
        id: TeamId(row.try_get("id")?),
        name: row.try_get("name")?,
        manager_id: row.try_get::<Option<Uuid>, _>("manager_id")?.map(UserId),
        description: row.try_get("description")?,
        members: members.into_iter().map(UserId).collect(),
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

fn category_row(row: &PgRow) -> Result<CategoryView> {
    Ok(CategoryView {
        id: CategoryId(row.try_get("id")?),
        name: row.try_get("name")?,
        parent_id: row.try_get::<Option<Uuid>, _>("parent_id")?.map(CategoryId),
        description: row.try_get("description")?,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

fn tenant_row(row: &PgRow) -> Result<TenantView> {
    let matrix: serde_json::Value = row.try_get("priority_matrix")?;
    Ok(TenantView {
        id: TenantId(row.try_get("id")?),
        name: row.try_get("name")?,
        is_active: row.try_get("is_active")?,
        priority_matrix: serde_json::from_value(matrix).map_err(|e| QueryError::Corrupt {
            column: "priority_matrix",
            message: e.to_string(),
        })?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

/// How a directory list is read: sorted by a text key, then id (both ascending).
struct KeyedList<T> {
    /// `SELECT <columns> FROM <table> r`.
    columns: &'static str,
    /// `<table> r`, for the count.
    table: &'static str,
    /// The tenant column, or `None` for the deployment-wide tenant list.
    tenant_column: Option<&'static str>,
    /// The sort key column.
    key: &'static str,
    /// The cursor tag.
    sort: &'static str,
    map: fn(&PgRow) -> Result<T>,
    key_of: fn(&T) -> (String, Uuid),
}

async fn list_keyed<T>(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    spec: KeyedList<T>,
    paging: Paging,
) -> Result<Page<T>> {
    let base = |qb: &mut QueryBuilder<'static, Postgres>, select: Select| {
        match select {
            Select::Count => qb.push("SELECT count(*) FROM ").push(spec.table),
            Select::Rows => qb.push(spec.columns),
        };
        qb.push(" WHERE true");
        if let (Some(col), Some(t)) = (spec.tenant_column, tenant) {
            qb.push(format_args!(" AND {col} = ")).push_bind(t.0);
        }
    };
    let after = |qb: &mut QueryBuilder<'static, Postgres>, c: &Cursor| -> Result<()> {
        let n = c.n.clone().ok_or(QueryError::InvalidCursor)?;
        qb.push(format_args!(" AND ({}, r.id) > (", spec.key))
            .push_bind(n)
            .push(", ")
            .push_bind(c.id)
            .push(")");
        Ok(())
    };
    let cursor_of = |item: &T| {
        let (n, id) = (spec.key_of)(item);
        let mut c = Cursor::new(spec.sort, id);
        c.n = Some(n);
        c
    };
    let order_by = format!("{} ASC, r.id ASC", spec.key);
    fetch_page(
        conn,
        &paging,
        ListQuery {
            sort: spec.sort,
            base: &base,
            after: &after,
            order_by: &order_by,
            map: &spec.map,
            cursor_of: &cursor_of,
        },
    )
    .await
}

/// The tenant's users, by username (case-insensitive), then id. Supports cursors.
pub async fn list_users(
    conn: &mut PgConnection,
    tenant: TenantId,
    paging: Paging,
) -> Result<Page<UserView>> {
    let spec = KeyedList {
        columns: USER_COLUMNS,
        table: "rm_users r",
        tenant_column: Some("r.tenant_id"),
        key: "r.username_canonical",
        sort: "username",
        map: user_row,
        key_of: |u: &UserView| (u.username_canonical.clone(), u.id.0),
    };
    list_keyed(conn, Some(tenant), spec, paging).await
}

/// The tenant's teams, by name, then id. Supports cursors.
pub async fn list_teams(
    conn: &mut PgConnection,
    tenant: TenantId,
    paging: Paging,
) -> Result<Page<TeamView>> {
    let spec = KeyedList {
        columns: TEAM_COLUMNS,
        table: "rm_teams r",
        tenant_column: Some("r.tenant_id"),
        key: "r.name",
        sort: "name",
        map: team_row,
        key_of: |t: &TeamView| (t.name.clone(), t.id.0),
    };
    list_keyed(conn, Some(tenant), spec, paging).await
}

/// The tenant's categories, by name, then id. Supports cursors.
pub async fn list_categories(
    conn: &mut PgConnection,
    tenant: TenantId,
    paging: Paging,
) -> Result<Page<CategoryView>> {
    let spec = KeyedList {
        columns: CATEGORY_COLUMNS,
        table: "rm_categories r",
        tenant_column: Some("r.tenant_id"),
        key: "r.name",
        sort: "name",
        map: category_row,
        key_of: |c: &CategoryView| (c.name.clone(), c.id.0),
    };
    list_keyed(conn, Some(tenant), spec, paging).await
}

/// Every tenant, by name, then id (deployment-wide: needs `eventdesk_system`). Supports
/// cursors.
pub async fn list_tenants(conn: &mut PgConnection, paging: Paging) -> Result<Page<TenantView>> {
    let spec = KeyedList {
        columns: TENANT_COLUMNS,
        table: "rm_tenants r",
        tenant_column: None,
        key: "r.name",
        sort: "name",
        map: tenant_row,
        key_of: |t: &TenantView| (t.name.clone(), t.id.0),
    };
    list_keyed(conn, None, spec, paging).await
}

/// One row by `(tenant, id)`.
async fn get_one<T>(
    conn: &mut PgConnection,
    columns: &'static str,
    tenant_column: &'static str,
    tenant: Uuid,
    id: Uuid,
    map: fn(&PgRow) -> Result<T>,
) -> Result<Option<T>> {
    let mut qb = QueryBuilder::<Postgres>::new(columns);
    qb.push(format_args!(" WHERE {tenant_column} = "))
        .push_bind(tenant)
        .push(" AND r.id = ")
        .push_bind(id);
    qb.build()
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(map)
        .transpose()
}

/// A user of the tenant.
pub async fn get_user(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
) -> Result<Option<UserView>> {
    get_one(conn, USER_COLUMNS, "r.tenant_id", tenant.0, id.0, user_row).await
}

/// A team of the tenant.
pub async fn get_team(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: TeamId,
) -> Result<Option<TeamView>> {
    get_one(conn, TEAM_COLUMNS, "r.tenant_id", tenant.0, id.0, team_row).await
}

/// A category of the tenant.
pub async fn get_category(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: CategoryId,
) -> Result<Option<CategoryView>> {
    get_one(
        conn,
        CATEGORY_COLUMNS,
        "r.tenant_id",
        tenant.0,
        id.0,
        category_row,
    )
    .await
}

/// A tenant (as `eventdesk_app`, visible only inside a transaction scoped to that tenant).
pub async fn get_tenant(conn: &mut PgConnection, id: TenantId) -> Result<Option<TenantView>> {
    get_one(conn, TENANT_COLUMNS, "r.id", id.0, id.0, tenant_row).await
}

/// The user with this canonical (lower-cased, `Username::canonical`) login name, in any
/// tenant — for login. Deployment-wide: needs `eventdesk_system`.
pub async fn get_user_by_username(
    conn: &mut PgConnection,
    username_canonical: &str,
) -> Result<Option<UserAuthRow>> {
    let row = sqlx::query(
        "SELECT tenant_id, id, username, role, custom_role_id, is_active, password_hash \
         FROM rm_users \
         WHERE username_canonical = $1",
    )
    .bind(username_canonical)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(UserAuthRow {
            tenant_id: TenantId(r.try_get("tenant_id")?),
            id: UserId(r.try_get("id")?),
            username: r.try_get("username")?,
            role: parse_col(&r, "role")?,
            custom_role_id: r.try_get::<Option<Uuid>, _>("custom_role_id")?.map(RoleId),
            is_active: r.try_get("is_active")?,
            password_hash: r.try_get("password_hash")?,
        })
    })
    .transpose()
}

/// Whether a user of any tenant already has this canonical username or this (lower-cased)
/// e-mail — the registration check. Deployment-wide: needs `eventdesk_system`.
pub async fn username_or_email_taken(
    conn: &mut PgConnection,
    username_canonical: &str,
    email_lower: &str,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rm_users \
         WHERE username_canonical = $1 OR lower(email) = lower($2))",
    )
    .bind(username_canonical)
    .bind(email_lower)
    .fetch_one(conn)
    .await?)
}

/// A custom role of a tenant, as listed and shown. (The built-in roles are not stored: their
/// permissions are the RBAC matrix, `eventdesk_auth::rbac::MATRIX`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleView {
    /// Id.
    pub id: RoleId,
    /// Name (unique in the tenant among active roles, case-insensitively).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// `resource:action` permissions, sorted.
    pub permissions: Vec<String>,
    /// Whether holders hold its permissions (false once deleted).
    pub is_active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Stream version (the ETag).
    pub version: i64,
}

const ROLE_COLUMNS: &str = "SELECT r.id, r.name, r.description, r.permissions, r.is_active, \
     r.created_at, r.updated_at, r.version FROM rm_roles r";

fn role_row(row: &PgRow) -> Result<RoleView> {
    let mut permissions: Vec<String> = row.try_get("permissions")?;
    permissions.sort();
    Ok(RoleView {
        id: RoleId(row.try_get("id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        permissions,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

/// A custom role of the tenant (active or deactivated).
pub async fn get_role(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: RoleId,
) -> Result<Option<RoleView>> {
    get_one(conn, ROLE_COLUMNS, "r.tenant_id", tenant.0, id.0, role_row).await
}

/// The tenant's custom roles (active and deactivated), by name, then id, as the other
/// directory lists. Supports cursors.
pub async fn list_roles(
    conn: &mut PgConnection,
    tenant: TenantId,
    paging: Paging,
) -> Result<Page<RoleView>> {
    let spec = KeyedList {
        columns: ROLE_COLUMNS,
        table: "rm_roles r",
        tenant_column: Some("r.tenant_id"),
        key: "r.name",
        sort: "name",
        map: role_row,
        key_of: |r: &RoleView| (r.name.clone(), r.id.0),
    };
    list_keyed(conn, Some(tenant), spec, paging).await
}
