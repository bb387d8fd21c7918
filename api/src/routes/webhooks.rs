//! `/api/v1/webhooks`: subscriptions of the integration bus (ADR 0016) — create (the secret is
//! shown once), list, read, update, delete, rotate the secret (the old one keeps signing for a
//! grace period), the delivery log, and redelivery of a dead delivery.
//!
//! Every URL passes the SSRF guard (`422` naming `url`); another tenant's webhook is `404`.
//! Configuration changes are recorded in the tenant's security log (never a secret).

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::routes::directory::{nullable, path_uuid};
use crate::security;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventdesk_bus::model::{self, DeliveryStatus, WebhookView};
use eventdesk_bus::repo::{self, NewWebhook, RedeliverError, WebhookPatch};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

/// Longest description.
pub const MAX_DESCRIPTION: usize = 500;
/// Most event types in a filter.
pub const MAX_EVENT_TYPES: usize = 64;
/// Default grace period of a rotated secret (24 hours).
pub const DEFAULT_GRACE_SECS: u64 = 24 * 3600;
/// Longest grace period (7 days).
pub const MAX_GRACE_SECS: u64 = 7 * 24 * 3600;
/// Default and largest page of the delivery log.
pub const DEFAULT_DELIVERIES: u32 = 50;
/// See [`DEFAULT_DELIVERIES`].
pub const MAX_DELIVERIES: u32 = 100;

/// `POST /api/v1/webhooks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    url: String,
    event_types: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// `PATCH /api/v1/webhooks/{id}` body (absent = unchanged; `description: null` clears it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default)]
    status: Option<String>,
}

/// `POST /api/v1/webhooks/{id}/rotate-secret` body (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRotate {
    /// How long the old secret keeps signing (0 = not at all; default 24 h, at most 7 days).
    #[serde(default)]
    grace_period_seconds: Option<u64>,
}

/// `GET /api/v1/webhooks/{id}/deliveries` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryParams {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    before: Option<String>,
}

/// Checks a URL with the SSRF guard (resolving its host), naming `field`.
async fn check_url(state: &AppState, field: &str, url: &str) -> ApiResult<String> {
    match state.bus.guard().check(url).await {
        Ok(t) => Ok(t.url.to_string()),
        Err(e) => Err(ApiError::field(field, format!("the URL {e}"))),
    }
}

fn check_event_types(list: &[String], f: &mut FieldErrors) -> Vec<String> {
    if list.is_empty() {
        f.push("event_types", "must name at least one event type, or \"*\"");
        return Vec::new();
    }
    if list.len() > MAX_EVENT_TYPES {
        f.push(
            "event_types",
            format!("at most {MAX_EVENT_TYPES} event types"),
        );
        return Vec::new();
    }
    let known = model::deliverable_event_types();
    let mut out = BTreeSet::new();
    for (i, t) in list.iter().enumerate() {
        if t == model::ALL_EVENTS || known.contains(&t.as_str()) {
            out.insert(t.clone());
        } else {
            f.push(
                &format!("event_types[{i}]"),
                format!(
                    "unknown event type {t:?}; expected \"*\" or one of {}",
                    known.join(", ")
                ),
            );
        }
    }
    out.into_iter().collect()
}

fn check_description(d: Option<&str>, f: &mut FieldErrors) -> Option<String> {
    let d = d.map(str::trim).filter(|d| !d.is_empty())?;
    if d.chars().count() > MAX_DESCRIPTION || d.contains('\0') {
        f.push(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        );
        return None;
    }
    Some(d.to_owned())
}

