//! Changes (ADR 0022): `/api/v1/changes` (list, create, detail, update and the lifecycle
//! actions), `/api/v1/changes/{id}/tasks`, `/api/v1/changes/{id}/approvals` (the CAB's votes),
//! `/api/v1/changes/calendar` and `/api/v1/changes/conflicts`.
//!
//! Writes go through the domain (`commands::change`) and answer from the `changes` read model
//! once it has applied them (ADR 0006). Status codes beyond the conventions:
//! - scheduling over conflicting scheduled changes without `override_conflicts: true`: `409
//!   schedule_conflict`, the message naming them (and `details` listing them);
//! - a vote by someone who is not an approver, or a second vote: `422`;
//! - an invalid window (`planned_end` not after `planned_start`): `422` on `planned_end`.

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError, FieldErrors, RejectionExt};
use crate::extract::{IdempotencyKeyHeader, IfMatch, StrictJson, etag, parse_strict};
use crate::routes::cmdb::{RawPaging, parse_param};
use crate::routes::directory::{created, nullable, path_uuid};
use crate::routes::incidents::metadata;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use eventdesk_commands::change::{execute_change, load_change};
use eventdesk_commands::{CommandError, Options};
use eventdesk_domain::change_request::{
    ChangeCommand, ChangeError, ChangeStatus, ChangeType, Quorum, RejectionPolicy, Risk,
    VoteDecision,
};
use eventdesk_domain::values::{Description, ReasonText, Title};
use eventdesk_domain::{ChangeId, ChangeTaskId, CiId, IncidentId, UserId};
use eventdesk_projections::queries::changes::{self as q, ChangeFilter, ChangeView};
use eventdesk_projections::queries::directory;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The read model the writes wait for.
const PROJECTION: &str = "changes";
/// The longest calendar range.
pub const MAX_CALENDAR_DAYS: i64 = 366;

impl RejectionExt for ChangeError {
    fn to_api(&self) -> ApiError {
        match self {
            ChangeError::NotFound | ChangeError::TaskNotFound(_) => ApiError::NotFound,
            ChangeError::AlreadyExists => ApiError::Conflict(self.to_string()),
            ChangeError::Conflicts(_) => ApiError::Conflict(format!(
                "{self}; send override_conflicts: true with a reason to schedule anyway"
            )),
            ChangeError::InvalidWindow => {
                ApiError::field("planned_end", "must be after planned_start")
            }
            ChangeError::NoApprovers => {
                ApiError::field("approvers", "at least one approver is needed")
            }
            ChangeError::DuplicateTask(_) => ApiError::Conflict(self.to_string()),
            ChangeError::InvalidTaskOrder => ApiError::field("order", self.to_string()),
            _ => ApiError::Rule {
                code: self.code(),
                message: self.to_string(),
            },
        }
    }
}

/// A path id that is not a UUID names nothing: 404.
fn change_id(raw: &str) -> ApiResult<ChangeId> {
    path_uuid(raw).map(ChangeId)
}

