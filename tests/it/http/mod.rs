//! Black-box tests over HTTP against the real server and database.

pub mod app;
mod idempotency;
mod incidents;
mod security;
mod sla_config;
mod sla_timers;
