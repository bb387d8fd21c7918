//! `eventdesk tenant …` and `eventdesk platform-key …`: operator commands that bootstrap a
//! deployment before anyone can sign in.
//!
//! **Owns:** `tenant create` (a tenant and its first admin user, written as `TenantCreated` and
//! `UserRegistered` events through the command layer, with the deployment-wide username/e-mail
//! claims) and `platform-key create` (a live API key of the platform tenant — the nil UUID —
//! holding only `tenant:manage`). Each prints exactly one JSON object on stdout; logs and errors
//! go to stderr.
//!
//! **Must not:** hold business rules (the domain decides, the command layer appends, the auth
//! crate hashes and stores credentials) or write events other than through the command layer.

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use eventdesk_api::Config;
use eventdesk_commands::tenant::{self, NewTenantError, create_tenant_with_admin};
use eventdesk_commands::{CommandError, Options, SystemClock};
use eventdesk_domain::values::{Email, PersonName, TenantName, Username};
use eventdesk_domain::{TenantId, ValidationError};
use eventdesk_store::{Db, EventMetadata, PgEventStore, Upcasters};
use serde_json::json;
use uuid::Uuid;

/// The `actor` recorded in the metadata of the events this module writes.
const CLI_ACTOR: &str = "system:cli";
/// The name of a platform key when `--name` is not given.
const DEFAULT_PLATFORM_KEY_NAME: &str = "platform";
/// Longest API-key name (the `api_keys.name` check).
const MAX_KEY_NAME_CHARS: usize = 200;

/// `eventdesk tenant …`.
#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant and its first admin user; prints {"tenant_id","admin_user_id"}.
    Create(CreateTenantArgs),
}

/// `eventdesk tenant create`.
#[derive(Args, Debug)]
pub struct CreateTenantArgs {
    /// The organisation's display name.
    #[arg(long)]
    name: String,
    /// The admin's login name (unique across the deployment).
    #[arg(long)]
    admin_username: String,
    /// The admin's password (at least 12 characters). Prefer the environment variable: the
    /// command line is visible to other users of the machine.
    #[arg(long, env = "EVENTDESK_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: String,
    /// The admin's e-mail address (unique across the deployment).
    #[arg(long)]
    admin_email: String,
    /// The admin's first name [default: Admin].
    #[arg(long)]
    admin_first_name: Option<String>,
    /// The admin's last name [default: the tenant name, or "User" if that is too long].
    #[arg(long)]
    admin_last_name: Option<String>,
}

/// `eventdesk platform-key …`.
#[derive(Subcommand, Debug)]
pub enum PlatformKeyCommand {
    /// Create a live API key holding only tenant:manage; prints {"api_key","prefix"} (the key
    /// is shown once and cannot be recovered).
    Create(CreatePlatformKeyArgs),
}

/// `eventdesk platform-key create`.
#[derive(Args, Debug)]
pub struct CreatePlatformKeyArgs {
    /// A label for the key (1..=200 characters).
    #[arg(long, default_value = DEFAULT_PLATFORM_KEY_NAME)]
    name: String,
}

/// Runs `tenant …`.
pub async fn tenant(command: TenantCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create(args) => create_tenant(args, config).await,
    }
}

/// Runs `platform-key …`.
pub async fn platform_key(command: PlatformKeyCommand, config: Config) -> anyhow::Result<()> {
    match command {
        PlatformKeyCommand::Create(args) => create_platform_key(args, config).await,
    }
}

/// The validated input of `tenant create`.
struct NewTenant {
    name: TenantName,
    username: Username,
    password: String,
    email: Email,
    first_name: PersonName,
    last_name: PersonName,
}

/// `invalid --flag: <message>`.
fn flag<T>(flag: &'static str, parsed: Result<T, ValidationError>) -> anyhow::Result<T> {
    parsed.map_err(|e| anyhow!("invalid {flag}: {}", e.message()))
}

