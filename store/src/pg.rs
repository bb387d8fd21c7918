//! The PostgreSQL event store.

use crate::EventStore;
use crate::error::{Result, StoreError};
use crate::hash::{DigestInput, GENESIS, chain, event_digest, to_micros};
use crate::subscription::Waker;
use crate::types::*;
use crate::upcast::Upcasters;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventdesk_domain::{StreamId, TenantId};
use futures::{StreamExt, TryStreamExt};
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row};
use std::sync::Arc;
use uuid::Uuid;

/// How often an `Any` append retries after losing a race for the next version.
const ANY_RETRIES: usize = 8;

/// The columns every reader selects, in the order [`decode_row`] reads them. (The xid8 is
/// selected as `txid`: an alias named `transaction_id` would shadow the column in `ORDER BY`
/// and turn the primary-key walk into a sort of the whole table.)
pub const EVENT_COLUMNS: &str = "global_position, transaction_id::text::int8 AS txid, \
     tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, data, \
     metadata, recorded_at, hash";

/// The PostgreSQL implementation of [`EventStore`].
#[derive(Clone, Debug)]
pub struct PgEventStore {
    pool: PgPool,
    upcasters: Arc<Upcasters>,
    waker: Waker,
    heads: Arc<HeadCache>,
}

/// Last known `(version, hash)` per stream. A stream's hash at a given version never changes
/// (events are immutable), so an entry can be old but never wrong; the INSERT re-checks it.
#[derive(Debug, Default)]
struct HeadCache {
    map: std::sync::Mutex<std::collections::HashMap<HeadKey, (i64, [u8; 32])>>,
}

/// `(tenant, stream)`.
type HeadKey = (uuid::Uuid, uuid::Uuid);

/// Entries kept before the cache is cleared (a clear costs one extra lookup per stream).
const HEAD_CACHE_CAP: usize = 100_000;

impl HeadCache {
    fn get(&self, tenant: TenantId, stream: StreamId, version: i64) -> Option<[u8; 32]> {
        let map = self.map.lock().ok()?;
        match map.get(&(tenant.0, stream.0)) {
            Some((v, h)) if *v == version => Some(*h),
            _ => None,
        }
    }

    fn put(&self, tenant: TenantId, stream: StreamId, version: i64, hash: [u8; 32]) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= HEAD_CACHE_CAP {
                map.clear();
            }
            let e = map.entry((tenant.0, stream.0)).or_insert((version, hash));
            if e.0 <= version {
                *e = (version, hash);
            }
        }
    }
}

impl PgEventStore {
    /// A store over `pool` (which should run as the application role).
    pub fn new(pool: PgPool, upcasters: Upcasters) -> Self {
        Self {
            pool,
            upcasters: Arc::new(upcasters),
            waker: Waker::new(),
            heads: Arc::new(HeadCache::default()),
        }
    }

