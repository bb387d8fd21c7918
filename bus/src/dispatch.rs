//! The delivery workers: claim due rows, send them, record the attempt, retry or give up.
//!
//! # Claiming
//! One short transaction selects due `pending` rows with `FOR UPDATE SKIP LOCKED` (so nodes
//! never wait on each other), keeps at most as many per endpoint as the endpoint has free
//! slots on this node ([`Target::concurrency`]) and leases them: `next_attempt_at` moves to
//! `now + lease` and `claim_token` names this process. The transaction commits before any
//! request is sent, so no database connection is held while a receiver is slow. Endpoints whose
//! slots are all in use are left out of the query, so the rows of a slow or dead receiver never
//! fill a claim: other endpoints, tenants and subscriptions keep flowing.
//!
//! # At least once
//! A worker that dies leaves its rows leased until the lease ends; they are then due again and
//! sent again (the receiver deduplicates on `webhook-id`). A worker that stops cleanly gives its
//! unfinished rows back at once. A result is recorded only by the claim's holder
//! (`claim_token`), in one transaction with its attempt-log row.
//!
//! # The 5 s budget
//! Every request times out after [`BusConfig::timeout`](crate::BusConfig::timeout) (5 s),
//! and the rows of one event (its webhooks, Slack, Jira) are claimed together and sent
//! concurrently, so an event's notifications all end within that budget.

use crate::Bus;
use crate::model::{
    IntegrationRow, JiraCredentials, JiraSettings, Kind, SlackCredentials, SlackSettings, Target,
};
use crate::retry::Next;
use crate::ssrf::CheckedTarget;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use eventdesk_commands::{CommandError, Options, SystemClock, execute};
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand};
use eventdesk_domain::values::{ExternalKey, ExternalSystem, ExternalUrl};
use eventdesk_domain::{Actor, StreamId, TenantId};
use eventdesk_store::EventMetadata;
use rand::Rng;
use serde_json::Value;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a clean stop lets requests in flight finish before cutting them off.
const DRAIN: Duration = Duration::from_secs(2);
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// `Retry-After` assumed when a 429 has none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A claimed row.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Id (the `webhook-id`).
    pub id: Uuid,
    /// Tenant.
    pub tenant: Uuid,
    /// Target.
    pub target: Target,
    /// `event`, `critical_incident`, `create_issue`, `comment`, …
    pub kind: String,
    /// The webhook.
    pub webhook: Option<Uuid>,
    /// The concurrency key.
    pub endpoint: String,
    /// The event.
    pub event_id: Option<Uuid>,
    /// The incident.
    pub stream: Option<Uuid>,
    /// What to send.
    pub payload: Value,
    /// Failed attempts of this round.
    pub round_attempts: i32,
    /// Start of this round.
    pub round_started_at: DateTime<Utc>,
}

/// What one send came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx (or nothing left to do for an idempotent step).
    Delivered {
        /// The receiver's status, if a request was made.
        status: Option<u16>,
        /// How long it took.
        latency_ms: i32,
    },
    /// Anything else; retried per the policy.
    Failed {
        /// The receiver's status, if it answered.
        status: Option<u16>,
        /// What happened.
        error: String,
        /// How long it took.
        latency_ms: i32,
    },
    /// 429: retried after `Retry-After`, not counted against the attempt bound.
    RateLimited {
        /// How long it took.
        latency_ms: i32,
        /// The receiver's `Retry-After`.
        retry_after: Duration,
    },
    /// Not now (no attempt): a paused webhook, a comment waiting for its issue.
    Defer(Duration),
    /// Nothing to send any more (no attempt): the integration was disabled, nothing to
    /// comment on.
    Skip(String),
}

/// Slots in use per endpoint on this node.
#[derive(Clone, Default)]
struct InFlight(Arc<Mutex<HashMap<String, usize>>>);

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn take(&self, endpoint: &str) -> Slot {
        *self.lock().entry(endpoint.to_owned()).or_default() += 1;
        Slot {
            inflight: self.clone(),
            endpoint: endpoint.to_owned(),
        }
    }
}

