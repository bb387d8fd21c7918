//! Tenant checkpoints (ADR 0010): a digest of a tenant's whole log up to a point of the reading
//! order, chained to the tenant's previous checkpoint.
//!
//! A checkpoint at `(txid, position)` covers exactly the tenant's events with
//! `(transaction_id, global_position) <= (txid, position)` — what `read_all` had delivered when
//! it was taken. It is taken below the xid8 horizon (ADR 0002), so that set can never grow
//! later, and in each stream it is a prefix of the versions. Its digest is
//!
//! ```text
//! sha256("eventdesk/tenant-checkpoint/v1" || tenant_id || be_u64(txid) || be_i64(position)
//!        || previous_digest
//!        || for each stream, by stream_id: stream_id || be_i64(last version) || last hash
//!        || be_i64(stream_count) || be_i64(event_count))
//! ```
//!
//! The per-stream hash chain (ADR 0003) already makes any change to an event change its
//! stream's head hash; the checkpoint fixes those heads at a point in time, so a rewrite that
//! recomputes a stream's chain is still detected once a checkpoint digest has been published
//! outside the database.
//!
//! [`DigestBuilder`] recomputes any number of checkpoints of one tenant in a single pass over
//! the tenant's events in `(stream_id, version)` order, with memory bounded by the number of
//! checkpoints (not of events or streams); the audit tooling feeds it from the database or
//! from an exported file.

use crate::error::{Result, StoreError};
use crate::hash::GENESIS;
use crate::types::Checkpoint;
use chrono::{DateTime, Utc};
use eventdesk_domain::TenantId;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// The domain-separation prefix of a checkpoint digest.
pub const DIGEST_TAG: &[u8] = b"eventdesk/tenant-checkpoint/v1";

/// One stored tenant checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCheckpoint {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Global position of the last event covered.
    pub position: i64,
    /// Transaction id (xid8) of the last event covered.
    pub txid: u64,
    /// Streams of the tenant with at least one covered event.
    pub stream_count: i64,
    /// Events covered.
    pub event_count: i64,
    /// The digest (see the module documentation).
    pub digest: [u8; 32],
    /// The digest of the tenant's previous checkpoint (zeros for the first).
    pub previous_digest: [u8; 32],
    /// When it was taken.
    pub created_at: DateTime<Utc>,
}

impl TenantCheckpoint {
    /// The point of the reading order it covers up to (inclusive).
    pub fn at(&self) -> Checkpoint {
        Checkpoint {
            transaction_id: self.txid,
            position: self.position,
        }
    }

    /// The checkpoint as JSON (digests in lowercase hex), as printed and exported.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "tenant_id": self.tenant_id,
            "position": self.position,
            "txid": self.txid,
            "stream_count": self.stream_count,
            "event_count": self.event_count,
            "digest": hex::encode(self.digest),
            "previous_digest": hex::encode(self.previous_digest),
            "created_at": self.created_at,
        })
    }

    /// Reads a checkpoint written by [`TenantCheckpoint::to_json`].
    pub fn from_json(v: &serde_json::Value) -> std::result::Result<Self, String> {
        fn field<'a>(
            v: &'a serde_json::Value,
            k: &str,
        ) -> std::result::Result<&'a serde_json::Value, String> {
            v.get(k).ok_or_else(|| format!("checkpoint: missing {k}"))
        }
        fn int(v: &serde_json::Value, k: &str) -> std::result::Result<i64, String> {
            field(v, k)?
                .as_i64()
                .ok_or_else(|| format!("checkpoint: {k} is not an integer"))
        }
        fn digest(v: &serde_json::Value, k: &str) -> std::result::Result<[u8; 32], String> {
            let s = field(v, k)?
                .as_str()
                .ok_or_else(|| format!("checkpoint: {k} is not a string"))?;
            let mut out = [0u8; 32];
            hex::decode_to_slice(s, &mut out).map_err(|e| format!("checkpoint: {k}: {e}"))?;
            Ok(out)
        }
        let tenant_id = field(v, "tenant_id")?
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or("checkpoint: tenant_id is not a uuid")?;
        let txid = field(v, "txid")?
            .as_u64()
            .ok_or("checkpoint: txid is not an integer")?;
        let created_at = field(v, "created_at")?
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .ok_or("checkpoint: created_at is not a timestamp")?
            .with_timezone(&Utc);
        Ok(Self {
            tenant_id,
            position: int(v, "position")?,
            txid,
            stream_count: int(v, "stream_count")?,
            event_count: int(v, "event_count")?,
            digest: digest(v, "digest")?,
            previous_digest: digest(v, "previous_digest")?,
            created_at,
        })
    }
}

