//! Where database time goes: a task-local sink for the performance monitor (ADR 0020), and the
//! event store's Prometheus figures (through the `metrics` facade; without an installed
//! recorder they cost a relaxed load).
//!
//! **Owns:** the task-local [`DbTimingSink`] of the current request and the names of the
//! store's metrics. **Must not:** know about HTTP, tenants' budgets or where the figures go:
//! the API installs the sink around each request ([`scope`]) and decides what to do with a
//! duration.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Receives the duration of each database operation timed inside [`scope`].
pub trait DbTimingSink: Send + Sync {
    /// One operation (`op`: e.g. `append`, `read_tx`) took `took`.
    fn record(&self, op: &'static str, took: Duration);
}

tokio::task_local! {
    static SINK: Arc<dyn DbTimingSink>;
}

/// Runs `f` with `sink` receiving the database timings recorded in its task.
pub async fn scope<F: Future>(sink: Arc<dyn DbTimingSink>, f: F) -> F::Output {
    SINK.scope(sink, f).await
}

/// Reports a database operation to the current task's sink, if any.
pub fn record(op: &'static str, took: Duration) {
    let _ = SINK.try_with(|s| s.record(op, took));
}

/// Events appended (counter).
pub const APPENDS: &str = "eventdesk_event_store_appends_total";
/// Events in appended batches (counter).
pub const APPENDED_EVENTS: &str = "eventdesk_event_store_appended_events_total";
/// Appends that failed on the expected version (counter).
pub const CONFLICTS: &str = "eventdesk_event_store_conflicts_total";
/// Latency of one append statement (histogram, seconds).
pub const APPEND_SECONDS: &str = "eventdesk_event_store_append_duration_seconds";

/// Records the outcome of one append attempt.
pub(crate) fn append_done<T>(took: Duration, events: usize, r: &crate::Result<T>) {
    match r {
        Ok(_) => {
            metrics::counter!(APPENDS).increment(1);
            metrics::counter!(APPENDED_EVENTS).increment(events as u64);
        }
        Err(crate::StoreError::Conflict { .. }) => metrics::counter!(CONFLICTS).increment(1),
        Err(_) => {}
    }
    metrics::histogram!(APPEND_SECONDS).record(took.as_secs_f64());
    record("append", took);
}
