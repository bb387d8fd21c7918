//! Queries over `rm_problems` (ADR 0021): the problem list and detail, the known-error
//! database, and the two joins the incident detail shows — the problem an incident is linked
//! to, and the known errors whose category or configuration item match it.
//!
//! A row is turned back into the domain's [`Problem`] through `to_jsonb(row)` (the columns are
//! its fields; the generated `search_text` is ignored), so the mapping exists once. `q` is a
//! case-insensitive substring (any script, Japanese included; `%`, `_` and `\` match
//! literally) of the title, description, root cause and workaround, found as for incidents:
//! through the `SECURITY DEFINER` function `eventdesk_problem_search` and its trigram index
//! (migration 0021), which checks the transaction's tenant scope itself. A call with `q` needs
//! a transaction scoped with [`super::scope_to_tenant`].

use super::paging::{Cursor, ListQuery, Page, Paging, Select, fetch_page};
use super::{QueryError, Result};
use chrono::{DateTime, Utc};
use eventdesk_domain::problem::{Problem, ProblemAction, ProblemStatus};
use eventdesk_domain::values::Priority;
use eventdesk_domain::{CategoryId, CiId, IncidentId, ProblemId, TenantId, UserId};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

/// A problem as the API shows it: the domain state plus its flags and version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemView {
    /// The problem's fields.
    #[serde(flatten)]
    pub problem: Problem,
    /// Whether it is in the known-error database (published and not closed).
    pub known_error: bool,
    /// The actions its status allows now.
    pub allowed_actions: Vec<ProblemAction>,
    /// Stream version (the ETag).
    pub version: i64,
}

/// A known error as listed and suggested: what the desk needs to apply the workaround.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownErrorView {
    /// The problem's id.
    pub problem_id: ProblemId,
    /// Title.
    pub title: String,
    /// The problem's status (`known_error` or `resolved`).
    pub status: ProblemStatus,
    /// Root cause, if known.
    pub root_cause: Option<String>,
    /// The workaround.
    pub workaround: Option<String>,
    /// Category.
    pub category_id: Option<CategoryId>,
    /// Configuration item.
    pub ci_id: Option<CiId>,
    /// When it was published.
    pub known_error_at: DateTime<Utc>,
}

/// List filters. Several values of one field mean OR; different fields combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProblemFilter {
    /// Any of these statuses.
    pub status: Vec<ProblemStatus>,
    /// Any of these priorities.
    pub priority: Vec<Priority>,
    /// Assigned to.
    pub assignee_id: Option<UserId>,
    /// Category.
    pub category_id: Option<CategoryId>,
    /// Configuration item.
    pub ci_id: Option<CiId>,
    /// Linked to this incident.
    pub incident_id: Option<IncidentId>,
    /// Substring of title, description, root cause or workaround.
    pub q: Option<String>,
}

const COLUMNS: &str = "SELECT to_jsonb(r) - 'tenant_id' - 'version' AS state, r.version, \
     r.id, r.created_at FROM rm_problems r";

fn view(row: &PgRow) -> Result<ProblemView> {
    let state: serde_json::Value = row.try_get("state")?;
    let problem: Problem = serde_json::from_value(state).map_err(|e| QueryError::Corrupt {
        column: "rm_problems",
        message: e.to_string(),
    })?;
    Ok(ProblemView {
        known_error: problem.is_known_error() && problem.status != ProblemStatus::Closed,
        allowed_actions: problem.allowed_actions(),
        problem,
        version: row.try_get("version")?,
    })
}

/// `q` through `eventdesk_problem_search` (migration 0021): the trigram index under RLS.
fn push_q(qb: &mut QueryBuilder<'static, Postgres>, tenant: TenantId, q: &str) {
    qb.push(" AND r.id IN (SELECT s.id FROM eventdesk_problem_search(")
        .push_bind(tenant.0)
        .push(", ")
        .push_bind(q.to_owned())
        .push(") AS s)");
}

/// The tenant's problems, newest first, filtered. Page mode counts exactly.
pub async fn list_problems(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &ProblemFilter,
    paging: Paging,
) -> Result<Page<ProblemView>> {
    let f = filter.clone();
    let base = move |qb: &mut QueryBuilder<'static, Postgres>, select: Select| {
        match select {
            Select::Count => qb.push("SELECT count(*) FROM rm_problems r"),
            Select::Rows => qb.push(COLUMNS),
        };
        qb.push(" WHERE r.tenant_id = ").push_bind(tenant.0);
        if !f.status.is_empty() {
            let v: Vec<String> = f.status.iter().map(|s| s.as_str().to_owned()).collect();
            qb.push(" AND r.status = ANY(").push_bind(v).push(")");
        }
        if !f.priority.is_empty() {
            let v: Vec<String> = f.priority.iter().map(|s| s.as_str().to_owned()).collect();
            qb.push(" AND r.priority = ANY(").push_bind(v).push(")");
        }
        if let Some(x) = f.assignee_id {
            qb.push(" AND r.assignee_id = ").push_bind(x.0);
        }
        if let Some(x) = f.category_id {
            qb.push(" AND r.category_id = ").push_bind(x.0);
        }
        if let Some(x) = f.ci_id {
            qb.push(" AND r.ci_id = ").push_bind(x.0);
        }
        if let Some(x) = f.incident_id {
            qb.push(" AND r.incident_ids @> ARRAY[")
                .push_bind(x.0)
                .push("]::uuid[]");
        }
        if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            push_q(qb, tenant, q);
        }
    };
    let after = |qb: &mut QueryBuilder<'static, Postgres>, c: &Cursor| -> Result<()> {
        let t = c.t.ok_or(QueryError::InvalidCursor)?;
        qb.push(" AND (r.created_at, r.id) < (")
            .push_bind(t)
            .push(", ")
            .push_bind(c.id)
            .push(")");
        Ok(())
    };
    let cursor_of = |p: &ProblemView| {
        let mut c = Cursor::new("-created_at", p.problem.id.0);
        c.t = Some(p.problem.created_at);
        c
    };
    fetch_page(
        conn,
        &paging,
        ListQuery {
            sort: "-created_at",
            base: &base,
            after: &after,
            order_by: "r.created_at DESC, r.id DESC",
            map: &view,
            cursor_of: &cursor_of,
        },
    )
    .await
}

