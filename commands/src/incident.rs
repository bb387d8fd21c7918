//! Creating an incident: the number is allocated in the same transaction as the append.

use crate::error::CommandError;
use crate::execute::{Clock, Executed, Options, encode};
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand, IncidentError};
use eventdesk_domain::values::IncidentNumber;
use eventdesk_domain::{Aggregate, IncidentId, StreamId, TenantId};
use eventdesk_store::{ExpectedVersion, PgEventStore, StreamRef};

/// Everything `IncidentCommand::Create` needs except the number and the clock.
pub type CreateIncident = Box<dyn FnOnce(IncidentNumber) -> IncidentCommand + Send>;

/// Creates incident `id`: takes the tenant's next number (row-locked until commit, so numbers
/// are gap-free and unique under concurrency), decides, and appends — all in one transaction.
/// A replayed idempotency key rolls the number back and returns the first request's incident.
pub async fn create_incident(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: IncidentId,
    build: CreateIncident,
    opts: &Options,
) -> Result<Executed<IncidentAggregate>, CommandError<IncidentError>> {
    let stream = StreamId(id.0);
    let mut tx = store.pool().begin().await?;
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO incident_counters (tenant_id, last) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET last = incident_counters.last + 1 RETURNING last",
    )
    .bind(tenant.0)
    .fetch_one(&mut *tx)
    .await?;
    let number = IncidentNumber::from_sequence(u64::try_from(seq).unwrap_or(0))
        .map_err(|e| CommandError::Corrupt(e.to_string()))?;
    let mut state = IncidentAggregate::default();
    let events = state
        .decide(build(number), clock.now())
        .map_err(CommandError::Rejected)?;
    let envelopes = encode(&events).map_err(CommandError::Corrupt)?;
    let out = store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new(IncidentAggregate::STREAM_TYPE, stream),
            ExpectedVersion::NoStream,
            &envelopes,
            &opts.metadata,
            opts.idempotency.as_ref(),
        )
        .await?;
    if out.replayed {
        tx.rollback().await?;
        let (state, version) =
            crate::load::<IncidentAggregate>(store, tenant, stream_of(&out, stream)).await?;
        return Ok(Executed {
            state,
            version,
            appended: Some(out),
        });
    }
    tx.commit().await?;
    store.notify_appended();
    for e in &events {
        state.evolve(e);
    }
    Ok(Executed {
        state,
        version: out.next_version,
        appended: Some(out),
    })
}

/// The stream a replayed outcome refers to (the first request's incident).
fn stream_of(out: &eventdesk_store::AppendOutcome, fallback: StreamId) -> StreamId {
    out.stream_id.map(StreamId).unwrap_or(fallback)
}
