//! Queries over the SLA timer read model (`rm_sla_timers`).
//!
//! Rows hold the domain's [`SlaTimer`]; the figures that depend on the current instant
//! (business elapsed and remaining, percent) are computed by the caller with the timer's
//! calendar ([`SlaTimer::progress`]), since they change every second without any event.

use super::paging::{Cursor, ListQuery, Page, Paging, Select, fetch_page};
use super::{QueryError, Result};
use eventdesk_domain::sla::timer::SlaTimer;
use eventdesk_domain::{IncidentId, TenantId};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

/// Every cycle of every timer of one incident, response first, oldest cycle first.
pub async fn incident_timers(
    conn: &mut PgConnection,
    tenant: TenantId,
    incident: IncidentId,
) -> Result<Vec<SlaTimer>> {
    let rows = sqlx::query(
        "SELECT state FROM rm_sla_timers WHERE tenant_id = $1 AND incident_id = $2 \
         ORDER BY metric DESC, cycle",
    )
    .bind(tenant.0)
    .bind(incident.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(timer_of).collect()
}

fn timer_of(row: &PgRow) -> Result<SlaTimer> {
    let v: serde_json::Value = row.try_get("state")?;
    serde_json::from_value(v).map_err(|e| QueryError::Corrupt {
        column: "rm_sla_timers.state",
        message: e.to_string(),
    })
}

/// Which timers `GET /api/v1/sla/timers` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerState {
    /// Running, past 75 % (the 75 % warning was recorded), not breached.
    AtRisk,
    /// Breached and still running or paused.
    Breached,
    /// Paused (the incident is on hold).
    Paused,
    /// Running or paused.
    Active,
    /// Stopped: completed or cancelled.
    Stopped,
}

impl TimerState {
    /// The accepted `state=` values.
    pub const NAMES: &'static [&'static str] =
        &["at_risk", "breached", "paused", "active", "stopped"];

    /// Parses a `state=` value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "at_risk" => Self::AtRisk,
            "breached" => Self::Breached,
            "paused" => Self::Paused,
            "active" => Self::Active,
            "stopped" => Self::Stopped,
            _ => return None,
        })
    }

    fn condition(self) -> &'static str {
        match self {
            Self::AtRisk => "t.stage = 'in_progress' AND t.last_threshold >= 75 AND NOT t.breached",
            Self::Breached => "t.stage IN ('in_progress', 'paused') AND t.breached",
            Self::Paused => "t.stage = 'paused'",
            Self::Active => "t.stage IN ('in_progress', 'paused')",
            Self::Stopped => "t.stage IN ('completed', 'cancelled')",
        }
    }
}

/// Filters of the timer list (all optional; current cycles only).
#[derive(Debug, Clone, Default)]
pub struct TimerFilter {
    /// Which timers.
    pub state: Option<TimerState>,
    /// `response` or `resolution`.
    pub metric: Option<String>,
    /// The incident's priority.
    pub priority: Option<String>,
    /// The incident's team.
    pub team_id: Option<uuid::Uuid>,
    /// The incident's assignee.
    pub assignee_id: Option<uuid::Uuid>,
}

/// A timer with the incident it belongs to.
#[derive(Debug, Clone)]
pub struct TimerListItem {
    /// Incident id.
    pub incident_id: IncidentId,
    /// `INC000123`.
    pub incident_number: String,
    /// Title.
    pub title: String,
    /// Status.
    pub status: String,
    /// Priority.
    pub priority: String,
    /// The timer.
    pub timer: SlaTimer,
}

/// The tenant's current timers matching `filter`, by due time (soonest first), then incident
/// and metric. Page or cursor paging as for incidents.
pub async fn list_timers(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &TimerFilter,
    paging: Paging,
) -> Result<Page<TimerListItem>> {
    let filter = filter.clone();
    let base = move |q: &mut QueryBuilder<'static, Postgres>, select: Select| {
        match select {
            Select::Count => q.push("SELECT count(*) "),
            Select::Rows => q.push(
                "SELECT t.state, t.due_at, t.metric, t.incident_id, i.number, i.title, \
                 i.status, i.priority ",
            ),
        };
        q.push(
            "FROM rm_sla_timers t JOIN rm_incidents i \
             ON i.tenant_id = t.tenant_id AND i.id = t.incident_id \
             WHERE t.is_current AND t.tenant_id = ",
        )
        .push_bind(tenant.0);
        if let Some(s) = filter.state {
            q.push(" AND ").push(s.condition());
        }
        if let Some(m) = &filter.metric {
            q.push(" AND t.metric = ").push_bind(m.clone());
        }
        if let Some(p) = &filter.priority {
            q.push(" AND i.priority = ").push_bind(p.clone());
        }
        if let Some(t) = filter.team_id {
            q.push(" AND i.team_id = ").push_bind(t);
        }
        if let Some(a) = filter.assignee_id {
            q.push(" AND i.assignee_id = ").push_bind(a);
        }
    };
    let after = |q: &mut QueryBuilder<'static, Postgres>, c: &Cursor| -> Result<()> {
        let (Some(t), Some(n)) = (c.t, c.n.clone()) else {
            return Err(QueryError::InvalidCursor);
        };
        q.push(" AND (t.due_at, t.incident_id, t.metric) > (")
            .push_bind(t)
            .push(", ")
            .push_bind(c.id)
            .push(", ")
            .push_bind(n)
            .push(")");
        Ok(())
    };
    let map = |row: &PgRow| -> Result<TimerListItem> {
        Ok(TimerListItem {
            incident_id: IncidentId(row.try_get("incident_id")?),
            incident_number: row.try_get("number")?,
            title: row.try_get("title")?,
            status: row.try_get("status")?,
            priority: row.try_get("priority")?,
            timer: timer_of(row)?,
        })
    };
    let cursor_of = |item: &TimerListItem| {
        let mut c = Cursor::new("due_at", item.incident_id.0);
        c.t = Some(item.timer.due_at);
        c.n = Some(item.timer.metric.as_str().to_owned());
        c
    };
    fetch_page(
        conn,
        &paging,
        ListQuery {
            sort: "due_at",
            base: &base,
            after: &after,
            order_by: "t.due_at, t.incident_id, t.metric",
            map: &map,
            cursor_of: &cursor_of,
        },
    )
    .await
}
