//! Incident list and detail.

use super::paging::{Cursor, ListQuery, Select, fetch_page};
use super::{Page, Paging, QueryError, Result, parse_col, parse_opt_col};
use crate::incidents::priority_rank;
use chrono::{DateTime, Utc};
use eventdesk_domain::values::{
    HoldReason, Impact, IncidentNumber, IncidentStatus, Priority, Urgency, WorkNoteType,
};
use eventdesk_domain::{
    Actor, AttachmentId, CategoryId, IncidentId, TeamId, TenantId, UserId, WorkNoteId,
};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Result types (field names from the seed's OpenAPI `Incident`/`IncidentDetail`)
// ---------------------------------------------------------------------------------------------

/// A user embedded in another object. The names are absent if the directory read model has
/// not caught up with the user yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    /// Id.
    pub id: UserId,
    /// Login name.
    pub username: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
}

/// A team or category embedded in another object (`name` absent if not projected yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedRef {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: Option<String>,
}

/// Who did something: `actor` is `user:<uuid>`, `api_key:<uuid>` or `system`; for a user,
/// `id` and (once projected) the names follow, as in the seed's `User`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorSummary {
    /// The actor as text.
    pub actor: String,
    /// The user's id, for a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<UserId>,
    /// Login name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// First name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

/// An incident in a list (the seed's `Incident`, plus the lifecycle timestamps and `version`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentListItem {
    /// Id.
    pub id: IncidentId,
    /// `INC000123`.
    pub incident_number: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Status.
    pub status: IncidentStatus,
    /// Priority.
    pub priority: Priority,
    /// Impact.
    pub impact: Impact,
    /// Urgency.
    pub urgency: Urgency,
    /// Reporter.
    pub reporter: UserSummary,
    /// Assignee.
    pub assignee: Option<UserSummary>,
    /// Assignment group.
    pub team: Option<NamedRef>,
    /// Category.
    pub category: Option<NamedRef>,
    /// Why it is on hold (while `on_hold`).
    pub hold_reason: Option<HoldReason>,
    /// Resolution (while resolved/closed).
    pub resolution: Option<String>,
    /// How many times it was reopened.
    pub reopen_count: i32,
    /// Response target (SLA engine).
    pub response_due_at: Option<DateTime<Utc>>,
    /// Resolution target (SLA engine).
    pub resolution_due_at: Option<DateTime<Utc>>,
    /// First response.
    pub responded_at: Option<DateTime<Utc>>,
    /// Last resolution (cleared by a reopen).
    pub resolved_at: Option<DateTime<Utc>>,
    /// Closure.
    pub closed_at: Option<DateTime<Utc>>,
    /// Cancellation.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Logged.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Stream version (the ETag).
    pub version: i64,
}

/// One row of an incident's history (the seed's `IncidentHistory`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentHistoryEntry {
    /// The field (`status`, `assignee_id`, `priority`, …).
    pub field_name: String,
    /// Value before, as text.
    pub old_value: Option<String>,
    /// Value after, as text.
    pub new_value: Option<String>,
    /// Who.
    pub changed_by: ActorSummary,
    /// When.
    pub changed_at: DateTime<Utc>,
    /// The stream version of the event that made the change.
    pub version: i64,
    /// Position among that event's rows.
    pub seq: i32,
}

/// A work note (the seed's `WorkNote`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkNoteView {
    /// Id.
    pub id: WorkNoteId,
    /// Text.
    pub content: String,
    /// Kind.
    pub note_type: WorkNoteType,
    /// Visible to the requester.
    pub is_public: bool,
    /// Written by an agent.
    pub by_agent: bool,
    /// Author.
    pub created_by: ActorSummary,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An attachment (the seed's `Attachment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentView {
    /// Id.
    pub id: AttachmentId,
    /// File name.
    pub file_name: String,
    /// Size in bytes.
    pub file_size: i64,
    /// MIME type.
    pub content_type: String,
    /// Content address (hex sha256).
    pub sha256: String,
    /// Uploader.
    pub uploaded_by: ActorSummary,
    /// When.
    pub uploaded_at: DateTime<Utc>,
}

