//! The per-tenant security log: logins, failures, refresh-token reuse, permission denials,
//! API-key creation and revocation are events in the tenant's `security` stream (failures for
//! unknown usernames go to the platform's stream, tenant = nil UUID). They are appended with
//! `ExpectedVersion::Any` (the log is commutative) and never block the request on failure.

use crate::app::AppState;
use eventdesk_domain::{StreamId, TenantId};
use eventdesk_store::{EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamRef};
use sha2::{Digest, Sha256};

/// The security stream's id of a tenant (derived, so it needs no lookup).
pub fn stream_of(tenant: TenantId) -> StreamId {
    let h = Sha256::digest([b"eventdesk:security:".as_slice(), tenant.0.as_bytes()].concat());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    StreamId(uuid::Uuid::from_bytes(b))
}

/// Appends one security event; logs (and swallows) a failure to record it.
pub async fn record(
    state: &AppState,
    tenant: TenantId,
    event_type: &str,
    actor: &str,
    request_id: Option<String>,
    data: serde_json::Value,
) {
    tracing::info!(security_event = event_type, tenant_id = %tenant, actor, %data, "security event");
    let meta = EventMetadata {
        actor: actor.to_owned(),
        request_id,
        correlation_id: None,
        causation_id: None,
        test_mode: false,
    };
    let r = state
        .store
        .with_pool(state.system.clone())
        .append(
            tenant,
            &StreamRef::new("security", stream_of(tenant)),
            ExpectedVersion::Any,
            vec![NewEvent::new(event_type, 1, data)],
            &meta,
            None,
        )
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, event_type, "could not record security event");
    }
}
