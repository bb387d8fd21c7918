//! # eventdesk-domain
//!
//! **Owns:** the pure business model of eventdesk — identifiers, validated value objects,
//! aggregates with their commands and events, the `decide`/`evolve` functions, the incident
//! transition table, the priority matrix and (later) the SLA business-time arithmetic.
//!
//! **Must not:** perform I/O, be async, or depend on sqlx, axum, tokio or any transport.
//! Every decision is a pure function of `(state, command, now)` returning events or a typed
//! error ([`DomainError`] gathers them). `evolve` cannot fail and holds no rules.
//! If a rule needs outside data (e.g. the next incident number, the tenant's priority matrix,
//! whether the author of a note is an agent), the command layer fetches it and passes it in
//! the command.
//!
//! Modules:
//! - [`ids`]: UUID newtypes; [`actor`]: who issued a command;
//! - [`values`]: validated newtypes (`parse` → [`ValidationError`]) and enums;
//! - [`priority`]: the impact × urgency [`PriorityMatrix`];
//! - [`incident`]: the incident aggregate and its transition table;
//! - [`problem`]: the problem aggregate (root cause, workaround, known errors, linked incidents);
//! - [`directory`]: tenant, user, team, category and custom role aggregates;
//! - [`cmdb`]: configuration items, custom CI types and relationships (schema language included);
//! - [`change_request`]: the change (RFC) aggregate: types, CAB approvals, tasks, window;
//! - [`change`]: old/new pairs and history rows; [`error`]: [`DomainError`];
//! - [`registry`]: the aggregates by stream type (decoding checks and state-as-of folds for
//!   the audit tooling);
//! - `testing` (tests, or feature `testing`): the given/when/then harness.

pub mod actor;
pub mod aggregate;
pub mod change;
pub mod change_request;
pub mod cmdb;
pub mod directory;
pub mod error;
pub mod ids;
pub mod incident;
pub mod priority;
pub mod problem;
pub mod registry;
pub mod sla;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod values;

pub use actor::Actor;
pub use aggregate::{Aggregate, DomainEvent, EventCodecError};
pub use change::{Change, FieldChange};
pub use change_request::{ChangeAggregate, ChangeCommand, ChangeError, ChangeEvent};
pub use directory::{
    CategoryAggregate, CategoryCommand, CategoryError, CategoryEvent, TeamAggregate, TeamCommand,
    TeamError, TeamEvent, TenantAggregate, TenantCommand, TenantError, TenantEvent, UserAggregate,
    UserCommand, UserError, UserEvent,
};
pub use directory::{RoleAggregate, RoleCommand, RoleError, RoleEvent};
pub use error::DomainError;
pub use ids::*;
pub use incident::{
    Incident, IncidentAction, IncidentAggregate, IncidentCommand, IncidentError, IncidentEvent,
};
pub use priority::PriorityMatrix;
pub use problem::{ProblemAggregate, ProblemCommand, ProblemError, ProblemEvent};
pub use values::ValidationError;
