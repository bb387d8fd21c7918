//! `/api/v1/incidents`: list, create, detail, update, the lifecycle actions and work notes.
//!
//! Writes go through the domain (`commands`); reads come from the `incidents` read model.
//! Every write waits (bounded) until the read model has applied it, so the caller can read its
//! own write at once from the list and the detail (see ADR 0006).

use crate::app::AppState;
use crate::auth::{Principal, Writer};
use crate::error::{ApiError, ApiResult, FieldError, FieldErrors};
use crate::extract::{IdempotencyKeyHeader, IfMatch, StrictJson, etag, parse_strict};
use crate::tenant_rules::TenantRules;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use eventdesk_commands::incident::{Created, execute_incident};
use eventdesk_commands::{Executed, Options};
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand};
use eventdesk_domain::sla::timer::SlaRules;
use eventdesk_domain::values::{
    Description, HoldReason, Impact, IncidentStatus, Priority, ReasonText, ResolutionText, Title,
    Urgency, WorkNoteBody, WorkNoteType,
};
use eventdesk_domain::{CategoryId, CiId, IncidentId, PriorityMatrix, StreamId, TeamId, UserId};
use eventdesk_projections::queries::as_of::{NameBook, References, render_incident};
use eventdesk_projections::queries::incidents::{
    IncidentDetail, IncidentFilter, IncidentSort, get_incident, list_incidents,
};
use eventdesk_projections::queries::paging::{MAX_LIMIT, Paging};
use eventdesk_projections::queries::problems::KnownErrorView;
use eventdesk_projections::queries::{QueryError, directory};
use eventdesk_store::EventMetadata;
use serde::Deserialize;
use std::sync::Arc;

/// The read model writes wait for.
const PROJECTION: &str = "incidents";
/// The SLA timer read model, which `GET …/sla` and `GET /sla/timers` read.
const SLA_PROJECTION: &str = "sla_timers";

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::InvalidCursor => ApiError::field("cursor", "invalid or expired cursor"),
            QueryError::InvalidSort(_) => ApiError::field("sort", e.to_string()),
            QueryError::Db(db) => db.into(),
            QueryError::Store(s) => s.into(),
            other => ApiError::internal(other),
        }
    }
}

/// Event metadata for a request by `p`.
pub fn metadata(p: &Principal, headers: &HeaderMap) -> EventMetadata {
    EventMetadata {
        actor: p.actor_label(),
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        correlation_id: headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse().ok()),
        causation_id: None,
        test_mode: p.kind == crate::auth::AuthKind::TestKey,
    }
}

// ------------------------------------------------------------------------------------------
// List
// ------------------------------------------------------------------------------------------

fn parse_param<T: std::str::FromStr>(field: &str, v: &str) -> Result<T, FieldError> {
    v.parse()
        .map_err(|_| FieldError::new(field, format!("invalid value {v:?}")))
}

