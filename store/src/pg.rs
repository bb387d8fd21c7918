//! The PostgreSQL event store.

use crate::EventStore;
use crate::error::{Result, StoreError};
use crate::hash::{DigestInput, event_digest, to_micros};
use crate::subscription::Waker;
use crate::types::*;
use crate::upcast::Upcasters;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventdesk_domain::{StreamId, TenantId};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row};
use std::sync::Arc;
use uuid::Uuid;

/// How often an `Any` append retries after losing a race for the next version.
const ANY_RETRIES: usize = 8;

/// The columns every reader selects, in the order [`decode_row`] reads them.
pub const EVENT_COLUMNS: &str = "global_position, transaction_id::text::int8 AS transaction_id, \
     tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, data, \
     metadata, recorded_at, hash";

/// The PostgreSQL implementation of [`EventStore`].
#[derive(Clone, Debug)]
pub struct PgEventStore {
    pool: PgPool,
    upcasters: Arc<Upcasters>,
    waker: Waker,
}

impl PgEventStore {
    /// A store over `pool` (which should run as the application role).
    pub fn new(pool: PgPool, upcasters: Upcasters) -> Self {
        Self {
            pool,
            upcasters: Arc::new(upcasters),
            waker: Waker::new(),
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
        append_once(
            conn,
            tenant,
            stream,
            expected,
            events,
            metadata,
            idempotency,
        )
        .await
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

async fn append_once(
    conn: &mut PgConnection,
    tenant: TenantId,
    stream: &StreamRef,
    expected: ExpectedVersion,
    events: &[NewEvent],
    metadata: &EventMetadata,
    idempotency: Option<&IdempotencyKey>,
) -> Result<AppendOutcome> {
    if events.is_empty() && idempotency.is_none() {
        return Err(StoreError::Invalid("nothing to append".into()));
    }
    let recorded_at = to_micros(Utc::now());
    let meta = serde_json::to_value(metadata)
        .map_err(|e| StoreError::Invalid(format!("metadata: {e}")))?;
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut datas = Vec::with_capacity(n);
    let mut metas = Vec::with_capacity(n);
    let mut digests: Vec<Vec<u8>> = Vec::with_capacity(n);
    for e in events {
        digests.push(
            event_digest(&DigestInput {
                tenant_id: tenant.0,
                stream_type: &stream.stream_type,
                stream_id: stream.stream_id.0,
                event_id: e.event_id,
                event_type: &e.event_type,
                schema_version: e.schema_version,
                data: &e.data,
                metadata: &meta,
                recorded_at,
            })
            .to_vec(),
        );
        ids.push(e.event_id);
        types.push(e.event_type.as_str());
        versions.push(e.schema_version);
        datas.push(&e.data);
        metas.push(&meta);
    }
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
            let r = append_once(
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
                Ok(outcome) => {
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
        rows.iter().map(|r| self.decode_row(r)).collect()
    }

    async fn read_all(&self, after: Checkpoint, limit: i64) -> Result<Vec<RecordedEvent>> {
        let rows = sqlx::query(READ_ALL_SQL.as_str())
            .bind(after.transaction_id as i64)
            .bind(after.position)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| self.decode_row(r)).collect()
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
