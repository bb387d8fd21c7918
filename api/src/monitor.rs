//! The performance monitor (issue #5, ADR 0020): latency per tenant, per route template and
//! per category against the seed's budgets (API 100 ms, auth 50 ms, DB 30 ms, security checks
//! 10 ms, integrations 5 s), budget violations, and repeated-violation alerts.
//!
//! **Owns:** the in-memory aggregation (sharded by tenant, one short mutex hold per sample, no
//! allocation once a tenant's route is known), the request middleware ([`track`]) that feeds it
//! and the HTTP Prometheus metrics, the task-local context through which the authorisation
//! middleware and the database choke points report their timings, the alert flusher
//! ([`Monitor::run`]) that writes raised alerts to `monitor_alerts` in the background, and the
//! per-tenant snapshot of `GET /api/v1/analytics/performance`.
//!
//! **Must not:** write to the database on a request's path (alerts are queued and flushed), label
//! the Prometheus metrics with tenants, or hold its locks across an `.await`.
//!
//! Percentiles are per node since it started, from log-spaced buckets (2^¼ apart, 10 µs to
//! ~140 s): a reported percentile is the upper bound of its bucket, at most 19 % above the true
//! value. Alerts are durable and shared by all nodes.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use chrono::{DateTime, Utc};
use eventdesk_store::subscription::StopToken;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What a latency measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A whole request, from the first byte handled to the response.
    Api,
    /// Authenticating the caller (JWT verification or API-key lookup).
    Auth,
    /// One timed database operation (an event-store append, opening a read transaction).
    Db,
    /// The authorisation decision (the route's declared permission).
    Security,
    /// One integration-bus delivery attempt.
    Integration,
}

impl Category {
    /// Every category, in the order of the budgets' array.
    pub const ALL: [Category; 5] = [
        Category::Api,
        Category::Auth,
        Category::Db,
        Category::Security,
        Category::Integration,
    ];

    /// The name used in the API, the metrics and `monitor_alerts`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Api => "api",
            Category::Auth => "auth",
            Category::Db => "db",
            Category::Security => "security",
            Category::Integration => "integration",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The monitor's configuration (`EVENTDESK_MONITOR*`).
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// `EVENTDESK_MONITOR` (default on): off removes the middleware and every recording.
    pub enabled: bool,
    /// `EVENTDESK_MONITOR_BUDGETS`, e.g. `api=100,auth=50,db=30,security=10,integration=5000`
    /// (milliseconds; the ones not named keep these defaults).
    pub budgets: [Duration; 5],
    /// `EVENTDESK_MONITOR_ALERT_AFTER` (default 5): violations in a row that raise an alert.
    pub alert_after: u32,
    /// `EVENTDESK_MONITOR_FLUSH_MS` (default 2000): how often raised alerts are written.
    pub flush: Duration,
    /// `EVENTDESK_MONITOR_ALERT_COOLDOWN_SECS` (default 60; 0 = none): after an alert of a
    /// tenant's category, runs completed within this time raise no alert of their own; the
    /// next alert counts them (`suppressed`). A sustained slowdown then writes one alert (and
    /// one log line) per tenant, category and minute, not one per N requests.
    pub alert_cooldown: Duration,
    /// `EVENTDESK_MONITOR_ALERT_RETENTION_DAYS` (default 30): stored alerts older than this
    /// are deleted by the flusher (checked at start and then hourly).
    pub alert_retention: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            budgets: DEFAULT_BUDGETS,
            alert_after: 5,
            flush: Duration::from_secs(2),
            alert_cooldown: Duration::from_secs(60),
            alert_retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// The seed's budgets, in [`Category::ALL`] order.
pub const DEFAULT_BUDGETS: [Duration; 5] = [
    Duration::from_millis(100),
    Duration::from_millis(50),
    Duration::from_millis(30),
    Duration::from_millis(10),
    Duration::from_secs(5),
];

/// Parses `api=100,db=30` (milliseconds, fractions allowed) over the defaults.
pub fn parse_budgets(s: &str) -> Result<[Duration; 5], String> {
    let mut out = DEFAULT_BUDGETS;
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not category=milliseconds"))?;
        let c = Category::parse(k.trim()).ok_or_else(|| {
            format!("unknown category `{k}` (api, auth, db, security, integration)")
        })?;
        let ms: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("`{v}` is not a number of milliseconds"))?;
        if !(ms.is_finite() && (0.0..=86_400_000.0).contains(&ms)) {
            return Err(format!("`{v}` is out of range"));
        }
        out[c.index()] = Duration::from_secs_f64(ms / 1000.0);
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// Histograms
// ------------------------------------------------------------------------------------------

/// Buckets of a histogram: bucket `i` holds latencies in (b(i-1), b(i)], b(i) = 10 µs · 2^(i/4).
const BUCKETS: usize = 96;
const BASE_NS: f64 = 10_000.0;

fn bucket_of(ns: u64) -> usize {
    if ns as f64 <= BASE_NS {
        return 0;
    }
    let i = (4.0 * (ns as f64 / BASE_NS).log2()).ceil();
    (i as usize).min(BUCKETS - 1)
}

fn bucket_upper_ms(i: usize) -> f64 {
    BASE_NS * 2f64.powf(i as f64 / 4.0) / 1e6
}

#[derive(Clone)]
struct Hist {
    buckets: [u64; BUCKETS],
    count: u64,
    sum_ns: u64,
    max_ns: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            buckets: [0; BUCKETS],
            count: 0,
            sum_ns: 0,
            max_ns: 0,
        }
    }
}

