//! `eventdesk audit …`: the audit trail from the command line (issue #6, ADR 0010).
//!
//! **Owns:** `audit log` (who did what, when, in answer to which request), `audit show` (an
//! aggregate's state as of an instant, folded with the domain's own `evolve`), `audit verify`
//! (hash chains, version continuity, decoding and tenant checkpoints, over the database or an
//! exported file), `audit export` (JSONL that can be verified offline, or CSV) and
//! `audit checkpoint`. Tables on stdout by default, JSON/JSONL with `--json`; failures exit
//! non-zero.
//!
//! **Must not:** write events, or hold more than a batch of the log in memory: every command
//! streams rows in the order it needs them.

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand, ValueEnum};
use eventdesk_api::Config;
use eventdesk_domain::registry;
use eventdesk_domain::{StreamId, TenantId};
use eventdesk_projections::queries::as_of::{events_as_of, state_as_of};
use eventdesk_store::checkpoint::{
    CheckpointProblem, CheckpointVerifier, RunningDigest, TenantCheckpoint,
    create_tenant_checkpoint, load_checkpoints,
};
use eventdesk_store::hash::{ChainFault, ChainVerifier, DigestInput, canonical_json, event_digest};
use eventdesk_store::{Checkpoint, Db, EventMetadata, EventStore, PgEventStore, Upcasters};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;
use uuid::Uuid;

/// The first line of a JSONL export names this format.
const EXPORT_FORMAT: &str = "eventdesk-audit-export/v1";
/// Rows handed from the reading task to the checking one at a time.
const BATCH: usize = 512;

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// `eventdesk audit …`.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List a tenant's events with actor, request id and correlation id (log order).
    Log(LogArgs),
    /// Show an aggregate's state as of an instant, replayed with the domain's own `evolve`.
    Show(ShowArgs),
    /// Verify hash chains, version continuity, decoding and tenant checkpoints (database or
    /// an exported file); reports the first bad event and exits non-zero on any problem.
    Verify(VerifyArgs),
    /// Export a tenant's events (JSONL verifiable offline with `verify --file`, or CSV).
    Export(ExportArgs),
    /// Take a tenant checkpoint now: a chained digest of the tenant's log; publish its digest
    /// outside the database to anchor it.
    Checkpoint(CheckpointArgs),
}

/// `audit log`.
#[derive(Args, Debug)]
pub struct LogArgs {
    /// Tenant id.
    #[arg(long)]
    tenant: Uuid,
    /// Only this stream (aggregate id).
    #[arg(long)]
    stream: Option<Uuid>,
    /// Only this event type, e.g. IncidentUpdated.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Only events of this actor, e.g. user:<uuid> or system:cli.
    #[arg(long)]
    actor: Option<String>,
    /// Recorded at or after this instant (RFC 3339).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Recorded strictly before this instant (RFC 3339).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// At most this many events.
    #[arg(long)]
    limit: Option<i64>,
    /// One JSON object per line (with the payload) instead of a table.
    #[arg(long)]
    json: bool,
}

/// `audit show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Tenant id.
    #[arg(long)]
    tenant: Uuid,
    /// Stream (aggregate) id.
    #[arg(long)]
    stream: Uuid,
    /// The instant (RFC 3339): events recorded at or before it are replayed [default: now].
    #[arg(long)]
    at: Option<DateTime<Utc>>,
    /// Compact JSON on one line instead of pretty-printed.
    #[arg(long)]
    json: bool,
}

/// `audit verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Only this tenant [default: every tenant]. With --file: the tenant the file must be of.
    #[arg(long)]
    tenant: Option<Uuid>,
    /// Verify a JSONL export offline instead of the database.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Export formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per event, with a header, the tenant checkpoints and a trailer;
    /// verifiable offline with `audit verify --file`.
    Jsonl,
    /// The same columns as CSV (data and metadata as JSON text), for spreadsheets.
    Csv,
}

/// `audit export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Tenant id.
    #[arg(long)]
    tenant: Uuid,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: ExportFormat,
    /// Events recorded at or after this instant (RFC 3339).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Events recorded strictly before this instant (RFC 3339).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// Write to this file [default: stdout].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `audit checkpoint`.
#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// Tenant id.
    #[arg(long)]
    tenant: Uuid,
    /// The checkpoint as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `audit …`.
pub async fn run(command: AuditCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(a) if a.file.is_some() => verify_file(a).await,
        command => {
            let db = connect(config).await?;
            let r = match command {
                AuditCommand::Log(a) => log(&db.pool, a).await,
                AuditCommand::Show(a) => show(&db.pool, a).await,
                AuditCommand::Verify(a) => verify_db(&db.pool, a).await,
                AuditCommand::Export(a) => export(&db.pool, a).await,
                AuditCommand::Checkpoint(a) => checkpoint(&db.pool, a).await,
            };
            db.pool.close().await;
            r
        }
    }
}

/// The system pool (BYPASSRLS: the audit reads across tenants, like the projector).
async fn connect(config: &Config) -> anyhow::Result<Db> {
    let mut cfg = config.system_db();
    cfg.max_connections = 4;
    Db::connect(cfg)
        .await
        .context("connecting to the database (system role)")
}

// ---------------------------------------------------------------------------------------------
// Output helpers
// ---------------------------------------------------------------------------------------------

/// Stdout, buffered.
fn stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
}

/// A closed pipe (`| head`) ends the output quietly.
fn quiet_pipe(r: std::io::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the output"),
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Parses 64 hex digits.
fn unhex32(s: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(b[2 * i])? << 4) | nibble(b[2 * i + 1])?;
    }
    Some(out)
}

fn hash32(h: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let n = h.len().min(32);
    out[..n].copy_from_slice(&h[..n]);
    out
}

// ---------------------------------------------------------------------------------------------
// audit log
// ---------------------------------------------------------------------------------------------