    /// The same store over another pool (e.g. another database role), sharing this store's
    /// wake-up signal, upcasters and head cache: an append through either wakes readers of both.
    pub fn with_pool(&self, pool: PgPool) -> Self {
        Self {
            pool,
            upcasters: self.upcasters.clone(),
            waker: self.waker.clone(),
            heads: self.heads.clone(),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The wake-up signal readers wait on.
    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    /// The registered upcasters.
    pub fn upcasters(&self) -> &Upcasters {
        &self.upcasters
    }

    /// Appends inside a transaction the caller owns (e.g. together with a per-tenant counter).
    /// The caller commits and then calls [`PgEventStore::notify_appended`]. No retry for `Any`
    /// here: a conflict aborts the caller's transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn append_in(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        stream: &StreamRef,
        expected: ExpectedVersion,
        events: &[NewEvent],
        metadata: &EventMetadata,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<AppendOutcome> {
        // Not cached: the caller's transaction may still roll back.
        let (outcome, _head) = self
            .append_once(
                conn,
                tenant,
                stream,
                expected,
                events,
                metadata,
                idempotency,
            )
            .await?;
        Ok(outcome)
    }

    /// Appends the first events of several **new** streams of `tenant` and `stream_type` in one
    /// statement inside a transaction the caller owns (group commit of creates, ADR 0023): the
    /// same rows, hashes and conflict rule as one [`append_in`](Self::append_in) with
    /// `ExpectedVersion::NoStream` and no idempotency key per stream, in one round trip instead
    /// of one per stream. A stream that already exists violates the unique key and fails the
    /// whole statement (the caller's transaction is then aborted). Returns one outcome per
    /// stream, in order. The caller commits and then calls
    /// [`notify_appended`](Self::notify_appended).
    pub async fn append_new_streams_in(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        stream_type: &str,
        streams: &[NewStream<'_>],
    ) -> Result<Vec<AppendOutcome>> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        if streams.iter().any(|s| s.events.is_empty()) {
            return Err(StoreError::Invalid("nothing to append".into()));
        }
        let recorded_at = to_micros(Utc::now());
        let rows_total: usize = streams.iter().map(|s| s.events.len()).sum();
        let mut stream_ids = Vec::with_capacity(rows_total);
        let mut versions: Vec<i64> = Vec::with_capacity(rows_total);
        let mut ids = Vec::with_capacity(rows_total);
        let mut types: Vec<&str> = Vec::with_capacity(rows_total);
        let mut schema_versions: Vec<i32> = Vec::with_capacity(rows_total);
        let mut datas: Vec<Box<RawValue>> = Vec::with_capacity(rows_total);
        let mut metas: Vec<Box<RawValue>> = Vec::with_capacity(rows_total);
        let mut hashes: Vec<Vec<u8>> = Vec::with_capacity(rows_total);
        for s in streams {
            let meta = serde_json::to_value(s.metadata)
                .map_err(|e| StoreError::Invalid(format!("metadata: {e}")))?;
            let meta = raw_json(&meta)?;
            let mut prev = GENESIS;
            for (i, e) in s.events.iter().enumerate() {
                let version = 1 + i as i64;
                // Each payload is serialised once: these exact bytes are hashed and sent.
                let data = raw_json(&e.data)?;
                let digest = event_digest(&DigestInput {
                    tenant_id: tenant.0,
                    stream_type,
                    stream_id: s.stream_id.0,
                    event_id: e.event_id,
                    event_type: &e.event_type,
                    schema_version: e.schema_version,
                    data: data.get(),
                    metadata: meta.get(),
                    recorded_at,
                });
                prev = chain(&prev, version, &digest);
                stream_ids.push(s.stream_id.0);
                versions.push(version);
                ids.push(e.event_id);
                types.push(e.event_type.as_str());
                schema_versions.push(e.schema_version);
                datas.push(data);
                metas.push(meta.clone());
                hashes.push(prev.to_vec());
            }
        }
        let datas: Vec<Json<&RawValue>> = datas.iter().map(|d| Json(&**d)).collect();
        let metas: Vec<Json<&RawValue>> = metas.iter().map(|d| Json(&**d)).collect();
        let rows = sqlx::query(INSERT_NEW_STREAMS_SQL)
            .bind(tenant.0)
            .bind(stream_type)
            .bind(recorded_at)
            .bind(&stream_ids)
            .bind(&versions)
            .bind(&ids)
            .bind(&types)
            .bind(&schema_versions)
            .bind(&datas)
            .bind(&metas)
            .bind(&hashes)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| {
                StoreError::from_append(e, streams[0].stream_id.0, ExpectedVersion::NoStream)
            })?;
        if rows.len() != rows_total {
            return Err(StoreError::Invalid(format!(
                "inserted {} of {rows_total} events",
                rows.len()
            )));
        }
        let mut positions = std::collections::HashMap::with_capacity(rows.len());
        let mut txid = None;
        for r in &rows {
            let id: Uuid = r.try_get(0)?;
            positions.insert(id, r.try_get::<i64, _>(1)?);
            txid = Some(r.try_get::<i64, _>(2)?);
        }
        let txid = txid.map(|t| t.to_string());
        streams
            .iter()
            .map(|s| {
                let pos = s
                    .events
                    .iter()
                    .map(|e| {
                        positions.get(&e.event_id).copied().ok_or_else(|| {
                            StoreError::Invalid(format!("event {} not inserted", e.event_id))
                        })
                    })
                    .collect::<Result<Vec<i64>>>()?;
                Ok(AppendOutcome {
                    stream_id: Some(s.stream_id.0),
                    first_version: 1,
                    next_version: s.events.len() as i64,
                    first_position: pos.iter().copied().min(),
                    last_position: pos.iter().copied().max(),
                    transaction_id: txid.clone(),
                    count: s.events.len() as i64,
                    replayed: false,
                })
            })
            .collect()
    }

    /// Tells readers (local at once, other nodes through a coalesced NOTIFY) that events were
    /// committed.
    pub fn notify_appended(&self) {
        self.waker.wake_all();
    }

    /// The head version of a stream (0 if it does not exist).
    pub async fn stream_version(&self, tenant: TenantId, stream_id: StreamId) -> Result<i64> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT max(version) FROM events WHERE tenant_id = $1 AND stream_id = $2",
        )
        .bind(tenant.0)
        .bind(stream_id.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(v.unwrap_or(0))
    }