fn with_etag<T: Serialize>(status: StatusCode, version: i64, body: &T) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The change as the read model has it (404 if absent).
async fn read(state: &AppState, principal: &Principal, id: ChangeId) -> ApiResult<ChangeView> {
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = q::get_change(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    view.ok_or(ApiError::NotFound)
}

/// Checks that referenced users, CIs and incidents are the tenant's (`422` naming the field).
async fn check_refs(
    state: &AppState,
    principal: &Principal,
    users: &[(&'static str, UserId)],
    cis: &[CiId],
    incidents: &[IncidentId],
) -> ApiResult<()> {
    if users.is_empty() && cis.is_empty() && incidents.is_empty() {
        return Ok(());
    }
    let t = principal.tenant;
    let mut tx = state.tenant_tx(t).await?;
    let mut errors = Vec::new();
    for (field, u) in users {
        if directory::get_user(&mut tx, t, *u).await?.is_none()
            && !errors.iter().any(|e: &FieldError| e.field == *field)
        {
            errors.push(FieldError::new(*field, format!("no such user {u}")));
        }
    }
    let ci_ids: Vec<Uuid> = cis.iter().map(|c| c.0).collect();
    let found: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT id) FROM rm_cis WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(t.0)
    .bind(&ci_ids)
    .fetch_one(&mut *tx)
    .await?;
    if usize::try_from(found).unwrap_or(0) != distinct(&ci_ids) {
        errors.push(FieldError::new("ci_ids", "no such configuration item"));
    }
    let inc_ids: Vec<Uuid> = incidents.iter().map(|c| c.0).collect();
    let found: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT id) FROM rm_incidents WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(t.0)
    .bind(&inc_ids)
    .fetch_one(&mut *tx)
    .await?;
    if usize::try_from(found).unwrap_or(0) != distinct(&inc_ids) {
        errors.push(FieldError::new("incident_ids", "no such incident"));
    }
    tx.commit().await?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn distinct(ids: &[Uuid]) -> usize {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len()
}

/// Runs change commands and answers with the change.
async fn run(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: ChangeId,
    if_match: IfMatch,
    commands: Vec<ChangeCommand>,
) -> ApiResult<ChangeView> {
    let opts = Options {
        metadata: metadata(principal, headers),
        idempotency: None,
        if_match: if_match.0,
    };
    let done = execute_change(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        commands,
        &opts,
    )
    .await
    .map_err(|e| match e {
        CommandError::Rejected(ChangeError::Conflicts(ids)) => conflict_error(&ids),
        other => other.into(),
    })?;
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    read(state, principal, id).await
}

/// `409` naming the conflicting changes.
fn conflict_error(ids: &[ChangeId]) -> ApiError {
    ChangeError::Conflicts(ids.to_vec()).to_api()
}

async fn run_view(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: ChangeId,
    if_match: IfMatch,
    commands: Vec<ChangeCommand>,
) -> ApiResult<Response> {
    let view = run(state, principal, headers, id, if_match, commands).await?;
    Ok(with_etag(StatusCode::OK, view.version, &view))
}

/// Parses an optional JSON body (empty = `{}`).
fn optional_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        parse_strict(b"{}")
    } else {
        parse_strict(body)
    }
}

// ------------------------------------------------------------------------------------------
// List, create, detail, update
// ------------------------------------------------------------------------------------------

/// `GET /api/v1/changes` — filters `status`, `change_type`, `risk` (repeated = OR), `ci_id`;
/// `page`/`limit` or `cursor`. Newest first.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let mut filter = ChangeFilter::default();
    let mut paging = RawPaging::default();
    let mut errors = Vec::new();
    let raw = query.unwrap_or_default();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let r: Result<(), FieldError> = (|| {
            if paging.take(&k, &v)? {
                return Ok(());
            }
            match k.as_ref() {
                "status" => filter.status.push(parse_param("status", &v)?),
                "change_type" => filter.change_type.push(parse_param("change_type", &v)?),
                "risk" => filter.risk.push(parse_param("risk", &v)?),
                "ci_id" => filter.ci_id = Some(CiId(parse_param(&k, &v)?)),
                other => return Err(FieldError::new(other, "unknown query parameter")),
            }
            Ok(())
        })();
        if let Err(e) = r {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let page = q::list_changes(&mut tx, principal.tenant, &filter, paging.paging()).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
}

/// `POST /api/v1/changes` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeCreate {
    title: String,
    #[serde(default)]
    description: Option<String>,
    change_type: ChangeType,
    #[serde(default)]
    risk: Option<Risk>,
    #[serde(default)]
    planned_start: Option<DateTime<Utc>>,
    #[serde(default)]
    planned_end: Option<DateTime<Utc>>,
    #[serde(default)]
    ci_ids: Vec<CiId>,
    #[serde(default)]
    incident_ids: Vec<IncidentId>,
    #[serde(default)]
    approvers: Vec<UserId>,
    #[serde(default)]
    quorum: Option<Quorum>,
    #[serde(default)]
    on_rejection: Option<RejectionPolicy>,
}

fn dedup<T: Ord + Copy>(v: Vec<T>) -> Vec<T> {
    let mut seen = std::collections::BTreeSet::new();
    v.into_iter().filter(|x| seen.insert(*x)).collect()
}

