//! Per-tenant rate limiting (ADR 0019).
//!
//! **Owns:** the quotas (defaults per auth type from the environment, per-tenant overrides from
//! `rate_limit_overrides`, cached briefly per node), the GCRA limiter with its two backends —
//! in memory (one node) and Redis (one atomic Lua script per request, shared by every node,
//! when `REDIS_URL` is set) with the fall-back to memory when Redis fails or is slow — the
//! client-IP key of unauthenticated requests (`X-Forwarded-For` only from trusted proxies), and
//! the middleware that answers 429 with `Retry-After` and sets the `RateLimit-*` headers.
//!
//! **Must not:** fail a request because Redis is down (it falls back and says so once per
//! transition), trust `X-Forwarded-For` from a peer that is not a configured proxy, let one
//! tenant's traffic spend another tenant's quota (keys carry the tenant), or log tenant names
//! (only ids).
//!
//! The algorithm is GCRA: a key holds its *theoretical arrival time* (TAT). With `limit`
//! requests per `period`, each request moves the TAT by `period / limit`; a request is refused
//! when the TAT would end up more than `period` ahead of now. It allows bursts of `limit` and a
//! sustained `limit / period`, needs one number per key, and gives exact `remaining`, `reset`
//! and `retry-after` values for the headers. The same arithmetic runs in Rust (memory) and in
//! Lua (Redis, with the Redis server's clock, so nodes need not agree on time).

use crate::app::AppState;
use crate::auth::{AuthKind, Principal, authenticate, credential};
use crate::config::ConfigError;
use crate::error::ApiError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eventdesk_domain::TenantId;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// `limit` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Quota {
    /// Requests.
    pub limit: u32,
    /// Window, in whole seconds.
    #[serde(rename = "period_secs", serialize_with = "secs")]
    pub period: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl Quota {
    /// A quota; `limit` ≥ 1 and `period` ≥ 1 s are the caller's to check.
    pub const fn new(limit: u32, period_secs: u64) -> Self {
        Self {
            limit,
            period: Duration::from_secs(period_secs),
        }
    }

    /// Parses `N/s`, `N/min`, `N/h`, `N/day` or `N/<seconds>` (e.g. `600/min`, `10/3600`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (n, per) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("expected <requests>/<period>, got {s:?}"))?;
        let limit: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("bad request count {n:?}"))?;
        let per = per.trim();
        let period = match per {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            other => other
                .trim_end_matches('s')
                .parse()
                .map_err(|_| format!("bad period {other:?}"))?,
        };
        if limit == 0 || period == 0 || period > 86_400 {
            return Err("the count must be ≥ 1 and the period 1 s ..= 1 day".into());
        }
        Ok(Self::new(limit, period))
    }

    fn period_us(self) -> i64 {
        i64::try_from(self.period.as_micros()).unwrap_or(i64::MAX / 4)
    }

    /// The TAT increment of one request, in µs.
    fn interval_us(self) -> i64 {
        (self.period_us() / i64::from(self.limit.max(1))).max(1)
    }
}

/// What the limiter allows, per node (defaults) — overrides come from the database.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// `EVENTDESK_RATE_LIMITS` (default true).
    pub enabled: bool,
    /// `EVENTDESK_RATE_LIMIT_JWT` (default `1200/min`) per tenant, for signed-in users.
    pub jwt: Quota,
    /// `EVENTDESK_RATE_LIMIT_LIVE_KEY` (default `3000/min`) per tenant, for `qg_live_` keys.
    pub live_key: Quota,
    /// `EVENTDESK_RATE_LIMIT_TEST_KEY` (default `300/min`) per tenant, for `qg_test_` keys.
    pub test_key: Quota,
    /// `EVENTDESK_RATE_LIMIT_IP` (default `120/min`) per client IP, for requests without a
    /// valid credential (login, refresh, failed authentication).
    pub ip: Quota,
    /// `EVENTDESK_RATE_LIMIT_REDIS_PREFIX` (default `eventdesk:rl`): the Redis key prefix.
    pub redis_prefix: String,
    /// `EVENTDESK_RATE_LIMIT_REDIS_TIMEOUT_MS` (default 50): past this, the request is
    /// limited in memory and Redis is probed again a second later.
    pub redis_timeout: Duration,
    /// `EVENTDESK_TRUSTED_PROXIES`: comma-separated CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            jwt: Quota::new(1200, 60),
            live_key: Quota::new(3000, 60),
            test_key: Quota::new(300, 60),
            ip: Quota::new(120, 60),
            redis_prefix: "eventdesk:rl".into(),
            redis_timeout: Duration::from_millis(50),
            trusted_proxies: Vec::new(),
        }
    }
}

