//! Server configuration from the environment, with secrets redacted in `Debug`.

use std::net::SocketAddr;
use std::time::Duration;

/// A secret string: usable, but never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret value (use sparingly, never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything `serve` needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// `DATABASE_URL`.
    pub database_url: Secret,
    /// `EVENTDESK_DB_ROLE` (default `eventdesk_app`; empty keeps the login role).
    pub db_role: Option<String>,
    /// `EVENTDESK_DB_POOL` (default 16).
    pub db_pool: u32,
    /// `EVENTDESK_BIND` (default `127.0.0.1:8080`).
    pub bind: SocketAddr,
    /// `EVENTDESK_JWT_SECRET`.
    pub jwt_secret: Secret,
    /// `REDIS_URL`.
    pub redis_url: Option<Secret>,
    /// `EVENTDESK_LOG_FORMAT` = `json` (default) | `pretty`.
    pub log_format: String,
    /// `EVENTDESK_REQUEST_TIMEOUT_SECS` (default 30).
    pub request_timeout: Duration,
    /// `EVENTDESK_PROJECTIONS` = `true` (default) runs the projector runtime in this process.
    pub run_projections: bool,
    /// `EVENTDESK_SLA_SCHEDULER` = `true` (default) runs the SLA scheduler in this process (it
    /// is safe to run on several nodes: they share its rows).
    pub run_sla_scheduler: bool,
    /// `EVENTDESK_REACTORS` = `true` (default) runs the reactors that turn events into
    /// follow-up commands (the problem reactor, ADR 0021) in this process; safe on several
    /// nodes.
    pub run_reactors: bool,
    /// `EVENTDESK_CHECKPOINT_INTERVAL_SECS` (default 3600; 0 = off): how often this process
    /// takes the tenants' audit checkpoints (ADR 0010). Several nodes may run it.
    pub checkpoint_interval: Duration,
    /// `EVENTDESK_SYSTEM_DB_ROLE` (default `eventdesk_system`): the BYPASSRLS role of the
    /// projector and of lookups made before the tenant is known (login, API-key prefix).
    pub system_db_role: Option<String>,
    /// `EVENTDESK_DATA_DIR` (default `./data`): attachments and generated development secrets.
    pub data_dir: std::path::PathBuf,
    /// `EVENTDESK_JWT_PRIVATE_KEY_FILE` + `EVENTDESK_JWT_PUBLIC_KEY_FILE`: RS256 when both set.
    pub jwt_rs256_files: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// `EVENTDESK_API_KEY_PEPPER`: HMAC key for API-key hashes (generated into the data dir if
    /// unset).
    pub api_key_pepper: Secret,
    /// `EVENTDESK_ATTACHMENT_MAX_BYTES` (default 25 MiB).
    pub attachment_max_bytes: u64,
    /// `EVENTDESK_CONSISTENCY_WAIT_MS` (default 5000): how long a write waits for its read
    /// models before answering (read-your-writes).
    pub consistency_wait: Duration,
    /// `EVENTDESK_SECRETS_KEY`: base64 of 32 bytes, the AES-256-GCM key of integration
    /// credentials at rest (generated into the data dir if unset; ADR 0016).
    pub secrets_key: Secret,
    /// `EVENTDESK_ALLOW_PRIVATE_TARGETS` (default false): lifts the SSRF guard's address rules
    /// and allows `http` for webhooks, Slack and Jira (development and tests only).
    pub allow_private_targets: bool,
    /// `EVENTDESK_INTEGRATION_BUS` (default true): run the integration bus (fan-out, delivery
    /// workers, daily summaries) in this process; safe on several nodes.
    pub run_bus: bool,
    /// `EVENTDESK_BUS_TIMEOUT_MS` (default 5000): timeout of every outbound request.
    pub bus_timeout: Duration,
    /// `EVENTDESK_BUS_RETRY_BASE_MS` (default 30000): the first retry delay (doubling).
    pub bus_retry_base: Duration,
    /// `EVENTDESK_BUS_MAX_ATTEMPTS` (default 10): failed attempts before a delivery is dead.
    pub bus_max_attempts: u32,
    /// `EVENTDESK_BUS_MAX_AGE_SECS` (default 86400): no retry later than this after the first.
    pub bus_max_age: Duration,
    /// `EVENTDESK_MONITOR` (default on), `EVENTDESK_MONITOR_BUDGETS`,
    /// `EVENTDESK_MONITOR_ALERT_AFTER`, `EVENTDESK_MONITOR_FLUSH_MS`,
    /// `EVENTDESK_MONITOR_ALERT_COOLDOWN_SECS`, `EVENTDESK_MONITOR_ALERT_RETENTION_DAYS`: the
    /// performance monitor (ADR 0020).
    pub monitor: crate::monitor::MonitorConfig,
    /// `EVENTDESK_METRICS_TOKEN`: the bearer token of `GET /metrics` (unset: the route is 404).
    pub metrics_token: Option<Secret>,
    /// Live events over WebSocket (`EVENTDESK_WS_*`, ADR 0019).
    pub live: crate::ws::LiveConfig,
    /// Rate limiting (`EVENTDESK_RATE_LIMIT*`, `EVENTDESK_TRUSTED_PROXIES`, ADR 0019).
    pub rate_limits: crate::rate_limit::RateLimitConfig,
}

