//! Analytics: `GET /api/v1/analytics/{summary,trends,mttr,mtta,sla,backlog}` (issue #5,
//! ADR 0015), read from the `analytics` projection's tables as `eventdesk_app` under row-level
//! security (`AppState::tenant_tx`), never from the event log; and
//! `GET /api/v1/analytics/performance` (ADR 0020): the performance monitor's view of the
//! caller's tenant (this node's latencies and violations, and the tenant's stored alerts).
//!
//! Query parameters are strict: an unknown one, a repeated one or a bad value is `422` naming
//! it. `from`/`to` (RFC 3339) default to the 30 days before now; `from` after `to` is `422`.
//! `team_id` and `category_id` filter every endpoint. Trends take `bucket=hour|day|week` (default
//! `day`) and `tz` (an IANA zone, default `UTC`: tenants have no time-zone setting).

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use eventdesk_projections::queries::analytics::{
    self as q, Bucket, Filter, Metric, TrendError, Zone,
};
use uuid::Uuid;

/// The default range: the 30 days before `to`.
pub const DEFAULT_DAYS: i64 = 30;

/// Validated query parameters.
#[derive(Debug, Clone)]
struct Params {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    filter: Filter,
    bucket: Bucket,
    zone: Zone,
}

/// Which parameters an endpoint takes besides `team_id` and `category_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// Nothing else (a snapshot of now).
    Filters,
    /// `from`, `to`.
    Range,
    /// `from`, `to`, `bucket`, `tz`.
    Trends,
}

fn parse_params(raw: Option<String>, takes: Takes, now: DateTime<Utc>) -> ApiResult<Params> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let (mut from, mut to) = (None, None);
    let mut filter = Filter::default();
    let mut bucket = Bucket::Day;
    let mut zone = Zone::UTC;
    let raw = raw.unwrap_or_default();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let key = k.as_ref();
        let allowed = match key {
            "team_id" | "category_id" => true,
            "from" | "to" => takes != Takes::Filters,
            "bucket" | "tz" => takes == Takes::Trends,
            _ => false,
        };
        if !allowed {
            errors.push(FieldError::new(key, "unknown query parameter"));
            continue;
        }
        if seen.iter().any(|s| s == key) {
            errors.push(FieldError::new(key, "given more than once"));
            continue;
        }
        seen.push(key.to_owned());
        let instant = |v: &str| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| FieldError::new(key, "must be an RFC 3339 date-time"))
        };
        let id = |v: &str| {
            v.parse::<Uuid>()
                .map_err(|_| FieldError::new(key, "must be a UUID"))
        };
        let r: Result<(), FieldError> = match key {
            "from" => instant(&v).map(|t| from = Some(t)),
            "to" => instant(&v).map(|t| to = Some(t)),
            "team_id" => id(&v).map(|t| filter.team_id = Some(t)),
            "category_id" => id(&v).map(|c| filter.category_id = Some(c)),
            "bucket" => Bucket::parse(&v).map(|b| bucket = b).ok_or_else(|| {
                FieldError::new(key, format!("must be one of: {}", Bucket::NAMES.join(", ")))
            }),
            "tz" => Zone::parse(&v).map(|z| zone = z).ok_or_else(|| {
                FieldError::new(key, "must be an IANA time zone, e.g. Europe/Berlin")
            }),
            _ => Ok(()),
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - Duration::days(DEFAULT_DAYS));
    if errors.is_empty() && from > to {
        errors.push(FieldError::new("from", "must not be after to"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(Params {
        from,
        to,
        filter,
        bucket,
        zone,
    })
}

/// `GET /api/v1/analytics/summary?team_id=&category_id=`: the open incidents now.
pub async fn summary(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let p = parse_params(query, Takes::Filters, state.clock.now())?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let out = q::summary(&mut tx, principal.tenant, &p.filter).await?;
    tx.commit().await?;
    Ok(Json(out).into_response())
}

/// `GET /api/v1/analytics/backlog?team_id=&category_id=`: aging, reopen rate, workload.
pub async fn backlog(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let now = state.clock.now();
    let p = parse_params(query, Takes::Filters, now)?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let out = q::backlog(&mut tx, principal.tenant, &p.filter, now).await?;
    tx.commit().await?;
    Ok(Json(out).into_response())
}

/// `GET /api/v1/analytics/trends?from=&to=&bucket=&tz=&team_id=&category_id=`.
pub async fn trends(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let p = parse_params(query, Takes::Trends, state.clock.now())?;
    let plan = q::plan_trends(p.from, p.to, p.bucket, p.zone).map_err(|e| match e {
        TrendError::TooManyBuckets => ApiError::field("bucket", e.to_string()),
        TrendError::UnalignedOffset(_) => ApiError::field("tz", e.to_string()),
    })?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let out = q::trends(&mut tx, principal.tenant, &p.filter, &plan).await?;
    tx.commit().await?;
    Ok(Json(out).into_response())
}

async fn durations(
    state: &AppState,
    principal: &Principal,
    query: Option<String>,
    metric: Metric,
) -> ApiResult<Response> {
    let p = parse_params(query, Takes::Range, state.clock.now())?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let out = q::durations(&mut tx, principal.tenant, &p.filter, metric, p.from, p.to).await?;
    tx.commit().await?;
    Ok(Json(out).into_response())
}

/// `GET /api/v1/analytics/mttr?from=&to=&team_id=&category_id=`: time to resolve.
pub async fn mttr(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    durations(&state, &principal, query, Metric::Resolution).await
}

/// `GET /api/v1/analytics/mtta?from=&to=&team_id=&category_id=`: time to respond.
pub async fn mtta(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    durations(&state, &principal, query, Metric::Response).await
}

/// `GET /api/v1/analytics/sla?from=&to=&team_id=&category_id=`: compliance and timers at risk.
pub async fn sla(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let p = parse_params(query, Takes::Range, state.clock.now())?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let out = q::sla(&mut tx, principal.tenant, &p.filter, p.from, p.to).await?;
    tx.commit().await?;
    Ok(Json(out).into_response())
}

/// Alerts shown by `performance`.
pub const PERFORMANCE_ALERTS: i64 = 50;

/// `GET /api/v1/analytics/performance` (no parameters): p50/p95/p99 per category and route
/// template against the budgets, violation counts, and the most recent alerts.
pub async fn performance(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let raw = query.unwrap_or_default();
    let unknown: Vec<FieldError> = form_urlencoded::parse(raw.as_bytes())
        .map(|(k, _)| FieldError::new(k.as_ref(), "unknown query parameter"))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Validation(unknown));
    }
    let snapshot = state.monitor.snapshot(principal.tenant.0);
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let (alerts, total) =
        crate::monitor::recent_alerts(&mut tx, principal.tenant.0, PERFORMANCE_ALERTS).await?;
    tx.commit().await?;
    Ok(Json(performance_body(snapshot, alerts, total)).into_response())
}

