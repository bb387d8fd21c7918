//! eventdesk integration tests: one binary, real PostgreSQL, a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod helpers;
mod http;
mod projections;
mod projections_ops;
mod rebuild;
mod store;
