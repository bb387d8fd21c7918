//! The tenants' SLA configuration: business-hours calendars and SLA policies
//! (`rm_sla_calendars`, `rm_sla_policies`), and [`load_sla_config`], everything the incident
//! command path and the SLA scheduler need to compute timers, in one round trip.

use super::paging::{Cursor, ListQuery, Select, fetch_page};
use super::{Page, Pagination, Paging, QueryError, Result};
use chrono::{DateTime, Utc};
use eventdesk_domain::sla::calendar::CalendarDefinition;
use eventdesk_domain::sla::policy::{PolicyCondition, SlaPolicy, SlaTarget};
use eventdesk_domain::{CalendarId, SlaPolicyId, TenantId};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use std::collections::HashMap;
use uuid::Uuid;

/// The name the built-in calendar is listed under.
pub const BUILTIN_CALENDAR_NAME: &str = "24x7";

/// A business-hours calendar as listed and shown: the definition's fields are inlined
/// (`time_zone`, `weekly_hours`, `holidays`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlaCalendarView {
    /// Id; `null` for the built-in 24x7 calendar.
    pub id: Option<CalendarId>,
    /// Name (`24x7` for the built-in calendar).
    pub name: String,
    /// Zone, weekly hours and holidays.
    #[serde(flatten)]
    pub definition: CalendarDefinition,
    /// Whether it is the built-in 24x7 calendar (not stored, not editable).
    pub builtin: bool,
    /// Whether policies may reference it.
    pub active: bool,
    /// Created (`null` for the built-in calendar).
    pub created_at: Option<DateTime<Utc>>,
    /// Last change (`null` for the built-in calendar).
    pub updated_at: Option<DateTime<Utc>>,
    /// Version (the ETag; timers record it). 0 for the built-in calendar.
    pub version: i64,
}

impl SlaCalendarView {
    /// The built-in calendar: open all the time, in UTC, without holidays. Policies and
    /// targets without a calendar are measured on it.
    pub fn builtin() -> Self {
        Self {
            id: None,
            name: BUILTIN_CALENDAR_NAME.to_owned(),
            definition: CalendarDefinition::twenty_four_seven(),
            builtin: true,
            active: true,
            created_at: None,
            updated_at: None,
            version: 0,
        }
    }
}

/// An SLA policy as listed and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlaPolicyView {
    /// Id.
    pub id: SlaPolicyId,
    /// Name.
    pub name: String,
    /// Order of evaluation: lower first (ties: older first).
    pub rank: i32,
    /// Which incidents it applies to.
    pub condition: PolicyCondition,
    /// The calendar of targets that name none (`null` = 24x7).
    pub calendar_id: Option<CalendarId>,
    /// Targets per priority, most urgent first.
    pub targets: Vec<SlaTarget>,
    /// Whether it is in force.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Version (the ETag; timers record it).
    pub version: i64,
}

impl SlaPolicyView {
    /// The policy as selection and timers use it.
    pub fn policy(&self) -> SlaPolicy {
        SlaPolicy {
            id: Some(self.id),
            name: self.name.clone(),
            rank: self.rank,
            condition: self.condition.clone(),
            calendar_id: self.calendar_id,
            targets: self.targets.clone(),
            active: self.active,
            version: u32::try_from(self.version).unwrap_or(u32::MAX),
        }
    }

    /// Every calendar the policy refers to, with the field that names it
    /// (`calendar_id`, `targets[i].calendar_id`).
    pub fn calendar_refs(&self) -> Vec<(String, CalendarId)> {
        calendar_refs(self.calendar_id, &self.targets)
    }
}

/// The calendars a policy refers to, with the field that names each.
pub fn calendar_refs(
    calendar_id: Option<CalendarId>,
    targets: &[SlaTarget],
) -> Vec<(String, CalendarId)> {
    calendar_id
        .map(|c| ("calendar_id".to_owned(), c))
        .into_iter()
        .chain(targets.iter().enumerate().filter_map(|(i, t)| {
            t.calendar_id
                .map(|c| (format!("targets[{i}].calendar_id"), c))
        }))
        .collect()
}

fn corrupt(column: &'static str, e: impl std::fmt::Display) -> QueryError {
    QueryError::Corrupt {
        column,
        message: e.to_string(),
    }
}

fn json_col<T: serde::de::DeserializeOwned>(row: &PgRow, column: &'static str) -> Result<T> {
    let v: serde_json::Value = row.try_get(column)?;
    serde_json::from_value(v).map_err(|e| corrupt(column, e))
}

const CALENDAR_COLUMNS: &str = "SELECT r.id, r.name, r.definition, r.active, r.created_at, \
     r.updated_at, r.version FROM rm_sla_calendars r";
const POLICY_COLUMNS: &str = "SELECT r.id, r.name, r.rank, r.condition, r.calendar_id, \
     r.targets, r.active, r.created_at, r.updated_at, r.version FROM rm_sla_policies r";

