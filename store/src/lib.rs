//! # eventdesk-store
//!
//! **Owns:** the event store — the [`EventStore`] trait and its PostgreSQL implementation
//! ([`PgEventStore`]): append with optimistic concurrency and idempotency, reading a stream,
//! reading the global log below the gap-free horizon, waking subscribers (LISTEN/NOTIFY with
//! polling as the fallback), the per-stream hash chain, upcasting of old event schemas, the
//! database pool (with the application role) and the embedded migrations.
//!
//! **Must not:** know any business rule, aggregate or read model. It moves envelopes
//! (`event_type`, `schema_version`, JSON `data`, metadata) and never interprets `data`.
//! It never UPDATEs or DELETEs an event; the database refuses that anyway.

pub mod checkpoint;
pub mod db;
pub mod error;
pub mod hash;
pub mod pg;
pub mod subscription;
pub mod timing;
pub mod types;
pub mod upcast;
pub mod verify;

pub use db::{Db, DbConfig, MIGRATOR};
pub use error::{Result, StoreError};
pub use pg::PgEventStore;
pub use subscription::{Subscription, Waker};
pub use types::*;
pub use upcast::Upcasters;

use async_trait::async_trait;
use eventdesk_domain::{StreamId, TenantId};

/// The contract every event store implementation honours (PostgreSQL today; EventStoreDB is
/// planned behind a feature and will run the same contract tests).
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends `events` to one stream atomically, if the stream is at `expected`.
    ///
    /// All events are written by one multi-row INSERT in one short transaction. A stream that
    /// is not at `expected` yields [`StoreError::Conflict`]. With an idempotency key, a repeat of
    /// the same request returns the first outcome (with `replayed = true`) and appends nothing;
    /// the same key with a different request yields [`StoreError::IdempotencyMismatch`].
    async fn append(
        &self,
        tenant: TenantId,
        stream: &StreamRef,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        metadata: &EventMetadata,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<AppendOutcome>;

    /// The events of one stream with `version >= from_version`, in version order, upcast.
    async fn read_stream(
        &self,
        tenant: TenantId,
        stream_id: StreamId,
        from_version: i64,
    ) -> Result<Vec<RecordedEvent>>;

    /// Up to `limit` events of all tenants strictly after `after`, in checkpoint order, and only
    /// below the safe horizon: no event that could still be preceded by a late commit is returned.
    async fn read_all(&self, after: Checkpoint, limit: i64) -> Result<Vec<RecordedEvent>>;
}
