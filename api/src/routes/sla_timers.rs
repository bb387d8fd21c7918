//! SLA timers: `GET /api/v1/incidents/{id}/sla` and `GET /api/v1/sla/timers`.
//!
//! The stored timers come from the `sla_timers` read model; the figures that move with time
//! (business elapsed and remaining, percent, breached-by-now) are computed at the request's
//! instant with the timer's calendar, so they are exact at any moment, not only at events.

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::routes::incidents::{parse_id, read_detail_for};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use eventdesk_domain::sla::timer::{SlaRules, SlaTimer};
use eventdesk_domain::{CalendarId, IncidentId, SlaPolicyId};
use eventdesk_projections::queries::paging::{MAX_LIMIT, Pagination, Paging};
use eventdesk_projections::queries::sla_timers::{
    TimerFilter, TimerListItem, TimerState, incident_timers, list_timers,
};
use serde::Serialize;

/// One timer as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TimerView {
    /// `response` or `resolution`.
    pub metric: &'static str,
    /// 1 for the first; the resolution timer counts reopens.
    pub cycle: u32,
    /// `in_progress`, `paused`, `completed` or `cancelled`.
    pub stage: &'static str,
    /// When the clock started.
    pub started_at: DateTime<Utc>,
    /// The current due time.
    pub due_at: DateTime<Utc>,
    /// The due time first promised for this cycle.
    pub original_due_at: DateTime<Utc>,
    /// When it stopped.
    pub stopped_at: Option<DateTime<Utc>>,
    /// The target in business seconds.
    pub target_seconds: i64,
    /// Business seconds elapsed (pauses excluded), at the time of the request.
    pub business_elapsed_seconds: i64,
    /// Target minus elapsed; negative after a breach.
    pub business_remaining_seconds: i64,
    /// Wall-clock seconds spent on hold.
    pub pause_duration_seconds: i64,
    /// Business seconds spent on hold (closed pauses).
    pub paused_business_seconds: i64,
    /// Elapsed in percent of the target.
    pub percent: i64,
    /// Whether the target is missed.
    pub breached: bool,
    /// The highest threshold recorded (0, 50, 75, 90 or 100).
    pub last_threshold: u8,
    /// The policy (null = the built-in default).
    pub policy_id: Option<SlaPolicyId>,
    /// The calendar (null = 24x7).
    pub calendar_id: Option<CalendarId>,
}

fn view(t: &SlaTimer, rules: &SlaRules, now: DateTime<Utc>) -> TimerView {
    let (_, cal) = rules.calendar(t.basis.calendar_id);
    let p = t.progress(cal, now);
    TimerView {
        metric: t.metric.as_str(),
        cycle: t.cycle,
        stage: t.stage.as_str(),
        started_at: t.started_at,
        due_at: t.due_at,
        original_due_at: t.original_due_at,
        stopped_at: t.stopped_at,
        target_seconds: t.basis.target_secs,
        business_elapsed_seconds: p.business_elapsed_secs,
        business_remaining_seconds: p.business_remaining_secs,
        pause_duration_seconds: p.paused_wall_secs,
        paused_business_seconds: t.paused_business_secs,
        percent: p.percent,
        breached: p.breached,
        last_threshold: t.last_threshold(),
        policy_id: t.basis.policy_id,
        calendar_id: t.basis.calendar_id,
    }
}

/// The SLA of one incident.
#[derive(Debug, Serialize)]
pub struct IncidentSla {
    /// The incident.
    pub incident_id: IncidentId,
    /// The current response timer.
    pub response: Option<TimerView>,
    /// The current resolution timer.
    pub resolution: Option<TimerView>,
    /// Every cycle of both timers, response first, oldest cycle first.
    pub timers: Vec<TimerView>,
}

