//! SLA configuration: business-hours calendars (`/api/v1/sla/calendars`) and SLA policies
//! (`/api/v1/sla/policies`).
//!
//! Writes go through the `sla_calendar` / `sla_policy` aggregates, which validate names,
//! definitions and targets (`422` naming the field); this layer checks what needs other
//! streams: that referenced calendars, teams and categories exist in the caller's tenant, and
//! that no active policy still uses a calendar being deactivated (`409 calendar_in_use`).
//! Every write waits until the `sla_config` read model has applied it and answers with the
//! object and its `ETag`; `If-Match` makes a write conditional (`412`).
//!
//! The built-in 24x7 calendar (used by policies and targets without a calendar) is listed first
//! by `GET /api/v1/sla/calendars` with `"id": null, "builtin": true`; it cannot be read by id
//! or changed.

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldErrors, RejectionExt};
use crate::extract::{IfMatch, StrictJson, etag};
use crate::routes::incidents::metadata;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Datelike;
use eventdesk_commands::sla::execute_on_state;
use eventdesk_commands::{Executed, Options, execute};
use eventdesk_domain::sla::calendar::{CalendarDefinition, Holiday, WeeklyRange};
use eventdesk_domain::sla::config::holidays_from_ics;
use eventdesk_domain::sla::policy::{PolicyCondition, SlaTarget};
use eventdesk_domain::sla::{
    SlaCalendarAggregate, SlaCalendarCommand, SlaCalendarError, SlaPolicyAggregate,
    SlaPolicyCommand, SlaPolicyError,
};
use eventdesk_domain::{CalendarId, SlaPolicyId, StreamId};
use eventdesk_projections::queries::directory;
use eventdesk_projections::queries::paging::{MAX_LIMIT, Paging};
use eventdesk_projections::queries::sla_config::{
    self as q, SlaCalendarView, SlaPolicyView, calendar_refs,
};
use serde::{Deserialize, Serialize};

/// The read model writes wait for.
const PROJECTION: &str = eventdesk_projections::sla_config::NAME;
/// The rank of a policy created without one.
pub const DEFAULT_RANK: i32 = 100;
/// The widest year range of one holiday import.
pub const MAX_IMPORT_YEARS: i32 = 10;

/// `NotFound` → 404, `AlreadyExists` → 409, an invalid value → 422 naming its field,
/// `Deactivated` → 422 `deactivated`.
impl RejectionExt for SlaCalendarError {
    fn to_api(&self) -> ApiError {
        match self {
            Self::Invalid { field, message } => ApiError::field(field.clone(), message.clone()),
            Self::NotFound => ApiError::NotFound,
            Self::AlreadyExists => ApiError::Conflict(self.to_string()),
            Self::Deactivated => ApiError::Rule {
                code: self.code(),
                message: self.to_string(),
            },
        }
    }
}

/// `NotFound` → 404, `AlreadyExists` → 409, an invalid value → 422 naming its field.
impl RejectionExt for SlaPolicyError {
    fn to_api(&self) -> ApiError {
        match self {
            Self::Invalid { field, message } => ApiError::field(field.clone(), message.clone()),
            Self::NotFound => ApiError::NotFound,
            Self::AlreadyExists => ApiError::Conflict(self.to_string()),
        }
    }
}

/// A `409` with a specific code (the shared `Conflict` is always `conflict`).
fn state_conflict(code: &str, message: String) -> Response {
    let body = serde_json::json!({
        "error": { "code": code, "message": message, "details": [] }
    });
    (StatusCode::CONFLICT, Json(body)).into_response()
}

fn path_uuid(raw: &str) -> ApiResult<uuid::Uuid> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// `null` → `Some(None)` (clear), absent → `None` (keep).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `body` as JSON with `status` and `ETag: "<version>"` (plus `Location` when given).
fn with_etag<T: Serialize>(
    status: StatusCode,
    version: i64,
    location: Option<String>,
    body: &T,
) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if let Some(l) = location
        && let Ok(v) = HeaderValue::from_str(&l)
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn options(principal: &Principal, headers: &HeaderMap, if_match: IfMatch) -> Options {
    Options {
        metadata: metadata(principal, headers),
        if_match: if_match.0,
        ..Default::default()
    }
}

