//! `projections rebuild`: a projection's read model built again from zero **beside** the live
//! one, while the live one keeps answering, then swapped in atomically (issue #6, ADR 0013).
//!
//! Phases (each resumable: an interrupted run leaves the shadow schema and its checkpoint, and
//! the next run continues from there):
//! 1. **prepare** — a shadow schema `rebuild_<name>` with a copy of each of the projection's
//!    [`tables`](Projection::tables), shaped from the catalog of the live table (columns,
//!    defaults, generated columns, checks, primary and unique keys, row-level security and its
//!    policies, grants, owner), but *without* secondary indexes and triggers; and the rebuild's
//!    checkpoint row in `projection_rebuilds`.
//! 2. **bulk** — the projection's own `apply`, with the search path set to the shadow schema,
//!    from the start of the log to the head, in large batches (each batch and the shadow
//!    checkpoint in one transaction, retries and dead letters as in the live runtime).
//! 3. **index** — the live table's secondary indexes, built with `CREATE INDEX CONCURRENTLY`
//!    (which holds no transaction id, so it does not hold back the horizon — and thus every
//!    live projection — for the length of the build); then, in one transaction, the derived
//!    tables ([`derived_tables`](Projection::derived_tables)) computed set-based and the live
//!    table's triggers created on the shadow tables.
//! 4. **catch-up** — the shadow follows the log with indexes and triggers in place, in normal
//!    batches, up to the head.
//! 5. **swap** — one short transaction: the projection's batch lock exclusively (no live batch
//!    in flight, none starts), the live checkpoint row, the few events committed since the
//!    catch-up applied to the shadow, then the live tables locked, dropped, the shadow tables
//!    moved into `public` (indexes, constraints, policies, grants and triggers go with them,
//!    under their original names), the live checkpoint set to the shadow's, dead letters
//!    reconciled, the rebuild row deleted. Readers wait on the table locks for the few
//!    milliseconds that takes and re-plan against the new tables; the live runner's next batch
//!    sees the moved checkpoint and reloads. Lock waits are bounded (`lock_timeout`); a swap
//!    that cannot get its locks rolls back, catches up again and retries.
//!
//! The rebuild runs as the login user of the database (the owner of the read-model tables,
//! like `migrate`): it creates, drops and moves tables.

use crate::runtime::{
    Projection, ProjectorRuntime, RuntimeConfig, Sink, batch_lock_key, horizon, quote_ident,
    snapshot_edge,
};
use eventdesk_store::subscription::StopToken;
use eventdesk_store::{Checkpoint, EventStore, PgEventStore, RecordedEvent};
use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The schema of the live read models.
pub const HOME: &str = "public";

/// The shadow schema of a rebuild of `projection`.
pub fn shadow_schema(projection: &str) -> String {
    format!("rebuild_{projection}")
}

/// Tuning of a rebuild.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Events per batch of the bulk phase (no secondary indexes, no triggers).
    pub bulk_batch: i64,
    /// Events per batch of the catch-up phase (indexes and triggers in place).
    pub catch_up_batch: i64,
    /// Stop, resumably, once this run has applied at least this many events.
    pub stop_after: Option<u64>,
    /// Stop, resumably, once this run has built this many indexes and keys in the index phase
    /// (a test hook: an index phase interrupted half-way).
    pub stop_after_indexes: Option<usize>,
    /// Throw away an interrupted rebuild and start again from zero.
    pub restart: bool,
    /// How long the swap waits for any one lock before it backs off and tries again.
    pub lock_timeout: Duration,
    /// Swap attempts before giving up (the shadow is kept; run again to retry).
    pub swap_attempts: u32,
    /// Most events the swap transaction applies itself; more, and it catches up first.
    pub swap_tail_max: usize,
    /// `maintenance_work_mem` of the index builds.
    pub maintenance_work_mem: String,
    /// Parallel transactions of the bulk phase, for projections whose streams are independent
    /// ([`Projection::streams_independent`]).
    pub partitions: usize,
    /// Connections of the index phase: the indexes of different tables are built at the same
    /// time (those of one table, one after the other).
    pub index_connections: usize,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            bulk_batch: 10_000,
            catch_up_batch: 2000,
            stop_after: None,
            stop_after_indexes: None,
            restart: false,
            lock_timeout: Duration::from_millis(300),
            swap_attempts: 50,
            swap_tail_max: 5000,
            maintenance_work_mem: "256MB".into(),
            partitions: 2,
            index_connections: 2,
        }
    }
}

/// The phases of a rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RebuildPhase {
    /// Creating (or finding, to resume) the shadow tables.
    Prepare,
    /// Applying the log without secondary indexes and triggers.
    Bulk,
    /// Building the indexes, derived tables and triggers.
    Index,
    /// Following the log with indexes in place.
    CatchUp,
    /// Swapping the shadow tables in.
    Swap,
}

impl RebuildPhase {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepare => "prepare",
            Self::Bulk => "bulk",
            Self::Index => "index",
            Self::CatchUp => "catch_up",
            Self::Swap => "swap",
        }
    }
}

/// What a rebuild reports as it goes (for a progress bar).
#[derive(Debug, Clone)]
pub enum RebuildEvent {
    /// A phase begins. `done`: events the shadow has applied so far (all runs); `remaining`:
    /// events between the shadow's checkpoint and the head, when the phase applies events.
    Phase {
        /// The phase.
        phase: RebuildPhase,
        /// Events applied so far.
        done: u64,
        /// Events still to apply, as far as known.
        remaining: Option<u64>,
    },
    /// A batch was applied to the shadow tables.
    Applied {
        /// Its events.
        events: u64,
    },
    /// Something worth a line (an index built, a swap attempt backing off).
    Note(String),
}

/// The result of one run of [`rebuild`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct RebuildOutcome {
    /// The projection.
    pub projection: String,
    /// Its version.
    pub version: i32,
    /// Whether the new tables were swapped in (false: stopped, resumable).
    pub completed: bool,
    /// Whether this run continued an interrupted rebuild.
    pub resumed: bool,
    /// Events the shadow had applied before this run (0 unless resumed).
    pub resumed_at_events: u64,
    /// Events this run applied.
    pub events: u64,
    /// Global position the shadow reached (the live projection's, once swapped).
    pub position: i64,
    /// Wall time of this run.
    pub elapsed_secs: f64,
    /// Events of the bulk phase (this run).
    pub bulk_events: u64,
    /// Wall time of the bulk phase.
    pub bulk_secs: f64,
    /// Wall time of the index phase (indexes, derived tables, triggers, statistics).
    pub index_secs: f64,
    /// Events of the catch-up phase(s).
    pub catch_up_events: u64,
    /// Wall time of the catch-up phase(s).
    pub catch_up_secs: f64,
    /// Events the swap transaction applied itself.
    pub swap_tail_events: u64,
    /// Duration of the successful swap transaction, in milliseconds.
    pub swap_ms: f64,
    /// Of which the live tables were locked (access exclusive), in milliseconds.
    pub swap_locked_ms: f64,
    /// Swap attempts (1 = first try).
    pub swap_attempts: u32,
    /// Open dead letters of the projection after the swap.
    pub dead_letters: i64,
}