    /// The checkpoint of the newest event below the horizon (what a caught-up reader has seen).
    pub async fn head_checkpoint(&self) -> Result<Checkpoint> {
        let row = sqlx::query(
            "SELECT transaction_id::text::int8 AS t, global_position AS p FROM events \
             WHERE transaction_id < (SELECT pg_snapshot_xmin(pg_current_snapshot())) \
             ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Checkpoint {
                transaction_id: r.try_get::<i64, _>("t")? as u64,
                position: r.try_get("p")?,
            },
            None => Checkpoint::START,
        })
    }

    /// Decodes a row selected with [`EVENT_COLUMNS`], upcasting its payload.
    pub fn decode_row(&self, row: &PgRow) -> Result<RecordedEvent> {
        decode_row(row, &self.upcasters)
    }
}

/// Decodes a row selected with [`EVENT_COLUMNS`], upcasting its payload.
pub fn decode_row(row: &PgRow, upcasters: &Upcasters) -> Result<RecordedEvent> {
    let position: i64 = row.try_get(0)?;
    let event_type: String = row.try_get(7)?;
    let stored_schema_version: i32 = row.try_get(8)?;
    let Json(data): Json<serde_json::Value> = row.try_get(9)?;
    let Json(metadata): Json<EventMetadata> = row.try_get(10).map_err(|e| StoreError::Decode {
        position,
        message: format!("metadata: {e}"),
    })?;
    let (schema_version, data) = upcasters
        .upcast(&event_type, stored_schema_version, data)
        .map_err(|message| StoreError::Decode { position, message })?;
    Ok(RecordedEvent {
        global_position: position,
        transaction_id: row.try_get::<i64, _>(1)? as u64,
        tenant_id: TenantId(row.try_get(2)?),
        stream_type: row.try_get(3)?,
        stream_id: StreamId(row.try_get(4)?),
        version: row.try_get(5)?,
        event_id: row.try_get(6)?,
        event_type,
        schema_version,
        stored_schema_version,
        data,
        metadata,
        recorded_at: row.try_get::<DateTime<Utc>, _>(11)?,
        hash: row.try_get(12)?,
    })
}

