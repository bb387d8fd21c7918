//! Custom roles: a role's name is claimed per tenant (case-insensitively) in the same
//! transaction as the event that gives the role that name, and released when the role is
//! renamed or deactivated, so two live roles of a tenant never share a name.
//!
//! A role is loaded from its own stream only: an id that names another kind of stream of the
//! tenant (a user's, say) is a role that does not exist ([`RoleError::NotFound`]), never a
//! decoding failure. [`assignable_role`] is the check behind assigning a role to a user.

use crate::error::CommandError;
use crate::execute::{Clock, Executed, Options, Prepared, encode};
use eventdesk_domain::directory::{CustomRole, RoleAggregate, RoleCommand, RoleError};
use eventdesk_domain::{Aggregate, DomainEvent, RoleId, StreamId, TenantId};
use eventdesk_store::{EventStore, ExpectedVersion, PgEventStore, StreamRef};
use sqlx::PgConnection;

/// Loads the role `id` of `tenant` with its version (a default state at version 0 if there is
/// no such role stream in the tenant).
pub async fn load_role(
    store: &PgEventStore,
    tenant: TenantId,
    id: RoleId,
) -> Result<(RoleAggregate, i64), CommandError<RoleError>> {
    let events = store.read_stream(tenant, StreamId(id.0), 1).await?;
    let mut state = RoleAggregate::default();
    let mut version = 0;
    if events
        .first()
        .is_some_and(|e| e.stream_type != RoleAggregate::STREAM_TYPE)
    {
        return Ok((state, version));
    }
    for e in &events {
        let ev = <RoleAggregate as Aggregate>::Event::decode(&e.event_type, &e.data)
            .map_err(|err| CommandError::Corrupt(format!("{}: {err}", e.global_position)))?;
        state.evolve(&ev);
        version = e.version;
    }
    Ok((state, version))
}

/// The role `id` if it may be assigned to a user of `tenant`: it is one of the tenant's roles
/// (else [`RoleError::NotFound`], also for another tenant's role) and it is active (else
/// [`RoleError::Deactivated`]). Read from the role's stream, so a role created a moment ago
/// is found whatever the read models' lag.
///
/// The check and the user's event are not one transaction: a role deactivated in between is
/// assigned all the same, which grants nothing (the holders of a deactivated role hold no
/// permission, ADR 0011).
pub async fn assignable_role(
    store: &PgEventStore,
    tenant: TenantId,
    id: RoleId,
) -> Result<CustomRole, CommandError<RoleError>> {
    let (agg, _) = load_role(store, tenant, id).await?;
    match agg.state {
        None => Err(CommandError::Rejected(RoleError::NotFound)),
        Some(r) if !r.is_active => Err(CommandError::Rejected(RoleError::Deactivated)),
        Some(r) => Ok(r),
    }
}

/// Loads the role, checks `If-Match`, and decides each command on the state left by the
/// previous ones (as `execute::prepare`, on [`load_role`]).
async fn prepare_role(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: RoleId,
    commands: Vec<RoleCommand>,
    opts: &Options,
) -> Result<Prepared<RoleAggregate>, CommandError<RoleError>> {
    let (state, version) = load_role(store, tenant, id).await?;
    if let Some(expected) = opts.if_match
        && expected != version
    {
        return Err(CommandError::PreconditionFailed { actual: version });
    }
    let now = clock.now();
    let mut events = Vec::new();
    let mut scratch = state.clone();
    for command in commands {
        let new = scratch
            .decide(command, now)
            .map_err(CommandError::Rejected)?;
        for e in &new {
            scratch.evolve(e);
        }
        events.extend(new);
    }
    Ok(Prepared {
        state,
        version,
        events,
    })
}

/// The claimed (lower-cased) name of a role: its name while it is active, none once
/// deactivated.
fn claim_of(agg: &RoleAggregate) -> Option<String> {
    agg.state
        .as_ref()
        .filter(|r| r.is_active)
        .map(|r| r.name.canonical())
}

/// Claims `name` for `role` in `tenant`; [`CommandError::Taken`] on `name` if another role
/// holds it.
async fn claim(
    conn: &mut PgConnection,
    tenant: TenantId,
    name: &str,
    role: RoleId,
) -> Result<(), CommandError<RoleError>> {
    let claimed = sqlx::query(
        "INSERT INTO role_name_claims (tenant_id, name, role_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant.0)
    .bind(name)
    .bind(role.0)
    .execute(&mut *conn)
    .await?;
    if claimed.rows_affected() == 0 {
        return Err(CommandError::Taken { field: "name" });
    }
    Ok(())
}

async fn release(
    conn: &mut PgConnection,
    tenant: TenantId,
    name: &str,
    role: RoleId,
) -> Result<(), CommandError<RoleError>> {
    sqlx::query("DELETE FROM role_name_claims WHERE tenant_id = $1 AND name = $2 AND role_id = $3")
        .bind(tenant.0)
        .bind(name)
        .bind(role.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Defines a custom role (`command` must be `RoleCommand::Create`) in `tenant`. Its name must
/// be free among the tenant's live roles, else [`CommandError::Taken`] names `name`.
pub async fn create_role(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    command: RoleCommand,
    opts: &Options,
) -> Result<Executed<RoleAggregate>, CommandError<RoleError>> {
    let RoleCommand::Create { id, name, .. } = &command else {
        return Err(CommandError::Corrupt(
            "create_role takes RoleCommand::Create".into(),
        ));
    };
    let (id, canonical) = (*id, name.canonical());
    let mut state = RoleAggregate::default();
    let events = state
        .decide(command, clock.now())
        .map_err(CommandError::Rejected)?;
    let envelopes = encode(&events).map_err(CommandError::Corrupt)?;
    let mut tx = store.pool().begin().await?;
    claim(&mut tx, tenant, &canonical, id).await?;
    let out = store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new(RoleAggregate::STREAM_TYPE, StreamId(id.0)),
            ExpectedVersion::NoStream,
            &envelopes,
            &opts.metadata,
            opts.idempotency.as_ref(),
        )
        .await?;
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

/// Changes a custom role (update, deactivate). A rename moves the name claim to the new name,
/// a deactivation releases it, both in the same transaction as the events. Honours
/// `opts.if_match`.
pub async fn update_role(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: RoleId,
    commands: Vec<RoleCommand>,
    opts: &Options,
) -> Result<Executed<RoleAggregate>, CommandError<RoleError>> {
    let prepared = prepare_role(store, clock, tenant, id, commands, opts).await?;
    if prepared.events.is_empty() {
        return Ok(prepared.into_executed(None));
    }
    let before = claim_of(&prepared.state);
    let mut after_state = prepared.state.clone();
    for e in &prepared.events {
        after_state.evolve(e);
    }
    let after = claim_of(&after_state);
    let envelopes = encode(&prepared.events).map_err(CommandError::Corrupt)?;
    let mut tx = store.pool().begin().await?;
    if before != after {
        if let Some(new) = &after {
            claim(&mut tx, tenant, new, id).await?;
        }
        if let Some(old) = &before {
            release(&mut tx, tenant, old, id).await?;
        }
    }
    let out = store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new(RoleAggregate::STREAM_TYPE, StreamId(id.0)),
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
