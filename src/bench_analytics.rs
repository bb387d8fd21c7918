//! `eventdesk bench analytics`: the analytics endpoints' queries over a large tenant.
//!
//! 1. Populates `--incidents` incidents (30 s apart, ending now; teams, categories and users
//!    from [`crate::bench::Directory`]), each with a realistic lifecycle decided by the domain
//!    exactly as the command layer does (`decide` + the SLA follow-up, built-in 24x7 policy):
//!    a response after minutes to hours, holds, resolutions after minutes to days, reopens,
//!    closures, cancellations; the SLA thresholds crossed before each step (and before now)
//!    are recorded as the scheduler would. Steps that would lie in the future are not taken,
//!    so the recent incidents form an open backlog. One append per incident.
//! 2. Runs the `analytics` projection from zero to the head (events/s).
//! 3. Times every endpoint's query as the API runs it (the app role, a REPEATABLE READ
//!    transaction scoped to the tenant: BEGIN, set_config, the query, COMMIT), `--samples`
//!    times each, round-robin, next to a raw indexed SELECT (20 rows of the samples table by
//!    time) and, for reference, what a median over the raw samples costs
//!    (`percentile_cont` over the last 30 days, no histogram).
//!
//! Target (issue #5): p95 < 20 ms for every endpoint with 1,000,000 incidents in the tenant.

use crate::bench::{
    BenchTenant, Directory, create_bench_tenant, metadata, pad, system_db, verdict,
};
use anyhow::{Context, anyhow};
use chrono::{DateTime, Duration as TimeDelta, Utc};
use clap::Args;
use eventdesk_api::Config;
use eventdesk_commands::execute::encode;
use eventdesk_commands::incident::with_sla_follow_up;
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand};
use eventdesk_domain::sla::policy::SlaMetric;
use eventdesk_domain::sla::timer::{SlaRules, TimerStage};
use eventdesk_domain::values::{HoldReason, ReasonText, ResolutionText};
use eventdesk_domain::{Actor, Aggregate, StreamId, TenantId};
use eventdesk_projections::queries::analytics::{self as q, Bucket, Filter, Metric, Zone};
use eventdesk_projections::queries::scope_to_tenant;
use eventdesk_projections::rebuild::{RebuildEvent, RebuildOptions, rebuild};
use eventdesk_projections::{AnalyticsProjection, Projection, ProjectorRuntime, RuntimeConfig};
use eventdesk_store::subscription::StopToken;
use eventdesk_store::{Db, NewStream, PgEventStore, Upcasters};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// `bench analytics`.
#[derive(Args, Debug)]
pub struct AnalyticsArgs {
    /// Incidents of the tenant.
    #[arg(long, default_value_t = 1_000_000)]
    incidents: u64,
    /// Timed runs of each query.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Concurrent appenders while populating.
    #[arg(long, default_value_t = 4)]
    writers: u64,
    /// Incidents per append statement while populating (new streams appended together, as the
    /// group commit of creates does).
    #[arg(long, default_value_t = 250)]
    append_batch: u64,
    /// How the analytics read model is built from the log: `rebuild` (the rebuild's bulk path
    /// of `projections rebuild analytics`: no secondary index until the end, then swapped in)
    /// or `live` (the live runtime's catch-up, every index maintained row by row: ~1 h at
    /// 1,000,000 incidents).
    #[arg(long, value_enum, default_value_t = Build::Rebuild)]
    build: Build,
    /// Build the read model both ways (live catch-up first, then a rebuild) and check that the
    /// tables are identical (for small `--incidents`).
    #[arg(long)]
    verify: bool,
    /// Keep the scratch database.
    #[arg(long)]
    pub keep: bool,
    /// Measure again on a scratch database that an earlier run kept (`--keep`): skips
    /// populating and building (the database is kept again).
    #[arg(long, value_name = "DATABASE")]
    pub reuse: Option<String>,
}

/// How `bench analytics` builds the read model.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// `projections rebuild analytics`'s code path: bulk, indexes, catch-up, swap.
    Rebuild,
    /// The live runtime's catch-up from zero.
    Live,
}

/// One incident's lifecycle, decided step by step on the aggregate.
struct Life {
    agg: IncidentAggregate,
    events: Vec<eventdesk_domain::incident::IncidentEvent>,
    rules: Arc<SlaRules>,
    now: DateTime<Utc>,
}