impl Hist {
    fn add(&mut self, ns: u64) {
        self.buckets[bucket_of(ns)] += 1;
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// The upper bound of the bucket holding the `q` quantile (capped by the maximum seen).
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(round3(bucket_upper_ms(i).min(self.max_ns as f64 / 1e6)));
            }
        }
        Some(round3(self.max_ns as f64 / 1e6))
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ------------------------------------------------------------------------------------------
// Aggregation
// ------------------------------------------------------------------------------------------

#[derive(Default, Clone)]
struct CategoryStats {
    hist: Hist,
    violations: u64,
    /// Violations in a row (reset by a sample within the budget, and by a completed run).
    run: u32,
    alerts: u64,
    /// When the last alert of this category was raised (for the cooldown).
    last_alert: Option<Instant>,
    /// Runs completed since the last alert that raised none (within its cooldown).
    suppressed: u32,
}

#[derive(Default, Clone)]
struct RouteStats {
    hist: Hist,
    violations: u64,
}

#[derive(Default)]
struct TenantStats {
    categories: [CategoryStats; 5],
    /// `METHOD /template` → whole-request latency.
    routes: HashMap<String, RouteStats>,
}

/// A raised alert, queued for the flusher.
#[derive(Debug, Clone)]
struct Alert {
    id: Uuid,
    tenant: Uuid,
    category: Category,
    route: Option<String>,
    consecutive: u32,
    /// Runs completed within the cooldown since the previous alert, counted here.
    suppressed: u32,
    budget_ms: f64,
    observed_ms: f64,
    raised_at: DateTime<Utc>,
}

/// How often the flusher deletes alerts past their retention.
const RETENTION_SWEEP: Duration = Duration::from_secs(3600);
/// Alerts deleted per statement by the retention sweep.
const RETENTION_BATCH: i64 = 10_000;

const SHARDS: usize = 16;
/// Alerts kept for the flusher at most (the oldest are dropped if the database is away).
const MAX_PENDING: usize = 10_000;