/// An incident with its related lists (the seed's `IncidentDetail`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentDetail {
    /// The incident's fields.
    #[serde(flatten)]
    pub incident: IncidentListItem,
    /// Whether the priority was set explicitly.
    pub priority_overridden: bool,
    /// Who logged it.
    pub created_by: Actor,
    /// Who last changed it.
    pub updated_by: Actor,
    /// Field changes, oldest first.
    pub history: Vec<IncidentHistoryEntry>,
    /// Work notes, oldest first.
    pub work_notes: Vec<WorkNoteView>,
    /// Attachments, oldest first.
    pub attachments: Vec<AttachmentView>,
}

// ---------------------------------------------------------------------------------------------
// Filter and sort
// ---------------------------------------------------------------------------------------------

/// List filters. Several values of one field mean OR; different fields combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    /// Any of these statuses.
    pub status: Vec<IncidentStatus>,
    /// Any of these priorities.
    pub priority: Vec<Priority>,
    /// Any of these impacts.
    pub impact: Vec<Impact>,
    /// Any of these urgencies.
    pub urgency: Vec<Urgency>,
    /// Assigned to this user.
    pub assignee_id: Option<UserId>,
    /// Routed to this team.
    pub team_id: Option<TeamId>,
    /// In this category.
    pub category_id: Option<CategoryId>,
    /// Reported by this user.
    pub reporter_id: Option<UserId>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created strictly before.
    pub created_before: Option<DateTime<Utc>>,
    /// Substring (case-insensitive, any script) of number, title or description.
    pub q: Option<String>,
    /// Forced by the caller for requesters: only incidents they reported.
    pub only_reporter: Option<UserId>,
}

/// The sort of an incident list. Every sort ends with the id as tie-breaker, so pages are
/// stable, and every sort supports cursors (keyset pagination).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum IncidentSort {
    /// `created_at`: oldest first.
    CreatedAtAsc,
    /// `-created_at` (default): newest first.
    #[default]
    CreatedAtDesc,
    /// `priority`: low first, then oldest first.
    PriorityAsc,
    /// `-priority`: critical first, then newest first.
    PriorityDesc,
    /// `updated_at`: least recently changed first.
    UpdatedAtAsc,
    /// `-updated_at`: most recently changed first.
    UpdatedAtDesc,
    /// `resolution_due_at`: most urgent SLA target first; incidents without one last.
    ResolutionDueAt,
}

