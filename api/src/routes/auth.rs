//! `/api/v1/auth`: login, refresh-token rotation, profile.

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::StrictJson;
use crate::security;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::TimeDelta;
use eventdesk_domain::values::{Role, Username};
use eventdesk_domain::{RoleId, TenantId, UserId};
use eventdesk_projections::queries::directory;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Refresh tokens live this long (each use rotates them).
const REFRESH_TTL: TimeDelta = TimeDelta::days(14);

/// `POST /api/v1/auth/login` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// Tokens issued at login and refresh.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: String,
}

fn request_id(h: &HeaderMap) -> Option<String> {
    h.get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// One answer for every failed login, whether or not the user exists.
fn bad_credentials() -> ApiError {
    ApiError::InvalidCredentials
}

/// An access token for a user with built-in `role` and, if assigned, a custom role (then
/// `role` is the base role; ADR 0011).
fn access_token(
    state: &AppState,
    user: UserId,
    tenant: TenantId,
    role: Role,
    custom_role: Option<RoleId>,
) -> ApiResult<(String, i64)> {
    let now = state.clock.now();
    match custom_role {
        Some(c) => eventdesk_auth::jwt::issue_custom(&state.jwt, user, tenant, role, c.0, now),
        None => eventdesk_auth::jwt::issue(&state.jwt, user, tenant, role.as_str(), now),
    }
    .map_err(ApiError::internal)
}

/// `POST /api/v1/auth/login`. Failures take the same time and give the same answer whether or
/// not the username exists (a dummy Argon2id verification runs for unknown users), and each is
/// recorded as a security event.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    StrictJson { value, .. }: StrictJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let canonical = Username::parse(&value.username)
        .map(|u| u.canonical())
        .unwrap_or_default();
    let user = if canonical.is_empty() {
        None
    } else {
        let mut conn = state.system.acquire().await?;
        directory::get_user_by_username(&mut conn, &canonical).await?
    };
    let password = value.password.clone();
    let verified = match &user {
        Some(u) => {
            let phc = u.password_hash.clone();
            tokio::task::spawn_blocking(move || {
                eventdesk_auth::password::verify_password(&password, &phc)
            })
            .await
            .unwrap_or(false)
        }
        None => {
            let _ = tokio::task::spawn_blocking(move || {
                eventdesk_auth::password::dummy_verify(&password)
            })
            .await;
            false
        }
    };
    let Some(user) = user.clone().filter(|u| verified && u.is_active) else {
        let tenant = TenantId(uuid::Uuid::nil());
        let (tenant, reason) = match &user {
            Some(u) if !u.is_active => (u.tenant_id, "inactive"),
            Some(u) => (u.tenant_id, "bad_password"),
            None => (tenant, "unknown_user"),
        };
        security::record(
            &state,
            tenant,
            "LoginFailed",
            "anonymous",
            request_id(&headers),
            json!({ "username": value.username.chars().take(64).collect::<String>(), "reason": reason }),
        )
        .await;
        return Err(bad_credentials());
    };
    let (access_token, expires_in) = access_token(
        &state,
        user.id,
        user.tenant_id,
        user.role,
        user.custom_role_id,
    )?;
    let mut conn = state.system.acquire().await?;
    let refresh_token = eventdesk_auth::store::issue_refresh(
        &mut conn,
        user.tenant_id,
        user.id,
        None,
        REFRESH_TTL,
        state.clock.now(),
    )
    .await
    .map_err(ApiError::internal)?;
    security::record(
        &state,
        user.tenant_id,
        "LoginSucceeded",
        &format!("user:{}", user.id),
        request_id(&headers),
        json!({ "user_id": user.id }),
    )
    .await;
    Ok(Json(TokenResponse {
        access_token,
        token_type: "bearer",
        expires_in,
        refresh_token,
    }))
}

/// `POST /api/v1/auth/refresh` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// `POST /api/v1/auth/refresh`: rotates the refresh token. A token used twice is refused and
/// revokes its whole family (the legitimate holder must log in again).
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    StrictJson { value, .. }: StrictJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let mut conn = state.system.acquire().await?;
    let out = match eventdesk_auth::store::rotate_refresh(
        &mut conn,
        &value.refresh_token,
        REFRESH_TTL,
        state.clock.now(),
    )
    .await
    {
        Ok(o) => o,
        Err(eventdesk_auth::RefreshError::Reused {
            family_id,
            tenant_id,
            user_id,
        }) => {
            security::record(
                &state,
                tenant_id,
                "RefreshTokenReused",
                &format!("user:{user_id}"),
                request_id(&headers),
                json!({ "family_id": family_id, "user_id": user_id }),
            )
            .await;
            return Err(ApiError::Unauthorized);
        }
        Err(eventdesk_auth::RefreshError::Invalid) => return Err(ApiError::Unauthorized),
        Err(eventdesk_auth::RefreshError::Database(e)) => return Err(e.into()),
    };
    drop(conn);
    // The role may have changed since the last token: read it again.
    let mut tx = state.tenant_tx(out.tenant_id).await?;
    let user = directory::get_user(&mut tx, out.tenant_id, out.user_id).await?;
    tx.commit().await?;
    let Some(user) = user.filter(|u| u.is_active) else {
        return Err(ApiError::Unauthorized);
    };
    let (access_token, expires_in) = access_token(
        &state,
        out.user_id,
        out.tenant_id,
        user.role,
        user.custom_role_id,
    )?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: "bearer",
        expires_in,
        refresh_token: out.new_token,
    }))
}

/// `GET /api/v1/auth/profile`: the signed-in user.
pub async fn profile(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<directory::UserView>> {
    let user_id = principal.user_id.ok_or(ApiError::NotFound)?;
    let mut tx = state.tenant_tx(principal.tenant).await?;
    let user = directory::get_user(&mut tx, principal.tenant, user_id).await?;
    tx.commit().await?;
    user.map(Json).ok_or(ApiError::NotFound)
}