fn check_status(s: &str, f: &mut FieldErrors) {
    if s != "active" && s != "paused" {
        f.push("status", "must be active or paused");
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn with_secret(view: &WebhookView, secret: &str) -> ApiResult<Value> {
    let mut body = serde_json::to_value(view).map_err(ApiError::internal)?;
    if let Some(o) = body.as_object_mut() {
        o.insert("secret".into(), json!(secret));
    }
    Ok(body)
}

/// `POST /api/v1/webhooks` → 201 with the webhook and its `secret` (shown only here).
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    crate::extract::StrictJson { value, .. }: crate::extract::StrictJson<WebhookCreate>,
) -> ApiResult<Response> {
    let mut f = FieldErrors::default();
    let event_types = check_event_types(&value.event_types, &mut f);
    let description = check_description(value.description.as_deref(), &mut f);
    let status = value.status.unwrap_or_else(|| "active".to_owned());
    check_status(&status, &mut f);
    f.done()?;
    let url = check_url(&state, "url", &value.url).await?;
    let id = Uuid::now_v7();
    let secret = eventdesk_bus::signing::generate_secret();
    let tenant = principal.tenant.0;
    let sealed = state
        .bus
        .secrets()
        .seal(secret.as_bytes(), &model::webhook_aad(tenant, id));
    let mut tx = repo::tenant_tx(&state.db.pool, tenant).await?;
    let view = repo::insert_webhook(
        &mut tx,
        tenant,
        &NewWebhook {
            id,
            url,
            description,
            event_types,
            status,
            secret_enc: sealed,
        },
    )
    .await?;
    tx.commit().await?;
    security::record(
        &state,
        principal.tenant,
        "WebhookCreated",
        &principal.actor_label(),
        request_id(&headers),
        json!({ "webhook_id": id, "url": view.url, "event_types": view.event_types }),
    )
    .await;
    let mut resp = (StatusCode::CREATED, Json(with_secret(&view, &secret)?)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/webhooks/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET /api/v1/webhooks` (never a secret).
pub async fn list(State(state): State<AppState>, principal: Principal) -> ApiResult<Response> {
    let tenant = principal.tenant.0;
    let mut tx = repo::tenant_tx(&state.db.pool, tenant).await?;
    let list = repo::list_webhooks(&mut tx, tenant).await?;
    tx.commit().await?;
    Ok(Json(json!({ "data": list })).into_response())
}

/// `GET /api/v1/webhooks/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_uuid(&id)?;
    let tenant = principal.tenant.0;
    let mut tx = repo::tenant_tx(&state.db.pool, tenant).await?;
    let view = repo::get_webhook(&mut tx, tenant, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(Json(view).into_response())
}

/// `PATCH /api/v1/webhooks/{id}`.
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    crate::extract::StrictJson { value, .. }: crate::extract::StrictJson<WebhookUpdate>,
) -> ApiResult<Response> {
    let id = path_uuid(&id)?;
    let mut f = FieldErrors::default();
    let event_types = value
        .event_types
        .as_ref()
        .map(|l| check_event_types(l, &mut f));
    let description = value
        .description
        .as_ref()
        .map(|d| check_description(d.as_deref(), &mut f));
    if let Some(s) = &value.status {
        check_status(s, &mut f);
    }
    f.done()?;
    let url = match &value.url {
        Some(u) => Some(check_url(&state, "url", u).await?),
        None => None,
    };
    let tenant = principal.tenant.0;
    let mut tx = repo::tenant_tx(&state.db.pool, tenant).await?;
    let view = repo::update_webhook(
        &mut tx,
        tenant,
        id,
        &WebhookPatch {
            url,
            description,
            event_types,
            status: value.status.clone(),
        },
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    if value.status.as_deref() == Some("active") {
        state.bus.nudge();
    }
    security::record(
        &state,
        principal.tenant,
        "WebhookUpdated",
        &principal.actor_label(),
        request_id(&headers),
        json!({ "webhook_id": id, "url": view.url, "event_types": view.event_types,
                "status": view.status }),
    )
    .await;
    Ok(Json(view).into_response())
}

/// `DELETE /api/v1/webhooks/{id}` → 204 (its delivery log goes with it).
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_uuid(&id)?;
    let tenant = principal.tenant.0;
    let mut tx = repo::tenant_tx(&state.db.pool, tenant).await?;
    if !repo::delete_webhook(&mut tx, tenant, id).await? {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    security::record(
        &state,
        principal.tenant,
        "WebhookDeleted",
        &principal.actor_label(),
        request_id(&headers),
        json!({ "webhook_id": id }),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Parses an optional JSON body (empty = `{}`).
fn optional_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        crate::extract::parse_strict(b"{}")
    } else {
        crate::extract::parse_strict(body)
    }
}

/// `POST /api/v1/webhooks/{id}/rotate-secret` → the webhook with its new `secret` (shown only
/// here). Until `previous_secret_expires_at`, deliveries carry a signature by each secret.
pub async fn rotate_secret(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = path_uuid(&id)?;
    let value: SecretRotate = optional_body(&body)?;
    let grace = value.grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECS);
    if grace > MAX_GRACE_SECS {
        return Err(ApiError::field(
            "grace_period_seconds",
            format!("must be between 0 and {MAX_GRACE_SECS}"),
        ));
    }
    let tenant = principal.tenant.0;
    let secret = eventdesk_bus::signing::generate_secret();
    let sealed = state
        .bus
        .secrets()
        .seal(secret.as_bytes(), &model::webhook_aad(tenant, id));
    let mut tx = repo::tenant_tx(&state.db.pool, tenant).await?;
    let view = repo::rotate_secret(&mut tx, tenant, id, &sealed, Duration::from_secs(grace))
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    security::record(
        &state,
        principal.tenant,
        "WebhookSecretRotated",
        &principal.actor_label(),
        request_id(&headers),
        json!({ "webhook_id": id, "grace_period_seconds": grace }),
    )
    .await;
    Ok(Json(with_secret(&view, &secret)?).into_response())
}

/// `GET /api/v1/webhooks/{id}/deliveries`: the delivery log, newest first, with every attempt
/// (status code, latency, error).
pub async fn deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    query: Result<Query<DeliveryParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let id = path_uuid(&id)?;
    let Query(q) = query.map_err(|e| ApiError::field("query", e.body_text()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            DeliveryStatus::parse(s)
                .ok_or_else(|| {
                    ApiError::field(
                        "status",
                        "must be pending, succeeded, dead, dry_run or skipped",
                    )
                })?
                .as_str(),
        ),
    };
    let limit = q.limit.unwrap_or(DEFAULT_DELIVERIES);
    if limit == 0 || limit > MAX_DELIVERIES {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_DELIVERIES}"),
        ));
    }
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(b) => Some(
            b.parse::<Uuid>()
                .map_err(|_| ApiError::field("before", "must be a delivery id"))?,
        ),
    };
    let tenant = principal.tenant.0;
    let mut tx = repo::tenant_tx(&state.db.pool, tenant).await?;
    if repo::get_webhook(&mut tx, tenant, id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let list = repo::list_deliveries(&mut tx, tenant, id, status, before, i64::from(limit)).await?;
    tx.commit().await?;
    Ok(Json(json!({ "data": list })).into_response())
}

