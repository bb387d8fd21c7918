//! Black-box tests over HTTP against the real server and database.

mod analytics;
pub mod app;
mod audit;
mod changes;
mod cmdb;
mod dashboard;
mod idempotency;
mod incidents;
mod integrations;
mod monitor;
mod problems;
mod rate_limit;
mod roles;
mod security;
mod sla_config;
mod sla_timers;
mod webhooks;
mod ws;
