//! `eventdesk bench sla`: the SLA scheduler with many open incidents.
//!
//! 1. Populates `--incidents` open incidents whose timers are far from due (low priority,
//!    8 h / 72 h), through the domain and the SLA follow-up as the command layer does, and lets
//!    the `sla_timers` projection build their timers and deadline rows.
//! 2. Runs the projection and the scheduler (as `serve` does) while `--hot` critical incidents
//!    (response 1 min, resolution 2 min, 24x7) arrive over `--arrival-secs`: each crosses eight
//!    thresholds within the next two minutes. Lateness = the event's `recorded_at` minus the
//!    instant it crossed (`crossed_at`), for breaches and for all thresholds.
//! 3. Stops the projector and measures, over `--idle-secs`, the CPU of the scheduler when nothing
//!    is due: this process's user+system time plus that of its database backends.
//!
//! Baseline measured in the same run: the latency of a raw single-event append (the least a
//! recorded threshold can cost) and the sweep interval (the floor of the lateness).

use crate::bench::{metadata, pad, system_db, verdict};
use anyhow::anyhow;
use chrono::Utc;
use clap::Args;
use eventdesk_api::Config;
use eventdesk_commands::SystemClock;
use eventdesk_commands::execute::encode;
use eventdesk_commands::incident::with_sla_follow_up;
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand};
use eventdesk_domain::sla::policy::{PolicyCondition, SlaPolicy, SlaTarget};
use eventdesk_domain::sla::timer::SlaRules;
use eventdesk_domain::values::{Description, Impact, IncidentNumber, Priority, Title, Urgency};
use eventdesk_domain::{
    Actor, Aggregate, IncidentId, PriorityMatrix, SlaPolicyId, StreamId, TenantId, UserId,
};
use eventdesk_projections::{ProjectorRuntime, RuntimeConfig, SlaTimerProjection};
use eventdesk_store::{EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamRef, Upcasters};
use eventdesk_workers::{SchedulerConfig, SlaRulesCache, SlaScheduler};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `bench sla`.
#[derive(Args, Debug)]
pub struct SlaArgs {
    /// Open incidents whose timers are far from due.
    #[arg(long, default_value_t = 100_000)]
    incidents: u64,
    /// Critical incidents arriving during the measurement (8 thresholds each within 2 min).
    #[arg(long, default_value_t = 1_000)]
    hot: u64,
    /// Seconds over which the hot incidents arrive.
    #[arg(long, default_value_t = 20)]
    arrival_secs: u64,
    /// Seconds of the idle CPU measurement.
    #[arg(long, default_value_t = 20)]
    idle_secs: u64,
    /// Seconds watched (in 5 s windows) between the end of the load and the idle measurement.
    #[arg(long, default_value_t = 30)]
    settle_secs: u64,
    /// Concurrent writers while populating.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Keep the scratch database.
    #[arg(long)]
    pub keep: bool,
}

/// The tenant's SLA policy of the benchmark: critical 1 min / 2 min, low 8 h / 72 h; 24x7.
fn rules() -> SlaRules {
    let target = |priority, response, resolution| SlaTarget {
        priority,
        response_minutes: Some(response),
        resolution_minutes: Some(resolution),
        calendar_id: None,
    };
    SlaRules::new(
        vec![SlaPolicy {
            id: Some(SlaPolicyId::new()),
            name: "bench".into(),
            rank: 1,
            condition: PolicyCondition::default(),
            calendar_id: None,
            targets: vec![
                target(Priority::Critical, 1, 2),
                target(Priority::Low, 8 * 60, 72 * 60),
            ],
            active: true,
            version: 1,
        }],
        HashMap::new(),
    )
}

/// Appends one incident created now with its SLA timers, as the command layer would.
async fn append_incident(
    store: &PgEventStore,
    tenant: TenantId,
    reporter: UserId,
    seq: u64,
    priority: Priority,
    rules: &SlaRules,
) -> anyhow::Result<()> {
    let id = IncidentId::new();
    let cmd = IncidentCommand::Create {
        id,
        number: IncidentNumber::from_sequence(seq)?,
        title: Title::parse(format!("Printer {seq} jammed"))?,
        description: Description::parse("")?,
        impact: Impact::Low,
        urgency: Urgency::Low,
        priority: Some(priority),
        matrix: PriorityMatrix::default(),
        category_id: None,
        team_id: None,
        assignee_id: None,
        reporter_id: reporter,
        ci_id: None,
        actor: Actor::User(reporter),
    };
    let now = Utc::now();
    let fresh = IncidentAggregate::default();
    let events = fresh
        .decide(cmd, now)
        .map_err(|e| anyhow!("incident {seq} rejected: {e}"))?;
    let events = with_sla_follow_up(&fresh, events, rules, now);
    let envelopes = encode(&events).map_err(anyhow::Error::msg)?;
    store
        .append(
            tenant,
            &StreamRef::new(IncidentAggregate::STREAM_TYPE, StreamId(id.0)),
            ExpectedVersion::NoStream,
            envelopes,
            &metadata(),
            None,
        )
        .await?;
    Ok(())
}

