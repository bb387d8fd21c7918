//! The audit trail over REST: `GET /api/v1/audit/events`, `GET /api/v1/audit/streams/{id}`
//! (permission `audit:read`) and `GET /api/v1/security/events` (`security:read`), all scoped
//! to the caller's tenant; and time travel, `GET /api/v1/incidents/{id}?as_of=…`.
//!
//! The listings read the event log itself (see `eventdesk_projections::queries::audit`).

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use eventdesk_domain::TenantId;
use eventdesk_projections::queries::audit::{
    AuditEvent, AuditFilter, SECURITY_STREAM_TYPE, StreamSummary, list_events, stream_events,
};
use eventdesk_projections::queries::paging::{MAX_LIMIT, Pagination, Paging};
use eventdesk_store::hash::ChainFault;
use serde::Serialize;
use uuid::Uuid;

/// Query parameters shared by every list: `page`, `limit`, `cursor`.
#[derive(Debug)]
pub(crate) struct PagingParams {
    page: u32,
    limit: u32,
    cursor: Option<String>,
}

impl Default for PagingParams {
    fn default() -> Self {
        Self {
            page: 1,
            limit: 20,
            cursor: None,
        }
    }
}

impl PagingParams {
    /// Takes `k=v` if it is a paging parameter; `Ok(false)` if it is not one.
    fn take(&mut self, k: &str, v: &str) -> Result<bool, FieldError> {
        match k {
            "page" => {
                self.page = parse("page", v)?;
                if self.page == 0 {
                    return Err(FieldError::new("page", "must be at least 1"));
                }
            }
            "limit" => {
                self.limit = parse("limit", v)?;
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

    fn paging(self) -> Paging {
        match self.cursor {
            Some(c) => Paging::Cursor {
                after: (!c.is_empty()).then_some(c),
                limit: self.limit,
            },
            None => Paging::page(self.page, self.limit),
        }
    }
}

fn parse<T: std::str::FromStr>(field: &str, v: &str) -> Result<T, FieldError> {
    v.parse()
        .map_err(|_| FieldError::new(field, format!("invalid value {v:?}")))
}

/// An RFC 3339 instant.
pub(crate) fn parse_instant(field: &str, v: &str) -> Result<DateTime<Utc>, FieldError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            FieldError::new(
                field,
                format!("invalid instant {v:?}; expected RFC 3339, e.g. 2026-05-01T10:00:00Z"),
            )
        })
}

/// Parses a query string with `each(key, value)`; unknown keys are the closure's to refuse.
fn parse_query(
    raw: Option<String>,
    mut each: impl FnMut(&str, &str) -> Result<(), FieldError>,
) -> ApiResult<()> {
    let raw = raw.unwrap_or_default();
    let errors: Vec<FieldError> = form_urlencoded::parse(raw.as_bytes())
        .filter_map(|(k, v)| each(&k, &v).err())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

async fn events_page(
    state: &AppState,
    tenant: TenantId,
    filter: AuditFilter,
    paging: Paging,
) -> ApiResult<Response> {
    if let (Some(s), Some(u)) = (filter.since, filter.until)
        && u < s
    {
        return Err(ApiError::field("until", "must not be before since"));
    }
    let mut tx = state.tenant_tx(tenant).await?;
    let page = list_events(&mut tx, tenant, &filter, paging).await?;
    tx.commit().await?;
    Ok(Json(page).into_response())
}

/// Takes the filter parameters common to both event listings.
fn take_filter(filter: &mut AuditFilter, k: &str, v: &str) -> Result<bool, FieldError> {
    match k {
        "type" => filter.event_types.extend(
            v.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        ),
        "actor" => {
            if v.is_empty() || v.len() > 200 {
                return Err(FieldError::new("actor", "must be 1 to 200 characters"));
            }
            filter.actor = Some(v.to_owned());
        }
        "since" => filter.since = Some(parse_instant("since", v)?),
        "until" => filter.until = Some(parse_instant("until", v)?),
        _ => return Ok(false),
    }
    Ok(true)
}

/// `GET /api/v1/audit/events?stream_id=&stream_type=&type=&actor=&since=&until=&page=&limit=&cursor=`:
/// the tenant's events, newest first.
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let mut filter = AuditFilter::default();
    let mut paging = PagingParams::default();
    parse_query(query, |k, v| {
        if paging.take(k, v)? || take_filter(&mut filter, k, v)? {
            return Ok(());
        }
        match k {
            "stream_id" => filter.stream_id = Some(parse("stream_id", v)?),
            "stream_type" => filter.stream_type = Some(v.to_owned()),
            other => return Err(FieldError::new(other, "unknown query parameter")),
        }
        Ok(())
    })?;
    events_page(&state, principal.tenant, filter, paging.paging()).await
}

/// `GET /api/v1/security/events?type=&actor=&since=&until=&page=&limit=&cursor=`: the tenant's
/// security log (logins and failures, refresh-token reuse, permission denials, API keys, role
/// changes, exports), newest first.
pub async fn security_events(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let mut filter = AuditFilter {
        stream_type: Some(SECURITY_STREAM_TYPE.into()),
        stream_id: Some(crate::security::stream_of(principal.tenant).0),
        ..AuditFilter::default()
    };
    let mut paging = PagingParams::default();
    parse_query(query, |k, v| {
        if paging.take(k, v)? || take_filter(&mut filter, k, v)? {
            return Ok(());
        }
        Err(FieldError::new(k, "unknown query parameter"))
    })?;
    events_page(&state, principal.tenant, filter, paging.paging()).await
}

/// `GET /api/v1/audit/streams/{stream_id}`: a stream's events in version order, with its
/// summary and whether its hash chain verifies.
#[derive(Debug, Serialize)]
pub struct StreamView {
    /// The stream.
    pub stream: StreamSummary,
    /// Whether the stored hash chain of the whole stream verifies (ADR 0003).
    pub chain_verified: bool,
    /// Where it fails, if it does: what is wrong at the first bad event.
    pub chain_fault: Option<String>,
    /// The events.
    pub data: Vec<AuditEvent>,
    /// As for every list.
    pub pagination: Pagination,
}

/// `GET /api/v1/audit/streams/{stream_id}?page=&limit=&cursor=`.
pub async fn stream(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    let mut paging = PagingParams::default();
    parse_query(query, |k, v| {
        if paging.take(k, v)? {
            return Ok(());
        }
        Err(FieldError::new(k, "unknown query parameter"))
    })?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let found = stream_events(&mut tx, principal.tenant, id, paging.paging()).await?;
    tx.commit().await?;
    let (summary, page) = found.ok_or(ApiError::NotFound)?;
    let chain = eventdesk_store::verify::verify_stream(
        &state.db.pool,
        principal.tenant,
        eventdesk_domain::StreamId(id),
    )
    .await?;
    let chain_fault = chain.as_ref().err().map(|bad| {
        let what = match bad.fault {
            ChainFault::VersionGap { expected, found } => {
                format!("version {expected} was due, version {found} came")
            }
            ChainFault::HashMismatch { version } => {
                format!("the stored hash of version {version} does not match its content")
            }
        };
        format!(
            "{what} (position {}, event {})",
            bad.global_position, bad.event_id
        )
    });
    Ok(Json(StreamView {
        stream: summary,
        chain_verified: chain.is_ok(),
        chain_fault,
        data: page.data,
        pagination: page.pagination,
    })
    .into_response())
}