struct Inner {
    config: MonitorConfig,
    shards: Vec<Mutex<HashMap<Uuid, TenantStats>>>,
    pending: Mutex<Vec<Alert>>,
    node: String,
    started_at: DateTime<Utc>,
    handles: Handles,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent counters: keep using them.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The Prometheus handles of the monitor's metrics, registered on first use and kept.
///
/// A `metrics::counter!`/`histogram!` call with labels builds a key (a vector of labels, an
/// owned string per dynamic label), hashes it, looks it up in the recorder's registry and
/// allocates a handle, every time. Here a request costs one read lock, one lookup by the route
/// template's `&str` and a short scan, then the handles' atomic updates; nothing is allocated
/// once a (route, method, status) has been seen. The set of keys is bounded the same way the
/// exported series are (route templates, methods, statuses).
#[derive(Default)]
struct Handles {
    /// Route template (`unmatched` outside routes) → one entry per method and status.
    http: RwLock<HashMap<Arc<str>, Vec<HttpHandles>>>,
    /// `eventdesk_db_operation_duration_seconds{op}`, by operation.
    db: RwLock<Vec<(&'static str, metrics::Histogram)>>,
    /// `eventdesk_budget_violations_total{category}`, in [`Category::ALL`] order.
    violations: [OnceLock<metrics::Counter>; 5],
}

struct HttpHandles {
    method: Method,
    status: u16,
    requests: metrics::Counter,
    seconds: metrics::Histogram,
}

/// The `route` label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

impl HttpHandles {
    fn record(&self, secs: f64) {
        self.requests.increment(1);
        self.seconds.record(secs);
    }
}

impl Handles {
    /// Counts one request in `eventdesk_http_requests_total` and its latency in
    /// `eventdesk_http_request_duration_seconds`.
    fn request(&self, method: &Method, route: &str, status: axum::http::StatusCode, secs: f64) {
        let code = status.as_u16();
        let found = |v: &Vec<HttpHandles>| {
            v.iter()
                .position(|h| h.status == code && h.method == *method)
        };
        {
            let map = read(&self.http);
            if let Some(v) = map.get(route)
                && let Some(i) = found(v)
            {
                v[i].record(secs);
                return;
            }
        }
        let mut map = write(&self.http);
        let v = match map.get_mut(route) {
            Some(v) => v,
            None => map.entry(Arc::from(route)).or_default(),
        };
        let i = match found(v) {
            Some(i) => i,
            None => {
                let method_label = metrics::SharedString::from(method.as_str().to_owned());
                let route_label = if route == UNMATCHED {
                    metrics::SharedString::const_str(UNMATCHED)
                } else {
                    metrics::SharedString::from(route.to_owned())
                };
                let status_label = crate::metrics::status_label(status);
                v.push(HttpHandles {
                    method: method.clone(),
                    status: code,
                    requests: metrics::counter!(crate::metrics::HTTP_REQUESTS,
                        "method" => method_label.clone(), "route" => route_label.clone(),
                        "status" => status_label.clone()),
                    seconds: metrics::histogram!(crate::metrics::HTTP_SECONDS,
                        "method" => method_label, "route" => route_label, "status" => status_label),
                });
                v.len() - 1
            }
        };
        v[i].record(secs);
    }

    /// Records one timed database operation in `eventdesk_db_operation_duration_seconds`.
    fn db(&self, op: &'static str, secs: f64) {
        {
            let v = read(&self.db);
            if let Some((_, h)) = v.iter().find(|(o, _)| *o == op) {
                h.record(secs);
                return;
            }
        }
        let mut v = write(&self.db);
        if let Some((_, h)) = v.iter().find(|(o, _)| *o == op) {
            h.record(secs);
            return;
        }
        let h = metrics::histogram!(crate::metrics::DB_SECONDS, "op" => op);
        h.record(secs);
        v.push((op, h));
    }

    /// Counts a violation in `eventdesk_budget_violations_total`.
    fn violation(&self, category: Category) {
        self.violations[category.index()]
            .get_or_init(|| {
                metrics::counter!(crate::metrics::BUDGET_VIOLATIONS,
                    "category" => category.as_str())
            })
            .increment(1);
    }
}

/// The monitor of one server. Cheap to clone; `off` records nothing.
#[derive(Clone)]
pub struct Monitor {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

impl Monitor {
    /// A monitor (or an inert one if `config.enabled` is false).
    pub fn new(config: MonitorConfig) -> Self {
        if !config.enabled {
            return Self { inner: None };
        }
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Self {
            inner: Some(Arc::new(Inner {
                config,
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                pending: Mutex::new(Vec::new()),
                node: format!("{host}:{}", std::process::id()),
                started_at: Utc::now(),
                handles: Handles::default(),
            })),
        }
    }

    /// Whether it records.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The observer the integration bus reports its attempts to.
    pub fn delivery_observer(&self) -> Option<eventdesk_bus::metrics::DeliveryObserver> {
        let inner = self.inner.clone()?;
        Some(eventdesk_bus::metrics::DeliveryObserver(Arc::new(
            move |tenant, took| inner.sample(tenant, Category::Integration, None, took),
        )))
    }

    /// Records one sample of `tenant` (for tests and callers outside requests).
    pub fn record(&self, tenant: Uuid, category: Category, took: Duration) {
        if let Some(i) = &self.inner {
            i.sample(tenant, category, None, took);
        }
    }