/// What is wrong with a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointFault {
    /// Its `previous_digest` is not the digest of the tenant's previous checkpoint (a checkpoint
    /// was removed, inserted or altered).
    BrokenLink,
    /// The events it covers no longer hash to its digest: an event at or before it was changed,
    /// removed, added or reordered (even if its stream's chain was recomputed).
    DigestMismatch {
        /// Streams covered, as stored.
        stored_streams: i64,
        /// Events covered, as stored.
        stored_events: i64,
        /// Streams covered now.
        actual_streams: i64,
        /// Events covered now.
        actual_events: i64,
    },
}

/// A checkpoint that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointProblem {
    /// The checkpoint.
    pub checkpoint: TenantCheckpoint,
    /// What is wrong.
    pub fault: CheckpointFault,
}

impl std::fmt::Display for CheckpointProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.checkpoint;
        write!(
            f,
            "checkpoint of tenant {} at position {} (txid {}, created {}, digest {}): ",
            c.tenant_id,
            c.position,
            c.txid,
            c.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            hex::encode(c.digest)
        )?;
        match &self.fault {
            CheckpointFault::BrokenLink => write!(
                f,
                "previous_digest does not match the tenant's previous checkpoint \
                 (a checkpoint was removed, inserted or altered)"
            ),
            CheckpointFault::DigestMismatch {
                stored_streams,
                stored_events,
                actual_streams,
                actual_events,
            } => write!(
                f,
                "the events it covers no longer match its digest ({stored_events} events in \
                 {stored_streams} streams recorded, {actual_events} in {actual_streams} now): \
                 an event at or before it was altered, removed, added or reordered"
            ),
        }
    }
}

/// A recomputed checkpoint digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recomputed {
    /// The digest.
    pub digest: [u8; 32],
    /// Streams covered.
    pub stream_count: i64,
    /// Events covered.
    pub event_count: i64,
}

/// The events a stream contributes to checkpoints from `k` on.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The first checkpoint covering these events.
    k: usize,
    /// The highest version among them, and its hash.
    version: i64,
    hash: [u8; 32],
    /// How many.
    count: i64,
}

/// Recomputes the digests of a tenant's checkpoints in one pass over its events.
///
/// Feed every event of the tenant (or at least every event up to the last checkpoint) with
/// [`DigestBuilder::push`], streams in ascending `stream_id` order, then call
/// [`DigestBuilder::finish`]. Memory is bounded by the number of checkpoints and the length of
/// the longest stream's run of distinct checkpoints, never by the number of events or streams.
#[derive(Debug, Clone)]
pub struct DigestBuilder {
    targets: Vec<Checkpoint>,
    hashers: Vec<Sha256>,
    streams: Vec<i64>,
    events: Vec<i64>,
    current: Option<Uuid>,
    entries: Vec<Entry>,
}

/// Events were not given in ascending stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream {found} comes after stream {after}: streams must be in ascending order")]
pub struct OutOfOrder {
    /// The stream given before.
    pub after: Uuid,
    /// The stream given now.
    pub found: Uuid,
}

