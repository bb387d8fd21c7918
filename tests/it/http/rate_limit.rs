//! Per-tenant rate limits (issue #7, ADR 0019): 429 with `Retry-After` and `RateLimit-*`
//! headers in memory and through Redis, one limit shared by two servers through Redis, the
//! fall-back to memory when Redis is down, per-IP limits that a spoofed `X-Forwarded-For`
//! does not escape, and per-tenant overrides set by the platform.

use super::app::{Resp, TestApp};
use eventdesk_domain::TenantId;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

const REDIS: &str = "redis://127.0.0.1:6379";

/// A Redis key prefix no other test uses.
fn prefix() -> String {
    format!("edtest:{}", Uuid::now_v7().simple())
}

fn num(r: &Resp, name: &str) -> u64 {
    r.header(name)
        .unwrap_or_else(|| panic!("{name} missing: {:?}", r.headers))
        .parse()
        .unwrap_or_else(|_| panic!("{name} not a number"))
}

async fn get(app_base: &str, client: &reqwest::Client, token: &str, path: &str) -> Resp {
    let resp = client
        .get(format!("{app_base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    Resp {
        status,
        headers,
        body,
    }
}

/// `limit` requests pass with exact headers, the next is 429 with `Retry-After`.
async fn assert_limit_of(app: &TestApp, token: &str, limit: u64, period: u64) {
    for i in 0..limit {
        let r = get(&app.base, &app.client, token, "/api/v1/incidents").await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {:?}", r.body);
        assert_eq!(num(&r, "ratelimit-limit"), limit);
        assert_eq!(num(&r, "ratelimit-remaining"), limit - 1 - i);
        let reset = num(&r, "ratelimit-reset");
        assert!(reset >= 1 && reset <= period, "reset {reset}");
        assert_eq!(
            r.header("ratelimit-policy"),
            Some(format!("{limit};w={period}").as_str())
        );
    }
    let r = get(&app.base, &app.client, token, "/api/v1/incidents").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "rate_limited");
    assert_eq!(num(&r, "ratelimit-remaining"), 0);
    let retry = num(&r, "retry-after");
    let interval = period / limit;
    assert!(
        retry >= 1 && retry <= interval,
        "retry-after {retry} within one emission interval ({interval} s)"
    );
}

#[tokio::test]
async fn memory_backend_limits_each_tenant_with_429_and_headers() {
    let app = TestApp::spawn_with(&[("EVENTDESK_RATE_LIMIT_JWT", "5/3600")]).await;
    let a = app.tenant("Acme").await;
    let b = app.tenant("Globex").await;
    assert_limit_of(&app, &a.admin, 5, 3600).await;
    // Another tenant has its own quota.
    let r = get(&app.base, &app.client, &b.admin, "/api/v1/incidents").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(num(&r, "ratelimit-remaining"), 4);
    // Probes are not limited.
    let r = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("ratelimit-limit").is_none());
    app.stop().await;
}

#[tokio::test]
async fn redis_backend_limits_with_429_and_headers() {
    let p = prefix();
    let app = TestApp::spawn_with(&[
        ("REDIS_URL", REDIS),
        ("EVENTDESK_RATE_LIMIT_REDIS_PREFIX", &p),
        ("EVENTDESK_RATE_LIMIT_JWT", "4/3600"),
        // Generous for a loaded test machine; the fall-back would hide a broken Redis path.
        ("EVENTDESK_RATE_LIMIT_REDIS_TIMEOUT_MS", "2000"),
    ])
    .await;
    let a = app.tenant("Acme").await;
    assert_limit_of(&app, &a.admin, 4, 3600).await;
    // The state is in Redis under the prefix, keyed by tenant and auth type.
    let client = redis::Client::open(REDIS).expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = format!("{p}:t:{}:jwt", a.id);
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("exists");
    assert!(exists, "{key} in Redis");
    app.stop().await;
}

#[tokio::test]
async fn two_servers_share_one_limit_through_redis() {
    let p = prefix();
    let a_node = TestApp::spawn_with(&[
        ("REDIS_URL", REDIS),
        ("EVENTDESK_RATE_LIMIT_REDIS_PREFIX", &p),
        ("EVENTDESK_RATE_LIMIT_JWT", "10/3600"),
        ("EVENTDESK_RATE_LIMIT_REDIS_TIMEOUT_MS", "2000"),
    ])
    .await;
    let b_node = a_node.sibling().await;
    let t = a_node.tenant("Acme").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            get(&a_node.base, &a_node.client, &t.admin, "/api/v1/incidents")
                .await
                .status,
        );
    }
    for _ in 0..6 {
        statuses.push(
            get(&b_node.base, &b_node.client, &t.admin, "/api/v1/incidents")
                .await
                .status,
        );
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!((ok, limited), (10, 2), "{statuses:?}");
    assert_eq!(&statuses[10..], &[StatusCode::TOO_MANY_REQUESTS; 2]);
    b_node.stop().await;
    a_node.stop().await;
}

