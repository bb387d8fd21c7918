//! Problems and the known-error database (ADR 0021): `/api/v1/problems` (list, create, detail,
//! update and the lifecycle actions), `/api/v1/problems/{id}/incidents` (link, unlink) and
//! `/api/v1/known-errors` (search).
//!
//! Writes go through the domain (`commands::problem`) and answer from the `problems` read model
//! once it has applied them (ADR 0006). Status codes beyond the conventions:
//! - an incident already linked to another problem: `409`, naming that problem;
//! - linking an incident that is not one of the tenant's: `422` on `incident_id`;
//! - unlinking an incident that is not linked: `404`;
//! - marking a known error without any workaround, or clearing a published workaround:
//!   `422 workaround_required` (on `workaround`).

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError, FieldErrors, RejectionExt};
use crate::extract::{IdempotencyKeyHeader, IfMatch, StrictJson, etag, parse_strict};
use crate::routes::cmdb::{RawPaging, parse_param};
use crate::routes::directory::{created, nullable, path_uuid};
use crate::routes::incidents::{check_ci, check_refs, metadata};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventdesk_commands::problem::{LinkError, execute_problem, link_incident, unlink_incident};
use eventdesk_commands::{CommandError, Executed, Options};
use eventdesk_domain::problem::{ProblemAggregate, ProblemCommand, ProblemError};
use eventdesk_domain::values::{
    Description, Priority, ResolutionText, RootCause, Title, Workaround,
};
use eventdesk_domain::{CategoryId, CiId, IncidentId, ProblemId, UserId};
use eventdesk_projections::queries::problems::{
    self as q, ProblemFilter, ProblemView, get_problem,
};
use serde::{Deserialize, Serialize};

/// The read model the writes wait for.
const PROJECTION: &str = "problems";

impl RejectionExt for ProblemError {
    fn to_api(&self) -> ApiError {
        match self {
            ProblemError::NotFound | ProblemError::IncidentNotLinked(_) => ApiError::NotFound,
            ProblemError::AlreadyExists => ApiError::Conflict(self.to_string()),
            ProblemError::WorkaroundRequired => ApiError::Validation(vec![FieldError::new(
                "workaround",
                "a known error needs a workaround",
            )]),
            ProblemError::InvalidTransition { .. } | ProblemError::ActionNotAllowed { .. } => {
                ApiError::Rule {
                    code: self.code(),
                    message: self.to_string(),
                }
            }
        }
    }
}

impl RejectionExt for LinkError {
    fn to_api(&self) -> ApiError {
        match self {
            LinkError::Problem(p) => p.to_api(),
            LinkError::IncidentNotFound(_) => ApiError::field("incident_id", "no such incident"),
            LinkError::LinkedElsewhere { .. } => ApiError::Conflict(self.to_string()),
        }
    }
}

/// A path id that is not a UUID names nothing: 404.
fn problem_id(raw: &str) -> ApiResult<ProblemId> {
    path_uuid(raw).map(ProblemId)
}

