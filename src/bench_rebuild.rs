//! `eventdesk bench rebuild`: `projections rebuild incidents` over a large log (issue #6).
//!
//! 1. Populates one tenant (users, teams and categories through the commands, as `bench
//!    queries` does) and `--incidents` incidents, each with a lifecycle decided by the domain
//!    with the SLA follow-up, as the command layer would: created (with its two SLA timers);
//!    most assigned and started, some with a work note, some resolved. One append per
//!    incident.
//! 2. Baselines, measured in the same run because the machine is noisy:
//!    - **live catch-up**: the `incidents` projection from zero through the live runtime
//!      (batches of 2000, every index and trigger maintained row by row) — how the read model
//!      was rebuilt before `projections rebuild`; it also builds the live tables the rebuild
//!      then replaces;
//!    - **raw copy**: `INSERT INTO <unindexed table> SELECT * FROM events` — the floor cost
//!      of writing one row per event, no decoding, no read model.
//! 3. `--rounds` rebuilds of `incidents` (the command's code: bulk, indexes, catch-up, swap)
//!    while nothing else runs, each from zero; events/s end to end (all events of the log /
//!    wall time) and per phase, median round reported.
//! 4. Checks that the rebuilt tables hold exactly what the live catch-up built (a digest of
//!    each table's ordered rows).

use crate::bench::{BenchTenant, Directory, create_bench_tenant, pad, verdict};
use anyhow::{Context, anyhow};
use clap::Args;
use eventdesk_commands::execute::encode;
use eventdesk_commands::incident::with_sla_follow_up;
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand, IncidentEvent};
use eventdesk_domain::sla::timer::SlaRules;
use eventdesk_domain::values::{ResolutionText, WorkNoteBody, WorkNoteType};
use eventdesk_domain::{Actor, Aggregate, StreamId, WorkNoteId};
use eventdesk_projections::rebuild::{RebuildEvent, RebuildOptions, RebuildOutcome, rebuild};
use eventdesk_projections::{IncidentProjection, Projection, ProjectorRuntime, RuntimeConfig};
use eventdesk_store::subscription::StopToken;
use eventdesk_store::{EventStore, ExpectedVersion, PgEventStore, StreamRef, Upcasters};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `bench rebuild`.
#[derive(Args, Debug)]
pub struct RebuildArgs {
    /// Incidents in the log (about 5 events each).
    #[arg(long, default_value_t = 200_000)]
    incidents: u64,
    /// Rebuilds measured (each from zero); the median is reported.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Events per batch of the rebuild's bulk phase.
    #[arg(long, default_value_t = 10_000)]
    batch: i64,
    /// Concurrent appenders while populating.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Keep the scratch database.
    #[arg(long)]
    pub keep: bool,
}

/// One incident's lifecycle as the command layer would decide it, SLA follow-up included.
fn lifecycle(
    dir: &Directory,
    seq: u64,
    rng: &mut StdRng,
    rules: &SlaRules,
) -> anyhow::Result<(StreamId, Vec<IncidentEvent>)> {
    let (id, create, at) = dir.incident(seq, rng)?;
    let mut agg = IncidentAggregate::default();
    let mut all = Vec::new();
    let mut step = |agg: &mut IncidentAggregate,
                    cmd: IncidentCommand,
                    at: chrono::DateTime<chrono::Utc>|
     -> anyhow::Result<()> {
        let events = agg
            .decide(cmd, at)
            .map_err(|e| anyhow!("incident {seq} rejected: {e}"))?;
        let events = with_sla_follow_up(agg, events, rules, at);
        for e in &events {
            agg.evolve(e);
        }
        all.extend(events);
        Ok(())
    };
    step(&mut agg, create, at)?;
    let agent = dir.users[rng.gen_range(0..dir.users.len())];
    let actor = Actor::User(agent);
    let minutes = |m: i64| at + chrono::TimeDelta::minutes(m);
    if rng.gen_bool(0.8) {
        let team = dir.teams[rng.gen_range(0..dir.teams.len())];
        step(
            &mut agg,
            IncidentCommand::Assign {
                assignee_id: Some(agent),
                team_id: Some(team),
                actor,
            },
            minutes(5),
        )?;
        if rng.gen_bool(0.7) {
            step(&mut agg, IncidentCommand::StartWork { actor }, minutes(10))?;
            if rng.gen_bool(0.5) {
                step(
                    &mut agg,
                    IncidentCommand::AddWorkNote {
                        note_id: WorkNoteId::new(),
                        body: WorkNoteBody::parse("Checked the logs; restarting the service.")?,
                        note_type: WorkNoteType::WorkNote,
                        is_public: false,
                        by_agent: true,
                        author: actor,
                    },
                    minutes(20),
                )?;
            }
            if rng.gen_bool(0.5) {
                step(
                    &mut agg,
                    IncidentCommand::Resolve {
                        resolution: ResolutionText::parse("Restarted the service.")?,
                        actor,
                    },
                    minutes(60),
                )?;
            }
        }
    }
    Ok((StreamId(id.0), all))
}

