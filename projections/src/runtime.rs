//! The projector runtime.

use crate::shared_reads::SharedReads;
use async_trait::async_trait;
use eventdesk_store::subscription::{StopToken, wait_for_news};
use eventdesk_store::{Checkpoint, EventStore, PgEventStore, RecordedEvent, StoreError};
use sqlx::{Connection, PgConnection, Row};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An error from a projection handler. Any error is retried and then dead-lettered.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// A read model fed by the event log.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name (also the advisory-lock key and checkpoint key).
    fn name(&self) -> &'static str;
    /// Version of the read model's shape; a new version is built beside the old one.
    fn version(&self) -> i32;
    /// Applies a batch inside the runtime's transaction. Must be set-based (one statement for
    /// many rows) and idempotent under replay of the same batch.
    ///
    /// Tables must be named **unqualified** and only the projection's own [`tables`] may be
    /// written or read: a rebuild runs `apply` with the search path set to its shadow schema
    /// alone (built-in functions stay visible), so that the same code builds the new version
    /// beside the live one, and a table it forgot to declare fails loudly instead of writing
    /// into the live read model.
    ///
    /// [`tables`]: Projection::tables
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError>;

    /// The tables this projection owns (unqualified names, in the `public` schema), in the
    /// order a rebuild creates and swaps them. `projections rebuild` builds every one of them
    /// from zero in a shadow schema and swaps them all in at once; a projection that declares
    /// none cannot be rebuilt beside the live one.
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    /// Tables among [`tables`](Projection::tables) that triggers derive from the others, each
    /// with the set-based statement that computes it from scratch. A rebuild's bulk phase runs
    /// without triggers (and without secondary indexes); before its catch-up phase it empties
    /// each derived table, runs its statement once (search path = the shadow schema), and only
    /// then creates the triggers, which keep it from there on.
    fn derived_tables(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Whether the events of different streams write disjoint rows, `apply` reads only the
    /// rows of the streams in its batch, and an event already applied changes nothing when
    /// applied again. A rebuild's bulk phase then applies the streams of each batch in
    /// parallel transactions (and moves its checkpoint once all committed; a crash in between
    /// replays the batch). Default: false.
    fn streams_independent(&self) -> bool {
        false
    }

    /// Tables among [`tables`](Projection::tables) whose primary and unique keys a rebuild
    /// builds *after* its bulk phase, with the secondary indexes, instead of maintaining them
    /// row by row (for a list of a million rows, the key's upkeep costs more than the rows).
    ///
    /// Only for tables that `apply` writes with plain `INSERT`s or `ON CONFLICT DO NOTHING`
    /// *without* a conflict target (nothing for the key to arbitrate), and to which it never
    /// adds a row again for an event it already applied (a replayed event is skipped before it
    /// makes rows). The unique index built at the end checks the key all the same: a
    /// duplicate fails the rebuild loudly instead of being swapped in. Default: none.
    fn keys_after_bulk(&self) -> &'static [&'static str] {
        &[]
    }
}

/// Tuning of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Events per batch.
    pub batch_size: i64,
    /// Attempts of a failing batch (and then of each of its events) before dead-lettering.
    pub max_retries: u32,
    /// Pause between attempts (doubles each time).
    pub retry_backoff: Duration,
    /// How often a standby tries to become leader.
    pub leader_retry: Duration,
    /// Longest sleep between polls when no notification arrives.
    pub max_poll: Duration,
    /// How often a leader checks that its lock connection is still alive.
    pub lock_check: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            batch_size: 2000,
            max_retries: 3,
            retry_backoff: Duration::from_millis(20),
            leader_retry: Duration::from_millis(500),
            max_poll: Duration::from_millis(500),
            lock_check: Duration::from_secs(1),
        }
    }
}

/// Runs a set of projections, each in its own task, each only where this node holds its lock.
#[derive(Clone)]
pub struct ProjectorRuntime {
    store: PgEventStore,
    projections: Vec<Arc<dyn Projection>>,
    config: RuntimeConfig,
    progress: Progress,
    /// Log reads shared by the projections this runtime leads (ADR 0025).
    reads: Arc<SharedReads<RecordedEvent>>,
}

