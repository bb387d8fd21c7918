//! SLA configuration commands whose content depends on the current state: a partial edit of a
//! calendar definition (`PATCH` of one part of it) or a holiday import in the calendar's own
//! time zone. The command is built from the state it will be decided on, and appended with
//! that state's version as the expected version, so a concurrent change is a conflict rather
//! than silently overwritten.

use crate::error::CommandError;
use crate::execute::{Clock, Executed, Options, Prepared, encode, load};
use eventdesk_domain::{Aggregate, StreamId, TenantId};
use eventdesk_store::{EventStore, PgEventStore, StreamRef};

/// Loads aggregate `id` of `tenant`, checks `If-Match`, builds the command from the loaded
/// state with `build` (which may reject it), decides and appends with the loaded version as
/// the expected version ([`CommandError::Conflict`] if another writer came first).
pub async fn execute_on_state<A, F>(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: StreamId,
    build: F,
    opts: &Options,
) -> Result<Executed<A>, CommandError<A::Error>>
where
    A: Aggregate,
    F: FnOnce(&A) -> Result<A::Command, A::Error>,
{
    let (state, version) = load::<A>(store, tenant, id).await?;
    if let Some(expected) = opts.if_match
        && expected != version
    {
        return Err(CommandError::PreconditionFailed { actual: version });
    }
    let command = build(&state).map_err(CommandError::Rejected)?;
    let events = state
        .decide(command, clock.now())
        .map_err(CommandError::Rejected)?;
    let prepared = Prepared {
        state,
        version,
        events,
    };
    if prepared.events.is_empty() {
        return Ok(prepared.into_executed(None));
    }
    let envelopes = encode(&prepared.events).map_err(CommandError::Corrupt)?;
    let out = store
        .append(
            tenant,
            &StreamRef::new(A::STREAM_TYPE, id),
            prepared.expected(),
            envelopes,
            &opts.metadata,
            opts.idempotency.as_ref(),
        )
        .await?;
    Ok(prepared.into_executed(Some(out)))
}