impl IncidentSort {
    /// Every sort.
    pub const ALL: &'static [IncidentSort] = &[
        Self::CreatedAtAsc,
        Self::CreatedAtDesc,
        Self::PriorityAsc,
        Self::PriorityDesc,
        Self::UpdatedAtAsc,
        Self::UpdatedAtDesc,
        Self::ResolutionDueAt,
    ];
    /// The names accepted by `sort=`.
    pub const NAMES: &'static [&'static str] = &[
        "created_at",
        "-created_at",
        "priority",
        "-priority",
        "updated_at",
        "-updated_at",
        "resolution_due_at",
    ];

    /// The `sort=` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAtAsc => "created_at",
            Self::CreatedAtDesc => "-created_at",
            Self::PriorityAsc => "priority",
            Self::PriorityDesc => "-priority",
            Self::UpdatedAtAsc => "updated_at",
            Self::UpdatedAtDesc => "-updated_at",
            Self::ResolutionDueAt => "resolution_due_at",
        }
    }

    fn order_by(self) -> &'static str {
        match self {
            Self::CreatedAtAsc => "i.created_at ASC, i.id ASC",
            Self::CreatedAtDesc => "i.created_at DESC, i.id DESC",
            Self::PriorityAsc => "i.priority_rank ASC, i.created_at ASC, i.id ASC",
            Self::PriorityDesc => "i.priority_rank DESC, i.created_at DESC, i.id DESC",
            Self::UpdatedAtAsc => "i.updated_at ASC, i.id ASC",
            Self::UpdatedAtDesc => "i.updated_at DESC, i.id DESC",
            Self::ResolutionDueAt => "i.resolution_due_at ASC NULLS LAST, i.id ASC",
        }
    }

    /// The cursor continuing after `item`.
    fn cursor_of(self, item: &IncidentListItem) -> Cursor {
        let mut c = Cursor::new(self.as_str(), item.id.0);
        match self {
            Self::CreatedAtAsc | Self::CreatedAtDesc => c.t = Some(item.created_at),
            Self::UpdatedAtAsc | Self::UpdatedAtDesc => c.t = Some(item.updated_at),
            Self::PriorityAsc | Self::PriorityDesc => {
                c.r = Some(priority_rank(item.priority));
                c.t = Some(item.created_at);
            }
            Self::ResolutionDueAt => c.t = item.resolution_due_at,
        }
        c
    }

    /// Pushes ` AND <rows after the cursor in this order>`.
    fn push_after(self, qb: &mut QueryBuilder<'static, Postgres>, c: &Cursor) -> Result<()> {
        let t = c.t;
        let need_t = || t.ok_or(QueryError::InvalidCursor);
        match self {
            Self::CreatedAtAsc | Self::CreatedAtDesc | Self::UpdatedAtAsc | Self::UpdatedAtDesc => {
                let (col, op) = match self {
                    Self::CreatedAtAsc => ("i.created_at", ">"),
                    Self::CreatedAtDesc => ("i.created_at", "<"),
                    Self::UpdatedAtAsc => ("i.updated_at", ">"),
                    _ => ("i.updated_at", "<"),
                };
                qb.push(format_args!(" AND ({col}, i.id) {op} ("))
                    .push_bind(need_t()?)
                    .push(", ")
                    .push_bind(c.id)
                    .push(")");
            }
            Self::PriorityAsc | Self::PriorityDesc => {
                let op = if self == Self::PriorityAsc { ">" } else { "<" };
                let r = c.r.ok_or(QueryError::InvalidCursor)?;
                qb.push(format_args!(
                    " AND (i.priority_rank, i.created_at, i.id) {op} ("
                ))
                .push_bind(r)
                .push(", ")
                .push_bind(need_t()?)
                .push(", ")
                .push_bind(c.id)
                .push(")");
            }
            Self::ResolutionDueAt => match t {
                Some(t) => {
                    qb.push(" AND (i.resolution_due_at IS NULL OR (i.resolution_due_at, i.id) > (")
                        .push_bind(t)
                        .push(", ")
                        .push_bind(c.id)
                        .push("))");
                }
                None => {
                    qb.push(" AND i.resolution_due_at IS NULL AND i.id > ")
                        .push_bind(c.id);
                }
            },
        }
        Ok(())
    }
}

impl std::fmt::Display for IncidentSort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for IncidentSort {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| QueryError::InvalidSort(s.to_owned()))
    }
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// The columns of [`IncidentListItem`] and [`IncidentDetail`], with the embedded objects
/// joined in (one query, no N+1).
const INCIDENT_FROM: &str = "SELECT i.id, i.number, i.title, i.description, i.status, \
     i.priority, i.impact, i.urgency, i.hold_reason, i.resolution, i.reopen_count, \
     i.response_due_at, i.resolution_due_at, i.responded_at, i.resolved_at, i.closed_at, \
     i.cancelled_at, i.created_at, i.updated_at, i.version, i.priority_overridden, \
     i.created_by, i.updated_by, \
     i.reporter_id, r.username AS reporter_username, r.first_name AS reporter_first_name, \
     r.last_name AS reporter_last_name, \
     i.assignee_id, a.username AS assignee_username, a.first_name AS assignee_first_name, \
     a.last_name AS assignee_last_name, \
     i.team_id, t.name AS team_name, i.category_id, c.name AS category_name \
     FROM rm_incidents i \
     LEFT JOIN rm_users r ON r.tenant_id = i.tenant_id AND r.id = i.reporter_id \
     LEFT JOIN rm_users a ON a.tenant_id = i.tenant_id AND a.id = i.assignee_id \
     LEFT JOIN rm_teams t ON t.tenant_id = i.tenant_id AND t.id = i.team_id \
     LEFT JOIN rm_categories c ON c.tenant_id = i.tenant_id AND c.id = i.category_id";

