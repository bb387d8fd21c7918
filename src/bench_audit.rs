//! `eventdesk bench audit`: `audit verify` and `audit export` over a large tenant log.
//!
//! 1. Populates `--events` events of one tenant: incident streams of `--per-stream` events
//!    (an `IncidentCreated` and work notes, decided by the domain as the command layer does),
//!    appended by concurrent writers.
//! 2. Baseline, same run: a raw scan of the same rows in the verifier's order
//!    (`ORDER BY tenant_id, stream_id, version`), every column fetched and discarded.
//! 3. `eventdesk audit verify --tenant T --json`, `audit export --format jsonl` and
//!    `audit verify --file` as child processes (this binary), each timed, with its peak RSS
//!    (VmHWM sampled from `/proc` until it exits).
//!
//! Targets (issue #6): verify ≥ 100,000 events/s; export of 1,000,000 events under 100 MB RSS.

use crate::bench::{metadata, pad, verdict};
use anyhow::{Context, anyhow, bail};
use chrono::Utc;
use clap::Args;
use eventdesk_api::Config;
use eventdesk_commands::execute::encode;
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand};
use eventdesk_domain::values::{
    Description, Impact, IncidentNumber, Title, Urgency, WorkNoteBody, WorkNoteType,
};
use eventdesk_domain::{
    Actor, Aggregate, IncidentId, PriorityMatrix, StreamId, TenantId, UserId, WorkNoteId,
};
use eventdesk_store::{EventStore, ExpectedVersion, PgEventStore, StreamRef, Upcasters};
use futures::TryStreamExt;
use sqlx::PgPool;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `bench audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Events in the tenant's log.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per stream (an incident and its work notes).
    #[arg(long, default_value_t = 10)]
    per_stream: u64,
    /// Concurrent writers while populating.
    #[arg(long, default_value_t = 8)]
    writers: u64,
    /// Keep the scratch database.
    #[arg(long)]
    pub keep: bool,
}

/// The events of one incident stream: created, then work notes.
fn stream_events(
    seq: u64,
    per_stream: u64,
    reporter: UserId,
) -> anyhow::Result<(IncidentId, Vec<eventdesk_store::NewEvent>)> {
    let id = IncidentId::new();
    let at = Utc::now();
    let actor = Actor::User(reporter);
    let mut agg = IncidentAggregate::default();
    let mut all = Vec::new();
    let create = IncidentCommand::Create {
        id,
        number: IncidentNumber::from_sequence(seq)?,
        title: Title::parse(format!("Mail relay {seq} rejects outbound messages"))?,
        description: Description::parse(
            "Users report bounces with 550 5.7.1 since this morning; the queue holds about \
             two thousand messages and grows.",
        )?,
        impact: Impact::Medium,
        urgency: Urgency::High,
        priority: None,
        matrix: PriorityMatrix::default(),
        category_id: None,
        team_id: None,
        assignee_id: None,
        reporter_id: reporter,
        ci_id: None,
        actor,
    };
    let mut cmds = vec![create];
    for n in 1..per_stream {
        cmds.push(IncidentCommand::AddWorkNote {
            note_id: WorkNoteId::new(),
            body: WorkNoteBody::parse(format!(
                "Checked the relay again (round {n}): the reputation block list still lists \
                 the outbound address; ticket with the provider updated."
            ))?,
            note_type: WorkNoteType::WorkNote,
            is_public: n % 3 == 0,
            by_agent: true,
            author: actor,
        });
    }
    for cmd in cmds {
        let events = agg
            .decide(cmd, at)
            .map_err(|e| anyhow!("incident {seq} rejected: {e}"))?;
        for e in &events {
            agg.evolve(e);
        }
        all.extend(events);
    }
    Ok((id, encode(&all).map_err(anyhow::Error::msg)?))
}

async fn populate(
    pool: &PgPool,
    tenant: TenantId,
    streams: u64,
    per_stream: u64,
    writers: u64,
) -> anyhow::Result<Duration> {
    let store = PgEventStore::new(pool.clone(), Upcasters::new());
    let done = Arc::new(AtomicU64::new(0));
    let reporter = UserId::new();
    let started = Instant::now();
    let tasks: Vec<_> = (1..=writers.max(1))
        .map(|first| {
            let (store, done) = (store.clone(), done.clone());
            tokio::spawn(async move {
                let meta = metadata();
                let mut seq = first;
                while seq <= streams {
                    let (id, events) = stream_events(seq, per_stream, reporter)?;
                    store
                        .append(
                            tenant,
                            &StreamRef::new(IncidentAggregate::STREAM_TYPE, StreamId(id.0)),
                            ExpectedVersion::NoStream,
                            events,
                            &meta,
                            None,
                        )
                        .await?;
                    done.fetch_add(1, Ordering::Relaxed);
                    seq += writers.max(1);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let d = done.load(Ordering::Relaxed);
                println!(
                    "  … {} / {} events ({:.0}/s)",
                    d * per_stream,
                    streams * per_stream,
                    (d * per_stream) as f64 / started.elapsed().as_secs_f64()
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
    Ok(started.elapsed())
}

/// A child run of this binary: wall time, peak RSS, stdout.
struct ChildRun {
    seconds: f64,
    peak_rss: u64,
    stdout: String,
}

fn run_child(database_url: &str, args: &[&str]) -> anyhow::Result<ChildRun> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let out_path = std::env::temp_dir().join(format!(
        "eventdesk-bench-audit-{}.out",
        uuid::Uuid::now_v7().simple()
    ));
    let out_file = std::fs::File::create(&out_path)?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdout(out_file)
        .stderr(Stdio::null())
        .spawn()
        .context("starting the child")?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb * 1024);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    if !status.success() {
        bail!("`eventdesk {}` failed ({status}): {stdout}", args.join(" "));
    }
    Ok(ChildRun {
        seconds,
        peak_rss: peak,
        stdout,
    })
}

/// Runs `bench audit` against the scratch database `pool` (whose URL `scratch` holds).
pub async fn bench_audit(pool: &PgPool, scratch: &Config, a: AuditArgs) -> anyhow::Result<()> {
    let per_stream = a.per_stream.max(1);
    let streams = a.events.div_ceil(per_stream);
    let tenant = TenantId::new();
    println!(
        "populating {} events ({streams} incident streams × {per_stream}), {} writers …",
        streams * per_stream,
        a.writers
    );
    let took = populate(pool, tenant, streams, per_stream, a.writers).await?;
    // The domain adds events of its own (a public note by an agent is also the response).
    let total = u64::try_from(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE tenant_id = $1")
            .bind(tenant.0)
            .fetch_one(pool)
            .await?,
    )?;
    println!(
        "populated in {:.1} s ({:.0} events/s)",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
    sqlx::query("VACUUM ANALYZE events").execute(pool).await?;

    // Baseline: the same rows, in the verifier's order, fetched and dropped.
    let started = Instant::now();
    let mut rows = sqlx::query(
        "SELECT tenant_id, stream_type, stream_id, version, event_id, event_type, \
         schema_version, data, metadata, recorded_at, hash, global_position, transaction_id::text \
         FROM events WHERE tenant_id = $1 ORDER BY tenant_id, stream_id, version",
    )
    .bind(tenant.0)
    .fetch(pool);
    let mut scanned = 0u64;
    while rows.try_next().await?.is_some() {
        scanned += 1;
    }
    drop(rows);
    let raw_secs = started.elapsed().as_secs_f64();

    let url = scratch.database_url.expose().to_owned();
    let tenant_s = tenant.0.to_string();
    let verify = run_child(&url, &["audit", "verify", "--tenant", &tenant_s, "--json"])?;
    let report: serde_json::Value = serde_json::from_str(verify.stdout.trim())
        .with_context(|| format!("verify report: {}", verify.stdout))?;
    if report["ok"] != true || report["events"].as_u64() != Some(total) {
        bail!("verify did not pass over {total} events: {report}");
    }
    let file = std::env::temp_dir().join(format!("eventdesk-bench-{}.jsonl", tenant.0));
    let file_s = file.display().to_string();
    let export = run_child(
        &url,
        &[
            "audit", "export", "--tenant", &tenant_s, "--format", "jsonl", "--out", &file_s,
        ],
    )?;
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let offline = run_child(&url, &["audit", "verify", "--file", &file_s, "--json"]);
    let _ = std::fs::remove_file(&file);
    let offline = offline?;

    let mb = |b: u64| b as f64 / 1e6;
    let rate = |s: f64| total as f64 / s.max(1e-9);
    println!();
    println!(
        "{} {:>10} {:>12} {:>12}",
        pad("step (one tenant, same run)", 46),
        "seconds",
        "events/s",
        "peak RSS"
    );
    println!(
        "{} {:>10.2} {:>12.0} {:>12}",
        pad("raw: SELECT * … ORDER BY stream, version", 46),
        raw_secs,
        scanned as f64 / raw_secs.max(1e-9),
        "-"
    );
    let verify_rate = report["events_per_second"].as_f64().unwrap_or(0.0);
    println!(
        "{} {:>10.2} {:>12.0} {:>9.1} MB  (in-process rate {:.0}/s) {}",
        pad("audit verify --tenant (chains, decode, ckpts)", 46),
        verify.seconds,
        rate(verify.seconds),
        mb(verify.peak_rss),
        verify_rate,
        verdict(rate(verify.seconds) >= 100_000.0)
    );
    println!(
        "{} {:>10.2} {:>12.0} {:>9.1} MB  ({:.0} MB written) {}",
        pad("audit export --format jsonl", 46),
        export.seconds,
        rate(export.seconds),
        mb(export.peak_rss),
        mb(size),
        verdict(export.peak_rss < 100_000_000)
    );
    println!(
        "{} {:>10.2} {:>12.0} {:>9.1} MB",
        pad("audit verify --file (offline)", 46),
        offline.seconds,
        rate(offline.seconds),
        mb(offline.peak_rss),
    );
    println!(
        "\nverify vs raw scan: {:.2}× the raw time. Targets: verify ≥ 100,000 events/s (wall \
         time of the whole command, connection included); export RSS < 100 MB.",
        verify.seconds / raw_secs.max(1e-9)
    );
    Ok(())
}
