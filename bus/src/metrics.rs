//! The bus's Prometheus figures (through the `metrics` facade) and the per-tenant hook of the
//! performance monitor (ADR 0020): every attempt's outcome is counted where it is known
//! ([`crate::dispatch`]), without a tenant label.
//!
//! **Must not:** know where the figures go: the API installs the recorder and the observer.

use crate::dispatch::{Claimed, Outcome};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Delivery attempts (counter; `target`, `outcome` = succeeded | failed | rate_limited).
pub const DELIVERIES: &str = "eventdesk_bus_deliveries_total";
/// Latency of delivery attempts (histogram, seconds; `target`).
pub const DELIVERY_SECONDS: &str = "eventdesk_bus_delivery_duration_seconds";

/// Told the tenant and latency of every attempt that made a request (the monitor's
/// `integration` category).
#[derive(Clone)]
pub struct DeliveryObserver(pub Arc<dyn Fn(Uuid, Duration) + Send + Sync>);

impl std::fmt::Debug for DeliveryObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryObserver")
    }
}

/// Records one attempt (deferred and skipped rows made no request: not counted).
pub(crate) fn attempt(observer: Option<&DeliveryObserver>, row: &Claimed, outcome: &Outcome) {
    let (name, latency_ms) = match outcome {
        Outcome::Delivered { latency_ms, .. } => ("succeeded", *latency_ms),
        Outcome::Failed { latency_ms, .. } => ("failed", *latency_ms),
        Outcome::RateLimited { latency_ms, .. } => ("rate_limited", *latency_ms),
        Outcome::Defer(_) | Outcome::Skip(_) => return,
    };
    let took = Duration::from_millis(u64::try_from(latency_ms).unwrap_or(0));
    let target = row.target.as_str();
    metrics::counter!(DELIVERIES, "target" => target, "outcome" => name).increment(1);
    metrics::histogram!(DELIVERY_SECONDS, "target" => target).record(took.as_secs_f64());
    if let Some(o) = observer {
        (o.0)(row.tenant, took);
    }
}