fn with_etag(status: StatusCode, view: &ProblemView) -> Response {
    let mut resp = (status, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(view.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The problem as the read model has it (404 if absent).
async fn read(state: &AppState, principal: &Principal, id: ProblemId) -> ApiResult<ProblemView> {
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = get_problem(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    view.ok_or(ApiError::NotFound)
}

/// Waits for the read model, then answers with the problem and its `ETag`.
async fn answer(
    state: &AppState,
    principal: &Principal,
    id: ProblemId,
    done: &Executed<ProblemAggregate>,
) -> ApiResult<Response> {
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    let view = read(state, principal, id).await?;
    Ok(with_etag(StatusCode::OK, &view))
}

/// A bounded search term (`q`), or the error naming it.
fn search_term(v: &str) -> Result<Option<String>, FieldError> {
    let q = v.trim();
    if q.chars().count() > 200 {
        return Err(FieldError::new("q", "at most 200 characters"));
    }
    if q.chars().any(char::is_control) {
        return Err(FieldError::new("q", "must not contain control characters"));
    }
    Ok((!q.is_empty()).then(|| q.to_owned()))
}

// ------------------------------------------------------------------------------------------
// List, create, detail
// ------------------------------------------------------------------------------------------

/// `GET /api/v1/problems` — filters `status`, `priority` (repeated = OR), `assignee_id`,
/// `category_id`, `ci_id`, `incident_id`, `q`; `page`/`limit` or `cursor`. Newest first.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let mut filter = ProblemFilter::default();
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
                "priority" => filter.priority.push(parse_param("priority", &v)?),
                "assignee_id" => filter.assignee_id = Some(UserId(parse_param(&k, &v)?)),
                "category_id" => filter.category_id = Some(CategoryId(parse_param(&k, &v)?)),
                "ci_id" => filter.ci_id = Some(CiId(parse_param(&k, &v)?)),
                "incident_id" => filter.incident_id = Some(IncidentId(parse_param(&k, &v)?)),
                "q" => filter.q = search_term(&v)?,
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
    let page = q::list_problems(&mut tx, principal.tenant, &filter, paging.paging()).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
}

/// `POST /api/v1/problems` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemCreate {
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    category_id: Option<CategoryId>,
    #[serde(default)]
    ci_id: Option<CiId>,
    #[serde(default)]
    assignee_id: Option<UserId>,
    #[serde(default)]
    root_cause: Option<String>,
    #[serde(default)]
    workaround: Option<String>,
}

/// `POST /api/v1/problems` → 201 with the problem, `Location` and `ETag`.
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    idem: IdempotencyKeyHeader,
    StrictJson { value, body_hash }: StrictJson<ProblemCreate>,
) -> ApiResult<Response> {
    let mut f = FieldErrors::default();
    let title = f.take(Title::parse(&value.title));
    let description = f.take(Description::parse(
        value.description.as_deref().unwrap_or(""),
    ));
    let root_cause = value
        .root_cause
        .as_deref()
        .map(RootCause::parse)
        .and_then(|r| f.take(r));
    let workaround = value
        .workaround
        .as_deref()
        .map(Workaround::parse)
        .and_then(|r| f.take(r));
    f.done()?;
    let (Some(title), Some(description)) = (title, description) else {
        return Err(ApiError::BadRequest("invalid input".into()));
    };
    check_refs(
        &state,
        &principal,
        value.category_id,
        None,
        value.assignee_id,
    )
    .await?;
    check_ci(&state, &principal, value.ci_id).await?;
    let id = ProblemId::new();
    let cmd = ProblemCommand::Create {
        id,
        title,
        description,
        priority: value.priority.unwrap_or(Priority::Medium),
        category_id: value.category_id,
        ci_id: value.ci_id,
        assignee_id: value.assignee_id,
        root_cause,
        workaround,
        actor: principal.actor(),
    };
    let opts = Options {
        metadata: metadata(&principal, &headers),
        idempotency: idem.for_request("POST /api/v1/problems", &body_hash),
        if_match: None,
    };
    let done = execute_problem(
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
        .map(|p| p.id)
        .ok_or_else(|| ApiError::Internal("created problem has no state".into()))?;
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    let view = read(&state, &principal, id).await?;
    Ok(created(
        format!("/api/v1/problems/{id}"),
        view.version,
        view,
    ))
}

/// `GET /api/v1/problems/{id}` with its `ETag`.
pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = read(&state, &principal, problem_id(&id)?).await?;
    Ok(with_etag(StatusCode::OK, &view))
}

// ------------------------------------------------------------------------------------------
// Update and actions
// ------------------------------------------------------------------------------------------

/// Runs problem commands and answers with the problem.
async fn run(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: ProblemId,
    if_match: IfMatch,
    command: ProblemCommand,
) -> ApiResult<Response> {
    let opts = Options {
        metadata: metadata(principal, headers),
        idempotency: None,
        if_match: if_match.0,
    };
    let done = execute_problem(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        vec![command],
        &opts,
    )
    .await?;
    answer(state, principal, id, &done).await
}

/// Parses an optional JSON body (empty = `{}`).
fn optional_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        parse_strict(b"{}")
    } else {
        parse_strict(body)
    }
}