/// Why a rebuild failed (the shadow is kept unless it could not be created).
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The projection declares no tables.
    #[error("projection {0} declares no tables: it cannot be rebuilt beside the live one")]
    NoTables(String),
    /// Another rebuild of the same projection holds the rebuild lock.
    #[error("a rebuild of {0} is already running")]
    AlreadyRunning(String),
    /// The tables use something a rebuild cannot copy, or changed shape meanwhile.
    #[error("{0}")]
    Unsupported(String),
    /// Applying events to the shadow failed beyond the runtime's retries.
    #[error("applying events to the shadow tables: {0}")]
    Apply(String),
    /// The swap never got its locks.
    #[error(
        "the swap did not get its locks in {0} attempts (long transactions on the read \
         models?); the shadow is kept: run the command again"
    )]
    SwapContention(u32),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Rebuilds projection `p` beside the live one and swaps it in (or, when stopped, leaves the
/// shadow to be resumed by the next call). `store` must run as the owner of the read models.
/// `stop` ends the run between batches (resumable).
pub async fn rebuild(
    store: &PgEventStore,
    p: Arc<dyn Projection>,
    opts: &RebuildOptions,
    stop: &StopToken,
    report: &(dyn Fn(RebuildEvent) + Send + Sync),
) -> Result<RebuildOutcome, RebuildError> {
    let name = p.name();
    if p.tables().is_empty() {
        return Err(RebuildError::NoTables(name.to_owned()));
    }
    for ident in std::iter::once(name).chain(p.tables().iter().copied()) {
        if !is_plain_ident(ident) {
            return Err(RebuildError::Unsupported(format!(
                "{ident:?} is not a plain lower-case identifier"
            )));
        }
    }
    // One rebuild per projection at a time: a session lock on a dedicated connection, held
    // for the whole run (and released if the process dies).
    let mut lock = PgConnection::connect_with(&store.pool().connect_options()).await?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(format!("eventdesk:rebuild:{name}"))
        .fetch_one(&mut lock)
        .await?;
    if !got {
        let _ = lock.close().await;
        return Err(RebuildError::AlreadyRunning(name.to_owned()));
    }
    let r = Rebuild {
        store,
        p,
        opts,
        stop,
        report,
        schema: shadow_schema(name),
        applied: AtomicU64::new(0),
        indexes_built: AtomicUsize::new(0),
    }
    .run()
    .await;
    let _ = lock.close().await;
    r
}

struct Rebuild<'a> {
    store: &'a PgEventStore,
    p: Arc<dyn Projection>,
    opts: &'a RebuildOptions,
    stop: &'a StopToken,
    report: &'a (dyn Fn(RebuildEvent) + Send + Sync),
    schema: String,
    /// Events applied by this run (for `stop_after`).
    applied: AtomicU64,
    /// Indexes and keys built by this run (for `stop_after_indexes`).
    indexes_built: AtomicUsize,
}

/// Where the shadow stood when a run began.
struct Prepared {
    phase: RebuildPhase,
    cp: Checkpoint,
    events_processed: u64,
    resumed: bool,
}

enum Swap {
    Done {
        tail: u64,
        position: Checkpoint,
        took: Duration,
        locked: Duration,
        dead_letters: i64,
    },
    Retry(String),
}

