//! Connection pools and migrations.
//!
//! The application connects with `DATABASE_URL` and immediately `SET ROLE`s to the
//! application role (default `eventdesk_app`), which owns nothing and holds no UPDATE/DELETE
//! grant on `events`. Migrations run on a separate connection as the connecting (owner) user.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Executor, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// The embedded migrations (`migrations/` at the workspace root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How to reach the database.
#[derive(Clone)]
pub struct DbConfig {
    /// `postgres://…` (may contain a password: never printed).
    pub url: String,
    /// Role to `SET ROLE` to after connecting; `None` keeps the login role.
    pub app_role: Option<String>,
    /// Pool size.
    pub max_connections: u32,
    /// `idle_in_transaction_session_timeout` for pooled sessions, so a stuck transaction
    /// cannot hold the subscription horizon back for long.
    pub idle_in_transaction_timeout: Duration,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &redact_url(&self.url))
            .field("app_role", &self.app_role)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl DbConfig {
    /// Defaults: app role `eventdesk_app`, 16 connections, 60 s idle-in-transaction timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            app_role: Some("eventdesk_app".to_owned()),
            max_connections: 16,
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }

    fn options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        Ok(PgConnectOptions::from_str(&self.url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500)))
    }
}

/// The pools the process uses.
#[derive(Clone, Debug)]
pub struct Db {
    /// Pool running as the application role.
    pub pool: PgPool,
    /// The configuration it was built from.
    pub config: DbConfig,
}

impl Db {
    /// Connects the application pool (role switched on every new connection).
    pub async fn connect(config: DbConfig) -> Result<Self, sqlx::Error> {
        let role = config.app_role.clone();
        let idle_ms = config.idle_in_transaction_timeout.as_millis();
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            // No ping before every acquire: it is a round trip per transaction (a tenth of the
            // server's CPU under load, ADR 0025). A connection the server dropped fails its
            // next statement instead, is closed, and the pool opens a new one (and sqlx
            // recycles idle and old connections on its own).
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                let role = role.clone();
                Box::pin(async move {
                    let mut sql = format!("SET idle_in_transaction_session_timeout = {idle_ms}; ");
                    if let Some(r) = role {
                        sql.push_str(&format!("SET ROLE {};", quote_ident(&r)));
                    }
                    conn.execute(sql.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(config.options()?)
            .await?;
        Ok(Self { pool, config })
    }

    /// Applies pending migrations as the login (owner) user.
    pub async fn migrate(config: &DbConfig) -> Result<(), crate::StoreError> {
        let mut conn = config.options()?.connect().await?;
        MIGRATOR.run(&mut conn).await?;
        Ok(())
    }
}

/// Quotes an SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Splits `postgres://…/dbname?opts` into (prefix up to the slash, dbname, optional query).
fn parse_db_url(url: &str) -> Option<(&str, &str, Option<&str>)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://")? + 3;
    let slash = base[scheme_end..].find('/').map(|i| i + scheme_end)?;
    let name = &base[slash + 1..];
    (!name.is_empty()).then_some((&base[..slash], name, query))
}

/// The URL of another database on the same server as `url`.
pub fn with_database(url: &str, name: &str) -> Option<String> {
    let (prefix, _, query) = parse_db_url(url)?;
    Some(match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    })
}

/// Splits a URL into the URL of the server's `postgres` database and the database name.
fn split_db_url(url: &str) -> Option<(String, String)> {
    let (_, name, _) = parse_db_url(url)?;
    Some((with_database(url, "postgres")?, name.to_owned()))
}

/// Creates the database named in `url` if it does not exist (connecting to the server's
/// `postgres` database as the same user). Returns true if it was created.
pub async fn ensure_database(url: &str) -> Result<bool, sqlx::Error> {
    let Some((admin, name)) = split_db_url(url) else {
        return Ok(false);
    };
    let mut conn = PgConnectOptions::from_str(&admin)?.connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if exists {
        return Ok(false);
    }
    match conn
        .execute(format!("CREATE DATABASE {}", quote_ident(&name)).as_str())
        .await
    {
        Ok(_) => Ok(true),
        // Someone else created it meanwhile.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Drops the database named in `url` (terminating its sessions).
pub async fn drop_database(url: &str) -> Result<(), sqlx::Error> {
    let Some((admin, name)) = split_db_url(url) else {
        return Ok(());
    };
    let mut conn = PgConnectOptions::from_str(&admin)?.connect().await?;
    conn.execute(
        format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&name)
        )
        .as_str(),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_rewrites_urls() {
        assert_eq!(
            split_db_url("postgres://u:p@h:5432/app?sslmode=disable"),
            Some((
                "postgres://u:p@h:5432/postgres?sslmode=disable".into(),
                "app".into()
            ))
        );
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/x", "y").as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/y")
        );
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }
}