/// `PATCH /api/v1/problems/{id}` body; absent fields are kept, `null` clears an optional one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemUpdate {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default, deserialize_with = "nullable")]
    category_id: Option<Option<CategoryId>>,
    #[serde(default, deserialize_with = "nullable")]
    ci_id: Option<Option<CiId>>,
    #[serde(default, deserialize_with = "nullable")]
    assignee_id: Option<Option<UserId>>,
    #[serde(default, deserialize_with = "nullable")]
    root_cause: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    workaround: Option<Option<String>>,
}

fn opt_text<T>(
    f: &mut FieldErrors,
    v: &Option<Option<String>>,
    parse: fn(&str) -> Result<T, eventdesk_domain::ValidationError>,
) -> Option<Option<T>> {
    match v {
        None => None,
        Some(None) => Some(None),
        Some(Some(s)) => f.take(parse(s)).map(Some),
    }
}

/// `PATCH /api/v1/problems/{id}`: `If-Match` → `412` when stale.
pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    StrictJson { value: u, .. }: StrictJson<ProblemUpdate>,
) -> ApiResult<Response> {
    let id = problem_id(&id)?;
    let mut f = FieldErrors::default();
    let title = u.title.as_deref().map(Title::parse).and_then(|r| f.take(r));
    let description = u
        .description
        .as_deref()
        .map(Description::parse)
        .and_then(|r| f.take(r));
    let root_cause = opt_text(&mut f, &u.root_cause, |s| RootCause::parse(s));
    let workaround = opt_text(&mut f, &u.workaround, |s| Workaround::parse(s));
    f.done()?;
    check_refs(
        &state,
        &principal,
        u.category_id.flatten(),
        None,
        u.assignee_id.flatten(),
    )
    .await?;
    check_ci(&state, &principal, u.ci_id.flatten()).await?;
    let cmd = ProblemCommand::Update {
        title,
        description,
        priority: u.priority,
        category_id: u.category_id,
        ci_id: u.ci_id,
        assignee_id: u.assignee_id,
        root_cause,
        workaround,
        actor: principal.actor(),
    };
    run(&state, &principal, &headers, id, if_match, cmd).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// `POST /api/v1/problems/{id}/investigate` (empty body): `new → investigating`.
pub async fn investigate(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = problem_id(&id)?;
    optional_body::<Empty>(&body)?;
    let cmd = ProblemCommand::StartInvestigation {
        actor: principal.actor(),
    };
    run(&state, &principal, &headers, id, if_match, cmd).await
}

/// `POST /api/v1/problems/{id}/known-error` body: the root cause and workaround to publish
/// (each defaults to the one recorded).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownErrorRequest {
    #[serde(default)]
    root_cause: Option<String>,
    #[serde(default)]
    workaround: Option<String>,
}

/// `POST /api/v1/problems/{id}/known-error`: `investigating → known_error`, published.
pub async fn mark_known_error(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = problem_id(&id)?;
    let b: KnownErrorRequest = optional_body(&body)?;
    let mut f = FieldErrors::default();
    let root_cause = b
        .root_cause
        .as_deref()
        .map(RootCause::parse)
        .and_then(|r| f.take(r));
    let workaround = b
        .workaround
        .as_deref()
        .map(Workaround::parse)
        .and_then(|r| f.take(r));
    f.done()?;
    let cmd = ProblemCommand::MarkKnownError {
        root_cause,
        workaround,
        actor: principal.actor(),
    };
    run(&state, &principal, &headers, id, if_match, cmd).await
}

/// `POST /api/v1/problems/{id}/resolve` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemResolve {
    resolution: String,
}

/// `POST /api/v1/problems/{id}/resolve`: `investigating | known_error → resolved`; each
/// linked incident then gets a work note (asynchronously, by the problem reactor).
pub async fn resolve(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    StrictJson { value, .. }: StrictJson<ProblemResolve>,
) -> ApiResult<Response> {
    let id = problem_id(&id)?;
    let resolution = ResolutionText::parse(&value.resolution)?;
    let cmd = ProblemCommand::Resolve {
        resolution,
        actor: principal.actor(),
    };
    run(&state, &principal, &headers, id, if_match, cmd).await
}