/// A configuration variable had a bad value.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {var}: {message}")]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// Why.
    pub message: String,
}

/// The default database: the machine's local PostgreSQL with trust auth.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/eventdesk";

impl Config {
    /// Reads the environment through `get` (so tests can pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn parse<T: std::str::FromStr>(
            var: &'static str,
            v: Option<String>,
            default: T,
        ) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            match v {
                None => Ok(default),
                Some(s) if s.trim().is_empty() => Ok(default),
                Some(s) => s.trim().parse().map_err(|e: T::Err| ConfigError {
                    var,
                    message: e.to_string(),
                }),
            }
        }
        let role = get("EVENTDESK_DB_ROLE");
        Ok(Self {
            database_url: Secret::new(
                get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            ),
            db_role: match role {
                None => Some("eventdesk_app".to_owned()),
                Some(r) if r.trim().is_empty() => None,
                Some(r) => Some(r),
            },
            db_pool: parse("EVENTDESK_DB_POOL", get("EVENTDESK_DB_POOL"), 16)?,
            bind: parse(
                "EVENTDESK_BIND",
                get("EVENTDESK_BIND"),
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            )?,
            jwt_secret: Secret::new(get("EVENTDESK_JWT_SECRET").unwrap_or_default()),
            redis_url: get("REDIS_URL").filter(|s| !s.is_empty()).map(Secret::new),
            log_format: get("EVENTDESK_LOG_FORMAT").unwrap_or_else(|| "json".to_owned()),
            request_timeout: Duration::from_secs(parse(
                "EVENTDESK_REQUEST_TIMEOUT_SECS",
                get("EVENTDESK_REQUEST_TIMEOUT_SECS"),
                30u64,
            )?),
            run_projections: parse("EVENTDESK_PROJECTIONS", get("EVENTDESK_PROJECTIONS"), true)?,
            run_sla_scheduler: parse(
                "EVENTDESK_SLA_SCHEDULER",
                get("EVENTDESK_SLA_SCHEDULER"),
                true,
            )?,
            run_reactors: parse("EVENTDESK_REACTORS", get("EVENTDESK_REACTORS"), true)?,
            checkpoint_interval: Duration::from_secs(parse(
                "EVENTDESK_CHECKPOINT_INTERVAL_SECS",
                get("EVENTDESK_CHECKPOINT_INTERVAL_SECS"),
                3600u64,
            )?),
            system_db_role: match get("EVENTDESK_SYSTEM_DB_ROLE") {
                None => Some("eventdesk_system".to_owned()),
                Some(r) if r.trim().is_empty() => None,
                Some(r) => Some(r),
            },
            data_dir: get("EVENTDESK_DATA_DIR")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "./data".to_owned())
                .into(),
            jwt_rs256_files: match (
                get("EVENTDESK_JWT_PRIVATE_KEY_FILE"),
                get("EVENTDESK_JWT_PUBLIC_KEY_FILE"),
            ) {
                (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => Some((a.into(), b.into())),
                _ => None,
            },
            api_key_pepper: Secret::new(get("EVENTDESK_API_KEY_PEPPER").unwrap_or_default()),
            attachment_max_bytes: parse(
                "EVENTDESK_ATTACHMENT_MAX_BYTES",
                get("EVENTDESK_ATTACHMENT_MAX_BYTES"),
                25 * 1024 * 1024u64,
            )?,
            consistency_wait: Duration::from_millis(parse(
                "EVENTDESK_CONSISTENCY_WAIT_MS",
                get("EVENTDESK_CONSISTENCY_WAIT_MS"),
                5000u64,
            )?),
            secrets_key: match get("EVENTDESK_SECRETS_KEY").filter(|s| !s.trim().is_empty()) {
                None => Secret::default(),
                Some(k) => {
                    eventdesk_bus::crypto::SecretBox::from_base64(&k).map_err(|e| ConfigError {
                        var: "EVENTDESK_SECRETS_KEY",
                        message: e.to_string(),
                    })?;
                    Secret::new(k.trim())
                }
            },
            allow_private_targets: parse(
                "EVENTDESK_ALLOW_PRIVATE_TARGETS",
                get("EVENTDESK_ALLOW_PRIVATE_TARGETS"),
                false,
            )?,
            run_bus: parse(
                "EVENTDESK_INTEGRATION_BUS",
                get("EVENTDESK_INTEGRATION_BUS"),
                true,
            )?,
            bus_timeout: Duration::from_millis(parse(
                "EVENTDESK_BUS_TIMEOUT_MS",
                get("EVENTDESK_BUS_TIMEOUT_MS"),
                5000u64,
            )?),
            bus_retry_base: Duration::from_millis(parse(
                "EVENTDESK_BUS_RETRY_BASE_MS",
                get("EVENTDESK_BUS_RETRY_BASE_MS"),
                30_000u64,
            )?),
            bus_max_attempts: parse(
                "EVENTDESK_BUS_MAX_ATTEMPTS",
                get("EVENTDESK_BUS_MAX_ATTEMPTS"),
                10u32,
            )?
            .max(1),
            bus_max_age: Duration::from_secs(parse(
                "EVENTDESK_BUS_MAX_AGE_SECS",
                get("EVENTDESK_BUS_MAX_AGE_SECS"),
                86_400u64,
            )?),
            monitor: crate::monitor::MonitorConfig {
                enabled: match get("EVENTDESK_MONITOR").map(|v| v.trim().to_ascii_lowercase()) {
                    None => true,
                    Some(v) => match v.as_str() {
                        "" | "on" | "true" | "1" => true,
                        "off" | "false" | "0" => false,
                        _ => {
                            return Err(ConfigError {
                                var: "EVENTDESK_MONITOR",
                                message: "must be on or off".into(),
                            });
                        }
                    },
                },
                budgets: crate::monitor::parse_budgets(
                    &get("EVENTDESK_MONITOR_BUDGETS").unwrap_or_default(),
                )
                .map_err(|message| ConfigError {
                    var: "EVENTDESK_MONITOR_BUDGETS",
                    message,
                })?,
                alert_after: parse(
                    "EVENTDESK_MONITOR_ALERT_AFTER",
                    get("EVENTDESK_MONITOR_ALERT_AFTER"),
                    5u32,
                )?
                .max(1),
                flush: Duration::from_millis(
                    parse(
                        "EVENTDESK_MONITOR_FLUSH_MS",
                        get("EVENTDESK_MONITOR_FLUSH_MS"),
                        2000u64,
                    )?
                    .max(10),
                ),
                alert_cooldown: Duration::from_secs(parse(
                    "EVENTDESK_MONITOR_ALERT_COOLDOWN_SECS",
                    get("EVENTDESK_MONITOR_ALERT_COOLDOWN_SECS"),
                    60u64,
                )?),
                alert_retention: Duration::from_secs(
                    parse(
                        "EVENTDESK_MONITOR_ALERT_RETENTION_DAYS",
                        get("EVENTDESK_MONITOR_ALERT_RETENTION_DAYS"),
                        30u64,
                    )?
                    .clamp(1, 36_500)
                        * 86_400,
                ),
            },
            metrics_token: get("EVENTDESK_METRICS_TOKEN")
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            live: {
                let d = crate::ws::LiveConfig::default();
                crate::ws::LiveConfig {
                    buffer: parse("EVENTDESK_WS_BUFFER", get("EVENTDESK_WS_BUFFER"), d.buffer)?
                        .max(1),
                    channel: parse(
                        "EVENTDESK_WS_CHANNEL",
                        get("EVENTDESK_WS_CHANNEL"),
                        d.channel,
                    )?
                    .max(1),
                    ping: Duration::from_secs(
                        parse(
                            "EVENTDESK_WS_PING_SECS",
                            get("EVENTDESK_WS_PING_SECS"),
                            30u64,
                        )?
                        .max(1),
                    ),
                    idle: Duration::from_secs(
                        parse(
                            "EVENTDESK_WS_IDLE_SECS",
                            get("EVENTDESK_WS_IDLE_SECS"),
                            90u64,
                        )?
                        .max(1),
                    ),
                    retention: Duration::from_secs(parse(
                        "EVENTDESK_WS_RETENTION_SECS",
                        get("EVENTDESK_WS_RETENTION_SECS"),
                        86_400u64,
                    )?),
                    catchup_max: parse(
                        "EVENTDESK_WS_CATCHUP_MAX",
                        get("EVENTDESK_WS_CATCHUP_MAX"),
                        d.catchup_max,
                    )?,
                }
            },
            rate_limits: crate::rate_limit::RateLimitConfig::from_lookup(&get)?,
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The configuration of the system (BYPASSRLS) pool.
    pub fn system_db(&self) -> eventdesk_store::DbConfig {
        let mut c = eventdesk_store::DbConfig::new(self.database_url.expose());
        c.app_role = self.system_db_role.clone();
        c.max_connections = 8;
        c
    }

    /// Fills unset secrets from files in the data directory, creating them on first use
    /// (development convenience: set the variables in production). Returns the names of the
    /// secrets that were generated.
    pub fn ensure_secrets(&mut self) -> std::io::Result<Vec<&'static str>> {
        let mut generated = Vec::new();
        if self.jwt_secret.expose().is_empty() && self.jwt_rs256_files.is_none() {
            let (s, fresh) = load_or_create_secret(&self.data_dir, "jwt-secret")?;
            self.jwt_secret = s;
            if fresh {
                generated.push("EVENTDESK_JWT_SECRET");
            }
        }
        if self.api_key_pepper.expose().is_empty() {
            let (s, fresh) = load_or_create_secret(&self.data_dir, "api-key-pepper")?;
            self.api_key_pepper = s;
            if fresh {
                generated.push("EVENTDESK_API_KEY_PEPPER");
            }
        }
        if self.secrets_key.expose().is_empty() {
            let (s, fresh) = load_or_create_secrets_key(&self.data_dir)?;
            self.secrets_key = s;
            if fresh {
                generated.push("EVENTDESK_SECRETS_KEY");
            }
        }
        Ok(generated)
    }

    /// The integration bus's credential box (call after [`ensure_secrets`](Self::ensure_secrets)).
    pub fn secret_box(&self) -> Result<eventdesk_bus::crypto::SecretBox, ConfigError> {
        eventdesk_bus::crypto::SecretBox::from_base64(self.secrets_key.expose()).map_err(|e| {
            ConfigError {
                var: "EVENTDESK_SECRETS_KEY",
                message: e.to_string(),
            }
        })
    }

    /// The integration bus's tuning.
    pub fn bus(&self) -> eventdesk_bus::BusConfig {
        eventdesk_bus::BusConfig {
            retry: eventdesk_bus::retry::RetryPolicy {
                base: self.bus_retry_base,
                max_attempts: self.bus_max_attempts,
                max_age: self.bus_max_age,
                ..Default::default()
            },
            timeout: self.bus_timeout,
            ..Default::default()
        }
    }

    /// The JWT configuration (RS256 with key files, else HS256 with the secret).
    pub fn jwt(&self) -> Result<eventdesk_auth::JwtConfig, eventdesk_auth::AuthError> {
        match &self.jwt_rs256_files {
            Some((private, public)) => eventdesk_auth::JwtConfig::rs256_from_files(private, public),
            None => eventdesk_auth::JwtConfig::hs256(self.jwt_secret.expose().as_bytes()),
        }
    }

    /// The database configuration derived from this.
    pub fn db(&self) -> eventdesk_store::DbConfig {
        let mut c = eventdesk_store::DbConfig::new(self.database_url.expose());
        c.app_role = self.db_role.clone();
        c.max_connections = self.db_pool;
        c
    }
}