impl RateLimitConfig {
    /// Reads the variables above through `get`.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let set = |var: &'static str| get(var).filter(|v| !v.trim().is_empty());
        let quota = |var: &'static str, default: Quota| -> Result<Quota, ConfigError> {
            match set(var) {
                None => Ok(default),
                Some(v) => Quota::parse(&v).map_err(|message| ConfigError { var, message }),
            }
        };
        let enabled = match set("EVENTDESK_RATE_LIMITS") {
            None => true,
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e: std::str::ParseBoolError| ConfigError {
                    var: "EVENTDESK_RATE_LIMITS",
                    message: e.to_string(),
                })?,
        };
        let timeout_ms: u64 = match set("EVENTDESK_RATE_LIMIT_REDIS_TIMEOUT_MS") {
            None => 50,
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e: std::num::ParseIntError| ConfigError {
                    var: "EVENTDESK_RATE_LIMIT_REDIS_TIMEOUT_MS",
                    message: e.to_string(),
                })?,
        };
        let trusted_proxies = match set("EVENTDESK_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<ipnet::IpNet>()
                        .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|e| ConfigError {
                            var: "EVENTDESK_TRUSTED_PROXIES",
                            message: format!("{s:?}: {e}"),
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            enabled,
            jwt: quota("EVENTDESK_RATE_LIMIT_JWT", d.jwt)?,
            live_key: quota("EVENTDESK_RATE_LIMIT_LIVE_KEY", d.live_key)?,
            test_key: quota("EVENTDESK_RATE_LIMIT_TEST_KEY", d.test_key)?,
            ip: quota("EVENTDESK_RATE_LIMIT_IP", d.ip)?,
            redis_prefix: set("EVENTDESK_RATE_LIMIT_REDIS_PREFIX")
                .unwrap_or(d.redis_prefix)
                .trim()
                .to_owned(),
            redis_timeout: Duration::from_millis(timeout_ms.max(1)),
            trusted_proxies,
        })
    }

    /// The node's default quota of an auth type.
    pub fn default_for(&self, kind: AuthKind) -> Quota {
        match kind {
            AuthKind::Jwt => self.jwt,
            AuthKind::LiveKey => self.live_key,
            AuthKind::TestKey => self.test_key,
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The quota's request count.
    pub limit: u32,
    /// Requests left in the current window after this one.
    pub remaining: u64,
    /// Until the quota is whole again.
    pub reset: Duration,
    /// Until a refused request may succeed (zero when allowed).
    pub retry_after: Duration,
}

/// The GCRA step: from the stored TAT (µs) and now (µs), the decision and the TAT to store.
fn gcra(stored: Option<i64>, now: i64, q: Quota) -> (Decision, Option<i64>) {
    let period = q.period_us();
    let interval = q.interval_us();
    let tat = stored.unwrap_or(now).max(now);
    let new_tat = tat + interval;
    let allow_at = new_tat - period;
    if now < allow_at {
        return (decision(false, q, 0, tat - now, allow_at - now), None);
    }
    let remaining = (period - (new_tat - now)) / interval;
    (
        decision(true, q, remaining, new_tat - now, 0),
        Some(new_tat),
    )
}

fn decision(allowed: bool, q: Quota, remaining: i64, reset_us: i64, retry_us: i64) -> Decision {
    let us = |v: i64| Duration::from_micros(u64::try_from(v.max(0)).unwrap_or(0));
    Decision {
        allowed,
        limit: q.limit,
        remaining: u64::try_from(remaining.max(0)).unwrap_or(0),
        reset: us(reset_us),
        retry_after: us(retry_us),
    }
}

/// Microseconds on this process's monotonic clock.
fn mono_us() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    i64::try_from(start.elapsed().as_micros()).unwrap_or(i64::MAX / 4)
}

