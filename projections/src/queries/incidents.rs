//! Incident list and detail.
//!
//! # Totals of the list (page mode)
//!
//! `pagination.total_items` is exact wherever that is cheap, and a lower bound otherwise —
//! then `"total_items_exact": false` is added to the pagination object (it is absent when the
//! total is exact, and in cursor mode, which computes no totals). `total_pages` follows from
//! `total_items`; `has_next` is always exact (the page query fetches one row more than the
//! page). An inexact total is never below what the page itself proves
//! (`offset + rows on the page + 1 if has_next`).
//!
//! | filters | total_items |
//! |---|---|
//! | none, or only `status`/`priority`/`impact`/`urgency` | exact: the sum of the tenant's matching `rm_incident_counts` cells, whatever the number of incidents |
//! | also team, category, assignee, reporter, the requester scope or dates (no `q`) | exact up to [`COUNT_CAP`] (10,000) matches; beyond, [`COUNT_CAP`] and not exact |
//! | `q` with at most [`SEARCH_CAP`] (1,000) matches | exact |
//! | `q` with more | [`SEARCH_CAP`] or, if the term is found on the first walk (below) of a large tenant, only what the page proves; not exact |
//!
//! # Search (`q`)
//!
//! `q` is a case-insensitive substring of number, title or description, in any script; `%`,
//! `_` and `\` match literally. Under row-level security PostgreSQL cannot use the trigram
//! index for `ILIKE` (the operator is not LEAKPROOF), and its planner cannot estimate how many
//! rows match. The list therefore finds a page in up to three steps, each bounded:
//! 1. **Walk**: the tenant's first `100 × (offset + limit + 1)` incidents (2,000 to 5,000) in
//!    the list's order, filtered by `ILIKE`. A term in ~1% of the incidents or more is found
//!    here, after about `limit × incidents / matches` rows.
//! 2. **Index**: the `SECURITY DEFINER` function `eventdesk_incident_search(tenant, term,
//!    limit)` (migration 0007) uses the trigram index and returns up to [`SEARCH_CAP`] + 1 ids;
//!    it searches only the tenant the transaction is scoped to. With at most [`SEARCH_CAP`]
//!    matches the page query selects among them by id, however rare the term.
//! 3. **Long walk**: more matches than that, but not in the first walk: a longer walk, as
//!    long as the density of over [`SEARCH_CAP`] matches needs, up to 200,000 incidents;
//!    failing that, the plain query.
//!
//! The trigram index's work grows with the number of matches (tens of milliseconds for a
//! term in 10% of a million incidents) while a walk's shrinks, hence the order. Counting the
//! matches of a term found by the first walk uses the index only when the walk's density
//! predicts at most 4 × [`SEARCH_CAP`] matches.
//!
//! Every sort, filter, page and cursor mode work with all three. Slow cases that remain: a
//! frequent term combined with a selective filter (the walk passes many rows the filter
//! rejects), deep pages of frequent terms (the walk grows with the offset — use cursors), and a
//! rare term without three consecutive letters or digits (no trigram: a sequential scan).
//! A `q` call needs a transaction scoped with [`super::scope_to_tenant`] to the listed tenant,
//! whatever the role.

