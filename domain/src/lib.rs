//! # eventdesk-domain
//!
//! **Owns:** the pure business model of eventdesk — identifiers, validated value objects,
//! aggregates with their commands and events, the `decide`/`evolve` functions, the incident
//! transition table, the priority matrix and (later) the SLA business-time arithmetic.
//!
//! **Must not:** perform I/O, be async, or depend on sqlx, axum, tokio or any transport.
//! Every decision is a pure function of `(state, command, now)` returning events or a typed
//! [`DomainError`](error::DomainError)-style error. `evolve` cannot fail and holds no rules.
//! If a rule needs outside data (e.g. the next incident number), the command layer fetches it
//! and passes it in the command.

pub mod aggregate;
pub mod ids;

pub use aggregate::{Aggregate, DomainEvent, EventCodecError};
pub use ids::*;