    /// Records one whole request of `tenant` on `route` (`METHOD /template`), as the
    /// middleware does (for tests and callers outside the router).
    pub fn record_request(&self, tenant: Uuid, route: &str, took: Duration) {
        if let Some(i) = &self.inner {
            i.sample(tenant, Category::Api, Some(route), took);
        }
    }

    /// Writes the queued alerts every `flush` until `stop`, then once more.
    pub async fn run(self, system: PgPool, stop: StopToken) {
        let Some(inner) = self.inner else { return };
        let mut tick = tokio::time::interval(inner.config.flush);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut swept: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => {
                    inner.flush(&system).await;
                    return;
                }
            }
            inner.flush(&system).await;
            if swept.is_none_or(|at| at.elapsed() >= RETENTION_SWEEP) {
                swept = Some(Instant::now());
                if let Err(e) = prune_alerts(&system, inner.config.alert_retention).await {
                    tracing::warn!(error = %e, "performance monitor: could not delete old alerts");
                }
            }
        }
    }

    /// The tenant's view for `GET /api/v1/analytics/performance` (without the stored alerts).
    pub fn snapshot(&self, tenant: Uuid) -> Snapshot {
        let Some(inner) = &self.inner else {
            return Snapshot {
                enabled: false,
                since: None,
                alert_after: 0,
                categories: Vec::new(),
                routes: Vec::new(),
            };
        };
        let shard = lock(inner.shard(tenant));
        let stats = shard.get(&tenant);
        let categories = Category::ALL
            .iter()
            .map(|c| {
                let s = stats
                    .map(|t| t.categories[c.index()].clone())
                    .unwrap_or_default();
                CategoryView {
                    category: c.as_str(),
                    budget_ms: round3(inner.config.budgets[c.index()].as_secs_f64() * 1000.0),
                    count: s.hist.count,
                    p50_ms: s.hist.quantile_ms(0.50),
                    p95_ms: s.hist.quantile_ms(0.95),
                    p99_ms: s.hist.quantile_ms(0.99),
                    max_ms: (s.hist.count > 0).then(|| round3(s.hist.max_ns as f64 / 1e6)),
                    mean_ms: (s.hist.count > 0)
                        .then(|| round3(s.hist.sum_ns as f64 / s.hist.count as f64 / 1e6)),
                    violations: s.violations,
                    consecutive_violations: s.run,
                    alerts_raised: s.alerts,
                }
            })
            .collect();
        let mut routes: Vec<RouteView> = stats
            .map(|t| {
                t.routes
                    .iter()
                    .map(|(r, s)| RouteView {
                        route: r.clone(),
                        count: s.hist.count,
                        p50_ms: s.hist.quantile_ms(0.50),
                        p95_ms: s.hist.quantile_ms(0.95),
                        p99_ms: s.hist.quantile_ms(0.99),
                        max_ms: round3(s.hist.max_ns as f64 / 1e6),
                        violations: s.violations,
                    })
                    .collect()
            })
            .unwrap_or_default();
        drop(shard);
        routes.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.route.cmp(&b.route)));
        Snapshot {
            enabled: true,
            since: Some(inner.started_at),
            alert_after: inner.config.alert_after,
            categories,
            routes,
        }
    }
}

impl Inner {
    fn shard(&self, tenant: Uuid) -> &Mutex<HashMap<Uuid, TenantStats>> {
        &self.shards[usize::from(tenant.as_bytes()[15]) % SHARDS]
    }

    /// One sample: histograms, violation counts, the run of violations and, at the configured
    /// length, an alert (logged now, written by the flusher).
    fn sample(&self, tenant: Uuid, category: Category, route: Option<&str>, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let budget = self.config.budgets[category.index()];
        let violated = took > budget;
        let raised = {
            let mut shard = lock(self.shard(tenant));
            let t = shard.entry(tenant).or_default();
            if let Some(r) = route {
                if let Some(rs) = t.routes.get_mut(r) {
                    rs.hist.add(ns);
                    rs.violations += u64::from(violated);
                } else {
                    let mut rs = RouteStats::default();
                    rs.hist.add(ns);
                    rs.violations += u64::from(violated);
                    t.routes.insert(r.to_owned(), rs);
                }
            }
            let c = &mut t.categories[category.index()];
            c.hist.add(ns);
            if violated {
                c.violations += 1;
                c.run += 1;
                if c.run >= self.config.alert_after.max(1) {
                    c.run = 0;
                    let now = Instant::now();
                    let cooling = c
                        .last_alert
                        .is_some_and(|at| now.duration_since(at) < self.config.alert_cooldown);
                    if cooling {
                        c.suppressed = c.suppressed.saturating_add(1);
                        None
                    } else {
                        c.alerts += 1;
                        c.last_alert = Some(now);
                        Some(std::mem::take(&mut c.suppressed))
                    }
                } else {
                    None
                }
            } else {
                c.run = 0;
                None
            }
        };
        if violated {
            self.handles.violation(category);
        }
        if let Some(suppressed) = raised {
            self.raise(tenant, category, route, budget, took, suppressed);
        }
    }