/// `POST /api/v1/problems/{id}/close` (empty body): `resolved → closed`.
pub async fn close(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = problem_id(&id)?;
    optional_body::<Empty>(&body)?;
    let cmd = ProblemCommand::Close {
        actor: principal.actor(),
    };
    run(&state, &principal, &headers, id, if_match, cmd).await
}

// ------------------------------------------------------------------------------------------
// Linked incidents
// ------------------------------------------------------------------------------------------

/// A linked incident as `GET /api/v1/problems/{id}/incidents` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkedIncident {
    /// Id.
    pub id: IncidentId,
    /// `INC000123` (absent while the incident read model lags).
    pub incident_number: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Status.
    pub status: Option<String>,
}

/// Id, number, title and status of a linked incident (the last three absent while the
/// incident read model lags).
type LinkedRow = (uuid::Uuid, Option<String>, Option<String>, Option<String>);

/// `GET /api/v1/problems/{id}/incidents` → `{"data": [...]}`, in link order.
pub async fn list_incidents(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = read(&state, &principal, problem_id(&id)?).await?;
    let ids: Vec<uuid::Uuid> = view.problem.incident_ids.iter().map(|i| i.0).collect();
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let rows: Vec<LinkedRow> = sqlx::query_as(
        "SELECT l.id, i.number, i.title, i.status FROM unnest($2::uuid[]) WITH ORDINALITY AS l(id, n) \
         LEFT JOIN rm_incidents i ON i.tenant_id = $1 AND i.id = l.id ORDER BY l.n",
    )
    .bind(principal.tenant.0)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let data: Vec<LinkedIncident> = rows
        .into_iter()
        .map(|(id, number, title, status)| LinkedIncident {
            id: IncidentId(id),
            incident_number: number,
            title,
            status,
        })
        .collect();
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}

/// `POST /api/v1/problems/{id}/incidents` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentLink {
    incident_id: IncidentId,
}

/// `POST /api/v1/problems/{id}/incidents`: links an incident (one problem per incident).
pub async fn link(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    StrictJson { value, .. }: StrictJson<IncidentLink>,
) -> ApiResult<Response> {
    let id = problem_id(&id)?;
    let opts = Options {
        metadata: metadata(&principal, &headers),
        idempotency: None,
        if_match: if_match.0,
    };
    let done = link_incident(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        value.incident_id,
        principal.actor(),
        &opts,
    )
    .await?;
    answer(&state, &principal, id, &done).await
}

/// `DELETE /api/v1/problems/{id}/incidents/{incident_id}`: unlinks it (`404` if not linked).
pub async fn unlink(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path((id, incident)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = problem_id(&id)?;
    let incident = IncidentId(path_uuid(&incident)?);
    let opts = Options {
        metadata: metadata(&principal, &headers),
        idempotency: None,
        if_match: if_match.0,
    };
    let done = unlink_incident(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        incident,
        principal.actor(),
        &opts,
    )
    .await
    .map_err(|e| match e {
        CommandError::Rejected(r) => r.to_api(),
        other => other.into(),
    })?;
    answer(&state, &principal, id, &done).await
}

// ------------------------------------------------------------------------------------------
// Known errors
// ------------------------------------------------------------------------------------------

/// `GET /api/v1/known-errors` — the known-error database (published, not closed problems),
/// newest publication first; `q` searches title, description, root cause and workaround
/// (substrings, Japanese included); `page`/`limit` or `cursor`.
pub async fn known_errors(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let mut term = None;
    let mut paging = RawPaging::default();
    let mut errors = Vec::new();
    let raw = query.unwrap_or_default();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let r: Result<(), FieldError> = (|| {
            if paging.take(&k, &v)? {
                return Ok(());
            }
            match k.as_ref() {
                "q" => term = search_term(&v)?,
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
    let page =
        q::list_known_errors(&mut tx, principal.tenant, term.as_deref(), paging.paging()).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
}
