//! `eventdesk projections …`: the operator's view of the projector runtime (issue #6).
//!
//! **Owns:** `projections status` (per projection: version, state, position, lag in events and
//! milliseconds, open dead letters, last error), `projections dead-letters` (list, and
//! replay one or all through the projection's own `apply` once the cause is fixed) and
//! `projections rebuild NAME|--all` (build beside the live read model, catch up, swap; a
//! progress bar on stderr; Ctrl-C/SIGTERM stops between batches and the next run resumes).
//! Tables on stdout by default, JSON with `--json`; failures exit non-zero.
//!
//! **Must not:** hold projector logic: the status query, the retry and the rebuild live in the
//! `eventdesk-projections` crate; this module parses arguments and prints.

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use eventdesk_api::Config;
use eventdesk_projections::dead_letters::{
    DeadLetter, RetryOutcome, list_dead_letters, retry_all, retry_dead_letter,
};
use eventdesk_projections::rebuild::{
    RebuildEvent, RebuildOptions, RebuildOutcome, RebuildPhase, rebuild,
};
use eventdesk_projections::{Projection, ProjectionStatus, projection_status};
use eventdesk_store::subscription::StopToken;
use eventdesk_store::{Db, PgEventStore, Upcasters};
use std::io::Write;
use std::sync::Arc;

/// `eventdesk projections …`.
#[derive(Subcommand, Debug)]
pub enum ProjectionsCommand {
    /// Per projection: version, state (running, degraded, rebuilding), position, lag in events
    /// and milliseconds, open dead letters and the last error.
    Status(StatusArgs),
    /// List dead letters, or replay them (`--retry ID` or `--all`) once the cause is fixed.
    DeadLetters(DeadLetterArgs),
    /// Build a projection (or `--all`) again from zero beside the live one, catch up, swap it
    /// in atomically. Interrupted (Ctrl-C, SIGTERM, `--stop-after`), the next run resumes.
    Rebuild(RebuildArgs),
}

/// `projections rebuild`.
#[derive(Args, Debug)]
pub struct RebuildArgs {
    /// The projection to rebuild (names as in `projections status`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    name: Option<String>,
    /// Rebuild every projection, one after the other.
    #[arg(long)]
    all: bool,
    /// Events per batch of the bulk phase.
    #[arg(long, default_value_t = 10_000)]
    batch: i64,
    /// Stop (resumably) once this run has applied at least this many events.
    #[arg(long)]
    stop_after: Option<u64>,
    /// Throw away an interrupted rebuild and start again from zero.
    #[arg(long)]
    restart: bool,
    /// How long the swap waits for a lock (milliseconds) before it backs off and retries.
    #[arg(long, default_value_t = 300)]
    lock_timeout_ms: u64,
    /// Parallel workers of the bulk phase (projections whose streams are independent).
    #[arg(long, default_value_t = RebuildOptions::default().partitions)]
    partitions: usize,
    /// Connections of the index phase (different tables' indexes are built at once).
    #[arg(long, default_value_t = RebuildOptions::default().index_connections)]
    index_connections: usize,
    /// `maintenance_work_mem` of the index builds.
    #[arg(long, default_value_t = RebuildOptions::default().maintenance_work_mem)]
    maintenance_work_mem: String,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// A JSON array of the outcomes on stdout instead of a summary.
    #[arg(long)]
    json: bool,
}