/// Shards of the in-memory store (fewer lock collisions between tenants).
const SHARDS: usize = 16;
/// Keys per shard before expired ones are swept.
const SHARD_SWEEP: usize = 4096;

/// The in-memory GCRA store: key → TAT (µs, monotonic).
#[derive(Debug)]
struct Memory {
    shards: Vec<Mutex<HashMap<String, i64>>>,
}

impl Memory {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn check(&self, key: &str, q: Quota) -> Decision {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let shard = &self.shards[(h.finish() as usize) % SHARDS];
        let now = mono_us();
        let mut map = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (d, tat) = gcra(map.get(key).copied(), now, q);
        if let Some(tat) = tat {
            if map.len() >= SHARD_SWEEP && !map.contains_key(key) {
                map.retain(|_, t| *t > now);
            }
            map.insert(key.to_owned(), tat);
        }
        d
    }
}

/// The Redis side of GCRA. `KEYS[1]` the key, `ARGV[1]` the period and `ARGV[2]` the interval
/// (µs). Time is the Redis server's. Returns `{allowed, remaining, reset_us, retry_us}`.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((period - (new_tat - now)) / interval), new_tat - now, 0}
";

/// How long after a Redis failure the next request tries Redis again.
const REDIS_PROBE_EVERY_US: i64 = 1_000_000;

/// The shared backend: a lazily made multiplexed connection (the connection manager
/// reconnects by itself), and the health flag that decides when to fall back.
struct Redis {
    client: redis::Client,
    /// The connection, once made (made in its own task, so a request's short timeout never
    /// cancels a connection attempt).
    conn: Arc<tokio::sync::watch::Sender<Option<redis::aio::ConnectionManager>>>,
    /// A connection attempt is running.
    connecting: Arc<AtomicBool>,
    script: redis::Script,
    timeout: Duration,
    degraded: AtomicBool,
    next_probe: AtomicI64,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .finish()
    }
}

impl Redis {
    async fn connection(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        let mut rx = self.conn.subscribe();
        if let Some(c) = rx.borrow_and_update().clone() {
            return Ok(c);
        }
        if !self.connecting.swap(true, Ordering::AcqRel) {
            let (client, slot, flag) = (
                self.client.clone(),
                self.conn.clone(),
                self.connecting.clone(),
            );
            tokio::spawn(async move {
                let cfg = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(1);
                match redis::aio::ConnectionManager::new_with_config(client, cfg).await {
                    Ok(c) => {
                        slot.send_replace(Some(c));
                        flag.store(false, Ordering::Release);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "rate limiting: Redis connect failed");
                        // Wakes the waiters with "still none" after clearing the flag: they
                        // fail now, not at their timeout.
                        flag.store(false, Ordering::Release);
                        slot.send_replace(None);
                    }
                }
            });
        }
        // Wait for the attempt (the caller's timeout bounds this wait, not the attempt).
        loop {
            if rx.changed().await.is_err() {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "the Redis connection slot was dropped",
                )));
            }
            if let Some(c) = rx.borrow_and_update().clone() {
                return Ok(c);
            }
            if !self.connecting.load(Ordering::Acquire) {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "cannot connect to Redis",
                )));
            }
        }
    }

    async fn call(&self, key: &str, q: Quota) -> redis::RedisResult<Decision> {
        let mut conn = self.connection().await?;
        let r: Vec<i64> = self
            .script
            .key(key)
            .arg(q.period_us())
            .arg(q.interval_us())
            .invoke_async(&mut conn)
            .await?;
        match r.as_slice() {
            [allowed, remaining, reset, retry] => {
                Ok(decision(*allowed == 1, q, *remaining, *reset, *retry))
            }
            _ => Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "rate-limit script returned an unexpected shape",
            ))),
        }
    }

    /// The decision from Redis, or `None` when Redis is failing (then the caller uses memory).
    async fn check(&self, key: &str, q: Quota) -> Option<Decision> {
        let now = mono_us();
        if self.degraded.load(Ordering::Relaxed) && now < self.next_probe.load(Ordering::Relaxed) {
            return None;
        }
        let error = match tokio::time::timeout(self.timeout, self.call(key, q)).await {
            Ok(Ok(d)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::warn!("rate limiting: Redis is back; limits are shared again");
                }
                return Some(d);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        self.next_probe
            .store(now + REDIS_PROBE_EVERY_US, Ordering::Relaxed);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error,
                "rate limiting: Redis failed; falling back to in-memory limits on this node"
            );
        }
        None
    }
}