impl DigestBuilder {
    /// A builder for checkpoints of `tenant` at `targets` (ascending), each with the previous
    /// digest it chains onto.
    pub fn new(tenant: Uuid, targets: &[(Checkpoint, [u8; 32])]) -> Self {
        let hashers = targets
            .iter()
            .map(|(at, previous)| {
                let mut h = Sha256::new();
                h.update(DIGEST_TAG);
                h.update(tenant.as_bytes());
                h.update(at.transaction_id.to_be_bytes());
                h.update(at.position.to_be_bytes());
                h.update(previous);
                h
            })
            .collect();
        Self {
            targets: targets.iter().map(|(at, _)| *at).collect(),
            hashers,
            streams: vec![0; targets.len()],
            events: vec![0; targets.len()],
            current: None,
            entries: Vec::new(),
        }
    }

    /// A builder that recomputes stored checkpoints (sorted by [`TenantCheckpoint::at`]), each
    /// from its own stored `previous_digest`.
    pub fn for_checkpoints(tenant: Uuid, checkpoints: &[TenantCheckpoint]) -> Self {
        let targets: Vec<_> = checkpoints
            .iter()
            .map(|c| (c.at(), c.previous_digest))
            .collect();
        Self::new(tenant, &targets)
    }

    /// The last point any checkpoint covers (events after it need not be pushed).
    pub fn last_target(&self) -> Option<Checkpoint> {
        self.targets.last().copied()
    }

    /// One event: its stream, version, place in the reading order and stored hash.
    pub fn push(
        &mut self,
        stream_id: Uuid,
        version: i64,
        at: Checkpoint,
        hash: &[u8],
    ) -> std::result::Result<(), OutOfOrder> {
        if self.current != Some(stream_id) {
            if let Some(after) = self.current
                && stream_id < after
            {
                return Err(OutOfOrder {
                    after,
                    found: stream_id,
                });
            }
            self.flush();
            self.current = Some(stream_id);
        }
        let k = self.targets.partition_point(|t| *t < at);
        if k == self.targets.len() {
            return Ok(());
        }
        let mut h = [0u8; 32];
        let n = hash.len().min(32);
        h[..n].copy_from_slice(&hash[..n]);
        match self.entries.last_mut() {
            Some(e) if e.k == k => {
                if version > e.version {
                    e.version = version;
                    e.hash = h;
                }
                e.count += 1;
            }
            _ => self.entries.push(Entry {
                k,
                version,
                hash: h,
                count: 1,
            }),
        }
        Ok(())
    }

    /// Adds the finished stream to every checkpoint that covers part of it.
    fn flush(&mut self) {
        let Some(stream_id) = self.current else {
            return;
        };
        if self.entries.is_empty() {
            return;
        }
        // In a valid stream the first covering checkpoint never decreases with the version;
        // sort anyway so that a tampered order still yields a well-defined (wrong) digest.
        self.entries.sort_by_key(|e| e.k);
        let mut i = 0;
        let mut head: Option<(i64, [u8; 32])> = None;
        let mut count = 0i64;
        for k in self.entries[0].k..self.targets.len() {
            while let Some(e) = self.entries.get(i)
                && e.k <= k
            {
                if head.is_none_or(|(v, _)| e.version > v) {
                    head = Some((e.version, e.hash));
                }
                count += e.count;
                i += 1;
            }
            if let Some((version, hash)) = head {
                let h = &mut self.hashers[k];
                h.update(stream_id.as_bytes());
                h.update(version.to_be_bytes());
                h.update(hash);
                self.streams[k] += 1;
                self.events[k] += count;
            }
        }
        self.entries.clear();
    }

    /// The recomputed digests, in the order of the targets.
    pub fn finish(mut self) -> Vec<Recomputed> {
        self.flush();
        self.hashers
            .into_iter()
            .zip(self.streams)
            .zip(self.events)
            .map(|((mut h, streams), events)| {
                h.update(streams.to_be_bytes());
                h.update(events.to_be_bytes());
                Recomputed {
                    digest: h.finalize().into(),
                    stream_count: streams,
                    event_count: events,
                }
            })
            .collect()
    }
}