impl PgEventStore {
    /// One append attempt. `NoStream`/`Exact` without an idempotency key take the fast path:
    /// one INSERT statement, hashes chained here from the cached head. Idempotent and `Any`
    /// appends go through `eventdesk_append`, which does the whole check in the database.
    /// Timed (metrics and the request's database time, `timing`).
    #[allow(clippy::too_many_arguments)]
    async fn append_once(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        stream: &StreamRef,
        expected: ExpectedVersion,
        events: &[NewEvent],
        metadata: &EventMetadata,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<(AppendOutcome, Option<[u8; 32]>)> {
        let started = std::time::Instant::now();
        let r = self
            .append_untimed(
                conn,
                tenant,
                stream,
                expected,
                events,
                metadata,
                idempotency,
            )
            .await;
        crate::timing::append_done(started.elapsed(), events.len(), &r);
        r
    }

    #[allow(clippy::too_many_arguments)]
    async fn append_untimed(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        stream: &StreamRef,
        expected: ExpectedVersion,
        events: &[NewEvent],
        metadata: &EventMetadata,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<(AppendOutcome, Option<[u8; 32]>)> {
        if events.is_empty() && idempotency.is_none() {
            return Err(StoreError::Invalid("nothing to append".into()));
        }
        let recorded_at = to_micros(Utc::now());
        let meta = serde_json::to_value(metadata)
            .map_err(|e| StoreError::Invalid(format!("metadata: {e}")))?;
        let meta = raw_json(&meta)?;
        // Each payload is serialised once: these exact bytes are hashed and sent.
        let mut datas = Vec::with_capacity(events.len());
        let mut digests: Vec<[u8; 32]> = Vec::with_capacity(events.len());
        for e in events {
            let data = raw_json(&e.data)?;
            digests.push(event_digest(&DigestInput {
                tenant_id: tenant.0,
                stream_type: &stream.stream_type,
                stream_id: stream.stream_id.0,
                event_id: e.event_id,
                event_type: &e.event_type,
                schema_version: e.schema_version,
                data: data.get(),
                metadata: meta.get(),
                recorded_at,
            }));
            datas.push(data);
        }
        let head = match (expected, idempotency) {
            (ExpectedVersion::NoStream, None) => Some((0, GENESIS)),
            (ExpectedVersion::Exact(n), None) if n > 0 => {
                match self.heads.get(tenant, stream.stream_id, n) {
                    Some(h) => Some((n, h)),
                    None => Some((n, self.hash_at(conn, tenant, stream, expected, n).await?)),
                }
            }
            _ => None,
        };
        let outcome = match head {
            Some((version, hash)) => {
                let (o, h) = self
                    .insert_direct(
                        conn,
                        tenant,
                        stream,
                        expected,
                        (version, hash),
                        events,
                        &datas,
                        &digests,
                        &meta,
                        recorded_at,
                    )
                    .await?;
                (o, Some(h))
            }
            None => {
                let o = append_function(
                    conn,
                    tenant,
                    stream,
                    expected,
                    events,
                    &datas,
                    &digests,
                    &meta,
                    recorded_at,
                    idempotency,
                )
                .await?;
                (o, None)
            }
        };
        Ok(outcome)
    }

    /// The stored hash of `version` (which must exist for an `Exact` append).
    async fn hash_at(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        stream: &StreamRef,
        expected: ExpectedVersion,
        version: i64,
    ) -> Result<[u8; 32]> {
        let row: Option<(Vec<u8>, i64)> = sqlx::query_as(
            "SELECT e.hash, (SELECT max(version) FROM events m WHERE m.tenant_id = $1 \
             AND m.stream_id = $2) FROM events e WHERE e.tenant_id = $1 AND e.stream_id = $2 \
             AND e.version = $3",
        )
        .bind(tenant.0)
        .bind(stream.stream_id.0)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some((h, _)) => h
                .try_into()
                .map_err(|_| StoreError::Invalid("bad hash".into())),
            None => {
                let actual: Option<i64> = sqlx::query_scalar(
                    "SELECT max(version) FROM events WHERE tenant_id = $1 AND stream_id = $2",
                )
                .bind(tenant.0)
                .bind(stream.stream_id.0)
                .fetch_one(&mut *conn)
                .await?;
                Err(StoreError::Conflict {
                    stream_id: stream.stream_id.0,
                    expected,
                    actual: Some(actual.unwrap_or(0)),
                })
            }
        }
    }

    /// The fast path: one multi-row INSERT whose guard re-checks the head it chains onto.
    #[allow(clippy::too_many_arguments)]
    async fn insert_direct(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        stream: &StreamRef,
        expected: ExpectedVersion,
        (head_version, head_hash): (i64, [u8; 32]),
        events: &[NewEvent],
        datas: &[Box<RawValue>],
        digests: &[[u8; 32]],
        meta: &RawValue,
        recorded_at: DateTime<Utc>,
    ) -> Result<(AppendOutcome, [u8; 32])> {
        let mut prev = head_hash;
        let mut hashes: Vec<Vec<u8>> = Vec::with_capacity(events.len());
        for (i, d) in digests.iter().enumerate() {
            prev = chain(&prev, head_version + 1 + i as i64, d);
            hashes.push(prev.to_vec());
        }
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let versions: Vec<i32> = events.iter().map(|e| e.schema_version).collect();
        let datas: Vec<Json<&RawValue>> = datas.iter().map(|d| Json(&**d)).collect();
        let rows = sqlx::query(INSERT_DIRECT_SQL)
            .bind(tenant.0)
            .bind(&stream.stream_type)
            .bind(stream.stream_id.0)
            .bind(head_version)
            .bind(&ids)
            .bind(&types)
            .bind(&versions)
            .bind(&datas)
            .bind(Json(meta))
            .bind(recorded_at)
            .bind(&hashes)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| StoreError::from_append(e, stream.stream_id.0, expected))?;
        if rows.len() != events.len() {
            return Err(StoreError::Invalid(format!(
                "inserted {} of {} events",
                rows.len(),
                events.len()
            )));
        }
        let first = rows.first().map(|r| r.try_get::<i64, _>(0)).transpose()?;
        let last = rows.last().map(|r| r.try_get::<i64, _>(0)).transpose()?;
        let txid = rows.first().map(|r| r.try_get::<i64, _>(1)).transpose()?;
        let next_version = head_version + events.len() as i64;
        let outcome = AppendOutcome {
            stream_id: Some(stream.stream_id.0),
            first_version: head_version + 1,
            next_version,
            first_position: first,
            last_position: last,
            transaction_id: txid.map(|t| t.to_string()),
            count: events.len() as i64,
            replayed: false,
        };
        Ok((outcome, prev))
    }

