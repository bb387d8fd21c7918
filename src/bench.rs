//! `eventdesk bench …`: throughput figures printed side by side with a raw PostgreSQL
//! baseline measured in the same run against the same server, because machines are noisy.
//! Each run uses a scratch database that is dropped afterwards (events are immutable, so a
//! benchmark must never write into a real database).
//!
//! - `append`, `replay`: the event store against raw INSERTs, scans and COPY.
//! - `api`: `POST /api/v1/incidents` against `eventdesk serve` run as a child process (closed
//!   loop vs raw single-row INSERTs, open loop at a fixed rate, the server's memory).
//! - `queries`: the incident list queries of the API over a large tenant vs a raw indexed
//!   SELECT, with the plans of the slow ones.
//! - `sla`: the SLA scheduler's breach lateness with many open incidents, and its idle cost.
//! - `analytics` (`bench_analytics.rs`): the analytics endpoints' queries over a large tenant.
//! - `rebuild`: `projections rebuild incidents` vs the live catch-up and a raw copy.
//! - `cmdb` (`bench_cmdb.rs`): CMDB impact analysis over a large graph vs one indexed edge
//!   lookup.

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use eventdesk_api::{Config, Secret};
use eventdesk_commands::execute::encode;
use eventdesk_commands::tenant::{NewTenant, create_tenant_with_admin};
use eventdesk_commands::user::register_user;
use eventdesk_commands::{Options, SystemClock, execute};
use eventdesk_domain::directory::{
    CategoryAggregate, CategoryCommand, TeamAggregate, TeamCommand, UserCommand,
};
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand};
use eventdesk_domain::values::{
    CategoryName, Description, Email, Impact, IncidentNumber, IncidentStatus, PasswordHash,
    PersonName, Priority, Role, TeamName, TenantName, Title, Urgency, Username,
};
use eventdesk_domain::{
    Actor, Aggregate, CategoryId, IncidentId, PriorityMatrix, StreamId, TeamId, TenantId, UserId,
};
use eventdesk_projections::queries::incidents::{IncidentFilter, IncidentSort, list_incidents};
use eventdesk_projections::queries::{Paging, scope_to_tenant};
use eventdesk_projections::{
    DirectoryProjection, IncidentProjection, Projection, ProjectorRuntime, RuntimeConfig,
};
use eventdesk_store::{
    Checkpoint, Db, DbConfig, EventMetadata, EventStore, ExpectedVersion, NewEvent, PgEventStore,
    StreamRef, Upcasters, db,
};
use futures::TryStreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Append throughput of the event store vs raw multi-row INSERTs into a plain table.
    Append(AppendArgs),
    /// `read_all` from zero vs a raw scan and COPY; then a projection rebuild from zero.
    Replay(ReplayArgs),
    /// `POST /api/v1/incidents` against `eventdesk serve` (a child process) vs raw single-row
    /// INSERTs; open-loop latency at a fixed rate; the server's memory.
    Api(ApiArgs),
    /// The API's incident list queries over a large tenant vs a raw indexed SELECT.
    Queries(QueriesArgs),
    /// The SLA scheduler over many open incidents: breach lateness and idle cost.
    Sla(crate::bench_sla::SlaArgs),
    /// `audit verify` and `audit export` over a large tenant log vs a raw scan of its rows.
    Audit(crate::bench_audit::AuditArgs),
    /// The analytics endpoints' queries over a large tenant vs a raw indexed SELECT.
    Analytics(crate::bench_analytics::AnalyticsArgs),
    /// `projections rebuild incidents` over a large log vs the live catch-up and a raw copy.
    Rebuild(crate::bench_rebuild::RebuildArgs),
    /// CMDB impact analysis over a large graph vs one indexed edge lookup.
    Cmdb(crate::bench_cmdb::CmdbArgs),
    /// The performance monitor's overhead: authenticated GETs and creates against
    /// `eventdesk serve` with `EVENTDESK_MONITOR=on` and `off` alternately, side by side.
    Monitor(crate::bench_monitor::MonitorArgs),
    /// The rate limiter's cost: a cheap authenticated GET with the limiter off, in memory and
    /// through Redis, side by side; then the check alone.
    Ratelimit(crate::bench_ratelimit::RateLimitArgs),
}

/// `bench append`.
#[derive(Args, Debug)]
pub struct AppendArgs {
    /// Concurrent clients (comma-separated list).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    clients: Vec<usize>,
    /// Events per append (comma-separated list).
    #[arg(
        long = "events-per-append",
        value_delimiter = ',',
        default_value = "1,10"
    )]
    events_per_append: Vec<usize>,
    /// Seconds per measurement round.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Alternating raw/store rounds per cell; the median of each is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Keep the scratch database.
    #[arg(long)]
    keep: bool,
}

/// `bench replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Events to write and then read back.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Batch size of `read_all`.
    #[arg(long, default_value_t = 5000)]
    batch: i64,
    /// Keep the scratch database.
    #[arg(long)]
    keep: bool,
}

/// `bench api`.
#[derive(Args, Debug)]
pub struct ApiArgs {
    /// Concurrent clients of the closed-loop runs (comma-separated list).
    #[arg(long, value_delimiter = ',', default_value = "8,32")]
    clients: Vec<usize>,
    /// Seconds per closed-loop cell, and of the open-loop run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Creates per second of the open-loop run.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Most requests in flight in the open-loop run.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Keep the scratch database (and the server's data directory with its log).
    #[arg(long)]
    keep: bool,
}

/// `bench queries`.
#[derive(Args, Debug)]
pub struct QueriesArgs {
    /// Incidents of the tenant.
    #[arg(long, default_value_t = 1_000_000)]
    incidents: u64,
    /// Timed runs of each query.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Concurrent appenders while populating.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Print the plans of the query kinds whose p95 is at or above this (milliseconds).
    #[arg(long, default_value_t = 20.0)]
    explain_over_ms: f64,
    /// Keep the scratch database.
    #[arg(long)]
    keep: bool,
}

/// Runs a benchmark.
pub async fn run(cmd: BenchCommand, config: &Config) -> anyhow::Result<()> {
    // `bench analytics --reuse NAME` measures again on a database an earlier run kept.
    let reuse = match &cmd {
        BenchCommand::Analytics(a) => a.reuse.clone(),
        _ => None,
    };
    if let Some(r) = &reuse {
        anyhow::ensure!(
            r.starts_with("eventdesk_bench_")
                && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "--reuse takes the name of a kept scratch database (eventdesk_bench_…)"
        );
    }
    let name = reuse
        .clone()
        .unwrap_or_else(|| format!("eventdesk_bench_{}", Uuid::now_v7().simple()));
    let url = db::with_database(config.database_url.expose(), &name)
        .context("DATABASE_URL has no database name")?;
    db::ensure_database(&url).await?;
    let keep = match &cmd {
        BenchCommand::Append(a) => a.keep,
        BenchCommand::Replay(r) => r.keep,
        BenchCommand::Api(a) => a.keep,
        BenchCommand::Queries(q) => q.keep,
        BenchCommand::Sla(s) => s.keep,
        BenchCommand::Audit(a) => a.keep,
        BenchCommand::Analytics(a) => a.keep || a.reuse.is_some(),
        BenchCommand::Rebuild(r) => r.keep,
        BenchCommand::Cmdb(c) => c.keep,
        BenchCommand::Monitor(m) => m.keep,
        BenchCommand::Ratelimit(r) => r.keep,
    };
    let result = async {
        let mut dbc = DbConfig::new(url.clone());
        dbc.app_role = None;
        dbc.max_connections = 40;
        Db::migrate(&dbc).await?;
        let db = Db::connect(dbc).await?;
        println!("scratch database: {name}");
        // The deployment's configuration (roles, pool sizes) pointed at the scratch database.
        let mut scratch = config.clone();
        scratch.database_url = Secret::new(url.clone());
        match cmd {
            BenchCommand::Append(a) => bench_append(&db.pool, a).await,
            BenchCommand::Replay(r) => bench_replay(&db.pool, r).await,
            BenchCommand::Api(a) => bench_api(&db.pool, &scratch, a).await,
            BenchCommand::Queries(q) => bench_queries(&db.pool, &scratch, q).await,
            BenchCommand::Sla(s) => crate::bench_sla::bench_sla(&db.pool, &scratch, s).await,
            BenchCommand::Audit(a) => crate::bench_audit::bench_audit(&db.pool, &scratch, a).await,
            BenchCommand::Analytics(a) => {
                crate::bench_analytics::bench_analytics(&db.pool, &scratch, a).await
            }
            BenchCommand::Rebuild(r) => {
                crate::bench_rebuild::bench_rebuild(&db.pool, &scratch, r).await
            }
            BenchCommand::Cmdb(c) => crate::bench_cmdb::bench_cmdb(&db.pool, &scratch, c).await,
            BenchCommand::Monitor(m) => crate::bench_monitor::bench_monitor(&scratch, m).await,
            BenchCommand::Ratelimit(r) => {
                crate::bench_ratelimit::bench_ratelimit(&db.pool, &scratch, r).await
            }
        }
    }
    .await;
    if !keep {
        db::drop_database(&url).await?;
    }
    result
}