/// Reads `dir/name`, or writes 32 random bytes (hex) there with mode 0600.
fn load_or_create_secret(dir: &std::path::Path, name: &str) -> std::io::Result<(Secret, bool)> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok((Secret::new(s.trim()), false)),
        Ok(_) | Err(_) => {}
    }
    std::fs::create_dir_all(dir)?;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let value = hex::encode(bytes);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(&path)?, value.as_bytes())?;
    Ok((Secret::new(value), true))
}

/// Reads `dir/secrets-key`, or writes a fresh AES-256 key there (base64 of 32 random bytes)
/// with mode 0600.
fn load_or_create_secrets_key(dir: &std::path::Path) -> std::io::Result<(Secret, bool)> {
    let path = dir.join("secrets-key");
    if let Ok(s) = std::fs::read_to_string(&path)
        && eventdesk_bus::crypto::SecretBox::from_base64(s.trim()).is_ok()
    {
        return Ok((Secret::new(s.trim()), false));
    }
    std::fs::create_dir_all(dir)?;
    let value = eventdesk_bus::crypto::SecretBox::generate_key();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(&path)?, value.as_bytes())?;
    Ok((Secret::new(value), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_key_must_be_32_bytes_and_is_generated_for_development() {
        let e = Config::from_lookup(|k| (k == "EVENTDESK_SECRETS_KEY").then(|| "c2hvcnQ=".into()));
        match e {
            Err(e) => assert_eq!(e.var, "EVENTDESK_SECRETS_KEY"),
            Ok(_) => panic!("accepted a 5-byte key"),
        }
        let dir = std::env::temp_dir().join(format!("eventdesk-cfg-{}", uuid::Uuid::now_v7()));
        let d = dir.to_string_lossy().into_owned();
        let mut c = Config::from_lookup(|k| (k == "EVENTDESK_DATA_DIR").then(|| d.clone()))
            .map_err(|e| e.to_string());
        let Ok(c) = c.as_mut() else { panic!("config") };
        let generated = c.ensure_secrets().map_err(|e| e.to_string());
        assert!(matches!(&generated, Ok(g) if g.contains(&"EVENTDESK_SECRETS_KEY")));
        assert!(c.secret_box().is_ok());
        let again = c.secrets_key.clone();
        let mut c2 = Config::from_lookup(|k| (k == "EVENTDESK_DATA_DIR").then(|| d.clone()))
            .map_err(|e| e.to_string());
        if let Ok(c2) = c2.as_mut() {
            let _ = c2.ensure_secrets();
            assert_eq!(c2.secrets_key, again, "stable across restarts");
        }
        assert!(!format!("{c:?}").contains(again.expose()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Config::from_lookup(|k| match k {
            "DATABASE_URL" => Some("postgres://u:hunter2@h/db".into()),
            "EVENTDESK_JWT_SECRET" => Some("s3cr3t-value".into()),
            _ => None,
        })
        .map_err(|e| e.to_string());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("s3cr3t-value"), "{dbg}");
        let Ok(c) = c else { panic!("config") };
        assert!(!format!("{:?}", c.db()).contains("hunter2"));
    }

    #[test]
    fn bad_bind_names_the_variable() {
        let e = Config::from_lookup(|k| (k == "EVENTDESK_BIND").then(|| "nope".to_owned()));
        match e {
            Err(e) => assert_eq!(e.var, "EVENTDESK_BIND"),
            Ok(_) => panic!("accepted a bad bind address"),
        }
    }
}