    #[cold]
    fn raise(
        &self,
        tenant: Uuid,
        category: Category,
        route: Option<&str>,
        budget: Duration,
        took: Duration,
        suppressed: u32,
    ) {
        let alert = Alert {
            id: Uuid::now_v7(),
            tenant,
            category,
            route: route.map(|r| r.chars().take(300).collect()),
            consecutive: self.config.alert_after.max(1),
            suppressed,
            budget_ms: budget.as_secs_f64() * 1000.0,
            observed_ms: took.as_secs_f64() * 1000.0,
            raised_at: Utc::now(),
        };
        tracing::warn!(
            tenant_id = %tenant,
            category = category.as_str(),
            route = alert.route.as_deref().unwrap_or(""),
            consecutive = alert.consecutive,
            suppressed = alert.suppressed,
            budget_ms = alert.budget_ms,
            observed_ms = alert.observed_ms,
            "performance budget violated repeatedly"
        );
        metrics::counter!(crate::metrics::MONITOR_ALERTS, "category" => category.as_str())
            .increment(1);
        let mut pending = lock(&self.pending);
        if pending.len() >= MAX_PENDING {
            pending.remove(0);
        }
        pending.push(alert);
    }

    /// Inserts the queued alerts in one statement; on failure they are queued again.
    async fn flush(&self, system: &PgPool) {
        let batch = std::mem::take(&mut *lock(&self.pending));
        if batch.is_empty() {
            return;
        }
        let r = sqlx::query(
            "INSERT INTO monitor_alerts (id, tenant_id, category, route, consecutive, budget_ms, \
             observed_ms, node, raised_at, suppressed) \
             SELECT a.id, a.tenant_id, a.category, a.route, a.consecutive, a.budget_ms, \
                    a.observed_ms, $8, a.raised_at, a.suppressed \
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int4[], \
                         $6::float8[], $7::float8[], $9::timestamptz[], $10::int4[]) \
                  AS a(id, tenant_id, category, route, consecutive, budget_ms, observed_ms, \
                       raised_at, suppressed) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(batch.iter().map(|a| a.id).collect::<Vec<_>>())
        .bind(batch.iter().map(|a| a.tenant).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|a| a.category.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(batch.iter().map(|a| a.route.clone()).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|a| i32::try_from(a.consecutive).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(batch.iter().map(|a| a.budget_ms).collect::<Vec<_>>())
        .bind(batch.iter().map(|a| a.observed_ms).collect::<Vec<_>>())
        .bind(&self.node)
        .bind(batch.iter().map(|a| a.raised_at).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|a| i32::try_from(a.suppressed).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .execute(system)
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, alerts = batch.len(),
                "performance monitor: could not record alerts; will retry");
            let mut pending = lock(&self.pending);
            let mut again = batch;
            again.append(&mut pending);
            let excess = again.len().saturating_sub(MAX_PENDING);
            again.drain(..excess);
            *pending = again;
        }
    }
}

// ------------------------------------------------------------------------------------------
// The request's context
// ------------------------------------------------------------------------------------------

/// What the monitor knows about the request being served.
struct RequestCtx {
    inner: Arc<Inner>,
    tenant: OnceLock<Uuid>,
    route: OnceLock<MatchedPath>,
}

impl eventdesk_store::timing::DbTimingSink for RequestCtx {
    fn record(&self, op: &'static str, took: Duration) {
        self.inner.handles.db(op, took.as_secs_f64());
        if let Some(t) = self.tenant.get() {
            self.inner.sample(*t, Category::Db, None, took);
        }
    }
}

tokio::task_local! {
    static CTX: Arc<RequestCtx>;
}

/// Tells the monitor whose request this is (the authorisation middleware, once it knows).
pub fn note_tenant(tenant: eventdesk_domain::TenantId) {
    let _ = CTX.try_with(|c| c.tenant.set(tenant.0));
}

/// Records a sample of the current request's tenant (no-op outside a monitored request or
/// before the tenant is known).
pub fn note(category: Category, took: Duration) {
    let _ = CTX.try_with(|c| {
        if let Some(t) = c.tenant.get() {
            c.inner.sample(*t, category, None, took);
        }
    });
}

/// Tells the monitor the route template the request matched ([`Track`] runs outside the
/// router, where it is not known). Called by the outermost per-route layer, the rate
/// limiter's, which every routed request passes (no-op outside a monitored request).
pub fn note_route(matched: &MatchedPath) {
    let _ = CTX.try_with(|c| c.route.set(matched.clone()));
}

impl Monitor {
    /// The layer that tracks every request ([`Track`]), or `None` when the monitor is off.
    ///
    /// It wraps the routed application as one service (`app::router` puts it in an outer
    /// router's fallback), not each route: a `Router::layer` middleware is applied to every
    /// route and clones the whole stack of layers below it, with their states, on each request.
    pub fn layer(&self) -> Option<TrackLayer> {
        self.inner.clone().map(|inner| TrackLayer { inner })
    }
}

/// Builds [`Track`] services ([`Monitor::layer`]).
#[derive(Clone)]
pub struct TrackLayer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TrackLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackLayer").finish_non_exhaustive()
    }
}

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, service: S) -> Track<S> {
        Track {
            inner: self.inner.clone(),
            service,
        }
    }
}

