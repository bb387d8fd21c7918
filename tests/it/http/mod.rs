//! Black-box tests over HTTP against the real server and database.

pub mod app;
mod incidents;
mod security;
