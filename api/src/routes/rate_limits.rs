//! Rate limits (ADR 0019): a tenant's admins read their effective limits
//! (`GET /api/v1/rate-limits`); the platform operator reads and sets any tenant's overrides
//! (`GET/PUT /api/v1/tenants/{id}/rate-limits`, platform key). A tenant cannot raise its own
//! limits — that is the point of having them.

use crate::app::AppState;
use crate::auth::{AuthKind, Principal};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::StrictJson;
use crate::rate_limit::{Overrides, Quota, load_overrides};
use crate::routes::directory::path_uuid;
use crate::security;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use eventdesk_domain::TenantId;
use serde::Deserialize;
use serde_json::{Value, json};

/// The effective limits of a tenant.
async fn effective(state: &AppState, tenant: TenantId) -> ApiResult<Value> {
    let o = load_overrides(&state.system, tenant).await?;
    let cfg = state.limiter.config();
    let one = |kind: AuthKind| {
        let (q, source) = match o.get(kind) {
            Some(q) => (q, "override"),
            None => (cfg.default_for(kind), "default"),
        };
        json!({ "limit": q.limit, "period_secs": q.period.as_secs(), "source": source })
    };
    let backend = match (
        state.config.redis_url.is_some(),
        state.limiter.redis_degraded(),
    ) {
        (false, _) => "memory",
        (true, false) => "redis",
        (true, true) => "memory_fallback",
    };
    Ok(json!({
        "tenant_id": tenant.0,
        "enabled": cfg.enabled,
        "backend": backend,
        "limits": {
            "jwt": one(AuthKind::Jwt),
            "live_key": one(AuthKind::LiveKey),
            "test_key": one(AuthKind::TestKey),
        },
        "anonymous_per_ip": { "limit": cfg.ip.limit, "period_secs": cfg.ip.period.as_secs() },
    }))
}

/// `GET /api/v1/rate-limits`: the caller's tenant's effective limits.
pub async fn get_own(State(state): State<AppState>, principal: Principal) -> ApiResult<Response> {
    Ok(Json(effective(&state, principal.tenant).await?).into_response())
}

/// 404 unless the tenant exists.
async fn existing_tenant(state: &AppState, raw: &str) -> ApiResult<TenantId> {
    let id = TenantId(path_uuid(raw)?);
    let mut conn = state.system.acquire().await?;
    eventdesk_projections::queries::directory::get_tenant(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(id)
}

/// `GET /api/v1/tenants/{id}/rate-limits` (platform key).
pub async fn get_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let tenant = existing_tenant(&state, &id).await?;
    Ok(Json(effective(&state, tenant).await?).into_response())
}

/// One override in a `PUT` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaBody {
    limit: i64,
    period_secs: i64,
}

/// `PUT /api/v1/tenants/{id}/rate-limits` body: each auth type's override; absent or `null`
/// means the node's default. The body replaces every override of the tenant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsPut {
    #[serde(default)]
    jwt: Option<QuotaBody>,
    #[serde(default)]
    live_key: Option<QuotaBody>,
    #[serde(default)]
    test_key: Option<QuotaBody>,
}

fn check(field: &str, q: Option<&QuotaBody>, errors: &mut Vec<FieldError>) -> Option<Quota> {
    let q = q?;
    let limit = u32::try_from(q.limit)
        .ok()
        .filter(|l| (1..=1_000_000_000).contains(l));
    let period = u64::try_from(q.period_secs)
        .ok()
        .filter(|p| (1..=86_400).contains(p));
    if limit.is_none() {
        errors.push(FieldError::new(
            format!("{field}.limit"),
            "must be 1 to 1000000000",
        ));
    }
    if period.is_none() {
        errors.push(FieldError::new(
            format!("{field}.period_secs"),
            "must be 1 to 86400",
        ));
    }
    Some(Quota::new(limit?, period?))
}

/// `PUT /api/v1/tenants/{id}/rate-limits` (platform key) → 200 with the effective limits.
/// Recorded in the tenant's security log (`RateLimitsChanged`).
pub async fn put_tenant(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    StrictJson { value, .. }: StrictJson<RateLimitsPut>,
) -> ApiResult<Response> {
    let tenant = existing_tenant(&state, &id).await?;
    let mut errors = Vec::new();
    let o = Overrides {
        jwt: check("jwt", value.jwt.as_ref(), &mut errors),
        live_key: check("live_key", value.live_key.as_ref(), &mut errors),
        test_key: check("test_key", value.test_key.as_ref(), &mut errors),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let actor = principal.actor_label();
    let mut tx = state.system.begin().await?;
    sqlx::query("DELETE FROM rate_limit_overrides WHERE tenant_id = $1")
        .bind(tenant.0)
        .execute(&mut *tx)
        .await?;
    for kind in [AuthKind::Jwt, AuthKind::LiveKey, AuthKind::TestKey] {
        if let Some(q) = o.get(kind) {
            sqlx::query(
                "INSERT INTO rate_limit_overrides \
                 (tenant_id, auth_kind, limit_count, period_secs, updated_by) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(tenant.0)
            .bind(kind.as_str())
            .bind(i32::try_from(q.limit).unwrap_or(i32::MAX))
            .bind(i32::try_from(q.period.as_secs()).unwrap_or(i32::MAX))
            .bind(&actor)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    state.limiter.invalidate(tenant);
    security::record(
        &state,
        tenant,
        "RateLimitsChanged",
        &actor,
        headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        json!({ "jwt": o.jwt, "live_key": o.live_key, "test_key": o.test_key }),
    )
    .await;
    Ok(Json(effective(&state, tenant).await?).into_response())
}