async fn populate(
    store: &PgEventStore,
    dir: Arc<Directory>,
    n: u64,
    writers: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let step = u64::try_from(writers.max(1))?;
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                println!("  … {} / {n} incidents", done.load(Ordering::Relaxed));
            }
        })
    };
    let tasks: Vec<_> = (1..=step)
        .map(|first| {
            let (store, dir, done) = (store.clone(), dir.clone(), done.clone());
            tokio::spawn(async move {
                let rules = SlaRules::default();
                let mut rng = StdRng::seed_from_u64(first);
                let meta = crate::bench::metadata();
                let mut seq = first;
                while seq <= n {
                    let (stream, events) = lifecycle(&dir, seq, &mut rng, &rules)?;
                    let envelopes = encode(&events).map_err(anyhow::Error::msg)?;
                    store
                        .append(
                            dir.tenant,
                            &StreamRef::new(IncidentAggregate::STREAM_TYPE, stream),
                            ExpectedVersion::NoStream,
                            envelopes,
                            &meta,
                            None,
                        )
                        .await?;
                    done.fetch_add(1, Ordering::Relaxed);
                    seq += step;
                }
                anyhow::Ok(())
            })
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

/// A digest of each of the projection's tables (ordered rows), to compare two builds.
pub(crate) async fn digests(
    pool: &PgPool,
    p: &dyn Projection,
) -> anyhow::Result<Vec<(String, i64, String)>> {
    let mut out = Vec::new();
    for t in p.tables() {
        let (n, d): (i64, Option<String>) = sqlx::query_as(&format!(
            "SELECT count(*), md5(string_agg(r::text, E'\\n' ORDER BY r::text)) FROM {t} r"
        ))
        .fetch_one(pool)
        .await?;
        out.push(((*t).to_owned(), n, d.unwrap_or_default()));
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the benchmark against the scratch database `pool` (login user, owner of the tables).
pub async fn bench_rebuild(
    pool: &PgPool,
    config: &eventdesk_api::Config,
    a: RebuildArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(a.incidents >= 100, "--incidents must be at least 100");
    let sys = crate::bench::system_db(config, u32::try_from(a.writers)? + 4).await?;
    let store = PgEventStore::new(sys.pool.clone(), Upcasters::new());
    let tenant: BenchTenant = create_bench_tenant(&store).await?;
    let dir = Arc::new(Directory::create(&store, &tenant, a.incidents).await?);
    println!(
        "\nbench rebuild: appending {} incidents with their lifecycles ({} appenders)…",
        a.incidents, a.writers
    );
    let took = populate(&store, dir.clone(), a.incidents, a.writers).await?;
    sys.pool.close().await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let incident_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_type = 'incident'")
            .fetch_one(pool)
            .await?;
    println!(
        "  {events} events ({incident_events} of incidents, {:.1} per incident) in {:.1} s",
        incident_events as f64 / a.incidents as f64,
        took.as_secs_f64()
    );
    sqlx::query("VACUUM ANALYZE events").execute(pool).await?;
    let events_u = u64::try_from(events)?;
    let owner_store = PgEventStore::new(pool.clone(), Upcasters::new());

    // Baseline 1: the live runtime's catch-up from zero (also builds the live tables).
    let live = ProjectorRuntime::new(owner_store.clone(), vec![], RuntimeConfig::default());
    let out = live
        .catch_up(&IncidentProjection)
        .await
        .map_err(anyhow::Error::msg)?;
    let live_rate = out.events as f64 / out.elapsed.as_secs_f64();
    println!(
        "  live catch-up: {} events in {:.1} s = {live_rate:.0} events/s",
        out.events,
        out.elapsed.as_secs_f64()
    );
    let reference = digests(pool, &IncidentProjection).await?;

    let mut raw_rates = Vec::new();
    let mut rebuild_rates = Vec::new();
    let mut outcomes: Vec<RebuildOutcome> = Vec::new();
    for round in 1..=a.rounds.max(1) {
        // Baseline 2: a raw copy of the events into an unindexed table.
        sqlx::query("DROP TABLE IF EXISTS bench_raw_copy")
            .execute(pool)
            .await?;
        sqlx::query("CREATE TABLE bench_raw_copy (LIKE events)")
            .execute(pool)
            .await?;
        let t0 = Instant::now();
        let copied = sqlx::query("INSERT INTO bench_raw_copy SELECT * FROM events")
            .execute(pool)
            .await?
            .rows_affected();
        let raw = copied as f64 / t0.elapsed().as_secs_f64();
        sqlx::query("DROP TABLE bench_raw_copy")
            .execute(pool)
            .await?;
        sqlx::query("CHECKPOINT").execute(pool).await?;

        let opts = RebuildOptions {
            bulk_batch: a.batch,
            restart: true,
            ..RebuildOptions::default()
        };
        let stop = StopToken::new();
        let o = rebuild(
            &owner_store,
            Arc::new(IncidentProjection),
            &opts,
            &stop,
            // Each index's build time (the index phase is most of what the bulk phase saves).
            &|e| {
                if let RebuildEvent::Note(note) = e {
                    println!("    {note}");
                }
            },
        )
        .await
        .context("rebuilding incidents")?;
        anyhow::ensure!(o.completed, "the rebuild stopped early");
        let rate = events_u as f64 / o.elapsed_secs;
        println!(
            "  round {round}: raw copy {raw:.0} events/s; rebuild {rate:.0} events/s end to end \
             ({:.2} s: bulk {:.2} s = {:.0} events/s, indexes {:.2} s, catch-up {:.2} s, \
             swap {:.1} ms with the tables locked {:.1} ms)",
            o.elapsed_secs,
            o.bulk_secs,
            o.bulk_events as f64 / o.bulk_secs,
            o.index_secs,
            o.catch_up_secs,
            o.swap_ms,
            o.swap_locked_ms
        );
        raw_rates.push(raw);
        rebuild_rates.push(rate);
        outcomes.push(o);
    }
    let rebuilt = digests(pool, &IncidentProjection).await?;
    for ((t, n, d), (_, n2, d2)) in reference.iter().zip(&rebuilt) {
        anyhow::ensure!(
            n == n2 && d == d2,
            "{t}: the rebuild ({n2} rows) differs from the live catch-up ({n} rows)"
        );
    }
    println!("  rebuilt tables equal the live catch-up's, table by table");

    let raw = median(raw_rates);
    let rebuilt_rate = median(rebuild_rates);
    let bulk = median(
        outcomes
            .iter()
            .map(|o| o.bulk_events as f64 / o.bulk_secs)
            .collect(),
    );
    println!(
        "\n{} {:>12} {:>10}",
        pad("incidents read model, from zero", 44),
        "events/s",
        "vs live"
    );
    for (label, v) in [
        ("raw INSERT … SELECT of the events", raw),
        ("live runtime catch-up (all indexes)", live_rate),
        ("rebuild: bulk phase only", bulk),
        ("rebuild: end to end (bulk+index+swap)", rebuilt_rate),
    ] {
        println!("{} {v:>12.0} {:>10.2}", pad(label, 44), v / live_rate);
    }
    println!(
        "\ntarget: rebuild ≥ 50,000 events/s end to end {}",
        verdict(rebuilt_rate >= 50_000.0)
    );
    Ok(())
}