    fn remember_head(&self, events: &[RecordedEvent]) {
        if let Some(last) = events.last()
            && let Ok(h) = <[u8; 32]>::try_from(last.hash.as_slice())
        {
            self.heads
                .put(last.tenant_id, last.stream_id, last.version, h);
        }
    }
}

/// The fast-path INSERT. It needs no guard: the head it chains onto (version `$4`) is known to
/// be committed — it came from a committed read, a committed append, or a lookup — and events
/// are immutable, so it still exists. A head *above* `$4` violates the unique key (23505).
const INSERT_DIRECT_SQL: &str = "INSERT INTO events (tenant_id, stream_type, stream_id, version, \
     event_id, event_type, schema_version, data, metadata, recorded_at, hash) \
     SELECT $1, $2, $3, $4 + t.ord, t.event_id, t.event_type, t.schema_version, t.data, $9, $10, \
            t.hash \
       FROM unnest($5::uuid[], $6::text[], $7::int4[], $8::jsonb[], $11::bytea[]) \
            WITH ORDINALITY AS t(event_id, event_type, schema_version, data, hash, ord) \
     RETURNING global_position, transaction_id::text::int8";

/// The batched INSERT of new streams ([`PgEventStore::append_new_streams_in`]). Like
/// [`INSERT_DIRECT_SQL`] it needs no guard: every stream starts at version 1, and a stream that
/// exists already violates the unique key (23505).
const INSERT_NEW_STREAMS_SQL: &str = "INSERT INTO events (tenant_id, stream_type, stream_id, \
     version, event_id, event_type, schema_version, data, metadata, recorded_at, hash) \
     SELECT $1, $2, t.stream_id, t.version, t.event_id, t.event_type, t.schema_version, t.data, \
            t.metadata, $3, t.hash \
       FROM unnest($4::uuid[], $5::int8[], $6::uuid[], $7::text[], $8::int4[], $9::jsonb[], \
                   $10::jsonb[], $11::bytea[]) \
            AS t(stream_id, version, event_id, event_type, schema_version, data, metadata, hash) \
     RETURNING event_id, global_position, transaction_id::text::int8";