fn calendar_row(row: &PgRow) -> Result<SlaCalendarView> {
    Ok(SlaCalendarView {
        id: Some(CalendarId(row.try_get("id")?)),
        name: row.try_get("name")?,
        definition: json_col(row, "definition")?,
        builtin: false,
        active: row.try_get("active")?,
        created_at: Some(row.try_get("created_at")?),
        updated_at: Some(row.try_get("updated_at")?),
        version: row.try_get("version")?,
    })
}

fn policy_row(row: &PgRow) -> Result<SlaPolicyView> {
    Ok(SlaPolicyView {
        id: SlaPolicyId(row.try_get("id")?),
        name: row.try_get("name")?,
        rank: row.try_get("rank")?,
        condition: json_col(row, "condition")?,
        calendar_id: row
            .try_get::<Option<Uuid>, _>("calendar_id")?
            .map(CalendarId),
        targets: json_col(row, "targets")?,
        active: row.try_get("active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

/// The sort tag of calendar cursors.
const CALENDAR_SORT: &str = "name";

/// The tenant's calendars by name, then id — preceded by the built-in 24x7 calendar, which is
/// the first item of the first page (page mode: it counts in `total_items`; cursor mode: the
/// page without a cursor starts with it). Active and deactivated calendars are listed.
pub async fn list_calendars(
    conn: &mut PgConnection,
    tenant: TenantId,
    paging: Paging,
) -> Result<Page<SlaCalendarView>> {
    let limit = paging.limit();
    // Where the stored rows start, and how many of them this page holds.
    let (first_page, offset, after): (bool, i64, Option<Cursor>) = match &paging {
        Paging::Page { page, .. } => {
            let start = (i64::from((*page).max(1)) - 1) * i64::from(limit);
            (start == 0, (start - 1).max(0), None)
        }
        Paging::Cursor { after: None, .. } => (true, 0, None),
        Paging::Cursor { after: Some(c), .. } => {
            let c = Cursor::decode(c, CALENDAR_SORT)?;
            if c.n.is_none() {
                return Err(QueryError::InvalidCursor);
            }
            (false, 0, Some(c))
        }
    };
    let stored = i64::from(limit) - i64::from(first_page);
    let mut qb = QueryBuilder::<Postgres>::new(CALENDAR_COLUMNS);
    qb.push(" WHERE r.tenant_id = ").push_bind(tenant.0);
    if let Some(c) = &after {
        qb.push(" AND (r.name, r.id) > (")
            .push_bind(c.n.clone().unwrap_or_default())
            .push(", ")
            .push_bind(c.id)
            .push(")");
    }
    qb.push(" ORDER BY r.name ASC, r.id ASC LIMIT ")
        .push_bind(stored + 1);
    if offset > 0 {
        qb.push(" OFFSET ").push_bind(offset);
    }
    let mut rows = qb
        .build()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(calendar_row)
        .collect::<Result<Vec<_>>>()?;
    let has_next = rows.len() as i64 > stored;
    rows.truncate(usize::try_from(stored).unwrap_or(0));
    let mut data = Vec::with_capacity(rows.len() + 1);
    if first_page {
        data.push(SlaCalendarView::builtin());
    }
    data.extend(rows);
    let pagination = match &paging {
        Paging::Page { page, .. } => {
            let total: i64 =
                sqlx::query_scalar("SELECT count(*) FROM rm_sla_calendars WHERE tenant_id = $1")
                    .bind(tenant.0)
                    .fetch_one(&mut *conn)
                    .await?;
            Pagination::page(
                *page,
                limit,
                u64::try_from(total).unwrap_or(0) + 1,
                has_next,
            )
        }
        Paging::Cursor { after: c, .. } => {
            // After the built-in calendar alone, continue from the start of the stored ones.
            let next = has_next.then(|| {
                let mut cur = Cursor::new(CALENDAR_SORT, Uuid::nil());
                cur.n = Some(String::new());
                if let Some(last) = data.last()
                    && let Some(id) = last.id
                {
                    cur.id = id.0;
                    cur.n = Some(last.name.clone());
                }
                cur.encode()
            });
            Pagination::cursor(limit, c.is_some(), has_next, next)
        }
    };
    Ok(Page { data, pagination })
}

/// A calendar of the tenant (active or not).
pub async fn get_calendar(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: CalendarId,
) -> Result<Option<SlaCalendarView>> {
    let mut qb = QueryBuilder::<Postgres>::new(CALENDAR_COLUMNS);
    qb.push(" WHERE r.tenant_id = ")
        .push_bind(tenant.0)
        .push(" AND r.id = ")
        .push_bind(id.0);
    qb.build()
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(calendar_row)
        .transpose()
}

/// The sort tag of policy cursors (the rank travels in the cursor's name key, as text).
const POLICY_SORT: &str = "rank";

/// The tenant's policies in evaluation order: by rank, then id. Active and deactivated
/// policies are listed. Supports cursors.
pub async fn list_policies(
    conn: &mut PgConnection,
    tenant: TenantId,
    paging: Paging,
) -> Result<Page<SlaPolicyView>> {
    let base = |qb: &mut QueryBuilder<'static, Postgres>, select: Select| {
        match select {
            Select::Count => qb.push("SELECT count(*) FROM rm_sla_policies r"),
            Select::Rows => qb.push(POLICY_COLUMNS),
        };
        qb.push(" WHERE r.tenant_id = ").push_bind(tenant.0);
    };
    let after = |qb: &mut QueryBuilder<'static, Postgres>, c: &Cursor| -> Result<()> {
        let rank: i32 =
            c.n.as_deref()
                .and_then(|n| n.parse().ok())
                .ok_or(QueryError::InvalidCursor)?;
        qb.push(" AND (r.rank, r.id) > (")
            .push_bind(rank)
            .push(", ")
            .push_bind(c.id)
            .push(")");
        Ok(())
    };
    let cursor_of = |p: &SlaPolicyView| {
        let mut c = Cursor::new(POLICY_SORT, p.id.0);
        c.n = Some(p.rank.to_string());
        c
    };
    fetch_page(
        conn,
        &paging,
        ListQuery {
            sort: POLICY_SORT,
            base: &base,
            after: &after,
            order_by: "r.rank ASC, r.id ASC",
            map: &policy_row,
            cursor_of: &cursor_of,
        },
    )
    .await
}

/// A policy of the tenant (active or not).
pub async fn get_policy(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SlaPolicyId,
) -> Result<Option<SlaPolicyView>> {
    let mut qb = QueryBuilder::<Postgres>::new(POLICY_COLUMNS);
    qb.push(" WHERE r.tenant_id = ")
        .push_bind(tenant.0)
        .push(" AND r.id = ")
        .push_bind(id.0);
    qb.build()
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(policy_row)
        .transpose()
}

/// The active policies of the tenant that refer to `calendar` (as their own calendar or a
/// target's), in evaluation order.
pub async fn active_policies_using_calendar(
    conn: &mut PgConnection,
    tenant: TenantId,
    calendar: CalendarId,
) -> Result<Vec<SlaPolicyId>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT r.id FROM rm_sla_policies r \
         WHERE r.tenant_id = $1 AND r.active \
           AND (r.calendar_id = $2 \
                OR r.targets @> jsonb_build_array(jsonb_build_object('calendar_id', $2::text))) \
         ORDER BY r.rank, r.id",
    )
    .bind(tenant.0)
    .bind(calendar.0)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(SlaPolicyId).collect())
}