/// A used slot, given back when dropped (also when its task is aborted).
struct Slot {
    inflight: InFlight,
    endpoint: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.inflight.lock();
        if let Some(n) = map.get_mut(&self.endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.endpoint);
            }
        }
    }
}

fn target_of_endpoint(endpoint: &str) -> Target {
    endpoint
        .split(':')
        .next()
        .and_then(Target::parse)
        .unwrap_or(Target::Webhook)
}

/// Runs the workers until `stop`, then gives back the rows still held.
pub async fn run(bus: Bus, stop: CancellationToken) {
    let token = Uuid::now_v7();
    let inflight = InFlight::default();
    let mut tasks: JoinSet<()> = JoinSet::new();
    while !stop.is_cancelled() {
        while tasks.try_join_next().is_some() {}
        let (full, used): (Vec<String>, usize) = {
            let map = inflight.lock();
            (
                map.iter()
                    .filter(|(e, n)| **n >= target_of_endpoint(e).concurrency())
                    .map(|(e, _)| e.clone())
                    .collect(),
                map.values().sum(),
            )
        };
        let free = bus.inner.config.max_in_flight.saturating_sub(used);
        let mut claimed_any = false;
        if free > 0 {
            match claim(&bus, token, &full, &inflight, free).await {
                Ok(rows) => {
                    claimed_any = !rows.is_empty();
                    for row in rows {
                        let slot = inflight.take(&row.endpoint);
                        let bus = bus.clone();
                        tasks.spawn(async move {
                            let _slot = slot;
                            deliver(&bus, token, row).await;
                            bus.nudge();
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "integration bus: claim failed"),
            }
        }
        if claimed_any {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = bus.inner.wake.notified() => {}
            () = tokio::time::sleep(bus.inner.config.poll) => {}
        }
    }
    // Let requests in flight finish briefly, then cut them off and give their rows back.
    let _ = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    match release(&bus, token).await {
        Ok(n) if n > 0 => {
            tracing::info!(rows = n, "integration bus: gave back unfinished deliveries")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "integration bus: could not give back deliveries; their lease will expire")
        }
    }
}

/// Gives back the rows `token` still holds: due now, unclaimed.
pub async fn release(bus: &Bus, token: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE bus_deliveries SET next_attempt_at = now(), claim_token = NULL \
         WHERE claim_token = $1 AND status = 'pending'",
    )
    .bind(token)
    .execute(&bus.inner.system)
    .await?;
    Ok(done.rows_affected())
}

/// Claims up to `free` due rows, at most the free slots of each endpoint.
async fn claim(
    bus: &Bus,
    token: Uuid,
    full: &[String],
    inflight: &InFlight,
    free: usize,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let candidates = i64::try_from(free.saturating_mul(4).min(400)).unwrap_or(400);
    let mut tx = bus.inner.system.begin().await?;
    let rows = sqlx::query(
        "SELECT id, tenant_id, target, kind, webhook_id, endpoint, event_id, stream_id, payload, \
                round_attempts, round_started_at \
         FROM bus_deliveries \
         WHERE status = 'pending' AND next_attempt_at <= now() AND endpoint <> ALL($1) \
         ORDER BY next_attempt_at, created_at \
         LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(full)
    .bind(candidates)
    .fetch_all(&mut *tx)
    .await?;
    let mut room: HashMap<String, usize> = HashMap::new();
    let mut picked = Vec::new();
    {
        let used = inflight.lock();
        for r in rows {
            if picked.len() >= free {
                break;
            }
            let endpoint: String = r.try_get("endpoint")?;
            let target = Target::parse(r.try_get::<&str, _>("target")?).unwrap_or(Target::Webhook);
            let left = room.entry(endpoint.clone()).or_insert_with(|| {
                target
                    .concurrency()
                    .saturating_sub(used.get(&endpoint).copied().unwrap_or(0))
            });
            if *left == 0 {
                continue;
            }
            *left -= 1;
            let sqlx::types::Json(payload): sqlx::types::Json<Value> = r.try_get("payload")?;
            picked.push(Claimed {
                id: r.try_get("id")?,
                tenant: r.try_get("tenant_id")?,
                target,
                kind: r.try_get("kind")?,
                webhook: r.try_get("webhook_id")?,
                endpoint,
                event_id: r.try_get("event_id")?,
                stream: r.try_get("stream_id")?,
                payload,
                round_attempts: r.try_get("round_attempts")?,
                round_started_at: r.try_get("round_started_at")?,
            });
        }
    }
    if !picked.is_empty() {
        let ids: Vec<Uuid> = picked.iter().map(|c| c.id).collect();
        let lease_ms = i64::try_from(bus.inner.config.lease().as_millis()).unwrap_or(60_000);
        sqlx::query(
            "UPDATE bus_deliveries SET claim_token = $2, \
             next_attempt_at = now() + make_interval(secs => $3::float8 / 1000) \
             WHERE id = ANY($1)",
        )
        .bind(&ids)
        .bind(token)
        .bind(lease_ms)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(picked)
}

/// Sends one claimed row and records the outcome.
async fn deliver(bus: &Bus, token: Uuid, row: Claimed) {
    let started = Utc::now();
    let outcome = match row.target {
        Target::Webhook => send_webhook(bus, &row).await,
        Target::Slack => send_slack(bus, &row).await,
        Target::Jira => send_jira(bus, &row).await,
    };
    crate::metrics::attempt(bus.inner.config.observer.as_ref(), &row, &outcome);
    if let Err(e) = record(bus, token, &row, started, &outcome).await {
        tracing::warn!(delivery_id = %row.id, error = %e,
            "integration bus: could not record a delivery outcome; it will be sent again");
    }
}

/// Records `outcome` for `row` (only if this worker still holds it).
pub async fn record(
    bus: &Bus,
    token: Uuid,
    row: &Claimed,
    started: DateTime<Utc>,
    outcome: &Outcome,
) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    let mut tx = bus.inner.system.begin().await?;
    let (status, code, error, latency, outcome_name, counts, next) = match outcome {
        Outcome::Defer(d) => {
            let at = now + TimeDelta::from_std(*d).unwrap_or(TimeDelta::seconds(30));
            sqlx::query(
                "UPDATE bus_deliveries SET next_attempt_at = $3, claim_token = NULL \
                 WHERE id = $1 AND claim_token = $2",
            )
            .bind(row.id)
            .bind(token)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            return tx.commit().await;
        }
        Outcome::Skip(reason) => {
            sqlx::query(
                "UPDATE bus_deliveries SET status = 'skipped', last_error = $3, \
                 completed_at = now(), claim_token = NULL WHERE id = $1 AND claim_token = $2",
            )
            .bind(row.id)
            .bind(token)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            return tx.commit().await;
        }
        Outcome::Delivered { status, latency_ms } => (
            "succeeded",
            *status,
            None,
            *latency_ms,
            "succeeded",
            true,
            None,
        ),
        Outcome::Failed {
            status,
            error,
            latency_ms,
        } => {
            let failed = u32::try_from(row.round_attempts).unwrap_or(0) + 1;
            let unit: f64 = rand::thread_rng().r#gen();
            let next =
                bus.inner
                    .config
                    .retry
                    .next(failed, true, row.round_started_at, now, None, unit);
            let st = if matches!(next, Next::Dead) {
                "dead"
            } else {
                "pending"
            };
            (
                st,
                *status,
                Some(error.clone()),
                *latency_ms,
                "failed",
                true,
                Some(next),
            )
        }
        Outcome::RateLimited {
            latency_ms,
            retry_after,
        } => {
            let until = now + TimeDelta::from_std(*retry_after).unwrap_or(TimeDelta::seconds(30));
            let next = bus
                .inner
                .config
                .retry
                .after_rate_limit(row.round_started_at, until);
            // The endpoint's other waiting rows wait too.
            sqlx::query(
                "UPDATE bus_deliveries SET next_attempt_at = greatest(next_attempt_at, $2) \
                 WHERE endpoint = $1 AND status = 'pending' AND claim_token IS NULL",
            )
            .bind(&row.endpoint)
            .bind(until)
            .execute(&mut *tx)
            .await?;
            let st = if matches!(next, Next::Dead) {
                "dead"
            } else {
                "pending"
            };
            (
                st,
                Some(429),
                Some(format!(
                    "rate limited; retry after {} s",
                    retry_after.as_secs()
                )),
                *latency_ms,
                "rate_limited",
                false,
                Some(next),
            )
        }
    };
    let next_at = match next {
        Some(Next::RetryAt(t)) => Some(t),
        _ => None,
    };
    let attempt: Option<i32> = sqlx::query_scalar(
        "UPDATE bus_deliveries SET status = $3, attempts = attempts + 1, \
         round_attempts = round_attempts + CASE WHEN $4 THEN 1 ELSE 0 END, \
         next_attempt_at = COALESCE($5, next_attempt_at), claim_token = NULL, \
         last_attempt_at = $6, last_status_code = $7, last_error = $8, last_latency_ms = $9, \
         completed_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END \
         WHERE id = $1 AND claim_token = $2 RETURNING attempts",
    )
    .bind(row.id)
    .bind(token)
    .bind(status)
    .bind(counts)
    .bind(next_at)
    .bind(started)
    .bind(code.map(i32::from))
    .bind(&error)
    .bind(latency)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(attempt) = attempt else {
        // The lease ended and another worker holds the row now: its result counts.
        let _ = tx.rollback().await;
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO bus_delivery_attempts (delivery_id, tenant_id, attempt, started_at, \
         latency_ms, status_code, error, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT DO NOTHING",
    )
    .bind(row.id)
    .bind(row.tenant)
    .bind(attempt)
    .bind(started)
    .bind(latency)
    .bind(code.map(i32::from))
    .bind(&error)
    .bind(outcome_name)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if status == "dead" {
        tracing::warn!(delivery_id = %row.id, tenant_id = %row.tenant, target = row.target.as_str(),
            kind = %row.kind, "integration bus: delivery is dead");
    }
    Ok(())
}

fn ms_since(t: Instant) -> i32 {
    i32::try_from(t.elapsed().as_millis()).unwrap_or(i32::MAX)
}

/// The text of a transport error, without its URL (a Slack URL is a credential).
fn transport_error(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("timed out after {} ms", timeout.as_millis())
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        e.without_url().to_string()
    }
}

/// `Retry-After` (seconds or an HTTP date), capped.
fn retry_after(resp: &reqwest::Response) -> Duration {
    let Some(v) = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
    else {
        return DEFAULT_RETRY_AFTER;
    };
    let d = match v.trim().parse::<u64>() {
        Ok(s) => Duration::from_secs(s),
        Err(_) => match DateTime::parse_from_rfc2822(v.trim()) {
            Ok(t) => (t.with_timezone(&Utc) - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO),
            Err(_) => DEFAULT_RETRY_AFTER,
        },
    };
    d.min(MAX_RETRY_AFTER)
}

/// Sends `body` with `build` (which adds headers) to `target`, classifying the answer.
async fn send(
    bus: &Bus,
    target: &CheckedTarget,
    build: impl FnOnce(reqwest::Client) -> reqwest::RequestBuilder,
) -> (Outcome, Option<reqwest::Response>) {
    let client = match bus.inner.guard.client(target) {
        Ok(c) => c,
        Err(e) => {
            return (
                Outcome::Failed {
                    status: None,
                    error: format!("client: {}", e.without_url()),
                    latency_ms: 0,
                },
                None,
            );
        }
    };
    let t0 = Instant::now();
    match build(client).send().await {
        Err(e) => (
            Outcome::Failed {
                status: None,
                error: transport_error(e, bus.inner.guard.timeout()),
                latency_ms: ms_since(t0),
            },
            None,
        ),
        Ok(resp) => {
            let status = resp.status();
            let latency_ms = ms_since(t0);
            let outcome = if status.is_success() {
                Outcome::Delivered {
                    status: Some(status.as_u16()),
                    latency_ms,
                }
            } else if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                Outcome::RateLimited {
                    latency_ms,
                    retry_after: retry_after(&resp),
                }
            } else {
                Outcome::Failed {
                    status: Some(status.as_u16()),
                    error: format!("HTTP {}", status.as_u16()),
                    latency_ms,
                }
            };
            (outcome, Some(resp))
        }
    }
}

fn refused(e: impl std::fmt::Display) -> Outcome {
    Outcome::Failed {
        status: None,
        error: format!("target refused: the URL {e}"),
        latency_ms: 0,
    }
}

async fn send_webhook(bus: &Bus, row: &Claimed) -> Outcome {
    let Some(webhook) = row.webhook else {
        return Outcome::Skip("no webhook".into());
    };
    let found = sqlx::query(
        "SELECT url, status, secret_enc, previous_secret_enc, previous_secret_expires_at \
         FROM webhooks WHERE tenant_id = $1 AND id = $2",
    )
    .bind(row.tenant)
    .bind(webhook)
    .fetch_optional(&bus.inner.system)
    .await;
    let w = match found {
        Ok(Some(w)) => w,
        Ok(None) => return Outcome::Skip("the webhook was deleted".into()),
        Err(e) => return Outcome::Defer(db_retry(&e)),
    };
    let get = |c: &str| w.try_get::<Option<String>, _>(c).ok().flatten();
    if get("status").as_deref() == Some("paused") {
        return Outcome::Defer(Duration::from_secs(30));
    }
    let aad = crate::model::webhook_aad(row.tenant, webhook);
    let Some(current) =
        get("secret_enc").and_then(|s| bus.inner.secrets.open_string(&s, &aad).ok())
    else {
        return Outcome::Failed {
            status: None,
            error: "the webhook secret cannot be decrypted (EVENTDESK_SECRETS_KEY changed?)".into(),
            latency_ms: 0,
        };
    };
    let previous_valid = w
        .try_get::<Option<DateTime<Utc>>, _>("previous_secret_expires_at")
        .ok()
        .flatten()
        .is_some_and(|t| t > Utc::now());
    let previous = previous_valid
        .then(|| get("previous_secret_enc"))
        .flatten()
        .and_then(|s| bus.inner.secrets.open_string(&s, &aad).ok());
    let url = get("url").unwrap_or_default();
    let target = match bus.inner.guard.check(&url).await {
        Ok(t) => t,
        Err(e) => return refused(e),
    };
    let body = match serde_json::to_vec(&row.payload) {
        Ok(b) => b,
        Err(e) => return Outcome::Skip(format!("unserialisable payload: {e}")),
    };
    let msg_id = row.id.to_string();
    let timestamp = Utc::now().timestamp();
    let mut secrets = vec![current.as_str()];
    if let Some(p) = previous.as_deref() {
        secrets.push(p);
    }
    let signature = match crate::signing::signature_header(&secrets, &msg_id, timestamp, &body) {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Failed {
                status: None,
                error: e.to_string(),
                latency_ms: 0,
            };
        }
    };
    let url = target.url.clone();
    send(bus, &target, move |c| {
        c.post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
    })
    .await
    .0
}

