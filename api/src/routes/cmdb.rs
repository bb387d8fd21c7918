//! The CMDB (ADR 0017): `/api/v1/cis` (configuration items, their relationships and impact
//! analysis) and `/api/v1/ci-types` (the tenant's custom CI types).
//!
//! Writes go through the domain (`commands::cmdb`) and answer from the `cmdb` read model once
//! it has applied them (ADR 0006). Status codes beyond the conventions:
//! - a custom type's `key` already used in the tenant, or a relationship that already exists
//!   (same source, target and type): `409`;
//! - a `depends_on` / `runs_on` relationship that would close a dependency cycle:
//!   `422 dependency_cycle`, the message naming the cycle;
//! - a relationship to a retired CI, or a change to one: `422 ci_retired`;
//! - a relationship whose other end is not a CI of the tenant: `404`, as for the CI itself.

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError, FieldErrors, RejectionExt};
use crate::extract::{IfMatch, StrictJson, etag, parse_strict};
use crate::routes::directory::{created, nullable, path_uuid, query_params};
use crate::routes::incidents::metadata;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventdesk_auth::rbac::{Action, Permission, Resource};
use eventdesk_commands::cmdb::{
    NewRelationship, ci_schema, create_ci_type as create_type_command,
    create_relationship as create_relationship_command,
    delete_relationship as delete_relationship_command, execute_ci, resolve_ci_type,
};
use eventdesk_commands::{CommandError, Options};
use eventdesk_domain::cmdb::{
    BuiltinCiType, CiCommand, CiError, CiName, CiSchema, CiStatus, CiTypeCommand, CiTypeError,
    CiTypeKey, FieldIssue, RelationshipError, RelationshipType,
};
use eventdesk_domain::values::Description;
use eventdesk_domain::{CiId, CiRelationshipId, CiTypeId, TeamId};
use eventdesk_projections::queries::cmdb::{
    self as q, CiFilter, DEFAULT_IMPACT_DEPTH, Direction, IncidentScope, MAX_IMPACT_DEPTH,
    RelationshipFilter,
};
use eventdesk_projections::queries::directory;
use eventdesk_projections::queries::paging::{MAX_LIMIT, Paging};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The read model the writes wait for.
const PROJECTION: &str = "cmdb";

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

fn issues(list: &[FieldIssue]) -> ApiError {
    ApiError::Validation(
        list.iter()
            .map(|i| FieldError::new(&i.field, &i.message))
            .collect(),
    )
}

impl RejectionExt for CiError {
    fn to_api(&self) -> ApiError {
        match self {
            CiError::NotFound => ApiError::NotFound,
            CiError::AlreadyExists => ApiError::Conflict(self.to_string()),
            CiError::InvalidAttributes(list) => issues(list),
            CiError::InvalidStatus { .. } => ApiError::field(
                "status",
                "retired cannot be set directly: use POST /api/v1/cis/{id}/retire",
            ),
            CiError::Retired => ApiError::Rule {
                code: self.code(),
                message: self.to_string(),
            },
        }
    }
}

impl RejectionExt for CiTypeError {
    fn to_api(&self) -> ApiError {
        match self {
            CiTypeError::NotFound => ApiError::NotFound,
            CiTypeError::AlreadyExists => ApiError::Conflict(self.to_string()),
            CiTypeError::ReservedKey(_) => ApiError::field("key", "is a built-in type's key"),
        }
    }
}

impl RejectionExt for RelationshipError {
    fn to_api(&self) -> ApiError {
        match self {
            RelationshipError::NotFound | RelationshipError::CiNotFound(_) => ApiError::NotFound,
            RelationshipError::AlreadyExists => ApiError::Conflict(self.to_string()),
            RelationshipError::SelfRelationship => {
                ApiError::field("target_id", "must be another configuration item")
            }
            RelationshipError::CiRetired(_) | RelationshipError::DependencyCycle { .. } => {
                ApiError::Rule {
                    code: self.code(),
                    message: self.to_string(),
                }
            }
        }
    }
}