impl Rebuild<'_> {
    fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    fn should_stop(&self) -> bool {
        self.stop.is_cancelled()
            || self
                .opts
                .stop_after
                .is_some_and(|n| self.applied.load(Ordering::Relaxed) >= n)
    }

    fn runtime(&self, batch_size: i64) -> ProjectorRuntime {
        ProjectorRuntime::new(
            self.store.clone(),
            vec![],
            RuntimeConfig {
                batch_size,
                ..RuntimeConfig::default()
            },
        )
    }

    async fn run(&self) -> Result<RebuildOutcome, RebuildError> {
        let started = Instant::now();
        let p = self.p.as_ref();
        let mut out = RebuildOutcome {
            projection: p.name().to_owned(),
            version: p.version(),
            ..RebuildOutcome::default()
        };
        (self.report)(RebuildEvent::Phase {
            phase: RebuildPhase::Prepare,
            done: 0,
            remaining: None,
        });
        // The swap moves the live checkpoint: it must exist.
        sqlx::query(
            "INSERT INTO public.projection_checkpoints (name, version) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(p.name())
        .bind(p.version())
        .execute(self.pool())
        .await?;
        drop_retired(self.pool(), p.name()).await?;
        let prepared = self.prepare().await?;
        out.resumed = prepared.resumed;
        out.resumed_at_events = prepared.events_processed;
        out.position = prepared.cp.position;
        let sink = Sink::shadow(p, &self.schema);
        let finish = |mut out: RebuildOutcome, completed: bool| {
            out.completed = completed;
            out.events = self.applied.load(Ordering::Relaxed);
            out.elapsed_secs = started.elapsed().as_secs_f64();
            out
        };

        if prepared.phase == RebuildPhase::Bulk {
            let remaining = count_after(self.pool(), prepared.cp).await?;
            (self.report)(RebuildEvent::Phase {
                phase: RebuildPhase::Bulk,
                done: prepared.events_processed,
                remaining: Some(remaining),
            });
            let run = self
                .apply_until_head(&sink, self.opts.bulk_batch, true)
                .await?;
            out.bulk_events = run.0;
            out.bulk_secs = run.1.as_secs_f64();
            out.position = run.2.position;
            if self.should_stop() {
                return Ok(finish(out, false));
            }
            (self.report)(RebuildEvent::Phase {
                phase: RebuildPhase::Index,
                done: prepared.events_processed + out.bulk_events,
                remaining: None,
            });
            let t = Instant::now();
            if !self.build_indexes().await? {
                out.index_secs = t.elapsed().as_secs_f64();
                return Ok(finish(out, false));
            }
            self.finish_bulk().await?;
            out.index_secs = t.elapsed().as_secs_f64();
        }

        for attempt in 1..=self.opts.swap_attempts.max(1) {
            let cp = self.shadow_checkpoint().await?;
            let (done_before, remaining) = (
                self.shadow_events_processed().await?,
                count_after(self.pool(), cp).await?,
            );
            (self.report)(RebuildEvent::Phase {
                phase: RebuildPhase::CatchUp,
                done: done_before,
                remaining: Some(remaining),
            });
            let run = self
                .apply_until_head(&sink, self.opts.catch_up_batch, false)
                .await?;
            out.catch_up_events += run.0;
            out.catch_up_secs += run.1.as_secs_f64();
            out.position = run.2.position;
            if self.should_stop() {
                return Ok(finish(out, false));
            }
            (self.report)(RebuildEvent::Phase {
                phase: RebuildPhase::Swap,
                done: done_before + run.0,
                remaining: None,
            });
            match self.swap().await? {
                Swap::Done {
                    tail,
                    position,
                    took,
                    locked,
                    dead_letters,
                } => {
                    out.swap_tail_events = tail;
                    out.swap_ms = took.as_secs_f64() * 1000.0;
                    out.swap_locked_ms = locked.as_secs_f64() * 1000.0;
                    out.swap_attempts = attempt;
                    out.position = position.position;
                    out.dead_letters = dead_letters;
                    self.applied.fetch_add(tail, Ordering::Relaxed);
                    return Ok(finish(out, true));
                }
                Swap::Retry(why) => {
                    (self.report)(RebuildEvent::Note(format!(
                        "swap attempt {attempt} backed off: {why}"
                    )));
                    let pause = Duration::from_millis(50 * u64::from(attempt.min(20)));
                    tokio::select! {
                        _ = self.stop.cancelled() => return Ok(finish(out, false)),
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        Err(RebuildError::SwapContention(self.opts.swap_attempts))
    }

    /// Applies the log to the shadow up to the head (as of the call) in batches of `batch`.
    /// Returns (events, wall time, checkpoint reached).
    ///
    /// A reader task reads and decodes the batches ahead (two in flight) while this task
    /// applies them, so decoding and applying run on two cores. With `partitioned` (the bulk
    /// phase) and a projection whose streams are independent, the batches are applied by
    /// [`RebuildOptions::partitions`] workers, each taking its share of the streams
    /// ([`apply_pipelined`](Self::apply_pipelined)).
    async fn apply_until_head(
        &self,
        sink: &Sink,
        batch: i64,
        partitioned: bool,
    ) -> Result<(u64, Duration, Checkpoint), RebuildError> {
        let started = Instant::now();
        let runtime = self.runtime(batch);
        let partitions = if partitioned && self.p.streams_independent() {
            self.opts.partitions.max(1)
        } else {
            1
        };
        let cp = self.shadow_checkpoint().await?;
        let target = snapshot_edge(self.pool()).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<RecordedEvent>, String>>(2);
        let reader = tokio::spawn(read_ahead(self.store.clone(), cp, batch, target, tx));
        let result = if partitions > 1 {
            self.apply_pipelined(&runtime, &mut rx, cp, partitions)
                .await
        } else {
            self.apply_in_order(&runtime, sink, &mut rx, cp).await
        };
        drop(rx);
        reader.abort();
        let (events, cp) = result?;
        Ok((events, started.elapsed(), cp))
    }

    /// Applies the batches from `rx` one after the other, each in one transaction with the
    /// shadow checkpoint (the live runtime's code path). Returns (events, checkpoint reached).
    async fn apply_in_order(
        &self,
        runtime: &ProjectorRuntime,
        sink: &Sink,
        rx: &mut tokio::sync::mpsc::Receiver<Result<Vec<RecordedEvent>, String>>,
        mut cp: Checkpoint,
    ) -> Result<(u64, Checkpoint), RebuildError> {
        let mut events = 0u64;
        while !self.should_stop() {
            let Some(next) = rx.recv().await else {
                break; // caught up
            };
            let batch = next.map_err(RebuildError::Apply)?;
            let Some(last) = batch.last().map(RecordedEvent::checkpoint) else {
                continue;
            };
            let n = batch.len() as u64;
            match runtime.process(self.p.as_ref(), sink, cp, &batch).await {
                Ok(done) if done == last => {}
                Ok(other) => {
                    return Err(RebuildError::Apply(format!(
                        "the shadow checkpoint ended at {other:?}, not {last:?}"
                    )));
                }
                Err(()) => {
                    return Err(RebuildError::Apply(
                        "the shadow checkpoint was moved by someone else".into(),
                    ));
                }
            }
            cp = last;
            events += n;
            self.applied.fetch_add(n, Ordering::Relaxed);
            (self.report)(RebuildEvent::Applied { events: n });
        }
        Ok((events, cp))
    }

    /// The bulk phase of a projection whose streams are independent: `partitions` workers,
    /// each with its share of the streams of every batch (by stream id), apply their parts in
    /// log order, each part in one transaction (retries, isolation and dead letters as in the
    /// live runtime); the shadow checkpoint moves past a batch once every part of it, and of
    /// the batches before it, has committed. A worker goes on with its part of the next
    /// batch while the others still apply theirs, so no core waits for a batch's slowest part.
    /// A crash replays the batches after the checkpoint, which such a projection ignores where
    /// they were applied already. Returns (events, checkpoint reached).
    async fn apply_pipelined(
        &self,
        runtime: &ProjectorRuntime,
        rx: &mut tokio::sync::mpsc::Receiver<Result<Vec<RecordedEvent>, String>>,
        mut cp: Checkpoint,
        partitions: usize,
    ) -> Result<(u64, Checkpoint), RebuildError> {
        /// A batch handed to the workers, not yet behind the checkpoint.
        struct InFlight {
            seq: u64,
            last: RecordedEvent,
            events: u64,
            parts_pending: usize,
        }
        let sink = Sink::shadow_partition(self.p.as_ref(), &self.schema);
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, bool)>();
        let mut workers = Vec::with_capacity(partitions);
        let mut tasks = Vec::with_capacity(partitions);
        for _ in 0..partitions {
            let (work_tx, mut work_rx) =
                tokio::sync::mpsc::channel::<(u64, Checkpoint, Vec<RecordedEvent>)>(1);
            let (runtime, p, sink, done_tx) = (
                runtime.clone(),
                self.p.clone(),
                sink.clone(),
                done_tx.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while let Some((seq, cp, part)) = work_rx.recv().await {
                    let ok = runtime.process(p.as_ref(), &sink, cp, &part).await.is_ok();
                    if done_tx.send((seq, ok)).is_err() {
                        return;
                    }
                }
            }));
            workers.push(work_tx);
        }
        drop(done_tx);
        let mut inflight: std::collections::VecDeque<InFlight> = Default::default();
        let (mut seq, mut events, mut read_all) = (0u64, 0u64, false);
        let result = 'run: loop {
            // Batches whose parts all committed, in order: the checkpoint moves past them.
            while inflight.front().is_some_and(|b| b.parts_pending == 0) {
                let Some(b) = inflight.pop_front() else { break };
                if let Err(e) = self.move_checkpoint(&sink, cp, &b.last, b.events).await {
                    break 'run Err(e);
                }
                cp = b.last.checkpoint();
                events += b.events;
                self.applied.fetch_add(b.events, Ordering::Relaxed);
                (self.report)(RebuildEvent::Applied { events: b.events });
            }
            let dispatch = !read_all && !self.should_stop() && inflight.len() < 3;
            if !dispatch && inflight.is_empty() {
                break Ok(());
            }
            tokio::select! {
                next = rx.recv(), if dispatch => match next {
                    None => read_all = true,
                    Some(Err(e)) => break Err(RebuildError::Apply(e)),
                    Some(Ok(batch)) => {
                        let Some(last) = batch.last().cloned() else { continue };
                        let start = inflight.back().map_or(cp, |b| b.last.checkpoint());
                        let n = batch.len() as u64;
                        let mut parts: Vec<Vec<RecordedEvent>> =
                            (0..partitions).map(|_| Vec::new()).collect();
                        for e in batch {
                            let i = (e.stream_id.0.as_u128() % partitions as u128) as usize;
                            parts[i].push(e);
                        }
                        seq += 1;
                        let mut pending = 0;
                        for (worker, part) in workers.iter().zip(parts) {
                            if part.is_empty() {
                                continue;
                            }
                            pending += 1;
                            if worker.send((seq, start, part)).await.is_err() {
                                break;
                            }
                        }
                        inflight.push_back(InFlight { seq, last, events: n, parts_pending: pending });
                    }
                },
                done = done_rx.recv() => match done {
                    Some((s, true)) => {
                        if let Some(b) = inflight.iter_mut().find(|b| b.seq == s) {
                            b.parts_pending = b.parts_pending.saturating_sub(1);
                        }
                    }
                    Some((_, false)) => {
                        break Err(RebuildError::Apply(
                            "a partition of a batch did not apply".into(),
                        ));
                    }
                    None => break Err(RebuildError::Apply("the bulk workers ended".into())),
                },
            }
        };
        drop(workers);
        for t in tasks {
            if result.is_err() {
                t.abort();
            }
            let _ = t.await;
        }
        result.map(|()| (events, cp))
    }

    /// Moves the shadow checkpoint from `cp` past `last` (a batch of `n` events whose parts
    /// have all committed), with its dead-letter state.
    async fn move_checkpoint(
        &self,
        sink: &Sink,
        cp: Checkpoint,
        last: &RecordedEvent,
        n: u64,
    ) -> Result<(), RebuildError> {
        let next = last.checkpoint();
        // Like the partitions' commits (and every projection commit, ADR 0005), this one need
        // not wait for the WAL flush: WAL is flushed in order, so if it survives a crash, the
        // partitions committed before it survive too; if it is lost, the batch is applied
        // again, which changes nothing.
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT set_config('synchronous_commit', 'off', true)")
            .execute(&mut *tx)
            .await?;
        let moved = sqlx::query(
            "UPDATE public.projection_rebuilds SET last_txid = $2::int8::text::xid8, \
             last_position = $3, last_recorded_at = $4, \
             events_processed = events_processed + $5, updated_at = now(), \
             state = CASE WHEN EXISTS (SELECT 1 FROM public.projection_dead_letters \
                 WHERE projection = $6 AND projection_version = version AND resolved_at IS NULL) \
               THEN 'degraded' ELSE state END, \
             last_error = COALESCE((SELECT error FROM public.projection_dead_letters \
                 WHERE projection = $6 AND projection_version = version \
                 ORDER BY id DESC LIMIT 1), last_error) \
             WHERE name = $1 AND last_txid = $7::int8::text::xid8 AND last_position = $8",
        )
        .bind(self.p.name())
        .bind(next.transaction_id as i64)
        .bind(next.position)
        .bind(last.recorded_at)
        .bind(n as i64)
        .bind(sink.dead_letter_name())
        .bind(cp.transaction_id as i64)
        .bind(cp.position)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Err(RebuildError::Apply(
                "the shadow checkpoint was moved by someone else".into(),
            ));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn shadow_checkpoint(&self) -> Result<Checkpoint, RebuildError> {
        let row = sqlx::query(
            "SELECT last_txid::text::int8, last_position FROM public.projection_rebuilds \
             WHERE name = $1",
        )
        .bind(self.p.name())
        .fetch_one(self.pool())
        .await?;
        Ok(Checkpoint {
            transaction_id: row.try_get::<i64, _>(0)? as u64,
            position: row.try_get(1)?,
        })
    }

    async fn shadow_events_processed(&self) -> Result<u64, RebuildError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT events_processed FROM public.projection_rebuilds WHERE name = $1",
        )
        .bind(self.p.name())
        .fetch_one(self.pool())
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    // -----------------------------------------------------------------------------------------
    // prepare
    // -----------------------------------------------------------------------------------------

    /// Finds the shadow of an interrupted rebuild to resume, or creates a fresh one.
    async fn prepare(&self) -> Result<Prepared, RebuildError> {
        let p = self.p.as_ref();
        let existing = sqlx::query(
            "SELECT version, schema_name, phase, last_txid::text::int8, last_position, \
             events_processed FROM public.projection_rebuilds WHERE name = $1",
        )
        .bind(p.name())
        .fetch_optional(self.pool())
        .await?;
        if let Some(row) = existing {
            let version: i32 = row.try_get(0)?;
            let schema: String = row.try_get(1)?;
            let phase: String = row.try_get(2)?;
            let resumable = !self.opts.restart
                && version == p.version()
                && schema == self.schema
                && self.shadow_matches_live(false).await?;
            if resumable {
                return Ok(Prepared {
                    phase: if phase == "bulk" {
                        RebuildPhase::Bulk
                    } else {
                        RebuildPhase::CatchUp
                    },
                    cp: Checkpoint {
                        transaction_id: row.try_get::<i64, _>(3)? as u64,
                        position: row.try_get(4)?,
                    },
                    events_processed: u64::try_from(row.try_get::<i64, _>(5)?).unwrap_or(0),
                    resumed: true,
                });
            }
            if !self.opts.restart {
                (self.report)(RebuildEvent::Note(format!(
                    "the interrupted rebuild of {} (version {version}) no longer matches the \
                     live tables or this build; starting again from zero",
                    p.name()
                )));
            }
        }
        let mut tx = self.pool().begin().await?;
        let schema = quote_ident(&self.schema);
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM public.projection_rebuilds WHERE name = $1")
            .bind(p.name())
            .execute(&mut *tx)
            .await?;
        // Dead letters of an abandoned build belong to tables that no longer exist.
        sqlx::query("DELETE FROM public.projection_dead_letters WHERE projection = $1")
            .bind(format!("rebuild:{}", p.name()))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut *tx)
            .await?;
        // Catalog definitions rendered with every name schema-qualified.
        sqlx::query("SET LOCAL search_path = pg_catalog")
            .execute(&mut *tx)
            .await?;
        for t in p.tables() {
            let plan = TablePlan::read(&mut tx, t, &self.schema, self.keys_late(t)).await?;
            for stmt in &plan.create {
                sqlx::query(stmt).execute(&mut *tx).await.map_err(|e| {
                    RebuildError::Unsupported(format!("copying the shape of {t}: {e}: {stmt}"))
                })?;
            }
        }
        sqlx::query(
            "INSERT INTO public.projection_rebuilds (name, version, schema_name) \
             VALUES ($1, $2, $3)",
        )
        .bind(p.name())
        .bind(p.version())
        .bind(&self.schema)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Prepared {
            phase: RebuildPhase::Bulk,
            cp: Checkpoint::START,
            events_processed: 0,
            resumed: false,
        })
    }

    /// Whether every table of the shadow exists with the live table's columns (and, with
    /// `complete`, the same indexes, constraints, triggers and policies, by name).
    async fn shadow_matches_live(&self, complete: bool) -> Result<bool, RebuildError> {
        for t in self.p.tables() {
            let live = table_shape(self.pool(), HOME, t).await?;
            let shadow = table_shape(self.pool(), &self.schema, t).await?;
            if live.is_none() || live != shadow {
                return Ok(false);
            }
            if complete
                && table_objects(self.pool(), HOME, t).await?
                    != table_objects(self.pool(), &self.schema, t).await?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    // -----------------------------------------------------------------------------------------
    // index
    // -----------------------------------------------------------------------------------------

    /// Builds the live tables' secondary indexes (and the keys of
    /// [`Projection::keys_after_bulk`]) on the shadow tables, without holding a transaction
    /// id, then fresh statistics of each table but the derived ones. Returns false if stopped
    /// in between (resumable: an index already built is kept, one interrupted half-way is
    /// dropped and built again, a key whose index is built is attached).
    ///
    /// [`RebuildOptions::index_connections`] connections work through the tables, the most
    /// expensive first; one table's indexes are built one after the other on one connection
    /// (two concurrent builds on one table wait for each other), different tables' at the
    /// same time.
    async fn build_indexes(&self) -> Result<bool, RebuildError> {
        let mut work = Vec::new();
        {
            let mut tx = self.pool().begin().await?;
            sqlx::query("SET LOCAL search_path = pg_catalog")
                .execute(&mut *tx)
                .await?;
            for t in self.p.tables() {
                let plan = TablePlan::read(&mut tx, t, &self.schema, self.keys_late(t)).await?;
                let size: i64 = sqlx::query_scalar(
                    "SELECT coalesce(pg_relation_size(to_regclass(format('%I.%I', $1::text, \
                     $2::text))), 0)",
                )
                .bind(&self.schema)
                .bind(t)
                .fetch_one(&mut *tx)
                .await?;
                // A trigram GIN build costs tens of b-tree builds of the same table.
                let weight: i64 = plan
                    .deferred_indexes
                    .iter()
                    .map(|d| {
                        if d.create.contains(" USING gin ") || d.create.contains(" USING gist ") {
                            20
                        } else {
                            1
                        }
                    })
                    .sum();
                work.push((size.max(1) * (weight + 1), *t, plan.deferred_indexes));
            }
            tx.commit().await?;
        }
        work.sort_by_key(|w| std::cmp::Reverse(w.0));
        let queue = std::sync::Mutex::new(
            work.into_iter()
                .map(|(_, t, d)| (t, d))
                .collect::<std::collections::VecDeque<_>>(),
        );
        let workers = (0..self.opts.index_connections.max(1)).map(|_| self.index_worker(&queue));
        let done = futures::future::try_join_all(workers).await?;
        Ok(done.into_iter().all(|d| d))
    }

    /// One connection of the index phase: takes the next table from `queue`, builds its
    /// indexes and keys, analyses it; until the queue is empty (true) or the run stops (false).
    async fn index_worker(
        &self,
        queue: &std::sync::Mutex<std::collections::VecDeque<(&'static str, Vec<DeferredIndex>)>>,
    ) -> Result<bool, RebuildError> {
        let mut conn = PgConnection::connect_with(&self.pool().connect_options()).await?;
        let r = self.index_tables(&mut conn, queue).await;
        let _ = conn.close().await;
        r
    }

    async fn index_tables(
        &self,
        conn: &mut PgConnection,
        queue: &std::sync::Mutex<std::collections::VecDeque<(&'static str, Vec<DeferredIndex>)>>,
    ) -> Result<bool, RebuildError> {
        sqlx::query("SELECT set_config('maintenance_work_mem', $1, false)")
            .bind(&self.opts.maintenance_work_mem)
            .execute(&mut *conn)
            .await?;
        let schema = quote_ident(&self.schema);
        let derived: Vec<&str> = self.p.derived_tables().iter().map(|(t, _)| *t).collect();
        loop {
            let next = match queue.lock() {
                Ok(mut q) => q.pop_front(),
                Err(poisoned) => poisoned.into_inner().pop_front(),
            };
            let Some((t, indexes)) = next else {
                return Ok(true);
            };
            let table = format!("{schema}.{}", quote_ident(t));
            // An interrupted CREATE INDEX CONCURRENTLY leaves an invalid index behind.
            let invalid: Vec<String> = sqlx::query_scalar(
                "SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
                 WHERE x.indrelid = to_regclass($1) AND NOT x.indisvalid",
            )
            .bind(&table)
            .fetch_all(&mut *conn)
            .await?;
            for name in invalid {
                sqlx::query(&format!("DROP INDEX {schema}.{}", quote_ident(&name)))
                    .execute(&mut *conn)
                    .await?;
            }
            for d in &indexes {
                if self.should_stop()
                    || self
                        .opts
                        .stop_after_indexes
                        .is_some_and(|n| self.indexes_built.load(Ordering::Relaxed) >= n)
                {
                    return Ok(false);
                }
                if d.attach.is_some() {
                    let attached: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM pg_constraint \
                         WHERE conrelid = to_regclass($1) AND conname = $2)",
                    )
                    .bind(&table)
                    .bind(&d.name)
                    .fetch_one(&mut *conn)
                    .await?;
                    if attached {
                        continue;
                    }
                }
                let t0 = Instant::now();
                sqlx::query(&d.create)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| {
                        RebuildError::Unsupported(format!(
                            "building index {}: {e}: {}",
                            d.name, d.create
                        ))
                    })?;
                if let Some(attach) = &d.attach {
                    sqlx::query(attach).execute(&mut *conn).await.map_err(|e| {
                        RebuildError::Unsupported(format!(
                            "making index {} the key: {e}: {attach}",
                            d.name
                        ))
                    })?;
                }
                self.indexes_built.fetch_add(1, Ordering::Relaxed);
                (self.report)(RebuildEvent::Note(format!(
                    "{} {} built in {:.1} s",
                    if d.attach.is_some() { "key" } else { "index" },
                    d.name,
                    t0.elapsed().as_secs_f64()
                )));
            }
            // Statistics now, beside the other tables' index builds (the derived tables are
            // filled at the end of the phase and analysed then).
            if !derived.contains(&t) {
                sqlx::query(&format!("ANALYZE {table}"))
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }

    /// In one transaction: the derived tables computed from scratch, the live tables' triggers
    /// on the shadow tables, the phase moved to catch-up. Then fresh statistics.
    async fn finish_bulk(&self) -> Result<(), RebuildError> {
        let schema = quote_ident(&self.schema);
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(&schema)
            .execute(&mut *tx)
            .await?;
        for (table, fill) in self.p.derived_tables() {
            sqlx::query(&format!("TRUNCATE {schema}.{}", quote_ident(table)))
                .execute(&mut *tx)
                .await?;
            sqlx::query(fill).execute(&mut *tx).await.map_err(|e| {
                RebuildError::Unsupported(format!("computing derived table {table}: {e}"))
            })?;
        }
        sqlx::query("SET LOCAL search_path = pg_catalog")
            .execute(&mut *tx)
            .await?;
        for t in self.p.tables() {
            let plan = TablePlan::read(&mut tx, t, &self.schema, self.keys_late(t)).await?;
            for stmt in &plan.triggers {
                sqlx::query(stmt).execute(&mut *tx).await.map_err(|e| {
                    RebuildError::Unsupported(format!("copying a trigger of {t}: {e}: {stmt}"))
                })?;
            }
        }
        sqlx::query("UPDATE public.projection_rebuilds SET phase = 'catch_up' WHERE name = $1")
            .bind(self.p.name())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        for (t, _) in self.p.derived_tables() {
            sqlx::query(&format!("ANALYZE {schema}.{}", quote_ident(t)))
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// Whether the keys of table `t` are built after the bulk phase.
    fn keys_late(&self, t: &str) -> bool {
        self.p.keys_after_bulk().contains(&t)
    }

    // -----------------------------------------------------------------------------------------
    // swap
    // -----------------------------------------------------------------------------------------

    async fn swap(&self) -> Result<Swap, RebuildError> {
        let started = Instant::now();
        let p = self.p.as_ref();
        let mut tx = self.pool().begin().await?;
        // Derived data, as every projection commit (ADR 0005): a crash that loses this commit
        // loses the swap as a whole, and the next run swaps again.
        sqlx::query(
            "SELECT set_config('lock_timeout', $1, true), \
             set_config('synchronous_commit', 'off', true)",
        )
        .bind(format!("{}ms", self.opts.lock_timeout.as_millis().max(1)))
        .execute(&mut *tx)
        .await?;
        // 1. No live batch in flight, none starts (they take this lock shared, first).
        if let Err(e) = sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(batch_lock_key(p.name()))
            .execute(&mut *tx)
            .await
        {
            return retry_or_fail(e, "waiting for the live batch");
        }
        // 2. The live checkpoint, and the shadow's.
        let live = match sqlx::query(
            "SELECT last_txid::text::int8, last_position FROM public.projection_checkpoints \
             WHERE name = $1 AND version = $2 FOR UPDATE",
        )
        .bind(p.name())
        .bind(p.version())
        .fetch_one(&mut *tx)
        .await
        {
            Ok(r) => Checkpoint {
                transaction_id: r.try_get::<i64, _>(0)? as u64,
                position: r.try_get(1)?,
            },
            Err(e) => return retry_or_fail(e, "locking the live checkpoint"),
        };
        let shadow = sqlx::query(
            "SELECT last_txid::text::int8, last_position, events_processed, last_recorded_at, \
             last_error FROM public.projection_rebuilds WHERE name = $1 FOR UPDATE",
        )
        .bind(p.name())
        .fetch_one(&mut *tx)
        .await?;
        let mut cp = Checkpoint {
            transaction_id: shadow.try_get::<i64, _>(0)? as u64,
            position: shadow.try_get(1)?,
        };
        let processed: i64 = shadow.try_get(2)?;
        let mut recorded_at: Option<chrono::DateTime<chrono::Utc>> = shadow.try_get(3)?;
        let last_error: Option<String> = shadow.try_get(4)?;
        // 3. The tail: what committed since the catch-up, applied to the shadow here.
        let mut tail: Vec<RecordedEvent> = Vec::new();
        loop {
            let batch = self
                .store
                .read_all(cp, self.opts.catch_up_batch.max(1))
                .await
                .map_err(|e| RebuildError::Apply(e.to_string()))?;
            let Some(last) = batch.last() else { break };
            cp = last.checkpoint();
            recorded_at = Some(last.recorded_at);
            tail.extend(batch);
            if tail.len() > self.opts.swap_tail_max {
                return Ok(Swap::Retry(format!(
                    "{} events arrived since the catch-up",
                    tail.len()
                )));
            }
        }
        if !tail.is_empty() {
            sqlx::query("SELECT set_config('search_path', $1, true)")
                .bind(quote_ident(&self.schema))
                .execute(&mut *tx)
                .await?;
            if let Err(e) = p.apply(&mut tx, &tail).await {
                // The catch-up applies them with retries and dead letters; then swap again.
                return Ok(Swap::Retry(format!("applying the tail: {e}")));
            }
            sqlx::query("SET LOCAL search_path TO DEFAULT")
                .execute(&mut *tx)
                .await?;
        }
        if cp < live {
            // Cannot happen (the horizon only moves forward); never move a checkpoint back.
            return Ok(Swap::Retry(format!(
                "the shadow ({cp:?}) is behind the live projection ({live:?})"
            )));
        }
        if !self.shadow_matches_live(true).await? {
            return Err(RebuildError::Unsupported(format!(
                "the live tables of {} changed during the rebuild (columns, indexes, \
                 constraints, triggers or policies: a migration?): run `projections rebuild {} \
                 --restart`",
                p.name(),
                p.name()
            )));
        }
        // 4. The tables. Readers wait here for the few milliseconds until the commit.
        let live_tables: Vec<String> = p
            .tables()
            .iter()
            .map(|t| format!("{HOME}.{}", quote_ident(t)))
            .collect();
        if let Err(e) = sqlx::query(&format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            live_tables.join(", ")
        ))
        .execute(&mut *tx)
        .await
        {
            return retry_or_fail(e, "locking the live tables");
        }
        let locked = Instant::now();
        // The old tables move out (a catalog update, unlike a DROP of their files and
        // buffers), the new ones in, under the same names; the old ones are dropped after the
        // commit, without blocking anyone.
        let schema = quote_ident(&self.schema);
        let retired = quote_ident(&retired_schema(p.name()));
        sqlx::query(&format!("CREATE SCHEMA {retired}"))
            .execute(&mut *tx)
            .await?;
        for t in p.tables() {
            sqlx::query(&format!(
                "ALTER TABLE {HOME}.{t} SET SCHEMA {retired}",
                t = quote_ident(t)
            ))
            .execute(&mut *tx)
            .await?;
        }
        for t in p.tables() {
            sqlx::query(&format!(
                "ALTER TABLE {schema}.{} SET SCHEMA {HOME}",
                quote_ident(t)
            ))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(&format!("DROP SCHEMA {schema}"))
            .execute(&mut *tx)
            .await?;
        // 5. Dead letters: after the swap, the projection's open dead letters are exactly the
        // events the rebuild could not apply.
        let rebuild_name = format!("rebuild:{}", p.name());
        for sql in [
            // Old dead letters the rebuild applied: resolved by it.
            "UPDATE public.projection_dead_letters l SET resolved_at = now() \
             WHERE l.projection = $1 AND l.projection_version = $3 AND l.resolved_at IS NULL \
               AND NOT EXISTS (SELECT 1 FROM public.projection_dead_letters r \
                 WHERE r.projection = $2 AND r.projection_version = $3 \
                   AND r.event_id = l.event_id)",
            // An event both builds dead-lettered: the live row takes the rebuild's outcome.
            "UPDATE public.projection_dead_letters l SET error = r.error, \
               attempts = l.attempts + r.attempts, resolved_at = NULL \
             FROM public.projection_dead_letters r \
             WHERE l.projection = $1 AND l.projection_version = $3 \
               AND r.projection = $2 AND r.projection_version = $3 AND r.event_id = l.event_id",
            "DELETE FROM public.projection_dead_letters r \
             WHERE r.projection = $2 AND r.projection_version = $3 AND EXISTS \
               (SELECT 1 FROM public.projection_dead_letters l WHERE l.projection = $1 \
                  AND l.projection_version = $3 AND l.event_id = r.event_id)",
            // The rebuild's own: now the projection's.
            "UPDATE public.projection_dead_letters SET projection = $1 \
             WHERE projection = $2 AND projection_version = $3",
        ] {
            sqlx::query(sql)
                .bind(p.name())
                .bind(&rebuild_name)
                .bind(p.version())
                .execute(&mut *tx)
                .await?;
        }
        let dead_letters: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM public.projection_dead_letters \
             WHERE projection = $1 AND projection_version = $2 AND resolved_at IS NULL",
        )
        .bind(p.name())
        .bind(p.version())
        .fetch_one(&mut *tx)
        .await?;
        // 6. The live checkpoint jumps to the shadow's (never backwards: cp ≥ live).
        sqlx::query(
            "UPDATE public.projection_checkpoints SET last_txid = $3::int8::text::xid8, \
             last_position = $4, last_recorded_at = COALESCE($5, last_recorded_at), \
             events_processed = $6, updated_at = now(), \
             state = CASE WHEN $7 > 0 THEN 'degraded' ELSE 'running' END, \
             last_error = CASE WHEN $7 > 0 THEN $8 ELSE NULL END \
             WHERE name = $1 AND version = $2",
        )
        .bind(p.name())
        .bind(p.version())
        .bind(cp.transaction_id as i64)
        .bind(cp.position)
        .bind(recorded_at)
        .bind(processed + tail.len() as i64)
        .bind(dead_letters)
        .bind(last_error)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM public.projection_rebuilds WHERE name = $1")
            .bind(p.name())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let (took, locked) = (started.elapsed(), locked.elapsed());
        drop_retired(self.pool(), p.name()).await?;
        Ok(Swap::Done {
            tail: tail.len() as u64,
            position: cp,
            took,
            locked,
            dead_letters,
        })
    }
}

/// Reads the log from `cp` in batches of `batch` and sends them to `tx` until the head as of
/// `target` (every transaction below it finished and read), or until the receiver is gone.
async fn read_ahead(
    store: PgEventStore,
    mut cp: Checkpoint,
    batch: i64,
    target: i64,
    tx: tokio::sync::mpsc::Sender<Result<Vec<RecordedEvent>, String>>,
) {
    loop {
        let events = match store.read_all(cp, batch).await {
            Ok(e) => e,
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                return;
            }
        };
        if let Some(last) = events.last() {
            cp = last.checkpoint();
            if tx.send(Ok(events)).await.is_err() {
                return;
            }
            continue;
        }
        // Nothing more below the horizon. Done once the horizon has passed every transaction
        // that had started when the phase began — and a read made after that is empty too.
        match horizon(store.pool()).await {
            Ok(h) if h >= target => match store.read_all(cp, batch).await {
                Ok(e) if e.is_empty() => return,
                Ok(e) => {
                    if let Some(last) = e.last() {
                        cp = last.checkpoint();
                    }
                    if tx.send(Ok(e)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string())).await;
                    return;
                }
            },
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                return;
            }
        }
    }
}