fn db_retry(e: &sqlx::Error) -> Duration {
    tracing::warn!(error = %e, "integration bus: database error while sending; deferred");
    Duration::from_secs(5)
}

async fn integration<S: serde::de::DeserializeOwned, C: serde::de::DeserializeOwned>(
    bus: &Bus,
    tenant: Uuid,
    kind: Kind,
) -> Result<Option<(IntegrationRow<S>, C)>, Outcome> {
    let row = sqlx::query(
        "SELECT tenant_id, enabled, settings, credentials_enc, created_at, updated_at \
         FROM integration_settings WHERE tenant_id = $1 AND kind = $2",
    )
    .bind(tenant)
    .bind(kind.as_str())
    .fetch_optional(&bus.inner.system)
    .await
    .map_err(|e| Outcome::Defer(db_retry(&e)))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let row: IntegrationRow<S> =
        crate::repo::integration_of(&row).map_err(|e| Outcome::Skip(format!("settings: {e}")))?;
    let Some(sealed) = row.credentials_enc.as_deref().filter(|_| row.enabled) else {
        return Ok(None);
    };
    let creds = bus
        .inner
        .secrets
        .open(sealed, &crate::model::integration_aad(kind, tenant))
        .ok()
        .and_then(|b| serde_json::from_slice::<C>(&b).ok())
        .ok_or_else(|| Outcome::Failed {
            status: None,
            error: format!(
                "the {} credentials cannot be decrypted (EVENTDESK_SECRETS_KEY changed?)",
                kind.as_str()
            ),
            latency_ms: 0,
        })?;
    Ok(Some((row, creds)))
}