/// Compares stored checkpoints (sorted by [`TenantCheckpoint::at`]) with their recomputed
/// digests, and checks that each chains onto the previous one.
pub fn check(
    checkpoints: &[TenantCheckpoint],
    recomputed: &[Recomputed],
) -> Vec<CheckpointProblem> {
    let mut problems = Vec::new();
    let mut previous = GENESIS;
    for (c, r) in checkpoints.iter().zip(recomputed) {
        if c.previous_digest != previous {
            problems.push(CheckpointProblem {
                checkpoint: c.clone(),
                fault: CheckpointFault::BrokenLink,
            });
        }
        if c.digest != r.digest {
            problems.push(CheckpointProblem {
                checkpoint: c.clone(),
                fault: CheckpointFault::DigestMismatch {
                    stored_streams: c.stream_count,
                    stored_events: c.event_count,
                    actual_streams: r.stream_count,
                    actual_events: r.event_count,
                },
            });
        }
        previous = c.digest;
    }
    problems
}

/// Verifies one tenant's checkpoints as events are pushed (see [`DigestBuilder`]).
#[derive(Debug, Clone)]
pub struct CheckpointVerifier {
    checkpoints: Vec<TenantCheckpoint>,
    builder: DigestBuilder,
}

impl CheckpointVerifier {
    /// A verifier for `checkpoints` of `tenant` (any order).
    pub fn new(tenant: Uuid, mut checkpoints: Vec<TenantCheckpoint>) -> Self {
        checkpoints.sort_by_key(|c| c.at());
        let builder = DigestBuilder::for_checkpoints(tenant, &checkpoints);
        Self {
            checkpoints,
            builder,
        }
    }

    /// How many checkpoints it verifies.
    pub fn len(&self) -> usize {
        self.checkpoints.len()
    }

    /// True when there is nothing to verify.
    pub fn is_empty(&self) -> bool {
        self.checkpoints.is_empty()
    }

    /// One event of the tenant (streams in ascending order).
    pub fn push(
        &mut self,
        stream_id: Uuid,
        version: i64,
        at: Checkpoint,
        hash: &[u8],
    ) -> std::result::Result<(), OutOfOrder> {
        self.builder.push(stream_id, version, at, hash)
    }

    /// The problems found (empty: every checkpoint verifies).
    pub fn finish(self) -> Vec<CheckpointProblem> {
        let recomputed = self.builder.finish();
        check(&self.checkpoints, &recomputed)
    }
}

const CHECKPOINT_COLUMNS: &str = "tenant_id, position, txid::text::int8, stream_count, \
     event_count, digest, previous_digest, created_at";

fn checkpoint_from_row(row: &sqlx::postgres::PgRow) -> Result<TenantCheckpoint> {
    fn digest(v: Vec<u8>) -> Result<[u8; 32]> {
        v.try_into()
            .map_err(|_| StoreError::Invalid("checkpoint digest is not 32 bytes".into()))
    }
    Ok(TenantCheckpoint {
        tenant_id: row.try_get(0)?,
        position: row.try_get(1)?,
        txid: row.try_get::<i64, _>(2)? as u64,
        stream_count: row.try_get(3)?,
        event_count: row.try_get(4)?,
        digest: digest(row.try_get(5)?)?,
        previous_digest: digest(row.try_get(6)?)?,
        created_at: row.try_get(7)?,
    })
}

/// The stored checkpoints of `tenant`, or of every tenant with `None`, ordered by tenant and
/// then by [`TenantCheckpoint::at`].
pub async fn load_checkpoints(
    pool: &PgPool,
    tenant: Option<TenantId>,
) -> Result<Vec<TenantCheckpoint>> {
    let sql = format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM tenant_checkpoints \
         WHERE $1::uuid IS NULL OR tenant_id = $1 ORDER BY tenant_id, txid, position"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant.map(|t| t.0))
        .fetch_all(pool)
        .await?;
    rows.iter().map(checkpoint_from_row).collect()
}

