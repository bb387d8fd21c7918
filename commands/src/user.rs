//! Registering a user: username and e-mail are claimed deployment-wide in the same transaction
//! as the `UserRegistered` event.

use crate::error::CommandError;
use crate::execute::{Clock, Executed, Options, encode};
use eventdesk_domain::directory::{UserAggregate, UserCommand, UserError};
use eventdesk_domain::{Aggregate, StreamId, TenantId, UserId};
use eventdesk_store::{ExpectedVersion, PgEventStore, StreamRef};

/// Registers a user (`command` must be `UserCommand::Register`) in `tenant`. Its username
/// (case-insensitively) and e-mail must be free across the whole deployment, else
/// [`CommandError::Taken`] names the field.
pub async fn register_user(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    command: UserCommand,
    opts: &Options,
) -> Result<Executed<UserAggregate>, CommandError<UserError>> {
    let UserCommand::Register {
        id,
        username,
        email,
        ..
    } = &command
    else {
        return Err(CommandError::Corrupt(
            "register_user takes UserCommand::Register".into(),
        ));
    };
    let id: UserId = *id;
    let claims = [
        ("username", "username", username.canonical()),
        ("email", "email", email.as_str().to_lowercase()),
    ];
    let mut tx = store.pool().begin().await?;
    for (kind, field, value) in claims {
        let claimed = sqlx::query(
            "INSERT INTO identity_claims (kind, value, tenant_id, user_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(kind)
        .bind(&value)
        .bind(tenant.0)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Err(CommandError::Taken { field });
        }
    }
    let mut state = UserAggregate::default();
    let events = state
        .decide(command, clock.now())
        .map_err(CommandError::Rejected)?;
    let envelopes = encode(&events).map_err(CommandError::Corrupt)?;
    let out = store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new(UserAggregate::STREAM_TYPE, StreamId(id.0)),
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

/// Changes a user (profile, role, deactivation…). If the e-mail changes, the deployment-wide
/// claim moves to the new address in the same transaction as the events.
pub async fn update_user(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: UserId,
    commands: Vec<UserCommand>,
    opts: &Options,
) -> Result<Executed<UserAggregate>, CommandError<UserError>> {
    let prepared = crate::execute::prepare::<UserAggregate>(
        store,
        clock,
        tenant,
        StreamId(id.0),
        commands,
        opts,
    )
    .await?;
    if prepared.events.is_empty() {
        return Ok(prepared.into_executed(None));
    }
    let before = prepared
        .state
        .state
        .as_ref()
        .map(|u| u.email.as_str().to_lowercase());
    let mut after_state = prepared.state.clone();
    for e in &prepared.events {
        after_state.evolve(e);
    }
    let after = after_state
        .state
        .as_ref()
        .map(|u| u.email.as_str().to_lowercase());
    let envelopes = encode(&prepared.events).map_err(CommandError::Corrupt)?;
    let mut tx = store.pool().begin().await?;
    if let (Some(old), Some(new)) = (&before, &after)
        && old != new
    {
        let claimed = sqlx::query(
            "INSERT INTO identity_claims (kind, value, tenant_id, user_id) \
             VALUES ('email', $1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(new)
        .bind(tenant.0)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Err(CommandError::Taken { field: "email" });
        }
        sqlx::query(
            "DELETE FROM identity_claims WHERE kind = 'email' AND value = $1 AND user_id = $2",
        )
        .bind(old)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    }
    let out = store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new(UserAggregate::STREAM_TYPE, StreamId(id.0)),
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
