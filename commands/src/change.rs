//! Change commands (ADR 0022). A change is loaded from its own stream only ([`load_typed`]):
//! an id naming another kind of stream of the tenant is a change that does not exist. The
//! facts a decision needs from outside the stream — the conflicting scheduled changes of
//! `Schedule` — are found by the caller and passed in the command.

use crate::cmdb::{load_typed, prepare_typed};
use crate::error::CommandError;
use crate::execute::{Clock, Executed, Options, encode};
use eventdesk_domain::change_request::{ChangeAggregate, ChangeCommand, ChangeError};
use eventdesk_domain::{Aggregate, ChangeId, StreamId, TenantId};
use eventdesk_store::{EventStore, PgEventStore, StreamRef};

/// Runs change commands against change `id`: typed load, `If-Match`, decide, append with the
/// loaded version as the expected version (a concurrent writer is a conflict).
pub async fn execute_change(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: ChangeId,
    commands: Vec<ChangeCommand>,
    opts: &Options,
) -> Result<Executed<ChangeAggregate>, CommandError<ChangeError>> {
    let stream = StreamId(id.0);
    let prepared =
        prepare_typed::<ChangeAggregate>(store, clock, tenant, stream, commands, opts).await?;
    if prepared.events.is_empty() {
        return Ok(prepared.into_executed(None));
    }
    let envelopes = encode(&prepared.events).map_err(CommandError::Corrupt)?;
    let out = store
        .append(
            tenant,
            &StreamRef::new(ChangeAggregate::STREAM_TYPE, stream),
            prepared.expected(),
            envelopes,
            &opts.metadata,
            opts.idempotency.as_ref(),
        )
        .await?;
    if out.replayed {
        let (state, version) = load_typed::<ChangeAggregate>(store, tenant, stream).await?;
        return Ok(Executed {
            state,
            version,
            appended: Some(out),
        });
    }
    Ok(prepared.into_executed(Some(out)))
}

/// Change `id` of `tenant` with its version (default state at 0 if there is none).
pub async fn load_change(
    store: &PgEventStore,
    tenant: TenantId,
    id: ChangeId,
) -> Result<(ChangeAggregate, i64), CommandError<ChangeError>> {
    load_typed::<ChangeAggregate>(store, tenant, StreamId(id.0)).await
}