/// One line of `audit log --json`.
#[derive(Serialize)]
struct LogLine<'a> {
    position: i64,
    transaction_id: i64,
    recorded_at: String,
    stream_type: &'a str,
    stream_id: Uuid,
    version: i64,
    event_id: Uuid,
    event_type: &'a str,
    schema_version: i32,
    actor: Option<&'a Value>,
    request_id: Option<&'a Value>,
    correlation_id: Option<&'a Value>,
    causation_id: Option<&'a Value>,
    data: &'a Value,
}

async fn log(pool: &PgPool, a: LogArgs) -> anyhow::Result<()> {
    if let Some(l) = a.limit {
        anyhow::ensure!(l >= 0, "--limit must not be negative");
    }
    // The log order (ADR 0002). With --stream, the stream's own index and version order.
    let order = if a.stream.is_some() {
        "version"
    } else {
        "transaction_id, global_position"
    };
    let sql = format!(
        "SELECT global_position, transaction_id::text::int8, recorded_at, stream_type, \
         stream_id, version, event_id, event_type, schema_version, data, metadata FROM events \
         WHERE tenant_id = $1 \
           AND ($2::uuid IS NULL OR stream_id = $2) \
           AND ($3::text IS NULL OR event_type = $3) \
           AND ($4::text IS NULL OR metadata->>'actor' = $4) \
           AND ($5::timestamptz IS NULL OR recorded_at >= $5) \
           AND ($6::timestamptz IS NULL OR recorded_at < $6) \
         ORDER BY {order} LIMIT $7"
    );
    let mut rows = sqlx::query(&sql)
        .bind(a.tenant)
        .bind(a.stream)
        .bind(a.event_type.as_deref())
        .bind(a.actor.as_deref())
        .bind(a.since)
        .bind(a.until)
        .bind(a.limit)
        .fetch(pool);
    let mut out = stdout();
    if !a.json {
        quiet_pipe(writeln!(
            out,
            "{:>10}  {:<27}  {:<45}  {:>5}  {:<26}  {:<42}  {:<36}  CORRELATION_ID",
            "POSITION", "RECORDED_AT", "STREAM", "VER", "EVENT_TYPE", "ACTOR", "REQUEST_ID"
        ))?;
    }
    let mut n = 0u64;
    while let Some(row) = rows.try_next().await? {
        n += 1;
        let position: i64 = row.try_get(0)?;
        let recorded_at: DateTime<Utc> = row.try_get(2)?;
        let stream_type: &str = row.try_get(3)?;
        let stream_id: Uuid = row.try_get(4)?;
        let version: i64 = row.try_get(5)?;
        let event_type: &str = row.try_get(7)?;
        let Json(metadata): Json<Value> = row.try_get(10)?;
        let meta = |k: &str| metadata.get(k).and_then(Value::as_str).unwrap_or("");
        let written = if a.json {
            let Json(data): Json<Value> = row.try_get(9)?;
            let line = LogLine {
                position,
                transaction_id: row.try_get(1)?,
                recorded_at: ts(recorded_at),
                stream_type,
                stream_id,
                version,
                event_id: row.try_get(6)?,
                event_type,
                schema_version: row.try_get(8)?,
                actor: metadata.get("actor"),
                request_id: metadata.get("request_id"),
                correlation_id: metadata.get("correlation_id"),
                causation_id: metadata.get("causation_id"),
                data: &data,
            };
            serde_json::to_writer(&mut out, &line)
                .map_err(std::io::Error::other)
                .and_then(|()| writeln!(out))
        } else {
            writeln!(
                out,
                "{:>10}  {:<27}  {:<45}  {:>5}  {:<26}  {:<42}  {:<36}  {}",
                position,
                ts(recorded_at),
                format!("{stream_type}/{stream_id}"),
                version,
                event_type,
                meta("actor"),
                meta("request_id"),
                meta("correlation_id"),
            )
        };
        if let Err(e) = written {
            return quiet_pipe(Err(e));
        }
    }
    if !a.json && n == 0 {
        quiet_pipe(writeln!(out, "(no events)"))?;
    }
    quiet_pipe(out.flush())
}

// ---------------------------------------------------------------------------------------------
// audit show
// ---------------------------------------------------------------------------------------------

/// What `audit show` prints.
#[derive(Serialize)]
struct Shown<'a> {
    tenant_id: Uuid,
    stream_type: &'a str,
    stream_id: Uuid,
    /// The instant asked for.
    as_of: String,
    /// The last version folded, and when it was recorded.
    version: i64,
    recorded_at: String,
    /// The stream's version now.
    head_version: i64,
    chain_verified: bool,
    state: Value,
}

