//! The SQL of `eventdesk_auth::store` against a real PostgreSQL: a fresh database per test run
//! (`edt_auth_<uuid>` on `DATABASE_ADMIN_URL`, default `postgres://postgres@127.0.0.1:5432`),
//! all migrations applied, queries run as the application role `eventdesk_app` (so the grants
//! of `0005_auth.sql` are checked too), database dropped at the end.
#![allow(clippy::unwrap_used)]

use chrono::{TimeDelta, Utc};
use eventdesk_auth::apikey::{self, KeyMode};
use eventdesk_auth::rbac::PermissionSet;
use eventdesk_auth::store;
use eventdesk_auth::{AuthError, RefreshError};
use eventdesk_domain::values::Role;
use eventdesk_domain::{ApiKeyId, TenantId, UserId};
use sqlx::{Connection, Executor, PgConnection};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

const PEPPER: &[u8] = b"integration-test pepper, 32 bytes";

fn server_url() -> String {
    std::env::var("DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A throw-away database, dropped by [`TestDb::drop_db`].
struct TestDb {
    name: String,
}

impl TestDb {
    async fn create() -> (Self, PgConnection) {
        let name = format!("edt_auth_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        let mut conn = PgConnection::connect(&format!("{}/{name}", server_url()))
            .await
            .unwrap();
        MIGRATOR.run(&mut conn).await.unwrap();
        conn.execute("SET ROLE eventdesk_app").await.unwrap();
        (Self { name }, conn)
    }

    async fn drop_db(self, conn: PgConnection) {
        conn.close().await.unwrap();
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .unwrap();
        admin
            .execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await
            .unwrap();
    }
}

async fn api_keys(conn: &mut PgConnection) {
    let tenant = TenantId::new();
    let other_tenant = TenantId::new();
    let admin = UserId::new();
    let perms = PermissionSet::parse_all(["incident:read", "incident:create"]).unwrap();

    let key = apikey::generate(KeyMode::Live, PEPPER).unwrap();
    let created = store::insert_api_key(conn, tenant, "ci bot", &key, &perms, Some(admin))
        .await
        .unwrap();
    assert_eq!(created.tenant_id, tenant);
    assert_eq!(created.prefix, key.prefix);
    assert_eq!(created.mode, KeyMode::Live);
    assert_eq!(created.permissions, perms);
    assert_eq!(created.created_by, Some(admin));
    assert!(created.revoked_at.is_none() && created.last_used_at.is_none());

    // Cross-tenant lookup by prefix.
    let found = store::find_api_key_by_prefix(conn, &key.prefix)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.summary, created);
    assert_eq!(found.hash, key.hash.to_vec());
    assert!(apikey::verify(&key.plaintext, &found.hash, PEPPER));
    assert!(
        store::find_api_key_by_prefix(conn, "qg_live_AAAAAAAA")
            .await
            .unwrap()
            .is_none()
    );

    // Authentication records the use.
    let auth = store::authenticate_api_key(conn, &key.plaintext, PEPPER)
        .await
        .unwrap();
    assert_eq!(auth.summary.id, created.id);
    assert!(
        auth.summary
            .permissions
            .contains("incident:create".parse().unwrap())
    );
    let touched = store::find_api_key_by_prefix(conn, &key.prefix)
        .await
        .unwrap()
        .unwrap();
    assert!(touched.summary.last_used_at.is_some());
    for bad in [
        "qg_live_nope".to_owned(),
        format!("{}x", &key.plaintext[..key.plaintext.len() - 1]),
    ] {
        assert!(matches!(
            store::authenticate_api_key(conn, &bad, PEPPER).await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        store::authenticate_api_key(conn, &key.plaintext, b"wrong pepper").await,
        Err(AuthError::InvalidCredentials)
    ));

    // Listing: per tenant, newest first, never the hash (the type has no hash field).
    let test_key = apikey::generate(KeyMode::Test, PEPPER).unwrap();
    let viewer = PermissionSet::from_role(Role::Viewer);
    store::insert_api_key(conn, tenant, "sandbox", &test_key, &viewer, None)
        .await
        .unwrap();
    let foreign = apikey::generate(KeyMode::Live, PEPPER).unwrap();
    let foreign = store::insert_api_key(conn, other_tenant, "x", &foreign, &perms, None)
        .await
        .unwrap();
    let list = store::list_api_keys(conn, tenant).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].name, "sandbox");
    assert_eq!(list[0].mode, KeyMode::Test);
    assert_eq!(list[0].permissions, viewer);
    assert_eq!(list[1].id, created.id);
    assert!(
        !serde_json::to_string(&list[1])
            .unwrap()
            .contains(&hex::encode(key.hash))
    );

    // Revocation: not another tenant's key, once only, and then authentication fails.
    assert!(
        !store::revoke_api_key(conn, tenant, foreign.id)
            .await
            .unwrap()
    );
    assert!(
        !store::revoke_api_key(conn, tenant, ApiKeyId::new())
            .await
            .unwrap()
    );
    assert!(
        store::revoke_api_key(conn, tenant, created.id)
            .await
            .unwrap()
    );
    assert!(
        !store::revoke_api_key(conn, tenant, created.id)
            .await
            .unwrap()
    );
    let revoked = store::find_api_key_by_prefix(conn, &key.prefix)
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.summary.revoked_at.is_some());
    assert!(matches!(
        store::authenticate_api_key(conn, &key.plaintext, PEPPER).await,
        Err(AuthError::InvalidCredentials)
    ));

    // The same prefix cannot be stored twice.
    assert!(matches!(
        store::insert_api_key(conn, tenant, "dup", &key, &perms, None).await,
        Err(AuthError::Database(_))
    ));
}

