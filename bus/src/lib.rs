//! # eventdesk-bus
//!
//! **Owns:** the integration bus (issue #7, ADR 0016) — generic webhooks signed the Standard
//! Webhooks way, Slack incoming-webhook messages and Jira issues and comments — and what they
//! need: the SSRF guard of every outbound URL ([`ssrf`]), credentials sealed at rest
//! ([`crypto`]), signatures ([`signing`]), the message bodies ([`messages`]), the retry
//! policy ([`retry`]) and the bus's tables ([`repo`] for the API).
//!
//! How it runs ([`Bus::run`]):
//! - **fan-out** ([`fanout`]): a subscriber on the event log with its own checkpoint
//!   (`bus_checkpoints`). It reads events below the horizon in order and, for each event and
//!   each matching subscription or integration, inserts a durable row in `bus_deliveries` —
//!   in the same transaction that moves its checkpoint, so every event is fanned out exactly
//!   once and nothing is ever sent from inside a command's transaction;
//! - **dispatch** ([`dispatch`]): workers claim due rows with `FOR UPDATE SKIP LOCKED`, lease
//!   them, and send them concurrently across endpoints with a per-endpoint limit, so a slow or
//!   dead receiver only holds its own rows. Failures retry with exponential backoff and jitter
//!   until the policy's bounds, then the row is `dead` (redeliverable). Delivery is
//!   at-least-once: receivers deduplicate on `webhook-id`;
//! - **daily summaries** ([`daily`]): a row per tenant and local date, at the configured local
//!   time in the tenant's zone.
//!
//! Events caused by a test-mode API key (`EventMetadata::test_mode`) — and every later event
//! of an incident such a key created — get rows with status `dry_run`: recorded, never sent.
//!
//! **Must not:** know HTTP routing (that is `api`), decide anything about incidents (it
//! records the Jira link through the command path), or send from a command's transaction.

pub mod crypto;
pub mod daily;
pub mod dispatch;
pub mod fanout;
pub mod messages;
pub mod metrics;
pub mod model;
pub mod repo;
pub mod retry;
pub mod signing;
pub mod ssrf;

use crate::crypto::SecretBox;
use crate::retry::RetryPolicy;
use crate::ssrf::Guard;
use eventdesk_store::PgEventStore;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The actor label of what the bus appends (the Jira link).
pub const BUS_ACTOR: &str = "system:integration-bus";

/// Tuning of the bus.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Retries.
    pub retry: RetryPolicy,
    /// Per-request timeout; the concurrent notifications of one event all end within it
    /// (the seed's 5 s budget per event).
    pub timeout: Duration,
    /// Events per fan-out batch.
    pub batch: i64,
    /// Longest sleep between polls when nothing wakes the bus.
    pub poll: Duration,
    /// Requests in flight per node, all endpoints together.
    pub max_in_flight: usize,
    /// Told the tenant and latency of every delivery attempt (the performance monitor).
    pub observer: Option<crate::metrics::DeliveryObserver>,
    /// How often the daily-summary schedule is checked.
    pub summary_check: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(5),
            batch: 500,
            poll: Duration::from_millis(250),
            max_in_flight: 64,
            summary_check: Duration::from_secs(30),
            observer: None,
        }
    }
}

impl BusConfig {
    /// How long a claimed row stays leased to its worker: well past the request timeout, so a
    /// live worker never loses its row; a dead worker's rows are due again after it.
    pub fn lease(&self) -> Duration {
        self.timeout.saturating_mul(2) + Duration::from_secs(10)
    }
}

struct Inner {
    system: PgPool,
    store: PgEventStore,
    guard: Guard,
    secrets: SecretBox,
    config: BusConfig,
    wake: Notify,
    summaries: Notify,
}

/// The bus: shared by its tasks and by the API (guard, secrets, wake-up). Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("guard", &self.inner.guard)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Bus {
    /// A bus reading and writing through `system` (a BYPASSRLS pool: every tenant's rows),
    /// appending through `store`.
    pub fn new(
        system: PgPool,
        store: PgEventStore,
        secrets: SecretBox,
        guard: Guard,
        config: BusConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                system,
                store,
                guard,
                secrets,
                config,
                wake: Notify::new(),
                summaries: Notify::new(),
            }),
        }
    }

    /// The SSRF guard.
    pub fn guard(&self) -> &Guard {
        &self.inner.guard
    }

    /// The credential box.
    pub fn secrets(&self) -> &SecretBox {
        &self.inner.secrets
    }

    /// The configuration.
    pub fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    /// Wakes this node's dispatcher (new rows, a redelivery).
    pub fn nudge(&self) {
        self.inner.wake.notify_one();
    }

    /// Makes this node check the daily summaries now (after the Slack settings changed).
    pub fn nudge_summaries(&self) {
        self.inner.summaries.notify_one();
    }

    /// Runs the fan-out, the dispatcher and the daily summaries until `stop`; then releases
    /// the rows this node still holds, so another node (or the next start) sends them at once.
    pub async fn run(self, stop: CancellationToken) {
        let fanout = tokio::spawn(fanout::run(self.clone(), stop.clone()));
        let daily = tokio::spawn(daily::run(self.clone(), stop.clone()));
        dispatch::run(self.clone(), stop).await;
        let _ = fanout.await;
        let _ = daily.await;
    }
}
