//! Black-box tests over HTTP against the real server and database.

mod analytics;
pub mod app;
mod audit;
mod changes;
mod cmdb;
mod idempotency;
mod incidents;
mod integrations;
mod problems;
mod roles;
mod security;
mod sla_config;
mod sla_timers;
mod webhooks;