impl NewTenant {
    /// Checks every argument with the domain's parsers before anything touches the database.
    fn parse(args: CreateTenantArgs) -> anyhow::Result<Self> {
        let name = flag("--name", TenantName::parse(&args.name))?;
        let username = flag("--admin-username", Username::parse(&args.admin_username))?;
        let email = flag("--admin-email", Email::parse(&args.admin_email))?;
        eventdesk_auth::password::check_new_password(&args.admin_password)
            .map_err(|m| anyhow!("invalid --admin-password: {m}"))?;
        let first_name = match &args.admin_first_name {
            Some(f) => flag("--admin-first-name", PersonName::parse(f))?,
            None => flag("--admin-first-name", PersonName::parse("Admin"))?,
        };
        let last_name = match &args.admin_last_name {
            Some(l) => flag("--admin-last-name", PersonName::parse(l))?,
            // A tenant name may be longer than a person name allows.
            None => match PersonName::parse(name.as_str()) {
                Ok(n) => n,
                Err(_) => flag("--admin-last-name", PersonName::parse("User"))?,
            },
        };
        Ok(Self {
            name,
            username,
            password: args.admin_password,
            email,
            first_name,
            last_name,
        })
    }
}

/// Creates the database if needed and applies the migrations (as `eventdesk migrate` does).
async fn prepare_database(config: &Config) -> anyhow::Result<()> {
    let db = config.db();
    eventdesk_store::db::ensure_database(&db.url)
        .await
        .context("creating the database")?;
    Db::migrate(&db).await.context("migrating")?;
    Ok(())
}

/// The first deployment-wide claim (`username`, `email`) that is already taken, if any. Checked
/// before the tenant is created so that a taken name does not leave a tenant without an admin;
/// `register_user` re-checks atomically.
async fn taken_claim(
    pool: &sqlx::PgPool,
    username_canonical: &str,
    email_lower: &str,
) -> anyhow::Result<Option<&'static str>> {
    for (kind, value) in [("username", username_canonical), ("email", email_lower)] {
        let taken: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM identity_claims WHERE kind = $1 AND value = $2)",
        )
        .bind(kind)
        .bind(value)
        .fetch_one(pool)
        .await
        .context("checking username and e-mail availability")?;
        if taken {
            return Ok(Some(kind));
        }
    }
    Ok(None)
}

/// `tenant create`.
async fn create_tenant(args: CreateTenantArgs, config: &Config) -> anyhow::Result<()> {
    let input = NewTenant::parse(args)?;
    let username_canonical = input.username.canonical();
    let email_lower = input.email.as_str().to_lowercase();

    prepare_database(config).await?;
    let db = Db::connect(config.system_db())
        .await
        .context("connecting to the database (system role)")?;
    if let Some(field) = taken_claim(&db.pool, &username_canonical, &email_lower).await? {
        db.pool.close().await;
        return Err(anyhow!("{field} is already taken"));
    }

    let password = input.password;
    let password_hash =
        tokio::task::spawn_blocking(move || eventdesk_auth::password::hash_password(&password))
            .await
            .context("hashing the password")?
            .context("hashing the password")?;

    let store = PgEventStore::new(db.pool.clone(), Upcasters::new());
    let clock = SystemClock;
    let opts = Options {
        metadata: EventMetadata {
            actor: CLI_ACTOR.into(),
            // Both events answer one operator intent.
            correlation_id: Some(Uuid::now_v7()),
            ..Default::default()
        },
        ..Default::default()
    };

    let created = create_tenant_with_admin(
        &store,
        &clock,
        tenant::NewTenant {
            name: input.name,
            admin_username: input.username,
            admin_email: input.email,
            admin_first_name: input.first_name,
            admin_last_name: input.last_name,
            admin_password_hash: password_hash,
        },
        &opts,
    )
    .await;
    db.pool.close().await;
    let (tenant, admin) = match created {
        Ok(ids) => ids,
        // Lost a race with another registration after the pre-check.
        Err(NewTenantError::Admin {
            tenant,
            source: CommandError::Taken { field },
        }) => {
            return Err(anyhow!(
                "{field} is already taken (tenant {tenant} was created without an admin user)"
            ));
        }
        Err(e) => return Err(anyhow::Error::new(e)),
    };
    tracing::info!(tenant_id = %tenant, user_id = %admin, "admin user registered");

    println!(
        "{}",
        json!({ "tenant_id": tenant.to_string(), "admin_user_id": admin.to_string() })
    );
    Ok(())
}