/// Times each request, counts it in the Prometheus metrics by route template, method and
/// status, and records it for its tenant; installs the request's context (tenant, route,
/// database timings) for the layers and handlers inside.
#[derive(Clone)]
pub struct Track<S> {
    inner: Arc<Inner>,
    service: S,
}

impl<S> std::fmt::Debug for Track<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Track").finish_non_exhaustive()
    }
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = request.method().clone();
        let ctx = Arc::new(RequestCtx {
            inner: self.inner.clone(),
            tenant: OnceLock::new(),
            route: OnceLock::new(),
        });
        let sink: Arc<dyn eventdesk_store::timing::DbTimingSink> = ctx.clone();
        // The inner service is ready (the caller polled `poll_ready`); its future runs inside
        // the request's context.
        let future = self.service.call(request);
        Box::pin(async move {
            let response = CTX
                .scope(ctx.clone(), eventdesk_store::timing::scope(sink, future))
                .await?;
            ctx.finish(&method, started.elapsed(), &response);
            Ok(response)
        })
    }
}

impl RequestCtx {
    /// The request's metrics and its tenant's `api` sample.
    fn finish(&self, method: &Method, took: Duration, response: &Response) {
        let route = self.route.get().map_or(UNMATCHED, MatchedPath::as_str);
        self.inner
            .handles
            .request(method, route, response.status(), took.as_secs_f64());
        if let (Some(t), Some(m)) = (self.tenant.get(), self.route.get()) {
            // `METHOD /template` without allocating once the tenant has seen the route.
            let mut key = [0u8; 320];
            let label = route_key(&mut key, method.as_str(), m.as_str());
            self.inner.sample(*t, Category::Api, Some(label), took);
        }
    }
}

/// Writes `METHOD route` into `buf` (truncated to fit, at a character boundary) and returns it.
fn route_key<'a>(buf: &'a mut [u8; 320], method: &str, route: &str) -> &'a str {
    let mut n = 0;
    for part in [method, " ", route] {
        let mut take = part.len().min(buf.len() - n);
        while !part.is_char_boundary(take) {
            take -= 1;
        }
        buf[n..n + take].copy_from_slice(&part.as_bytes()[..take]);
        n += take;
    }
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

// ------------------------------------------------------------------------------------------
// The view
// ------------------------------------------------------------------------------------------