/// A realistic ~600-byte event payload.
fn payload(i: usize) -> serde_json::Value {
    json!({
        "title": format!("Mail server not delivering to external domains #{i}"),
        "description": "Users in the finance department report that outbound mail to \
            external recipients has been queued since 09:12. Internal delivery works. The \
            relay logs show repeated TLS handshake failures towards the smart host. \
            メールサーバーの外部配送が停止しています。",
        "impact": "high",
        "urgency": "high",
        "priority": "high",
        "category_id": "0190c6a0-0000-7000-8000-000000000001",
        "team_id": "0190c6a0-0000-7000-8000-000000000002",
        "reporter_id": "0190c6a0-0000-7000-8000-000000000003",
        "number": format!("INC{i:06}"),
    })
}

pub(crate) fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "system:bench".into(),
        request_id: Some("bench".into()),
        correlation_id: Some(Uuid::now_v7()),
        causation_id: None,
        test_mode: false,
    }
}

#[derive(Default)]
pub(crate) struct Sample {
    pub(crate) events: u64,
    latencies_us: Vec<u32>,
    /// Failed operations by kind (e.g. `HTTP 500 internal`).
    errors: BTreeMap<String, u64>,
}

impl Sample {
    pub(crate) fn merge(&mut self, o: Sample) {
        self.events += o.events;
        self.latencies_us.extend(o.latencies_us);
        for (kind, n) in o.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }
    /// Records one operation that took `took`: a success counts as an event, a failure by kind.
    pub(crate) fn record(&mut self, took: Duration, outcome: Result<(), String>) {
        self.latencies_us
            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        match outcome {
            Ok(()) => self.events += 1,
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
    /// `HTTP 500 internal ×3; …` (or `none`).
    pub(crate) fn error_summary(&self) -> String {
        if self.errors.is_empty() {
            return "none".into();
        }
        self.errors
            .iter()
            .map(|(kind, n)| format!("{kind} ×{n}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    pub(crate) fn pct(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

pub(crate) async fn run_clients<F, Fut>(
    clients: usize,
    secs: u64,
    f: F,
) -> anyhow::Result<(f64, Sample)>
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Sample>> + Send + 'static,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients).map(|c| tokio::spawn(f(c, deadline))).collect();
    let mut total = Sample::default();
    for t in tasks {
        total.merge(t.await??);
    }
    let rate = total.events as f64 / started.elapsed().as_secs_f64();
    Ok((rate, total))
}

/// The round with the median rate.
pub(crate) fn median(mut rounds: Vec<(f64, Sample)>) -> (f64, Sample) {
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mid = rounds.len() / 2;
    rounds.swap_remove(mid)
}

async fn bench_append(pool: &PgPool, a: AppendArgs) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE bench_raw (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
         tenant_id uuid, stream_type text, stream_id uuid, version bigint, event_id uuid, \
         event_type text, schema_version int, data jsonb, metadata jsonb, \
         recorded_at timestamptz, hash bytea)",
    )
    .execute(pool)
    .await?;
    let store = PgEventStore::new(pool.clone(), Upcasters::new());
    let meta = serde_json::to_value(metadata())?;
    println!(
        "\nbench append: {} rounds × {}s per cell, ~{} B payload, fsync {}",
        a.rounds,
        a.seconds,
        payload(0).to_string().len(),
        sqlx::query_scalar::<_, String>("SHOW fsync")
            .fetch_one(pool)
            .await?
    );
    println!(
        "{:>7} {:>6} | {:>12} {:>9} | {:>12} {:>9} {:>9} | {:>6}",
        "clients", "batch", "raw ev/s", "raw p99", "store ev/s", "p50 ms", "p99 ms", "ratio"
    );
    for &batch in &a.events_per_append {
        for &clients in &a.clients {
            let mut raw_rounds = Vec::new();
            let mut store_rounds = Vec::new();
            for _ in 0..a.rounds.max(1) {
                // Raw: the same rows, multi-row INSERT into a plain table, autocommit.
                let (raw, raw_s) = run_clients(clients, a.seconds, |c, deadline| {
                    let pool = pool.clone();
                    let meta = meta.clone();
                    async move {
                        let mut s = Sample::default();
                        let stream = Uuid::now_v7();
                        let tenant = Uuid::now_v7();
                        let mut v = 0i64;
                        while Instant::now() < deadline {
                            let n = batch;
                            let datas: Vec<_> = (0..n).map(|i| payload(c * 1000 + i)).collect();
                            let t0 = Instant::now();
                            sqlx::query(
                            "INSERT INTO bench_raw (tenant_id, stream_type, stream_id, version, \
                             event_id, event_type, schema_version, data, metadata, recorded_at, \
                             hash) SELECT $1, 'incident', $2, v, e, 'IncidentCreated', 1, d, $5, \
                             now(), $6 FROM unnest($3::int8[], $4::uuid[], $7::jsonb[]) AS \
                             t(v, e, d)",
                        )
                        .bind(tenant)
                        .bind(stream)
                        .bind((0..n as i64).map(|i| v + i + 1).collect::<Vec<_>>())
                        .bind((0..n).map(|_| Uuid::now_v7()).collect::<Vec<_>>())
                        .bind(&meta)
                        .bind(vec![7u8; 32])
                        .bind(&datas)
                        .execute(&pool)
                        .await?;
                            s.latencies_us.push(t0.elapsed().as_micros() as u32);
                            v += n as i64;
                            s.events += n as u64;
                        }
                        Ok(s)
                    }
                })
                .await?;
                raw_rounds.push((raw, raw_s));
                // The store: append with an exact expected version (what a command does).
                let (ours, s) = run_clients(clients, a.seconds, |c, deadline| {
                    let store = store.clone();
                    async move {
                        let mut s = Sample::default();
                        let tenant = TenantId::new();
                        let stream = StreamRef::new("incident", StreamId::new());
                        let meta = metadata();
                        let mut v = 0i64;
                        while Instant::now() < deadline {
                            let events: Vec<_> = (0..batch)
                                .map(|i| NewEvent::new("IncidentCreated", 1, payload(c * 1000 + i)))
                                .collect();
                            let expected = if v == 0 {
                                ExpectedVersion::NoStream
                            } else {
                                ExpectedVersion::Exact(v)
                            };
                            let t0 = Instant::now();
                            let out = store
                                .append(tenant, &stream, expected, events, &meta, None)
                                .await?;
                            s.latencies_us.push(t0.elapsed().as_micros() as u32);
                            v = out.next_version;
                            s.events += batch as u64;
                        }
                        Ok(s)
                    }
                })
                .await?;
                store_rounds.push((ours, s));
            }
            let (raw, mut raw_s) = median(raw_rounds);
            let (ours, mut s) = median(store_rounds);
            println!(
                "{:>7} {:>6} | {:>12.0} {:>9.2} | {:>12.0} {:>9.2} {:>9.2} | {:>6.2}",
                clients,
                batch,
                raw,
                raw_s.pct(0.99),
                ours,
                s.pct(0.50),
                s.pct(0.99),
                ours / raw
            );
        }
    }
    println!(
        "\nratio = store events/s ÷ raw events/s, medians of {} alternating rounds \
         (target ≥ 0.85 at 8 clients)",
        a.rounds
    );
    Ok(())
}

async fn bench_replay(pool: &PgPool, r: ReplayArgs) -> anyhow::Result<()> {
    let store = PgEventStore::new(pool.clone(), Upcasters::new());
    let n = r.events;
    println!("\nbench replay: writing {n} events (8 clients × 100-event appends)…");
    let per_client = n.div_ceil(8);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                let meta = metadata();
                let tenants: Vec<_> = (0..4).map(|_| TenantId::new()).collect();
                let mut written = 0usize;
                let mut k = 0usize;
                while written < per_client {
                    let m = 100.min(per_client - written);
                    let events: Vec<_> = (0..m)
                        .map(|i| NewEvent::new("IncidentCreated", 1, payload(c * 1000 + i)))
                        .collect();
                    let stream = StreamRef::new("incident", StreamId::new());
                    store
                        .append(
                            tenants[k % tenants.len()],
                            &stream,
                            ExpectedVersion::NoStream,
                            events,
                            &meta,
                            None,
                        )
                        .await?;
                    written += m;
                    k += 1;
                }
                anyhow::Ok(written)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let write_s = t0.elapsed().as_secs_f64();
    println!(
        "  wrote {total} events in {write_s:.1}s ({:.0} events/s)",
        total as f64 / write_s
    );
    sqlx::query("VACUUM ANALYZE events").execute(pool).await?;

    // Warm the cache once so that all three readers see the same buffer state.
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;

    // Baseline 1: a raw sequential scan of the same columns, decoded the same way.
    let t0 = Instant::now();
    let upc = Upcasters::new();
    let sql = format!("SELECT {} FROM events", eventdesk_store::pg::EVENT_COLUMNS);
    let mut rows = sqlx::query(&sql).fetch(pool);
    let mut scanned = 0usize;
    while let Some(row) = rows.try_next().await? {
        let e = eventdesk_store::pg::decode_row(&row, &upc)?;
        scanned += usize::from(e.version > 0);
    }
    drop(rows);
    let scan_rate = scanned as f64 / t0.elapsed().as_secs_f64();

    // Baseline 1b: the same, in log order, one query (how much the ordered walk costs).
    let t0 = Instant::now();
    let sql = format!(
        "SELECT {} FROM events e ORDER BY e.transaction_id, e.global_position",
        eventdesk_store::pg::EVENT_COLUMNS
    );
    let mut rows = sqlx::query(&sql).fetch(pool);
    let mut ordered = 0usize;
    while let Some(row) = rows.try_next().await? {
        let e = eventdesk_store::pg::decode_row(&row, &upc)?;
        ordered += usize::from(e.version > 0);
    }
    drop(rows);
    let ordered_rate = ordered as f64 / t0.elapsed().as_secs_f64();

    // Baseline 2: COPY of the table's bytes (no decoding at all; the ceiling).
    let t0 = Instant::now();
    let mut conn = pool.acquire().await?;
    let mut copy = conn.copy_out_raw("COPY events TO STDOUT").await?;
    let mut bytes = 0usize;
    while let Some(chunk) = copy.try_next().await? {
        bytes += chunk.len();
    }
    drop(copy);
    drop(conn);
    let copy_rate = total as f64 / t0.elapsed().as_secs_f64();

    // The store: read_all from zero, batch by batch, below the horizon, consumed as it
    // streams (what a subscriber does).
    let t0 = Instant::now();
    let mut cp = Checkpoint::START;
    let mut read = 0usize;
    loop {
        let mut batch = store.stream_all(cp, r.batch);
        let mut n = 0usize;
        while let Some(e) = batch.try_next().await? {
            cp = e.checkpoint();
            n += 1;
        }
        if n == 0 {
            break;
        }
        read += n;
    }
    let read_rate = read as f64 / t0.elapsed().as_secs_f64();
    anyhow::ensure!(read == total, "read_all returned {read} of {total} events");

    println!("{:<34} {:>12} {:>8}", "reader", "events/s", "vs scan");
    println!(
        "{:<34} {:>12.0} {:>8}",
        "raw COPY TO STDOUT (bytes only)", copy_rate, "-"
    );
    println!(
        "{:<34} {:>12.0} {:>8.2}",
        "raw SELECT scan, decoded", scan_rate, 1.0
    );
    println!(
        "{:<34} {:>12.0} {:>8.2}",
        "raw SELECT in log order, decoded",
        ordered_rate,
        ordered_rate / scan_rate
    );
    println!(
        "{:<34} {:>12.0} {:>8.2}",
        format!("store read_all (batch {})", r.batch),
        read_rate,
        read_rate / scan_rate
    );
    println!("  (COPY moved {} MB)", bytes / 1_000_000);

    // A projection rebuild from zero: the counting projection.
    let projection = eventdesk_projections::event_counts::EventCounts;
    let runtime = ProjectorRuntime::new(
        store.clone(),
        vec![Arc::new(projection)],
        RuntimeConfig::default(),
    );
    let out = runtime
        .catch_up(&projection)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let counted: i64 = sqlx::query_scalar("SELECT coalesce(sum(count), 0)::int8 FROM event_counts")
        .fetch_one(pool)
        .await?;
    anyhow::ensure!(
        counted as usize == total,
        "projection counted {counted} of {total}"
    );
    println!(
        "projection rebuild (event_counts): {} events in {:.2}s = {:.0} events/s ({} batches)",
        out.events,
        out.elapsed.as_secs_f64(),
        out.events as f64 / out.elapsed.as_secs_f64(),
        out.batches
    );
    println!("\ntargets: read_all ≥ 0.8 of raw scan; rebuild ≥ 50,000 events/s");
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Shared by `api` and `queries`: a tenant with its admin, made as `eventdesk tenant create`
// makes one.
// ------------------------------------------------------------------------------------------

/// A random 256-bit secret as 64 hex digits.
fn random_hex() -> String {
    let bytes: [u8; 32] = rand::thread_rng().r#gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn bench_options() -> Options {
    Options {
        metadata: metadata(),
        ..Default::default()
    }
}

async fn hash_password(password: &str) -> anyhow::Result<PasswordHash> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || eventdesk_auth::password::hash_password(&password))
        .await
        .context("hashing the password")?
        .context("hashing the password")
}

/// The tenant a benchmark works in.
#[derive(Clone)]
pub(crate) struct BenchTenant {
    pub(crate) id: TenantId,
    pub(crate) admin: UserId,
    username: String,
    password: String,
}

/// Creates a tenant and its admin through the command layer; `store` must run as the system
/// role.
pub(crate) async fn create_bench_tenant(store: &PgEventStore) -> anyhow::Result<BenchTenant> {
    let username = "bench_admin".to_owned();
    let password = random_hex();
    let hash = hash_password(&password).await?;
    let (id, admin) = create_tenant_with_admin(
        store,
        &SystemClock,
        NewTenant {
            name: TenantName::parse("Bench Corp")?,
            admin_username: Username::parse(&username)?,
            admin_email: Email::parse(format!("{username}@example.com"))?,
            admin_first_name: PersonName::parse("Bench")?,
            admin_last_name: PersonName::parse("Admin")?,
            admin_password_hash: hash,
        },
        &bench_options(),
    )
    .await
    .context("creating the tenant")?;
    Ok(BenchTenant {
        id,
        admin,
        username,
        password,
    })
}

/// A pool on the scratch database as the system role (BYPASSRLS: projector, tenant admin).
pub(crate) async fn system_db(config: &Config, connections: u32) -> anyhow::Result<Db> {
    let mut c = config.system_db();
    c.max_connections = connections;
    Db::connect(c)
        .await
        .context("connecting as the system role")
}

/// `s` padded with spaces to `width` terminal columns (East Asian characters take two).
pub(crate) fn pad(s: &str, width: usize) -> String {
    let used: usize = s
        .chars()
        .map(|c| if u32::from(c) >= 0x1100 { 2 } else { 1 })
        .sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(used)))
}

