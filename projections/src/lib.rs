//! # eventdesk-projections
//!
//! **Owns:** the projector runtime — checkpoints, batching, wake-ups, leadership across nodes
//! (one advisory lock per projection), retries, dead letters, status and rebuilds beside the
//! live read models ([`rebuild`]) — plus the read models built on it and the query functions
//! over them.
//!
//! **Must not:** decide anything (no business rules: those are in `domain`), append events
//! (side effects that must produce events go through `commands`), know HTTP, or create tables at
//! runtime (read-model tables come only from `migrations/`; a rebuild only copies their shape
//! from the catalog into its shadow schema, ADR 0013).
//!
//! ## Guarantees
//! - A batch of events is applied and the projection's checkpoint advanced in **one
//!   transaction**, guarded by the checkpoint's previous value: the effect is exactly-once even if
//!   two runners ever overlapped.
//! - Events are read only below the gap-free horizon (see `eventdesk-store`), so a projection
//!   never skips a late-committing event.
//! - A poison event is retried `max_retries` times, then written to `projection_dead_letters`
//!   and skipped; that projection reports `degraded`, the others are unaffected.
//!
//! ## Read models
//! - [`directory`] (`DirectoryProjection`, "directory" v1): `rm_tenants`, `rm_users`,
//!   `rm_teams`, `rm_categories`.
//! - [`incidents`] (`IncidentProjection`, "incidents" v1): `rm_incidents`,
//!   `rm_incident_history`, `rm_incident_work_notes`, `rm_incident_attachments`; and, through
//!   triggers on `rm_incidents` (migration 0007), `rm_incident_counts`.
//! - [`sla_timers`] (`SlaTimerProjection`, "sla_timers" v1): `rm_sla_timers` (one row per
//!   incident, metric and cycle), the scheduler's `sla_deadlines` and `sla_refresh_queue`.
//! - [`sla_config`] (`SlaConfigProjection`, "sla_config" v1): `rm_sla_calendars` and
//!   `rm_sla_policies`, the tenants' SLA calendars and policies.
//! - [`analytics`] (`AnalyticsProjection`, "analytics" v1): `rm_analytics_*`, the counts,
//!   flows, duration samples and histograms behind `GET /api/v1/analytics/…` (ADR 0015).
//! - [`cmdb`] (`CmdbProjection`, "cmdb" v1): `rm_ci_types`, `rm_cis`, `rm_ci_relationships`
//!   (configuration items, custom CI types and relationships; ADR 0017).
//! - [`problems`] (`ProblemProjection`, "problems" v1): `rm_problems` (problems and the
//!   known-error database) and `problem_incident_notes`, the problem reactor's work rows
//!   (ADR 0021).
//! - [`changes`] (`ChangeProjection`, "changes" v1): `rm_changes` (changes with their CAB
//!   votes and tasks; ADR 0022).
//! - [`queries`]: the read functions over them (tenant-scoped, RLS-protected).
//!
//! Both fold a batch with the domain's own `evolve` on top of the rows they load (one SELECT),
//! then write one statement per table (see `fold`). The projector's pool runs as
//! `eventdesk_system` (BYPASSRLS); the API reads as `eventdesk_app` inside transactions scoped
//! with [`queries::scope_to_tenant`].

pub mod analytics;
pub mod changes;
pub mod cmdb;
pub mod dead_letters;
pub mod directory;
pub mod event_counts;
mod fold;
pub mod incidents;
pub mod problems;
pub mod queries;
pub mod rebuild;
pub mod runtime;
mod shared_reads;
pub mod sla_config;
pub mod sla_timers;
pub mod status;

pub use analytics::AnalyticsProjection;
pub use changes::ChangeProjection;
pub use cmdb::CmdbProjection;
pub use directory::DirectoryProjection;
pub use incidents::IncidentProjection;
pub use problems::ProblemProjection;
pub use runtime::{HandlerError, Projection, ProjectorRuntime, RuntimeConfig, RuntimeHandle};
pub use sla_config::SlaConfigProjection;
pub use sla_timers::SlaTimerProjection;
pub use status::{ProjectionState, ProjectionStatus, RebuildStatus, projection_status};