/// Where each projection has got to, published in-process after every committed batch, so a
/// writer can wait until its own write is visible in a read model (read-your-writes).
#[derive(Clone, Debug, Default)]
pub struct Progress {
    senders: Arc<
        std::sync::RwLock<
            std::collections::HashMap<String, tokio::sync::watch::Sender<Checkpoint>>,
        >,
    >,
    /// The projections this node leads now: their in-process signal is authoritative, so a
    /// waiter need not read the stored checkpoint while the signal keeps moving (ADR 0023).
    leading: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
}

impl Progress {
    fn sender(&self, name: &str) -> tokio::sync::watch::Sender<Checkpoint> {
        if let Ok(map) = self.senders.read()
            && let Some(s) = map.get(name)
        {
            return s.clone();
        }
        match self.senders.write() {
            Ok(mut map) => map
                .entry(name.to_owned())
                .or_insert_with(|| tokio::sync::watch::channel(Checkpoint::START).0)
                .clone(),
            Err(_) => tokio::sync::watch::channel(Checkpoint::START).0,
        }
    }

    /// Records whether this node leads projection `name`.
    fn set_leading(&self, name: &str, leading: bool) {
        let mut set = match self.leading.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if leading {
            set.insert(name.to_owned());
        } else {
            set.remove(name);
        }
    }

    /// Whether this node leads projection `name` now.
    fn is_leading(&self, name: &str) -> bool {
        match self.leading.read() {
            Ok(s) => s.contains(name),
            Err(poisoned) => poisoned.into_inner().contains(name),
        }
    }

    fn publish(&self, name: &str, cp: Checkpoint) {
        self.sender(name).send_if_modified(|c| {
            let newer = cp > *c;
            if newer {
                *c = cp;
            }
            newer
        });
    }

    /// Waits until projection `name` has applied everything up to `cp`, for at most `timeout`.
    /// Uses the in-process signal when this node runs the projection, and polls the stored
    /// checkpoint otherwise. Returns whether it got there.
    ///
    /// While this node leads the projection, the stored checkpoint is read only after the
    /// signal has been quiet for [`STORED_POLL`] (a rebuild's swap, or a lost leadership, moves
    /// it without a local signal); otherwise at once and then every [`STORED_POLL`]. Reading
    /// it on every local signal made every batch commit cost one query per waiting writer.
    pub async fn wait_for(
        &self,
        pool: &sqlx::PgPool,
        name: &str,
        cp: Checkpoint,
        timeout: Duration,
    ) -> bool {
        let mut rx = self.sender(name).subscribe();
        let deadline = Instant::now() + timeout;
        let mut next_poll = if self.is_leading(name) {
            Instant::now() + STORED_POLL
        } else {
            Instant::now()
        };
        loop {
            if *rx.borrow_and_update() >= cp {
                return true;
            }
            let now = Instant::now();
            if now >= next_poll {
                if let Ok(Some(stored)) = stored_checkpoint(pool, name).await
                    && stored >= cp
                {
                    self.publish(name, stored);
                    return true;
                }
                next_poll = Instant::now() + STORED_POLL;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let until_poll = next_poll.saturating_duration_since(Instant::now());
            // A local batch committed: the signal is alive, so the stored checkpoint can wait
            // another quiet period.
            if let Ok(Ok(())) = tokio::time::timeout(left.min(until_poll), rx.changed()).await {
                next_poll = Instant::now() + STORED_POLL;
            }
        }
    }
}

/// The first poll interval after a batch. An empty read right after a wake-up usually means that
/// another transaction of the cluster still holds the horizon below the new events (ADR 0002);
/// it ends within a millisecond or two, and a writer is waiting for them (ADR 0023).
const FIRST_POLL: Duration = Duration::from_millis(1);

/// Reads of the log a runtime keeps for its projections to share (ADR 0025), and the events
/// they may hold beyond the newest read. Caught-up projections ask for the same small batches
/// within milliseconds; during a backlog they are at different positions and sharing rarely
/// helps, so a small bound keeps the memory of decoded events low.
const SHARED_READS: usize = 32;
const SHARED_EVENTS: usize = 500;

/// How long a read-your-writes waiter goes without reading the stored checkpoint.
const STORED_POLL: Duration = Duration::from_millis(25);

/// The stored checkpoint of the newest version of projection `name`.
async fn stored_checkpoint(
    pool: &sqlx::PgPool,
    name: &str,
) -> Result<Option<Checkpoint>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT last_txid::text::int8, last_position FROM projection_checkpoints \
         WHERE name = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(Checkpoint {
            transaction_id: r.try_get::<i64, _>(0)? as u64,
            position: r.try_get(1)?,
        })
    })
    .transpose()
}