/// `?page=&limit=` or `?cursor=&limit=`.
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
    fn paging(
        q: Result<Query<Self>, axum::extract::rejection::QueryRejection>,
    ) -> ApiResult<Paging> {
        let Query(p) = q.map_err(|e| ApiError::field("query", e.body_text()))?;
        let limit = p.limit.unwrap_or(20);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        if p.page == Some(0) {
            return Err(ApiError::field("page", "must be at least 1"));
        }
        Ok(match p.cursor {
            Some(c) => Paging::Cursor {
                after: (!c.is_empty()).then_some(c),
                limit,
            },
            None => Paging::page(p.page.unwrap_or(1), limit),
        })
    }
}

// ------------------------------------------------------------------------------------------
// Calendars
// ------------------------------------------------------------------------------------------

/// `POST /api/v1/sla/calendars` body: a name and the definition's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarCreate {
    name: String,
    time_zone: String,
    weekly_hours: Vec<WeeklyRange>,
    #[serde(default)]
    holidays: Vec<Holiday>,
}

/// `PATCH /api/v1/sla/calendars/{id}` body: absent fields are kept; `weekly_hours` and
/// `holidays` replace the whole list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    weekly_hours: Option<Vec<WeeklyRange>>,
    #[serde(default)]
    holidays: Option<Vec<Holiday>>,
}

/// `POST /api/v1/sla/calendars/{id}/holidays/import` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolidayImport {
    /// The iCalendar text (`BEGIN:VCALENDAR` …).
    ics: String,
    /// Replace every existing holiday instead of merging (default false).
    #[serde(default)]
    replace: bool,
    /// First year of recurring events to expand (default: this year).
    #[serde(default)]
    from_year: Option<i32>,
    /// Last year (default: `from_year + 1`).
    #[serde(default)]
    to_year: Option<i32>,
}

async fn read_calendar(
    state: &AppState,
    principal: &Principal,
    id: CalendarId,
) -> ApiResult<SlaCalendarView> {
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = q::get_calendar(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    view.ok_or(ApiError::NotFound)
}

/// Waits for the read model, then answers with the calendar and its `ETag`.
async fn calendar_response(
    state: &AppState,
    principal: &Principal,
    id: CalendarId,
    done: Executed<SlaCalendarAggregate>,
    status: StatusCode,
) -> ApiResult<Response> {
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    state.tenant_rules.invalidate(principal.tenant);
    let view = read_calendar(state, principal, id).await?;
    let location = (status == StatusCode::CREATED).then(|| format!("/api/v1/sla/calendars/{id}"));
    Ok(with_etag(status, view.version, location, &view))
}

/// `POST /api/v1/sla/calendars`.
pub async fn create_calendar(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value: c, .. }: StrictJson<CalendarCreate>,
) -> ApiResult<Response> {
    let id = CalendarId::new();
    let cmd = SlaCalendarCommand::Create {
        id,
        name: c.name,
        definition: CalendarDefinition {
            time_zone: c.time_zone,
            weekly_hours: c.weekly_hours,
            holidays: c.holidays,
        },
        actor: principal.actor(),
    };
    let done = execute::<SlaCalendarAggregate>(
        &state.store,
        &*state.clock,
        principal.tenant,
        StreamId(id.0),
        cmd,
        &options(&principal, &headers, IfMatch(None)),
    )
    .await?;
    calendar_response(&state, &principal, id, done, StatusCode::CREATED).await
}

/// `GET /api/v1/sla/calendars`: the built-in 24x7 calendar first, then the tenant's.
pub async fn list_calendars(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let paging = ListParams::paging(q)?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let page = q::list_calendars(&mut tx, principal.tenant, paging).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
}