async fn refresh_rotation(conn: &mut PgConnection) {
    let tenant = TenantId::new();
    let user = UserId::new();
    let ttl = TimeDelta::days(30);
    let now = Utc::now();

    let t1 = store::issue_refresh(conn, tenant, user, None, ttl, now)
        .await
        .unwrap();
    assert_eq!(t1.len(), 43);

    // Rotation: same family, new token.
    let r1 = store::rotate_refresh(conn, &t1, ttl, now).await.unwrap();
    assert_eq!((r1.tenant_id, r1.user_id), (tenant, user));
    assert_ne!(r1.new_token, t1);
    let r2 = store::rotate_refresh(conn, &r1.new_token, ttl, now)
        .await
        .unwrap();
    assert_eq!(r2.family_id, r1.family_id);

    // A second family for the same user (another device) is unaffected by what follows.
    let other_device = store::issue_refresh(conn, tenant, user, None, ttl, now)
        .await
        .unwrap();

    // Reuse of t1 (already rotated): the whole family is revoked …
    match store::rotate_refresh(conn, &t1, ttl, now).await {
        Err(RefreshError::Reused {
            family_id,
            tenant_id,
            user_id,
        }) => {
            assert_eq!(family_id, r1.family_id);
            assert_eq!((tenant_id, user_id), (tenant, user));
        }
        other => panic!("expected Reused, got {other:?}"),
    }
    // … including the newest, never-used token …
    assert!(matches!(
        store::rotate_refresh(conn, &r2.new_token, ttl, now).await,
        Err(RefreshError::Invalid)
    ));
    // … and replaying again is merely invalid.
    assert!(matches!(
        store::rotate_refresh(conn, &t1, ttl, now).await,
        Err(RefreshError::Invalid)
    ));
    let other = store::rotate_refresh(conn, &other_device, ttl, now)
        .await
        .unwrap();

    // Unknown, malformed and expired tokens are invalid.
    for bad in ["", "short", &"A".repeat(43)] {
        assert!(matches!(
            store::rotate_refresh(conn, bad, ttl, now).await,
            Err(RefreshError::Invalid)
        ));
    }
    let short = store::issue_refresh(conn, tenant, user, None, TimeDelta::seconds(60), now)
        .await
        .unwrap();
    assert!(matches!(
        store::rotate_refresh(conn, &short, ttl, now + TimeDelta::seconds(61)).await,
        Err(RefreshError::Invalid)
    ));
    assert!(matches!(
        store::issue_refresh(conn, tenant, user, None, TimeDelta::zero(), now).await,
        Err(AuthError::Config(_))
    ));

    // Logout revokes the family of the presented token.
    assert!(
        store::revoke_by_token(conn, &other.new_token, now)
            .await
            .unwrap()
    );
    assert!(
        !store::revoke_by_token(conn, &other.new_token, now)
            .await
            .unwrap()
    );
    assert!(matches!(
        store::rotate_refresh(conn, &other.new_token, ttl, now).await,
        Err(RefreshError::Invalid)
    ));

    // revoke_family and revoke_user_refresh_tokens.
    let a = store::issue_refresh(conn, tenant, user, None, ttl, now)
        .await
        .unwrap();
    let ra = store::rotate_refresh(conn, &a, ttl, now).await.unwrap();
    assert_eq!(
        store::revoke_family(conn, ra.family_id, now).await.unwrap(),
        2
    );
    let b = store::issue_refresh(conn, tenant, user, None, ttl, now)
        .await
        .unwrap();
    let c = store::issue_refresh(conn, tenant, user, None, ttl, now)
        .await
        .unwrap();
    let someone_else = store::issue_refresh(conn, tenant, UserId::new(), None, ttl, now)
        .await
        .unwrap();
    assert!(
        store::revoke_user_refresh_tokens(conn, tenant, user, now)
            .await
            .unwrap()
            >= 2
    );
    for t in [&b, &c] {
        assert!(matches!(
            store::rotate_refresh(conn, t, ttl, now).await,
            Err(RefreshError::Invalid)
        ));
    }
    assert!(
        store::rotate_refresh(conn, &someone_else, ttl, now)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn store_against_postgres() {
    let (db, mut conn) = TestDb::create().await;
    api_keys(&mut conn).await;
    refresh_rotation(&mut conn).await;
    db.drop_db(conn).await;
}