/// `GET /api/v1/incidents/{id}/sla`.
pub async fn incident_sla(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    // Visibility exactly as for the incident itself (404 across tenants and, for requesters,
    // for someone else's incident).
    read_detail_for(&state, &principal, id).await?;
    let now = state.clock.now();
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let timers = incident_timers(&mut tx, principal.tenant, id).await?;
    let rules = state.sla_rules.load(&mut tx, principal.tenant).await?;
    tx.commit().await?;
    let views: Vec<TimerView> = timers.iter().map(|t| view(t, &rules, now)).collect();
    let current = |metric: &str| {
        views
            .iter()
            .filter(|v| v.metric == metric)
            .max_by_key(|v| v.cycle)
            .cloned()
    };
    Ok(Json(IncidentSla {
        incident_id: id,
        response: current("response"),
        resolution: current("resolution"),
        timers: views.clone(),
    })
    .into_response())
}

/// One row of the timer list.
#[derive(Debug, Serialize)]
pub struct TimerListView {
    /// The incident.
    pub incident_id: IncidentId,
    /// Its number.
    pub incident_number: String,
    /// Its title.
    pub title: String,
    /// Its status.
    pub status: String,
    /// Its priority.
    pub priority: String,
    /// The timer.
    #[serde(flatten)]
    pub timer: TimerView,
}

/// A page of timers.
#[derive(Debug, Serialize)]
pub struct TimerPage {
    /// The timers.
    pub data: Vec<TimerListView>,
    /// As for every list.
    pub pagination: Pagination,
}

fn parse<T: std::str::FromStr>(field: &str, v: &str) -> Result<T, FieldError> {
    v.parse()
        .map_err(|_| FieldError::new(field, format!("invalid value {v:?}")))
}

/// `GET /api/v1/sla/timers?state=at_risk|breached|paused|active|stopped&metric=&priority=&team_id=&assignee_id=&page=&limit=&cursor=`.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let mut filter = TimerFilter::default();
    let (mut page, mut limit, mut cursor) = (1u32, 20u32, None::<String>);
    let mut errors = Vec::new();
    let raw = query.unwrap_or_default();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let r: Result<(), FieldError> = (|| {
            match k.as_ref() {
                "state" => {
                    filter.state = Some(TimerState::parse(&v).ok_or_else(|| {
                        FieldError::new(
                            "state",
                            format!(
                                "unknown value {v:?}; expected one of: {}",
                                TimerState::NAMES.join(", ")
                            ),
                        )
                    })?)
                }
                "metric" => {
                    if v != "response" && v != "resolution" {
                        return Err(FieldError::new("metric", "must be response or resolution"));
                    }
                    filter.metric = Some(v.into_owned());
                }
                "priority" => {
                    let p: eventdesk_domain::values::Priority = parse("priority", &v)?;
                    filter.priority = Some(p.as_str().to_owned());
                }
                "team_id" => filter.team_id = Some(parse("team_id", &v)?),
                "assignee_id" => filter.assignee_id = Some(parse("assignee_id", &v)?),
                "page" => {
                    page = parse("page", &v)?;
                    if page == 0 {
                        return Err(FieldError::new("page", "must be at least 1"));
                    }
                }
                "limit" => {
                    limit = parse("limit", &v)?;
                    if limit == 0 || limit > MAX_LIMIT {
                        return Err(FieldError::new(
                            "limit",
                            format!("must be between 1 and {MAX_LIMIT}"),
                        ));
                    }
                }
                "cursor" => cursor = Some(v.into_owned()),
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
    let paging = match cursor {
        Some(c) => Paging::Cursor {
            after: (!c.is_empty()).then_some(c),
            limit,
        },
        None => Paging::page(page, limit),
    };
    let now = state.clock.now();
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let result = list_timers(&mut tx, principal.tenant, &filter, paging).await?;
    let rules = state.sla_rules.load(&mut tx, principal.tenant).await?;
    tx.commit().await?;
    let data = result
        .data
        .iter()
        .map(|item: &TimerListItem| TimerListView {
            incident_id: item.incident_id,
            incident_number: item.incident_number.clone(),
            title: item.title.clone(),
            status: item.status.clone(),
            priority: item.priority.clone(),
            timer: view(&item.timer, &rules, now),
        })
        .collect();
    Ok(Json(TimerPage {
        data,
        pagination: result.pagination,
    })
    .into_response())
}