/// `GET /api/v1/sla/calendars/{id}`.
pub async fn get_calendar(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = CalendarId(path_uuid(&id)?);
    let view = read_calendar(&state, &principal, id).await?;
    Ok(with_etag(StatusCode::OK, view.version, None, &view))
}

/// `PATCH /api/v1/sla/calendars/{id}`: the given parts replace the current ones; the new
/// definition is validated as a whole.
pub async fn update_calendar(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    if_match: IfMatch,
    StrictJson { value: u, .. }: StrictJson<CalendarUpdate>,
) -> ApiResult<Response> {
    let id = CalendarId(path_uuid(&id)?);
    let actor = principal.actor();
    let done = execute_on_state::<SlaCalendarAggregate, _>(
        &state.store,
        &*state.clock,
        principal.tenant,
        StreamId(id.0),
        |agg| {
            let cal = agg.state.as_ref().ok_or(SlaCalendarError::NotFound)?;
            let redefined =
                u.time_zone.is_some() || u.weekly_hours.is_some() || u.holidays.is_some();
            let current = &cal.definition;
            let definition = redefined.then(|| CalendarDefinition {
                time_zone: u.time_zone.unwrap_or_else(|| current.time_zone.clone()),
                weekly_hours: u
                    .weekly_hours
                    .unwrap_or_else(|| current.weekly_hours.clone()),
                holidays: u.holidays.unwrap_or_else(|| current.holidays.clone()),
            });
            Ok(SlaCalendarCommand::Update {
                name: u.name,
                definition,
                actor,
            })
        },
        &options(&principal, &headers, if_match),
    )
    .await?;
    calendar_response(&state, &principal, id, done, StatusCode::OK).await
}

/// `DELETE /api/v1/sla/calendars/{id}`: deactivates the calendar. Refused with
/// `409 calendar_in_use` while an active policy refers to it. Timers already measured on it
/// keep it.
pub async fn delete_calendar(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let id = CalendarId(path_uuid(&id)?);
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let users = q::active_policies_using_calendar(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    if !users.is_empty() {
        let ids: Vec<String> = users.iter().map(ToString::to_string).collect();
        return Ok(state_conflict(
            "calendar_in_use",
            format!(
                "the calendar is used by active SLA policies ({}); change or deactivate them first",
                ids.join(", ")
            ),
        ));
    }
    let done = execute::<SlaCalendarAggregate>(
        &state.store,
        &*state.clock,
        principal.tenant,
        StreamId(id.0),
        SlaCalendarCommand::Deactivate {
            actor: principal.actor(),
        },
        &options(&principal, &headers, if_match),
    )
    .await?;
    calendar_response(&state, &principal, id, done, StatusCode::OK).await
}

/// `POST /api/v1/sla/calendars/{id}/holidays/import`: reads the holidays of an iCalendar file
/// in the calendar's own time zone and merges them in (an imported holiday replaces an existing
/// one on the same date), or replaces all holidays with `"replace": true`. A line the parser
/// rejects is `422` on `ics`, the message starting with `line N:`.
pub async fn import_holidays(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    if_match: IfMatch,
    StrictJson { value: b, .. }: StrictJson<HolidayImport>,
) -> ApiResult<Response> {
    let id = CalendarId(path_uuid(&id)?);
    let this_year = state.clock.now().year();
    let from = b.from_year.unwrap_or(this_year);
    let to = b.to_year.unwrap_or(from + 1);
    let mut f = FieldErrors::default();
    if !(1900..=2200).contains(&from) {
        f.push("from_year", "must be between 1900 and 2200");
    }
    if to < from || to - from >= MAX_IMPORT_YEARS {
        f.push(
            "to_year",
            format!(
                "must be from from_year to from_year + {}",
                MAX_IMPORT_YEARS - 1
            ),
        );
    }
    f.done()?;
    let actor = principal.actor();
    let done = execute_on_state::<SlaCalendarAggregate, _>(
        &state.store,
        &*state.clock,
        principal.tenant,
        StreamId(id.0),
        |agg| {
            let cal = agg.state.as_ref().ok_or(SlaCalendarError::NotFound)?;
            let holidays = holidays_from_ics(&cal.definition, &b.ics, from, to)?;
            Ok(SlaCalendarCommand::ImportHolidays {
                holidays,
                replace: b.replace,
                actor,
            })
        },
        &options(&principal, &headers, if_match),
    )
    .await?;
    calendar_response(&state, &principal, id, done, StatusCode::OK).await
}

// ------------------------------------------------------------------------------------------
// Policies
// ------------------------------------------------------------------------------------------

/// `POST /api/v1/sla/policies` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyCreate {
    name: String,
    /// Lower is tried first (default 100).
    #[serde(default)]
    rank: Option<i32>,
    /// Default `{}`: every incident.
    #[serde(default)]
    condition: Option<PolicyCondition>,
    /// Default: the built-in 24x7 calendar.
    #[serde(default)]
    calendar_id: Option<CalendarId>,
    targets: Vec<SlaTarget>,
}