/// `projections status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// A JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// `projections dead-letters`.
#[derive(Args, Debug)]
pub struct DeadLetterArgs {
    /// Only this projection's dead letters.
    #[arg(long)]
    projection: Option<String>,
    /// Replay this dead letter.
    #[arg(long, conflicts_with = "all")]
    retry: Option<i64>,
    /// Replay every open dead letter (of `--projection`, or of every projection), oldest first.
    #[arg(long)]
    all: bool,
    /// When listing, include the dead letters already replayed.
    #[arg(long)]
    include_resolved: bool,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `projections …`.
pub async fn run(command: ProjectionsCommand, config: &Config) -> anyhow::Result<()> {
    let db = connect(config).await?;
    let r = match command {
        ProjectionsCommand::Status(a) => status(&db, a).await,
        ProjectionsCommand::DeadLetters(a) => dead_letters(&db, a).await,
        ProjectionsCommand::Rebuild(a) => {
            db.pool.close().await;
            return rebuild_cmd(config, a).await;
        }
    };
    db.pool.close().await;
    r
}

/// The system pool: the projector's role (BYPASSRLS, writes read models).
async fn connect(config: &Config) -> anyhow::Result<Db> {
    let mut cfg = config.system_db();
    cfg.max_connections = 4;
    Db::connect(cfg)
        .await
        .context("connecting to the database (system role)")
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// Writes `rows` under `header` as left-aligned columns (the last column is not padded).
fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(c.chars().count()) + 2;
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, &mut header.iter().copied())?;
    for r in rows {
        line(out, &mut r.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Prints to stdout; a closed pipe (`| head`) ends quietly.
fn print(f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match f(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the output"),
    }
}

fn json_out(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let s = serde_json::to_string_pretty(v)?;
    print(|out| writeln!(out, "{s}"))
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One line, at most `max` characters.
fn short(s: &str, max: usize) -> String {
    let one = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= max {
        one
    } else {
        let mut t: String = one.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

// ---------------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------------

async fn status(db: &Db, a: StatusArgs) -> anyhow::Result<()> {
    let rows = projection_status(&db.pool)
        .await
        .context("reading projection status")?;
    if a.json {
        return json_out(&rows);
    }
    let cells: Vec<Vec<String>> = rows.iter().map(status_row).collect();
    print(|out| {
        table(
            out,
            &[
                "PROJECTION",
                "VERSION",
                "STATE",
                "POSITION",
                "LAG (EVENTS)",
                "LAG (MS)",
                "DEAD LETTERS",
                "REBUILD",
                "LAST ERROR",
            ],
            &cells,
        )
    })
}

fn status_row(s: &ProjectionStatus) -> Vec<String> {
    vec![
        s.name.clone(),
        s.version.to_string(),
        serde_json::to_value(s.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        s.position.to_string(),
        s.lag_events.to_string(),
        s.lag_ms.to_string(),
        s.dead_letters.to_string(),
        s.rebuild
            .as_ref()
            .map(|r| {
                format!(
                    "{} at {} (lag {}, {} dead letters)",
                    r.phase, r.position, r.lag_events, r.dead_letters
                )
            })
            .unwrap_or_else(|| "-".into()),
        s.last_error
            .as_deref()
            .map(|e| short(e, 80))
            .unwrap_or_default(),
    ]
}

// ---------------------------------------------------------------------------------------------
// dead-letters
// ---------------------------------------------------------------------------------------------

async fn dead_letters(db: &Db, a: DeadLetterArgs) -> anyhow::Result<()> {
    if a.retry.is_none() && !a.all {
        let rows = list_dead_letters(&db.pool, a.projection.as_deref(), a.include_resolved)
            .await
            .context("reading dead letters")?;
        if a.json {
            return json_out(&rows);
        }
        let cells: Vec<Vec<String>> = rows.iter().map(dead_letter_row).collect();
        return print(|out| {
            table(
                out,
                &[
                    "ID",
                    "PROJECTION",
                    "POSITION",
                    "EVENT TYPE",
                    "EVENT ID",
                    "TENANT",
                    "ATTEMPTS",
                    "CREATED",
                    "RESOLVED",
                    "ERROR",
                ],
                &cells,
            )
        });
    }
    let store = PgEventStore::new(db.pool.clone(), Upcasters::new());
    let projections = eventdesk_api::app::projections();
    let outcomes = match a.retry {
        Some(id) => {
            if let Some(p) = &a.projection
                && !list_dead_letters(&db.pool, Some(p), true)
                    .await?
                    .iter()
                    .any(|d| d.id == id)
            {
                bail!("projection {p} has no dead letter {id}");
            }
            vec![retry_dead_letter(&store, &projections, id).await?]
        }
        None => retry_all(&store, &projections, a.projection.as_deref()).await?,
    };
    for o in outcomes.iter().filter(|o| o.applied && o.later_applied > 0) {
        eprintln!(
            "warning: dead letter {} ({}): {} later event(s) of its stream were applied before \
             this retry; a per-stream read model ignores an older event — run \
             `eventdesk projections rebuild {}` to include it",
            o.id, o.projection, o.later_applied, o.projection
        );
    }
    if a.json {
        json_out(&outcomes)?;
    } else {
        let cells: Vec<Vec<String>> = outcomes.iter().map(outcome_row).collect();
        print(|out| {
            table(
                out,
                &[
                    "ID",
                    "PROJECTION",
                    "POSITION",
                    "RESULT",
                    "PROJECTION STATE",
                    "ERROR",
                ],
                &cells,
            )?;
            if outcomes.is_empty() {
                writeln!(out, "(no open dead letters)")?;
            }
            Ok(())
        })?;
    }
    let failed = outcomes.iter().filter(|o| !o.applied).count();
    if failed > 0 {
        bail!("{failed} of {} dead letter(s) still fail", outcomes.len());
    }
    Ok(())
}

fn dead_letter_row(d: &DeadLetter) -> Vec<String> {
    vec![
        d.id.to_string(),
        format!("{} v{}", d.projection, d.projection_version),
        d.global_position.to_string(),
        d.event_type.clone(),
        d.event_id.to_string(),
        d.tenant_id.to_string(),
        d.attempts.to_string(),
        ts(d.created_at),
        d.resolved_at.map(ts).unwrap_or_else(|| "-".into()),
        short(&d.error, 80),
    ]
}

fn outcome_row(o: &RetryOutcome) -> Vec<String> {
    vec![
        o.id.to_string(),
        o.projection.clone(),
        o.global_position.to_string(),
        if o.applied { "applied" } else { "failed" }.into(),
        if o.projection_recovered {
            "running"
        } else {
            "-"
        }
        .into(),
        o.error.as_deref().map(|e| short(e, 80)).unwrap_or_default(),
    ]
}

// ---------------------------------------------------------------------------------------------
// rebuild
// ---------------------------------------------------------------------------------------------

async fn rebuild_cmd(config: &Config, a: RebuildArgs) -> anyhow::Result<()> {
    let all = eventdesk_api::app::projections();
    let chosen: Vec<Arc<dyn Projection>> = match &a.name {
        Some(n) => match all.iter().find(|p| p.name() == n.as_str()) {
            Some(p) => vec![p.clone()],
            None => bail!(
                "no projection {n}; known: {}",
                all.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            ),
        },
        None => all,
    };
    // The rebuild creates, drops and moves tables: it runs as the login user (the owner of
    // the read models, as `migrate` does), not as the application or system role.
    let mut cfg = config.db();
    cfg.app_role = None;
    // The bulk workers, the reader, the checkpoint; the index phase opens its own.
    cfg.max_connections = u32::try_from(a.partitions.max(1))
        .unwrap_or(u32::MAX)
        .saturating_add(4);
    let db = Db::connect(cfg)
        .await
        .context("connecting to the database (login user)")?;
    let store = PgEventStore::new(db.pool.clone(), Upcasters::new());
    let opts = RebuildOptions {
        bulk_batch: a.batch.max(1),
        stop_after: a.stop_after,
        restart: a.restart,
        lock_timeout: std::time::Duration::from_millis(a.lock_timeout_ms.max(1)),
        partitions: a.partitions.max(1),
        index_connections: a.index_connections.max(1),
        maintenance_work_mem: a.maintenance_work_mem.clone(),
        ..RebuildOptions::default()
    };
    let stop = StopToken::new();
    let signals = tokio::spawn(stop_on_signal(stop.clone()));
    let mut outcomes: Vec<RebuildOutcome> = Vec::new();
    let mut failure = None;
    for p in &chosen {
        let bar = progress_bar(p.name(), a.no_progress);
        let report = |e: RebuildEvent| on_event(&bar, e);
        let r = rebuild(&store, p.clone(), &opts, &stop, &report).await;
        bar.finish_and_clear();
        match r {
            Ok(o) => {
                let completed = o.completed;
                if !a.json {
                    print(|out| writeln!(out, "{}", summary(&o)))?;
                }
                outcomes.push(o);
                if !completed {
                    break;
                }
            }
            Err(e) => {
                failure = Some(anyhow::Error::new(e).context(format!("rebuilding {}", p.name())));
                break;
            }
        }
    }
    signals.abort();
    db.pool.close().await;
    if a.json {
        json_out(&outcomes)?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if stop.is_cancelled() {
        bail!("interrupted; run the same command again to resume");
    }
    Ok(())
}

/// Cancels `stop` on Ctrl-C or SIGTERM: the rebuild ends after its current batch, resumable.
async fn stop_on_signal(stop: StopToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("stopping after the current batch…");
    stop.cancel();
}

fn progress_bar(name: &str, hidden: bool) -> indicatif::ProgressBar {
    let bar = if hidden {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
    };
    bar.set_prefix(name.to_owned());
    bar.set_style(spinner_style());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn spinner_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template("{prefix} {spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
}

fn bar_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(
        "{prefix} {msg:9} [{bar:40}] {human_pos}/{human_len} events, {per_sec}, ETA {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}

fn on_event(bar: &indicatif::ProgressBar, e: RebuildEvent) {
    match e {
        RebuildEvent::Phase {
            phase,
            done,
            remaining,
        } => {
            bar.set_message(phase.as_str());
            match (phase, remaining) {
                (RebuildPhase::Bulk | RebuildPhase::CatchUp, Some(r)) => {
                    bar.set_style(bar_style());
                    bar.set_length(done + r);
                    bar.set_position(done);
                    bar.reset_eta();
                }
                _ => {
                    bar.set_style(spinner_style());
                    bar.unset_length();
                }
            }
        }
        RebuildEvent::Applied { events } => {
            // Events that arrived after the phase began lengthen the bar.
            if let Some(len) = bar.length()
                && bar.position() + events > len
            {
                bar.set_length(bar.position() + events);
            }
            bar.inc(events);
        }
        RebuildEvent::Note(n) => {
            tracing::info!(note = %n, "rebuild");
            bar.println(format!("{}: {n}", bar.prefix()));
        }
    }
}

fn rate(events: u64, secs: f64) -> String {
    if secs > 0.0 {
        format!("{:.0} events/s", events as f64 / secs)
    } else {
        "-".into()
    }
}

fn summary(o: &RebuildOutcome) -> String {
    let head = if o.completed {
        format!(
            "{} v{}: swapped in at position {}",
            o.projection, o.version, o.position
        )
    } else {
        format!(
            "{} v{}: stopped at position {} (run again to resume)",
            o.projection, o.version, o.position
        )
    };
    let resumed = if o.resumed {
        format!(", resumed after {} events", o.resumed_at_events)
    } else {
        String::new()
    };
    let mut s = format!(
        "{head} — {} events in {:.2} s ({}){resumed}; bulk {} in {:.2} s ({}), indexes {:.2} s, \
         catch-up {} in {:.2} s",
        o.events,
        o.elapsed_secs,
        rate(o.events, o.elapsed_secs),
        o.bulk_events,
        o.bulk_secs,
        rate(o.bulk_events, o.bulk_secs),
        o.index_secs,
        o.catch_up_events,
        o.catch_up_secs,
    );
    if o.completed {
        s.push_str(&format!(
            ", swap {:.1} ms (tables locked {:.1} ms, {} tail events, attempt {}); {} open dead \
             letters",
            o.swap_ms, o.swap_locked_ms, o.swap_tail_events, o.swap_attempts, o.dead_letters
        ));
    }
    s
}