/// How long a node uses a tenant's overrides before reading them again.
const OVERRIDES_TTL: Duration = Duration::from_secs(5);
/// Cached tenants beyond which the cache is cleared.
const OVERRIDES_MAX: usize = 10_000;

/// A tenant's overrides, by auth type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// For JWT callers.
    pub jwt: Option<Quota>,
    /// For live keys.
    pub live_key: Option<Quota>,
    /// For test keys.
    pub test_key: Option<Quota>,
}

impl Overrides {
    /// The override of `kind`.
    pub fn get(&self, kind: AuthKind) -> Option<Quota> {
        match kind {
            AuthKind::Jwt => self.jwt,
            AuthKind::LiveKey => self.live_key,
            AuthKind::TestKey => self.test_key,
        }
    }

    fn slot(&mut self, kind: AuthKind) -> &mut Option<Quota> {
        match kind {
            AuthKind::Jwt => &mut self.jwt,
            AuthKind::LiveKey => &mut self.live_key,
            AuthKind::TestKey => &mut self.test_key,
        }
    }
}

/// The auth type of a stored `auth_kind`.
pub fn kind_from_str(s: &str) -> Option<AuthKind> {
    match s {
        "jwt" => Some(AuthKind::Jwt),
        "live_key" => Some(AuthKind::LiveKey),
        "test_key" => Some(AuthKind::TestKey),
        _ => None,
    }
}

/// Reads a tenant's overrides (system pool, explicit tenant predicate).
pub async fn load_overrides(
    pool: &sqlx::PgPool,
    tenant: TenantId,
) -> Result<Overrides, sqlx::Error> {
    let rows: Vec<(String, i32, i32)> = sqlx::query_as(
        "SELECT auth_kind, limit_count, period_secs FROM rate_limit_overrides \
         WHERE tenant_id = $1",
    )
    .bind(tenant.0)
    .fetch_all(pool)
    .await?;
    let mut o = Overrides::default();
    for (kind, limit, period) in rows {
        if let (Some(kind), Ok(limit), Ok(period)) = (
            kind_from_str(&kind),
            u32::try_from(limit),
            u64::try_from(period),
        ) {
            *o.slot(kind) = Some(Quota::new(limit, period));
        }
    }
    Ok(o)
}

/// The limiter of one node (cheap to clone).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RateLimitConfig,
    memory: Memory,
    redis: Option<Redis>,
    overrides: Mutex<HashMap<TenantId, (Instant, Overrides)>>,
}