impl Life {
    /// Records the SLA thresholds of running timers crossed at or before `t` (as the
    /// scheduler would, each at its crossing instant).
    fn thresholds_until(&mut self, t: DateTime<Utc>) -> anyhow::Result<()> {
        loop {
            let Some(inc) = self.agg.incident() else {
                return Ok(());
            };
            let mut next: Option<(DateTime<Utc>, SlaMetric, u32, u8)> = None;
            for timer in [&inc.sla.response, &inc.sla.resolution]
                .into_iter()
                .flatten()
            {
                if timer.stage != TimerStage::InProgress {
                    continue;
                }
                for th in &timer.thresholds {
                    if th.crossed_at.is_none() && th.at <= t && next.is_none_or(|n| th.at < n.0) {
                        next = Some((th.at, timer.metric, timer.cycle, th.percent));
                    }
                }
            }
            let Some((at, metric, cycle, threshold)) = next else {
                return Ok(());
            };
            let cmd = IncidentCommand::RecordSlaThreshold {
                metric,
                cycle,
                threshold,
            };
            let events = self
                .agg
                .decide(cmd, at)
                .map_err(|e| anyhow!("threshold rejected: {e}"))?;
            if events.is_empty() {
                return Ok(());
            }
            for e in &events {
                self.agg.evolve(e);
            }
            self.events.extend(events);
        }
    }

    /// Runs `cmd` at `t` (after recording the thresholds crossed before it), unless `t` is
    /// in the future. Returns whether it ran.
    fn step(&mut self, cmd: IncidentCommand, t: DateTime<Utc>) -> anyhow::Result<bool> {
        if t > self.now {
            return Ok(false);
        }
        self.thresholds_until(t)?;
        let decided = self
            .agg
            .decide(cmd, t)
            .map_err(|e| anyhow!("step rejected: {e}"))?;
        let events = with_sla_follow_up(&self.agg, decided, &self.rules, t);
        for e in &events {
            self.agg.evolve(e);
        }
        self.events.extend(events);
        Ok(true)
    }
}

/// A duration of `base` × 2^k, k uniform in `0..=spread`, plus up to one `base` of jitter.
fn spread(rng: &mut StdRng, base_secs: i64, spread: u32) -> TimeDelta {
    let k = rng.gen_range(0..=spread);
    TimeDelta::seconds(base_secs * (1 << k) + rng.gen_range(0..base_secs))
}

