//! The CMDB: configuration items, their types and their relationships (ADR 0017).
//!
//! Three aggregates, one stream each per object:
//! - [`ci`] (`stream_type = "ci"`): a configuration item — a type, a name, typed attributes,
//!   an owner team and a status (`planned`, `active`, `maintenance`, `retired`);
//! - [`ci_type`] (`"ci_type"`): a tenant-defined CI type with its attribute [`schema`]; the
//!   built-in types ([`BuiltinCiType`]) are not stored;
//! - [`relationship`] (`"ci_relationship"`): a directed edge `source —type→ target`
//!   (`depends_on`, `runs_on`, `connected_to` or a custom type).
//!
//! Rules that need other streams are checked by the command layer, which passes the facts in
//! the command: the schema of the CI's type (attributes are validated by `decide`), the status
//! of both ends of a relationship, and the existing dependency path that a new `depends_on` /
//! `runs_on` edge would close into a cycle (found under a per-tenant lock, see
//! `commands::cmdb`). That the owner team exists, that a custom type's key is unique in the
//! tenant and that a relationship is not a duplicate are checked there too.

pub mod ci;
pub mod ci_type;
pub mod relationship;
pub mod schema;

pub use ci::*;
pub use ci_type::*;
pub use relationship::*;
pub use schema::*;

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::actor::Actor;
    use crate::ids::UserId;
    use uuid::Uuid;

    pub fn admin() -> Actor {
        Actor::User(UserId(Uuid::from_u128(0xad)))
    }
}
