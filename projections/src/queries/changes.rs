//! Queries over `rm_changes` (ADR 0022): the change list and detail, the calendar, and the
//! conflicts between change windows.
//!
//! **Conflicts.** Two changes conflict when their windows overlap (`[start, end)`), one of
//! them is scheduled (or being implemented), and they touch the same configuration item or
//! items related by dependency: one's CI depends on (or runs on) the other's, directly or
//! transitively (up to [`MAX_DEPENDENCY_DEPTH`] hops), read from the CMDB relationship read
//! model. The related items of a change are found with two recursive CTEs (dependents and
//! dependencies of its CIs).

use super::paging::{Cursor, ListQuery, Page, Paging, Select, fetch_page};
use super::{QueryError, Result};
use chrono::{DateTime, Utc};
use eventdesk_domain::change_request::{
    ChangeAction, ChangeRequest, ChangeStatus, ChangeType, Risk,
};
use eventdesk_domain::{ChangeId, CiId, TenantId};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

/// How many dependency hops the conflict search follows.
pub const MAX_DEPENDENCY_DEPTH: i32 = 10;

/// A change as the API shows it: the domain state plus its version and allowed actions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeView {
    /// The change's fields.
    #[serde(flatten)]
    pub change: ChangeRequest,
    /// The actions the state machine allows now.
    pub allowed_actions: Vec<ChangeAction>,
    /// Stream version (the ETag).
    pub version: i64,
}

/// A change in the calendar and in conflict lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeSummary {
    /// Id.
    pub id: ChangeId,
    /// Title.
    pub title: String,
    /// Type.
    pub change_type: ChangeType,
    /// Status.
    pub status: ChangeStatus,
    /// Risk.
    pub risk: Risk,
    /// Window start.
    pub planned_start: DateTime<Utc>,
    /// Window end.
    pub planned_end: DateTime<Utc>,
    /// CIs.
    pub ci_ids: Vec<CiId>,
}

/// A change and the scheduled changes it conflicts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictView {
    /// The change.
    pub change: ChangeSummary,
    /// The scheduled changes whose window overlaps on the same or related CIs.
    pub conflicts_with: Vec<ChangeSummary>,
}

/// List filters. Several values of one field mean OR; fields combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Any of these statuses.
    pub status: Vec<ChangeStatus>,
    /// Any of these types.
    pub change_type: Vec<ChangeType>,
    /// Any of these risks.
    pub risk: Vec<Risk>,
    /// Touching this CI.
    pub ci_id: Option<CiId>,
}

const COLUMNS: &str = "SELECT to_jsonb(r) - 'tenant_id' - 'version' AS state, r.version \
     FROM rm_changes r";

fn view(row: &PgRow) -> Result<ChangeView> {
    let state: serde_json::Value = row.try_get("state")?;
    let change: ChangeRequest = serde_json::from_value(state).map_err(|e| QueryError::Corrupt {
        column: "rm_changes",
        message: e.to_string(),
    })?;
    Ok(ChangeView {
        allowed_actions: change.allowed_actions(),
        change,
        version: row.try_get("version")?,
    })
}

fn parse<T: std::str::FromStr>(row: &PgRow, column: &'static str) -> Result<T> {
    let s: String = row.try_get(column)?;
    s.parse().map_err(|_| QueryError::Corrupt {
        column,
        message: s.clone(),
    })
}

const SUMMARY: &str = "c.id, c.title, c.change_type, c.status, c.risk, c.planned_start, \
     c.planned_end, c.ci_ids";

fn summary(row: &PgRow) -> Result<ChangeSummary> {
    let cis: Vec<Uuid> = row.try_get("ci_ids")?;
    Ok(ChangeSummary {
        id: ChangeId(row.try_get("id")?),
        title: row.try_get("title")?,
        change_type: parse(row, "change_type")?,
        status: parse(row, "status")?,
        risk: parse(row, "risk")?,
        planned_start: row.try_get("planned_start")?,
        planned_end: row.try_get("planned_end")?,
        ci_ids: cis.into_iter().map(CiId).collect(),
    })
}

