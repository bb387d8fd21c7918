//! `/healthz` (the process answers) and `/readyz` (the database answers).

use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Liveness: the process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the database answers and migrations have run.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let ok = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM projection_checkpoints")
        .fetch_one(&state.db.pool)
        .await;
    match ok {
        Ok(_) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
        }
    }
}
