//! Black-box tests over HTTP against the real server and database.

pub mod app;
mod audit;
mod idempotency;
mod incidents;
mod roles;
mod security;
mod sla_config;
mod sla_timers;