/// A problem of the tenant.
pub async fn get_problem(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ProblemId,
) -> Result<Option<ProblemView>> {
    let mut qb = QueryBuilder::<Postgres>::new(COLUMNS);
    qb.push(" WHERE r.tenant_id = ")
        .push_bind(tenant.0)
        .push(" AND r.id = ")
        .push_bind(id.0);
    qb.build()
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(view)
        .transpose()
}

const KNOWN_ERROR_COLUMNS: &str = "SELECT r.id, r.title, r.status, r.root_cause, r.workaround, \
     r.category_id, r.ci_id, r.known_error_at FROM rm_problems r";

/// Only published, not closed problems (the partial indexes of migration 0021).
const IN_KEDB: &str = " AND r.known_error_at IS NOT NULL AND r.status <> 'closed'";

fn known_error(row: &PgRow) -> Result<KnownErrorView> {
    let status: String = row.try_get("status")?;
    Ok(KnownErrorView {
        problem_id: ProblemId(row.try_get("id")?),
        title: row.try_get("title")?,
        status: status.parse().map_err(|_| QueryError::Corrupt {
            column: "status",
            message: status.clone(),
        })?,
        root_cause: row.try_get("root_cause")?,
        workaround: row.try_get("workaround")?,
        category_id: row
            .try_get::<Option<uuid::Uuid>, _>("category_id")?
            .map(CategoryId),
        ci_id: row.try_get::<Option<uuid::Uuid>, _>("ci_id")?.map(CiId),
        known_error_at: row.try_get("known_error_at")?,
    })
}

/// The known-error database of the tenant, newest publication first; `q` searches title,
/// description, root cause and workaround.
pub async fn list_known_errors(
    conn: &mut PgConnection,
    tenant: TenantId,
    q: Option<&str>,
    paging: Paging,
) -> Result<Page<KnownErrorView>> {
    let q = q
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned);
    let base = move |qb: &mut QueryBuilder<'static, Postgres>, select: Select| {
        match select {
            Select::Count => qb.push("SELECT count(*) FROM rm_problems r"),
            Select::Rows => qb.push(KNOWN_ERROR_COLUMNS),
        };
        qb.push(" WHERE r.tenant_id = ")
            .push_bind(tenant.0)
            .push(IN_KEDB);
        if let Some(q) = &q {
            push_q(qb, tenant, q);
        }
    };
    let after = |qb: &mut QueryBuilder<'static, Postgres>, c: &Cursor| -> Result<()> {
        let t = c.t.ok_or(QueryError::InvalidCursor)?;
        qb.push(" AND (r.known_error_at, r.id) < (")
            .push_bind(t)
            .push(", ")
            .push_bind(c.id)
            .push(")");
        Ok(())
    };
    let cursor_of = |k: &KnownErrorView| {
        let mut c = Cursor::new("-known_error_at", k.problem_id.0);
        c.t = Some(k.known_error_at);
        c
    };
    fetch_page(
        conn,
        &paging,
        ListQuery {
            sort: "-known_error_at",
            base: &base,
            after: &after,
            order_by: "r.known_error_at DESC, r.id DESC",
            map: &known_error,
            cursor_of: &cursor_of,
        },
    )
    .await
}

/// The problem incident `incident` is linked to, if any.
pub async fn problem_of_incident(
    conn: &mut PgConnection,
    tenant: TenantId,
    incident: IncidentId,
) -> Result<Option<ProblemId>> {
    let id: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT r.id FROM rm_problems r WHERE r.tenant_id = $1 AND r.incident_ids @> ARRAY[$2]::uuid[] \
         ORDER BY r.updated_at DESC LIMIT 1",
    )
    .bind(tenant.0)
    .bind(incident.0)
    .fetch_optional(conn)
    .await?;
    Ok(id.map(ProblemId))
}

/// The known errors whose category is `category` or whose configuration item is `ci` (the
/// workarounds suggested for an incident), newest publication first, at most 10.
pub async fn suggested_known_errors(
    conn: &mut PgConnection,
    tenant: TenantId,
    category: Option<CategoryId>,
    ci: Option<CiId>,
) -> Result<Vec<KnownErrorView>> {
    if category.is_none() && ci.is_none() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Postgres>::new(KNOWN_ERROR_COLUMNS);
    qb.push(" WHERE r.tenant_id = ")
        .push_bind(tenant.0)
        .push(IN_KEDB)
        .push(" AND (r.category_id = ")
        .push_bind(category.map(|c| c.0))
        .push(" OR r.ci_id = ")
        .push_bind(ci.map(|c| c.0))
        .push(") ORDER BY r.known_error_at DESC, r.id DESC LIMIT 10");
    qb.build()
        .fetch_all(conn)
        .await?
        .iter()
        .map(known_error)
        .collect()
}
