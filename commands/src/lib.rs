//! # eventdesk-commands
//!
//! **Owns:** the command path — one generic handler that loads an aggregate's stream, folds it
//! with the domain's `evolve`, asks the domain's `decide`, and appends the resulting events with
//! the stream's version as the expected version; plus the command-side facts that must change
//! in the same transaction as an append (gap-free per-tenant incident numbers, deployment-wide
//! username/e-mail claims).
//!
//! **Must not:** contain business rules (those are in `domain`), know HTTP, or read read models.
//! A conflict is reported, not retried, unless the caller says the command is commutative.

pub mod change;
pub mod cmdb;
pub mod error;
pub mod execute;
pub mod incident;
pub mod problem;
pub mod role;
pub mod sla;
pub mod tenant;
pub mod user;

pub use error::CommandError;
pub use execute::{
    Clock, Executed, Options, Prepared, SystemClock, execute, execute_many, load, prepare,
};
