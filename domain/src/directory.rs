//! The directory: small aggregates for the organisation and its people and structure —
//! [`tenant`], [`user`], [`team`], [`category`] and custom [`role`]s.
//!
//! Shared conventions:
//! - Each has a `Create`/`Register` command (rejected with `AlreadyExists` on an existing
//!   stream); every other command on an uncreated stream is `NotFound`.
//! - `Deactivate`/`Reactivate` toggle `is_active`. An inactive entity accepts only `Reactivate`
//!   (and a repeated `Deactivate`); other commands are rejected with `Deactivated`.
//! - A command that changes nothing (same values, deactivating twice, adding an existing
//!   member…) emits no events.
//! - Rules that need other streams — unique usernames/emails, a category parent that exists and
//!   does not create a cycle, a manager that exists — are checked by the command layer.

pub mod category;
pub mod role;
pub mod team;
pub mod tenant;
pub mod user;

pub use category::*;
pub use role::*;
pub use team::*;
pub use tenant::*;
pub use user::*;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod fixtures {
    use crate::actor::Actor;
    use crate::ids::UserId;
    use uuid::Uuid;

    pub fn admin() -> Actor {
        Actor::User(UserId(Uuid::from_u128(0xad)))
    }
}