/// `GET /api/v1/incidents` — filters (repeated = OR), `q`, `sort`, `page`/`limit` or `cursor`.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let mut filter = IncidentFilter::default();
    let mut sort = IncidentSort::default();
    let (mut page, mut limit, mut cursor) = (1u32, 20u32, None::<String>);
    let mut errors = Vec::new();
    let raw = query.unwrap_or_default();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let r: Result<(), FieldError> = (|| {
            match k.as_ref() {
                "status" => filter.status.push(parse_param("status", &v)?),
                "priority" => filter.priority.push(parse_param("priority", &v)?),
                "impact" => filter.impact.push(parse_param("impact", &v)?),
                "urgency" => filter.urgency.push(parse_param("urgency", &v)?),
                "assignee_id" => filter.assignee_id = Some(UserId(parse_param(&k, &v)?)),
                "team_id" => filter.team_id = Some(TeamId(parse_param(&k, &v)?)),
                "category_id" => filter.category_id = Some(CategoryId(parse_param(&k, &v)?)),
                "reporter_id" => filter.reporter_id = Some(UserId(parse_param(&k, &v)?)),
                "ci_id" => filter.ci_id = Some(CiId(parse_param(&k, &v)?)),
                "created_after" => {
                    filter.created_after = Some(parse_param::<DateTime<Utc>>(&k, &v)?)
                }
                "created_before" => {
                    filter.created_before = Some(parse_param::<DateTime<Utc>>(&k, &v)?)
                }
                "q" => {
                    let q = v.trim();
                    if q.chars().count() > 200 {
                        return Err(FieldError::new("q", "at most 200 characters"));
                    }
                    if q.chars().any(char::is_control) {
                        return Err(FieldError::new("q", "must not contain control characters"));
                    }
                    filter.q = (!q.is_empty()).then(|| q.to_owned());
                }
                "sort" => {
                    sort = v
                        .parse()
                        .map_err(|_| FieldError::new("sort", format!("unknown sort {v:?}")))?
                }
                "page" => {
                    page = parse_param("page", &v)?;
                    if page == 0 {
                        return Err(FieldError::new("page", "must be at least 1"));
                    }
                }
                "limit" => {
                    limit = parse_param("limit", &v)?;
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
    if principal.is_requester() {
        filter.only_reporter = principal.user_id;
    }
    let paging = match cursor {
        Some(c) => Paging::Cursor {
            after: (!c.is_empty()).then_some(c),
            limit,
        },
        None => Paging::page(page, limit),
    };
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let result = list_incidents(&mut tx, principal.tenant, &filter, sort, paging).await?;
    tx.commit().await?;
    Ok(Json(result).into_response())
}

// ------------------------------------------------------------------------------------------
// Detail
// ------------------------------------------------------------------------------------------

/// Reads one incident as `principal` sees it (404 for another tenant's or, for a requester,
/// someone else's incident).
pub(crate) async fn read_detail_for(
    state: &AppState,
    principal: &Principal,
    id: IncidentId,
) -> ApiResult<IncidentDetail> {
    read_detail(state, principal, id).await
}

async fn read_detail(
    state: &AppState,
    principal: &Principal,
    id: IncidentId,
) -> ApiResult<IncidentDetail> {
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let detail = get_incident(&mut tx, principal.tenant, id, principal.is_agent()).await?;
    tx.commit().await?;
    let detail = detail.ok_or(ApiError::NotFound)?;
    if principal.is_requester() && Some(detail.incident.reporter.id) != principal.user_id {
        return Err(ApiError::NotFound);
    }
    Ok(detail)
}

fn with_etag(status: StatusCode, detail: IncidentDetail) -> Response {
    let version = detail.incident.version;
    let mut resp = (status, Json(detail)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// `GET /api/v1/incidents/{id}`.
///
/// With `?as_of=<RFC 3339 instant>`: the incident as it was then, folded from its events with
/// the domain's own `evolve` (404 if it did not exist yet); its ETag is the version it had.
pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let mut as_of = None;
    let mut errors = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "as_of" => match crate::routes::audit::parse_instant("as_of", &v) {
                Ok(t) => as_of = Some(t),
                Err(e) => errors.push(e),
            },
            other => errors.push(FieldError::new(other, "unknown query parameter")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let detail = match as_of {
        None => read_detail(&state, &principal, id).await?,
        Some(at) => {
            let mut tx = state.tenant_tx(principal.tenant).await?;
            let detail = eventdesk_projections::queries::as_of::incident_as_of(
                &mut tx,
                &state.store,
                principal.tenant,
                id,
                at,
                principal.is_agent(),
            )
            .await?;
            tx.commit().await?;
            let detail = detail.ok_or(ApiError::NotFound)?;
            if principal.is_requester() && Some(detail.incident.reporter.id) != principal.user_id {
                return Err(ApiError::NotFound);
            }
            detail
        }
    };
    Ok(with_etag(StatusCode::OK, detail))
}

/// A path id that is not a UUID cannot name an incident: 404, like any unknown id.
pub(crate) fn parse_id(raw: &str) -> ApiResult<IncidentId> {
    raw.parse().map(IncidentId).map_err(|_| ApiError::NotFound)
}

// ------------------------------------------------------------------------------------------
// Create
// ------------------------------------------------------------------------------------------

/// `POST /api/v1/incidents` body (the seed's `IncidentCreate`; `priority` may be omitted and
/// is then derived from impact × urgency).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentCreate {
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    impact: Option<Impact>,
    #[serde(default)]
    urgency: Option<Urgency>,
    #[serde(default)]
    category_id: Option<CategoryId>,
    #[serde(default)]
    team_id: Option<TeamId>,
    #[serde(default)]
    assignee_id: Option<UserId>,
    /// The affected configuration item (CMDB).
    #[serde(default)]
    ci_id: Option<CiId>,
}

/// Checks that a referenced configuration item exists in the caller's tenant (`422` on
/// `ci_id` otherwise, also for another tenant's).
pub(crate) async fn check_ci(
    state: &AppState,
    principal: &Principal,
    ci: Option<CiId>,
) -> ApiResult<()> {
    let Some(ci) = ci else {
        return Ok(());
    };
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let found = eventdesk_projections::queries::cmdb::get_ci(&mut tx, principal.tenant, ci).await?;
    tx.commit().await?;
    if found.is_none() {
        return Err(ApiError::field("ci_id", "no such configuration item"));
    }
    Ok(())
}

/// Checks that referenced users, teams and categories exist in the caller's tenant.
pub(crate) async fn check_refs(
    state: &AppState,
    principal: &Principal,
    category: Option<CategoryId>,
    team: Option<TeamId>,
    assignee: Option<UserId>,
) -> ApiResult<()> {
    if category.is_none() && team.is_none() && assignee.is_none() {
        return Ok(());
    }
    let t = principal.tenant;
    let mut tx = state.tenant_tx(t).await?;
    let mut errors = Vec::new();
    if let Some(c) = category
        && directory::get_category(&mut tx, t, c).await?.is_none()
    {
        errors.push(FieldError::new("category_id", "no such category"));
    }
    if let Some(tm) = team
        && directory::get_team(&mut tx, t, tm).await?.is_none()
    {
        errors.push(FieldError::new("team_id", "no such team"));
    }
    if let Some(u) = assignee
        && directory::get_user(&mut tx, t, u).await?.is_none()
    {
        errors.push(FieldError::new("assignee_id", "no such user"));
    }
    tx.commit().await?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The tenant's priority matrix and SLA policies and calendars (for the priority derivation
/// and the SLA follow-up of incident commands), briefly cached (ADR 0023).
async fn tenant_rules(state: &AppState, principal: &Principal) -> ApiResult<TenantRules> {
    if let Some(r) = state
        .tenant_rules
        .cached(principal.tenant, std::time::Instant::now())
    {
        return Ok(r);
    }
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let rules = state
        .tenant_rules
        .load(&mut tx, &state.sla_rules, principal.tenant)
        .await?;
    tx.commit().await?;
    Ok(rules)
}

/// The tenant's SLA policies and calendars, for the SLA follow-up of incident commands.
async fn sla_rules(state: &AppState, principal: &Principal) -> ApiResult<Arc<SlaRules>> {
    Ok(tenant_rules(state, principal).await?.sla)
}

async fn priority_matrix(state: &AppState, principal: &Principal) -> ApiResult<PriorityMatrix> {
    Ok(tenant_rules(state, principal).await?.matrix)
}

/// What a create reads before it appends, in one tenant-scoped transaction: that the users,
/// team, category and CI it refers to exist, the names its answer shows, and the known errors
/// it suggests (ADR 0024).
struct Prefetched {
    names: NameBook,
    suggestions: Vec<KnownErrorView>,
}

async fn prefetch(
    state: &AppState,
    principal: &Principal,
    reporter: UserId,
    value: &IncidentCreate,
) -> ApiResult<Prefetched> {
    let t = principal.tenant;
    let mut refs = References::default();
    refs.users.insert(reporter.0);
    refs.users.extend(principal.actor().user_id().map(|u| u.0));
    refs.users.extend(value.assignee_id.map(|u| u.0));
    refs.team = value.team_id.map(|x| x.0);
    refs.category = value.category_id.map(|x| x.0);
    let mut tx = state.tenant_tx(t).await?;
    let mut names = NameBook::default();
    names.load(&mut tx, t, &refs).await?;
    let ci_found = match value.ci_id {
        Some(ci) => eventdesk_projections::queries::cmdb::get_ci(&mut tx, t, ci)
            .await?
            .is_some(),
        None => true,
    };
    let mut errors = Vec::new();
    if value.category_id.is_some() && !names.has_category() {
        errors.push(FieldError::new("category_id", "no such category"));
    }
    if value.team_id.is_some() && !names.has_team() {
        errors.push(FieldError::new("team_id", "no such team"));
    }
    if let Some(u) = value.assignee_id
        && !names.has_user(u.0)
    {
        errors.push(FieldError::new("assignee_id", "no such user"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if !ci_found {
        return Err(ApiError::field("ci_id", "no such configuration item"));
    }
    // The detail shows suggestions to agents only (as `GET /incidents/{id}` does).
    let suggestions = if principal.is_agent() {
        eventdesk_projections::queries::problems::suggested_known_errors(
            &mut tx,
            t,
            value.category_id,
            value.ci_id,
        )
        .await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    Ok(Prefetched { names, suggestions })
}

/// `POST /api/v1/incidents` → 201 with the incident, `Location`, `ETag` and
/// `X-Consistency-Token`.
///
/// The answer is rendered from the create's own events, not read back from the read model, so
/// the create does not wait for the projector; the caller's next requests do, if they come
/// before the projector has the incident (ADR 0024).
pub async fn create(
    State(state): State<AppState>,
    Writer(principal): Writer,
    headers: HeaderMap,
    idem: IdempotencyKeyHeader,
    StrictJson { value, body_hash }: StrictJson<IncidentCreate>,
) -> ApiResult<Response> {
    let mut f = FieldErrors::default();
    let title = f.take(Title::parse(&value.title));
    let description = f.take(Description::parse(
        value.description.as_deref().unwrap_or(""),
    ));
    let reporter = principal.user_id.or(principal.on_behalf_of);
    if reporter.is_none() {
        f.push(
            "reporter",
            "this API key belongs to no user who could be the reporter",
        );
    }
    f.done()?;
    let (Some(title), Some(description), Some(reporter)) = (title, description, reporter) else {
        return Err(ApiError::BadRequest("invalid input".into()));
    };
    let pre = prefetch(&state, &principal, reporter, &value).await?;
    let TenantRules { matrix, sla } = tenant_rules(&state, &principal).await?;
    let id = IncidentId::new();
    let actor = principal.actor();
    let opts = Options {
        metadata: metadata(&principal, &headers),
        idempotency: idem.for_request("POST /api/v1/incidents", &body_hash),
        if_match: None,
    };
    let (impact, urgency) = (
        value.impact.unwrap_or(Impact::Medium),
        value.urgency.unwrap_or(Urgency::Medium),
    );
    let new = eventdesk_commands::incident::NewIncident {
        id,
        title,
        description,
        impact,
        urgency,
        priority: value.priority,
        matrix,
        category_id: value.category_id,
        team_id: value.team_id,
        assignee_id: value.assignee_id,
        reporter_id: reporter,
        ci_id: value.ci_id,
        actor,
        sla,
    };
    let Created { executed, events } = state.creates.create(principal.tenant, new, opts).await?;
    let cp = executed.checkpoint();
    let detail = if events.is_empty() {
        // A replayed idempotency key: the first request's incident, as the read models show
        // it (they are past its write, or soon will be).
        let id = executed
            .state
            .incident()
            .ok_or_else(|| ApiError::Internal("created incident has no state".into()))?
            .id;
        tokio::join!(
            state.wait_visible(PROJECTION, cp),
            state.wait_visible(SLA_PROJECTION, cp)
        );
        read_detail(&state, &principal, id).await?
    } else {
        let mut detail = render_incident(&events, &pre.names, principal.is_agent())?
            .ok_or_else(|| ApiError::Internal("created incident has no state".into()))?;
        detail.suggested_known_errors = pre.suggestions;
        if let Some(cp) = cp {
            state.sessions.record(principal.tenant, cp);
        }
        detail
    };
    let id = detail.incident.id;
    let mut resp = with_etag(StatusCode::CREATED, detail);
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/incidents/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(v) = cp.and_then(crate::consistency::header_value) {
        resp.headers_mut().insert(crate::consistency::HEADER, v);
    }
    Ok(resp)
}

// ------------------------------------------------------------------------------------------
// Update and actions
// ------------------------------------------------------------------------------------------

/// Runs commands against an incident and answers with its detail (for sibling modules).
pub(crate) async fn run_commands(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: IncidentId,
    if_match: Option<i64>,
    commands: Vec<IncidentCommand>,
) -> ApiResult<Response> {
    run(state, principal, headers, id, IfMatch(if_match), commands).await
}

/// Runs commands against an incident and answers with its detail.
async fn run(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: IncidentId,
    if_match: IfMatch,
    commands: Vec<IncidentCommand>,
) -> ApiResult<Response> {
    let opts = Options {
        metadata: metadata(principal, headers),
        idempotency: None,
        if_match: if_match.0,
    };
    let rules = sla_rules(state, principal).await?;
    let done: Executed<IncidentAggregate> = execute_incident(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        commands,
        &opts,
        &rules,
    )
    .await?;
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    state.wait_visible(SLA_PROJECTION, done.checkpoint()).await;
    Ok(with_etag(
        StatusCode::OK,
        read_detail(state, principal, id).await?,
    ))
}

/// Parses an optional JSON body (empty = `{}`).
fn optional_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        parse_strict(b"{}")
    } else {
        parse_strict(body)
    }
}

/// `PATCH /api/v1/incidents/{id}` body: the seed's `IncidentUpdate` (+ impact, urgency, team,
/// category and the hold reason). A status change follows the same rules as the actions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentUpdate {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    status: Option<IncidentStatus>,
    #[serde(default, deserialize_with = "double_option")]
    priority: Option<Option<Priority>>,
    #[serde(default)]
    impact: Option<Impact>,
    #[serde(default)]
    urgency: Option<Urgency>,
    #[serde(default)]
    assignee_id: Option<UserId>,
    #[serde(default)]
    team_id: Option<TeamId>,
    #[serde(default, deserialize_with = "double_option")]
    category_id: Option<Option<CategoryId>>,
    /// The affected configuration item (`null` clears it).
    #[serde(default, deserialize_with = "double_option")]
    ci_id: Option<Option<CiId>>,
    #[serde(default)]
    resolution: Option<String>,
    #[serde(default)]
    hold_reason: Option<HoldReason>,
    #[serde(default)]
    reason: Option<String>,
}

/// `null` → `Some(None)` (clear), absent → `None` (keep).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/incidents/{id}`.
pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    StrictJson { value: u, .. }: StrictJson<IncidentUpdate>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let actor = principal.actor();
    let mut f = FieldErrors::default();
    let title = u.title.as_deref().map(Title::parse).and_then(|r| f.take(r));
    let description = u
        .description
        .as_deref()
        .map(Description::parse)
        .and_then(|r| f.take(r));
    let resolution = u
        .resolution
        .as_deref()
        .map(ResolutionText::parse)
        .and_then(|r| f.take(r));
    let reason = u
        .reason
        .as_deref()
        .map(ReasonText::parse)
        .and_then(|r| f.take(r));
    f.done()?;
    check_refs(
        &state,
        &principal,
        u.category_id.flatten(),
        u.team_id,
        u.assignee_id,
    )
    .await?;
    check_ci(&state, &principal, u.ci_id.flatten()).await?;
    let (current, _) = eventdesk_commands::load::<IncidentAggregate>(
        &state.store,
        principal.tenant,
        StreamId(id.0),
    )
    .await?;
    let Some(current) = current.incident().cloned() else {
        return Err(ApiError::NotFound);
    };
    let mut commands = Vec::new();
    if title.is_some()
        || description.is_some()
        || u.priority.is_some()
        || u.impact.is_some()
        || u.urgency.is_some()
        || u.category_id.is_some()
        || u.ci_id.is_some()
    {
        commands.push(IncidentCommand::UpdateFields {
            title,
            description,
            impact: u.impact,
            urgency: u.urgency,
            priority: u.priority,
            category_id: u.category_id,
            ci_id: u.ci_id,
            matrix: priority_matrix(&state, &principal).await?,
            actor,
        });
    }
    if u.assignee_id.is_some() || u.team_id.is_some() {
        commands.push(IncidentCommand::Assign {
            assignee_id: u.assignee_id,
            team_id: u.team_id,
            actor,
        });
    }
    if let Some(target) = u.status
        && target != current.status
    {
        let require_reason = |field: &str| {
            reason
                .clone()
                .ok_or_else(|| ApiError::field(field, "required for this status change"))
        };
        let cmd = match target {
            IncidentStatus::Assigned if u.assignee_id.is_none() && u.team_id.is_none() => {
                return Err(ApiError::field(
                    "assignee_id",
                    "assigning requires assignee_id or team_id",
                ));
            }
            // The Assign command above already moves the status.
            IncidentStatus::Assigned => None,
            IncidentStatus::InProgress => Some(match current.status {
                IncidentStatus::OnHold => IncidentCommand::Resume { actor },
                IncidentStatus::Resolved => IncidentCommand::Reopen {
                    reason: require_reason("reason")?,
                    actor,
                },
                _ => IncidentCommand::StartWork { actor },
            }),
            IncidentStatus::OnHold => Some(IncidentCommand::PutOnHold {
                reason: u
                    .hold_reason
                    .ok_or_else(|| ApiError::field("hold_reason", "required to put on hold"))?,
                comment: reason.clone(),
                actor,
            }),
            IncidentStatus::Resolved => Some(IncidentCommand::Resolve {
                resolution: resolution
                    .clone()
                    .ok_or_else(|| ApiError::field("resolution", "required to resolve"))?,
                actor,
            }),
            IncidentStatus::Closed => Some(IncidentCommand::Close { actor }),
            IncidentStatus::Cancelled => Some(IncidentCommand::Cancel {
                reason: require_reason("reason")?,
                actor,
            }),
            IncidentStatus::New => {
                return Err(ApiError::Rule {
                    code: "invalid_transition",
                    message: format!("cannot move from {} back to new", current.status.as_str()),
                });
            }
        };
        commands.extend(cmd);
    }
    if commands.is_empty() {
        return Ok(with_etag(
            StatusCode::OK,
            read_detail(&state, &principal, id).await?,
        ));
    }
    run(&state, &principal, &headers, id, if_match, commands).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    #[serde(default)]
    assignee_id: Option<UserId>,
    #[serde(default)]
    team_id: Option<TeamId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    reason: HoldReason,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    resolution: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

macro_rules! action {
    ($(#[$doc:meta])* $name:ident, $body:ty, |$state:ident, $principal:ident, $b:ident, $actor:ident| $make:expr) => {
        $(#[$doc])*
        pub async fn $name(
            State($state): State<AppState>,
            $principal: Principal,
            headers: HeaderMap,
            if_match: IfMatch,
            Path(id): Path<String>,
            body: Bytes,
        ) -> ApiResult<Response> {
            let id = parse_id(&id)?;
            let $b: $body = optional_body(&body)?;
            let $actor = $principal.actor();
            let command: IncidentCommand = $make;
            run(&$state, &$principal, &headers, id, if_match, vec![command]).await
        }
    };
}

action!(
    /// `POST …/assign {assignee_id?, team_id?}`.
    assign, AssignBody, |state, principal, b, actor| {
        if b.assignee_id.is_none() && b.team_id.is_none() {
            return Err(ApiError::field("assignee_id", "assignee_id or team_id is required"));
        }
        check_refs(&state, &principal, None, b.team_id, b.assignee_id).await?;
        IncidentCommand::Assign { assignee_id: b.assignee_id, team_id: b.team_id, actor }
    }
);
action!(
    /// `POST …/start`.
    start, Empty, |state, principal, _b, actor| IncidentCommand::StartWork { actor }
);
action!(
    /// `POST …/hold {reason, comment?}`.
    hold, HoldBody, |state, principal, b, actor| IncidentCommand::PutOnHold {
        reason: b.reason,
        comment: b.comment.as_deref().map(ReasonText::parse).transpose()?,
        actor,
    }
);
action!(
    /// `POST …/resume`.
    resume, Empty, |state, principal, _b, actor| IncidentCommand::Resume { actor }
);
action!(
    /// `POST …/resolve {resolution}`.
    resolve, ResolveBody, |state, principal, b, actor| IncidentCommand::Resolve {
        resolution: ResolutionText::parse(&b.resolution)?,
        actor,
    }
);
action!(
    /// `POST …/reopen {reason}`.
    reopen, ReasonBody, |state, principal, b, actor| IncidentCommand::Reopen {
        reason: ReasonText::parse(&b.reason)?,
        actor,
    }
);
action!(
    /// `POST …/close`.
    close, Empty, |state, principal, _b, actor| IncidentCommand::Close { actor }
);
action!(
    /// `POST …/cancel {reason}`.
    cancel, ReasonBody, |state, principal, b, actor| IncidentCommand::Cancel {
        reason: ReasonText::parse(&b.reason)?,
        actor,
    }
);

// ------------------------------------------------------------------------------------------
// Work notes
// ------------------------------------------------------------------------------------------

/// `is_public` as the seed's `"Y"`/`"N"` or a boolean.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum YesNo {
    Bool(bool),
    Flag(YN),
}

#[derive(Debug, Deserialize)]
enum YN {
    Y,
    N,
}

impl YesNo {
    fn get(&self) -> bool {
        matches!(self, YesNo::Bool(true) | YesNo::Flag(YN::Y))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkNoteCreate {
    content: String,
    #[serde(default)]
    note_type: Option<WorkNoteType>,
    #[serde(default)]
    is_public: Option<YesNo>,
}

/// `POST /api/v1/incidents/{id}/work-notes` → 201 with the incident. Requesters may only add
/// public comments to their own incidents.
pub async fn add_work_note(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    StrictJson { value, .. }: StrictJson<WorkNoteCreate>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    if principal.is_requester() {
        // 404 (not 403) for someone else's incident: existence is not disclosed.
        read_detail(&state, &principal, id).await?;
    }
    let body =
        WorkNoteBody::parse(&value.content).map_err(|e| ApiError::field("content", e.message()))?;
    let is_public = principal.is_requester() || value.is_public.as_ref().is_some_and(YesNo::get);
    let note_type = if principal.is_requester() {
        WorkNoteType::WorkNote
    } else {
        value.note_type.unwrap_or(WorkNoteType::WorkNote)
    };
    let cmd = IncidentCommand::AddWorkNote {
        note_id: eventdesk_domain::WorkNoteId::new(),
        body,
        note_type,
        is_public,
        by_agent: principal.is_agent(),
        author: principal.actor(),
    };
    let mut resp = run(&state, &principal, &headers, id, IfMatch(None), vec![cmd]).await?;
    *resp.status_mut() = StatusCode::CREATED;
    Ok(resp)
}