/// The tenant's changes, newest first, filtered. Page mode counts exactly.
pub async fn list_changes(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &ChangeFilter,
    paging: Paging,
) -> Result<Page<ChangeView>> {
    let f = filter.clone();
    let base = move |qb: &mut QueryBuilder<'static, Postgres>, select: Select| {
        match select {
            Select::Count => qb.push("SELECT count(*) FROM rm_changes r"),
            Select::Rows => qb.push(COLUMNS),
        };
        qb.push(" WHERE r.tenant_id = ").push_bind(tenant.0);
        if !f.status.is_empty() {
            let v: Vec<String> = f.status.iter().map(|s| s.as_str().to_owned()).collect();
            qb.push(" AND r.status = ANY(").push_bind(v).push(")");
        }
        if !f.change_type.is_empty() {
            let v: Vec<String> = f
                .change_type
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect();
            qb.push(" AND r.change_type = ANY(").push_bind(v).push(")");
        }
        if !f.risk.is_empty() {
            let v: Vec<String> = f.risk.iter().map(|s| s.as_str().to_owned()).collect();
            qb.push(" AND r.risk = ANY(").push_bind(v).push(")");
        }
        if let Some(ci) = f.ci_id {
            qb.push(" AND r.ci_ids @> ARRAY[")
                .push_bind(ci.0)
                .push("]::uuid[]");
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
    let cursor_of = |v: &ChangeView| {
        let mut c = Cursor::new("-created_at", v.change.id.0);
        c.t = Some(v.change.created_at);
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

/// A change of the tenant.
pub async fn get_change(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ChangeId,
) -> Result<Option<ChangeView>> {
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

/// The changes whose window overlaps `[from, to)` (cancelled ones left out), by start.
pub async fn calendar(
    conn: &mut PgConnection,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ChangeSummary>> {
    sqlx::query(&format!(
        "SELECT {SUMMARY} FROM rm_changes c WHERE c.tenant_id = $1 \
         AND c.planned_start IS NOT NULL AND c.planned_end IS NOT NULL \
         AND c.planned_start < $3 AND $2 < c.planned_end AND c.status <> 'cancelled' \
         ORDER BY c.planned_start, c.id LIMIT 1000"
    ))
    .bind(tenant.0)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?
    .iter()
    .map(summary)
    .collect()
}

/// The scheduled (or in-implementation) changes other than `exclude` whose window overlaps
/// `[start, end)` and whose CIs are `cis` or related to them by dependency (module docs).
pub async fn conflicts_for(
    conn: &mut PgConnection,
    tenant: TenantId,
    exclude: ChangeId,
    cis: &[CiId],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<ChangeSummary>> {
    if cis.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = cis.iter().map(|c| c.0).collect();
    sqlx::query(&format!(
        "WITH RECURSIVE down(id, d) AS ( \
           SELECT x, 0 FROM unnest($2::uuid[]) AS x \
           UNION \
           SELECT r.source_id, down.d + 1 FROM down JOIN rm_ci_relationships r \
             ON r.tenant_id = $1 AND r.target_id = down.id AND r.deleted_at IS NULL \
             AND r.rel_type IN ('depends_on', 'runs_on') \
           WHERE down.d < $6 \
         ), up(id, d) AS ( \
           SELECT x, 0 FROM unnest($2::uuid[]) AS x \
           UNION \
           SELECT r.target_id, up.d + 1 FROM up JOIN rm_ci_relationships r \
             ON r.tenant_id = $1 AND r.source_id = up.id AND r.deleted_at IS NULL \
             AND r.rel_type IN ('depends_on', 'runs_on') \
           WHERE up.d < $6 \
         ), related AS (SELECT array_agg(DISTINCT id) AS ids FROM \
           (SELECT id FROM down UNION SELECT id FROM up) AS u) \
         SELECT {SUMMARY} FROM rm_changes c, related \
         WHERE c.tenant_id = $1 AND c.status IN ('scheduled', 'implement') AND c.id <> $3 \
         AND c.planned_start < $5 AND $4 < c.planned_end AND c.ci_ids && related.ids \
         ORDER BY c.planned_start, c.id"
    ))
    .bind(tenant.0)
    .bind(&ids)
    .bind(exclude.0)
    .bind(start)
    .bind(end)
    .bind(MAX_DEPENDENCY_DEPTH)
    .fetch_all(conn)
    .await?
    .iter()
    .map(summary)
    .collect()
}

/// Every open change with a window (draft to implement) that conflicts with at least one
/// scheduled change, with those changes; by start.
pub async fn all_conflicts(conn: &mut PgConnection, tenant: TenantId) -> Result<Vec<ConflictView>> {
    let candidates = sqlx::query(&format!(
        "SELECT {SUMMARY} FROM rm_changes c WHERE c.tenant_id = $1 \
         AND c.planned_start IS NOT NULL AND c.planned_end IS NOT NULL \
         AND c.status IN ('draft', 'assess', 'authorize', 'scheduled', 'implement') \
         AND cardinality(c.ci_ids) > 0 ORDER BY c.planned_start, c.id LIMIT 1000"
    ))
    .bind(tenant.0)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(summary)
    .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for change in candidates {
        let conflicts_with = conflicts_for(
            conn,
            tenant,
            change.id,
            &change.ci_ids,
            change.planned_start,
            change.planned_end,
        )
        .await?;
        if !conflicts_with.is_empty() {
            out.push(ConflictView {
                change,
                conflicts_with,
            });
        }
    }
    Ok(out)
}

/// The scheduled (or in-implementation) changes on each of `cis`, by CI (for the impact
/// analysis).
pub async fn scheduled_on(
    conn: &mut PgConnection,
    tenant: TenantId,
    cis: &[Uuid],
) -> Result<Vec<(Uuid, ChangeSummary)>> {
    if cis.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT x.ci, {SUMMARY} FROM unnest($2::uuid[]) AS x(ci) \
         JOIN rm_changes c ON c.tenant_id = $1 AND c.ci_ids @> ARRAY[x.ci] \
         AND c.status IN ('scheduled', 'implement') AND c.planned_start IS NOT NULL \
         AND c.planned_end IS NOT NULL ORDER BY c.planned_start, c.id"
    ))
    .bind(tenant.0)
    .bind(cis)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<Uuid, _>("ci")?, summary(r)?)))
        .collect()
}