/// Where a swap moves the old tables of `projection` (dropped right after it commits).
pub fn retired_schema(projection: &str) -> String {
    format!("retired_{projection}")
}

/// Drops the old tables of a swap (also those a crash left between the swap and the drop).
async fn drop_retired(pool: &sqlx::PgPool, projection: &str) -> Result<(), RebuildError> {
    sqlx::query(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        quote_ident(&retired_schema(projection))
    ))
    .execute(pool)
    .await?;
    Ok(())
}

/// A lock wait that timed out or deadlocked: back off and retry; anything else fails.
fn retry_or_fail(e: sqlx::Error, what: &str) -> Result<Swap, RebuildError> {
    let code = e
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned());
    match code.as_deref() {
        // lock_not_available (lock_timeout), deadlock_detected
        Some("55P03") | Some("40P01") => Ok(Swap::Retry(format!("{what}: {e}"))),
        _ => Err(RebuildError::Db(e)),
    }
}

/// Events committed after `cp` below the horizon (what a catch-up from `cp` has to apply).
async fn count_after(pool: &sqlx::PgPool, cp: Checkpoint) -> Result<u64, RebuildError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events \
         WHERE (transaction_id, global_position) > ($1::int8::text::xid8, $2) \
           AND transaction_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))",
    )
    .bind(cp.transaction_id as i64)
    .bind(cp.position)
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The columns of `schema.table` in order (name, type, nullability, generation), or `None`
/// if it does not exist.
async fn table_shape(
    pool: &sqlx::PgPool,
    schema: &str,
    table: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END \
           || CASE WHEN a.attgenerated <> '' \
                   THEN ' generated ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END, \
           ', ' ORDER BY a.attnum) \
         FROM pg_attribute a \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text)) \
           AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(pool)
    .await
}