async fn show(pool: &PgPool, a: ShowArgs) -> anyhow::Result<()> {
    let at = a.at.unwrap_or_else(Utc::now);
    let tenant = TenantId(a.tenant);
    let stream = StreamId(a.stream);
    let store = PgEventStore::new(pool.clone(), Upcasters::new());
    let events = store
        .read_stream(tenant, stream, 1)
        .await
        .context("reading the stream")?;
    let Some(first) = events.first() else {
        bail!("tenant {} has no stream {}", a.tenant, a.stream);
    };
    let stream_type = first.stream_type.clone();
    let upto = events_as_of(&events, at);
    let Some(last) = upto.last() else {
        bail!(
            "{stream_type} {} did not exist yet at {} (its first event was recorded at {})",
            a.stream,
            ts(at),
            ts(first.recorded_at)
        );
    };
    let state = state_as_of(&stream_type, upto)?;
    let chain = eventdesk_store::verify::verify_stream(pool, tenant, stream)
        .await
        .context("verifying the stream's hash chain")?;
    let out = Shown {
        tenant_id: a.tenant,
        stream_type: &stream_type,
        stream_id: a.stream,
        as_of: ts(at),
        version: last.version,
        recorded_at: ts(last.recorded_at),
        head_version: events.last().map_or(0, |e| e.version),
        chain_verified: chain.is_ok(),
        state,
    };
    let text = if a.json {
        serde_json::to_string(&out)?
    } else {
        serde_json::to_string_pretty(&out)?
    };
    let mut w = stdout();
    quiet_pipe(writeln!(w, "{text}").and_then(|()| w.flush()))?;
    if let Err(bad) = chain {
        bail!(
            "the stream fails verification at position {} (event {}): {:?}; run `audit verify`",
            bad.global_position,
            bad.event_id,
            bad.fault
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Events as the verifier and the exporter see them
// ---------------------------------------------------------------------------------------------

/// One stored event exactly as stored (no upcasting: the hash covers the stored form).
#[derive(Debug, Clone)]
struct EventRow {
    tenant_id: Uuid,
    stream_type: String,
    stream_id: Uuid,
    version: i64,
    event_id: Uuid,
    event_type: String,
    schema_version: i32,
    data: Value,
    metadata: Value,
    recorded_at: DateTime<Utc>,
    hash: Vec<u8>,
    position: i64,
    txid: u64,
    /// The stored hash of `version - 1`, when the preceding version is not the preceding row.
    previous_hash: Option<[u8; 32]>,
    /// Line of the file (offline verification).
    line: Option<u64>,
    /// The order-free part of the checks, computed on a worker thread ([`precompute`]).
    pre: Option<Precomputed>,
    /// `data` and `metadata` as the database printed them, not parsed yet (scans with
    /// [`Scan::raw_json`]): parsing is left to the worker threads.
    raw_json: Option<(String, String)>,
}

/// The columns [`event_from_row`] reads, in order.
const ROW_COLUMNS: &str = "e.tenant_id, e.stream_type, e.stream_id, e.version, e.event_id, \
     e.event_type, e.schema_version, e.data, e.metadata, e.recorded_at, e.hash, \
     e.global_position, e.transaction_id::text::int8";

fn event_from_row(row: &PgRow, raw: bool) -> anyhow::Result<EventRow> {
    let (data, metadata, raw_json) = if raw {
        (
            Value::Null,
            Value::Null,
            Some((row.try_get(7)?, row.try_get(8)?)),
        )
    } else {
        let Json(data): Json<Value> = row.try_get(7)?;
        let Json(metadata): Json<Value> = row.try_get(8)?;
        (data, metadata, None)
    };
    let previous: Option<Vec<u8>> = row.try_get(13)?;
    Ok(EventRow {
        tenant_id: row.try_get(0)?,
        stream_type: row.try_get(1)?,
        stream_id: row.try_get(2)?,
        version: row.try_get(3)?,
        event_id: row.try_get(4)?,
        event_type: row.try_get(5)?,
        schema_version: row.try_get(6)?,
        data,
        metadata,
        recorded_at: row.try_get(9)?,
        hash: row.try_get(10)?,
        position: row.try_get(11)?,
        txid: row.try_get::<i64, _>(12)? as u64,
        previous_hash: previous.map(|p| hash32(&p)),
        line: None,
        pre: None,
        raw_json,
    })
}

/// What to read: one tenant or all, an optional time window, and whether to look up the hash
/// before each run of versions (exports).
#[derive(Debug, Clone, Copy)]
struct Scan {
    tenant: Option<Uuid>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    previous_hashes: bool,
    /// Read `data` and `metadata` as text and leave the parsing to the consumer's workers
    /// (the reading task is one thread; parsing is most of its cost).
    raw_json: bool,
}

impl Scan {
    /// Events in `(tenant, stream, version)` order: each stream's versions together, so chains
    /// are checked with constant memory, and streams in the order checkpoint digests use.
    fn sql(&self) -> String {
        let (previous, window) = if self.previous_hashes {
            (
                "CASE WHEN e.version > 1 \
                      AND lag(e.version) OVER w IS DISTINCT FROM e.version - 1 \
                 THEN (SELECT p.hash FROM events p WHERE p.tenant_id = e.tenant_id \
                       AND p.stream_id = e.stream_id AND p.version = e.version - 1) END",
                "WINDOW w AS (PARTITION BY e.tenant_id, e.stream_id ORDER BY e.version)",
            )
        } else {
            ("NULL::bytea", "")
        };
        let columns = if self.raw_json {
            ROW_COLUMNS.replace("e.data, e.metadata", "e.data::text, e.metadata::text")
        } else {
            ROW_COLUMNS.to_owned()
        };
        format!(
            "SELECT {columns}, {previous} FROM events e \
             WHERE ($1::uuid IS NULL OR e.tenant_id = $1) \
               AND ($2::timestamptz IS NULL OR e.recorded_at >= $2) \
               AND ($3::timestamptz IS NULL OR e.recorded_at < $3) \
             {window} ORDER BY e.tenant_id, e.stream_id, e.version"
        )
    }
}

/// Reads `scan` into `tx` in batches (a separate task, so that reading and decoding rows
/// overlaps with checking or writing them). The database streams rows as they are consumed;
/// at most a few batches are in memory.
async fn read_events(
    pool: PgPool,
    scan: Scan,
    tx: tokio::sync::mpsc::Sender<Vec<EventRow>>,
) -> anyhow::Result<()> {
    let mut conn = pool.begin().await?;
    // Walk the (tenant_id, stream_id, version) index rather than sort the whole table.
    sqlx::query("SET LOCAL enable_sort = off")
        .execute(&mut *conn)
        .await?;
    let sql = scan.sql();
    let mut rows = sqlx::query(&sql)
        .bind(scan.tenant)
        .bind(scan.since)
        .bind(scan.until)
        .fetch(&mut *conn);
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(row) = rows.try_next().await? {
        batch.push(event_from_row(&row, scan.raw_json)?);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if tx.send(full).await.is_err() {
                return Ok(()); // the consumer stopped
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
    drop(rows);
    conn.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// audit verify
// ---------------------------------------------------------------------------------------------

/// A bad event.
#[derive(Debug, Clone, Serialize)]
struct Problem {
    tenant_id: Uuid,
    stream_type: String,
    stream_id: Uuid,
    version: i64,
    position: i64,
    event_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    kind: &'static str,
    message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        write!(
            f,
            "tenant {}, stream {}/{}, version {}, position {}, event {}: {}",
            self.tenant_id,
            self.stream_type,
            self.stream_id,
            self.version,
            self.position,
            self.event_id,
            self.message
        )
    }
}

fn chain_message(fault: &ChainFault) -> (&'static str, String) {
    match fault {
        ChainFault::VersionGap { expected: 1, found } => (
            "version_gap",
            format!("the stream starts at version {found}: versions 1..{found} are missing"),
        ),
        ChainFault::VersionGap { expected, found } if found > expected => (
            "version_gap",
            format!(
                "version {expected} is missing (version {found} follows version {})",
                expected - 1
            ),
        ),
        ChainFault::VersionGap { expected, found } => (
            "version_order",
            format!("version {found} appears again where version {expected} was due"),
        ),
        ChainFault::HashMismatch { .. } => (
            "hash_mismatch",
            "the stored hash does not match the chain recomputed from the event's content: \
             this event, or the one before it, was altered, removed or reordered"
                .to_owned(),
        ),
    }
}

/// The incremental verifier: feed events in `(tenant, stream, version)` order.
/// What can be checked of one event without its neighbours: its content digest (the costly
/// canonical-JSON SHA-256 that the chain link needs), and whether its metadata and payload
/// decode. Computed for batches on worker threads; the chain, the version continuity and the
/// checkpoints are then walked in order with these results.
#[derive(Debug, Clone)]
struct Precomputed {
    digest: [u8; 32],
    metadata: Result<(), String>,
    /// `None` for streams the domain does not decode (chain-checked only).
    payload: Option<Result<(), String>>,
}

fn precompute(e: &mut EventRow, upcasters: &Upcasters) {
    if let Some((data, metadata)) = e.raw_json.take() {
        // Stored as jsonb, so both parse; if not, the digest of Null cannot match the hash.
        e.data = serde_json::from_str(&data).unwrap_or(Value::Null);
        e.metadata = serde_json::from_str(&metadata).unwrap_or(Value::Null);
    }
    let (data, metadata) = (canonical_json(&e.data), canonical_json(&e.metadata));
    let digest = event_digest(&DigestInput {
        tenant_id: e.tenant_id,
        stream_type: &e.stream_type,
        stream_id: e.stream_id,
        event_id: e.event_id,
        event_type: &e.event_type,
        schema_version: e.schema_version,
        data: &data,
        metadata: &metadata,
        recorded_at: e.recorded_at,
    });
    let metadata = EventMetadata::deserialize(&e.metadata)
        .map(|_| ())
        .map_err(|err| format!("the metadata does not decode: {err}"));
    let payload = registry::is_aggregate(&e.stream_type).then(|| {
        let data = std::mem::take(&mut e.data);
        upcasters
            .upcast(&e.event_type, e.schema_version, data)
            .and_then(|(v, data)| {
                registry::check_event(&e.stream_type, &e.event_type, v, &data).unwrap_or(Ok(()))
            })
    });
    e.pre = Some(Precomputed {
        digest,
        metadata,
        payload,
    });
}

struct Verifier {
    upcasters: Upcasters,
    /// Checkpoints of tenants not reached yet.
    pending: BTreeMap<Uuid, Vec<TenantCheckpoint>>,
    tenant: Option<(Uuid, Option<CheckpointVerifier>)>,
    stream: Option<(Uuid, Uuid)>,
    chain: ChainVerifier,
    events: u64,
    decoded: u64,
    streams: u64,
    tenants: u64,
    chain_only_types: BTreeSet<String>,
    first: Option<Problem>,
    problems: u64,
    checkpoints_checked: u64,
    checkpoint_problems: Vec<CheckpointProblem>,
    /// Other problems (files: header, trailer, unreadable lines).
    notes: Vec<String>,
}

impl Verifier {
    fn new(checkpoints: Vec<TenantCheckpoint>) -> Self {
        let mut pending: BTreeMap<Uuid, Vec<TenantCheckpoint>> = BTreeMap::new();
        for c in checkpoints {
            pending.entry(c.tenant_id).or_default().push(c);
        }
        Self {
            upcasters: Upcasters::new(),
            pending,
            tenant: None,
            stream: None,
            chain: ChainVerifier::default(),
            events: 0,
            decoded: 0,
            streams: 0,
            tenants: 0,
            chain_only_types: BTreeSet::new(),
            first: None,
            problems: 0,
            checkpoints_checked: 0,
            checkpoint_problems: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn problem(&mut self, e: &EventRow, kind: &'static str, message: String) {
        self.problems += 1;
        if self.first.is_none() {
            self.first = Some(Problem {
                tenant_id: e.tenant_id,
                stream_type: e.stream_type.clone(),
                stream_id: e.stream_id,
                version: e.version,
                position: e.position,
                event_id: e.event_id,
                line: e.line,
                kind,
                message,
            });
        }
    }

    fn finish_tenant(&mut self) {
        if let Some((_, Some(v))) = self.tenant.take() {
            self.checkpoints_checked += v.len() as u64;
            self.checkpoint_problems.extend(v.finish());
        }
    }

    fn push(&mut self, mut e: EventRow) {
        if self.tenant.as_ref().map(|t| t.0) != Some(e.tenant_id) {
            self.finish_tenant();
            let cps = self.pending.remove(&e.tenant_id).unwrap_or_default();
            let v = (!cps.is_empty()).then(|| CheckpointVerifier::new(e.tenant_id, cps));
            self.tenant = Some((e.tenant_id, v));
            self.tenants += 1;
        }
        let key = (e.tenant_id, e.stream_id);
        let mut bad = false;
        if self.stream != Some(key) {
            if let Some(prev) = self.stream
                && key < prev
            {
                self.problem(
                    &e,
                    "stream_order",
                    format!(
                        "stream {} comes after stream {}: streams must be in ascending order \
                         (rows were moved or a stream appears twice)",
                        key.1, prev.1
                    ),
                );
                bad = true;
            }
            self.stream = Some(key);
            self.streams += 1;
            self.chain = match e.previous_hash {
                Some(p) => ChainVerifier::starting_after(e.version - 1, p),
                None => ChainVerifier::default(),
            };
        } else if let Some(p) = e.previous_hash {
            if self.chain.next_version() == e.version {
                if self.chain.head() != p {
                    self.problem(
                        &e,
                        "previous_hash",
                        "previous_hash differs from the hash of the preceding version".into(),
                    );
                    bad = true;
                }
            } else {
                self.chain = ChainVerifier::starting_after(e.version - 1, p);
            }
        }

        // 1. The hash chain and version continuity.
        if e.pre.is_none() {
            precompute(&mut e, &self.upcasters);
        }
        let Some(pre) = e.pre.take() else {
            return;
        };
        if let Err(fault) = self.chain.check_digest(e.version, &pre.digest, &e.hash) {
            if !bad {
                let (kind, message) = chain_message(&fault);
                self.problem(&e, kind, message);
                bad = true;
            }
            // Carry on from the stored hash, so one bad event is reported once.
            self.chain = ChainVerifier::starting_after(e.version, hash32(&e.hash));
        }

        // 2. The metadata and the payload decode.
        if !bad && let Err(m) = &pre.metadata {
            self.problem(&e, "metadata", m.clone());
            bad = true;
        }
        match &pre.payload {
            Some(checked) => {
                self.decoded += 1;
                if !bad && let Err(m) = checked {
                    self.problem(&e, "decode", format!("the event does not decode: {m}"));
                    bad = true;
                }
            }
            None => {
                if !self.chain_only_types.contains(&e.stream_type) {
                    self.chain_only_types.insert(e.stream_type.clone());
                }
            }
        }

        // 3. The tenant's checkpoints.
        if let Some((_, Some(v))) = &mut self.tenant {
            let at = Checkpoint {
                transaction_id: e.txid,
                position: e.position,
            };
            if let Err(o) = v.push(e.stream_id, e.version, at, &e.hash)
                && !bad
            {
                self.problem(&e, "stream_order", o.to_string());
            }
        }
        self.events += 1;
    }

    fn finish(mut self, seconds: f64) -> Report {
        self.finish_tenant();
        // Tenants with checkpoints but no events left.
        for (tenant, cps) in std::mem::take(&mut self.pending) {
            self.checkpoints_checked += cps.len() as u64;
            self.checkpoint_problems
                .extend(CheckpointVerifier::new(tenant, cps).finish());
        }
        Report {
            ok: self.problems == 0 && self.checkpoint_problems.is_empty() && self.notes.is_empty(),
            events: self.events,
            decoded: self.decoded,
            streams: self.streams,
            tenants: self.tenants,
            chain_only_stream_types: self.chain_only_types.into_iter().collect(),
            bad_events: self.problems,
            first_bad_event: self.first,
            checkpoints_verified: self.checkpoints_checked,
            checkpoint_problems: self
                .checkpoint_problems
                .iter()
                .map(|p| {
                    json!({
                        "tenant_id": p.checkpoint.tenant_id,
                        "position": p.checkpoint.position,
                        "txid": p.checkpoint.txid,
                        "created_at": ts(p.checkpoint.created_at),
                        "digest": hex(&p.checkpoint.digest),
                        "message": p.to_string(),
                    })
                })
                .collect(),
            file_problems: self.notes,
            seconds,
            events_per_second: self.events as f64 / seconds.max(1e-9),
        }
    }
}

/// What `audit verify` found.
#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    events: u64,
    /// Events of aggregates the domain decodes (the others are chain-checked only).
    decoded: u64,
    streams: u64,
    tenants: u64,
    chain_only_stream_types: Vec<String>,
    bad_events: u64,
    first_bad_event: Option<Problem>,
    checkpoints_verified: u64,
    checkpoint_problems: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    file_problems: Vec<String>,
    seconds: f64,
    events_per_second: f64,
}

impl Report {
    /// Prints the report; an error (non-zero exit) when anything is wrong.
    fn print(&self, json: bool) -> anyhow::Result<()> {
        let mut out = stdout();
        let r = if json {
            serde_json::to_string(self)
                .map_err(std::io::Error::other)
                .and_then(|s| writeln!(out, "{s}"))
        } else {
            self.write_text(&mut out)
        };
        quiet_pipe(r.and_then(|()| out.flush()))?;
        if self.ok {
            return Ok(());
        }
        let n =
            self.bad_events as usize + self.checkpoint_problems.len() + self.file_problems.len();
        Err(anyhow!("audit verify found {n} problem(s)"))
    }

    fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "audit verify: {}",
            if self.ok { "OK" } else { "FAILED" }
        )?;
        writeln!(
            out,
            "  {} events in {} streams of {} tenant(s): hash chains and version continuity; \
             {} decoded by the domain",
            self.events, self.streams, self.tenants, self.decoded
        )?;
        if !self.chain_only_stream_types.is_empty() {
            writeln!(
                out,
                "  chain-only stream types: {}",
                self.chain_only_stream_types.join(", ")
            )?;
        }
        writeln!(
            out,
            "  {} tenant checkpoint(s) verified",
            self.checkpoints_verified
        )?;
        if let Some(p) = &self.first_bad_event {
            writeln!(out, "  FIRST BAD EVENT: {p}")?;
            if self.bad_events > 1 {
                writeln!(out, "  ({} bad events in total)", self.bad_events)?;
            }
        }
        for c in &self.checkpoint_problems {
            writeln!(
                out,
                "  CHECKPOINT: {}",
                c.get("message").and_then(Value::as_str).unwrap_or("")
            )?;
        }
        for n in &self.file_problems {
            writeln!(out, "  FILE: {n}")?;
        }
        writeln!(
            out,
            "  {:.2} s, {:.0} events/s",
            self.seconds, self.events_per_second
        )
    }
}

/// Checks events from `rx` with `verifier` until the reader is done. The order-free part of
/// each batch ([`precompute`]) runs on blocking worker threads, as many batches at a time as
/// there are cores; the batches are then walked in their original order.
async fn drain(verifier: &mut Verifier, rx: tokio::sync::mpsc::Receiver<Vec<EventRow>>) {
    let upcasters = std::sync::Arc::new(verifier.upcasters.clone());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut batches = std::pin::pin!(
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
            .map(|mut batch| {
                let upcasters = upcasters.clone();
                tokio::task::spawn_blocking(move || {
                    for e in &mut batch {
                        precompute(e, &upcasters);
                    }
                    batch
                })
            })
            .buffered(workers)
    );
    while let Some(batch) = batches.next().await {
        match batch {
            Ok(batch) => batch.into_iter().for_each(|e| verifier.push(e)),
            // A panicking worker is a bug; its batch is lost to the report, so say so loudly.
            Err(e) => verifier
                .notes
                .push(format!("an internal check failed: {e}")),
        }
    }
}

async fn verify_db(pool: &PgPool, a: VerifyArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let tenant = a.tenant.map(TenantId);
    // Checkpoints first: each covers only events that had committed when it was taken, so the
    // scan that follows sees all of them.
    let checkpoints = load_checkpoints(pool, tenant)
        .await
        .context("reading tenant checkpoints (is the database migrated?)")?;
    let mut verifier = Verifier::new(checkpoints);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let scan = Scan {
        tenant: a.tenant,
        since: None,
        until: None,
        previous_hashes: false,
        raw_json: true,
    };
    let reader = tokio::spawn(read_events(pool.clone(), scan, tx));
    drain(&mut verifier, rx).await;
    reader.await.context("the reading task failed")??;
    let report = verifier.finish(started.elapsed().as_secs_f64());
    report.print(a.json)
}

// ---------------------------------------------------------------------------------------------
// Export file format
// ---------------------------------------------------------------------------------------------

/// One event line of a JSONL export (serialised from a row).
#[derive(Serialize)]
struct LineOut<'a> {
    tenant_id: Uuid,
    stream_type: &'a str,
    stream_id: Uuid,
    version: i64,
    global_position: i64,
    transaction_id: u64,
    event_id: Uuid,
    event_type: &'a str,
    schema_version: i32,
    recorded_at: DateTime<Utc>,
    data: &'a Value,
    metadata: &'a Value,
    hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_hash: Option<String>,
}

/// One event line of a JSONL export, read back.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn {
    tenant_id: Uuid,
    stream_type: String,
    stream_id: Uuid,
    version: i64,
    global_position: i64,
    transaction_id: u64,
    event_id: Uuid,
    event_type: String,
    schema_version: i32,
    recorded_at: DateTime<Utc>,
    data: Value,
    metadata: Value,
    hash: String,
    #[serde(default)]
    previous_hash: Option<String>,
}

impl<'a> LineOut<'a> {
    fn of(e: &'a EventRow) -> Self {
        Self {
            tenant_id: e.tenant_id,
            stream_type: &e.stream_type,
            stream_id: e.stream_id,
            version: e.version,
            global_position: e.position,
            transaction_id: e.txid,
            event_id: e.event_id,
            event_type: &e.event_type,
            schema_version: e.schema_version,
            recorded_at: e.recorded_at,
            data: &e.data,
            metadata: &e.metadata,
            hash: hex(&e.hash),
            previous_hash: e.previous_hash.map(|p| hex(&p)),
        }
    }
}

impl LineIn {
    fn into_row(self, line: u64) -> Result<EventRow, String> {
        let hash = unhex32(&self.hash).ok_or("hash is not 64 hex digits")?;
        let previous_hash = match self.previous_hash {
            Some(p) => Some(unhex32(&p).ok_or("previous_hash is not 64 hex digits")?),
            None => None,
        };
        Ok(EventRow {
            tenant_id: self.tenant_id,
            stream_type: self.stream_type,
            stream_id: self.stream_id,
            version: self.version,
            event_id: self.event_id,
            event_type: self.event_type,
            schema_version: self.schema_version,
            data: self.data,
            metadata: self.metadata,
            recorded_at: self.recorded_at,
            hash: hash.to_vec(),
            position: self.global_position,
            txid: self.transaction_id,
            previous_hash,
            line: Some(line),
            pre: None,
            raw_json: None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// audit export
// ---------------------------------------------------------------------------------------------

/// CSV columns (the JSONL event fields, in order).
const CSV_COLUMNS: &str = "tenant_id,stream_type,stream_id,version,global_position,\
     transaction_id,event_id,event_type,schema_version,recorded_at,data,metadata,hash,\
     previous_hash";

/// A CSV field, quoted when needed.
fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn csv_line(e: &EventRow) -> String {
    let mut s = String::with_capacity(512);
    let fields = [
        e.tenant_id.to_string(),
        e.stream_type.clone(),
        e.stream_id.to_string(),
        e.version.to_string(),
        e.position.to_string(),
        e.txid.to_string(),
        e.event_id.to_string(),
        e.event_type.clone(),
        e.schema_version.to_string(),
        ts(e.recorded_at),
        canonical_json(&e.data),
        canonical_json(&e.metadata),
        hex(&e.hash),
        e.previous_hash.map(|p| hex(&p)).unwrap_or_default(),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        csv_field(&mut s, f);
    }
    s.push('\n');
    s
}

/// Writes lines and keeps the running digest and count of what was written.
struct DigestWriter<W: Write> {
    out: W,
    digest: RunningDigest,
    lines: u64,
}

impl<W: Write> DigestWriter<W> {
    fn line(&mut self, s: &[u8]) -> std::io::Result<()> {
        self.digest.update(s);
        self.digest.update(b"\n");
        self.lines += 1;
        self.out.write_all(s)?;
        self.out.write_all(b"\n")
    }
}

async fn export(pool: &PgPool, a: ExportArgs) -> anyhow::Result<()> {
    if let (Some(s), Some(u)) = (a.since, a.until) {
        anyhow::ensure!(s < u, "--since must be before --until");
    }
    let complete = a.since.is_none() && a.until.is_none();
    let tenant = TenantId(a.tenant);
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE tenant_id = $1 \
           AND ($2::timestamptz IS NULL OR recorded_at >= $2) \
           AND ($3::timestamptz IS NULL OR recorded_at < $3)",
    )
    .bind(a.tenant)
    .bind(a.since)
    .bind(a.until)
    .fetch_one(pool)
    .await?;
    // Checkpoints before the events (see `verify_db`); only a complete export lets a verifier
    // recompute them.
    let checkpoints = if complete && a.format == ExportFormat::Jsonl {
        load_checkpoints(pool, Some(tenant))
            .await
            .context("reading tenant checkpoints (is the database migrated?)")?
    } else {
        Vec::new()
    };

    let sink: Box<dyn Write + Send> = match &a.out {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout()),
    };
    let mut w = DigestWriter {
        out: std::io::BufWriter::with_capacity(1 << 20, sink),
        digest: RunningDigest::new(),
        lines: 0,
    };
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(u64::try_from(total).unwrap_or(0)),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} events, {per_sec}, ETA {eta}",
        )?
        .progress_chars("=> "),
    );

    if a.format == ExportFormat::Jsonl {
        let header = json!({ "export": {
            "format": EXPORT_FORMAT,
            "tenant_id": a.tenant,
            "since": a.since.map(ts),
            "until": a.until.map(ts),
            "complete": complete,
            "exported_at": ts(Utc::now()),
            "events": total,
            "checkpoints": checkpoints.len(),
        }});
        w.line(header.to_string().as_bytes())?;
        for c in &checkpoints {
            w.line(json!({ "checkpoint": c.to_json() }).to_string().as_bytes())?;
        }
    } else {
        w.out.write_all(CSV_COLUMNS.as_bytes())?;
        w.out.write_all(b"\n")?;
    }

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<EventRow>>(4);
    let scan = Scan {
        tenant: Some(a.tenant),
        since: a.since,
        until: a.until,
        previous_hashes: true,
        raw_json: false,
    };
    let reader = tokio::spawn(read_events(pool.clone(), scan, tx));
    let mut events = 0u64;
    let mut streams = 0u64;
    let mut last_stream = None;
    let mut line: Vec<u8> = Vec::with_capacity(1024);
    let written: anyhow::Result<()> = async {
        while let Some(batch) = rx.recv().await {
            for e in &batch {
                if last_stream != Some(e.stream_id) {
                    last_stream = Some(e.stream_id);
                    streams += 1;
                }
                match a.format {
                    ExportFormat::Jsonl => {
                        line.clear();
                        serde_json::to_writer(&mut line, &LineOut::of(e))?;
                        w.line(&line)?;
                    }
                    ExportFormat::Csv => w.out.write_all(csv_line(e).as_bytes())?,
                }
            }
            events += batch.len() as u64;
            bar.inc(batch.len() as u64);
        }
        Ok(())
    }
    .await;
    if written.is_err() {
        reader.abort();
    }
    written?;
    reader.await.context("the reading task failed")??;
    if a.format == ExportFormat::Jsonl {
        let trailer = json!({ "trailer": {
            "events": events,
            "streams": streams,
            "checkpoints": checkpoints.len(),
            "lines": w.lines,
            "sha256": w.digest.hex(),
        }});
        let t = trailer.to_string();
        w.out.write_all(t.as_bytes())?;
        w.out.write_all(b"\n")?;
    }
    w.out.flush()?;
    bar.finish_and_clear();
    let target = a
        .out
        .as_ref()
        .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
    eprintln!(
        "exported {events} events in {streams} streams of tenant {} to {target}{}",
        a.tenant,
        if a.format == ExportFormat::Jsonl {
            format!(
                " (sha256 of the lines before the trailer: {})",
                w.digest.hex()
            )
        } else {
            String::new()
        }
    );
    // An export is a security event of the tenant (issue #6): who took which part of the log.
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let data = json!({
        "format": match a.format { ExportFormat::Jsonl => "jsonl", ExportFormat::Csv => "csv" },
        "since": a.since,
        "until": a.until,
        "events": events,
        "streams": streams,
        "target": target,
        "sha256": (a.format == ExportFormat::Jsonl).then(|| w.digest.hex()),
    });
    PgEventStore::new(pool.clone(), Upcasters::new())
        .append(
            tenant,
            &eventdesk_store::StreamRef::new(
                "security",
                eventdesk_api::security::stream_of(tenant),
            ),
            eventdesk_store::ExpectedVersion::Any,
            vec![eventdesk_store::NewEvent::new("AuditExported", 1, data)],
            &EventMetadata {
                actor: format!("system:cli:{who}"),
                ..EventMetadata::default()
            },
            None,
        )
        .await
        .context("recording the export in the tenant's security log")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// audit verify --file
// ---------------------------------------------------------------------------------------------

/// What the file reader found besides events.
#[derive(Default)]
struct FileSummary {
    problems: Vec<String>,
}

/// Reads a JSONL export: header, checkpoints, events (sent in batches), trailer.
fn read_file(
    path: PathBuf,
    expect_tenant: Option<Uuid>,
    cps: tokio::sync::oneshot::Sender<Vec<TenantCheckpoint>>,
    tx: tokio::sync::mpsc::Sender<Vec<EventRow>>,
) -> anyhow::Result<FileSummary> {
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut summary = FileSummary::default();
    let mut digest = RunningDigest::new();
    let mut buf = String::new();
    let mut n = 0u64;
    let mut checkpoints = Vec::new();
    let mut cps = Some(cps);
    let mut tenant = None;
    let mut complete = false;
    let mut trailer: Option<(u64, Value)> = None;
    let mut events = 0u64;
    let mut streams = 0u64;
    let mut last_stream = None;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        buf.clear();
        if reader.read_line(&mut buf)? == 0 {
            break;
        }
        n += 1;
        let text = buf.strip_suffix('\n').unwrap_or(&buf);
        if let Some((at, _)) = &trailer {
            summary
                .problems
                .push(format!("line {n}: content after the trailer (line {at})"));
            break;
        }
        if text.starts_with("{\"trailer\":") {
            match serde_json::from_str::<Value>(text) {
                Ok(v) => trailer = Some((n, v)),
                Err(e) => summary
                    .problems
                    .push(format!("line {n}: unreadable trailer: {e}")),
            }
            continue;
        }
        digest.update(buf.as_bytes());
        if n == 1 {
            let header: Option<Value> = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|mut v| v.get_mut("export").map(Value::take));
            let Some(h) = header else {
                bail!("line 1 is not an eventdesk export header: not an export file");
            };
            if h.get("format").and_then(Value::as_str) != Some(EXPORT_FORMAT) {
                bail!("unknown export format {:?}", h.get("format"));
            }
            tenant = h
                .get("tenant_id")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok());
            complete = h.get("complete").and_then(Value::as_bool) == Some(true);
            if let (Some(want), Some(got)) = (expect_tenant, tenant)
                && want != got
            {
                bail!("the file exports tenant {got}, not {want}");
            }
            continue;
        }
        if text.starts_with("{\"checkpoint\":") {
            let parsed = serde_json::from_str::<Value>(text)
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    TenantCheckpoint::from_json(v.get("checkpoint").unwrap_or(&Value::Null))
                });
            match parsed {
                Ok(c) if cps.is_some() => checkpoints.push(c),
                Ok(_) => summary
                    .problems
                    .push(format!("line {n}: a checkpoint after the first event")),
                Err(e) => summary.problems.push(format!("line {n}: {e}")),
            }
            continue;
        }
        if let Some(s) = cps.take() {
            let send = if complete {
                checkpoints.clone()
            } else {
                Vec::new()
            };
            let _ = s.send(send);
        }
        let row = serde_json::from_str::<LineIn>(text)
            .map_err(|e| e.to_string())
            .and_then(|l| l.into_row(n));
        match row {
            Ok(row) => {
                if Some(row.tenant_id) != tenant {
                    summary.problems.push(format!(
                        "line {n}: an event of tenant {} in an export of tenant {}",
                        row.tenant_id,
                        tenant.map_or_else(|| "?".to_owned(), |t| t.to_string())
                    ));
                }
                if last_stream != Some(row.stream_id) {
                    last_stream = Some(row.stream_id);
                    streams += 1;
                }
                events += 1;
                batch.push(row);
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if tx.blocking_send(full).is_err() {
                        bail!("the verifier stopped");
                    }
                }
            }
            Err(e) => summary
                .problems
                .push(format!("line {n}: not an event line: {e}")),
        }
    }
    if let Some(s) = cps.take() {
        let _ = s.send(if complete {
            checkpoints.clone()
        } else {
            Vec::new()
        });
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(batch);
    }
    match trailer {
        None => summary
            .problems
            .push(format!("no trailer: the file is truncated after line {n}")),
        Some((at, v)) => {
            let t = v.get("trailer").cloned().unwrap_or(Value::Null);
            let num = |k: &str| t.get(k).and_then(Value::as_u64);
            if t.get("sha256").and_then(Value::as_str) != Some(digest.hex().as_str()) {
                summary.problems.push(format!(
                    "line {at}: the trailer's sha256 does not match lines 1..{}: the file was \
                     altered",
                    at - 1
                ));
            }
            if num("lines") != Some(at - 1) {
                summary.problems.push(format!(
                    "line {at}: the trailer counts {:?} lines, the file has {}",
                    num("lines"),
                    at - 1
                ));
            }
            if num("events") != Some(events) || num("streams") != Some(streams) {
                summary.problems.push(format!(
                    "line {at}: the trailer counts {:?} events in {:?} streams, the file has \
                     {events} in {streams}",
                    num("events"),
                    num("streams")
                ));
            }
            if num("checkpoints") != Some(checkpoints.len() as u64) {
                summary.problems.push(format!(
                    "line {at}: the trailer counts {:?} checkpoints, the file has {}",
                    num("checkpoints"),
                    checkpoints.len()
                ));
            }
        }
    }
    Ok(summary)
}