/// Streams the events of `tenant` up to `upto` (inclusive, reading order) in `(stream_id,
/// version)` order into `builder`.
async fn feed(
    conn: &mut PgConnection,
    tenant: TenantId,
    upto: Checkpoint,
    mut push: impl FnMut(Uuid, i64, Checkpoint, &[u8]) -> std::result::Result<(), OutOfOrder>,
) -> Result<()> {
    let mut rows = sqlx::query(
        "SELECT stream_id, version, transaction_id::text::int8, global_position, hash \
         FROM events WHERE tenant_id = $1 \
           AND (transaction_id, global_position) <= ($2::int8::text::xid8, $3) \
         ORDER BY stream_id, version",
    )
    .bind(tenant.0)
    .bind(upto.transaction_id as i64)
    .bind(upto.position)
    .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        let stream_id: Uuid = row.try_get(0)?;
        let version: i64 = row.try_get(1)?;
        let at = Checkpoint {
            transaction_id: row.try_get::<i64, _>(2)? as u64,
            position: row.try_get(3)?,
        };
        let hash: &[u8] = row.try_get(4)?;
        push(stream_id, version, at, hash).map_err(|e| StoreError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// Takes a checkpoint of `tenant` at the newest of its events below the horizon, chained onto
/// its previous checkpoint. If no event of the tenant passed the horizon since the previous
/// checkpoint, returns that one unchanged. Checkpoints of one tenant are taken one at a time (a
/// transaction-scoped advisory lock), so concurrent callers never fork the chain.
pub async fn create_tenant_checkpoint(pool: &PgPool, tenant: TenantId) -> Result<TenantCheckpoint> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('eventdesk:tenant-checkpoint:' || $1::text, 0))")
        .bind(tenant.0)
        .execute(&mut *tx)
        .await?;
    let head = sqlx::query(
        "SELECT transaction_id::text::int8, global_position FROM events \
         WHERE tenant_id = $1 \
           AND transaction_id < (SELECT pg_snapshot_xmin(pg_current_snapshot())) \
         ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
    )
    .bind(tenant.0)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(head) = head else {
        return Err(StoreError::Invalid(format!(
            "tenant {tenant} has no events to checkpoint"
        )));
    };
    let at = Checkpoint {
        transaction_id: head.try_get::<i64, _>(0)? as u64,
        position: head.try_get(1)?,
    };
    let last = sqlx::query(&format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM tenant_checkpoints WHERE tenant_id = $1 \
         ORDER BY txid DESC, position DESC LIMIT 1"
    ))
    .bind(tenant.0)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| checkpoint_from_row(&r))
    .transpose()?;
    if let Some(last) = &last
        && last.at() >= at
    {
        tx.commit().await?;
        return Ok(last.clone());
    }
    let previous = last.map(|l| l.digest).unwrap_or(GENESIS);
    let mut builder = DigestBuilder::new(tenant.0, &[(at, previous)]);
    feed(&mut tx, tenant, at, |s, v, a, h| builder.push(s, v, a, h)).await?;
    let Some(r) = builder.finish().pop() else {
        return Err(StoreError::Invalid("no digest computed".into()));
    };
    let row = sqlx::query(&format!(
        "INSERT INTO tenant_checkpoints (tenant_id, position, txid, stream_count, event_count, \
         digest, previous_digest) VALUES ($1, $2, $3::int8::text::xid8, $4, $5, $6, $7) \
         RETURNING {CHECKPOINT_COLUMNS}"
    ))
    .bind(tenant.0)
    .bind(at.position)
    .bind(at.transaction_id as i64)
    .bind(r.stream_count)
    .bind(r.event_count)
    .bind(r.digest.as_slice())
    .bind(previous.as_slice())
    .fetch_one(&mut *tx)
    .await?;
    let created = checkpoint_from_row(&row)?;
    tx.commit().await?;
    Ok(created)
}