/// `409` for a taken unique key (the generic mapping says 422).
fn taken_is_conflict<E>(e: CommandError<E>, message: &str) -> ApiError
where
    E: std::error::Error + RejectionExt + Send + Sync + 'static,
{
    match e {
        CommandError::Taken { .. } => ApiError::Conflict(message.to_owned()),
        other => other.into(),
    }
}

// ------------------------------------------------------------------------------------------
// Shared
// ------------------------------------------------------------------------------------------

/// A path id that is not a UUID names nothing: 404.
fn ci_id(raw: &str) -> ApiResult<CiId> {
    path_uuid(raw).map(CiId)
}

fn with_etag<T: serde::Serialize>(status: StatusCode, version: i64, body: &T) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The CI as the read model has it (404 if absent).
async fn read_ci(state: &AppState, principal: &Principal, id: CiId) -> ApiResult<q::CiView> {
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = q::get_ci(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    view.ok_or(ApiError::NotFound)
}

/// `owner_team_id` must be a team of the caller's tenant.
async fn check_team(
    state: &AppState,
    principal: &Principal,
    team: Option<TeamId>,
) -> ApiResult<()> {
    let Some(team) = team else {
        return Ok(());
    };
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let found = directory::get_team(&mut tx, principal.tenant, team).await?;
    tx.commit().await?;
    if found.is_none() {
        return Err(ApiError::field("owner_team_id", "no such team"));
    }
    Ok(())
}

pub(crate) fn parse_param<T: std::str::FromStr>(field: &str, v: &str) -> Result<T, FieldError> {
    v.parse()
        .map_err(|_| FieldError::new(field, format!("invalid value {v:?}")))
}

/// `page`, `limit` and `cursor` of a raw query, or the error of the one that is wrong.
#[derive(Debug)]
pub(crate) struct RawPaging {
    page: u32,
    limit: u32,
    cursor: Option<String>,
}

impl Default for RawPaging {
    fn default() -> Self {
        Self {
            page: 1,
            limit: 20,
            cursor: None,
        }
    }
}

impl RawPaging {
    /// Takes `k=v` if it is a paging parameter (`Ok(true)`).
    pub(crate) fn take(&mut self, k: &str, v: &str) -> Result<bool, FieldError> {
        match k {
            "page" => {
                self.page = parse_param("page", v)?;
                if self.page == 0 {
                    return Err(FieldError::new("page", "must be at least 1"));
                }
            }
            "limit" => {
                self.limit = parse_param("limit", v)?;
                if self.limit == 0 || self.limit > MAX_LIMIT {
                    return Err(FieldError::new(
                        "limit",
                        format!("must be between 1 and {MAX_LIMIT}"),
                    ));
                }
            }
            "cursor" => self.cursor = Some(v.to_owned()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(crate) fn paging(self) -> Paging {
        match self.cursor {
            Some(c) => Paging::Cursor {
                after: (!c.is_empty()).then_some(c),
                limit: self.limit,
            },
            None => Paging::page(self.page, self.limit),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Configuration items
// ------------------------------------------------------------------------------------------

/// `GET /api/v1/cis` — filters `type`, `status` (repeated = OR), `owner_team_id`, `q` (name
/// substring); `page`/`limit` or `cursor`.
pub async fn list_cis(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let mut filter = CiFilter::default();
    let mut paging = RawPaging::default();
    let mut errors = Vec::new();
    let raw = query.unwrap_or_default();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let r: Result<(), FieldError> = (|| {
            if paging.take(&k, &v)? {
                return Ok(());
            }
            match k.as_ref() {
                "type" => filter.types.push(
                    CiTypeKey::parse(v.as_ref())
                        .map_err(|e| FieldError::new("type", e.message()))?
                        .as_str()
                        .to_owned(),
                ),
                "status" => filter.status.push(parse_param("status", &v)?),
                "owner_team_id" => filter.owner_team_id = Some(TeamId(parse_param(&k, &v)?)),
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
    let page = q::list_cis(&mut tx, principal.tenant, &filter, paging.paging()).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
}

/// `POST /api/v1/cis` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiCreate {
    #[serde(rename = "type")]
    ci_type: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
    #[serde(default)]
    owner_team_id: Option<TeamId>,
    #[serde(default)]
    status: Option<CiStatus>,
}

/// `POST /api/v1/cis` → 201 with the CI, `Location` and `ETag`.
pub async fn create_ci(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value, .. }: StrictJson<CiCreate>,
) -> ApiResult<Response> {
    let mut f = FieldErrors::default();
    let key = f.take_as("type", CiTypeKey::parse(&value.ci_type));
    let name = f.take(CiName::parse(&value.name));
    let description = value
        .description
        .as_deref()
        .map(Description::parse)
        .and_then(|r| f.take(r));
    let status = value.status.unwrap_or(CiStatus::Active);
    if status == CiStatus::Retired {
        f.push(
            "status",
            "must be planned, active or maintenance (a CI starts in service or before)",
        );
    }
    f.done()?;
    let (Some(key), Some(name)) = (key, name) else {
        return Err(ApiError::BadRequest("invalid input".into()));
    };
    let Some(info) = resolve_ci_type::<CiError>(&state.store, principal.tenant, &key).await? else {
        return Err(ApiError::field(
            "type",
            format!(
                "no such CI type (built-in: {}; or a custom type of the tenant)",
                BuiltinCiType::NAMES.join(", ")
            ),
        ));
    };
    check_team(&state, &principal, value.owner_team_id).await?;
    let id = CiId::new();
    let cmd = CiCommand::Create {
        id,
        ci_type: info.key,
        schema: info.schema,
        name,
        description,
        attributes: value.attributes.unwrap_or_default(),
        owner_team_id: value.owner_team_id,
        status,
        actor: principal.actor(),
    };
    let opts = Options {
        metadata: metadata(&principal, &headers),
        ..Default::default()
    };
    let done = execute_ci(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        vec![cmd],
        &opts,
    )
    .await?;
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    let view = read_ci(&state, &principal, id).await?;
    Ok(created(format!("/api/v1/cis/{id}"), view.version, view))
}

/// `GET /api/v1/cis/{id}` with its `ETag`.
pub async fn get_ci(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = read_ci(&state, &principal, ci_id(&id)?).await?;
    Ok(with_etag(StatusCode::OK, view.version, &view))
}

/// `PATCH /api/v1/cis/{id}` body; absent fields are kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    /// Replaces the whole attribute object.
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "nullable")]
    owner_team_id: Option<Option<TeamId>>,
    #[serde(default)]
    status: Option<CiStatus>,
}

/// Runs CI commands and answers with the CI and its `ETag`.
async fn run_ci(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: CiId,
    if_match: IfMatch,
    command: CiCommand,
) -> ApiResult<Response> {
    let opts = Options {
        metadata: metadata(principal, headers),
        idempotency: None,
        if_match: if_match.0,
    };
    let done = execute_ci(
        &state.store,
        &*state.clock,
        principal.tenant,
        id,
        vec![command],
        &opts,
    )
    .await?;
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    let view = read_ci(state, principal, id).await?;
    Ok(with_etag(StatusCode::OK, view.version, &view))
}

/// `PATCH /api/v1/cis/{id}`: `If-Match` → `412` when stale.
pub async fn patch_ci(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    StrictJson { value: u, .. }: StrictJson<CiUpdate>,
) -> ApiResult<Response> {
    let id = ci_id(&id)?;
    let mut f = FieldErrors::default();
    let name = u.name.as_deref().map(CiName::parse).and_then(|r| f.take(r));
    let description = match &u.description {
        None => None,
        Some(None) => Some(None),
        Some(Some(d)) => f.take(Description::parse(d)).map(Some),
    };
    if u.status == Some(CiStatus::Retired) {
        f.push(
            "status",
            "retired cannot be set directly: use POST /api/v1/cis/{id}/retire",
        );
    }
    f.done()?;
    check_team(&state, &principal, u.owner_team_id.flatten()).await?;
    let schema = match &u.attributes {
        None => CiSchema::default(),
        Some(_) => ci_schema(&state.store, principal.tenant, id)
            .await?
            .ok_or(ApiError::NotFound)?,
    };
    let cmd = CiCommand::Update {
        name,
        description,
        attributes: u.attributes,
        schema,
        owner_team_id: u.owner_team_id,
        status: u.status,
        actor: principal.actor(),
    };
    run_ci(&state, &principal, &headers, id, if_match, cmd).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// `POST /api/v1/cis/{id}/retire` (the body may be empty): the CI becomes `retired` (final).
pub async fn retire_ci(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = ci_id(&id)?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        parse_strict::<Empty>(&body)?;
    }
    let cmd = CiCommand::Retire {
        actor: principal.actor(),
    };
    run_ci(&state, &principal, &headers, id, if_match, cmd).await
}

// ------------------------------------------------------------------------------------------
// Relationships
// ------------------------------------------------------------------------------------------

/// `GET /api/v1/cis/{id}/relationships` — both directions (`direction=outgoing|incoming`
/// to narrow), `type` (repeated = OR), oldest first; `page`/`limit` or `cursor`.
pub async fn list_relationships(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let id = ci_id(&id)?;
    let mut filter = RelationshipFilter::default();
    let mut paging = RawPaging::default();
    let mut errors = Vec::new();
    let raw = query.unwrap_or_default();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let r: Result<(), FieldError> = (|| {
            if paging.take(&k, &v)? {
                return Ok(());
            }
            match k.as_ref() {
                "direction" => {
                    filter.direction = Some(v.parse::<Direction>().map_err(|_| {
                        FieldError::new("direction", "must be outgoing or incoming")
                    })?)
                }
                "type" => filter.types.push(
                    RelationshipType::parse(v.as_ref())
                        .map_err(|e| FieldError::new("type", e.message()))?
                        .as_str()
                        .to_owned(),
                ),
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
    if q::get_ci(&mut tx, principal.tenant, id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let page =
        q::list_relationships(&mut tx, principal.tenant, id, &filter, paging.paging()).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
}

/// `POST /api/v1/cis/{id}/relationships` body: `{id} —type→ target_id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelationshipCreate {
    target_id: CiId,
    #[serde(rename = "type")]
    rel_type: String,
}

/// `POST /api/v1/cis/{id}/relationships` → 201 with the relationship as listed for `{id}`.
pub async fn create_relationship(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    StrictJson { value, .. }: StrictJson<RelationshipCreate>,
) -> ApiResult<Response> {
    let source = ci_id(&id)?;
    let rel_type = RelationshipType::parse(&value.rel_type)?;
    let new = NewRelationship {
        id: CiRelationshipId::new(),
        source,
        target: value.target_id,
        rel_type,
        actor: principal.actor(),
    };
    let opts = Options {
        metadata: metadata(&principal, &headers),
        ..Default::default()
    };
    let done =
        create_relationship_command(&state.store, &*state.clock, principal.tenant, &new, &opts)
            .await
            .map_err(|e| {
                taken_is_conflict(
                    e,
                    "the configuration item already has this relationship to the target",
                )
            })?;
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = q::get_relationship(&mut tx, principal.tenant, source, new.id).await?;
    tx.commit().await?;
    let view = view.ok_or(ApiError::NotFound)?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `DELETE /api/v1/cis/{id}/relationships/{rel_id}` → 204. `404` unless the relationship is
/// a live one of the tenant with `{id}` at one end.
pub async fn delete_relationship(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path((id, rel_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ci = ci_id(&id)?;
    let rel = CiRelationshipId(path_uuid(&rel_id)?);
    let opts = Options {
        metadata: metadata(&principal, &headers),
        ..Default::default()
    };
    let done = delete_relationship_command(
        &state.store,
        &*state.clock,
        principal.tenant,
        ci,
        rel,
        principal.actor(),
        &opts,
    )
    .await?;
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/cis/{id}/impact?depth=N` (default [`DEFAULT_IMPACT_DEPTH`], at most
/// [`MAX_IMPACT_DEPTH`]).
pub async fn impact(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let id = ci_id(&id)?;
    let mut depth = DEFAULT_IMPACT_DEPTH;
    let mut errors = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "depth" => match v.parse::<u32>() {
                Ok(d) if (1..=MAX_IMPACT_DEPTH).contains(&d) => depth = d,
                _ => errors.push(FieldError::new(
                    "depth",
                    format!("must be an integer between 1 and {MAX_IMPACT_DEPTH}"),
                )),
            },
            other => errors.push(FieldError::new(other, "unknown query parameter")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // Incidents are shown as the incident list would show them.
    let scope = if !principal
        .permissions
        .contains(Permission::new(Resource::Incident, Action::Read))
    {
        IncidentScope::Hidden
    } else if principal.is_requester() {
        principal
            .user_id
            .map_or(IncidentScope::Hidden, IncidentScope::ReportedBy)
    } else {
        IncidentScope::All
    };
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = q::impact(&mut tx, principal.tenant, id, depth, scope).await?;
    tx.commit().await?;
    Ok(Json(view.ok_or(ApiError::NotFound)?).into_response())
}

// ------------------------------------------------------------------------------------------
// CI types
// ------------------------------------------------------------------------------------------

/// `GET /api/v1/ci-types`: the built-in types and the tenant's, by key.
pub async fn list_ci_types(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<
        Query<crate::routes::directory::ListParams>,
        axum::extract::rejection::QueryRejection,
    >,
) -> ApiResult<Response> {
    let paging = query_params(params)?.paging()?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let page = q::list_ci_types(&mut tx, principal.tenant, paging).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
}

/// `GET /api/v1/ci-types/{id}`: one of the tenant's custom types, with its `ETag`.
pub async fn get_ci_type(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = CiTypeId(path_uuid(&id)?);
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = q::get_ci_type(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    let view = view.ok_or(ApiError::NotFound)?;
    Ok(with_etag(StatusCode::OK, view.version, &view))
}

/// `POST /api/v1/ci-types` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiTypeCreate {
    key: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// Attribute name → `{type, required, values}` (see the schema language).
    #[serde(default)]
    attributes: Option<Value>,
}

/// `POST /api/v1/ci-types` → 201 with the type. A key already used in the tenant is `409`.
pub async fn create_ci_type(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value, .. }: StrictJson<CiTypeCreate>,
) -> ApiResult<Response> {
    let mut f = FieldErrors::default();
    let key = f.take(CiTypeKey::parse(&value.key));
    let name = f.take(CiName::parse(&value.name));
    let description = value
        .description
        .as_deref()
        .map(Description::parse)
        .and_then(|r| f.take(r));
    let schema = match CiSchema::parse(
        value
            .attributes
            .as_ref()
            .unwrap_or(&Value::Object(Map::new())),
        "attributes",
    ) {
        Ok(s) => Some(s),
        Err(list) => {
            for i in list {
                f.push(&i.field, i.message);
            }
            None
        }
    };
    f.done()?;
    let (Some(key), Some(name), Some(schema)) = (key, name, schema) else {
        return Err(ApiError::BadRequest("invalid input".into()));
    };
    let id = CiTypeId::new();
    let cmd = CiTypeCommand::Create {
        id,
        key,
        name,
        description,
        schema,
        actor: principal.actor(),
    };
    let opts = Options {
        metadata: metadata(&principal, &headers),
        ..Default::default()
    };
    let done = create_type_command(&state.store, &*state.clock, principal.tenant, cmd, &opts)
        .await
        .map_err(|e| taken_is_conflict(e, "the tenant already has a CI type with this key"))?;
    state.wait_visible(PROJECTION, done.checkpoint()).await;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let view = q::get_ci_type(&mut tx, principal.tenant, id).await?;
    tx.commit().await?;
    let view = view.ok_or(ApiError::NotFound)?;
    Ok(created(
        format!("/api/v1/ci-types/{id}"),
        view.version,
        view,
    ))
}