/// The events of incident `seq` with its lifecycle up to `now`.
fn lifecycle(
    dir: &Directory,
    seq: u64,
    rules: &Arc<SlaRules>,
    now: DateTime<Utc>,
) -> anyhow::Result<(eventdesk_domain::IncidentId, Vec<eventdesk_store::NewEvent>)> {
    let mut rng = StdRng::seed_from_u64(seq);
    let (id, create, created) = dir.incident(seq, &mut rng)?;
    let mut life = Life {
        agg: IncidentAggregate::default(),
        events: Vec::new(),
        rules: rules.clone(),
        now,
    };
    let decided = life
        .agg
        .decide(create, created)
        .map_err(|e| anyhow!("incident {seq} rejected: {e}"))?;
    let events = with_sla_follow_up(&life.agg, decided, rules, created);
    for e in &events {
        life.agg.evolve(e);
    }
    life.events.extend(events);
    let agent = Actor::User(dir.users[rng.gen_range(0..dir.users.len())]);
    let reason = |s: &str| ReasonText::parse(s).map_err(|e| anyhow!("{e}"));
    let mut t = created;
    'life: {
        if rng.gen_bool(0.01) {
            t += spread(&mut rng, 300, 4);
            life.step(
                IncidentCommand::Cancel {
                    reason: reason("duplicate")?,
                    actor: agent,
                },
                t,
            )?;
            break 'life;
        }
        // Response: routed to a team and an agent after 1 minute … ~4 hours.
        t += spread(&mut rng, 60, 8);
        let team = dir.teams[rng.gen_range(0..dir.teams.len())];
        let assignee = dir.users[rng.gen_range(0..dir.users.len())];
        if !life.step(
            IncidentCommand::Assign {
                assignee_id: Some(assignee),
                team_id: Some(team),
                actor: agent,
            },
            t,
        )? {
            break 'life;
        }
        t += TimeDelta::minutes(rng.gen_range(1..30));
        if !life.step(IncidentCommand::StartWork { actor: agent }, t)? {
            break 'life;
        }
        if rng.gen_bool(0.1) {
            t += TimeDelta::minutes(30);
            if !life.step(
                IncidentCommand::PutOnHold {
                    reason: HoldReason::AwaitingCaller,
                    comment: None,
                    actor: agent,
                },
                t,
            )? {
                break 'life;
            }
            t += spread(&mut rng, 3600, 4);
            if !life.step(IncidentCommand::Resume { actor: agent }, t)? {
                break 'life;
            }
        }
        // Resolution after 10 minutes … ~3.5 days.
        t += spread(&mut rng, 600, 9);
        let resolve = |text: &str| -> anyhow::Result<IncidentCommand> {
            Ok(IncidentCommand::Resolve {
                resolution: ResolutionText::parse(text).map_err(|e| anyhow!("{e}"))?,
                actor: agent,
            })
        };
        if !life.step(resolve("Restarted the service")?, t)? {
            break 'life;
        }
        if rng.gen_bool(0.05) {
            t += spread(&mut rng, 3600, 5);
            if !life.step(
                IncidentCommand::Reopen {
                    reason: reason("It happened again")?,
                    actor: agent,
                },
                t,
            )? {
                break 'life;
            }
            t += spread(&mut rng, 1800, 6);
            if !life.step(resolve("Replaced the part")?, t)? {
                break 'life;
            }
        }
        t += TimeDelta::days(1);
        life.step(IncidentCommand::Close { actor: agent }, t)?;
    }
    life.thresholds_until(now)?;
    Ok((id, encode(&life.events).map_err(anyhow::Error::msg)?))
}

