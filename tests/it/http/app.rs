//! `TestApp`: the real server (`Application`) on 127.0.0.1:0 over a fresh database, plus
//! helpers to create tenants and users of every role and to call the API.

use crate::helpers::TestDb;
use chrono::{DateTime, Utc};
use eventdesk_api::{Application, Config};
use eventdesk_commands::tenant::{NewTenant, create_tenant_with_admin};
use eventdesk_commands::{Clock, Options, SystemClock};
use eventdesk_domain::TenantId;
use eventdesk_domain::values::{Email, PersonName, TenantName, Username};
use eventdesk_store::{Db, EventMetadata};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";
/// The HS256 secret of the test server.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

pub struct TestApp {
    /// Kept alive for the test's duration: dropping it drops the database.
    #[allow(dead_code)]
    pub db: TestDb,
    pub base: String,
    pub client: reqwest::Client,
    pub config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _data: tempdir::Dir,
}

/// A tenant with its admin.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub admin_id: Uuid,
    pub admin: String,
}

/// A response: status, headers and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The first `details[].field` of an error body.
    pub fn error_field(&self) -> Option<&str> {
        self.body["error"]["details"][0]["field"].as_str()
    }
}

mod tempdir {
    /// A temporary directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let p = std::env::temp_dir().join(format!("eventdesk-test-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&p).expect("temp dir");
            Self(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Spawns with extra environment variables.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        Self::spawn_with_clock(extra, Arc::new(SystemClock)).await
    }

    /// Spawns with extra environment variables and an injected clock.
    pub async fn spawn_with_clock(extra: &[(&str, &str)], clock: Arc<dyn Clock>) -> Self {
        let db = TestDb::new().await;
        let data = tempdir::Dir::new();
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", db.url.as_str()),
            ("EVENTDESK_BIND", "127.0.0.1:0"),
            ("EVENTDESK_JWT_SECRET", JWT_SECRET),
            (
                "EVENTDESK_API_KEY_PEPPER",
                "test-pepper-test-pepper-test-pepper-0123",
            ),
            ("EVENTDESK_DB_POOL", "20"),
            // Many servers share two cores during the test run: be patient with projections.
            ("EVENTDESK_CONSISTENCY_WAIT_MS", "15000"),
            // Rate limiting stays on (every request goes through it) but out of the way of
            // tests about other things; `rate_limit.rs` sets real quotas.
            ("EVENTDESK_RATE_LIMIT_JWT", "1000000/s"),
            ("EVENTDESK_RATE_LIMIT_LIVE_KEY", "1000000/s"),
            ("EVENTDESK_RATE_LIMIT_TEST_KEY", "1000000/s"),
            ("EVENTDESK_RATE_LIMIT_IP", "1000000/s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.insert(
            "EVENTDESK_DATA_DIR".into(),
            data.0.to_string_lossy().into_owned(),
        );
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
        let app = Application::build_with_clock(config.clone(), clock)
            .await
            .expect("build app");
        let addr = app.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = app
                .run_until(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            db,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            config,
            stop: Some(tx),
            task: Some(task),
            _data: data,
        }
    }

    /// A second server process ("node") on this app's database, with this app's
    /// configuration (and data directory, so the same secrets) on its own port.
    pub async fn sibling(&self) -> Sibling {
        let app = Application::build(self.config.clone())
            .await
            .expect("build sibling");
        let addr = app.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = app
                .run_until(async {
                    let _ = rx.await;
                })
                .await;
        });
        Sibling {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits for it (projectors included).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Creates a tenant with an admin (as `eventdesk tenant create` does) and logs the admin in.
    pub async fn tenant(&self, name: &str) -> Tenant {
        let mut cfg = self.config.system_db();
        cfg.max_connections = 2;
        let sys = Db::connect(cfg).await.expect("system pool");
        let store = eventdesk_store::PgEventStore::new(sys.pool.clone(), Default::default());
        let username = format!("admin_{}", &Uuid::now_v7().simple().to_string()[20..]);
        let hash = eventdesk_auth::password::hash_password(PASSWORD).expect("hash");
        let (tenant, admin) = create_tenant_with_admin(
            &store,
            &SystemClock,
            NewTenant {
                name: TenantName::parse(name).expect("name"),
                admin_username: Username::parse(&username).expect("username"),
                admin_email: Email::parse(format!("{username}@example.com")).expect("email"),
                admin_first_name: PersonName::parse("Ada").expect("first"),
                admin_last_name: PersonName::parse("Admin").expect("last"),
                admin_password_hash: hash,
            },
            &Options {
                metadata: EventMetadata {
                    actor: "system:test".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create tenant");
        sys.pool.close().await;
        let admin_token = self.login_eventually(&username).await;
        Tenant {
            id: tenant,
            admin_id: admin.0,
            admin: admin_token,
        }
    }

    /// Logs in, retrying until the directory projection has the user.
    pub async fn login_eventually(&self, username: &str) -> String {
        for _ in 0..100 {
            let r = self
                .call(
                    Method::POST,
                    "/api/v1/auth/login",
                    None,
                    Some(json!({"username": username, "password": PASSWORD})),
                )
                .await;
            if r.status == StatusCode::OK {
                return r.body["access_token"].as_str().expect("token").to_owned();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("could not log in as {username}");
    }

    /// Creates a user of `role` in the admin's tenant and returns (user id, token).
    pub async fn user(&self, admin: &str, role: &str) -> (Uuid, String) {
        let username = format!("{role}_{}", &Uuid::now_v7().simple().to_string()[20..]);
        let r = self
            .call(
                Method::POST,
                "/api/v1/users",
                Some(admin),
                Some(json!({
                    "username": username,
                    "email": format!("{username}@example.com"),
                    "password": PASSWORD,
                    "first_name": "Test",
                    "last_name": role,
                    "role": role,
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "create user: {:?}", r.body);
        let id = r.body["id"].as_str().expect("id").parse().expect("uuid");
        let token = self.login_eventually(&username).await;
        (id, token)
    }

    /// Calls the API with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.call_with(method, path, token, body, &[]).await
    }

    /// Calls the API with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Creates an incident and returns its JSON.
    pub async fn incident(&self, token: &str, title: &str) -> Value {
        let r = self
            .call(
                Method::POST,
                "/api/v1/incidents",
                Some(token),
                Some(json!({"title": title, "description": "d", "impact": "medium", "urgency": "high"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body
    }
}

/// Another server on the same database (see [`TestApp::sibling`]).
pub struct Sibling {
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sibling {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// A clock the test moves by hand.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn at(t: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(t)))
    }
    pub fn advance(&self, d: chrono::TimeDelta) {
        *self.0.lock().expect("clock") += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}