#[allow(clippy::too_many_arguments)]
async fn append_function(
    conn: &mut PgConnection,
    tenant: TenantId,
    stream: &StreamRef,
    expected: ExpectedVersion,
    events: &[NewEvent],
    datas: &[Box<RawValue>],
    digests: &[[u8; 32]],
    meta: &RawValue,
    recorded_at: DateTime<Utc>,
    idempotency: Option<&IdempotencyKey>,
) -> Result<AppendOutcome> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let versions: Vec<i32> = events.iter().map(|e| e.schema_version).collect();
    let datas: Vec<Json<&RawValue>> = datas.iter().map(|d| Json(&**d)).collect();
    let metas: Vec<Json<&RawValue>> = events.iter().map(|_| Json(meta)).collect();
    let digests: Vec<&[u8]> = digests.iter().map(|d| d.as_slice()).collect();
    let row = sqlx::query(
        "SELECT replayed, result FROM eventdesk_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13)",
    )
    .bind(tenant.0)
    .bind(&stream.stream_type)
    .bind(stream.stream_id.0)
    .bind(expected.as_sql())
    .bind(&ids)
    .bind(&types)
    .bind(&versions)
    .bind(&datas)
    .bind(&metas)
    .bind(recorded_at)
    .bind(&digests)
    .bind(idempotency.map(|k| k.key.as_str()))
    .bind(idempotency.map(|k| k.request_hash.to_vec()))
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| StoreError::from_append(e, stream.stream_id.0, expected))?;
    let replayed: bool = row.try_get(0)?;
    let Json(result): Json<serde_json::Value> = row.try_get(1)?;
    let mut outcome: AppendOutcome = serde_json::from_value(result)
        .map_err(|e| StoreError::Invalid(format!("stored append result: {e}")))?;
    outcome.replayed = replayed;
    Ok(outcome)
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append(
        &self,
        tenant: TenantId,
        stream: &StreamRef,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        metadata: &EventMetadata,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<AppendOutcome> {
        let mut attempt = 0;
        loop {
            // One statement in autocommit mode: one round trip, one short transaction.
            let mut conn = self.pool.acquire().await?;
            let r = self
                .append_once(
                    &mut conn,
                    tenant,
                    stream,
                    expected,
                    &events,
                    metadata,
                    idempotency,
                )
                .await;
            match r {
                Err(StoreError::Conflict { .. })
                    if expected == ExpectedVersion::Any && attempt < ANY_RETRIES =>
                {
                    attempt += 1;
                    continue;
                }
                Ok((outcome, head)) => {
                    if let Some(h) = head {
                        self.heads
                            .put(tenant, stream.stream_id, outcome.next_version, h);
                    }
                    if outcome.count > 0 && !outcome.replayed {
                        self.notify_appended();
                    }
                    return Ok(outcome);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn read_stream(
        &self,
        tenant: TenantId,
        stream_id: StreamId,
        from_version: i64,
    ) -> Result<Vec<RecordedEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND stream_id = $2 \
             AND version >= $3 ORDER BY version"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.0)
            .bind(stream_id.0)
            .bind(from_version)
            .fetch_all(&self.pool)
            .await?;
        let events = rows
            .iter()
            .map(|r| self.decode_row(r))
            .collect::<Result<Vec<_>>>()?;
        self.remember_head(&events);
        Ok(events)
    }

    async fn read_all(&self, after: Checkpoint, limit: i64) -> Result<Vec<RecordedEvent>> {
        let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(10_000));
        let mut rows = self.stream_all(after, limit);
        while let Some(e) = rows.try_next().await? {
            out.push(e);
        }
        Ok(out)
    }
}

impl PgEventStore {
    /// `read_all` as a stream: events are decoded as rows arrive, so a consumer that handles
    /// them one by one overlaps with the database and never holds the whole batch.
    pub fn stream_all(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> futures::stream::BoxStream<'_, Result<RecordedEvent>> {
        sqlx::query(READ_ALL_SQL.as_str())
            .bind(after.transaction_id as i64)
            .bind(after.position)
            .bind(limit)
            .fetch(&self.pool)
            .map_err(StoreError::from)
            .and_then(move |row| futures::future::ready(self.decode_row(&row)))
            .boxed()
    }
}

impl PgEventStore {
    /// One tenant's events of one stream type after `after`, below the horizon, in log order
    /// (the catch-up read of live-event clients; served by `events_tenant_log_order`). The
    /// tenant predicate is explicit, so this is safe on the system (BYPASSRLS) pool.
    pub async fn read_tenant_after(
        &self,
        tenant: TenantId,
        stream_type: &str,
        after: Checkpoint,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE tenant_id = $1 AND stream_type = $2 \
               AND (transaction_id, global_position) > ($3::int8::text::xid8, $4) \
               AND transaction_id < (SELECT pg_snapshot_xmin(pg_current_snapshot())) \
             ORDER BY transaction_id, global_position LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.0)
            .bind(stream_type)
            .bind(after.transaction_id as i64)
            .bind(after.position)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| self.decode_row(r)).collect()
    }

    /// When the event at exactly `at` was recorded, if there is one (any tenant: it tells a
    /// resuming reader whether its position is still inside a retention window).
    pub async fn recorded_at(&self, at: Checkpoint) -> Result<Option<DateTime<Utc>>> {
        let t: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT recorded_at FROM events WHERE global_position = $1 \
             AND transaction_id = $2::int8::text::xid8",
        )
        .bind(at.position)
        .bind(at.transaction_id as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(t)
    }
}

/// The horizon query: strictly after the checkpoint, strictly below the oldest running
/// transaction, in `(transaction_id, global_position)` order. The horizon is computed once per
/// statement (an InitPlan), so it bounds the index scan.
pub static READ_ALL_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {EVENT_COLUMNS} FROM events \
         WHERE (transaction_id, global_position) > ($1::int8::text::xid8, $2) \
           AND transaction_id < (SELECT pg_snapshot_xmin(pg_current_snapshot())) \
         ORDER BY transaction_id, global_position LIMIT $3"
    )
});

/// A v7 uuid (re-exported for callers that build events by hand).
pub fn new_event_id() -> Uuid {
    Uuid::now_v7()
}

/// Serialises a value once, canonically (see [`canonical_json`]), without re-parsing it.
fn raw_json(v: &serde_json::Value) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(v).map_err(|e| StoreError::Invalid(format!("json: {e}")))
}