async fn send_slack(bus: &Bus, row: &Claimed) -> Outcome {
    let (_, creds) =
        match integration::<SlackSettings, SlackCredentials>(bus, row.tenant, Kind::Slack).await {
            Ok(Some(x)) => x,
            Ok(None) => return Outcome::Skip("the Slack integration is not enabled".into()),
            Err(o) => return o,
        };
    let target = match bus.inner.guard.check(&creds.webhook_url).await {
        Ok(t) => t,
        Err(e) => return refused(e),
    };
    let body = row.payload.get("body").cloned().unwrap_or(Value::Null);
    let url = target.url.clone();
    send(bus, &target, move |c| c.post(url).json(&body)).await.0
}

fn basic_auth(creds: &JiraCredentials) -> String {
    let raw = format!("{}:{}", creds.email, creds.api_token);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Whether `key` looks like a Jira issue key (`PROJ-123`), so it is safe in a path.
fn is_issue_key(key: &str) -> bool {
    let Some((project, n)) = key.rsplit_once('-') else {
        return false;
    };
    !project.is_empty()
        && project.len() <= 64
        && project
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit())
}

async fn send_jira(bus: &Bus, row: &Claimed) -> Outcome {
    let (settings, creds) =
        match integration::<JiraSettings, JiraCredentials>(bus, row.tenant, Kind::Jira).await {
            Ok(Some(x)) => x,
            Ok(None) => return Outcome::Skip("the Jira integration is not enabled".into()),
            Err(o) => return o,
        };
    let Some(incident) = row.stream else {
        return Outcome::Skip("no incident".into());
    };
    let base = settings.settings.base_url.trim_end_matches('/').to_owned();
    let link = sqlx::query(
        "SELECT issue_key, issue_url FROM bus_jira_links WHERE tenant_id = $1 AND incident_id = $2",
    )
    .bind(row.tenant)
    .bind(incident)
    .fetch_optional(&bus.inner.system)
    .await;
    let link: Option<(String, Option<String>)> = match link {
        Ok(Some(r)) => match (r.try_get(0), r.try_get(1)) {
            (Ok(k), Ok(u)) => Some((k, u)),
            _ => None,
        },
        Ok(None) => None,
        Err(e) => return Outcome::Defer(db_retry(&e)),
    };
    let auth = basic_auth(&creds);
    let body = row.payload.get("body").cloned().unwrap_or(Value::Null);
    match row.kind.as_str() {
        "create_issue" => {
            if let Some((key, url)) = link {
                // Created before (a retry after the link was stored): make sure the incident
                // records it, and that is all.
                return match link_incident(bus, row, &key, url.as_deref()).await {
                    Ok(()) => Outcome::Delivered {
                        status: None,
                        latency_ms: 0,
                    },
                    Err(e) => Outcome::Failed {
                        status: None,
                        error: e,
                        latency_ms: 0,
                    },
                };
            }
            let target = match bus
                .inner
                .guard
                .check(&format!("{base}/rest/api/3/issue"))
                .await
            {
                Ok(t) => t,
                Err(e) => return refused(e),
            };
            let url = target.url.clone();
            let (outcome, resp) = send(bus, &target, move |c| {
                c.post(url)
                    .header(reqwest::header::AUTHORIZATION, auth)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .json(&body)
            })
            .await;
            let (Outcome::Delivered { status, latency_ms }, Some(resp)) = (&outcome, resp) else {
                return outcome;
            };
            let created: Value = resp.json().await.unwrap_or(Value::Null);
            let Some(key) = created
                .get("key")
                .and_then(Value::as_str)
                .filter(|k| is_issue_key(k))
            else {
                return Outcome::Failed {
                    status: *status,
                    error: "Jira answered without an issue key".into(),
                    latency_ms: *latency_ms,
                };
            };
            let browse = format!("{base}/browse/{key}");
            let stored = sqlx::query(
                "INSERT INTO bus_jira_links (tenant_id, incident_id, issue_key, issue_url) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(row.tenant)
            .bind(incident)
            .bind(key)
            .bind(&browse)
            .execute(&bus.inner.system)
            .await;
            if let Err(e) = stored {
                tracing::error!(error = %e, issue = key, "integration bus: Jira issue created but its link was not stored");
            }
            match link_incident(bus, row, key, Some(&browse)).await {
                Ok(()) => outcome,
                Err(e) => Outcome::Failed {
                    status: *status,
                    error: format!("issue {key} created; recording it failed: {e}"),
                    latency_ms: *latency_ms,
                },
            }
        }
        "comment" => {
            let Some((key, _)) = link.filter(|(k, _)| is_issue_key(k)) else {
                return comment_without_issue(bus, row, incident).await;
            };
            let target = match bus
                .inner
                .guard
                .check(&format!("{base}/rest/api/3/issue/{key}/comment"))
                .await
            {
                Ok(t) => t,
                Err(e) => return refused(e),
            };
            let url = target.url.clone();
            send(bus, &target, move |c| {
                c.post(url)
                    .header(reqwest::header::AUTHORIZATION, auth)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .json(&body)
            })
            .await
            .0
        }
        other => Outcome::Skip(format!("unknown Jira job {other}")),
    }
}

/// A comment whose incident has no issue yet: wait while its creation is pending.
async fn comment_without_issue(bus: &Bus, row: &Claimed, incident: Uuid) -> Outcome {
    let pending: Result<Option<i32>, _> = sqlx::query_scalar(
        "SELECT 1 FROM bus_deliveries WHERE tenant_id = $1 AND dedupe_key = $2 \
         AND status = 'pending'",
    )
    .bind(row.tenant)
    .bind(format!("jira:create:{incident}"))
    .fetch_optional(&bus.inner.system)
    .await;
    match pending {
        Ok(Some(_)) => Outcome::Defer(Duration::from_secs(2)),
        Ok(None) => Outcome::Skip("the incident has no Jira issue".into()),
        Err(e) => Outcome::Defer(db_retry(&e)),
    }
}

/// Records the issue on the incident (`IncidentExternalLinked`) through the command path.
async fn link_incident(
    bus: &Bus,
    row: &Claimed,
    key: &str,
    url: Option<&str>,
) -> Result<(), String> {
    let Some(incident) = row.stream else {
        return Ok(());
    };
    let key = ExternalKey::parse(key).map_err(|e| e.to_string())?;
    let url = url.and_then(|u| ExternalUrl::parse(u).ok());
    let opts = Options {
        metadata: EventMetadata {
            actor: crate::BUS_ACTOR.into(),
            causation_id: row.event_id,
            ..EventMetadata::default()
        },
        ..Options::default()
    };
    let command = IncidentCommand::LinkExternal {
        system: ExternalSystem::Jira,
        key,
        url,
        actor: Actor::System,
    };
    for _ in 0..5 {
        match execute::<IncidentAggregate>(
            &bus.inner.store,
            &SystemClock,
            TenantId(row.tenant),
            StreamId(incident),
            command.clone(),
            &opts,
        )
        .await
        {
            Ok(_) => return Ok(()),
            Err(CommandError::Conflict) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the incident kept changing".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_keys_are_checked_before_they_enter_a_path() {
        assert!(is_issue_key("OPS-1"));
        assert!(is_issue_key("A1_B-42"));
        for bad in [
            "OPS",
            "-1",
            "ops-1",
            "OPS-",
            "OPS-1/../x",
            "OPS-1?x",
            "../OPS-1",
        ] {
            assert!(!is_issue_key(bad), "{bad}");
        }
    }

    #[test]
    fn slots_are_given_back_on_drop() {
        let f = InFlight::default();
        let a = f.take("webhook:x");
        let b = f.take("webhook:x");
        assert_eq!(f.lock().get("webhook:x"), Some(&2));
        drop(a);
        drop(b);
        assert!(f.lock().is_empty());
        assert_eq!(target_of_endpoint("slack:t"), Target::Slack);
    }
}