use super::paging::{CappedPagination, Cursor, Pagination, Rows};
use super::problems::KnownErrorView;
use super::{Page, Paging, QueryError, Result, parse_col, parse_opt_col};
use crate::incidents::priority_rank;
use chrono::{DateTime, Utc};
use eventdesk_domain::values::{
    HoldReason, Impact, IncidentNumber, IncidentStatus, Priority, Urgency, WorkNoteType,
};
use eventdesk_domain::{
    Actor, AttachmentId, CategoryId, CiId, IncidentId, ProblemId, TeamId, TenantId, UserId,
    WorkNoteId,
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
    /// The configuration item it affects.
    pub ci_id: Option<CiId>,
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
    /// The problem the incident is linked to (ADR 0021).
    pub problem_id: Option<ProblemId>,
    /// Known errors whose category or configuration item match the incident's, with their
    /// workarounds (agents only; empty for requesters).
    pub suggested_known_errors: Vec<KnownErrorView>,
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
    /// Affecting this configuration item.
    pub ci_id: Option<CiId>,
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

/// The columns of [`IncidentListItem`] and [`IncidentDetail`] (`i` is the incident; the
/// embedded objects come from [`INCIDENT_JOINS`], so one query, no N+1).
const INCIDENT_COLUMNS: &str = "SELECT i.id, i.number, i.title, i.description, i.status, \
     i.priority, i.impact, i.urgency, i.hold_reason, i.resolution, i.reopen_count, \
     i.response_due_at, i.resolution_due_at, i.responded_at, i.resolved_at, i.closed_at, \
     i.cancelled_at, i.created_at, i.updated_at, i.version, i.priority_overridden, \
     i.created_by, i.updated_by, \
     i.reporter_id, r.username AS reporter_username, r.first_name AS reporter_first_name, \
     r.last_name AS reporter_last_name, \
     i.assignee_id, a.username AS assignee_username, a.first_name AS assignee_first_name, \
     a.last_name AS assignee_last_name, \
     i.team_id, t.name AS team_name, i.category_id, c.name AS category_name, i.ci_id";

/// The joins of the embedded reporter, assignee, team and category.
const INCIDENT_JOINS: &str = " \
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

/// How a list query applies `q`.
#[derive(Debug, Clone, Copy)]
enum SearchBy<'a> {
    /// No `q`.
    Nothing,
    /// `i.id = ANY(…)`: the matches (found through the trigram index by [`SEARCH_FN`]).
    Ids(&'a [Uuid]),
    /// `i.search_text ILIKE '%q%'` as a plain condition (under RLS never an index condition).
    Pattern(&'a str),
}

/// The term of `q`, if any (trimmed; blank means none).
fn search_term(f: &IncidentFilter) -> Option<&str> {
    f.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
}

/// Whether `f` filters on anything besides `q`.
fn filters_beyond_q(f: &IncidentFilter) -> bool {
    !(f.status.is_empty()
        && f.priority.is_empty()
        && f.impact.is_empty()
        && f.urgency.is_empty()
        && only_counted_fields(f))
}

/// Whether `f` filters on nothing but `q` and the four fields of `rm_incident_counts`.
fn only_counted_fields(f: &IncidentFilter) -> bool {
    f.assignee_id.is_none()
        && f.team_id.is_none()
        && f.category_id.is_none()
        && f.reporter_id.is_none()
        && f.ci_id.is_none()
        && f.only_reporter.is_none()
        && f.created_after.is_none()
        && f.created_before.is_none()
}

/// Pushes ` AND col = ANY(…)` for each of the four counted fields that `f` filters on.
fn push_cell_filters(qb: &mut QueryBuilder<'static, Postgres>, alias: &str, f: &IncidentFilter) {
    let mut any = |col: &str, v: Vec<String>| {
        if !v.is_empty() {
            qb.push(format_args!(" AND {alias}{col} = ANY("))
                .push_bind(v)
                .push(")");
        }
    };
    any("status", names(&f.status, IncidentStatus::as_str));
    any("priority", names(&f.priority, Priority::as_str));
    any("impact", names(&f.impact, Impact::as_str));
    any("urgency", names(&f.urgency, Urgency::as_str));
}

/// Pushes ` WHERE i.tenant_id = … AND <filters>`, with `q` applied as `search` says.
fn push_filters(
    qb: &mut QueryBuilder<'static, Postgres>,
    tenant: TenantId,
    f: &IncidentFilter,
    search: SearchBy<'_>,
) {
    qb.push(" WHERE i.tenant_id = ").push_bind(tenant.0);
    push_cell_filters(qb, "i.", f);
    let eq = |qb: &mut QueryBuilder<'static, Postgres>, col: &str, v: Option<Uuid>| {
        if let Some(v) = v {
            qb.push(format_args!(" AND {col} = ")).push_bind(v);
        }
    };
    eq(qb, "i.assignee_id", f.assignee_id.map(|x| x.0));
    eq(qb, "i.team_id", f.team_id.map(|x| x.0));
    eq(qb, "i.category_id", f.category_id.map(|x| x.0));
    eq(qb, "i.reporter_id", f.reporter_id.map(|x| x.0));
    eq(qb, "i.ci_id", f.ci_id.map(|x| x.0));
    eq(qb, "i.reporter_id", f.only_reporter.map(|x| x.0));
    if let Some(t) = f.created_after {
        qb.push(" AND i.created_at >= ").push_bind(t);
    }
    if let Some(t) = f.created_before {
        qb.push(" AND i.created_at < ").push_bind(t);
    }
    match search {
        SearchBy::Nothing => {}
        SearchBy::Ids(ids) => {
            qb.push(" AND i.id = ANY(")
                .push_bind(ids.to_vec())
                .push(")");
        }
        SearchBy::Pattern(q) => {
            qb.push(" AND i.search_text ILIKE ")
                .push_bind(like_literal(q));
        }
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
        ci_id: row.try_get::<Option<Uuid>, _>("ci_id")?.map(CiId),
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

/// A page of incidents: `{"data": […], "pagination": {…}}`, where the pagination object gets
/// `"total_items_exact": false` when the total is a lower bound (see the module docs).
pub type IncidentPage = Page<IncidentListItem, CappedPagination>;

/// Page-mode totals of filters beyond the counted fields are counted up to this many
/// incidents; beyond it `total_items` is this (a lower bound) and `total_items_exact` false.
pub const COUNT_CAP: u64 = 10_000;

/// The matches of `q` are counted up to this many; beyond it (or when counting would be
/// expensive, see the module docs) the total is a lower bound and `total_items_exact` false.
pub const SEARCH_CAP: u64 = 1_000;

/// The first attempt at a `q` page examines this many incidents of the tenant in the list's
/// order per item it needs (so terms in at least ~1% of the incidents are answered by it),
/// within [`WALK_MIN`]`..=`[`WALK_MAX`].
const WALK_PER_ITEM: u64 = 100;
/// See [`WALK_PER_ITEM`].
const WALK_MIN: u64 = 2_000;
/// See [`WALK_PER_ITEM`].
const WALK_MAX: u64 = 5_000;
/// The longest second walk (see [`walk_far`]): a few hundred milliseconds, about what the
/// plain query's sequential scan takes.
const WALK_FAR_MAX: u64 = 200_000;

/// The search function of migration 0007: `(tenant, term, limit)` → ids.
const SEARCH_FN: &str = "SELECT id FROM eventdesk_incident_search($1, $2, $3)";

/// Up to [`SEARCH_CAP`] + 1 ids of incidents matching `term`, through the trigram index.
async fn search_probe(conn: &mut PgConnection, tenant: TenantId, term: &str) -> Result<Vec<Uuid>> {
    let limit = i32::try_from(SEARCH_CAP + 1).unwrap_or(i32::MAX);
    Ok(sqlx::query_scalar(SEARCH_FN)
        .bind(tenant.0)
        .bind(term)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?)
}

/// How the rows query reads `rm_incidents`.
#[derive(Debug, Clone, Copy)]
enum Walk<'a> {
    /// Every row matching the filters, `q` applied as said.
    Full(SearchBy<'a>),
    /// Only the tenant's first `rows` incidents in the list's order (after the cursor); the
    /// filters and `search_text ILIKE` apply to those. Bounds the work for a frequent term.
    Bounded { term: &'a str, rows: u64 },
}

/// The rows of a page of incidents (one more than the limit is fetched for `has_next`), and
/// for a [`Walk::Bounded`] how many incidents it examined up to the last row fetched.
async fn incident_rows(
    conn: &mut PgConnection,
    tenant: TenantId,
    f: &IncidentFilter,
    sort: IncidentSort,
    paging: &Paging,
    walk: Walk<'_>,
) -> Result<(Rows<IncidentListItem>, Option<i64>)> {
    let limit = paging.limit();
    let (offset, cursor) = match paging {
        Paging::Page { page, .. } => (i64::from((*page).max(1) - 1) * i64::from(limit), None),
        Paging::Cursor { after, .. } => (
            0,
            after
                .as_deref()
                .map(|a| Cursor::decode(a, sort.as_str()))
                .transpose()?,
        ),
    };
    let mut qb = QueryBuilder::new(INCIDENT_COLUMNS);
    match walk {
        Walk::Full(search) => {
            qb.push(" FROM rm_incidents i").push(INCIDENT_JOINS);
            push_filters(&mut qb, tenant, f, search);
            if let Some(c) = &cursor {
                sort.push_after(&mut qb, c)?;
            }
        }
        Walk::Bounded { term, rows } => {
            qb.push(", i.walk_pos FROM (SELECT i.*, row_number() OVER (ORDER BY ")
                .push(sort.order_by())
                .push(") AS walk_pos FROM rm_incidents i WHERE i.tenant_id = ")
                .push_bind(tenant.0);
            if let Some(c) = &cursor {
                sort.push_after(&mut qb, c)?;
            }
            qb.push(" ORDER BY ")
                .push(sort.order_by())
                .push(" LIMIT ")
                .push_bind(i64::try_from(rows).unwrap_or(i64::MAX))
                .push(") i")
                .push(INCIDENT_JOINS);
            push_filters(&mut qb, tenant, f, SearchBy::Pattern(term));
        }
    }
    qb.push(" ORDER BY ")
        .push(sort.order_by())
        .push(" LIMIT ")
        .push_bind(i64::from(limit) + 1);
    if offset > 0 {
        qb.push(" OFFSET ").push_bind(offset);
    }
    let rows = qb.build().fetch_all(&mut *conn).await?;
    let walked = match (walk, rows.last()) {
        (Walk::Bounded { .. }, Some(last)) => Some(last.try_get::<i64, _>("walk_pos")?),
        _ => None,
    };
    let mut data = rows.iter().map(list_item).collect::<Result<Vec<_>>>()?;
    let has_next = data.len() > limit as usize;
    data.truncate(limit as usize);
    let next_cursor = match paging {
        Paging::Cursor { .. } if has_next => data.last().map(|i| sort.cursor_of(i).encode()),
        _ => None,
    };
    Ok((
        Rows {
            data,
            has_next,
            next_cursor,
        },
        walked,
    ))
}

/// What is known about the matches of `q` once the page is found.
enum Matches {
    /// No `q`.
    NoSearch,
    /// Every match (at most [`SEARCH_CAP`]), found through the trigram index.
    All(Vec<Uuid>),
    /// More than [`SEARCH_CAP`]: `SEARCH_CAP + 1` of them.
    Many(Vec<Uuid>),
    /// The first bounded walk found the page after examining `walked` incidents.
    Dense { walked: u64 },
}

/// Sum of the tenant's `rm_incident_counts` cells matching the counted fields of `f`.
async fn count_cells(conn: &mut PgConnection, tenant: TenantId, f: &IncidentFilter) -> Result<u64> {
    let mut qb = QueryBuilder::new(
        "SELECT coalesce(sum(c.count), 0)::int8 FROM rm_incident_counts c WHERE c.tenant_id = ",
    );
    qb.push_bind(tenant.0);
    push_cell_filters(&mut qb, "c.", f);
    let n: i64 = qb.build().fetch_one(&mut *conn).await?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `count(*)` of at most `cap + 1` incidents matching `f` (with `q` as `search` says):
/// `(min(count, cap), count <= cap)`.
async fn count_capped(
    conn: &mut PgConnection,
    tenant: TenantId,
    f: &IncidentFilter,
    search: SearchBy<'_>,
    cap: u64,
) -> Result<(u64, bool)> {
    let mut qb = QueryBuilder::new("SELECT count(*) FROM (SELECT 1 FROM rm_incidents i");
    push_filters(&mut qb, tenant, f, search);
    qb.push(" LIMIT ")
        .push_bind(i64::try_from(cap + 1).unwrap_or(i64::MAX))
        .push(") s");
    let n: i64 = qb.build().fetch_one(&mut *conn).await?.try_get(0)?;
    let n = u64::try_from(n).unwrap_or(0);
    Ok((n.min(cap), n <= cap))
}

/// How many of the matches `ids` of `q` pass the other filters of `f`.
async fn count_among(
    conn: &mut PgConnection,
    tenant: TenantId,
    f: &IncidentFilter,
    ids: &[Uuid],
) -> Result<u64> {
    if !filters_beyond_q(f) {
        return Ok(ids.len() as u64);
    }
    let mut qb = QueryBuilder::new("SELECT count(*) FROM rm_incidents i");
    push_filters(&mut qb, tenant, f, SearchBy::Ids(ids));
    let n: i64 = qb.build().fetch_one(&mut *conn).await?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The page-mode total: `(items, exact)`; an inexact `items` is a lower bound (the caller
/// raises it to what the page proves). See the module docs for the rules.
async fn count(
    conn: &mut PgConnection,
    tenant: TenantId,
    f: &IncidentFilter,
    matches: &Matches,
    needed: u64,
) -> Result<(u64, bool)> {
    let term = search_term(f).unwrap_or_default();
    match matches {
        Matches::NoSearch if only_counted_fields(f) => {
            Ok((count_cells(conn, tenant, f).await?, true))
        }
        Matches::NoSearch => count_capped(conn, tenant, f, SearchBy::Nothing, COUNT_CAP).await,
        Matches::All(ids) => Ok((count_among(conn, tenant, f, ids).await?, true)),
        Matches::Many(probe) => {
            let n = count_among(conn, tenant, f, probe).await?;
            Ok((n.min(SEARCH_CAP), false))
        }
        Matches::Dense { walked } => {
            // The walk saw `needed` matches in `walked` incidents: estimate the matches of the
            // tenant, and count them only if that is cheap (the trigram index's work grows with
            // the number of matches); otherwise the page's lower bound stands.
            let incidents = count_cells(conn, tenant, &IncidentFilter::default()).await?;
            let estimate = incidents.saturating_mul(needed) / (*walked).max(1);
            if estimate > 4 * SEARCH_CAP {
                Ok((0, false))
            } else {
                let probe = search_probe(conn, tenant, term).await?;
                let n = count_among(conn, tenant, f, &probe).await?;
                if probe.len() as u64 <= SEARCH_CAP {
                    Ok((n, true))
                } else {
                    Ok((n.min(SEARCH_CAP), false))
                }
            }
        }
    }
}

/// Whether the filters of `f` other than `q` leave at most [`WALK_MAX`] incidents (from the
/// cells, or a capped count).
async fn few_candidates(
    conn: &mut PgConnection,
    tenant: TenantId,
    f: &IncidentFilter,
) -> Result<bool> {
    if !filters_beyond_q(f) {
        return Ok(false);
    }
    if only_counted_fields(f) {
        return Ok(count_cells(conn, tenant, f).await? <= WALK_MAX);
    }
    Ok(count_capped(conn, tenant, f, SearchBy::Nothing, WALK_MAX)
        .await?
        .1)
}

/// The page of a term with more than [`SEARCH_CAP`] matches that the first walk did not find,
/// when the other filters leave many incidents:
/// 3. a longer bounded walk, as long as the density the matches have at least (over
///    [`SEARCH_CAP`] of the tenant's incidents) needs on average, twice, up to
///    [`WALK_FAR_MAX`] incidents — this keeps the plan an ordered index walk, which the
///    planner, blind to the selectivity of ILIKE under RLS, would not choose for deeper pages;
/// 4. failing that, the plain query.
async fn walk_far(
    conn: &mut PgConnection,
    tenant: TenantId,
    f: &IncidentFilter,
    sort: IncidentSort,
    paging: &Paging,
    term: &str,
    needed: u64,
) -> Result<Rows<IncidentListItem>> {
    let incidents = count_cells(conn, tenant, &IncidentFilter::default()).await?;
    let rows = (needed.saturating_mul(incidents) / (SEARCH_CAP + 1))
        .saturating_mul(2)
        .clamp(WALK_MAX, WALK_FAR_MAX);
    let walk = Walk::Bounded { term, rows };
    let (found, _) = incident_rows(conn, tenant, f, sort, paging, walk).await?;
    if found.has_next || rows >= incidents {
        return Ok(found);
    }
    let walk = Walk::Full(SearchBy::Pattern(term));
    Ok(incident_rows(conn, tenant, f, sort, paging, walk).await?.0)
}

/// A page of the tenant's incidents matching `filter`, in `sort` order.
///
/// Without `q`: the page query, and in page mode one count. With `q` (see the module docs):
/// a bounded walk first; if it does not find the page, the search function and the page by
/// id or by an unbounded walk; in page mode up to three small statements for the total. The
/// embedded reporter/assignee/team/category come from LEFT JOINs in the page query.
///
/// With `q`, the transaction must be scoped to `tenant` ([`super::scope_to_tenant`]) whatever
/// the role: the search function refuses any other tenant.
pub async fn list_incidents(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &IncidentFilter,
    sort: IncidentSort,
    paging: Paging,
) -> Result<IncidentPage> {
    let limit = paging.limit();
    let offset = match &paging {
        Paging::Page { page, .. } => u64::from((*page).max(1) - 1) * u64::from(limit),
        Paging::Cursor { .. } => 0,
    };
    let needed = offset + u64::from(limit) + 1;
    let (rows, matches) = match search_term(filter) {
        None => {
            let walk = Walk::Full(SearchBy::Nothing);
            let (rows, _) = incident_rows(conn, tenant, filter, sort, &paging, walk).await?;
            (rows, Matches::NoSearch)
        }
        Some(term) => {
            // 1. A frequent term: the first incidents in the list's order hold the page.
            let first = needed
                .saturating_mul(WALK_PER_ITEM)
                .clamp(WALK_MIN, WALK_MAX);
            let walk = Walk::Bounded { term, rows: first };
            let (rows, walked) = incident_rows(conn, tenant, filter, sort, &paging, walk).await?;
            if rows.has_next {
                let walked = walked.and_then(|w| u64::try_from(w).ok()).unwrap_or(first);
                (rows, Matches::Dense { walked })
            } else {
                // 2. The trigram index: every match, if there are few.
                let probe = search_probe(conn, tenant, term).await?;
                if probe.len() as u64 <= SEARCH_CAP {
                    let walk = Walk::Full(SearchBy::Ids(&probe));
                    let (rows, _) =
                        incident_rows(conn, tenant, filter, sort, &paging, walk).await?;
                    (rows, Matches::All(probe))
                } else if few_candidates(conn, tenant, filter).await? {
                    // The other filters leave few incidents, and the plain query reads them
                    // through their index; a walk would pass many the filters reject.
                    let walk = Walk::Full(SearchBy::Pattern(term));
                    let (rows, _) =
                        incident_rows(conn, tenant, filter, sort, &paging, walk).await?;
                    (rows, Matches::Many(probe))
                } else {
                    let rows = walk_far(conn, tenant, filter, sort, &paging, term, needed).await?;
                    (rows, Matches::Many(probe))
                }
            }
        }
    };
    let (pagination, total_items_exact) = match &paging {
        Paging::Page { page, .. } => {
            let (mut total, exact) = count(conn, tenant, filter, &matches, needed).await?;
            if !exact && !rows.data.is_empty() {
                // The page itself proves that much.
                let seen = offset + rows.data.len() as u64 + u64::from(rows.has_next);
                total = total.max(seen);
            }
            (
                Pagination::page(*page, limit, total, rows.has_next),
                Some(exact),
            )
        }
        Paging::Cursor { after, .. } => (
            Pagination::cursor(limit, after.is_some(), rows.has_next, rows.next_cursor),
            None,
        ),
    };
    Ok(Page {
        data: rows.data,
        pagination: CappedPagination {
            pagination,
            total_items_exact,
        },
    })
}

/// One incident of the tenant with its history, work notes (public ones only unless
/// `include_private`) and attachments; `None` if it does not exist in this tenant.
/// Six statements (incident, history, notes, attachments, its problem, the suggested known
/// errors), whatever the list sizes.
pub async fn get_incident(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: IncidentId,
    include_private: bool,
) -> Result<Option<IncidentDetail>> {
    let mut qb = QueryBuilder::<Postgres>::new(INCIDENT_COLUMNS);
    qb.push(" FROM rm_incidents i")
        .push(INCIDENT_JOINS)
        .push(" WHERE i.tenant_id = ")
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

    let problem_id = super::problems::problem_of_incident(&mut *conn, tenant, id).await?;
    let suggested_known_errors = if include_private {
        super::problems::suggested_known_errors(
            &mut *conn,
            tenant,
            incident.category.as_ref().map(|c| CategoryId(c.id)),
            incident.ci_id,
        )
        .await?
    } else {
        Vec::new()
    };

    Ok(Some(IncidentDetail {
        incident,
        priority_overridden,
        created_by,
        updated_by,
        history,
        work_notes,
        attachments,
        problem_id,
        suggested_known_errors,
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