/// `PATCH /api/v1/sla/policies/{id}` body: absent fields are kept; `condition` and `targets`
/// replace the whole value; `calendar_id: null` returns to the built-in 24x7 calendar.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    rank: Option<i32>,
    #[serde(default)]
    condition: Option<PolicyCondition>,
    #[serde(default, deserialize_with = "nullable")]
    calendar_id: Option<Option<CalendarId>>,
    #[serde(default)]
    targets: Option<Vec<SlaTarget>>,
}

/// Every referenced calendar must be an active calendar of the tenant, and the condition's
/// team and category must exist in it (`422` naming the field).
async fn check_references(
    state: &AppState,
    principal: &Principal,
    calendars: &[(String, CalendarId)],
    condition: Option<&PolicyCondition>,
) -> ApiResult<()> {
    let tenant = principal.tenant;
    let mut tx = state.tenant_tx(tenant).await?;
    let mut f = FieldErrors::default();
    for (field, id) in calendars {
        match q::get_calendar(&mut tx, tenant, *id).await? {
            None => f.push(field, format!("no such calendar {id}")),
            Some(c) if !c.active => f.push(field, format!("calendar {id} is deactivated")),
            Some(_) => {}
        }
    }
    if let Some(c) = condition {
        if let Some(team) = c.team_id
            && directory::get_team(&mut tx, tenant, team).await?.is_none()
        {
            f.push("condition.team_id", format!("no such team {team}"));
        }
        if let Some(cat) = c.category_id
            && directory::get_category(&mut tx, tenant, cat)
                .await?
                .is_none()
        {
            f.push("condition.category_id", format!("no such category {cat}"));
        }
    }
    tx.commit().await?;
    f.done()
}

async fn read_policy(
    state: &AppState,
    principal: &Principal,
    id: SlaPolicyId,
) -> ApiResult<SlaPolicyView> {
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = q::get_policy(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    view.ok_or(ApiError::NotFound)
}

/// Runs one policy command, waits for the read model, answers with the policy and its `ETag`.
async fn run_policy(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: SlaPolicyId,
    if_match: IfMatch,
    command: SlaPolicyCommand,
    status: StatusCode,
) -> ApiResult<Response> {
    let done = execute::<SlaPolicyAggregate>(
        &state.store,
        &*state.clock,
        principal.tenant,
        StreamId(id.0),
        command,
        &options(principal, headers, if_match),
    )
    .await?;
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    state.tenant_rules.invalidate(principal.tenant);
    let view = read_policy(state, principal, id).await?;
    let location = (status == StatusCode::CREATED).then(|| format!("/api/v1/sla/policies/{id}"));
    Ok(with_etag(status, view.version, location, &view))
}

/// `POST /api/v1/sla/policies`.
pub async fn create_policy(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value: p, .. }: StrictJson<PolicyCreate>,
) -> ApiResult<Response> {
    let condition = p.condition.unwrap_or_default();
    check_references(
        &state,
        &principal,
        &calendar_refs(p.calendar_id, &p.targets),
        Some(&condition),
    )
    .await?;
    let id = SlaPolicyId::new();
    let cmd = SlaPolicyCommand::Create {
        id,
        name: p.name,
        rank: p.rank.unwrap_or(DEFAULT_RANK),
        condition,
        calendar_id: p.calendar_id,
        targets: p.targets,
        actor: principal.actor(),
    };
    run_policy(
        &state,
        &principal,
        &headers,
        id,
        IfMatch(None),
        cmd,
        StatusCode::CREATED,
    )
    .await
}