/// `[met]` / `[NOT met]`.
pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok { "[met]    " } else { "[NOT met]" }
}

// ------------------------------------------------------------------------------------------
// bench api
// ------------------------------------------------------------------------------------------

/// `eventdesk serve` as a child process on a free port, with its own data directory. Dropping
/// it stops the server (SIGTERM, then SIGKILL after 15 s), also when the benchmark fails.
pub(crate) struct ServerProcess {
    child: std::process::Child,
    pub(crate) base: String,
    dir: PathBuf,
    keep_dir: bool,
    /// How long `wait_ready` waits (longer under a wrapper such as valgrind).
    ready_within: Duration,
}

/// Memory of a process from `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: u64,
    hwm: u64,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

impl ServerProcess {
    fn spawn(database_url: &str, keep_dir: bool) -> anyhow::Result<Self> {
        Self::spawn_with(database_url, keep_dir, &[])
    }

    /// As `spawn`, with extra environment variables.
    pub(crate) fn spawn_with(
        database_url: &str,
        keep_dir: bool,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::spawn_under(database_url, keep_dir, env, &[])
    }

    /// As `spawn_with`, started by `wrapper` (a program and its arguments, e.g. valgrind's)
    /// with the server's command line after it; an empty `wrapper` starts the server itself.
    pub(crate) fn spawn_under(
        database_url: &str,
        keep_dir: bool,
        env: &[(&str, &str)],
        wrapper: &[String],
    ) -> anyhow::Result<Self> {
        // A free port: bind :0, read it, release it for the child.
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let dir = std::env::temp_dir().join(format!("eventdesk-bench-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let spawned = (|| {
            let log = std::fs::File::create(dir.join("server.log"))?;
            let exe = std::env::current_exe()?;
            let mut command = match wrapper.split_first() {
                Some((program, args)) => {
                    let mut c = std::process::Command::new(program);
                    c.args(args).arg(exe);
                    c
                }
                None => std::process::Command::new(exe),
            };
            command
                .arg("serve")
                .env("DATABASE_URL", database_url)
                .env("EVENTDESK_BIND", format!("127.0.0.1:{port}"))
                .env("EVENTDESK_DATA_DIR", &dir)
                .env("EVENTDESK_JWT_SECRET", random_hex())
                .env("EVENTDESK_API_KEY_PEPPER", random_hex())
                .env("EVENTDESK_LOG_FORMAT", "json")
                .env("RUST_LOG", "warn")
                // These benches load one tenant far past its default quota; the limiter's own
                // cost is `bench ratelimit`'s subject.
                .env("EVENTDESK_RATE_LIMITS", "false")
                .envs(env.iter().copied())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
        })();
        match spawned {
            Ok(child) => Ok(Self {
                child,
                base: format!("http://127.0.0.1:{port}"),
                dir,
                keep_dir,
                ready_within: Duration::from_secs(if wrapper.is_empty() { 60 } else { 600 }),
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(anyhow::Error::new(e).context("starting `eventdesk serve`"))
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The server's log lines (JSON, `warn` and above).
    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_path())
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// The last lines of the log, for error messages.
    fn log_tail(&self) -> String {
        let lines = self.log_lines();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Polls `/readyz` until it answers 200 (60 s at most).
    pub(crate) async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let url = format!("{}/readyz", self.base);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited ({status}) before it was ready; its log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status() == reqwest::StatusCode::OK
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() > self.ready_within {
                bail!(
                    "the server was not ready after {} s; its log:\n{}",
                    self.ready_within.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// VmRSS and VmHWM of the server.
    fn memory(&self) -> anyhow::Result<Memory> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let kb = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .with_context(|| format!("no {name} in {path}"))?;
            Ok(kb * 1024)
        };
        Ok(Memory {
            rss: field("VmRSS:")?,
            hwm: field("VmHWM:")?,
        })
    }

    /// Stops the server: SIGTERM (graceful shutdown), SIGKILL if still running after 15 s.
    pub(crate) fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let term = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        if matches!(term, Ok(s) if s.success()) {
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Some(status) = self.child.try_wait()? {
                    return Ok(status);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.child.kill()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!(
                "warning: could not stop the server (pid {}): {e:#}",
                self.pid()
            );
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The description of the API benchmark's incidents: ~400 characters, some Japanese.
const API_DESCRIPTION: &str = "Users in the finance department report that outbound mail to \
    external recipients has been queued since 09:12. Internal delivery still works. The relay \
    logs show repeated TLS handshake failures towards the smart host since the certificate \
    rotation last night. 経理部から外部宛てのメールが送信されないとの報告あり。メールサーバーの\
    証明書更新後から発生しています。 About 120 users are affected. Please check the relay and escalate to the messaging team.";

/// The JSON body of the `i`-th distinct create request (title ~60 characters).
pub(crate) fn incident_body(i: usize) -> serde_json::Value {
    json!({
        "title": format!(
            "Outbound mail stuck in the send queue of relay mx{:02}: TLS fails",
            i % 100
        ),
        "description": API_DESCRIPTION,
        "impact": Impact::ALL[i % Impact::ALL.len()].as_str(),
        "urgency": Urgency::ALL[(i / Impact::ALL.len()) % Urgency::ALL.len()].as_str(),
    })
}

/// Distinct request bodies, cycled through by the load (serialised once, so that the client
/// spends its CPU on HTTP, not on JSON).
const BODIES: usize = 64;

/// Where and how the load creates incidents.
struct ApiTarget {
    http: reqwest::Client,
    url: String,
    key: String,
    bodies: Vec<Vec<u8>>,
}

impl ApiTarget {
    /// One `POST /api/v1/incidents`; anything but 201 is an error, named by status and code.
    async fn create(&self, i: usize) -> Result<(), String> {
        let body = self.bodies[i % self.bodies.len()].clone();
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(&self.key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("transport error: {e}"))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        if status == reqwest::StatusCode::CREATED {
            return Ok(());
        }
        let code = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        Err(format!("HTTP {} {code}", status.as_u16()))
    }
}

/// Logs in over HTTP, retrying until the directory projection has the user (30 s at most).
pub(crate) async fn login(
    http: &reqwest::Client,
    base: &str,
    t: &BenchTenant,
) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let r = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({ "username": t.username, "password": t.password }))
            .send()
            .await
            .context("POST /api/v1/auth/login")?;
        let status = r.status();
        if status == reqwest::StatusCode::OK {
            let body: serde_json::Value = r.json().await.context("login answer")?;
            return body["access_token"]
                .as_str()
                .map(str::to_owned)
                .context("the login answer has no access_token");
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "could not log in as {} within 30 s (last status {status})",
                t.username
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /api/v1/api-keys` → the plaintext live key.
pub(crate) async fn create_api_key(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<String> {
    let r = http
        .post(format!("{base}/api/v1/api-keys"))
        .bearer_auth(token)
        .json(&json!({ "name": "bench" }))
        .send()
        .await
        .context("POST /api/v1/api-keys")?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.context("API-key answer")?;
    anyhow::ensure!(
        status == reqwest::StatusCode::CREATED,
        "creating the API key: {status} {body}"
    );
    let key = body["api_key"]
        .as_str()
        .context("the API-key answer has no api_key")?;
    anyhow::ensure!(key.starts_with("qg_live_"), "not a live key: {key:.12}…");
    Ok(key.to_owned())
}

/// One closed-loop client of the API: create, wait for the answer, repeat until `deadline`.
async fn api_client(target: Arc<ApiTarget>, c: usize, deadline: Instant) -> anyhow::Result<Sample> {
    let mut s = Sample::default();
    let mut i = c;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let outcome = target.create(i).await;
        s.record(t0.elapsed(), outcome);
        i += 1;
    }
    Ok(s)
}

/// The raw baseline's table: the same JSON as jsonb plus a few uuid/text columns.
const RAW_INCIDENTS_TABLE: &str = "CREATE TABLE bench_raw_incidents (id uuid PRIMARY KEY, \
     tenant_id uuid NOT NULL, number text NOT NULL, status text NOT NULL, \
     reporter_id uuid NOT NULL, data jsonb NOT NULL, created_at timestamptz NOT NULL)";

/// One closed-loop client of the raw baseline: single-row autocommit INSERTs.
async fn raw_insert_client(
    pool: PgPool,
    bodies: Arc<Vec<serde_json::Value>>,
    c: usize,
    deadline: Instant,
) -> anyhow::Result<Sample> {
    let mut s = Sample::default();
    let (tenant, reporter) = (Uuid::now_v7(), Uuid::now_v7());
    let mut i = 0usize;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        sqlx::query(
            "INSERT INTO bench_raw_incidents (id, tenant_id, number, status, reporter_id, data, \
             created_at) VALUES ($1, $2, $3, 'new', $4, $5, now())",
        )
        .bind(Uuid::now_v7())
        .bind(tenant)
        .bind(format!("INC{c:03}{i:07}"))
        .bind(reporter)
        .bind(&bodies[(c + i) % bodies.len()])
        .execute(&pool)
        .await?;
        s.record(t0.elapsed(), Ok(()));
        i += 1;
    }
    Ok(s)
}

/// Creates at `rate`/s for `secs` regardless of how fast answers come (open loop), at most
/// `max_in_flight` at once. Latency runs from each request's scheduled send time, so a stall
/// (server or client side) counts against the requests it delays (no coordinated omission).
async fn open_loop(
    target: Arc<ApiTarget>,
    rate: u32,
    secs: u64,
    max_in_flight: usize,
) -> anyhow::Result<(u64, Sample, Duration)> {
    anyhow::ensure!(rate > 0, "--rate must be positive");
    let total = u64::from(rate) * secs;
    let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1)));
    let mut running = tokio::task::JoinSet::new();
    let mut s = Sample::default();
    let start = tokio::time::Instant::now();
    for i in 0..total {
        let scheduled =
            start + Duration::from_nanos(i.saturating_mul(1_000_000_000) / u64::from(rate));
        tokio::time::sleep_until(scheduled).await;
        let permit = permits.clone().acquire_owned().await?;
        let target = target.clone();
        running.spawn(async move {
            let outcome = target.create(usize::try_from(i).unwrap_or_default()).await;
            drop(permit);
            (scheduled.elapsed(), outcome)
        });
        while let Some(done) = running.try_join_next() {
            let (took, outcome) = done?;
            s.record(took, outcome);
        }
    }
    while let Some(done) = running.join_next().await {
        let (took, outcome) = done?;
        s.record(took, outcome);
    }
    Ok((total, s, start.elapsed()))
}

/// Events of the log not yet applied by each projection (newest version of each), by name.
async fn projection_lags(pool: &PgPool) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT c.name, \
         (SELECT count(*) FROM events e WHERE e.global_position > c.last_position) \
         FROM (SELECT DISTINCT ON (name) name, last_position FROM projection_checkpoints \
               ORDER BY name, version DESC) c ORDER BY c.name",
    )
    .fetch_all(pool)
    .await?)
}

/// The `incidents` projection's lag now, and how long until every projection has applied the
/// whole log (`None`: not within `limit`).
async fn projections_catch_up(
    pool: &PgPool,
    limit: Duration,
) -> anyhow::Result<(i64, Option<Duration>)> {
    let t0 = Instant::now();
    let lags = projection_lags(pool).await?;
    let incidents = lags
        .iter()
        .find(|(n, _)| n == "incidents")
        .map_or(0, |(_, l)| *l);
    let mut lags = lags;
    while lags.iter().any(|(_, l)| *l > 0) {
        if t0.elapsed() > limit {
            return Ok((incidents, None));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        lags = projection_lags(pool).await?;
    }
    Ok((incidents, Some(t0.elapsed())))
}

async fn bench_api(pool: &PgPool, config: &Config, a: ApiArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!a.clients.is_empty(), "--clients is empty");
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut server = ServerProcess::spawn(config.database_url.expose(), a.keep)?;
    let ready_in = server.wait_ready(&http).await?;
    let idle = server.memory()?;

    // The tenant (system role, as `eventdesk tenant create`), then a login and a live key.
    let sys = system_db(config, 2).await?;
    let tenant = create_bench_tenant(&PgEventStore::new(sys.pool.clone(), Upcasters::new())).await;
    sys.pool.close().await;
    let tenant = tenant?;
    let token = login(&http, &server.base, &tenant).await?;
    let key = create_api_key(&http, &server.base, &token).await?;

    let json_bodies: Arc<Vec<serde_json::Value>> =
        Arc::new((0..BODIES).map(incident_body).collect());
    let target = Arc::new(ApiTarget {
        http,
        url: format!("{}/api/v1/incidents", server.base),
        key,
        bodies: json_bodies
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<_, _>>()?,
    });
    sqlx::query(RAW_INCIDENTS_TABLE).execute(pool).await?;

    println!(
        "\nbench api: POST /api/v1/incidents on `eventdesk serve` (pid {}, {}, ready in {:.1} s)",
        server.pid(),
        server.base,
        ready_in.as_secs_f64()
    );
    println!(
        "  body {} B (title {} chars, description {} chars incl. Japanese), Authorization: \
         Bearer qg_live_…",
        target.bodies[0].len(),
        json_bodies[0]["title"]
            .as_str()
            .unwrap_or("")
            .chars()
            .count(),
        API_DESCRIPTION.chars().count()
    );
    println!(
        "  raw = single-row autocommit INSERT of the same JSON (jsonb) + uuid/text columns into \
         a plain table, pool size = clients"
    );
    println!(
        "  closed loop, {} s per cell, after a 2 s warm-up of the API; {} CPUs shared by this \
         client, the server and PostgreSQL",
        a.seconds,
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    // Warm-up: connections, prepared statements, caches (not reported, but errors are).
    let (_, warm) = run_clients(8, 2, |c, d| api_client(target.clone(), c, d)).await?;
    if warm.error_count() > 0 {
        println!("  warm-up errors: {}", warm.error_summary());
    }
    projections_catch_up(pool, Duration::from_secs(120)).await?;

    println!(
        "{:>7} | {:>10} {:>8} {:>8} | {:>12} {:>8} {:>8} {:>7} | {:>6}",
        "clients",
        "raw ins/s",
        "p50 ms",
        "p99 ms",
        "api creates/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "ratio"
    );
    let mut cells = Vec::new();
    for &clients in &a.clients {
        let mut dbc = DbConfig::new(config.database_url.expose());
        dbc.app_role = None;
        dbc.max_connections = u32::try_from(clients)?;
        let raw_db = Db::connect(dbc).await?;
        let raw_pool = raw_db.pool.clone();
        let raw = run_clients(clients, a.seconds, |c, d| {
            raw_insert_client(raw_pool.clone(), json_bodies.clone(), c, d)
        })
        .await;
        raw_db.pool.close().await;
        let (raw, mut raw_s) = raw?;
        let (api, mut s) =
            run_clients(clients, a.seconds, |c, d| api_client(target.clone(), c, d)).await?;
        println!(
            "{:>7} | {:>10.0} {:>8.2} {:>8.2} | {:>13.0} {:>8.2} {:>8.2} {:>7} | {:>6.2}",
            clients,
            raw,
            raw_s.pct(0.50),
            raw_s.pct(0.99),
            api,
            s.pct(0.50),
            s.pct(0.99),
            s.error_count(),
            api / raw
        );
        cells.push((clients, api / raw, s));
        // The creates answer before the projections have them (ADR 0024): how far behind the
        // log the read models are when the load stops, and how long they take to catch up
        // (the next cell starts only then, so it does not pay for this one's backlog).
        let (behind, took) = projections_catch_up(pool, Duration::from_secs(120)).await?;
        println!(
            "        | read models at the end of the cell: incidents {} events behind, every              projection {}",
            behind,
            match took {
                Some(t) => format!("caught up {:.2} s later", t.as_secs_f64()),
                None => "NOT caught up within 120 s".into(),
            }
        );
    }
    for (clients, _, s) in &cells {
        if s.error_count() > 0 {
            println!("  errors at {clients} clients: {}", s.error_summary());
        }
    }

    println!(
        "\nopen loop: {} creates/s scheduled for {} s (at most {} in flight; latency from the \
         scheduled send time)",
        a.rate, a.seconds, a.max_in_flight
    );
    let (sent, mut ol, took) =
        open_loop(target.clone(), a.rate, a.seconds, a.max_in_flight).await?;
    let achieved = ol.events as f64 / took.as_secs_f64();
    let (p50, p99, p999) = (ol.pct(0.50), ol.pct(0.99), ol.pct(0.999));
    println!(
        "  sent {sent}, 201 {}, errors {} | achieved {achieved:.0} creates/s | p50 {p50:.2} ms  \
         p99 {p99:.2} ms  p99.9 {p999:.2} ms",
        ol.events,
        ol.error_count()
    );
    if ol.error_count() > 0 {
        println!("  errors: {}", ol.error_summary());
    }
    let (behind, caught) = projections_catch_up(pool, Duration::from_secs(120)).await?;
    println!(
        "  read models at the end: incidents {behind} events behind, every projection {}",
        match caught {
            Some(t) => format!("caught up {:.2} s later", t.as_secs_f64()),
            None => "NOT caught up within 120 s".into(),
        }
    );

    let loaded = server.memory()?;
    println!(
        "\nserver memory: idle {:.1} MB (VmRSS right after /readyz) | peak {:.1} MB (VmHWM \
         after the load) | {:.1} MB now (VmRSS)",
        mb(idle.rss),
        mb(loaded.hwm),
        mb(loaded.rss)
    );
    let exit = server.stop()?;
    let log = server.log_lines();
    println!(
        "server stopped ({exit}); its log has {} line(s) at warn or above{}",
        log.len(),
        if a.keep {
            format!(" ({})", server.log_path().display())
        } else {
            String::new()
        }
    );
    for line in log.iter().take(5) {
        println!("  {line:.300}");
    }

    let errors: u64 = cells.iter().map(|(_, _, s)| s.error_count()).sum::<u64>()
        + ol.error_count()
        + warm.error_count();
    let (ratio_clients, ratio) = cells
        .iter()
        .find(|(c, _, _)| *c == 32)
        .or_else(|| cells.iter().max_by_key(|(c, _, _)| *c))
        .map(|(c, r, _)| (*c, *r))
        .unwrap_or_default();
    println!("\ntargets:");
    println!(
        "  {} api ≥ 0.5 × raw at {ratio_clients} clients: {ratio:.2}",
        verdict(ratio >= 0.5)
    );
    println!(
        "  {} open-loop p99 < 25 ms at {}/s: {p99:.2} ms (achieved {achieved:.0}/s)",
        verdict(p99 < 25.0 && achieved >= 0.95 * f64::from(a.rate)),
        a.rate
    );
    println!(
        "  {} idle RSS < 50 MB: {:.1} MB",
        verdict(mb(idle.rss) < 50.0),
        mb(idle.rss)
    );
    println!(
        "  {} peak RSS under load < 150 MB: {:.1} MB",
        verdict(mb(loaded.hwm) < 150.0),
        mb(loaded.hwm)
    );
    println!("  {} no failed requests: {errors}", verdict(errors == 0));
    Ok(())
}

// ------------------------------------------------------------------------------------------
// bench queries
// ------------------------------------------------------------------------------------------

/// Titles of the generated incidents (`{n}` becomes a number). Only one contains
/// [`ASCII_SEARCH`]; none contains [`JAPANESE_SEARCH`].
const TITLES: [&str; 50] = [
    "VPN disconnects every few minutes for remote staff in region {n}",
    "Laptop {n} does not boot after the BIOS update",
    "Cannot open shared drive S: from building {n}",
    "Outlook keeps asking for the password on PC-{n}",
    "Printer PRN-{n} reports low toner although the cartridge is new",
    "Wi-Fi on floor {n} drops when more than 40 people connect",
    "Teams calls freeze after 10 minutes for team {n}",
    "Password reset link expired for account {n}",
    "SAP transaction VA01 times out for plant {n}",
    "New hire {n} has no access to the HR portal",
    "Monitor flickers on desk {n} in the open office",
    "Excel macro fails with runtime error 1004 in report {n}",
    "Badge reader at entrance {n} rejects valid badges",
    "Slow file uploads to SharePoint site {n}",
    "Phone extension {n} rings but calls cannot be answered",
    "Backup job {n} failed with a snapshot error",
    "Disk space low on file server FS-{n}",
    "CRM dashboard shows no data since release {n}",
    "Certificate warning when opening intranet page {n}",
    "Docking station {n} does not detect the second monitor",
    "Access request for project folder {n} pending for a week",
    "Blue screen on workstation WS-{n} after a driver update",
    "Meeting room {n} display cannot be shared from a laptop",
    "ERP invoice batch {n} stuck in the posting queue",
    "Antivirus flags a signed installer on client {n}",
    "Database replication lag above five minutes on node {n}",
    "Website checkout page returns error 502 for cart {n}",
    "Keyboard keys unresponsive on notebook {n}",
    "MFA push notifications not arriving for user {n}",
    "Scanner on floor {n} cannot send to e-mail",
    "Calendar invitations arrive twice for group {n}",
    "License server refuses CAD seats for site {n}",
    "Kiosk terminal {n} stuck on the boot logo",
    "Nightly ETL job {n} aborted with a deadlock",
    "Mobile device enrolment fails for tablet {n}",
    "Network share quota exceeded for department {n}",
    "Power supply fan noisy in server rack {n}",
    "Payroll export file {n} has wrong encoding",
    "Firewall rule request for partner VPN {n}",
    "Time tracking app crashes on start for shift {n}",
    "Projector in training room {n} shows no signal",
    "Load balancer health check flaps for pool {n}",
    "Cannot install the approved software package {n}",
    "Video conference audio echoes in boardroom {n}",
    "Customer portal login loops back to the start page ({n})",
    "Shared mailbox permissions missing for queue {n}",
    "Container registry push denied for pipeline {n}",
    "USB ports disabled on lab machine {n}",
    "Label printer {n} prints blank labels in the warehouse",
    "Expense report {n} cannot be submitted for approval",
];

/// Titles of about 1% of the incidents; each contains [`JAPANESE_SEARCH`].
const JAPANESE_TITLES: [&str; 5] = [
    "メールサーバーに接続できません（拠点 {n}）",
    "メールサーバーの応答が遅い（部署 {n}）",
    "Mail delivery delayed: メールサーバー queue {n} is full",
    "メールサーバー証明書の期限切れ警告 {n}",
    "外部宛てメールがメールサーバーで滞留 {n}",
];

/// Descriptions of the generated incidents; none contains either search word.
const DESCRIPTIONS: [&str; 6] = [
    "The user reports the problem started this morning after logging in. A restart did not \
     help. Screenshots are attached to the original call.",
    "Several colleagues on the same floor see the same behaviour since yesterday afternoon. \
     Business impact is moderate; a workaround exists but is slow.",
    "Reported by phone. The caller has already tried a different device and a different \
     network with the same result. Please call back before 17:00.",
    "ネットワーク機器の再起動後も改善しません。利用者への影響が大きいため、早急な対応をお願いします。",
    "Occurs intermittently, roughly every hour. Event log shows warnings at the same time. \
     No recent changes according to the change calendar.",
    "",
];

/// A word of one template only (about 2% of the incidents).
const ASCII_SEARCH: &str = "toner";
/// Part of [`JAPANESE_TITLES`] only (about 1% of the incidents).
const JAPANESE_SEARCH: &str = "メールサーバー";

/// What the generated incidents refer to.
pub(crate) struct Directory {
    pub(crate) tenant: TenantId,
    pub(crate) users: Vec<UserId>,
    pub(crate) teams: Vec<TeamId>,
    pub(crate) categories: Vec<CategoryId>,
    /// `created_at` of incident 0 (incident `n` is `n × 30 s` later).
    epoch: DateTime<Utc>,
}

impl Directory {
    /// Creates users, teams and categories through the domain commands.
    pub(crate) async fn create(
        store: &PgEventStore,
        t: &BenchTenant,
        incidents: u64,
    ) -> anyhow::Result<Self> {
        let opts = bench_options();
        let actor = Actor::User(t.admin);
        let mut teams = Vec::new();
        for name in [
            "Service Desk",
            "Network",
            "Messaging",
            "Workplace",
            "Identity",
            "Databases",
            "Facilities",
            "Security",
        ] {
            let id = TeamId::new();
            let cmd = TeamCommand::Create {
                id,
                name: TeamName::parse(name)?,
                manager_id: None,
                description: None,
                actor,
            };
            execute::<TeamAggregate>(store, &SystemClock, t.id, StreamId(id.0), cmd, &opts)
                .await
                .with_context(|| format!("creating team {name}"))?;
            teams.push(id);
        }
        let mut categories = Vec::new();
        for name in [
            "Hardware",
            "Software",
            "Network",
            "E-mail",
            "Access",
            "Telephony",
            "Printing",
            "Facilities",
            "ERP",
            "CRM",
            "Security",
            "Other",
        ] {
            let id = CategoryId::new();
            let cmd = CategoryCommand::Create {
                id,
                name: CategoryName::parse(name)?,
                parent_id: None,
                description: None,
                actor,
            };
            execute::<CategoryAggregate>(store, &SystemClock, t.id, StreamId(id.0), cmd, &opts)
                .await
                .with_context(|| format!("creating category {name}"))?;
            categories.push(id);
        }
        let mut users = vec![t.admin];
        let hash = hash_password(&random_hex()).await?;
        for (i, role) in [
            Role::Manager,
            Role::Operator,
            Role::Operator,
            Role::User,
            Role::User,
        ]
        .into_iter()
        .enumerate()
        {
            let id = UserId::new();
            let username = format!("bench_{}_{i}", role.as_str());
            let cmd = UserCommand::Register {
                id,
                tenant_id: t.id,
                username: Username::parse(&username)?,
                email: Email::parse(format!("{username}@example.com"))?,
                first_name: PersonName::parse("Bench")?,
                last_name: PersonName::parse(format!("User {i}"))?,
                phone: None,
                department: None,
                role,
                password_hash: hash.clone(),
                actor,
            };
            register_user(store, &SystemClock, t.id, cmd, &opts)
                .await
                .with_context(|| format!("registering {username}"))?;
            users.push(id);
        }
        let span = chrono::TimeDelta::seconds(30 * i64::try_from(incidents)?);
        Ok(Self {
            tenant: t.id,
            users,
            teams,
            categories,
            epoch: Utc::now() - span,
        })
    }

    /// The `Create` of incident number `seq` (random but reproducible fields) and its instant.
    pub(crate) fn incident(
        &self,
        seq: u64,
        rng: &mut StdRng,
    ) -> anyhow::Result<(IncidentId, IncidentCommand, DateTime<Utc>)> {
        fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
            items[rng.gen_range(0..items.len())]
        }
        let id = IncidentId::new();
        let n = rng.gen_range(1..=400).to_string();
        let title = if rng.gen_bool(0.01) {
            pick(rng, &JAPANESE_TITLES)
        } else {
            pick(rng, &TITLES)
        };
        let reporter = pick(rng, &self.users);
        let cmd = IncidentCommand::Create {
            id,
            number: IncidentNumber::from_sequence(seq)?,
            title: Title::parse(title.replace("{n}", &n))?,
            description: Description::parse(pick(rng, &DESCRIPTIONS))?,
            impact: pick(rng, Impact::ALL),
            urgency: pick(rng, Urgency::ALL),
            priority: rng.gen_bool(0.2).then(|| pick(rng, Priority::ALL)),
            matrix: PriorityMatrix::default(),
            category_id: rng.gen_bool(0.3).then(|| pick(rng, &self.categories)),
            team_id: rng.gen_bool(0.3).then(|| pick(rng, &self.teams)),
            assignee_id: None,
            reporter_id: reporter,
            ci_id: None,
            actor: Actor::User(reporter),
        };
        let at = self.epoch + chrono::TimeDelta::seconds(30 * i64::try_from(seq)?);
        Ok((id, cmd, at))
    }
}

/// Appends incidents `first, first + step, …` ≤ `n`, one stream each, as the command layer
/// would (decide on the empty aggregate, encode, append with `NoStream`).
async fn append_incidents(
    store: PgEventStore,
    dir: Arc<Directory>,
    (first, step, n): (u64, u64, u64),
    done: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(first);
    let meta = metadata();
    let mut seq = first;
    while seq <= n {
        let (id, cmd, at) = dir.incident(seq, &mut rng)?;
        let events = IncidentAggregate::default()
            .decide(cmd, at)
            .map_err(|e| anyhow!("incident {seq} rejected: {e}"))?;
        let envelopes = encode(&events).map_err(anyhow::Error::msg)?;
        store
            .append(
                dir.tenant,
                &StreamRef::new(IncidentAggregate::STREAM_TYPE, StreamId(id.0)),
                ExpectedVersion::NoStream,
                envelopes,
                &meta,
                None,
            )
            .await?;
        done.fetch_add(1, Ordering::Relaxed);
        seq += step;
    }
    Ok(())
}

/// Appends incidents 1..=n with `writers` concurrent tasks, printing progress; returns the
/// wall time.
async fn populate_incidents(
    store: &PgEventStore,
    dir: Arc<Directory>,
    n: u64,
    writers: usize,
) -> anyhow::Result<Duration> {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let d = done.load(Ordering::Relaxed);
                println!(
                    "  … {d} / {n} incidents ({:.0}/s)",
                    d as f64 / started.elapsed().as_secs_f64()
                );
            }
        })
    };
    let step = u64::try_from(writers.max(1))?;
    let tasks: Vec<_> = (1..=step)
        .map(|first| {
            tokio::spawn(append_incidents(
                store.clone(),
                dir.clone(),
                (first, step, n),
                done.clone(),
            ))
        })
        .collect();
    let joined: anyhow::Result<()> = async {
        for t in tasks {
            t.await??;
        }
        Ok(())
    }
    .await;
    progress.abort();
    joined?;
    Ok(started.elapsed())
}

/// One measured query.
enum Probe {
    /// `list_incidents`, as `GET /api/v1/incidents` runs it.
    List {
        filter: Box<IncidentFilter>,
        sort: IncidentSort,
        paging: Paging,
    },
    /// The raw baseline [`RAW_LIST_SQL`].
    Raw,
}

const RAW_LIST_SQL: &str =
    "SELECT id FROM rm_incidents WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 20";

impl Probe {
    fn list(filter: IncidentFilter, sort: IncidentSort, paging: Paging) -> Self {
        Self::List {
            filter: Box::new(filter),
            sort,
            paging,
        }
    }

    /// Runs the query on `conn` (already scoped to `tenant`); returns the rows and, in page
    /// mode, the number of matches.
    async fn run(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
    ) -> anyhow::Result<(usize, Option<u64>)> {
        match self {
            Self::List {
                filter,
                sort,
                paging,
            } => {
                let page = list_incidents(conn, tenant, filter, *sort, paging.clone()).await?;
                Ok((page.data.len(), page.pagination.total_items))
            }
            Self::Raw => {
                let ids: Vec<Uuid> = sqlx::query_scalar(RAW_LIST_SQL)
                    .bind(tenant.0)
                    .fetch_all(conn)
                    .await?;
                Ok((ids.len(), None))
            }
        }
    }

    /// Runs it as the API does: a transaction on the app pool scoped to the tenant. The time
    /// includes BEGIN, the scoping and COMMIT.
    async fn time(
        &self,
        pool: &PgPool,
        tenant: TenantId,
    ) -> anyhow::Result<(Duration, (usize, Option<u64>))> {
        let t0 = Instant::now();
        let mut tx = pool.begin().await?;
        scope_to_tenant(&mut tx, tenant).await?;
        let out = self.run(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok((t0.elapsed(), out))
    }
}

/// The cursor of page `pages` of the newest-first list (walking `pages - 1` pages).
async fn deep_cursor(pool: &PgPool, tenant: TenantId, pages: usize) -> anyhow::Result<String> {
    let mut after = None;
    for page in 1..pages {
        let mut tx = pool.begin().await?;
        scope_to_tenant(&mut tx, tenant).await?;
        let p = list_incidents(
            &mut tx,
            tenant,
            &IncidentFilter::default(),
            IncidentSort::CreatedAtDesc,
            Paging::Cursor { after, limit: 20 },
        )
        .await?;
        tx.commit().await?;
        after = Some(
            p.pagination
                .next_cursor
                .clone()
                .with_context(|| format!("the list ends at page {page}"))?,
        );
    }
    after.context("no cursor (pages must be ≥ 2)")
}

/// Collects the PostgreSQL notices sqlx reports (as `tracing` events) while it is installed.
#[derive(Clone, Default)]
struct NoticeCapture(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for NoticeCapture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Message(Option<String>);
        impl tracing::field::Visit for Message {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "message" {
                    self.0 = Some(value.to_owned());
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && self.0.is_none() {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut m = Message(None);
        event.record(&mut m);
        if let (Some(m), Ok(mut all)) = (m.0, self.0.lock()) {
            all.push(m);
        }
    }
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of every statement `probe` runs, with its real parameters:
/// `auto_explain` on a session of the login (superuser) role, which then switches to the app
/// role, scopes a transaction to the tenant and runs the probe; the plans arrive as notices.
async fn explain(
    url: &str,
    role: Option<&str>,
    tenant: TenantId,
    probe: &Probe,
) -> anyhow::Result<Vec<String>> {
    use tracing::instrument::WithSubscriber;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    let mut conn = url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .connect()
        .await?;
    conn.execute(
        "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; \
         SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on; \
         SET auto_explain.log_level = notice; SET client_min_messages = notice",
    )
    .await
    .context("enabling auto_explain (needs a superuser login)")?;
    if let Some(role) = role {
        conn.execute(format!("SET ROLE {}", db::quote_ident(role)).as_str())
            .await?;
    }
    let capture = NoticeCapture::default();
    let only_notices = tracing_subscriber::filter::Targets::new()
        .with_target("sqlx::postgres::notice", tracing::Level::TRACE);
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(capture.clone().with_filter(only_notices)),
    );
    let ran: anyhow::Result<()> = async {
        let mut tx = conn.begin().await?;
        scope_to_tenant(&mut tx, tenant).await?;
        probe.run(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(())
    }
    .with_subscriber(dispatch)
    .await;
    conn.close().await?;
    ran?;
    let plans = capture
        .0
        .lock()
        .map_err(|_| anyhow!("notice capture poisoned"))?
        .iter()
        .filter(|m| m.contains("rm_incidents"))
        .cloned()
        .collect();
    Ok(plans)
}

async fn bench_queries(pool: &PgPool, config: &Config, q: QueriesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(q.incidents >= 1000, "--incidents must be at least 1000");
    let sys = system_db(config, u32::try_from(q.writers)? + 4).await?;
    let store = PgEventStore::new(sys.pool.clone(), Upcasters::new());
    let tenant = create_bench_tenant(&store).await?;
    let dir = Arc::new(Directory::create(&store, &tenant, q.incidents).await?);
    println!(
        "\nbench queries: tenant {} with {} users, {} teams, {} categories",
        tenant.id,
        dir.users.len(),
        dir.teams.len(),
        dir.categories.len()
    );

    println!(
        "appending {} incidents (one stream each, {} concurrent appenders)…",
        q.incidents, q.writers
    );
    let took = populate_incidents(&store, dir.clone(), q.incidents, q.writers).await?;
    println!(
        "  appended {} incidents in {:.1} s = {:.0} appends/s",
        q.incidents,
        took.as_secs_f64(),
        q.incidents as f64 / took.as_secs_f64()
    );
    // Keep the command side consistent: the next number the API would hand out is n + 1.
    sqlx::query(
        "INSERT INTO incident_counters (tenant_id, last) VALUES ($1, $2) \
         ON CONFLICT (tenant_id) DO UPDATE SET last = EXCLUDED.last",
    )
    .bind(tenant.id.0)
    .bind(i64::try_from(q.incidents)?)
    .execute(pool)
    .await?;

    let runtime = ProjectorRuntime::new(store.clone(), vec![], RuntimeConfig::default());
    let projections: [&dyn Projection; 2] = [&DirectoryProjection, &IncidentProjection];
    for p in projections {
        let out = runtime.catch_up(p).await.map_err(anyhow::Error::msg)?;
        println!(
            "  projection {} caught up: {} events in {:.1} s = {:.0} events/s ({} batches)",
            p.name(),
            out.events,
            out.elapsed.as_secs_f64(),
            out.events as f64 / out.elapsed.as_secs_f64(),
            out.batches
        );
    }
    sys.pool.close().await;
    let projected: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rm_incidents WHERE tenant_id = $1")
            .bind(tenant.id.0)
            .fetch_one(pool)
            .await?;
    anyhow::ensure!(
        u64::try_from(projected)? == q.incidents,
        "rm_incidents has {projected} of {} incidents",
        q.incidents
    );
    let t0 = Instant::now();
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    println!("  VACUUM ANALYZE in {:.1} s", t0.elapsed().as_secs_f64());

    // The API's read path: the app role, transactions scoped to the tenant.
    let mut app_cfg = config.db();
    app_cfg.max_connections = 2;
    let app = Db::connect(app_cfg)
        .await
        .context("connecting as the app role")?;
    let t = tenant.id;
    let first_page = Paging::page(1, 20);
    let kinds: Vec<(String, Probe)> = vec![
        (
            "raw: SELECT id … ORDER BY created_at DESC LIMIT 20".into(),
            Probe::Raw,
        ),
        (
            "(a) page 1, -created_at, no filter".into(),
            Probe::list(
                IncidentFilter::default(),
                IncidentSort::CreatedAtDesc,
                first_page.clone(),
            ),
        ),
        (
            "(a') same, cursor mode (no COUNT)".into(),
            Probe::list(
                IncidentFilter::default(),
                IncidentSort::CreatedAtDesc,
                Paging::Cursor {
                    after: None,
                    limit: 20,
                },
            ),
        ),
        (
            "(b) page 1, status=new, priority=high|critical, -priority".into(),
            Probe::list(
                IncidentFilter {
                    status: vec![IncidentStatus::New],
                    priority: vec![Priority::High, Priority::Critical],
                    ..Default::default()
                },
                IncidentSort::PriorityDesc,
                first_page.clone(),
            ),
        ),
        (
            "(c) page 1, team_id=…, -created_at".into(),
            Probe::list(
                IncidentFilter {
                    team_id: dir.teams.first().copied(),
                    ..Default::default()
                },
                IncidentSort::CreatedAtDesc,
                first_page.clone(),
            ),
        ),
        (
            format!("(d) page 1, q={JAPANESE_SEARCH}"),
            Probe::list(
                IncidentFilter {
                    q: Some(JAPANESE_SEARCH.into()),
                    ..Default::default()
                },
                IncidentSort::CreatedAtDesc,
                first_page.clone(),
            ),
        ),
        (
            format!("(e) page 1, q={ASCII_SEARCH}"),
            Probe::list(
                IncidentFilter {
                    q: Some(ASCII_SEARCH.into()),
                    ..Default::default()
                },
                IncidentSort::CreatedAtDesc,
                first_page,
            ),
        ),
        (
            "(f) cursor page 50, -created_at".into(),
            Probe::list(
                IncidentFilter::default(),
                IncidentSort::CreatedAtDesc,
                Paging::Cursor {
                    after: Some(deep_cursor(&app.pool, t, 50).await?),
                    limit: 20,
                },
            ),
        ),
    ];

    // One untimed round, then the samples round-robin so that noise hits every kind alike.
    let mut results = Vec::new();
    for (_, probe) in &kinds {
        results.push((Sample::default(), probe.time(&app.pool, t).await?.1));
    }
    for _ in 0..q.samples {
        for ((_, probe), (s, _)) in kinds.iter().zip(&mut results) {
            let (took, _) = probe.time(&app.pool, t).await?;
            s.record(took, Ok(()));
        }
    }

    println!(
        "\n{} samples per query, app role, one transaction each (BEGIN, set_config, query, \
         COMMIT); page mode = COUNT + page, as GET /api/v1/incidents without a cursor",
        q.samples
    );
    println!(
        "{:<58} {:>4} {:>8} | {:>7} {:>7} {:>7} | p95 < 20 ms",
        "query", "rows", "matches", "p50 ms", "p95 ms", "p99 ms"
    );
    let mut slow = Vec::new();
    for ((label, probe), (s, (rows, matches))) in kinds.iter().zip(&mut results) {
        let p95 = s.pct(0.95);
        println!(
            "{} {:>4} {:>8} | {:>7.2} {:>7.2} {:>7.2} | {}",
            pad(label, 58),
            rows,
            matches.map_or("-".into(), |m| m.to_string()),
            s.pct(0.50),
            p95,
            s.pct(0.99),
            verdict(p95 < 20.0)
        );
        if p95 >= q.explain_over_ms {
            slow.push((label, probe));
        }
    }
    if slow.is_empty() {
        println!(
            "\nno query kind has p95 ≥ {} ms: no plans to show",
            q.explain_over_ms
        );
    }
    for (label, probe) in slow {
        println!("\nEXPLAIN (ANALYZE, BUFFERS) of {label}:");
        match explain(
            config.database_url.expose(),
            config.db_role.as_deref(),
            t,
            probe,
        )
        .await
        {
            Ok(plans) if plans.is_empty() => println!("  (auto_explain reported no plan)"),
            Ok(plans) => {
                for plan in plans {
                    for line in plan.lines() {
                        println!("  {line}");
                    }
                }
            }
            Err(e) => println!("  (no plan: {e:#})"),
        }
    }
    app.pool.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_select_what_they_should() {
        let ascii: Vec<_> = TITLES
            .iter()
            .filter(|t| t.to_lowercase().contains(ASCII_SEARCH))
            .collect();
        assert_eq!(ascii.len(), 1, "{ascii:?}");
        assert!(TITLES.iter().all(|t| !t.contains(JAPANESE_SEARCH)));
        assert!(JAPANESE_TITLES.iter().all(|t| t.contains(JAPANESE_SEARCH)));
        assert!(
            JAPANESE_TITLES
                .iter()
                .all(|t| !t.to_lowercase().contains(ASCII_SEARCH))
        );
        for d in DESCRIPTIONS {
            assert!(!d.contains(JAPANESE_SEARCH) && !d.to_lowercase().contains(ASCII_SEARCH));
        }
    }

    #[test]
    fn api_body_is_realistic() {
        let b = incident_body(7);
        let title = b["title"].as_str().unwrap_or_default().chars().count();
        assert!((55..=65).contains(&title), "title has {title} chars");
        let d = API_DESCRIPTION.chars().count();
        assert!((380..=440).contains(&d), "description has {d} chars");
        assert!(API_DESCRIPTION.contains(JAPANESE_SEARCH));
    }
}