/// Recomputes every checkpoint of `tenant` from the events and compares: an empty result means
/// all of them verify.
pub async fn verify_tenant_checkpoints(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Vec<CheckpointProblem>> {
    let checkpoints = load_checkpoints(pool, Some(tenant)).await?;
    let mut verifier = CheckpointVerifier::new(tenant.0, checkpoints);
    let Some(upto) = verifier.builder.last_target() else {
        return Ok(Vec::new());
    };
    let mut conn = pool.acquire().await?;
    feed(&mut conn, tenant, upto, |s, v, a, h| {
        verifier.push(s, v, a, h)
    })
    .await?;
    Ok(verifier.finish())
}

/// A running SHA-256, for digests the binary computes over files (export trailers).
#[derive(Debug, Clone, Default)]
pub struct RunningDigest(Sha256);

impl RunningDigest {
    /// An empty digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest so far, in lowercase hex.
    pub fn hex(&self) -> String {
        hex::encode(self.0.clone().finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(t: u64, p: i64) -> Checkpoint {
        Checkpoint {
            transaction_id: t,
            position: p,
        }
    }

    /// The digest of one checkpoint computed directly from the definition.
    fn direct(
        tenant: Uuid,
        at: Checkpoint,
        prev: [u8; 32],
        heads: &[(Uuid, i64, [u8; 32])],
        events: i64,
    ) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(DIGEST_TAG);
        h.update(tenant.as_bytes());
        h.update(at.transaction_id.to_be_bytes());
        h.update(at.position.to_be_bytes());
        h.update(prev);
        for (s, v, hash) in heads {
            h.update(s.as_bytes());
            h.update(v.to_be_bytes());
            h.update(hash);
        }
        h.update((heads.len() as i64).to_be_bytes());
        h.update(events.to_be_bytes());
        h.finalize().into()
    }

    #[test]
    fn one_pass_equals_the_definition_for_every_checkpoint() {
        let tenant = Uuid::now_v7();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        // Stream a: versions 1..=3 at positions 1, 3, 5; stream b: 1..=2 at 2, 4.
        let evs = [
            (a, 1, cp(10, 1), [1u8; 32]),
            (a, 2, cp(11, 3), [2; 32]),
            (a, 3, cp(12, 5), [3; 32]),
            (b, 1, cp(10, 2), [4; 32]),
            (b, 2, cp(12, 4), [5; 32]),
        ];
        let targets = [
            (cp(10, 2), [9u8; 32]),
            (cp(11, 3), [8; 32]),
            (cp(12, 5), [7; 32]),
        ];
        let mut builder = DigestBuilder::new(tenant, &targets);
        for (s, v, at, h) in &evs {
            builder.push(*s, *v, *at, h).expect("ordered");
        }
        let got = builder.finish();
        let want = [
            direct(
                tenant,
                targets[0].0,
                targets[0].1,
                &[(a, 1, [1; 32]), (b, 1, [4; 32])],
                2,
            ),
            direct(
                tenant,
                targets[1].0,
                targets[1].1,
                &[(a, 2, [2; 32]), (b, 1, [4; 32])],
                3,
            ),
            direct(
                tenant,
                targets[2].0,
                targets[2].1,
                &[(a, 3, [3; 32]), (b, 2, [5; 32])],
                5,
            ),
        ];
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.digest, w);
        }
        assert_eq!(got[1].event_count, 3);
        assert_eq!(got[2].stream_count, 2);

        let mut builder = DigestBuilder::new(tenant, &targets);
        builder.push(b, 1, cp(10, 2), &[4; 32]).expect("first");
        assert!(builder.push(a, 1, cp(10, 1), &[1; 32]).is_err());
    }
}
