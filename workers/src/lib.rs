//! # eventdesk-workers
//!
//! **Owns:** the background side effects that turn read-model rows into commands — today the
//! SLA scheduler ([`sla_scheduler`]): it claims durable due-time rows (`sla_deadlines`) and
//! re-evaluation requests (`sla_refresh_queue`) with `FOR UPDATE SKIP LOCKED` and records
//! warnings, breaches and recomputed timers through the normal command path; the loading of
//! a tenant's SLA rules ([`sla_rules`]) shared with the API; and the periodic tenant
//! checkpoints of the audit trail ([`checkpointer`]); and the problem reactor
//! ([`problem_reactor`]), which notes a problem's resolution on its linked incidents.
//!
//! **Must not:** decide anything itself (every rule is in `domain`; every event is appended by
//! `commands`), know HTTP, or keep timers only in memory: a worker may die at any moment, and
//! the rows it had claimed become claimable again when its transaction ends.

pub mod checkpointer;
pub mod problem_reactor;
pub mod sla_rules;
pub mod sla_scheduler;

pub use checkpointer::{CheckpointReport, Checkpointer};
pub use problem_reactor::{ProblemReactor, ReactorConfig, ReactorReport};
pub use sla_rules::SlaRulesCache;
pub use sla_scheduler::{SchedulerConfig, SlaScheduler, SweepReport};