/// `POST /api/v1/changes` → 201 with the change, `Location` and `ETag`.
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    idem: IdempotencyKeyHeader,
    StrictJson { value, body_hash }: StrictJson<ChangeCreate>,
) -> ApiResult<Response> {
    let mut f = FieldErrors::default();
    let title = f.take(Title::parse(&value.title));
    let description = f.take(Description::parse(
        value.description.as_deref().unwrap_or(""),
    ));
    f.done()?;
    let (Some(title), Some(description)) = (title, description) else {
        return Err(ApiError::BadRequest("invalid input".into()));
    };
    let (ci_ids, incident_ids, approvers) = (
        dedup(value.ci_ids),
        dedup(value.incident_ids),
        dedup(value.approvers),
    );
    let users: Vec<(&'static str, UserId)> = approvers.iter().map(|u| ("approvers", *u)).collect();
    check_refs(&state, &principal, &users, &ci_ids, &incident_ids).await?;
    let id = ChangeId::new();
    let cmd = ChangeCommand::Create {
        id,
        title,
        description,
        change_type: value.change_type,
        risk: value.risk.unwrap_or(Risk::Medium),
        planned_start: value.planned_start,
        planned_end: value.planned_end,
        ci_ids,
        incident_ids,
        approvers,
        quorum: value.quorum.unwrap_or(Quorum::All),
        on_rejection: value.on_rejection.unwrap_or(RejectionPolicy::Reassess),
        actor: principal.actor(),
    };
    let opts = Options {
        metadata: metadata(&principal, &headers),
        idempotency: idem.for_request("POST /api/v1/changes", &body_hash),
        if_match: None,
    };
    let done = execute_change(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        vec![cmd],
        &opts,
    )
    .await?;
    let id = done
        .state
        .state
        .as_ref()
        .map(|c| c.id)
        .ok_or_else(|| ApiError::Internal("created change has no state".into()))?;
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    let view = read(&state, &principal, id).await?;
    Ok(created(format!("/api/v1/changes/{id}"), view.version, view))
}

/// `GET /api/v1/changes/{id}` with its `ETag`.
pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = read(&state, &principal, change_id(&id)?).await?;
    Ok(with_etag(StatusCode::OK, view.version, &view))
}

/// `PATCH /api/v1/changes/{id}` body; absent fields are kept, `null` clears a window end;
/// lists replace the whole list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeUpdate {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    risk: Option<Risk>,
    #[serde(default, deserialize_with = "nullable")]
    planned_start: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    planned_end: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    ci_ids: Option<Vec<CiId>>,
    #[serde(default)]
    incident_ids: Option<Vec<IncidentId>>,
    #[serde(default)]
    approvers: Option<Vec<UserId>>,
    #[serde(default)]
    quorum: Option<Quorum>,
    #[serde(default)]
    on_rejection: Option<RejectionPolicy>,
}

