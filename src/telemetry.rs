//! Logging: `tracing` with an env filter (`RUST_LOG`, default `info`), JSON lines by default.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `format` is `json` or `pretty`. Logs go to stderr so that
/// commands printing results on stdout stay machine-readable.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "pretty" {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}