impl std::fmt::Debug for ProjectorRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectorRuntime")
            .field(
                "projections",
                &self
                    .projections
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>(),
            )
            .field("config", &self.config)
            .finish()
    }
}

/// The running tasks.
#[derive(Debug)]
pub struct RuntimeHandle {
    stop: StopToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RuntimeHandle {
    /// Stops every projection task (releasing their locks) and waits for them.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Where a batch goes and where its checkpoint lives: the live read model (checkpoint in
/// `projection_checkpoints`) or a rebuild's shadow copy of it (search path = the shadow schema,
/// checkpoint in `projection_rebuilds`, dead letters under `rebuild:<name>`).
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    /// The checkpoint row's name and version.
    name: String,
    version: i32,
    /// The shadow schema (quoted), for a rebuild.
    shadow: Option<String>,
    /// The projection name dead letters are recorded under.
    dead_letter_name: String,
    /// `UPDATE <checkpoint table> …`, guarded by the previous position (`None`: a partition of
    /// a rebuild's batch, whose checkpoint the rebuild moves once every partition committed).
    update_sql: Option<String>,
    /// `SELECT … FROM <checkpoint table>` (to reload).
    load_sql: String,
}

/// The live checkpoint row's update (also the template of the rebuild's).
const CHECKPOINT_UPDATE: &str = "UPDATE {table} SET last_txid = $3::int8::text::xid8, \
     last_position = $4, last_recorded_at = $5, \
     events_processed = events_processed + $6, updated_at = now(), \
     state = CASE WHEN $7 OR state = 'degraded' THEN 'degraded' ELSE 'running' END, \
     last_error = COALESCE($8, last_error) \
     WHERE name = $1 AND version = $2 \
       AND last_txid = $9::int8::text::xid8 AND last_position = $10";

const CHECKPOINT_LOAD: &str = "SELECT last_txid::text::int8, last_position FROM {table} \
     WHERE name = $1 AND version = $2";

/// Opens a live batch: no WAL-flush wait (ADR 0005), and the projection's batch lock, shared:
/// a rebuild's swap takes it exclusively, so that no live batch is in flight while it swaps
/// the tables (ADR 0013). `try` first, reading the checkpoint in the same round trip; only if
/// a swap holds or awaits the lock does the batch wait for it and re-read the checkpoint.
///
/// It also plans the batch's statements as what they are, key lookups: a live batch only
/// touches the rows of its events' streams, by key (`(tenant_id, id) IN (SELECT * FROM
/// unnest(…))`), and with a few dozen or hundred keys and statistics that lag a growing table
/// the planner otherwise picks a scan of the whole table (sequential, or of another index)
/// and a hash join — 10 ms instead of 0.1 ms for a 60-key lookup in an 8,000-row table, and
/// seconds for a backlog's batch, in every batch of every projection. With sequential scans,
/// hash and merge joins priced out, it joins the keys to the primary key. And every statement
/// is planned for its own keys and the table as it is now: a prepared statement's generic plan,
/// made while the table was nearly empty, looked the keys up through another index on
/// `tenant_id` alone and read a tenant's every row once per key (4 s for one batch of a
/// 20,000-row tenant), until statistics caught up (ADR 0025).
const LIVE_BEGIN: &str = "SELECT pg_try_advisory_xact_lock_shared(hashtextextended($3, 0)), \
     last_txid::text::int8, last_position, set_config('synchronous_commit', 'off', true), \
     set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true), \
     set_config('enable_mergejoin', 'off', true), \
     set_config('plan_cache_mode', 'force_custom_plan', true) \
     FROM projection_checkpoints WHERE name = $1 AND version = $2";

/// The advisory lock a live batch holds shared and a rebuild's swap holds exclusively.
pub(crate) fn batch_lock_key(name: &str) -> String {
    format!("eventdesk:projection-batch:{name}")
}

impl Sink {
    /// The live read model of `p`.
    pub(crate) fn live(p: &dyn Projection) -> Self {
        Self {
            name: p.name().to_owned(),
            version: p.version(),
            shadow: None,
            dead_letter_name: p.name().to_owned(),
            update_sql: Some(CHECKPOINT_UPDATE.replace("{table}", "projection_checkpoints")),
            load_sql: CHECKPOINT_LOAD.replace("{table}", "projection_checkpoints"),
        }
    }