/// Everything needed to compute an incident's SLA timers in one tenant.
#[derive(Debug, Clone, Default)]
pub struct SlaConfig {
    /// The active policies, sorted by `(rank, id)` (the order of [`select_policy`]).
    ///
    /// [`select_policy`]: eventdesk_domain::sla::policy::select_policy
    pub policies: Vec<SlaPolicy>,
    /// Every calendar of the tenant with its version — active and deactivated ones, since
    /// running timers may still be measured on a deactivated calendar.
    pub calendars: HashMap<CalendarId, (u32, CalendarDefinition)>,
}

#[derive(Deserialize)]
struct CalendarEntry {
    id: CalendarId,
    version: u32,
    definition: CalendarDefinition,
}

/// Loads the SLA configuration of `tenant` in one statement (one round trip). Call it inside a
/// transaction scoped to the tenant (`app.tenant_id` set, as for every query as
/// `eventdesk_app`) or on an `eventdesk_system` connection; either way only `tenant`'s rows
/// are read. A stored row the domain cannot read is a decode error.
pub async fn load_sla_config(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<SlaConfig, sqlx::Error> {
    let row = sqlx::query(
        "SELECT \
           (SELECT coalesce(jsonb_agg(jsonb_build_object( \
                      'id', p.id, 'name', p.name, 'rank', p.rank, 'condition', p.condition, \
                      'calendar_id', p.calendar_id, 'targets', p.targets, 'active', p.active, \
                      'version', p.version) ORDER BY p.rank, p.id), '[]'::jsonb) \
              FROM rm_sla_policies p WHERE p.tenant_id = $1 AND p.active), \
           (SELECT coalesce(jsonb_agg(jsonb_build_object( \
                      'id', c.id, 'version', c.version, 'definition', c.definition)), \
                    '[]'::jsonb) \
              FROM rm_sla_calendars c WHERE c.tenant_id = $1)",
    )
    .bind(tenant.0)
    .fetch_one(conn)
    .await?;
    let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    let policies: Vec<SlaPolicy> =
        serde_json::from_value(row.try_get::<serde_json::Value, _>(0)?).map_err(decode)?;
    let calendars: Vec<CalendarEntry> =
        serde_json::from_value(row.try_get::<serde_json::Value, _>(1)?).map_err(decode)?;
    Ok(SlaConfig {
        policies,
        calendars: calendars
            .into_iter()
            .map(|c| (c.id, (c.version, c.definition)))
            .collect(),
    })
}