/// Appends `n` incidents with their lifecycles: `writers` tasks, each appending
/// `batch` new streams per statement and transaction
/// ([`PgEventStore::append_new_streams_in`]: the same rows and hash chains as one append per
/// incident, in one round trip).
async fn populate(
    store: &PgEventStore,
    dir: Arc<Directory>,
    n: u64,
    writers: u64,
    batch: u64,
    now: DateTime<Utc>,
) -> anyhow::Result<(Duration, u64)> {
    let done = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let rules = Arc::new(SlaRules::default());
    let started = Instant::now();
    let batch = batch.max(1);
    let writers = writers.max(1);
    // Writer w takes chunks w, w + writers, w + 2 × writers, … of `batch` incidents.
    let chunks = n.div_ceil(batch);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (store, dir, done, events, rules) = (
                store.clone(),
                dir.clone(),
                done.clone(),
                events.clone(),
                rules.clone(),
            );
            tokio::spawn(async move {
                let meta = metadata();
                let mut chunk = w;
                while chunk < chunks {
                    let first = chunk * batch + 1;
                    let last = ((chunk + 1) * batch).min(n);
                    let lives = (first..=last)
                        .map(|seq| lifecycle(&dir, seq, &rules, now))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let streams: Vec<NewStream<'_>> = lives
                        .iter()
                        .map(|(id, evs)| NewStream {
                            stream_id: StreamId(id.0),
                            events: evs,
                            metadata: &meta,
                        })
                        .collect();
                    let mut tx = store.pool().begin().await?;
                    store
                        .append_new_streams_in(
                            &mut tx,
                            dir.tenant,
                            IncidentAggregate::STREAM_TYPE,
                            &streams,
                        )
                        .await?;
                    tx.commit().await?;
                    let evs: usize = lives.iter().map(|(_, e)| e.len()).sum();
                    events.fetch_add(evs as u64, Ordering::Relaxed);
                    done.fetch_add(last + 1 - first, Ordering::Relaxed);
                    chunk += writers;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    let progress = {
        let (done, events) = (done.clone(), events.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                println!(
                    "  … {} / {n} incidents, {} events ({:.0} events/s)",
                    done.load(Ordering::Relaxed),
                    events.load(Ordering::Relaxed),
                    events.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
                );
            }
        })
    };
    let joined: anyhow::Result<()> = async {
        for t in tasks {
            t.await??;
        }
        Ok(())
    }
    .await;
    progress.abort();
    joined?;
    Ok((started.elapsed(), events.load(Ordering::Relaxed)))
}

/// Builds the analytics read model from the log the live runtime's way (catch-up from zero).
async fn build_live(store: &PgEventStore) -> anyhow::Result<()> {
    let runtime = ProjectorRuntime::new(store.clone(), vec![], RuntimeConfig::default());
    let out = runtime
        .catch_up(&AnalyticsProjection)
        .await
        .map_err(anyhow::Error::msg)?;
    println!(
        "  live catch-up of {}: {} events in {:.1} s = {:.0} events/s ({} batches)",
        AnalyticsProjection.name(),
        out.events,
        out.elapsed.as_secs_f64(),
        out.events as f64 / out.elapsed.as_secs_f64(),
        out.batches
    );
    Ok(())
}

/// Builds the analytics read model with `projections rebuild analytics`'s code (bulk batches
/// without secondary indexes, the indexes, a catch-up, the swap): the same `apply` as the live
/// runtime over the same log, so the same rows (checked by `--verify`).
async fn build_rebuild(owner: &PgEventStore) -> anyhow::Result<()> {
    let applied = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = {
        let applied = applied.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let n = applied.load(Ordering::Relaxed);
                println!(
                    "  … {n} events applied ({:.0} events/s)",
                    n as f64 / started.elapsed().as_secs_f64()
                );
            }
        })
    };
    let report = |e: RebuildEvent| match e {
        RebuildEvent::Applied { events } => {
            applied.fetch_add(events, Ordering::Relaxed);
        }
        RebuildEvent::Phase { phase, done, .. } => {
            println!(
                "  rebuild phase {} after {:.1} s ({done} events applied)",
                phase.as_str(),
                started.elapsed().as_secs_f64()
            );
        }
        RebuildEvent::Note(note) => println!("  rebuild: {note}"),
    };
    let opts = RebuildOptions {
        restart: true,
        ..RebuildOptions::default()
    };
    let out = rebuild(
        owner,
        Arc::new(AnalyticsProjection),
        &opts,
        &StopToken::new(),
        &report,
    )
    .await;
    progress.abort();
    let o = out.context("rebuilding analytics")?;
    anyhow::ensure!(o.completed, "the rebuild stopped early");
    anyhow::ensure!(
        o.dead_letters == 0,
        "the rebuild left {} dead letters",
        o.dead_letters
    );
    println!(
        "  rebuild of analytics: {} events in {:.1} s = {:.0} events/s end to end (bulk {:.1} s \
         = {:.0} events/s, indexes {:.1} s, catch-up {:.1} s, swap {:.1} ms)",
        o.events,
        o.elapsed_secs,
        o.events as f64 / o.elapsed_secs,
        o.bulk_secs,
        o.bulk_events as f64 / o.bulk_secs,
        o.index_secs,
        o.catch_up_secs,
        o.swap_ms
    );
    Ok(())
}

/// One timed query.
enum Probe {
    Raw,
    NaiveMedian {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    Summary(Filter),
    Backlog(Filter),
    Trends(Filter, Box<q::TrendPlan>),
    Durations(Filter, Metric, DateTime<Utc>, DateTime<Utc>),
    Sla(Filter, DateTime<Utc>, DateTime<Utc>),
}

impl Probe {
    async fn run(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        Ok(match self {
            Self::Raw => {
                let v: Vec<i64> = sqlx::query_scalar(
                    "SELECT wall_secs FROM rm_analytics_samples WHERE tenant_id = $1 AND metric = 1 \
                     ORDER BY at DESC LIMIT 20",
                )
                .bind(tenant.0)
                .fetch_all(conn)
                .await?;
                format!("{} rows", v.len())
            }
            Self::NaiveMedian { from, to } => {
                let (n, median): (i64, Option<f64>) = sqlx::query_as(
                    "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY wall_secs) \
                     FROM rm_analytics_samples WHERE tenant_id = $1 AND metric = 1 \
                     AND at >= $2 AND at < $3",
                )
                .bind(tenant.0)
                .bind(from)
                .bind(to)
                .fetch_one(conn)
                .await?;
                format!("n={n} median={}", median.unwrap_or_default())
            }
            Self::Summary(f) => {
                let s = q::summary(conn, tenant, f).await?;
                format!("open={} critical={}", s.total_open, s.critical_open)
            }
            Self::Backlog(f) => {
                let b = q::backlog(conn, tenant, f, now).await?;
                format!(
                    "open={} reopen%={:.2}",
                    b.open_total,
                    b.reopen.rate_percent.unwrap_or(0.0)
                )
            }
            Self::Trends(f, plan) => {
                let t = q::trends(conn, tenant, f, plan).await?;
                format!("{} buckets, created={}", t.data.len(), t.totals.created)
            }
            Self::Durations(f, m, from, to) => {
                let d = q::durations(conn, tenant, f, *m, *from, *to).await?;
                format!(
                    "n={} median={}",
                    d.overall.wall.count,
                    d.overall.wall.median_seconds.unwrap_or_default()
                )
            }
            Self::Sla(f, from, to) => {
                let s = q::sla(conn, tenant, f, *from, *to).await?;
                format!(
                    "resolution {}/{}",
                    s.resolution.overall.met, s.resolution.overall.completed
                )
            }
        })
    }