/// Escapes `%`, `_` and `\` so `q` matches literally inside `ILIKE '%…%'`.
fn like_literal(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for ch in q.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

fn names<T: Copy>(values: &[T], as_str: fn(T) -> &'static str) -> Vec<String> {
    values.iter().map(|v| as_str(*v).to_owned()).collect()
}

/// Pushes ` WHERE i.tenant_id = … AND <filters>`.
fn push_filters(qb: &mut QueryBuilder<'static, Postgres>, tenant: TenantId, f: &IncidentFilter) {
    qb.push(" WHERE i.tenant_id = ").push_bind(tenant.0);
    let any = |qb: &mut QueryBuilder<'static, Postgres>, col: &str, v: Vec<String>| {
        if !v.is_empty() {
            qb.push(format_args!(" AND {col} = ANY("))
                .push_bind(v)
                .push(")");
        }
    };
    any(qb, "i.status", names(&f.status, IncidentStatus::as_str));
    any(qb, "i.priority", names(&f.priority, Priority::as_str));
    any(qb, "i.impact", names(&f.impact, Impact::as_str));
    any(qb, "i.urgency", names(&f.urgency, Urgency::as_str));
    let eq = |qb: &mut QueryBuilder<'static, Postgres>, col: &str, v: Option<Uuid>| {
        if let Some(v) = v {
            qb.push(format_args!(" AND {col} = ")).push_bind(v);
        }
    };
    eq(qb, "i.assignee_id", f.assignee_id.map(|x| x.0));
    eq(qb, "i.team_id", f.team_id.map(|x| x.0));
    eq(qb, "i.category_id", f.category_id.map(|x| x.0));
    eq(qb, "i.reporter_id", f.reporter_id.map(|x| x.0));
    eq(qb, "i.reporter_id", f.only_reporter.map(|x| x.0));
    if let Some(t) = f.created_after {
        qb.push(" AND i.created_at >= ").push_bind(t);
    }
    if let Some(t) = f.created_before {
        qb.push(" AND i.created_at < ").push_bind(t);
    }
    if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        qb.push(" AND i.search_text ILIKE ")
            .push_bind(like_literal(q));
    }
}

fn user_summary(row: &PgRow, prefix: &str, id: Uuid) -> Result<UserSummary> {
    let col = |c: &str| format!("{prefix}_{c}");
    Ok(UserSummary {
        id: UserId(id),
        username: row.try_get(col("username").as_str())?,
        first_name: row.try_get(col("first_name").as_str())?,
        last_name: row.try_get(col("last_name").as_str())?,
    })
}

