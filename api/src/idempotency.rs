//! `Idempotency-Key` on every POST.
//!
//! A client that retries a POST after a timeout must not create a second object or run an
//! action twice. For each `(tenant, key)` the first request *claims* the key (a row in
//! `http_idempotency`), runs, and stores its answer (status, body, and the `Content-Type`,
//! `Location` and `ETag` headers); a retry with the same request (same route and body bytes)
//! gets that answer again, with `Idempotent-Replayed: true`; the same key with another request
//! is refused with 422 `idempotency_key_reused`; a retry while the first is still running gets
//! 409 `conflict`. Answers that a retry should not repeat are not kept: 5xx,
//! 409 (a concurrent write), 412 (a stale `If-Match`) and 429 — the claim is released and the
//! retry runs again. Keys live 24 hours; a claim whose request died without answering is
//! released after a minute.
//!
//! The incident create also records its key with the event append itself (in the same
//! transaction), so a crash between the append and storing the answer here cannot create the
//! incident twice.

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::Row;

/// How long a key is remembered.
const KEY_TTL_SECS: i64 = 24 * 3600;
/// After how long an unanswered claim is considered dead.
const CLAIM_TIMEOUT_SECS: i64 = 60;
/// The response headers kept with an answer.
const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII characters"))?;
    if s.is_empty() || s.len() > 255 {
        return Err(ApiError::field(
            "Idempotency-Key",
            "must be 1 to 255 characters",
        ));
    }
    Ok(Some(s.to_owned()))
}

/// Whether an answer with this status is kept for replay.
fn keep(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::CONFLICT
        || status == StatusCode::PRECONDITION_FAILED
        || status == StatusCode::TOO_MANY_REQUESTS)
}

/// What the key's row says.
enum Claim {
    /// This request owns the key now.
    Ours,
    /// A stored answer to replay.
    Replay(Response),
}

/// The middleware (runs after authentication: it needs the tenant).
pub async fn idempotency(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if request.method() != Method::POST {
        return Ok(next.run(request).await);
    }
    let Some(key) = key_of(request.headers())? else {
        return Ok(next.run(request).await);
    };
    let Some(tenant) = request.extensions().get::<Principal>().map(|p| p.tenant) else {
        return Ok(next.run(request).await);
    };
    let route = matched
        .as_ref()
        .map(MatchedPath::as_str)
        .unwrap_or_default()
        .to_owned();
    let limit = usize::try_from(state.config.attachment_max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update([0]);
    h.update(&bytes);
    let hash: Vec<u8> = h.finalize().to_vec();

    match claim(&state, tenant.0, &key, &hash).await? {
        Claim::Replay(resp) => return Ok(resp),
        Claim::Ours => {}
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = resp.status();
    if !keep(status) {
        release(&state, tenant.0, &key).await;
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            release(&state, tenant.0, &key).await;
            return Err(ApiError::internal(std::io::Error::other(e.to_string())));
        }
    };
    let kept: serde_json::Map<String, serde_json::Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let v = parts.headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), serde_json::Value::from(v)))
        })
        .collect();
    let stored = sqlx::query(
        "UPDATE http_idempotency SET state = 'done', status = $3, headers = $4, body = $5, \
         updated_at = now() WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant.0)
    .bind(&key)
    .bind(i16::try_from(status.as_u16()).unwrap_or(0))
    .bind(serde_json::Value::Object(kept))
    .bind(body.as_ref())
    .execute(&state.system)
    .await;
    if let Err(e) = stored {
        tracing::warn!(tenant_id = %tenant, error = %e, "could not store the idempotent answer");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// Claims `key` for this request, or finds the answer to replay (or why not).
async fn claim(
    state: &AppState,
    tenant: uuid::Uuid,
    key: &str,
    hash: &[u8],
) -> Result<Claim, ApiError> {
    for _ in 0..3 {
        let inserted = sqlx::query(
            "INSERT INTO http_idempotency (tenant_id, key, request_hash, state) \
             VALUES ($1, $2, $3, 'in_progress') ON CONFLICT (tenant_id, key) DO NOTHING",
        )
        .bind(tenant)
        .bind(key)
        .bind(hash)
        .execute(&state.system)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Ours);
        }
        let Some(row) = sqlx::query(
            "SELECT request_hash, state, status, headers, body, \
                    created_at < now() - make_interval(secs => $3) AS expired, \
                    state = 'in_progress' AND updated_at < now() - make_interval(secs => $4) \
                      AS abandoned \
             FROM http_idempotency WHERE tenant_id = $1 AND key = $2",
        )
        .bind(tenant)
        .bind(key)
        .bind(KEY_TTL_SECS as f64)
        .bind(CLAIM_TIMEOUT_SECS as f64)
        .fetch_optional(&state.system)
        .await?
        else {
            continue;
        };
        if row.try_get::<bool, _>("expired")? || row.try_get::<bool, _>("abandoned")? {
            sqlx::query("DELETE FROM http_idempotency WHERE tenant_id = $1 AND key = $2")
                .bind(tenant)
                .bind(key)
                .execute(&state.system)
                .await?;
            continue;
        }
        let stored_hash: Vec<u8> = row.try_get("request_hash")?;
        if stored_hash != hash {
            return Err(ApiError::IdempotencyMismatch);
        }
        let st: String = row.try_get("state")?;
        if st != "done" {
            return Err(ApiError::Conflict(
                "a request with this Idempotency-Key is still being processed; retry later".into(),
            ));
        }
        let status: i16 = row.try_get::<Option<i16>, _>("status")?.unwrap_or(200);
        let headers: serde_json::Value = row
            .try_get::<Option<serde_json::Value>, _>("headers")?
            .unwrap_or_default();
        let body: Vec<u8> = row
            .try_get::<Option<Vec<u8>>, _>("body")?
            .unwrap_or_default();
        let mut resp = (
            StatusCode::from_u16(u16::try_from(status).unwrap_or(200)).unwrap_or(StatusCode::OK),
            Bytes::from(body),
        )
            .into_response();
        if let Some(map) = headers.as_object() {
            for (k, v) in map {
                if let (Ok(name), Some(Ok(value))) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    v.as_str().map(HeaderValue::from_str),
                ) {
                    resp.headers_mut().insert(name, value);
                }
            }
        }
        resp.headers_mut().insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
        return Ok(Claim::Replay(resp));
    }
    Err(ApiError::Conflict(
        "the Idempotency-Key is contended; retry".into(),
    ))
}

/// Releases a claim whose answer is not kept, so that a retry runs again.
async fn release(state: &AppState, tenant: uuid::Uuid, key: &str) {
    let r = sqlx::query(
        "DELETE FROM http_idempotency WHERE tenant_id = $1 AND key = $2 AND state = 'in_progress'",
    )
    .bind(tenant)
    .bind(key)
    .execute(&state.system)
    .await;
    if let Err(e) = r {
        tracing::warn!(tenant_id = %tenant, error = %e, "could not release an idempotency claim");
    }
}