/// `GET /api/v1/sla/policies`: in evaluation order (rank, then age).
pub async fn list_policies(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let paging = ListParams::paging(q)?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let page = q::list_policies(&mut tx, principal.tenant, paging).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
}

/// `GET /api/v1/sla/policies/{id}`.
pub async fn get_policy(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = SlaPolicyId(path_uuid(&id)?);
    let view = read_policy(&state, &principal, id).await?;
    Ok(with_etag(StatusCode::OK, view.version, None, &view))
}

/// `PATCH /api/v1/sla/policies/{id}`.
pub async fn update_policy(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    if_match: IfMatch,
    StrictJson { value: u, .. }: StrictJson<PolicyUpdate>,
) -> ApiResult<Response> {
    let id = SlaPolicyId(path_uuid(&id)?);
    let mut refs = calendar_refs(u.calendar_id.flatten(), &[]);
    if let Some(t) = &u.targets {
        refs.extend(calendar_refs(None, t));
    }
    check_references(&state, &principal, &refs, u.condition.as_ref()).await?;
    let cmd = SlaPolicyCommand::Update {
        name: u.name,
        rank: u.rank,
        condition: u.condition,
        calendar_id: u.calendar_id,
        targets: u.targets,
        actor: principal.actor(),
    };
    run_policy(
        &state,
        &principal,
        &headers,
        id,
        if_match,
        cmd,
        StatusCode::OK,
    )
    .await
}

/// `DELETE /api/v1/sla/policies/{id}`: deactivates the policy (new incidents no longer get
/// it; reactivate with `POST …/reactivate`).
pub async fn delete_policy(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let id = SlaPolicyId(path_uuid(&id)?);
    let cmd = SlaPolicyCommand::Deactivate {
        actor: principal.actor(),
    };
    run_policy(
        &state,
        &principal,
        &headers,
        id,
        if_match,
        cmd,
        StatusCode::OK,
    )
    .await
}

/// `POST /api/v1/sla/policies/{id}/reactivate`: refused with `409 calendar_deactivated` if a
/// calendar it refers to has been deactivated meanwhile (`PATCH` the policy's calendars — a
/// deactivated policy may be edited — then reactivate).
pub async fn reactivate_policy(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let id = SlaPolicyId(path_uuid(&id)?);
    let current = read_policy(&state, &principal, id).await?;
    if !current.active {
        let mut tx = state.tenant_tx(principal.tenant).await?;
        for (field, cal) in current.calendar_refs() {
            let active = q::get_calendar(&mut tx, principal.tenant, cal)
                .await?
                .is_some_and(|c| c.active);
            if !active {
                return Ok(state_conflict(
                    "calendar_deactivated",
                    format!(
                        "{field} refers to calendar {cal}, which is deactivated; change the \
                         policy's calendars first"
                    ),
                ));
            }
        }
        tx.commit().await?;
    }
    let cmd = SlaPolicyCommand::Reactivate {
        actor: principal.actor(),
    };
    run_policy(
        &state,
        &principal,
        &headers,
        id,
        if_match,
        cmd,
        StatusCode::OK,
    )
    .await
}
