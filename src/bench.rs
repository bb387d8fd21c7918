//! `eventdesk bench …`: throughput figures printed side by side with a raw PostgreSQL
//! baseline measured in the same run against the same server, because machines are noisy.
//! Each run uses a scratch database that is dropped afterwards (events are immutable, so a
//! benchmark must never write into a real database).

use anyhow::Context;
use clap::{Args, Subcommand};
use eventdesk_api::Config;
use eventdesk_domain::{StreamId, TenantId};
use eventdesk_projections::{ProjectorRuntime, RuntimeConfig};
use eventdesk_store::{
    Checkpoint, Db, DbConfig, EventMetadata, EventStore, ExpectedVersion, NewEvent, PgEventStore,
    StreamRef, Upcasters, db,
};
use futures::TryStreamExt;
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Append throughput of the event store vs raw multi-row INSERTs into a plain table.
    Append(AppendArgs),
    /// `read_all` from zero vs a raw scan and COPY; then a projection rebuild from zero.
    Replay(ReplayArgs),
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

/// Runs a benchmark.
pub async fn run(cmd: BenchCommand, config: &Config) -> anyhow::Result<()> {
    let name = format!("eventdesk_bench_{}", Uuid::now_v7().simple());
    let url = db::with_database(config.database_url.expose(), &name)
        .context("DATABASE_URL has no database name")?;
    db::ensure_database(&url).await?;
    let keep = match &cmd {
        BenchCommand::Append(a) => a.keep,
        BenchCommand::Replay(r) => r.keep,
    };
    let result = async {
        let mut dbc = DbConfig::new(url.clone());
        dbc.app_role = None;
        dbc.max_connections = 40;
        Db::migrate(&dbc).await?;
        let db = Db::connect(dbc).await?;
        println!("scratch database: {name}");
        match cmd {
            BenchCommand::Append(a) => bench_append(&db.pool, a).await,
            BenchCommand::Replay(r) => bench_replay(&db.pool, r).await,
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

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "system:bench".into(),
        request_id: Some("bench".into()),
        correlation_id: Some(Uuid::now_v7()),
        causation_id: None,
    }
}

#[derive(Default)]
struct Sample {
    events: u64,
    latencies_us: Vec<u32>,
}

impl Sample {
    fn merge(&mut self, o: Sample) {
        self.events += o.events;
        self.latencies_us.extend(o.latencies_us);
    }
    fn pct(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

async fn run_clients<F, Fut>(clients: usize, secs: u64, f: F) -> anyhow::Result<(f64, Sample)>
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
fn median(mut rounds: Vec<(f64, Sample)>) -> (f64, Sample) {
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
