//! `/api/v1/api-keys`: create (the key is shown once), list (prefixes only), revoke.

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::StrictJson;
use crate::security;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use eventdesk_auth::PermissionSet;
use eventdesk_auth::apikey::KeyMode;
use eventdesk_domain::ApiKeyId;
use serde::Deserialize;
use serde_json::json;

/// `POST /api/v1/api-keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    name: String,
    /// `live` (default) or `test`.
    #[serde(default)]
    mode: Option<String>,
    /// `resource:action` strings; defaults to the caller's own permissions.
    #[serde(default)]
    permissions: Option<Vec<String>>,
}

/// `POST /api/v1/api-keys` → 201 `{api_key, …summary}`. The plaintext key appears only here.
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value, .. }: StrictJson<ApiKeyCreate>,
) -> ApiResult<Response> {
    let name = value.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::field("name", "must be 1 to 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "must not contain control characters",
        ));
    }
    let mode: KeyMode = match value.mode.as_deref() {
        None => KeyMode::Live,
        Some(m) => m
            .parse()
            .map_err(|_| ApiError::field("mode", "must be live or test"))?,
    };
    let permissions = match &value.permissions {
        None => principal.permissions.clone(),
        Some(list) => PermissionSet::parse_all(list)?,
    };
    if !permissions.is_subset(&principal.permissions) {
        return Err(ApiError::field(
            "permissions",
            "a key cannot hold permissions its creator does not have",
        ));
    }
    let key = eventdesk_auth::apikey::generate(mode, state.pepper.expose().as_bytes())
        .map_err(ApiError::internal)?;
    let mut conn = state.db.pool.acquire().await?;
    let summary = eventdesk_auth::store::insert_api_key(
        &mut conn,
        principal.tenant,
        name,
        &key,
        &permissions,
        principal.user_id,
    )
    .await
    .map_err(ApiError::internal)?;
    security::record(
        &state,
        principal.tenant,
        "ApiKeyCreated",
        &principal.actor_label(),
        headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        json!({ "api_key_id": summary.id, "prefix": summary.prefix, "mode": mode.as_str() }),
    )
    .await;
    let mut body = serde_json::to_value(&summary).map_err(ApiError::internal)?;
    if let Some(o) = body.as_object_mut() {
        o.insert("api_key".into(), json!(key.plaintext));
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/v1/api-keys` (prefixes only, never a secret).
pub async fn list(State(state): State<AppState>, principal: Principal) -> ApiResult<Response> {
    let mut conn = state.db.pool.acquire().await?;
    let keys = eventdesk_auth::store::list_api_keys(&mut conn, principal.tenant)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "data": keys })).into_response())
}

/// `DELETE /api/v1/api-keys/{id}` → 204 (404 for another tenant's key or an unknown id).
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = ApiKeyId(id.parse().map_err(|_| ApiError::NotFound)?);
    let mut conn = state.db.pool.acquire().await?;
    let revoked = eventdesk_auth::store::revoke_api_key(&mut conn, principal.tenant, id)
        .await
        .map_err(ApiError::internal)?;
    if !revoked {
        return Err(ApiError::NotFound);
    }
    state.api_keys.forget(id);
    security::record(
        &state,
        principal.tenant,
        "ApiKeyRevoked",
        &principal.actor_label(),
        headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        json!({ "api_key_id": id }),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