/// The names of the indexes, constraints, triggers and policies of `schema.table`.
async fn table_objects(
    pool: &sqlx::PgPool,
    schema: &str,
    table: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH t AS (SELECT to_regclass(format('%I.%I', $1::text, $2::text)) AS oid) \
         SELECT string_agg(o, ', ' ORDER BY o) FROM ( \
           SELECT 'index ' || i.relname FROM t, pg_index x JOIN pg_class i \
             ON i.oid = x.indexrelid WHERE x.indrelid = t.oid \
           UNION ALL SELECT 'constraint ' || conname FROM t, pg_constraint \
             WHERE conrelid = t.oid \
           UNION ALL SELECT 'trigger ' || tgname FROM t, pg_trigger \
             WHERE tgrelid = t.oid AND NOT tgisinternal \
           UNION ALL SELECT 'policy ' || polname FROM t, pg_policy WHERE polrelid = t.oid \
         ) AS objects(o)",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(pool)
    .await
}

/// `[a-z_][a-z0-9_]*`: rendered unquoted by PostgreSQL, so definitions can be retargeted.
fn is_plain_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() < 50
}

/// How to copy one live table into the shadow schema, read from the catalog. Must be read with
/// `search_path = pg_catalog`, so that every definition names its objects schema-qualified.
struct TablePlan {
    /// The table with its keys, unique indexes, row-level security, policies, grants, owner,
    /// storage options and comment (prepare).
    create: Vec<String>,
    /// The other indexes, and the keys of a table of [`Projection::keys_after_bulk`] (index
    /// phase).
    deferred_indexes: Vec<DeferredIndex>,
    /// `CREATE TRIGGER …` (and enable modes) of its triggers (end of the index phase).
    triggers: Vec<String>,
}