    async fn time(
        &self,
        pool: &PgPool,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(Duration, String)> {
        let t0 = Instant::now();
        let mut tx = pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        scope_to_tenant(&mut tx, tenant).await?;
        let out = self.run(&mut tx, tenant, now).await?;
        tx.commit().await?;
        Ok((t0.elapsed(), out))
    }
}

/// A digest of each of the analytics tables: its rows in order, without the count rows at
/// zero (a cell that went up and back down in the live runtime's small batches keeps a row at
/// 0 that one large batch never writes; both mean "none", as in the projection's own
/// batch-independence test).
async fn digests(pool: &PgPool) -> anyhow::Result<Vec<(String, i64, String)>> {
    let mut out = Vec::new();
    for t in AnalyticsProjection.tables() {
        let (n, d): (i64, Option<String>) = sqlx::query_as(&format!(
            "SELECT count(*), md5(string_agg(r::text, E'\\n' ORDER BY r::text)) FROM {t} r \
             WHERE NOT (to_jsonb(r) ? 'n' AND (to_jsonb(r)->>'n')::int8 = 0)"
        ))
        .fetch_one(pool)
        .await?;
        out.push(((*t).to_owned(), n, d.unwrap_or_default()));
    }
    Ok(out)
}

/// An event store on `pool` (the live catch-up runs as the login user too).
fn store_on(pool: &PgPool) -> PgEventStore {
    PgEventStore::new(pool.clone(), Upcasters::new())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs `bench analytics` against the scratch database `pool`.
pub async fn bench_analytics(
    pool: &PgPool,
    config: &Config,
    a: AnalyticsArgs,
) -> anyhow::Result<()> {
    let (t, team_id, category_id, now) = match &a.reuse {
        Some(name) => {
            let found = recover(pool).await?;
            println!(
                "\nbench analytics: measuring again on {name} (tenant {}, {} incidents, now = {})",
                found.0, found.4, found.3
            );
            (found.0, found.1, found.2, found.3)
        }
        None => build(pool, config, &a).await?,
    };
    measure(config, &a, t, team_id, category_id, now).await
}

/// The tenant, the first team and category, and the instant the incidents of a kept database
/// end at (as its run had them), with the number of incidents.
async fn recover(
    pool: &PgPool,
) -> anyhow::Result<(TenantId, Option<Uuid>, Option<Uuid>, DateTime<Utc>, i64)> {
    let first = |stream_type: &'static str| {
        sqlx::query_scalar::<_, Uuid>(
            "SELECT stream_id FROM events WHERE stream_type = $1 ORDER BY global_position LIMIT 1",
        )
        .bind(stream_type)
        .fetch_optional(pool)
    };
    let tenant = first("tenant")
        .await?
        .ok_or_else(|| anyhow!("no tenant in this database"))?;
    let team = first("team").await?;
    let category = first("category").await?;
    let (now, n): (Option<DateTime<Utc>>, i64) =
        sqlx::query_as("SELECT max(created_at), count(*) FROM rm_analytics_incidents")
            .fetch_one(pool)
            .await?;
    let now = now.ok_or_else(|| anyhow!("the analytics read model is empty"))?;
    Ok((TenantId(tenant), team, category, now, n))
}

/// Populates the scratch database and builds the read model; returns what [`measure`] needs.
async fn build(
    pool: &PgPool,
    config: &Config,
    a: &AnalyticsArgs,
) -> anyhow::Result<(TenantId, Option<Uuid>, Option<Uuid>, DateTime<Utc>)> {
    anyhow::ensure!(a.incidents >= 1000, "--incidents must be at least 1000");
    let sys = system_db(config, u32::try_from(a.writers)? + 4).await?;
    let store = PgEventStore::new(sys.pool.clone(), Upcasters::new());
    let tenant: BenchTenant = create_bench_tenant(&store).await?;
    let dir = Arc::new(Directory::create(&store, &tenant, a.incidents).await?);
    let now = Utc::now();
    println!(
        "\nbench analytics: tenant {} with {} users, {} teams, {} categories",
        tenant.id,
        dir.users.len(),
        dir.teams.len(),
        dir.categories.len()
    );
    println!(
        "appending {} incidents with their lifecycles ({} per statement, {} writers)…",
        a.incidents, a.append_batch, a.writers
    );
    let (took, events) = populate(
        &store,
        dir.clone(),
        a.incidents,
        a.writers,
        a.append_batch,
        now,
    )
    .await?;
    println!(
        "  appended {} incidents, {events} events in {:.1} s ({:.0} events/s)",
        a.incidents,
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
    sys.pool.close().await;
    sqlx::query("VACUUM ANALYZE events").execute(pool).await?;

    // The read model. The rebuild runs as the login user (the tables' owner), as the command.
    let owner = PgEventStore::new(pool.clone(), Upcasters::new());
    let t0 = Instant::now();
    if a.verify {
        build_live(&store_on(pool)).await?;
        let live = digests(pool).await?;
        build_rebuild(&owner).await?;
        let rebuilt = digests(pool).await?;
        for ((t, n, d), (_, n2, d2)) in live.iter().zip(&rebuilt) {
            anyhow::ensure!(
                n == n2 && d == d2,
                "{t}: the rebuild ({n2} rows) differs from the live catch-up ({n} rows)"
            );
        }
        println!(
            "  verified: the rebuilt tables equal the live catch-up's, table by table ({} rows, \
             count rows at zero aside)",
            live.iter().map(|x| x.1).sum::<i64>()
        );
    } else {
        match a.build {
            Build::Rebuild => build_rebuild(&owner).await?,
            Build::Live => build_live(&store_on(pool)).await?,
        }
    }
    println!(
        "  read model built in {:.1} s; population total {:.1} s",
        t0.elapsed().as_secs_f64(),
        took.as_secs_f64() + t0.elapsed().as_secs_f64()
    );
    let t0 = Instant::now();
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    println!("  VACUUM ANALYZE in {:.1} s", t0.elapsed().as_secs_f64());
    let sizes: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT c.relname::text, c.reltuples::int8, pg_total_relation_size(c.oid) \
         FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'rm_analytics_%' ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    for (name, rows, bytes) in sizes {
        println!(
            "  {} {:>10} rows {:>9.1} MB (with indexes)",
            pad(&name, 24),
            rows,
            bytes as f64 / 1e6
        );
    }

    Ok((
        tenant.id,
        dir.teams.first().map(|x| x.0),
        dir.categories.first().map(|x| x.0),
        now,
    ))
}

/// Times every endpoint's query.
async fn measure(
    config: &Config,
    a: &AnalyticsArgs,
    t: TenantId,
    team_id: Option<Uuid>,
    category_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut app_cfg = config.db();
    app_cfg.max_connections = 2;
    let app = Db::connect(app_cfg)
        .await
        .context("connecting as the app role")?;
    let team = Filter {
        team_id,
        category_id: None,
    };
    let category = Filter {
        team_id: None,
        category_id,
    };
    let none = Filter::default();
    let month = (now - TimeDelta::days(30), now);
    let all = (now - TimeDelta::days(400), now);
    // Wide but not the whole history: the time-bounded path at its most expensive.
    let half_year = (now - TimeDelta::days(180), now);
    let plan = |days: i64, bucket: Bucket, tz: &str| -> anyhow::Result<Box<q::TrendPlan>> {
        let zone = Zone::parse(tz).context("zone")?;
        Ok(Box::new(
            q::plan_trends(now - TimeDelta::days(days), now, bucket, zone)
                .map_err(|e| anyhow!("{e}"))?,
        ))
    };
    let probes: Vec<(String, Probe)> = vec![
        ("raw: samples ORDER BY at DESC LIMIT 20".into(), Probe::Raw),
        (
            "naive: percentile_cont over 30 days of samples".into(),
            Probe::NaiveMedian {
                from: month.0,
                to: month.1,
            },
        ),
        ("summary".into(), Probe::Summary(none)),
        ("summary team_id".into(), Probe::Summary(team)),
        ("backlog".into(), Probe::Backlog(none)),
        ("backlog category_id".into(), Probe::Backlog(category)),
        (
            "trends 30 d by day UTC".into(),
            Probe::Trends(none, plan(30, Bucket::Day, "UTC")?),
        ),
        (
            "trends 365 d by day Asia/Kolkata".into(),
            Probe::Trends(none, plan(365, Bucket::Day, "Asia/Kolkata")?),
        ),
        (
            "trends 7 d by hour Asia/Kathmandu team_id".into(),
            Probe::Trends(team, plan(7, Bucket::Hour, "Asia/Kathmandu")?),
        ),
        (
            "trends 52 weeks Europe/Berlin".into(),
            Probe::Trends(none, plan(364, Bucket::Week, "Europe/Berlin")?),
        ),
        (
            "mttr 30 d".into(),
            Probe::Durations(none, Metric::Resolution, month.0, month.1),
        ),
        (
            "mttr 30 d team_id".into(),
            Probe::Durations(team, Metric::Resolution, month.0, month.1),
        ),
        (
            "mttr 30 d category_id (direct)".into(),
            Probe::Durations(category, Metric::Resolution, month.0, month.1),
        ),
        (
            "mttr all (400 d)".into(),
            Probe::Durations(none, Metric::Resolution, all.0, all.1),
        ),
        (
            "mttr 180 d".into(),
            Probe::Durations(none, Metric::Resolution, half_year.0, half_year.1),
        ),
        (
            "mtta 30 d".into(),
            Probe::Durations(none, Metric::Response, month.0, month.1),
        ),
        (
            "mtta 180 d".into(),
            Probe::Durations(none, Metric::Response, half_year.0, half_year.1),
        ),
        (
            "mtta all (400 d)".into(),
            Probe::Durations(none, Metric::Response, all.0, all.1),
        ),
        ("sla 30 d".into(), Probe::Sla(none, month.0, month.1)),
        ("sla all (400 d)".into(), Probe::Sla(none, all.0, all.1)),
        (
            "sla 30 d team_id".into(),
            Probe::Sla(team, month.0, month.1),
        ),
    ];
    // One untimed round (and the figures), then the samples round-robin.
    let mut results: Vec<(Vec<f64>, String)> = Vec::new();
    for (_, p) in &probes {
        results.push((Vec::new(), p.time(&app.pool, t, now).await?.1));
    }
    for _ in 0..a.samples {
        for ((_, p), (s, _)) in probes.iter().zip(&mut results) {
            s.push(p.time(&app.pool, t, now).await?.0.as_secs_f64() * 1000.0);
        }
    }
    println!(
        "\n{} samples per query, app role, one REPEATABLE READ transaction each (BEGIN, \
         set_config, the query's statements, COMMIT)",
        a.samples
    );
    println!(
        "{} {:>7} {:>7} {:>7} | p95 < 20 ms | result",
        pad("query", 46),
        "p50 ms",
        "p95 ms",
        "p99 ms"
    );
    for ((label, _), (mut s, what)) in probes.iter().zip(results) {
        s.sort_by(f64::total_cmp);
        let p95 = pct(&s, 0.95);
        println!(
            "{} {:>7.2} {:>7.2} {:>7.2} | {} | {what}",
            pad(label, 46),
            pct(&s, 0.5),
            p95,
            pct(&s, 0.99),
            if label.starts_with("raw") || label.starts_with("naive") {
                "baseline "
            } else {
                verdict(p95 < 20.0)
            },
        );
    }
    app.pool.close().await;
    Ok(())
}