/// `POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver` → 202 with the delivery,
/// due again now (a new round of the retry policy; the same `webhook-id`). A test-mode key
/// gets `422 test_mode_key`: it never makes anything leave the system.
pub async fn redeliver(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = path_uuid(&id)?;
    let delivery_id = path_uuid(&delivery_id)?;
    if principal.kind == crate::auth::AuthKind::TestKey {
        // A test-mode key never makes anything leave the system.
        return Err(ApiError::Rule {
            code: "test_mode_key",
            message: "a test-mode API key cannot send deliveries".into(),
        });
    }
    let tenant = principal.tenant.0;
    let mut tx = repo::tenant_tx(&state.db.pool, tenant).await?;
    let view = match repo::redeliver(&mut tx, tenant, id, delivery_id).await? {
        Ok(v) => v,
        Err(RedeliverError::NotFound) => return Err(ApiError::NotFound),
        Err(e @ RedeliverError::Status(_)) => return Err(ApiError::Conflict(e.to_string())),
    };
    tx.commit().await?;
    state.bus.nudge();
    security::record(
        &state,
        principal.tenant,
        "WebhookRedelivered",
        &principal.actor_label(),
        request_id(&headers),
        json!({ "webhook_id": id, "delivery_id": delivery_id }),
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}
