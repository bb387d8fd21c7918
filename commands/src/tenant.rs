//! Creating a tenant together with its first administrator.

use crate::error::CommandError;
use crate::execute::{Clock, Options, execute};
use crate::user::register_user;
use eventdesk_domain::directory::{TenantAggregate, TenantCommand, UserCommand};
use eventdesk_domain::values::{Email, PasswordHash, PersonName, Role, TenantName, Username};
use eventdesk_domain::{Actor, StreamId, TenantId, UserId};
use eventdesk_store::PgEventStore;

/// What a new tenant needs.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Display name.
    pub name: TenantName,
    /// The admin's login (unique across the deployment).
    pub admin_username: Username,
    /// The admin's e-mail (unique across the deployment).
    pub admin_email: Email,
    /// First name.
    pub admin_first_name: PersonName,
    /// Last name.
    pub admin_last_name: PersonName,
    /// Argon2id hash of the admin's password.
    pub admin_password_hash: PasswordHash,
}

/// Why a tenant could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NewTenantError {
    /// Creating the tenant failed.
    #[error("creating the tenant: {0}")]
    Tenant(CommandError<eventdesk_domain::directory::TenantError>),
    /// The tenant exists but its admin could not be registered.
    #[error("tenant {tenant} was created without an admin user: {source}")]
    Admin {
        /// The tenant that now exists.
        tenant: TenantId,
        /// Why.
        source: CommandError<eventdesk_domain::directory::UserError>,
    },
}

/// Appends `TenantCreated` (stream id = tenant id) and registers the admin (role admin).
/// `store` must run as a role that may write for any tenant (the system role).
pub async fn create_tenant_with_admin(
    store: &PgEventStore,
    clock: &dyn Clock,
    input: NewTenant,
    opts: &Options,
) -> Result<(TenantId, UserId), NewTenantError> {
    let tenant = TenantId::new();
    execute::<TenantAggregate>(
        store,
        clock,
        tenant,
        StreamId(tenant.0),
        TenantCommand::Create {
            id: tenant,
            name: input.name,
            priority_matrix: None,
            actor: Actor::System,
        },
        opts,
    )
    .await
    .map_err(NewTenantError::Tenant)?;
    let admin = UserId::new();
    register_user(
        store,
        clock,
        tenant,
        UserCommand::Register {
            id: admin,
            tenant_id: tenant,
            username: input.admin_username,
            email: input.admin_email,
            first_name: input.admin_first_name,
            last_name: input.admin_last_name,
            phone: None,
            department: None,
            role: Role::Admin,
            password_hash: input.admin_password_hash,
            actor: Actor::System,
        },
        opts,
    )
    .await
    .map_err(|source| NewTenantError::Admin { tenant, source })?;
    Ok((tenant, admin))
}
