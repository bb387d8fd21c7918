//! Problem commands (ADR 0021).
//!
//! - A problem is loaded from its own stream only ([`load_typed`]): an id that names another
//!   kind of stream of the tenant is a problem that does not exist.
//! - **One problem per incident.** Linking claims the incident in `problem_incident_claims`
//!   in the transaction of the `ProblemIncidentLinked` event; a claim held by another problem
//!   is [`CommandError::Taken`] on `incident_id`. Unlinking releases the claim in the
//!   transaction of `ProblemIncidentUnlinked`. The incident must be an incident of the tenant
//!   (read from its stream), else [`LinkError::IncidentNotFound`].

use crate::cmdb::{load_typed, prepare_typed};
use crate::error::CommandError;
use crate::execute::{Clock, Executed, Options, encode};
use eventdesk_domain::incident::IncidentAggregate;
use eventdesk_domain::problem::{ProblemAggregate, ProblemCommand, ProblemError};
use eventdesk_domain::{Actor, Aggregate, IncidentId, ProblemId, StreamId, TenantId};
use eventdesk_store::{EventStore, PgEventStore, StreamRef};
use uuid::Uuid;

/// Runs problem commands against problem `id` (create, update, status actions): typed load,
/// `If-Match`, decide, append with the loaded version as the expected version. Links go
/// through [`link_incident`] and [`unlink_incident`] (they hold a claim).
pub async fn execute_problem(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: ProblemId,
    commands: Vec<ProblemCommand>,
    opts: &Options,
) -> Result<Executed<ProblemAggregate>, CommandError<ProblemError>> {
    let stream = StreamId(id.0);
    let prepared =
        prepare_typed::<ProblemAggregate>(store, clock, tenant, stream, commands, opts).await?;
    if prepared.events.is_empty() {
        return Ok(prepared.into_executed(None));
    }
    let envelopes = encode(&prepared.events).map_err(CommandError::Corrupt)?;
    let out = store
        .append(
            tenant,
            &StreamRef::new(ProblemAggregate::STREAM_TYPE, stream),
            prepared.expected(),
            envelopes,
            &opts.metadata,
            opts.idempotency.as_ref(),
        )
        .await?;
    if out.replayed {
        let (state, version) = load_typed::<ProblemAggregate>(store, tenant, stream).await?;
        return Ok(Executed {
            state,
            version,
            appended: Some(out),
        });
    }
    Ok(prepared.into_executed(Some(out)))
}

/// Problem `id` of `tenant` with its version (default state at 0 if there is none).
pub async fn load_problem(
    store: &PgEventStore,
    tenant: TenantId,
    id: ProblemId,
) -> Result<(ProblemAggregate, i64), CommandError<ProblemError>> {
    load_typed::<ProblemAggregate>(store, tenant, StreamId(id.0)).await
}

/// Why a link could not be made, beyond the problem's own rejections.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The problem rejected it.
    #[error(transparent)]
    Problem(#[from] ProblemError),
    /// The incident is not an incident of the tenant.
    #[error("incident {0} not found")]
    IncidentNotFound(IncidentId),
    /// The incident is linked to another problem.
    #[error("incident {incident} is already linked to problem {problem}")]
    LinkedElsewhere {
        /// The incident.
        incident: IncidentId,
        /// The problem it is linked to.
        problem: ProblemId,
    },
}

fn lift(e: CommandError<ProblemError>) -> CommandError<LinkError> {
    match e {
        CommandError::Rejected(r) => CommandError::Rejected(LinkError::Problem(r)),
        CommandError::PreconditionFailed { actual } => CommandError::PreconditionFailed { actual },
        CommandError::Conflict => CommandError::Conflict,
        CommandError::IdempotencyMismatch => CommandError::IdempotencyMismatch,
        CommandError::Taken { field } => CommandError::Taken { field },
        CommandError::Corrupt(m) => CommandError::Corrupt(m),
        CommandError::Store(s) => CommandError::Store(s),
    }
}

/// Links incident `incident` to problem `id`: the incident must exist in the tenant and be
/// linked to no other problem (its claim is taken in the append's transaction). Linking an
/// incident already linked to this problem appends nothing.
pub async fn link_incident(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: ProblemId,
    incident: IncidentId,
    actor: Actor,
    opts: &Options,
) -> Result<Executed<ProblemAggregate>, CommandError<LinkError>> {
    let (inc, _) = load_typed::<IncidentAggregate>(store, tenant, StreamId(incident.0))
        .await
        .map_err(|e| match e {
            CommandError::Store(s) => CommandError::Store(s),
            other => CommandError::Corrupt(other.to_string()),
        })?;
    if inc.state.is_none() {
        // The problem's own existence is checked first, so a missing problem stays a 404 of
        // the problem.
        let (p, _) = load_problem(store, tenant, id).await.map_err(lift)?;
        if p.state.is_none() {
            return Err(CommandError::Rejected(ProblemError::NotFound.into()));
        }
        return Err(CommandError::Rejected(LinkError::IncidentNotFound(
            incident,
        )));
    }
    let stream = StreamId(id.0);
    let prepared = prepare_typed::<ProblemAggregate>(
        store,
        clock,
        tenant,
        stream,
        vec![ProblemCommand::LinkIncident {
            incident_id: incident,
            actor,
        }],
        opts,
    )
    .await
    .map_err(lift)?;
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "INSERT INTO problem_incident_claims (tenant_id, incident_id, problem_id) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.0)
    .bind(incident.0)
    .bind(id.0)
    .execute(&mut *tx)
    .await?;
    let holder: Option<Uuid> = sqlx::query_scalar(
        "SELECT problem_id FROM problem_incident_claims WHERE tenant_id = $1 AND incident_id = $2",
    )
    .bind(tenant.0)
    .bind(incident.0)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(h) = holder
        && h != id.0
    {
        return Err(CommandError::Rejected(LinkError::LinkedElsewhere {
            incident,
            problem: ProblemId(h),
        }));
    }
    if prepared.events.is_empty() {
        tx.commit().await?;
        return Ok(prepared.into_executed(None));
    }
    let envelopes = encode(&prepared.events).map_err(CommandError::Corrupt)?;
    let out = store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new(ProblemAggregate::STREAM_TYPE, stream),
            prepared.expected(),
            &envelopes,
            &opts.metadata,
            None,
        )
        .await?;
    tx.commit().await?;
    store.notify_appended();
    Ok(prepared.into_executed(Some(out)))
}

/// Unlinks incident `incident` from problem `id` and releases its claim.
pub async fn unlink_incident(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: ProblemId,
    incident: IncidentId,
    actor: Actor,
    opts: &Options,
) -> Result<Executed<ProblemAggregate>, CommandError<ProblemError>> {
    let stream = StreamId(id.0);
    let prepared = prepare_typed::<ProblemAggregate>(
        store,
        clock,
        tenant,
        stream,
        vec![ProblemCommand::UnlinkIncident {
            incident_id: incident,
            actor,
        }],
        opts,
    )
    .await?;
    let envelopes = encode(&prepared.events).map_err(CommandError::Corrupt)?;
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "DELETE FROM problem_incident_claims \
         WHERE tenant_id = $1 AND incident_id = $2 AND problem_id = $3",
    )
    .bind(tenant.0)
    .bind(incident.0)
    .bind(id.0)
    .execute(&mut *tx)
    .await?;
    let out = store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new(ProblemAggregate::STREAM_TYPE, stream),
            prepared.expected(),
            &envelopes,
            &opts.metadata,
            None,
        )
        .await?;
    tx.commit().await?;
    store.notify_appended();
    Ok(prepared.into_executed(Some(out)))
}