/// The body of `performance` (schema `AnalyticsPerformance`).
pub fn performance_body(
    snapshot: crate::monitor::Snapshot,
    alerts: Vec<crate::monitor::AlertView>,
    alerts_total: i64,
) -> serde_json::Value {
    serde_json::json!({
        "enabled": snapshot.enabled,
        "since": snapshot.since,
        "alert_after": snapshot.alert_after,
        "categories": snapshot.categories,
        "routes": snapshot.routes,
        "alerts_total": alerts_total,
        "alerts": alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: ApiResult<Params>) -> Vec<String> {
        match r {
            Err(ApiError::Validation(v)) => v.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn params_are_strict() {
        let now = Utc::now();
        let q = |s: &str| Some(s.to_owned());
        assert_eq!(fields(parse_params(q("foo=1"), Takes::Range, now)), ["foo"]);
        assert_eq!(
            fields(parse_params(
                q("from=2026-01-01T00:00:00Z"),
                Takes::Filters,
                now
            )),
            ["from"]
        );
        assert_eq!(
            fields(parse_params(q("bucket=day"), Takes::Range, now)),
            ["bucket"]
        );
        assert_eq!(
            fields(parse_params(q("bucket=month"), Takes::Trends, now)),
            ["bucket"]
        );
        assert_eq!(
            fields(parse_params(q("tz=Mars/Olympus"), Takes::Trends, now)),
            ["tz"]
        );
        assert_eq!(
            fields(parse_params(
                q("team_id=x&category_id=y"),
                Takes::Range,
                now
            )),
            ["team_id", "category_id"]
        );
        assert_eq!(
            fields(parse_params(q("from=yesterday"), Takes::Range, now)),
            ["from"]
        );
        assert_eq!(
            fields(parse_params(
                q("to=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"),
                Takes::Range,
                now
            )),
            ["to"]
        );
        assert_eq!(
            fields(parse_params(
                q("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
                Takes::Range,
                now
            )),
            ["from"]
        );
        let p = parse_params(None, Takes::Trends, now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.to, p.from), (now, now - Duration::days(30)));
        assert_eq!((p.bucket, p.zone), (Bucket::Day, Zone::UTC));
        let p = parse_params(q("tz=Asia%2FKolkata&bucket=week"), Takes::Trends, now)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.zone.name(), "Asia/Kolkata");
    }
}