fn list_item(row: &PgRow) -> Result<IncidentListItem> {
    let assignee: Option<Uuid> = row.try_get("assignee_id")?;
    let team: Option<Uuid> = row.try_get("team_id")?;
    let category: Option<Uuid> = row.try_get("category_id")?;
    Ok(IncidentListItem {
        id: IncidentId(row.try_get("id")?),
        incident_number: row.try_get("number")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        status: parse_col(row, "status")?,
        priority: parse_col(row, "priority")?,
        impact: parse_col(row, "impact")?,
        urgency: parse_col(row, "urgency")?,
        reporter: user_summary(row, "reporter", row.try_get("reporter_id")?)?,
        assignee: assignee
            .map(|id| user_summary(row, "assignee", id))
            .transpose()?,
        team: team
            .map(|id| -> Result<NamedRef> {
                Ok(NamedRef {
                    id,
                    name: row.try_get("team_name")?,
                })
            })
            .transpose()?,
        category: category
            .map(|id| -> Result<NamedRef> {
                Ok(NamedRef {
                    id,
                    name: row.try_get("category_name")?,
                })
            })
            .transpose()?,
        hold_reason: parse_opt_col(row, "hold_reason")?,
        resolution: row.try_get("resolution")?,
        reopen_count: row.try_get("reopen_count")?,
        response_due_at: row.try_get("response_due_at")?,
        resolution_due_at: row.try_get("resolution_due_at")?,
        responded_at: row.try_get("responded_at")?,
        resolved_at: row.try_get("resolved_at")?,
        closed_at: row.try_get("closed_at")?,
        cancelled_at: row.try_get("cancelled_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

fn actor_col(row: &PgRow, column: &'static str) -> Result<Actor> {
    let v: serde_json::Value = row.try_get(column)?;
    serde_json::from_value(v).map_err(|e| QueryError::Corrupt {
        column,
        message: e.to_string(),
    })
}

/// `actor`, `user_id`, `username`, `first_name`, `last_name` columns → [`ActorSummary`].
fn actor_summary(row: &PgRow) -> Result<ActorSummary> {
    Ok(ActorSummary {
        actor: row.try_get("actor")?,
        id: row.try_get::<Option<Uuid>, _>("user_id")?.map(UserId),
        username: row.try_get("username")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
    })
}

/// A page of the tenant's incidents matching `filter`, in `sort` order.
///
/// Page mode runs a COUNT and the page query; cursor mode only the page query (keyset, all
/// sorts). The embedded reporter/assignee/team/category come from LEFT JOINs in the same query.
pub async fn list_incidents(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &IncidentFilter,
    sort: IncidentSort,
    paging: Paging,
) -> Result<Page<IncidentListItem>> {
    let base = |qb: &mut QueryBuilder<'static, Postgres>, select: Select| {
        match select {
            Select::Count => qb.push("SELECT count(*) FROM rm_incidents i"),
            Select::Rows => qb.push(INCIDENT_FROM),
        };
        push_filters(qb, tenant, filter);
    };
    let after = |qb: &mut QueryBuilder<'static, Postgres>, c: &Cursor| sort.push_after(qb, c);
    let cursor_of = |item: &IncidentListItem| sort.cursor_of(item);
    fetch_page(
        conn,
        &paging,
        ListQuery {
            sort: sort.as_str(),
            base: &base,
            after: &after,
            order_by: sort.order_by(),
            map: &list_item,
            cursor_of: &cursor_of,
        },
    )
    .await
}

/// One incident of the tenant with its history, work notes (public ones only unless
/// `include_private`) and attachments; `None` if it does not exist in this tenant.
/// Four statements (incident, history, notes, attachments), whatever the list sizes.
pub async fn get_incident(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: IncidentId,
    include_private: bool,
) -> Result<Option<IncidentDetail>> {
    let mut qb = QueryBuilder::<Postgres>::new(INCIDENT_FROM);
    qb.push(" WHERE i.tenant_id = ")
        .push_bind(tenant.0)
        .push(" AND i.id = ")
        .push_bind(id.0);
    let Some(row) = qb.build().fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let incident = list_item(&row)?;
    let priority_overridden = row.try_get("priority_overridden")?;
    let created_by = actor_col(&row, "created_by")?;
    let updated_by = actor_col(&row, "updated_by")?;

    let history = sqlx::query(
        "SELECT h.version, h.seq, h.field, h.old_value #>> '{}' AS old_value, \
         h.new_value #>> '{}' AS new_value, h.changed_by AS actor, \
         h.changed_by_user_id AS user_id, u.username, u.first_name, u.last_name, h.changed_at \
         FROM rm_incident_history h \
         LEFT JOIN rm_users u ON u.tenant_id = h.tenant_id AND u.id = h.changed_by_user_id \
         WHERE h.tenant_id = $1 AND h.incident_id = $2 ORDER BY h.version, h.seq",
    )
    .bind(tenant.0)
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(IncidentHistoryEntry {
            field_name: r.try_get("field")?,
            old_value: r.try_get("old_value")?,
            new_value: r.try_get("new_value")?,
            changed_by: actor_summary(r)?,
            changed_at: r.try_get("changed_at")?,
            version: r.try_get("version")?,
            seq: r.try_get("seq")?,
        })
    })
    .collect::<Result<Vec<_>>>()?;

    let work_notes = sqlx::query(
        "SELECT n.id, n.body, n.note_type, n.is_public, n.by_agent, n.author AS actor, \
         n.author_user_id AS user_id, u.username, u.first_name, u.last_name, n.created_at \
         FROM rm_incident_work_notes n \
         LEFT JOIN rm_users u ON u.tenant_id = n.tenant_id AND u.id = n.author_user_id \
         WHERE n.tenant_id = $1 AND n.incident_id = $2 AND ($3 OR n.is_public) \
         ORDER BY n.created_at, n.id",
    )
    .bind(tenant.0)
    .bind(id.0)
    .bind(include_private)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(WorkNoteView {
            id: WorkNoteId(r.try_get("id")?),
            content: r.try_get("body")?,
            note_type: parse_col(r, "note_type")?,
            is_public: r.try_get("is_public")?,
            by_agent: r.try_get("by_agent")?,
            created_by: actor_summary(r)?,
            created_at: r.try_get("created_at")?,
        })
    })
    .collect::<Result<Vec<_>>>()?;

    let attachments = sqlx::query(
        "SELECT f.id, f.filename, f.size_bytes, f.content_type, f.sha256, \
         f.uploaded_by AS actor, f.uploaded_by_user_id AS user_id, u.username, u.first_name, \
         u.last_name, f.created_at \
         FROM rm_incident_attachments f \
         LEFT JOIN rm_users u ON u.tenant_id = f.tenant_id AND u.id = f.uploaded_by_user_id \
         WHERE f.tenant_id = $1 AND f.incident_id = $2 ORDER BY f.created_at, f.id",
    )
    .bind(tenant.0)
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(AttachmentView {
            id: AttachmentId(r.try_get("id")?),
            file_name: r.try_get("filename")?,
            file_size: r.try_get("size_bytes")?,
            content_type: r.try_get("content_type")?,
            sha256: r.try_get("sha256")?,
            uploaded_by: actor_summary(r)?,
            uploaded_at: r.try_get("created_at")?,
        })
    })
    .collect::<Result<Vec<_>>>()?;

    Ok(Some(IncidentDetail {
        incident,
        priority_overridden,
        created_by,
        updated_by,
        history,
        work_notes,
        attachments,
    }))
}

