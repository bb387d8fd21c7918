//! Registering a user: username and e-mail are claimed deployment-wide in the same transaction
//! as the `UserRegistered` event.

use crate::error::CommandError;
use crate::execute::{Clock, Executed, Options, encode};
use eventdesk_domain::directory::{UserAggregate, UserCommand, UserError};
use eventdesk_domain::{Aggregate, StreamId, TenantId, UserId};
use eventdesk_store::{ExpectedVersion, PgEventStore, StreamRef};

/// Registers user `id` in `tenant`. `username_canonical` and `email` (lower-cased) must be free
/// across the whole deployment, else [`CommandError::Taken`] names the field.
pub async fn register_user(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: UserId,
    username_canonical: &str,
    email: &str,
    command: UserCommand,
    opts: &Options,
) -> Result<Executed<UserAggregate>, CommandError<UserError>> {
    let mut tx = store.pool().begin().await?;
    for (kind, field, value) in [
        ("username", "username", username_canonical.to_owned()),
        ("email", "email", email.to_lowercase()),
    ] {
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