    /// The shadow copy of `p` in `schema` (a rebuild).
    pub(crate) fn shadow(p: &dyn Projection, schema: &str) -> Self {
        Self {
            name: p.name().to_owned(),
            version: p.version(),
            shadow: Some(quote_ident(schema)),
            dead_letter_name: format!("rebuild:{}", p.name()),
            update_sql: Some(CHECKPOINT_UPDATE.replace("{table}", "public.projection_rebuilds")),
            load_sql: CHECKPOINT_LOAD.replace("{table}", "public.projection_rebuilds"),
        }
    }

    /// One partition of a batch of a rebuild's bulk phase (see
    /// [`Projection::streams_independent`]): like [`shadow`](Self::shadow), but the batch
    /// does not move the checkpoint.
    pub(crate) fn shadow_partition(p: &dyn Projection, schema: &str) -> Self {
        Self {
            update_sql: None,
            ..Self::shadow(p, schema)
        }
    }

    /// The name dead letters of this sink are recorded under.
    pub(crate) fn dead_letter_name(&self) -> &str {
        &self.dead_letter_name
    }

    /// Opens the batch's transaction on `tx`. `Err(Stale)` if the checkpoint is no longer `cp`.
    async fn begin(&self, tx: &mut PgConnection, cp: Checkpoint) -> Result<(), BatchError> {
        let fail = |e: sqlx::Error| BatchError::Failed(e.to_string());
        let stored = match &self.shadow {
            Some(schema) => {
                // The rebuild is the only writer of its shadow (it holds the rebuild lock), so
                // the guarded update at the end suffices; nothing to lock here.
                sqlx::query(
                    "SELECT set_config('synchronous_commit', 'off', true), \
                     set_config('search_path', $1, true)",
                )
                .bind(schema)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
                return Ok(());
            }
            None => {
                let row = sqlx::query(LIVE_BEGIN)
                    .bind(&self.name)
                    .bind(self.version)
                    .bind(batch_lock_key(&self.name))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(fail)?;
                let Some(row) = row else {
                    return Err(BatchError::Stale);
                };
                let locked: bool = row.try_get(0).map_err(fail)?;
                if locked {
                    checkpoint_of(&row, 1).map_err(fail)?
                } else {
                    // A swap holds or awaits the lock: wait for it, then look again (a swap
                    // moves the checkpoint).
                    sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))")
                        .bind(batch_lock_key(&self.name))
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                    let row = sqlx::query(&self.load_sql)
                        .bind(&self.name)
                        .bind(self.version)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(fail)?
                        .ok_or(BatchError::Stale)?;
                    checkpoint_of(&row, 0).map_err(fail)?
                }
            }
        };
        if stored == cp {
            Ok(())
        } else {
            Err(BatchError::Stale)
        }
    }
}

/// The checkpoint in columns `i` (txid as int8) and `i + 1` (position) of `row`.
fn checkpoint_of(row: &sqlx::postgres::PgRow, i: usize) -> Result<Checkpoint, sqlx::Error> {
    Ok(Checkpoint {
        transaction_id: row.try_get::<i64, _>(i)? as u64,
        position: row.try_get(i + 1)?,
    })
}

/// Quotes an SQL identifier.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

enum BatchError {
    /// Another runner moved the checkpoint: reload and go on.
    Stale,
    /// The handler (or the database) failed.
    Failed(String),
}