/// The id of the tenant's incident numbered `number` (e.g. for `GET /incidents/INC000123`).
pub async fn find_incident_by_number(
    conn: &mut PgConnection,
    tenant: TenantId,
    number: IncidentNumber,
) -> Result<Option<IncidentId>> {
    let seq = i64::try_from(number.sequence()).map_err(|_| QueryError::Corrupt {
        column: "number_seq",
        message: "incident number out of range".into(),
    })?;
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM rm_incidents WHERE tenant_id = $1 AND number_seq = $2 \
         ORDER BY created_at LIMIT 1",
    )
    .bind(tenant.0)
    .bind(seq)
    .fetch_optional(conn)
    .await?;
    Ok(id.map(IncidentId))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sort_names_round_trip() {
        for (s, name) in IncidentSort::ALL.iter().zip(IncidentSort::NAMES) {
            assert_eq!(s.as_str(), *name);
            assert_eq!(name.parse::<IncidentSort>().unwrap(), *s);
        }
        assert!(matches!(
            "title".parse::<IncidentSort>(),
            Err(QueryError::InvalidSort(_))
        ));
        assert_eq!(IncidentSort::default().as_str(), "-created_at");
    }

    #[test]
    fn like_patterns_are_literal() {
        assert_eq!(like_literal("メール"), "%メール%");
        assert_eq!(like_literal("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