impl RateLimiter {
    /// A limiter; with `redis_url`, shared through Redis.
    pub fn new(config: RateLimitConfig, redis_url: Option<&str>) -> Result<Self, ConfigError> {
        let redis = match redis_url {
            None => None,
            Some(url) => Some(Redis {
                client: redis::Client::open(url).map_err(|e| ConfigError {
                    var: "REDIS_URL",
                    message: e.to_string(),
                })?,
                conn: Arc::new(tokio::sync::watch::channel(None).0),
                connecting: Arc::new(AtomicBool::new(false)),
                script: redis::Script::new(GCRA_LUA),
                timeout: config.redis_timeout,
                degraded: AtomicBool::new(false),
                next_probe: AtomicI64::new(0),
            }),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                memory: Memory::new(),
                redis,
                overrides: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RateLimitConfig {
        &self.inner.config
    }

    /// Whether Redis is configured and currently failing (the node limits in memory).
    pub fn redis_degraded(&self) -> bool {
        self.inner
            .redis
            .as_ref()
            .is_some_and(|r| r.degraded.load(Ordering::Relaxed))
    }

    /// Checks and spends one request of `key` under `quota`.
    pub async fn check(&self, key: &str, quota: Quota) -> Decision {
        let full = format!("{}:{key}", self.inner.config.redis_prefix);
        if let Some(r) = &self.inner.redis
            && let Some(d) = r.check(&full, quota).await
        {
            return d;
        }
        self.inner.memory.check(&full, quota)
    }

    /// The quota of `(tenant, kind)`: its override, else the node's default.
    pub async fn quota(&self, pool: &sqlx::PgPool, tenant: TenantId, kind: AuthKind) -> Quota {
        let default = self.inner.config.default_for(kind);
        let cached = {
            let map = self.lock();
            map.get(&tenant)
                .filter(|(at, _)| at.elapsed() < OVERRIDES_TTL)
                .map(|(_, o)| *o)
        };
        let o = match cached {
            Some(o) => o,
            None => {
                // On a database error the defaults are cached for the TTL too: one warning
                // and one query per tenant and TTL, not per request.
                let o = load_overrides(pool, tenant).await.unwrap_or_else(|e| {
                    tracing::warn!(tenant_id = %tenant, error = %e,
                        "rate limiting: cannot read overrides; using defaults");
                    Overrides::default()
                });
                let mut map = self.lock();
                if map.len() >= OVERRIDES_MAX {
                    map.clear();
                }
                map.insert(tenant, (Instant::now(), o));
                o
            }
        };
        o.get(kind).unwrap_or(default)
    }

    /// Drops a tenant's cached overrides (after a write through this node).
    pub fn invalidate(&self, tenant: TenantId) {
        self.lock().remove(&tenant);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (Instant, Overrides)>> {
        self.inner
            .overrides
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The client's address: the peer, or — only when the peer is a trusted proxy — the nearest
/// untrusted hop of `X-Forwarded-For`, read from the right (the entries proxies appended).
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut ip = peer;
    for hop in hops.iter().rev() {
        let Ok(h) = hop.parse::<IpAddr>() else { break };
        ip = h;
        if !is_trusted(&h) {
            break;
        }
    }
    Some(ip)
}

/// Paths that are never limited (probes).
const EXEMPT: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// The middleware: authenticates once (the handler's extractor reuses the [`Principal`]),
/// picks the key and quota, and answers 429 past the limit.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // The performance monitor (ADR 0020) learns the route template here: this is the outermost
    // layer of every route, so 429s and 401s have their route too.
    if state.monitor.enabled()
        && let Some(m) = request.extensions().get::<axum::extract::MatchedPath>()
    {
        crate::monitor::note_route(m);
    }
    let limiter = &state.limiter;
    if !limiter.config().enabled || EXEMPT.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let auth_started = std::time::Instant::now();
    let principal = match credential(&parts) {
        Some(c) => authenticate(&state, &c).await.ok(),
        None => None,
    };
    if let Some(p) = &principal {
        // The performance monitor (ADR 0020): authentication happens here, not in `authorize`.
        crate::monitor::note_tenant(p.tenant);
        crate::monitor::note(crate::monitor::Category::Auth, auth_started.elapsed());
    }
    let (key, quota, tenant) = match &principal {
        Some(p) => (
            format!("t:{}:{}", p.tenant, p.kind.as_str()),
            limiter.quota(&state.system, p.tenant, p.kind).await,
            Some(p.tenant),
        ),
        None => {
            let peer = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            let ip = client_ip(peer, &parts.headers, &limiter.config().trusted_proxies);
            let ip = ip.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
            (format!("ip:{ip}"), limiter.config().ip, None)
        }
    };
    if let Some(p) = principal {
        parts.extensions.insert::<Principal>(p);
    }
    let d = limiter.check(&key, quota).await;
    let mut resp = if d.allowed {
        next.run(Request::from_parts(parts, body)).await
    } else {
        if let Some(t) = tenant {
            tracing::debug!(tenant_id = %t, quota = quota.limit, "rate limited");
        }
        ApiError::TooManyRequests {
            retry_after: ceil_secs(d.retry_after).max(1),
        }
        .into_response()
    };
    set_headers(resp.headers_mut(), &d, quota);
    resp
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_micros()
        .div_ceil(1_000_000)
        .try_into()
        .unwrap_or(u64::MAX)
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds) and
/// `RateLimit-Policy` (`<limit>;w=<window secs>`).
fn set_headers(h: &mut HeaderMap, d: &Decision, q: Quota) {
    let mut put = |name: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(name, v);
        }
    };
    put("ratelimit-limit", d.limit.to_string());
    put("ratelimit-remaining", d.remaining.to_string());
    put("ratelimit-reset", ceil_secs(d.reset).to_string());
    put(
        "ratelimit-policy",
        format!("{};w={}", q.limit, q.period.as_secs()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse() {
        assert_eq!(Quota::parse("600/min"), Ok(Quota::new(600, 60)));
        assert_eq!(Quota::parse("10/3600"), Ok(Quota::new(10, 3600)));
        assert_eq!(Quota::parse("5/30s"), Ok(Quota::new(5, 30)));
        assert_eq!(Quota::parse(" 7 / h "), Ok(Quota::new(7, 3600)));
        for bad in ["", "10", "0/min", "10/0", "x/min", "10/week", "10/999999"] {
            assert!(Quota::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gcra_allows_a_burst_of_limit_then_refuses_until_one_interval_passes() {
        let q = Quota::new(10, 60);
        let mut tat = None;
        let now = 1_000_000_000;
        for i in 0..10u64 {
            let (d, t) = gcra(tat, now, q);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 9 - i);
            tat = t;
        }
        let (d, t) = gcra(tat, now, q);
        assert!(!d.allowed);
        assert_eq!(t, None, "a refusal spends nothing");
        assert_eq!(d.retry_after, Duration::from_secs(6));
        assert_eq!(d.reset, Duration::from_secs(60));
        let (d, _) = gcra(tat, now + 6_000_000, q);
        assert!(d.allowed, "one interval later one request fits");
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 10.0.0.7"),
        );
        let peer: IpAddr = "10.0.0.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert_eq!(
            client_ip(Some(peer), &h, &[]),
            Some(peer),
            "no proxies: peer"
        );
        let net: ipnet::IpNet = "10.0.0.0/8".parse().unwrap_or_default();
        assert_eq!(
            client_ip(Some(peer), &h, &[net]),
            Some(IpAddr::from([1, 2, 3, 4])),
            "the nearest untrusted hop"
        );
        let outside: IpAddr = IpAddr::from([192, 0, 2, 1]);
        assert_eq!(client_ip(Some(outside), &h, &[net]), Some(outside));
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("junk, 10.0.0.7"),
        );
        assert_eq!(
            client_ip(Some(peer), &h, &[net]),
            Some(IpAddr::from([10, 0, 0, 7])),
            "an unparsable hop stops the walk"
        );
    }

    #[test]
    fn memory_backend_limits_per_key() {
        let m = Memory::new();
        let q = Quota::new(3, 3600);
        let a: Vec<bool> = (0..5).map(|_| m.check("a", q).allowed).collect();
        assert_eq!(a, [true, true, true, false, false]);
        assert!(m.check("b", q).allowed, "keys are independent");
    }
}