/// `platform-key create`.
async fn create_platform_key(
    args: CreatePlatformKeyArgs,
    mut config: Config,
) -> anyhow::Result<()> {
    let name = args.name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_KEY_NAME_CHARS {
        return Err(anyhow!(
            "invalid --name: must be 1 to {MAX_KEY_NAME_CHARS} characters long"
        ));
    }
    // The server hashes presented keys with the same pepper (variable or data-dir file).
    for generated in config
        .ensure_secrets()
        .context("loading the API-key pepper")?
    {
        tracing::warn!(
            variable = generated,
            dir = %config.data_dir.display(),
            "generated a development secret in the data directory; set it in production"
        );
    }

    prepare_database(&config).await?;
    let db = Db::connect(config.system_db())
        .await
        .context("connecting to the database (system role)")?;
    let key = eventdesk_auth::apikey::generate(
        eventdesk_auth::apikey::KeyMode::Live,
        config.api_key_pepper.expose().as_bytes(),
    )
    .context("generating the key")?;
    let permissions: eventdesk_auth::PermissionSet =
        std::iter::once(eventdesk_auth::rbac::PLATFORM).collect();
    let inserted = async {
        let mut conn = db.pool.acquire().await?;
        eventdesk_auth::store::insert_api_key(
            &mut conn,
            TenantId(Uuid::nil()),
            name,
            &key,
            &permissions,
            None,
        )
        .await
    }
    .await;
    db.pool.close().await;
    let summary = inserted.context("storing the key")?;
    tracing::info!(key_id = %summary.id, prefix = %summary.prefix, "platform key created");

    println!(
        "{}",
        json!({ "api_key": key.plaintext, "prefix": summary.prefix })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> CreateTenantArgs {
        CreateTenantArgs {
            name: "Acme".into(),
            admin_username: "alice".into(),
            admin_password: "correct horse battery".into(),
            admin_email: "Alice@Example.com".into(),
            admin_first_name: None,
            admin_last_name: None,
        }
    }

    fn error(args: CreateTenantArgs) -> String {
        match NewTenant::parse(args) {
            Ok(_) => panic!("accepted invalid input"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn names_default_to_admin_and_the_tenant_name() {
        let Ok(t) = NewTenant::parse(args()) else {
            panic!("rejected valid input")
        };
        assert_eq!(t.first_name.as_str(), "Admin");
        assert_eq!(t.last_name.as_str(), "Acme");
        assert_eq!(t.email.as_str(), "alice@example.com");

        let long = CreateTenantArgs {
            name: "x".repeat(150),
            ..args()
        };
        let Ok(t) = NewTenant::parse(long) else {
            panic!("rejected a 150-character tenant name")
        };
        assert_eq!(t.last_name.as_str(), "User");
    }

    #[test]
    fn errors_name_the_flag() {
        let e = error(CreateTenantArgs {
            admin_email: "nope".into(),
            ..args()
        });
        assert!(e.starts_with("invalid --admin-email:"), "{e}");
        let e = error(CreateTenantArgs {
            admin_username: "a b".into(),
            ..args()
        });
        assert!(e.starts_with("invalid --admin-username:"), "{e}");
        let e = error(CreateTenantArgs {
            admin_password: "short".into(),
            ..args()
        });
        assert!(e.starts_with("invalid --admin-password:"), "{e}");
        let e = error(CreateTenantArgs {
            name: " ".into(),
            ..args()
        });
        assert!(e.starts_with("invalid --name:"), "{e}");
        let e = error(CreateTenantArgs {
            admin_last_name: Some(String::new()),
            ..args()
        });
        assert!(e.starts_with("invalid --admin-last-name:"), "{e}");
    }
}