/// The outcome of a catch-up run.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchUp {
    /// Events applied (dead-lettered ones included).
    pub events: u64,
    /// Batches committed.
    pub batches: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl ProjectorRuntime {
    /// A runtime over `store` with `projections`.
    pub fn new(
        store: PgEventStore,
        projections: Vec<Arc<dyn Projection>>,
        config: RuntimeConfig,
    ) -> Self {
        Self {
            store,
            projections,
            reads: Arc::new(SharedReads::new(SHARED_READS, SHARED_EVENTS)),
            config,
            progress: Progress::default(),
        }
    }

    /// The events after `cp` (one batch), read once for every projection asking for them.
    async fn read_batch(&self, cp: Checkpoint) -> Result<Arc<[RecordedEvent]>, StoreError> {
        let limit = self.config.batch_size;
        self.reads
            .read(cp, limit, || self.store.read_all(cp, limit))
            .await
    }

    /// The in-process progress signal (for read-your-writes waits).
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// The registered projections.
    pub fn projections(&self) -> &[Arc<dyn Projection>] {
        &self.projections
    }

    /// Spawns one task per projection.
    pub fn spawn(&self) -> RuntimeHandle {
        let stop = StopToken::new();
        let tasks = self
            .projections
            .iter()
            .map(|p| {
                let me = self.clone();
                let p = p.clone();
                let stop = stop.clone();
                tokio::spawn(async move { me.run_projection(p, stop).await })
            })
            .collect();
        RuntimeHandle { stop, tasks }
    }

    /// Leader election loop for one projection.
    async fn run_projection(&self, p: Arc<dyn Projection>, stop: StopToken) {
        let name = p.name();
        loop {
            if stop.is_cancelled() {
                return;
            }
            match self.try_lead(&*p).await {
                Ok(Some(lock_conn)) => {
                    tracing::info!(projection = name, "became leader");
                    self.progress.set_leading(name, true);
                    let led = self.lead(&*p, lock_conn, &stop).await;
                    self.progress.set_leading(name, false);
                    if let Err(e) = led {
                        tracing::warn!(projection = name, error = %e, "leadership lost");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(projection = name, error = %e, "leader election failed"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.config.leader_retry) => {}
            }
        }
    }

    /// Takes the projection's advisory lock on a dedicated connection, or returns `None`.
    /// The lock lives exactly as long as that connection: if it dies, a standby takes over.
    async fn try_lead(&self, p: &dyn Projection) -> Result<Option<PgConnection>, sqlx::Error> {
        let opts = self.store.pool().connect_options();
        let mut conn = PgConnection::connect_with(&opts).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(lock_key(p))
            .fetch_one(&mut conn)
            .await?;
        if got {
            self.ensure_checkpoint(p).await?;
            Ok(Some(conn))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    async fn ensure_checkpoint(&self, p: &dyn Projection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, version) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(p.name())
        .bind(p.version())
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    pub(crate) async fn load_checkpoint_of(&self, sink: &Sink) -> Result<Checkpoint, sqlx::Error> {
        let row = sqlx::query(&sink.load_sql)
            .bind(&sink.name)
            .bind(sink.version)
            .fetch_one(self.store.pool())
            .await?;
        checkpoint_of(&row, 0)
    }

    /// Runs as the leader until stopped or the lock connection dies.
    async fn lead(
        &self,
        p: &dyn Projection,
        mut lock_conn: PgConnection,
        stop: &StopToken,
    ) -> Result<(), String> {
        let sink = Sink::live(p);
        let mut rx = self.store.waker().subscribe();
        let mut cp = self
            .load_checkpoint_of(&sink)
            .await
            .map_err(|e| e.to_string())?;
        let mut last_check = Instant::now();
        let mut poll = FIRST_POLL;
        let mut prefetched: Option<Arc<[RecordedEvent]>> = None;
        loop {
            if stop.is_cancelled() {
                let _ = lock_conn.close().await;
                return Ok(());
            }
            if last_check.elapsed() >= self.config.lock_check {
                sqlx::query("SELECT 1")
                    .execute(&mut lock_conn)
                    .await
                    .map_err(|e| format!("lock connection: {e}"))?;
                last_check = Instant::now();
            }
            rx.borrow_and_update();
            let events = match prefetched.take() {
                Some(ev) if !ev.is_empty() => ev,
                _ => match self.read_batch(cp).await {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::warn!(projection = p.name(), error = %e, "read failed");
                        tokio::time::sleep(self.config.max_poll).await;
                        continue;
                    }
                },
            };
            if events.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = wait_for_news(&mut rx, poll) => {}
                }
                poll = (poll * 2).min(self.config.max_poll);
                continue;
            }
            poll = FIRST_POLL;
            let (done, next) = self.process_prefetching(p, &sink, cp, &events).await;
            match done {
                Ok(c) => {
                    cp = c;
                    prefetched = next;
                }
                Err(()) => {
                    // Another runner, or a rebuild's swap (ADR 0013), moved the checkpoint.
                    cp = self
                        .load_checkpoint_of(&sink)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
    }

    /// Applies `events` while reading the batch after them. The prefetched batch is returned
    /// only if the checkpoint ended exactly after `events` (otherwise it is discarded).
    async fn process_prefetching(
        &self,
        p: &dyn Projection,
        sink: &Sink,
        cp: Checkpoint,
        events: &[RecordedEvent],
    ) -> (Result<Checkpoint, ()>, Option<Arc<[RecordedEvent]>>) {
        let expected = events.last().map(RecordedEvent::checkpoint).unwrap_or(cp);
        let (done, next) =
            tokio::join!(self.process(p, sink, cp, events), self.read_batch(expected));
        let next = match (&done, next) {
            (Ok(c), Ok(next)) if *c == expected => Some(next),
            _ => None,
        };
        (done, next)
    }

    /// Applies `events` (retrying, isolating and dead-lettering as needed). Returns the new
    /// checkpoint, or `Err(())` if another runner moved the checkpoint meanwhile.
    pub(crate) async fn process(
        &self,
        p: &dyn Projection,
        sink: &Sink,
        cp: Checkpoint,
        events: &[RecordedEvent],
    ) -> Result<Checkpoint, ()> {
        let mut last_err = String::new();
        for attempt in 0..self.config.max_retries.max(1) {
            match self.apply_tx(p, sink, cp, events, None).await {
                Ok(next) => return Ok(next),
                Err(BatchError::Stale) => return Err(()),
                Err(BatchError::Failed(e)) => {
                    tracing::warn!(projection = p.name(), attempt, error = %e, "batch failed");
                    last_err = e;
                    self.backoff(attempt).await;
                }
            }
        }
        if events.len() == 1 {
            return self.dead_letter(p, sink, cp, &events[0], &last_err).await;
        }
        // Isolate the poison event(s): one event per transaction.
        let mut cp = cp;
        for ev in events {
            cp = self.process_one(p, sink, cp, ev).await?;
        }
        Ok(cp)
    }

    async fn process_one(
        &self,
        p: &dyn Projection,
        sink: &Sink,
        cp: Checkpoint,
        ev: &RecordedEvent,
    ) -> Result<Checkpoint, ()> {
        let mut last_err = String::new();
        for attempt in 0..self.config.max_retries.max(1) {
            match self
                .apply_tx(p, sink, cp, std::slice::from_ref(ev), None)
                .await
            {
                Ok(next) => return Ok(next),
                Err(BatchError::Stale) => return Err(()),
                Err(BatchError::Failed(e)) => {
                    last_err = e;
                    self.backoff(attempt).await;
                }
            }
        }
        self.dead_letter(p, sink, cp, ev, &last_err).await
    }

    async fn dead_letter(
        &self,
        p: &dyn Projection,
        sink: &Sink,
        cp: Checkpoint,
        ev: &RecordedEvent,
        err: &str,
    ) -> Result<Checkpoint, ()> {
        tracing::error!(
            projection = sink.dead_letter_name(),
            position = ev.global_position,
            event_type = %ev.event_type,
            tenant_id = %ev.tenant_id,
            error = %err,
            "poison event dead-lettered; projection degraded"
        );
        loop {
            match self
                .apply_tx(p, sink, cp, std::slice::from_ref(ev), Some(err))
                .await
            {
                Ok(next) => return Ok(next),
                Err(BatchError::Stale) => return Err(()),
                Err(BatchError::Failed(e)) => {
                    tracing::warn!(projection = p.name(), error = %e, "dead-letter write failed");
                    tokio::time::sleep(self.config.max_poll).await;
                }
            }
        }
    }

    async fn backoff(&self, attempt: u32) {
        let d = self.config.retry_backoff * 2u32.saturating_pow(attempt.min(8));
        tokio::time::sleep(d).await;
    }

    /// One transaction: apply the batch (or, with `dead_letter`, record the single event as
    /// dead instead) and move the checkpoint from `cp` to the batch's last event.
    async fn apply_tx(
        &self,
        p: &dyn Projection,
        sink: &Sink,
        cp: Checkpoint,
        events: &[RecordedEvent],
        dead_letter: Option<&str>,
    ) -> Result<Checkpoint, BatchError> {
        let fail = |e: sqlx::Error| BatchError::Failed(e.to_string());
        let Some(last) = events.last() else {
            return Ok(cp);
        };
        let mut tx = self.store.pool().begin().await.map_err(fail)?;
        // Read models are derived data and the checkpoint commits atomically with them: a crash
        // can only lose the latest batches *together with* their checkpoint, which are then
        // applied again from the log. So these commits need not wait for the WAL flush (the
        // events themselves are always committed durably). See ADR 0005. `begin` also takes
        // the batch lock (live) or sets the shadow search path (rebuild).
        if let Err(e) = sink.begin(&mut tx, cp).await {
            let _ = tx.rollback().await;
            return Err(e);
        }
        match dead_letter {
            None => p
                .apply(&mut tx, events)
                .await
                .map_err(|e| BatchError::Failed(e.to_string()))?,
            Some(err) => {
                sqlx::query(
                    "INSERT INTO public.projection_dead_letters (projection, \
                     projection_version, tenant_id, global_position, transaction_id, event_id, \
                     event_type, error, attempts) \
                     VALUES ($1, $2, $3, $4, $5::int8::text::xid8, $6, $7, $8, $9) \
                     ON CONFLICT (projection, projection_version, event_id) DO UPDATE \
                     SET error = EXCLUDED.error, attempts = projection_dead_letters.attempts \
                     + EXCLUDED.attempts, resolved_at = NULL",
                )
                .bind(sink.dead_letter_name())
                .bind(sink.version)
                .bind(last.tenant_id.0)
                .bind(last.global_position)
                .bind(last.transaction_id as i64)
                .bind(last.event_id)
                .bind(&last.event_type)
                .bind(err)
                .bind(self.config.max_retries as i32)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            }
        }
        let next = last.checkpoint();
        let Some(update_sql) = &sink.update_sql else {
            tx.commit().await.map_err(fail)?;
            return Ok(next);
        };
        let done = sqlx::query(update_sql)
            .bind(&sink.name)
            .bind(sink.version)
            .bind(next.transaction_id as i64)
            .bind(next.position)
            .bind(last.recorded_at)
            .bind(events.len() as i64)
            .bind(dead_letter.is_some())
            .bind(dead_letter)
            .bind(cp.transaction_id as i64)
            .bind(cp.position)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        if done.rows_affected() != 1 {
            let _ = tx.rollback().await;
            return Err(BatchError::Stale);
        }
        tx.commit().await.map_err(fail)?;
        if sink.shadow.is_none() {
            self.progress.publish(p.name(), next);
        }
        Ok(next)
    }

    /// Runs one projection from its checkpoint up to the current head in this task, without
    /// leadership (for benchmarks and tests). Returns the work done.
    ///
    /// "The head" is every transaction that had started when the call began: the horizon may
    /// lag behind it while another transaction of the cluster is open, so an empty read only
    /// ends the catch-up once the horizon has passed every such transaction.
    pub async fn catch_up(&self, p: &dyn Projection) -> Result<CatchUp, String> {
        let started = Instant::now();
        let sink = Sink::live(p);
        let target = snapshot_edge(self.store.pool())
            .await
            .map_err(|e| e.to_string())?;
        self.ensure_checkpoint(p).await.map_err(|e| e.to_string())?;
        let mut cp = self
            .load_checkpoint_of(&sink)
            .await
            .map_err(|e| e.to_string())?;
        let mut out = CatchUp::default();
        let mut events = self.read_batch(cp).await.map_err(|e| e.to_string())?;
        loop {
            if events.is_empty() {
                let passed = horizon(self.store.pool())
                    .await
                    .map_err(|e| e.to_string())?
                    >= target;
                if !passed {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                // The empty read may predate the horizon check: only a read made after the
                // horizon passed the target proves that nothing below it is left.
                events = self.read_batch(cp).await.map_err(|e| e.to_string())?;
                if passed && events.is_empty() {
                    break;
                }
                continue;
            }
            let (done, next) = self.process_prefetching(p, &sink, cp, &events).await;
            cp = done.map_err(|()| "checkpoint moved by another runner".to_owned())?;
            out.events += events.len() as u64;
            out.batches += 1;
            events = match next {
                Some(n) => n,
                None => self.read_batch(cp).await.map_err(|e| e.to_string())?,
            };
        }
        out.elapsed = started.elapsed();
        Ok(out)
    }
}

/// `xmax` of a fresh snapshot: every transaction that has started so far is below it.
pub(crate) async fn snapshot_edge(pool: &sqlx::PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8")
        .fetch_one(pool)
        .await
}

/// The horizon (ADR 0002): every transaction below it has finished.
pub(crate) async fn horizon(pool: &sqlx::PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::int8")
        .fetch_one(pool)
        .await
}

fn lock_key(p: &dyn Projection) -> String {
    format!("eventdesk:projection:{}", p.name())
}
