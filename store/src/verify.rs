//! Verifying stored streams against their hash chain, reading the rows exactly as stored
//! (no upcasting: the hash covers the stored form).

use crate::Result;
use crate::hash::{ChainFault, ChainVerifier, DigestInput, StoredLink, canonical_json};
use chrono::{DateTime, Utc};
use eventdesk_domain::{StreamId, TenantId};
use futures::TryStreamExt;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// The first bad event found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEvent {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Stream.
    pub stream_id: Uuid,
    /// Global position of the offending row.
    pub global_position: i64,
    /// Its event id.
    pub event_id: Uuid,
    /// What is wrong.
    pub fault: ChainFault,
}

/// Verifies one stream's chain and version continuity.
pub async fn verify_stream(
    pool: &PgPool,
    tenant: TenantId,
    stream: StreamId,
) -> Result<Result<u64, BadEvent>> {
    verify_where(
        pool,
        "tenant_id = $1 AND stream_id = $2",
        Some(tenant.0),
        Some(stream.0),
    )
    .await
}

/// Verifies every stream of a tenant (or of all tenants with `None`). Returns the number of
/// events checked, or the first bad event in (tenant, stream, version) order.
pub async fn verify_all(pool: &PgPool, tenant: Option<TenantId>) -> Result<Result<u64, BadEvent>> {
    match tenant {
        Some(t) => verify_where(pool, "tenant_id = $1", Some(t.0), None).await,
        None => verify_where(pool, "true", None, None).await,
    }
}

async fn verify_where(
    pool: &PgPool,
    predicate: &str,
    a: Option<Uuid>,
    b: Option<Uuid>,
) -> Result<Result<u64, BadEvent>> {
    let sql = format!(
        "SELECT tenant_id, stream_type, stream_id, version, event_id, event_type, \
         schema_version, data, metadata, recorded_at, hash, global_position FROM events \
         WHERE {predicate} ORDER BY tenant_id, stream_id, version"
    );
    let mut q = sqlx::query(&sql);
    if let Some(a) = a {
        q = q.bind(a);
    }
    if let Some(b) = b {
        q = q.bind(b);
    }
    let mut rows = q.fetch(pool);
    let mut current: Option<(Uuid, Uuid)> = None;
    let mut verifier = ChainVerifier::default();
    let mut n = 0u64;
    while let Some(row) = rows.try_next().await? {
        let tenant_id: Uuid = row.try_get(0)?;
        let stream_type: String = row.try_get(1)?;
        let stream_id: Uuid = row.try_get(2)?;
        let version: i64 = row.try_get(3)?;
        let event_id: Uuid = row.try_get(4)?;
        let event_type: String = row.try_get(5)?;
        let schema_version: i32 = row.try_get(6)?;
        let Json(data): Json<serde_json::Value> = row.try_get(7)?;
        let Json(metadata): Json<serde_json::Value> = row.try_get(8)?;
        let recorded_at: DateTime<Utc> = row.try_get(9)?;
        let hash: Vec<u8> = row.try_get(10)?;
        let global_position: i64 = row.try_get(11)?;
        if current != Some((tenant_id, stream_id)) {
            current = Some((tenant_id, stream_id));
            verifier = ChainVerifier::default();
        }
        let (data, metadata) = (canonical_json(&data), canonical_json(&metadata));
        let link = StoredLink {
            version,
            input: DigestInput {
                tenant_id,
                stream_type: &stream_type,
                stream_id,
                event_id,
                event_type: &event_type,
                schema_version,
                data: &data,
                metadata: &metadata,
                recorded_at,
            },
            hash: &hash,
        };
        if let Err(fault) = verifier.check(&link) {
            return Ok(Err(BadEvent {
                tenant_id,
                stream_id,
                global_position,
                event_id,
                fault,
            }));
        }
        n += 1;
    }
    Ok(Ok(n))
}