/// `PATCH /api/v1/changes/{id}`: `If-Match` → `412` when stale. Allowed in draft, assess and
/// authorize; the CAB (approvers, quorum, on_rejection) only before the round's first vote.
pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    StrictJson { value: u, .. }: StrictJson<ChangeUpdate>,
) -> ApiResult<Response> {
    let id = change_id(&id)?;
    let mut f = FieldErrors::default();
    let title = u.title.as_deref().map(Title::parse).and_then(|r| f.take(r));
    let description = u
        .description
        .as_deref()
        .map(Description::parse)
        .and_then(|r| f.take(r));
    f.done()?;
    let ci_ids = u.ci_ids.map(dedup);
    let incident_ids = u.incident_ids.map(dedup);
    let approvers = u.approvers.map(dedup);
    let users: Vec<(&'static str, UserId)> = approvers
        .iter()
        .flatten()
        .map(|u| ("approvers", *u))
        .collect();
    check_refs(
        &state,
        &principal,
        &users,
        ci_ids.as_deref().unwrap_or_default(),
        incident_ids.as_deref().unwrap_or_default(),
    )
    .await?;
    let cmd = ChangeCommand::Update {
        title,
        description,
        risk: u.risk,
        planned_start: u.planned_start,
        planned_end: u.planned_end,
        ci_ids,
        incident_ids,
        approvers,
        quorum: u.quorum,
        on_rejection: u.on_rejection,
        actor: principal.actor(),
    };
    run_view(&state, &principal, &headers, id, if_match, vec![cmd]).await
}

// ------------------------------------------------------------------------------------------
// Actions
// ------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

macro_rules! simple_action {
    ($(#[$m:meta])* $name:ident, $variant:ident) => {
        $(#[$m])*
        pub async fn $name(
            State(state): State<AppState>,
            principal: Principal,
            headers: HeaderMap,
            if_match: IfMatch,
            Path(id): Path<String>,
            body: Bytes,
        ) -> ApiResult<Response> {
            let id = change_id(&id)?;
            optional_body::<Empty>(&body)?;
            let cmd = ChangeCommand::$variant {
                actor: principal.actor(),
            };
            run_view(&state, &principal, &headers, id, if_match, vec![cmd]).await
        }
    };
}

simple_action!(
    /// `POST /api/v1/changes/{id}/submit`: leaves draft (normal → assess, emergency →
    /// authorize).
    submit,
    Submit
);
simple_action!(
    /// `POST /api/v1/changes/{id}/assess`: the assessment is done (`assess → authorize`).
    assess,
    CompleteAssessment
);
simple_action!(
    /// `POST /api/v1/changes/{id}/implement`: `scheduled → implement`.
    implement,
    StartImplementation
);
simple_action!(
    /// `POST /api/v1/changes/{id}/complete`: `implement → review` (every task closed).
    complete,
    CompleteImplementation
);
simple_action!(
    /// `POST /api/v1/changes/{id}/close`: `review → closed`.
    close,
    Close
);

/// `POST /api/v1/changes/{id}/cancel` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeCancel {
    reason: String,
}

/// `POST /api/v1/changes/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    StrictJson { value, .. }: StrictJson<ChangeCancel>,
) -> ApiResult<Response> {
    let id = change_id(&id)?;
    let reason = ReasonText::parse(&value.reason)?;
    let cmd = ChangeCommand::Cancel {
        reason,
        actor: principal.actor(),
    };
    run_view(&state, &principal, &headers, id, if_match, vec![cmd]).await
}

/// `POST /api/v1/changes/{id}/schedule` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeSchedule {
    /// Schedule despite conflicting scheduled changes (recorded in the event).
    #[serde(default)]
    override_conflicts: bool,
    /// Why (required with `override_conflicts`).
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/v1/changes/{id}/schedule`: finds the conflicting scheduled changes (same or
/// dependent CIs, overlapping window); with any, `409` unless `override_conflicts: true` with
/// a `reason`.
pub async fn schedule(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = change_id(&id)?;
    let b: ChangeSchedule = optional_body(&body)?;
    let reason = match (&b.reason, b.override_conflicts) {
        (Some(r), true) => Some(ReasonText::parse(r)?),
        (None, true) => {
            return Err(ApiError::field(
                "reason",
                "is required with override_conflicts",
            ));
        }
        (Some(_), false) => {
            return Err(ApiError::field(
                "reason",
                "only with override_conflicts: true",
            ));
        }
        (None, false) => None,
    };
    let (agg, _) = load_change(&state.store, principal.tenant, id).await?;
    let change = agg.state.ok_or(ApiError::NotFound)?;
    let conflicts = match (change.planned_start, change.planned_end) {
        (Some(start), Some(end)) => {
            let mut tx = state.tenant_tx(principal.tenant).await?;
            let c =
                q::conflicts_for(&mut tx, principal.tenant, id, &change.ci_ids, start, end).await?;
            tx.commit().await?;
            c.into_iter().map(|s| s.id).collect()
        }
        _ => Vec::new(),
    };
    let cmd = ChangeCommand::Schedule {
        conflicts,
        override_reason: reason,
        actor: principal.actor(),
    };
    run_view(&state, &principal, &headers, id, if_match, vec![cmd]).await
}

// ------------------------------------------------------------------------------------------
// Tasks
// ------------------------------------------------------------------------------------------

/// `GET /api/v1/changes/{id}/tasks` → `{"data": [...]}` in order.
pub async fn list_tasks(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = read(&state, &principal, change_id(&id)?).await?;
    Ok(with_etag(
        StatusCode::OK,
        view.version,
        &serde_json::json!({ "data": view.change.tasks }),
    ))
}

/// `POST /api/v1/changes/{id}/tasks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskCreate {
    title: String,
    #[serde(default)]
    assignee_id: Option<UserId>,
}

/// `POST /api/v1/changes/{id}/tasks` → 201 with the change (the task is last).
pub async fn add_task(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    StrictJson { value, .. }: StrictJson<TaskCreate>,
) -> ApiResult<Response> {
    let id = change_id(&id)?;
    let title = Title::parse(&value.title)?;
    if let Some(u) = value.assignee_id {
        check_refs(&state, &principal, &[("assignee_id", u)], &[], &[]).await?;
    }
    let task_id = ChangeTaskId::new();
    let cmd = ChangeCommand::AddTask {
        task_id,
        title,
        assignee_id: value.assignee_id,
        actor: principal.actor(),
    };
    let view = run(&state, &principal, &headers, id, if_match, vec![cmd]).await?;
    Ok(created(
        format!("/api/v1/changes/{id}/tasks/{task_id}"),
        view.version,
        view,
    ))
}

/// `PATCH /api/v1/changes/{id}/tasks/{task_id}` body: reassign (`null` unassigns) and/or
/// close (`status: "closed"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskUpdate {
    #[serde(default, deserialize_with = "nullable")]
    assignee_id: Option<Option<UserId>>,
    #[serde(default)]
    status: Option<eventdesk_domain::change_request::TaskStatus>,
}

