//! The bus's tables as the API uses them: one tenant at a time, in a transaction whose
//! `app.tenant_id` is set (row-level security), and with the tenant predicate in every
//! statement as well.

use crate::model::{AttemptView, DeliveryView, IntegrationRow, Kind, WebhookView};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use std::time::Duration;
use uuid::Uuid;

/// A read-write transaction scoped to `tenant` (`SET LOCAL app.tenant_id`).
pub async fn tenant_tx(
    pool: &PgPool,
    tenant: Uuid,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

const WEBHOOK_COLS: &str = "id, url, description, event_types, status, \
     previous_secret_expires_at, created_at, updated_at";

fn webhook_of(r: &PgRow) -> Result<WebhookView, sqlx::Error> {
    Ok(WebhookView {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        event_types: r.try_get("event_types")?,
        status: r.try_get("status")?,
        previous_secret_expires_at: r.try_get("previous_secret_expires_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// A new webhook.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Id.
    pub id: Uuid,
    /// Target URL (checked by the guard).
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// Event types.
    pub event_types: Vec<String>,
    /// `active` or `paused`.
    pub status: String,
    /// The sealed secret.
    pub secret_enc: String,
}

/// Inserts a webhook.
pub async fn insert_webhook(
    conn: &mut PgConnection,
    tenant: Uuid,
    w: &NewWebhook,
) -> Result<WebhookView, sqlx::Error> {
    let row = sqlx::query(&format!(
        "INSERT INTO webhooks (id, tenant_id, url, description, event_types, status, secret_enc) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {WEBHOOK_COLS}"
    ))
    .bind(w.id)
    .bind(tenant)
    .bind(&w.url)
    .bind(&w.description)
    .bind(&w.event_types)
    .bind(&w.status)
    .bind(&w.secret_enc)
    .fetch_one(&mut *conn)
    .await?;
    webhook_of(&row)
}

/// The tenant's webhooks, oldest first.
pub async fn list_webhooks(
    conn: &mut PgConnection,
    tenant: Uuid,
) -> Result<Vec<WebhookView>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = $1 ORDER BY created_at, id"
    ))
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(webhook_of).collect()
}

/// One webhook of the tenant.
pub async fn get_webhook(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<WebhookView>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(webhook_of).transpose()
}

/// A partial update of a webhook (`None` keeps a field).
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    /// New URL.
    pub url: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// New status.
    pub status: Option<String>,
}

/// Applies `patch`. A webhook going (back) to `active` gets its waiting deliveries due now.
pub async fn update_webhook(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    patch: &WebhookPatch,
) -> Result<Option<WebhookView>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "UPDATE webhooks SET url = COALESCE($3, url), \
         description = CASE WHEN $4 THEN $5 ELSE description END, \
         event_types = COALESCE($6, event_types), status = COALESCE($7, status), \
         updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING {WEBHOOK_COLS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&patch.url)
    .bind(patch.description.is_some())
    .bind(patch.description.clone().flatten())
    .bind(&patch.event_types)
    .bind(&patch.status)
    .fetch_optional(&mut *conn)
    .await?;
    let view = row.as_ref().map(webhook_of).transpose()?;
    if patch.status.as_deref() == Some("active") && view.is_some() {
        sqlx::query(
            "UPDATE bus_deliveries SET next_attempt_at = now() WHERE tenant_id = $1 \
             AND webhook_id = $2 AND status = 'pending' AND claim_token IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(view)
}

/// Deletes a webhook and its delivery log. Whether it existed.
pub async fn delete_webhook(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces the secret; the old one keeps signing for `grace` (none if zero).
pub async fn rotate_secret(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    new_secret_enc: &str,
    grace: Duration,
) -> Result<Option<WebhookView>, sqlx::Error> {
    let secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    let row = sqlx::query(&format!(
        "UPDATE webhooks SET \
         previous_secret_enc = CASE WHEN $4 > 0 THEN secret_enc END, \
         previous_secret_expires_at = CASE WHEN $4 > 0 \
             THEN now() + make_interval(secs => $4::float8) END, \
         secret_enc = $3, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 RETURNING {WEBHOOK_COLS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(new_secret_enc)
    .bind(secs)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(webhook_of).transpose()
}

const DELIVERY_COLS: &str = "d.id, d.webhook_id, d.event_id, d.event_type, d.status, \
     d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status_code, d.last_error, \
     d.last_latency_ms, d.created_at, d.completed_at";

fn delivery_of(r: &PgRow) -> Result<DeliveryView, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let next: DateTime<Utc> = r.try_get("next_attempt_at")?;
    Ok(DeliveryView {
        id: r.try_get("id")?,
        webhook_id: r.try_get("webhook_id")?,
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        next_attempt_at: (status == "pending").then_some(next),
        status,
        attempts: r.try_get("attempts")?,
        last_attempt_at: r.try_get("last_attempt_at")?,
        last_status_code: r.try_get("last_status_code")?,
        last_error: r.try_get("last_error")?,
        last_latency_ms: r.try_get("last_latency_ms")?,
        created_at: r.try_get("created_at")?,
        completed_at: r.try_get("completed_at")?,
        attempt_log: Vec::new(),
    })
}

async fn with_attempts(
    conn: &mut PgConnection,
    tenant: Uuid,
    mut list: Vec<DeliveryView>,
) -> Result<Vec<DeliveryView>, sqlx::Error> {
    if list.is_empty() {
        return Ok(list);
    }
    let ids: Vec<Uuid> = list.iter().map(|d| d.id).collect();
    let rows = sqlx::query(
        "SELECT delivery_id, attempt, started_at, status_code, latency_ms, error, outcome \
         FROM bus_delivery_attempts WHERE tenant_id = $1 AND delivery_id = ANY($2) \
         ORDER BY delivery_id, attempt",
    )
    .bind(tenant)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let id: Uuid = r.try_get(0)?;
        if let Some(d) = list.iter_mut().find(|d| d.id == id) {
            d.attempt_log.push(AttemptView {
                attempt: r.try_get(1)?,
                at: r.try_get(2)?,
                status_code: r.try_get(3)?,
                latency_ms: r.try_get(4)?,
                error: r.try_get(5)?,
                outcome: r.try_get(6)?,
            });
        }
    }
    Ok(list)
}

/// A webhook's deliveries, newest first: at most `limit`, optionally only of `status`, and
/// only older than delivery `before`.
pub async fn list_deliveries(
    conn: &mut PgConnection,
    tenant: Uuid,
    webhook: Uuid,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DeliveryView>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {DELIVERY_COLS} FROM bus_deliveries d \
         WHERE d.tenant_id = $1 AND d.webhook_id = $2 AND ($3::text IS NULL OR d.status = $3) \
           AND ($4::uuid IS NULL OR (d.created_at, d.id) < \
                (SELECT b.created_at, b.id FROM bus_deliveries b \
                 WHERE b.tenant_id = $1 AND b.id = $4)) \
         ORDER BY d.created_at DESC, d.id DESC LIMIT $5"
    ))
    .bind(tenant)
    .bind(webhook)
    .bind(status)
    .bind(before)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let list = rows
        .iter()
        .map(delivery_of)
        .collect::<Result<Vec<_>, _>>()?;
    with_attempts(conn, tenant, list).await
}

