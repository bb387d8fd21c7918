//! Query functions over the read models. Each takes a `&mut PgConnection` and, except the few
//! deployment-wide look-ups named below, an explicit [`TenantId`] that every statement filters
//! on — in addition to row-level security, which hides other tenants' rows from
//! `eventdesk_app` sessions.
//!
//! **RLS and roles.** As `eventdesk_app`, a query sees rows only inside a transaction scoped
//! with [`scope_to_tenant`] (otherwise it sees nothing). The cross-tenant look-ups
//! ([`get_user_by_username`], [`username_or_email_taken`], [`list_tenants`]) must run on a
//! connection with the `eventdesk_system` role (BYPASSRLS).
//!
//! SQL is built with `sqlx::QueryBuilder` (lists have dynamic filters); every value is bound.

pub mod analytics;
pub mod as_of;
pub mod audit;
pub mod changes;
pub mod cmdb;
pub mod directory;
pub mod incidents;
pub mod paging;
pub mod problems;
pub mod sla_config;
pub mod sla_timers;

pub use directory::{
    CategoryView, TeamView, TenantView, UserAuthRow, UserView, get_category, get_team, get_tenant,
    get_user, get_user_by_username, list_categories, list_teams, list_tenants, list_users,
    username_or_email_taken,
};
pub use incidents::{
    ActorSummary, AttachmentView, IncidentDetail, IncidentFilter, IncidentHistoryEntry,
    IncidentListItem, IncidentPage, IncidentSort, NamedRef, UserSummary, WorkNoteView,
    find_incident_by_number, get_incident, list_incidents,
};
pub use paging::{CappedPagination, DEFAULT_LIMIT, MAX_LIMIT, Page, Pagination, Paging};

use eventdesk_domain::TenantId;
use sqlx::PgConnection;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The cursor is malformed or belongs to another sort (a client error: 422).
    #[error("invalid cursor")]
    InvalidCursor,
    /// Unknown sort name (a client error: 422).
    #[error("unknown sort {0:?}; expected one of {expected}", expected = IncidentSort::NAMES.join(", "))]
    InvalidSort(String),
    /// A read-model row holds a value the domain does not know (a server error).
    #[error("read model holds an unexpected value in {column}: {message}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Reading the event log failed (time travel reads it).
    #[error(transparent)]
    Store(#[from] eventdesk_store::StoreError),
}

/// `Result` with [`QueryError`].
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// Scopes the current transaction to `tenant` for row-level security
/// (`set_config('app.tenant_id', …, true)`). Call it first in every transaction that reads
/// read models as `eventdesk_app`; outside a transaction it has no lasting effect.
pub async fn scope_to_tenant(conn: &mut PgConnection, tenant: TenantId) -> Result<()> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.0.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Reads a text column and parses it with `FromStr` (domain enums).
pub(crate) fn parse_col<T>(row: &sqlx::postgres::PgRow, column: &'static str) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    use sqlx::Row;
    let s: String = row.try_get(column)?;
    s.parse().map_err(|e: T::Err| QueryError::Corrupt {
        column,
        message: e.to_string(),
    })
}

/// Reads an optional text column and parses it with `FromStr`.
pub(crate) fn parse_opt_col<T>(
    row: &sqlx::postgres::PgRow,
    column: &'static str,
) -> Result<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    use sqlx::Row;
    let s: Option<String> = row.try_get(column)?;
    s.map(|s| {
        s.parse().map_err(|e: T::Err| QueryError::Corrupt {
            column,
            message: e.to_string(),
        })
    })
    .transpose()
}
