//! # eventdesk-projections
//!
//! **Owns:** the projector runtime — checkpoints, batching, wake-ups, leadership across nodes
//! (one advisory lock per projection), retries, dead letters and status — plus the read models
//! built on it and the query functions over them.
//!
//! **Must not:** decide anything (no business rules: those are in `domain`), append events
//! (side effects that must produce events go through `commands`), know HTTP, or create tables at
//! runtime (read-model tables come only from `migrations/`).
//!
//! ## Guarantees
//! - A batch of events is applied and the projection's checkpoint advanced in **one
//!   transaction**, guarded by the checkpoint's previous value: the effect is exactly-once even if
//!   two runners ever overlapped.
//! - Events are read only below the gap-free horizon (see `eventdesk-store`), so a projection
//!   never skips a late-committing event.
//! - A poison event is retried `max_retries` times, then written to `projection_dead_letters`
//!   and skipped; that projection reports `degraded`, the others are unaffected.

pub mod event_counts;
pub mod runtime;
pub mod status;

pub use runtime::{HandlerError, Projection, ProjectorRuntime, RuntimeConfig, RuntimeHandle};
pub use status::{ProjectionState, ProjectionStatus, projection_status};