/// Why a delivery cannot be redelivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedeliverError {
    /// No such delivery of this webhook in the tenant.
    #[error("not found")]
    NotFound,
    /// Its status does not allow it (`pending`: already under way; `dry_run`: a test key's).
    #[error("a {0} delivery cannot be redelivered")]
    Status(String),
}

/// Starts a new round for a `dead` (or `succeeded`, or `skipped`) delivery: due now, with the
/// retry bounds reset. The `webhook-id` stays the same, so receivers can deduplicate.
pub async fn redeliver(
    conn: &mut PgConnection,
    tenant: Uuid,
    webhook: Uuid,
    delivery: Uuid,
) -> Result<Result<DeliveryView, RedeliverError>, sqlx::Error> {
    let current: Option<String> = sqlx::query_scalar(
        "SELECT status FROM bus_deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3 \
         FOR UPDATE",
    )
    .bind(tenant)
    .bind(webhook)
    .bind(delivery)
    .fetch_optional(&mut *conn)
    .await?;
    match current.as_deref() {
        None => return Ok(Err(RedeliverError::NotFound)),
        Some("dead" | "succeeded" | "skipped") => {}
        Some(other) => return Ok(Err(RedeliverError::Status(other.to_owned()))),
    }
    let row = sqlx::query(&format!(
        "UPDATE bus_deliveries d SET status = 'pending', round_attempts = 0, \
         round_started_at = now(), next_attempt_at = now(), claim_token = NULL, \
         completed_at = NULL WHERE d.tenant_id = $1 AND d.id = $2 RETURNING {DELIVERY_COLS}"
    ))
    .bind(tenant)
    .bind(delivery)
    .fetch_one(&mut *conn)
    .await?;
    let view = delivery_of(&row)?;
    let mut list = with_attempts(conn, tenant, vec![view]).await?;
    Ok(list.pop().ok_or(RedeliverError::NotFound))
}

/// The stored settings of `kind`, if ever configured.
pub async fn get_integration<S: DeserializeOwned>(
    conn: &mut PgConnection,
    tenant: Uuid,
    kind: Kind,
) -> Result<Option<IntegrationRow<S>>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT tenant_id, enabled, settings, credentials_enc, created_at, updated_at \
         FROM integration_settings WHERE tenant_id = $1 AND kind = $2",
    )
    .bind(tenant)
    .bind(kind.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(integration_of).transpose()
}

/// Reads an `integration_settings` row.
pub(crate) fn integration_of<S: DeserializeOwned>(
    r: &PgRow,
) -> Result<IntegrationRow<S>, sqlx::Error> {
    let sqlx::types::Json(settings): sqlx::types::Json<S> = r.try_get("settings")?;
    Ok(IntegrationRow {
        tenant_id: r.try_get("tenant_id")?,
        enabled: r.try_get("enabled")?,
        settings,
        credentials_enc: r.try_get("credentials_enc")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Stores the settings of `kind`; `credentials_enc = None` keeps the stored credentials.
pub async fn put_integration<S: serde::Serialize + DeserializeOwned>(
    conn: &mut PgConnection,
    tenant: Uuid,
    kind: Kind,
    enabled: bool,
    settings: &S,
    credentials_enc: Option<&str>,
) -> Result<IntegrationRow<S>, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO integration_settings (tenant_id, kind, enabled, settings, credentials_enc) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, kind) DO UPDATE SET enabled = EXCLUDED.enabled, \
           settings = EXCLUDED.settings, \
           credentials_enc = COALESCE(EXCLUDED.credentials_enc, integration_settings.credentials_enc), \
           updated_at = now() \
         RETURNING tenant_id, enabled, settings, credentials_enc, created_at, updated_at",
    )
    .bind(tenant)
    .bind(kind.as_str())
    .bind(enabled)
    .bind(sqlx::types::Json(settings))
    .bind(credentials_enc)
    .fetch_one(&mut *conn)
    .await?;
    integration_of(&row)
}
