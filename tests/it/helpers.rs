//! Test helpers: a fresh, migrated database per test, dropped afterwards.

use eventdesk_domain::{StreamId, TenantId};
use eventdesk_store::{
    Db, DbConfig, EventMetadata, EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamRef,
    Upcasters, db,
};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// The server tests run against (the machine's local PostgreSQL by default).
pub fn base_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database: `db` runs as the application role, `superuser` as the login role.
pub struct TestDb {
    pub url: String,
    pub db: Db,
    pub superuser: PgPool,
}

impl TestDb {
    pub async fn new() -> Self {
        let name = format!("edt_{}", Uuid::now_v7().simple());
        let url = db::with_database(&base_url(), &name).expect("database url");
        db::ensure_database(&url)
            .await
            .expect("create test database");
        let mut cfg = DbConfig::new(url.clone());
        cfg.max_connections = 40;
        Db::migrate(&cfg).await.expect("migrate");
        let db = Db::connect(cfg).await.expect("connect app pool");
        let superuser = sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .connect(&url)
            .await
            .expect("connect superuser pool");
        Self { url, db, superuser }
    }

    /// A store over the application pool.
    pub fn store(&self) -> PgEventStore {
        PgEventStore::new(self.db.pool.clone(), Upcasters::new())
    }

    /// Another "node": a new application pool and store on the same database.
    pub async fn node(&self) -> PgEventStore {
        let mut cfg = DbConfig::new(self.url.clone());
        cfg.max_connections = 10;
        let db = Db::connect(cfg).await.expect("connect node pool");
        PgEventStore::new(db.pool, Upcasters::new())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Drop the database from a separate thread: Drop cannot be async.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(db::drop_database(&url));
            }
        })
        .join();
    }
}

pub fn meta() -> EventMetadata {
    EventMetadata {
        actor: "user:test".into(),
        request_id: Some("req-1".into()),
        correlation_id: Some(Uuid::now_v7()),
        causation_id: None,
        test_mode: false,
    }
}

pub fn ev(ty: &str, n: i64) -> NewEvent {
    NewEvent::new(ty, 1, json!({ "n": n, "text": "メールサーバー" }))
}

/// Appends `n` single-event appends of type `ty` to fresh streams of `tenant`.
pub async fn append_n(store: &PgEventStore, tenant: TenantId, ty: &str, n: i64) {
    for i in 0..n {
        store
            .append(
                tenant,
                &StreamRef::new("test", StreamId::new()),
                ExpectedVersion::NoStream,
                vec![ev(ty, i)],
                &meta(),
                None,
            )
            .await
            .expect("append");
    }
}

/// Polls `f` until it returns true or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}