/// `PATCH /api/v1/changes/{id}/tasks/{task_id}`.
pub async fn update_task(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path((id, task)): Path<(String, String)>,
    StrictJson { value, .. }: StrictJson<TaskUpdate>,
) -> ApiResult<Response> {
    let id = change_id(&id)?;
    let task_id = ChangeTaskId(path_uuid(&task)?);
    if value.status == Some(eventdesk_domain::change_request::TaskStatus::Open) {
        return Err(ApiError::field("status", "a task can only be closed"));
    }
    if let Some(Some(u)) = value.assignee_id {
        check_refs(&state, &principal, &[("assignee_id", u)], &[], &[]).await?;
    }
    let mut commands = Vec::new();
    if let Some(assignee_id) = value.assignee_id {
        commands.push(ChangeCommand::AssignTask {
            task_id,
            assignee_id,
            actor: principal.actor(),
        });
    }
    if value.status.is_some() {
        commands.push(ChangeCommand::CloseTask {
            task_id,
            actor: principal.actor(),
        });
    }
    if commands.is_empty() {
        // Still a 404 for an unknown task or change.
        let view = read(&state, &principal, id).await?;
        if !view.change.tasks.iter().any(|t| t.id == task_id) {
            return Err(ApiError::NotFound);
        }
        return Ok(with_etag(StatusCode::OK, view.version, &view));
    }
    run_view(&state, &principal, &headers, id, if_match, commands).await
}

/// `POST /api/v1/changes/{id}/tasks/reorder` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskOrder {
    order: Vec<ChangeTaskId>,
}

/// `POST /api/v1/changes/{id}/tasks/reorder`: every task id in the new order.
pub async fn reorder_tasks(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    StrictJson { value, .. }: StrictJson<TaskOrder>,
) -> ApiResult<Response> {
    let id = change_id(&id)?;
    let cmd = ChangeCommand::ReorderTasks {
        order: value.order,
        actor: principal.actor(),
    };
    run_view(&state, &principal, &headers, id, if_match, vec![cmd]).await
}

// ------------------------------------------------------------------------------------------
// Approvals
// ------------------------------------------------------------------------------------------

/// The CAB's state of a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalsView {
    /// The change's status.
    pub status: ChangeStatus,
    /// The approvers.
    pub approvers: Vec<UserId>,
    /// The quorum rule.
    pub quorum: Quorum,
    /// What a rejection does.
    pub on_rejection: RejectionPolicy,
    /// The approval round (1 for the first).
    pub round: u32,
    /// The round's votes.
    pub votes: Vec<eventdesk_domain::change_request::Vote>,
    /// When the round approved it.
    pub approved_at: Option<DateTime<Utc>>,
}