/// CPU seconds (user + system) of a process, from `/proc/<pid>/stat`.
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU seconds of this process (key 0) and of each client backend of the scratch database
/// (by pid); autovacuum workers are the database's housekeeping, not the scheduler's cost.
async fn cpu_of_us_and_backends(
    pool: &PgPool,
) -> anyhow::Result<std::collections::HashMap<i32, f64>> {
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
    )
    .fetch_all(pool)
    .await?;
    let mut out = HashMap::new();
    out.insert(0, cpu_secs("self").unwrap_or(0.0));
    for pid in pids {
        if let Some(c) = cpu_secs(&pid.to_string()) {
            out.insert(pid, c);
        }
    }
    Ok(out)
}

/// CPU seconds used between two readings by the processes present in both (a backend that
/// ended in between cannot be read any more; counting it in one reading only would make the
/// difference meaningless).
fn cpu_between(
    before: &std::collections::HashMap<i32, f64>,
    after: &std::collections::HashMap<i32, f64>,
) -> f64 {
    before
        .iter()
        .filter_map(|(pid, b)| after.get(pid).map(|a| (a - b).max(0.0)))
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Lateness in ms (recorded_at − crossed_at) of the threshold events, breaches only or all.
async fn lateness(pool: &PgPool, breaches_only: bool) -> anyhow::Result<Vec<f64>> {
    let mut v: Vec<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM (recorded_at - (data->>'crossed_at')::timestamptz)) * 1000)::float8 \
         FROM events WHERE event_type = ANY($1)",
    )
    .bind(if breaches_only {
        vec!["SlaBreached"]
    } else {
        vec!["SlaBreached", "SlaWarningIssued"]
    })
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|x: Option<f64>| x.unwrap_or(f64::NAN))
    .collect();
    v.sort_by(f64::total_cmp);
    Ok(v)
}