async fn verify_file(a: VerifyArgs) -> anyhow::Result<()> {
    let Some(path) = a.file.clone() else {
        bail!("--file is required");
    };
    let started = Instant::now();
    let (cps_tx, cps_rx) = tokio::sync::oneshot::channel();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let tenant = a.tenant;
    let reader = tokio::task::spawn_blocking(move || read_file(path, tenant, cps_tx, tx));
    let checkpoints = cps_rx.await.unwrap_or_default();
    let mut verifier = Verifier::new(checkpoints);
    drain(&mut verifier, rx).await;
    let summary = reader.await.context("the reading task failed")??;
    verifier.notes = summary.problems;
    let report = verifier.finish(started.elapsed().as_secs_f64());
    report.print(a.json)
}

// ---------------------------------------------------------------------------------------------
// audit checkpoint
// ---------------------------------------------------------------------------------------------

async fn checkpoint(pool: &PgPool, a: CheckpointArgs) -> anyhow::Result<()> {
    let c = create_tenant_checkpoint(pool, TenantId(a.tenant))
        .await
        .context("taking the checkpoint")?;
    let mut out = stdout();
    let r = if a.json {
        writeln!(out, "{}", c.to_json())
    } else {
        writeln!(
            out,
            "tenant checkpoint of {} at position {} (txid {}): {} events in {} streams\n  \
             digest          {}\n  previous digest {}\n  created at      {}\n\
             Publish the digest outside the database (e.g. a signed note to your auditor) to \
             anchor it; `audit verify` recomputes it.",
            c.tenant_id,
            c.position,
            c.txid,
            c.event_count,
            c.stream_count,
            hex(&c.digest),
            hex(&c.previous_digest),
            ts(c.created_at)
        )
    };
    quiet_pipe(r.and_then(|()| out.flush()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let h: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex32(&hex(&h)), Some(h));
        assert_eq!(unhex32("zz"), None);
    }

    #[test]
    fn csv_quotes_json() {
        let mut s = String::new();
        csv_field(&mut s, r#"{"a":"b,c"}"#);
        assert_eq!(s, r#""{""a"":""b,c""}""#);
    }
}