impl From<&ChangeView> for ApprovalsView {
    fn from(v: &ChangeView) -> Self {
        let c = &v.change;
        Self {
            status: c.status,
            approvers: c.approvers.clone(),
            quorum: c.quorum,
            on_rejection: c.on_rejection,
            round: c.approval_round,
            votes: c.votes.clone(),
            approved_at: c.approved_at,
        }
    }
}

/// `GET /api/v1/changes/{id}/approvals`.
pub async fn approvals(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = read(&state, &principal, change_id(&id)?).await?;
    Ok(with_etag(
        StatusCode::OK,
        view.version,
        &ApprovalsView::from(&view),
    ))
}

/// `POST /api/v1/changes/{id}/approvals` body: the caller's vote.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteRequest {
    decision: VoteDecision,
    comment: String,
}

/// `POST /api/v1/changes/{id}/approvals`: the caller (a named approver) votes once; the
/// answer is the approvals after the vote (and its decision, if it decided).
pub async fn vote(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    StrictJson { value, .. }: StrictJson<VoteRequest>,
) -> ApiResult<Response> {
    let id = change_id(&id)?;
    let comment =
        ReasonText::parse(&value.comment).map_err(|e| ApiError::field("comment", e.message()))?;
    let Some(approver) = principal.user_id else {
        return Err(ApiError::Rule {
            code: "not_an_approver",
            message: "only a user named as an approver can vote".into(),
        });
    };
    let cmd = ChangeCommand::Vote {
        approver,
        decision: value.decision,
        comment,
    };
    let view = run(&state, &principal, &headers, id, if_match, vec![cmd]).await?;
    Ok(with_etag(
        StatusCode::OK,
        view.version,
        &ApprovalsView::from(&view),
    ))
}

// ------------------------------------------------------------------------------------------
// Calendar and conflicts
// ------------------------------------------------------------------------------------------

fn instant(field: &str, v: &str) -> Result<DateTime<Utc>, FieldError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| FieldError::new(field, "must be an RFC 3339 instant"))
}

/// `GET /api/v1/changes/calendar?from=&to=` → `{"data": [...]}`: the changes (not cancelled)
/// whose window overlaps `[from, to)`, by start. `to` must be after `from`, at most 366 days.
pub async fn calendar(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let (mut from, mut to) = (None, None);
    let mut errors = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "from" => match instant("from", &v) {
                Ok(t) => from = Some(t),
                Err(e) => errors.push(e),
            },
            "to" => match instant("to", &v) {
                Ok(t) => to = Some(t),
                Err(e) => errors.push(e),
            },
            other => errors.push(FieldError::new(other, "unknown query parameter")),
        }
    }
    if from.is_none() && !errors.iter().any(|e| e.field == "from") {
        errors.push(FieldError::new("from", "is required"));
    }
    if to.is_none() && !errors.iter().any(|e| e.field == "to") {
        errors.push(FieldError::new("to", "is required"));
    }
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            errors.push(FieldError::new("to", "must be after from"));
        } else if t - f > TimeDelta::days(MAX_CALENDAR_DAYS) {
            errors.push(FieldError::new(
                "to",
                format!("at most {MAX_CALENDAR_DAYS} days after from"),
            ));
        }
    }
    let (Some(from), Some(to), true) = (from, to, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let data = q::calendar(&mut tx, principal.tenant, from, to).await?;
    tx.commit().await?;
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}

/// `GET /api/v1/changes/conflicts` → `{"data": [...]}`: every open change with a window that
/// overlaps a scheduled change on the same or a dependent CI, with those changes.
pub async fn conflicts(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    if let Some((k, _)) = form_urlencoded::parse(query.unwrap_or_default().as_bytes()).next() {
        return Err(ApiError::field(k.into_owned(), "unknown query parameter"));
    }
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let data = q::all_conflicts(&mut tx, principal.tenant).await?;
    tx.commit().await?;
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}
