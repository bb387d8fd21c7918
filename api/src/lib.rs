//! # eventdesk-api
//!
//! **Owns:** everything HTTP — the axum router, configuration of the server, extractors
//! (authentication, tenant), RBAC, request/response DTOs and their validation, the OpenAPI
//! document, the mapping of errors to status codes (in one place), health/readiness, and the
//! wiring that starts the projector runtime beside the server ([`Application`]).
//!
//! **Must not:** contain business rules (they live in `domain` and are reached through
//! `commands`), write SQL against the event log directly (that is `store`), or build read
//! models (that is `projections`). No other crate may depend on this one.

pub mod app;
pub mod auth;
pub mod config;
pub mod consistency;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod metrics;
pub mod monitor;
pub mod openapi;
pub mod rate_limit;
pub mod routes;
pub mod security;
pub mod tenant_rules;
pub mod ws;

pub use app::{AppState, Application, router};
pub use config::{Config, Secret};