/// An index the index phase builds (concurrently), and for a key, how it becomes the key.
#[derive(Debug, Clone)]
struct DeferredIndex {
    /// Its name (the live index's, and the key's).
    name: String,
    /// `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS …` on the shadow table.
    create: String,
    /// For a primary key or unique constraint: `ALTER TABLE … ADD CONSTRAINT <name> … USING
    /// INDEX <name>` (a catalog update: the index is the constraint's from then on).
    attach: Option<String>,
}

impl TablePlan {
    /// `keys_late`: the table's primary and unique keys are built in the index phase.
    async fn read(
        conn: &mut PgConnection,
        table: &str,
        schema: &str,
        keys_late: bool,
    ) -> Result<Self, RebuildError> {
        let live = format!("{HOME}.{table}");
        let shadow = format!("{}.{}", quote_ident(schema), quote_ident(table));
        let exists: Option<i64> = sqlx::query_scalar("SELECT to_regclass($1)::oid::int8")
            .bind(&live)
            .fetch_one(&mut *conn)
            .await?;
        if exists.is_none() {
            return Err(RebuildError::Unsupported(format!(
                "table {live} does not exist (migrations not applied?)"
            )));
        }
        // What a copy cannot follow: foreign keys (either way) and views over the table.
        let blockers: Vec<String> = sqlx::query_scalar(
            "SELECT 'foreign key ' || conname::text FROM pg_constraint \
             WHERE contype = 'f' AND (conrelid = $1::regclass OR confrelid = $1::regclass) \
             UNION ALL \
             SELECT DISTINCT 'view ' || v.oid::regclass::text FROM pg_depend d \
             JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class \
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1::regclass \
               AND v.oid <> $1::regclass",
        )
        .bind(&live)
        .fetch_all(&mut *conn)
        .await?;
        if !blockers.is_empty() {
            return Err(RebuildError::Unsupported(format!(
                "{live} cannot be rebuilt beside itself: {}",
                blockers.join(", ")
            )));
        }
        let mut create = vec![format!(
            "CREATE TABLE {shadow} (LIKE {live} INCLUDING ALL EXCLUDING INDEXES)"
        )];
        // Keys and unique indexes shape what a batch may write (a violation fails it, as in
        // the live table): they exist from the start — except on a table whose keys the
        // projection lets the rebuild build after the bulk phase (`keys_late`), where a
        // primary key or a plain unique constraint is built like the other indexes and then
        // attached under its name. Other indexes only speed up reads.
        let on = format!(" ON {live} USING ");
        let shadow_on = format!(" ON {shadow} USING ");
        let mut deferred_indexes = Vec::new();
        let constraints: Vec<(String, String, String, String, bool)> = sqlx::query_as(
            "SELECT c.conname::text, c.contype::text, pg_get_constraintdef(c.oid), \
               coalesce(pg_get_indexdef(c.conindid), ''), \
               c.condeferrable OR coalesce(i.relname <> c.conname, true) \
             FROM pg_constraint c LEFT JOIN pg_class i ON i.oid = c.conindid \
             WHERE c.conrelid = $1::regclass AND c.contype IN ('p', 'u', 'x') \
             ORDER BY c.contype, c.conname",
        )
        .bind(&live)
        .fetch_all(&mut *conn)
        .await?;
        for (name, kind, def, index_def, keep) in constraints {
            let late = keys_late && !keep && (kind == "p" || kind == "u");
            let concurrent = if late {
                retarget(&index_def, &on, &shadow_on).and_then(|d| {
                    d.strip_prefix("CREATE UNIQUE INDEX ").map(|rest| {
                        format!("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {rest}")
                    })
                })
            } else {
                None
            };
            match concurrent {
                Some(create_index) => deferred_indexes.push(DeferredIndex {
                    attach: Some(format!(
                        "ALTER TABLE {shadow} ADD CONSTRAINT {q} {} USING INDEX {q}",
                        if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" },
                        q = quote_ident(&name)
                    )),
                    name,
                    create: create_index,
                }),
                None => create.push(format!(
                    "ALTER TABLE {shadow} ADD CONSTRAINT {} {def}",
                    quote_ident(&name)
                )),
            }
        }
        let indexes: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT i.relname::text, pg_get_indexdef(x.indexrelid), x.indisunique \
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = $1::regclass \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid \
                               AND c.conrelid = x.indrelid) \
             ORDER BY i.relname",
        )
        .bind(&live)
        .fetch_all(&mut *conn)
        .await?;
        for (name, def, unique) in indexes {
            let retargeted = retarget(&def, &on, &shadow_on).ok_or_else(|| {
                RebuildError::Unsupported(format!("unexpected index definition: {def}"))
            })?;
            if unique && !keys_late {
                create.push(retargeted);
            } else {
                let prefix = if unique {
                    "CREATE UNIQUE INDEX "
                } else {
                    "CREATE INDEX "
                };
                let concurrent = retargeted
                    .strip_prefix(prefix)
                    .map(|rest| format!("{prefix}CONCURRENTLY IF NOT EXISTS {rest}"))
                    .ok_or_else(|| {
                        RebuildError::Unsupported(format!("unexpected index definition: {def}"))
                    })?;
                deferred_indexes.push(DeferredIndex {
                    name,
                    create: concurrent,
                    attach: None,
                });
            }
        }
        // Row-level security, owner, storage options, table comment, grants, policies.
        let row = sqlx::query(
            "SELECT c.relrowsecurity, c.relforcerowsecurity, \
               quote_ident(pg_get_userbyid(c.relowner)), \
               array_to_string(c.reloptions, ', '), obj_description(c.oid, 'pg_class') \
             FROM pg_class c WHERE c.oid = $1::regclass",
        )
        .bind(&live)
        .fetch_one(&mut *conn)
        .await?;
        let (rls, force, owner): (bool, bool, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let options: Option<String> = row.try_get(3)?;
        let comment: Option<String> = row.try_get(4)?;
        if rls {
            create.push(format!("ALTER TABLE {shadow} ENABLE ROW LEVEL SECURITY"));
        }
        if force {
            create.push(format!("ALTER TABLE {shadow} FORCE ROW LEVEL SECURITY"));
        }
        if let Some(o) = options.filter(|o| !o.is_empty()) {
            create.push(format!("ALTER TABLE {shadow} SET ({o})"));
        }
        if let Some(c) = comment {
            create.push(format!(
                "COMMENT ON TABLE {shadow} IS {}",
                quote_literal(&c)
            ));
        }
        let grants: Vec<String> = sqlx::query_scalar(
            "SELECT format('GRANT %s ON %s TO %s%s', a.privilege_type, $2::text, \
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' \
                    ELSE quote_ident(pg_get_userbyid(a.grantee)) END, \
               CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) \
             FROM pg_class c, aclexplode(c.relacl) a \
             WHERE c.oid = $1::regclass AND a.grantee <> c.relowner \
             ORDER BY 1",
        )
        .bind(&live)
        .bind(&shadow)
        .fetch_all(&mut *conn)
        .await?;
        create.extend(grants);
        let policies: Vec<String> = sqlx::query_scalar(
            "SELECT format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, \
               $2::text, CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END, \
               CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' \
                    WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END, \
               (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' \
                                       ELSE quote_ident(pg_get_userbyid(r)) END, ', ') \
                FROM unnest(p.polroles) r), \
               coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', ''), \
               coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', \
                        '')) \
             FROM pg_policy p WHERE p.polrelid = $1::regclass ORDER BY p.polname",
        )
        .bind(&live)
        .bind(&shadow)
        .fetch_all(&mut *conn)
        .await?;
        create.extend(policies);
        let me: String = sqlx::query_scalar("SELECT quote_ident(current_user::text)")
            .fetch_one(&mut *conn)
            .await?;
        if me != owner {
            create.push(format!("ALTER TABLE {shadow} OWNER TO {owner}"));
        }
        // Triggers (copied at the end of the index phase: none fire during the bulk phase).
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT tgname::text, pg_get_triggerdef(oid), tgenabled::text FROM pg_trigger \
             WHERE tgrelid = $1::regclass AND NOT tgisinternal ORDER BY tgname",
        )
        .bind(&live)
        .fetch_all(&mut *conn)
        .await?;
        let mut triggers = Vec::new();
        for (name, def, enabled) in rows {
            let def = retarget(&def, &format!(" ON {live} "), &format!(" ON {shadow} "))
                .ok_or_else(|| {
                    RebuildError::Unsupported(format!("unexpected trigger definition: {def}"))
                })?;
            triggers.push(def);
            let mode = match enabled.as_str() {
                "D" => Some("DISABLE TRIGGER"),
                "R" => Some("ENABLE REPLICA TRIGGER"),
                "A" => Some("ENABLE ALWAYS TRIGGER"),
                _ => None,
            };
            if let Some(m) = mode {
                triggers.push(format!("ALTER TABLE {shadow} {m} {}", quote_ident(&name)));
            }
        }
        Ok(Self {
            create,
            deferred_indexes,
            triggers,
        })
    }
}

/// `def` with its one occurrence of `from` replaced by `to` (None if not exactly once).
fn retarget(def: &str, from: &str, to: &str) -> Option<String> {
    (def.matches(from).count() == 1).then(|| def.replacen(from, to, 1))
}

/// An SQL string literal.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_retargeting() {
        assert!(is_plain_ident("rm_incidents"));
        assert!(!is_plain_ident("Rm"));
        assert!(!is_plain_ident("a-b"));
        assert!(!is_plain_ident(""));
        let def = "CREATE INDEX x ON public.rm_incidents USING btree (tenant_id)";
        assert_eq!(
            retarget(
                def,
                " ON public.rm_incidents USING ",
                " ON \"rebuild_incidents\".\"rm_incidents\" USING "
            )
            .as_deref(),
            Some(
                "CREATE INDEX x ON \"rebuild_incidents\".\"rm_incidents\" USING btree (tenant_id)"
            )
        );
        assert_eq!(retarget(def, " ON public.other USING ", "x"), None);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