/// One category of a tenant.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryView {
    /// `api`, `auth`, `db`, `security` or `integration`.
    pub category: &'static str,
    /// The budget.
    pub budget_ms: f64,
    /// Samples.
    pub count: u64,
    /// Median (upper bound of its bucket).
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Largest sample.
    pub max_ms: Option<f64>,
    /// Mean.
    pub mean_ms: Option<f64>,
    /// Samples over the budget.
    pub violations: u64,
    /// The current run of violations in a row.
    pub consecutive_violations: u32,
    /// Alerts raised by this node.
    pub alerts_raised: u64,
}

/// One route template of a tenant (whole-request latency).
#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    /// `METHOD /template`.
    pub route: String,
    /// Requests.
    pub count: u64,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Largest.
    pub max_ms: f64,
    /// Requests over the API budget.
    pub violations: u64,
}

/// The in-memory part of a tenant's view.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Whether the monitor runs on this node.
    pub enabled: bool,
    /// Since when this node aggregates.
    pub since: Option<DateTime<Utc>>,
    /// Violations in a row that raise an alert.
    pub alert_after: u32,
    /// Per category.
    pub categories: Vec<CategoryView>,
    /// Per route template, busiest first.
    pub routes: Vec<RouteView>,
}

/// A stored alert.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AlertView {
    /// Id.
    pub id: Uuid,
    /// Category.
    pub category: String,
    /// The request's route template, if any.
    pub route: Option<String>,
    /// Violations in a row.
    pub consecutive: i32,
    /// Runs completed within the cooldown since the previous alert (not raised on their own).
    pub suppressed: i32,
    /// The budget.
    pub budget_ms: f64,
    /// The latency that completed the run.
    pub observed_ms: f64,
    /// Node that raised it.
    pub node: String,
    /// When.
    pub raised_at: DateTime<Utc>,
}

/// Deletes stored alerts (of every tenant) raised more than `retention` ago, in statements of
/// [`RETENTION_BATCH`] rows so that no statement holds many locks or a long transaction.
/// Returns how many were deleted. Run by the flusher through the system pool; any node may run
/// it at the same time as another.
pub async fn prune_alerts(system: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let secs = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    let mut deleted = 0;
    loop {
        let n = sqlx::query(
            "DELETE FROM monitor_alerts WHERE id IN (SELECT id FROM monitor_alerts \
             WHERE raised_at < now() - make_interval(secs => $1) LIMIT $2)",
        )
        .bind(secs as f64)
        .bind(RETENTION_BATCH)
        .execute(system)
        .await?
        .rows_affected();
        deleted += n;
        if n < RETENTION_BATCH as u64 {
            return Ok(deleted);
        }
    }
}

