//! # eventdesk (binary)
//!
//! **Owns:** the command line — `serve`, `migrate`, `bench …`, `tenant create`,
//! `platform-key create` (and later `audit …`, `projections …`) — and process concerns:
//! telemetry set-up and signal handling.
//!
//! **Must not:** hold logic of its own beyond parsing arguments and printing results; each
//! subcommand calls into the library crates.

mod admin;
mod audit;
mod bench;
mod bench_analytics;
mod bench_audit;
mod bench_cmdb;
mod bench_monitor;
mod bench_ratelimit;
mod bench_rebuild;
mod bench_sla;
mod projections_cli;
mod telemetry;

use anyhow::Context;
use clap::{Parser, Subcommand};
use eventdesk_api::{Application, Config};

#[derive(Parser, Debug)]
#[command(
    name = "eventdesk",
    version,
    about = "Event-sourced, multi-tenant ITSM backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Apply database migrations (creating the database if needed) and exit.
    Migrate,
    /// Run the HTTP API and the projector runtime until SIGTERM/SIGINT.
    Serve,
    /// Benchmarks that print figures side by side with a raw PostgreSQL baseline.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Tenants: create one with its first admin user.
    #[command(subcommand)]
    Tenant(admin::TenantCommand),
    /// Platform API keys (tenant:manage only).
    #[command(subcommand)]
    PlatformKey(admin::PlatformKeyCommand),
    /// The audit trail: log, state as of an instant, verification, export, checkpoints.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Projections: status, dead letters, rebuild.
    #[command(subcommand)]
    Projections(projections_cli::ProjectionsCommand),
}

/// mimalloc instead of glibc's malloc: the server, the projector and the audit pipeline allocate
/// on one thread and free on another, which glibc serialises on its arena locks (ADR 0018).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(&config.log_format);
    match run(cli, config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "command failed");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => {
            let db = config.db();
            eventdesk_store::db::ensure_database(&db.url)
                .await
                .context("creating the database")?;
            eventdesk_store::Db::migrate(&db)
                .await
                .context("migrating")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            eventdesk_store::db::ensure_database(config.database_url.expose())
                .await
                .context("creating the database")?;
            let app = Application::build(config).await?;
            app.run_until(shutdown_signal()).await
        }
        Command::Bench(b) => bench::run(b, &config).await,
        Command::Tenant(t) => admin::tenant(t, &config).await,
        Command::PlatformKey(k) => admin::platform_key(k, config).await,
        Command::Audit(a) => audit::run(a, &config).await,
        Command::Projections(p) => projections_cli::run(p, &config).await,
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