#[tokio::test]
async fn redis_down_falls_back_to_memory_limits() {
    // Nothing listens on port 1: every Redis call fails at once.
    let app = TestApp::spawn_with(&[
        ("REDIS_URL", "redis://127.0.0.1:1"),
        ("EVENTDESK_RATE_LIMIT_REDIS_PREFIX", &prefix()),
        ("EVENTDESK_RATE_LIMIT_JWT", "3/3600"),
    ])
    .await;
    let a = app.tenant("Acme").await;
    assert_limit_of(&app, &a.admin, 3, 3600).await;
    // The node says which backend is in use (asked by another tenant: A is out of quota).
    let b = app.tenant("Globex").await;
    let r = get(&app.base, &app.client, &b.admin, "/api/v1/rate-limits").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["backend"], "memory_fallback");
    app.stop().await;
}

async fn login_status(app: &TestApp, forwarded: Option<&str>) -> StatusCode {
    let mut req = app
        .client
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({"username": "nobody_here", "password": "wrong password"}));
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.expect("login").status()
}

#[tokio::test]
async fn a_spoofed_forwarded_for_does_not_escape_the_ip_limit() {
    let app = TestApp::spawn_with(&[("EVENTDESK_RATE_LIMIT_IP", "3/3600")]).await;
    let mut seen = Vec::new();
    for i in 0..5 {
        seen.push(login_status(&app, Some(&format!("203.0.113.{i}"))).await);
    }
    assert_eq!(
        seen,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
        ]
    );
    app.stop().await;

    // Behind a configured proxy (the test client's 127.0.0.1), the forwarded client counts.
    let app = TestApp::spawn_with(&[
        ("EVENTDESK_RATE_LIMIT_IP", "1/3600"),
        ("EVENTDESK_TRUSTED_PROXIES", "127.0.0.0/8, ::1"),
    ])
    .await;
    assert_eq!(
        login_status(&app, Some("203.0.113.7")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&app, Some("203.0.113.7")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_status(&app, Some("203.0.113.8")).await,
        StatusCode::UNAUTHORIZED
    );
    // A client behind the proxy cannot pick its key by prepending a hop either: the nearest
    // untrusted hop (what the proxy saw) is the key.
    assert_eq!(
        login_status(&app, Some("198.51.100.1, 203.0.113.8")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.stop().await;
}

/// A platform key (as `eventdesk platform-key create` makes).
async fn platform_key(app: &TestApp) -> String {
    let mut cfg = app.config.system_db();
    cfg.max_connections = 1;
    let sys = eventdesk_store::Db::connect(cfg)
        .await
        .expect("system pool");
    let key = eventdesk_auth::apikey::generate(
        eventdesk_auth::apikey::KeyMode::Live,
        app.config.api_key_pepper.expose().as_bytes(),
    )
    .expect("key");
    let perms: eventdesk_auth::PermissionSet =
        std::iter::once(eventdesk_auth::rbac::PLATFORM).collect();
    let mut conn = sys.pool.acquire().await.expect("conn");
    eventdesk_auth::store::insert_api_key(
        &mut conn,
        TenantId(Uuid::nil()),
        "platform",
        &key,
        &perms,
        None,
    )
    .await
    .expect("insert");
    drop(conn);
    sys.pool.close().await;
    key.plaintext
}

#[tokio::test]
async fn platform_overrides_one_tenants_limits_per_auth_type() {
    let app = TestApp::spawn_with(&[("EVENTDESK_RATE_LIMIT_TEST_KEY", "1000/3600")]).await;
    let a = app.tenant("Acme").await;
    let b = app.tenant("Globex").await;
    let platform = platform_key(&app).await;
    let path = format!("/api/v1/tenants/{}/rate-limits", a.id);

    // Validation names the field; unknown fields are refused; tenants cannot do it.
    let r = app
        .call(
            Method::PUT,
            &path,
            Some(&platform),
            Some(json!({"jwt": {"limit": 0, "period_secs": 60}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("jwt.limit"));
    let r = app
        .call(
            Method::PUT,
            &path,
            Some(&platform),
            Some(json!({"graphql": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .call(
            Method::PUT,
            &path,
            Some(&a.admin),
            Some(json!({"jwt": {"limit": 100000, "period_secs": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/tenants/{}/rate-limits", Uuid::now_v7()),
            Some(&platform),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = app
        .call(
            Method::PUT,
            &path,
            Some(&platform),
            Some(json!({"jwt": {"limit": 2, "period_secs": 3600}, "test_key": {"limit": 1, "period_secs": 3600}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["limits"]["jwt"]["limit"], 2);
    assert_eq!(r.body["limits"]["jwt"]["source"], "override");
    assert_eq!(r.body["limits"]["live_key"]["source"], "default");

    // A test key of tenant A: its own quota of 1.
    let r = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&a.admin),
            Some(json!({"name": "ci", "mode": "test"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let test_key = r.body["api_key"].as_str().expect("key").to_owned();

    let codes = |rs: Vec<Resp>| {
        rs.into_iter()
            .map(|r| r.status.as_u16())
            .collect::<Vec<_>>()
    };
    let mut jwt = Vec::new();
    for _ in 0..3 {
        jwt.push(get(&app.base, &app.client, &a.admin, "/api/v1/incidents").await);
    }
    // The POST above was the first of the two JWT requests.
    assert_eq!(codes(jwt), [200, 429, 429]);
    let mut key = Vec::new();
    for _ in 0..2 {
        key.push(get(&app.base, &app.client, &test_key, "/api/v1/incidents").await);
    }
    assert_eq!(codes(key), [200, 429]);
    // Tenant B keeps the defaults.
    let r = get(&app.base, &app.client, &b.admin, "/api/v1/rate-limits").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["limits"]["jwt"]["source"], "default");
    // The platform reads it back.
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/tenants/{}/rate-limits", a.id),
            Some(&platform),
            None,
        )
        .await;
    assert_eq!(r.body["limits"]["test_key"]["limit"], 1);
    app.stop().await;
}

/// A TCP relay to the local Redis that the test can take down and bring back on one port.
struct Relay {
    port: u16,
    stop: tokio_util::sync::CancellationToken,
}

impl Relay {
    async fn start(port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    () = s.cancelled() => return,
                    r = listener.accept() => match r { Ok(c) => c, Err(_) => return },
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:6379").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = s.cancelled() => {}
                    }
                });
            }
        });
        Self { port, stop }
    }

    /// Closes the listener and every relayed connection.
    fn down(self) -> u16 {
        self.stop.cancel();
        self.port
    }
}

#[tokio::test]
async fn the_node_falls_back_when_redis_goes_away_and_returns_when_it_is_back() {
    let relay = Relay::start(0).await;
    let url = format!("redis://127.0.0.1:{}", relay.port);
    let p = prefix();
    let app = TestApp::spawn_with(&[
        ("REDIS_URL", &url),
        ("EVENTDESK_RATE_LIMIT_REDIS_PREFIX", &p),
        ("EVENTDESK_RATE_LIMIT_JWT", "1000/3600"),
        ("EVENTDESK_RATE_LIMIT_REDIS_TIMEOUT_MS", "1000"),
    ])
    .await;
    let a = app.tenant("Acme").await;
    let backend = |r: &Resp| r.body["backend"].as_str().unwrap_or_default().to_owned();
    let r = get(&app.base, &app.client, &a.admin, "/api/v1/rate-limits").await;
    assert_eq!((r.status, backend(&r)), (StatusCode::OK, "redis".into()));

    // Redis goes away: requests still succeed, counted in memory.
    let port = relay.down();
    for _ in 0..3 {
        let r = get(&app.base, &app.client, &a.admin, "/api/v1/incidents").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert!(r.header("ratelimit-remaining").is_some());
    }
    let r = get(&app.base, &app.client, &a.admin, "/api/v1/rate-limits").await;
    assert_eq!(backend(&r), "memory_fallback");

    // It comes back on the same port: the node returns to it (probed at most every second).
    let _relay = Relay::start(port).await;
    let started = std::time::Instant::now();
    loop {
        let r = get(&app.base, &app.client, &a.admin, "/api/v1/incidents").await;
        assert_eq!(r.status, StatusCode::OK);
        let r = get(&app.base, &app.client, &a.admin, "/api/v1/rate-limits").await;
        if backend(&r) == "redis" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "never returned to Redis"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    app.stop().await;
}