/// The tenant's most recent alerts (newest first) and their total.
pub async fn recent_alerts(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    limit: i64,
) -> Result<(Vec<AlertView>, i64), sqlx::Error> {
    let rows: Vec<AlertView> = sqlx::query_as(
        "SELECT id, category, route, consecutive, suppressed, budget_ms, observed_ms, node, \
         raised_at \
         FROM monitor_alerts WHERE tenant_id = $1 ORDER BY raised_at DESC, id DESC LIMIT $2",
    )
    .bind(tenant)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM monitor_alerts WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await?;
    Ok((rows, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(alert_after: u32) -> MonitorConfig {
        MonitorConfig {
            alert_after,
            ..MonitorConfig::default()
        }
    }

    #[test]
    fn buckets_bound_the_value_within_a_fifth() {
        for ns in [
            1u64,
            10_000,
            10_001,
            999_999,
            1_000_000,
            30_000_000,
            5_000_000_000,
        ] {
            let i = bucket_of(ns);
            let upper = bucket_upper_ms(i) * 1e6;
            assert!(upper >= ns as f64 - 1e-6, "{ns} above its bucket {upper}");
            if ns > 10_000 {
                assert!(
                    upper <= ns as f64 * 1.19 + 1.0,
                    "{ns}: bucket {upper} too wide"
                );
            }
        }
    }

    #[test]
    fn quantiles_of_known_samples() {
        let mut h = Hist::default();
        for ms in 1..=100u64 {
            h.add(ms * 1_000_000);
        }
        let p50 = h.quantile_ms(0.5).unwrap_or(0.0);
        let p99 = h.quantile_ms(0.99).unwrap_or(0.0);
        assert!((50.0..=50.0 * 1.19).contains(&p50), "p50 {p50}");
        assert!((99.0..=100.0).contains(&p99), "p99 {p99}");
        assert_eq!(Hist::default().quantile_ms(0.5), None);
    }

    #[test]
    fn a_run_of_violations_raises_one_alert_and_a_good_sample_resets_it() {
        let m = Monitor::new(cfg(3));
        let t = Uuid::now_v7();
        let slow = Duration::from_millis(150);
        let fast = Duration::from_millis(5);
        for d in [slow, slow, fast, slow, slow] {
            m.record(t, Category::Api, d);
        }
        let s = m.snapshot(t);
        let api = &s.categories[0];
        assert_eq!((api.count, api.violations, api.alerts_raised), (5, 4, 0));
        assert_eq!(api.consecutive_violations, 2);
        m.record(t, Category::Api, slow);
        let s = m.snapshot(t);
        assert_eq!(s.categories[0].alerts_raised, 1);
        assert_eq!(s.categories[0].consecutive_violations, 0);
        let pending = m.inner.as_ref().map(|i| lock(&i.pending).len());
        assert_eq!(pending, Some(1));
        // Another tenant sees nothing of it.
        let other = m.snapshot(Uuid::now_v7());
        assert_eq!(other.categories[0].count, 0);
    }

    /// The pending alerts' `suppressed` counts.
    fn pending_suppressed(m: &Monitor) -> Vec<u32> {
        m.inner
            .as_ref()
            .map(|i| lock(&i.pending).iter().map(|a| a.suppressed).collect())
            .unwrap_or_default()
    }

    #[test]
    fn runs_within_the_cooldown_raise_no_alert_and_the_next_alert_counts_them() {
        let m = Monitor::new(MonitorConfig {
            alert_after: 2,
            alert_cooldown: Duration::from_millis(300),
            ..MonitorConfig::default()
        });
        let (t, other) = (Uuid::now_v7(), Uuid::now_v7());
        let slow = Duration::from_millis(150);
        // Five runs of two at once: the first raises, the four others fall in its cooldown.
        for _ in 0..10 {
            m.record(t, Category::Api, slow);
        }
        let api = &m.snapshot(t).categories[0];
        assert_eq!((api.violations, api.alerts_raised), (10, 1));
        assert_eq!(pending_suppressed(&m), [0]);
        // The cooldown is per tenant (and category): another tenant's run raises at once.
        m.record(other, Category::Api, slow);
        m.record(other, Category::Api, slow);
        // So is it per category: the same tenant's database run raises too.
        m.record(t, Category::Db, slow);
        m.record(t, Category::Db, slow);
        assert_eq!(pending_suppressed(&m), [0, 0, 0]);
        // After the cooldown, the next run raises and counts the four it held back.
        std::thread::sleep(Duration::from_millis(350));
        m.record(t, Category::Api, slow);
        m.record(t, Category::Api, slow);
        assert_eq!(pending_suppressed(&m), [0, 0, 0, 4]);
        assert_eq!(m.snapshot(t).categories[0].alerts_raised, 2);
        // No cooldown: every run raises.
        let every = Monitor::new(MonitorConfig {
            alert_after: 2,
            alert_cooldown: Duration::ZERO,
            ..MonitorConfig::default()
        });
        for _ in 0..6 {
            every.record(t, Category::Api, slow);
        }
        assert_eq!(pending_suppressed(&every), [0, 0, 0]);
    }

    #[test]
    fn budgets_parse_over_the_defaults() {
        let b = parse_budgets("api=250, db=0.5").unwrap_or(DEFAULT_BUDGETS);
        assert_eq!(b[0], Duration::from_millis(250));
        assert_eq!(b[1], Duration::from_millis(50));
        assert_eq!(b[2], Duration::from_micros(500));
        assert!(parse_budgets("cpu=1").is_err());
        assert!(parse_budgets("api").is_err());
        assert!(parse_budgets("api=-1").is_err());
    }

    #[test]
    fn route_keys_fit_the_buffer() {
        let mut buf = [0u8; 320];
        assert_eq!(
            route_key(&mut buf, "GET", "/api/v1/incidents/{id}"),
            "GET /api/v1/incidents/{id}"
        );
        let long = "é".repeat(400);
        let mut buf = [0u8; 320];
        let key = route_key(&mut buf, "GET", &long);
        // Cut at a character boundary: 4 bytes of `GET `, then 158 whole `é`.
        assert_eq!(key.len(), 320);
        assert!(key.starts_with("GET éé"));
    }
}
