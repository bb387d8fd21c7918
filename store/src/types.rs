//! Envelopes: what goes into the store and what comes out.

use chrono::{DateTime, Utc};
use eventdesk_domain::{StreamId, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which stream an append targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRef {
    /// The aggregate kind, e.g. `incident`.
    pub stream_type: String,
    /// The aggregate instance.
    pub stream_id: StreamId,
}

impl StreamRef {
    /// A stream of `stream_type` with id `id`.
    pub fn new(stream_type: impl Into<String>, id: impl Into<StreamId>) -> Self {
        Self {
            stream_type: stream_type.into(),
            stream_id: id.into(),
        }
    }
}

/// The optimistic-concurrency precondition of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the head is (only for commutative appends).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's head must be exactly this version.
    Exact(i64),
}

impl ExpectedVersion {
    /// The encoding `eventdesk_append` takes: -1 any, 0 no stream, n exact.
    pub(crate) fn as_sql(self) -> i64 {
        match self {
            ExpectedVersion::Any => -1,
            ExpectedVersion::NoStream => 0,
            ExpectedVersion::Exact(n) => n,
        }
    }
}

/// One event to append. `data` is the payload only; the type is a separate column.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// UUID v7, assigned by the caller so retries are recognisable.
    pub event_id: Uuid,
    /// Stable type name, e.g. `IncidentCreated`.
    pub event_type: String,
    /// The payload's schema version.
    pub schema_version: i32,
    /// The payload.
    pub data: serde_json::Value,
}

/// One new stream of a batched append ([`crate::PgEventStore::append_new_streams_in`]).
#[derive(Debug, Clone, Copy)]
pub struct NewStream<'a> {
    /// The stream to create.
    pub stream_id: StreamId,
    /// Its first events (versions 1, 2, …).
    pub events: &'a [NewEvent],
    /// The metadata of its events.
    pub metadata: &'a EventMetadata,
}

impl NewEvent {
    /// A new event with a fresh v7 id.
    pub fn new(
        event_type: impl Into<String>,
        schema_version: i32,
        data: serde_json::Value,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version,
            data,
        }
    }
}

/// Who did it and in answer to what. Stored on every event; part of the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMetadata {
    /// The actor, e.g. `user:<uuid>`, `api_key:<uuid>` or `system:sla-scheduler`.
    pub actor: String,
    /// The HTTP request id (x-request-id), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Correlates all events caused by one user intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event (id) that caused this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// True when a test-mode API key (`qg_test_…`) acted: the integration bus records the
    /// deliveries of such events as `dry_run` and sends nothing outside (ADR 0016). Absent when
    /// false, so the stored (and hashed) metadata of every other event keeps its old shape.
    #[serde(default, skip_serializing_if = "is_false")]
    pub test_mode: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An optional idempotency key with the hash of the request it guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The client's key (1..=255 chars), unique per tenant.
    pub key: String,
    /// sha256 of the canonical request; the same key with another hash is refused.
    pub request_hash: [u8; 32],
}

/// What an append wrote (or, when `replayed`, what the first append with this key wrote).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    /// The stream written (for a replay: the stream the *first* request wrote).
    #[serde(default)]
    pub stream_id: Option<Uuid>,
    /// Version of the first event written.
    pub first_version: i64,
    /// The stream's head version after the append (the new ETag).
    pub next_version: i64,
    /// Global position of the first event written (None when nothing was written).
    pub first_position: Option<i64>,
    /// Global position of the last event written.
    pub last_position: Option<i64>,
    /// The writing transaction's id (as text: xid8 is unsigned 64-bit).
    pub transaction_id: Option<String>,
    /// Number of events written.
    pub count: i64,
    /// True when this is the stored outcome of an earlier append with the same key.
    #[serde(default)]
    pub replayed: bool,
}

impl AppendOutcome {
    /// The checkpoint of the last event written, which a reader can wait for
    /// (read-your-writes).
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        let txid = self.transaction_id.as_deref()?.parse().ok()?;
        Some(Checkpoint {
            transaction_id: txid,
            position: self.last_position?,
        })
    }
}

/// A position in the global log: `(transaction_id, global_position)`, compared in that order.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Checkpoint {
    /// The xid8 of the writing transaction.
    pub transaction_id: u64,
    /// The identity column value.
    pub position: i64,
}

impl Checkpoint {
    /// Before the first event.
    pub const START: Checkpoint = Checkpoint {
        transaction_id: 0,
        position: 0,
    };
}

/// A stored event, upcast to the current schema of its type.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Global position (identity).
    pub global_position: i64,
    /// The writing transaction.
    pub transaction_id: u64,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Stream type.
    pub stream_type: String,
    /// Stream id.
    pub stream_id: StreamId,
    /// Version in the stream (1-based, gap-free).
    pub version: i64,
    /// Event id.
    pub event_id: Uuid,
    /// Event type.
    pub event_type: String,
    /// Schema version after upcasting.
    pub schema_version: i32,
    /// Schema version as stored (before upcasting); the hash covers the stored form.
    pub stored_schema_version: i32,
    /// Payload (upcast).
    pub data: serde_json::Value,
    /// Metadata.
    pub metadata: EventMetadata,
    /// When it was recorded (microsecond precision).
    pub recorded_at: DateTime<Utc>,
    /// The chained hash.
    pub hash: Vec<u8>,
}

impl RecordedEvent {
    /// This event's checkpoint.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            transaction_id: self.transaction_id,
            position: self.global_position,
        }
    }
}

#[cfg(test)]
mod metadata_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `test_mode` must not change the stored form (and so the hash) of any other event: the
    /// field is absent when false, and metadata stored before it existed still decodes.
    #[test]
    fn test_mode_is_backward_compatible() {
        let old = serde_json::json!({"actor": "user:x", "request_id": "r"});
        let m: EventMetadata = serde_json::from_value(old.clone()).unwrap();
        assert!(!m.test_mode);
        assert_eq!(serde_json::to_value(&m).unwrap(), old);
        let test = EventMetadata {
            test_mode: true,
            ..m
        };
        let v = serde_json::to_value(&test).unwrap();
        assert_eq!(v["test_mode"], true);
        assert_eq!(serde_json::from_value::<EventMetadata>(v).unwrap(), test);
        assert!(
            serde_json::from_value::<EventMetadata>(serde_json::json!({"actor": "a", "x": 1}))
                .is_err()
        );
    }
}