/// Runs `bench sla` on the scratch database.
pub async fn bench_sla(pool: &PgPool, config: &Config, a: SlaArgs) -> anyhow::Result<()> {
    let sys = system_db(config, 24).await?;
    let store = PgEventStore::new(sys.pool.clone(), Upcasters::new());
    let tenant = TenantId::new();
    let reporter = UserId::new();
    let rules = Arc::new(rules());

    // 1. The open incidents, far from due.
    println!(
        "populating {} open incidents (low priority: 8 h / 72 h) …",
        a.incidents
    );
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..a.writers.max(1) as u64 {
        let (store, rules, done) = (store.clone(), rules.clone(), done.clone());
        let (n, step) = (a.incidents, a.writers.max(1) as u64);
        tasks.push(tokio::spawn(async move {
            let mut seq = w + 1;
            while seq <= n {
                append_incident(&store, tenant, reporter, seq, Priority::Low, &rules).await?;
                done.fetch_add(1, Ordering::Relaxed);
                seq += step;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!(
        "  appended at {:.0} incidents/s",
        a.incidents as f64 / started.elapsed().as_secs_f64()
    );
    let runtime = ProjectorRuntime::new(
        store.clone(),
        vec![Arc::new(SlaTimerProjection)],
        RuntimeConfig::default(),
    );
    let out = runtime
        .catch_up(&SlaTimerProjection)
        .await
        .map_err(anyhow::Error::msg)?;
    let deadlines: i64 = sqlx::query_scalar("SELECT count(*) FROM sla_deadlines")
        .fetch_one(pool)
        .await?;
    println!(
        "  sla_timers projection: {} events in {:.1} s = {:.0} events/s; {deadlines} deadline rows",
        out.events,
        out.elapsed.as_secs_f64(),
        out.events as f64 / out.elapsed.as_secs_f64()
    );

    // Baseline: raw single-event appends (what recording one threshold costs at least).
    let mut raw = Vec::new();
    let stream = StreamId::new();
    for v in 0..200i64 {
        let t = Instant::now();
        let expected = if v == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(v)
        };
        store
            .append(
                tenant,
                &StreamRef::new("bench", stream),
                expected,
                vec![NewEvent::new("BenchTick", 1, serde_json::json!({"v": v}))],
                &metadata(),
                None,
            )
            .await?;
        raw.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    raw.sort_by(f64::total_cmp);

    // 2. Projection + scheduler running; hot incidents arrive.
    let handle = runtime.spawn();
    let sched_config = SchedulerConfig::default();
    let poll_ms = sched_config.poll.as_millis();
    let scheduler = SlaScheduler::new(
        sys.pool.clone(),
        store.clone(),
        Arc::new(SystemClock),
        SlaRulesCache::default(),
        sched_config,
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let sched_task = tokio::spawn(scheduler.run(stop.clone()));
    println!(
        "{} critical incidents arrive over {} s (response 1 min, resolution 2 min: 8 thresholds each) …",
        a.hot, a.arrival_secs
    );
    let gap = Duration::from_secs_f64(a.arrival_secs as f64 / a.hot.max(1) as f64);
    let arrivals = Instant::now();
    for i in 0..a.hot {
        append_incident(
            &store,
            tenant,
            reporter,
            a.incidents + 1 + i,
            Priority::Critical,
            &rules,
        )
        .await?;
        let next = gap.mul_f64((i + 1) as f64);
        if let Some(wait) = next.checked_sub(arrivals.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    let expected = a.hot * 8;
    let give_up = Instant::now() + Duration::from_secs(180);
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE event_type IN ('SlaBreached', 'SlaWarningIssued')",
        )
        .fetch_one(pool)
        .await?;
        if n as u64 >= expected || Instant::now() > give_up {
            println!("  {n} of {expected} thresholds recorded");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let breaches = lateness(pool, true).await?;
    let all = lateness(pool, false).await?;
    let dup: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT stream_id, data->>'metric', data->>'cycle', \
         coalesce(data->>'threshold', '100') FROM events \
         WHERE event_type IN ('SlaBreached', 'SlaWarningIssued') GROUP BY 1, 2, 3, 4 \
         HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await?;

    // 3. Idle: nothing due; the projector stopped; the scheduler keeps sweeping.
    handle.shutdown().await;
    // Right after the load the process still works off what the load left (measured: a few
    // CPU-seconds that decay within ~30 s at 100,000 incidents); shown in 5 s windows, then
    // the steady idle cost is measured.
    let mut settling = Vec::new();
    for _ in 0..a.settle_secs.div_ceil(5) {
        let c0 = cpu_of_us_and_backends(pool).await?;
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let c1 = cpu_of_us_and_backends(pool).await?;
        settling.push(cpu_between(&c0, &c1) / t0.elapsed().as_secs_f64() * 100.0);
    }
    let before = cpu_of_us_and_backends(pool).await?;
    let idle_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.idle_secs)).await;
    let after = cpu_of_us_and_backends(pool).await?;
    let idle_share = cpu_between(&before, &after) / idle_started.elapsed().as_secs_f64() * 100.0;
    stop.cancel();
    let _ = sched_task.await;

    println!();
    println!(
        "{}{:>10} {:>10} {:>10} {:>8}",
        pad("lateness (ms)", 44),
        "p50",
        "p99",
        "max",
        "n"
    );
    let row = |name: &str, v: &[f64]| {
        println!(
            "{}{:>10.1} {:>10.1} {:>10.1} {:>8}",
            pad(name, 44),
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN),
            v.len()
        );
    };
    row("breaches (SlaBreached)", &breaches);
    row("all thresholds", &all);
    row("baseline: raw single-event append", &raw);
    println!(
        "{}{poll_ms:>10}",
        pad("baseline: sweep interval (lateness floor)", 44)
    );
    println!("duplicate threshold events: {dup}");
    println!();
    let p99 = percentile(&breaches, 0.99);
    println!(
        "breach lateness p99 {p99:.0} ms with {} open incidents (target < 1000 ms) {}",
        a.incidents + a.hot,
        verdict(p99 < 1000.0 && dup == 0 && !breaches.is_empty())
    );
    println!(
        "after the load, 5 s windows: {} (% of one core)",
        settling
            .iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "idle cost {idle_share:.2} % of one core (scheduler process + its backends, {} s; target < 5 %) {}",
        a.idle_secs,
        verdict(idle_share < 5.0)
    );
    sys.pool.close().await;
    Ok(())
}
