//! Webhooks of the integration bus end to end (issue #7, ADR 0016): real server, real
//! PostgreSQL, receivers on wiremock at 127.0.0.1 (`EVENTDESK_ALLOW_PRIVATE_TARGETS=true`).
//!
//! Signatures are checked by an independent implementation (the hmac and sha2 crates here),
//! not by the server's own code.

use super::app::TestApp;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use eventdesk_api::{Application, Config};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Receivers on loopback, quick retries.
pub(super) const BUS_ENV: &[(&str, &str)] = &[
    ("EVENTDESK_ALLOW_PRIVATE_TARGETS", "true"),
    ("EVENTDESK_BUS_RETRY_BASE_MS", "100"),
];

pub(super) async fn bus_app(extra: &[(&str, &str)]) -> TestApp {
    let mut env = BUS_ENV.to_vec();
    env.extend_from_slice(extra);
    TestApp::spawn_with(&env).await
}

/// Polls `f` until it yields a value (40 s at most).
pub(super) async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a receiver got so far.
pub(super) async fn received(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

fn header(r: &wiremock::Request, name: &str) -> String {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The Standard Webhooks signature, computed independently of the server.
fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 key");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("hmac key");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Whether `r` carries a valid signature by `secret` with a fresh timestamp.
fn signed_by(r: &wiremock::Request, secret: &str) -> bool {
    let id = header(r, "webhook-id");
    let ts = header(r, "webhook-timestamp");
    let fresh = ts
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 300);
    let want = expected_signature(secret, &id, &ts, &r.body);
    fresh && !id.is_empty() && header(r, "webhook-signature").split(' ').any(|s| s == want)
}

pub(super) async fn create_webhook(app: &TestApp, token: &str, url: &str, types: &[&str]) -> Value {
    let r = app
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(token),
            Some(json!({ "url": url, "event_types": types, "description": "ops receiver" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

async fn deliveries(app: &TestApp, token: &str, webhook: &str) -> Vec<Value> {
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{webhook}/deliveries"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["data"].as_array().cloned().unwrap_or_default()
}

/// Waits until `webhook` has a delivery in `status` and returns it.
async fn delivery_in(app: &TestApp, token: &str, webhook: &str, status: &str) -> Value {
    wait_for(&format!("a {status} delivery"), || async {
        deliveries(app, token, webhook)
            .await
            .into_iter()
            .find(|d| d["status"] == status)
    })
    .await
}

async fn mount_ok(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(server)
        .await;
}

#[tokio::test]
async fn deliveries_are_signed_the_standard_webhooks_way() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let server = MockServer::start().await;
    mount_ok(&server).await;
    let hook = create_webhook(
        &app,
        &t.admin,
        &format!("{}/hook", server.uri()),
        &["IncidentCreated"],
    )
    .await;
    let secret = hook["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = hook["id"].as_str().expect("id").to_owned();

    let inc = app.incident(&t.admin, "Mail relay down").await;
    let reqs = wait_for("the delivery", || async {
        let r = received(&server).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    let r = &reqs[0];
    assert!(signed_by(r, &secret), "signature does not verify");
    assert!(!signed_by(
        r,
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    ));
    assert_eq!(header(r, "content-type"), "application/json");
    let body: Value = r.body_json().expect("json body");
    assert_eq!(body["type"], "IncidentCreated");
    assert!(body["timestamp"].is_string());
    assert_eq!(body["data"]["tenant_id"], json!(t.id.0));
    assert_eq!(body["data"]["incident_id"], inc["id"]);
    assert_eq!(body["data"]["version"], 1);
    assert_eq!(body["data"]["payload"]["title"], "Mail relay down");
    assert_eq!(body["data"]["payload"]["number"], inc["incident_number"]);

    // The log: one success, its attempt with status and latency; webhook-id = delivery id.
    let d = delivery_in(&app, &t.admin, &id, "succeeded").await;
    assert_eq!(d["id"].as_str(), Some(header(r, "webhook-id").as_str()));
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["event_type"], "IncidentCreated");
    assert_eq!(d["attempt_log"][0]["status_code"], 200);
    assert_eq!(d["attempt_log"][0]["outcome"], "succeeded");
    assert!(d["attempt_log"][0]["latency_ms"].as_i64().is_some());

    // Only the subscribed type: the incident's SLA timer events were not sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received(&server).await.len(), 1);
    assert_eq!(deliveries(&app, &t.admin, &id).await.len(), 1);
}

#[tokio::test]
async fn failures_retry_with_backoff_until_success() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_ok(&server).await;
    let hook = create_webhook(
        &app,
        &t.admin,
        &format!("{}/hook", server.uri()),
        &["IncidentCreated"],
    )
    .await;
    let id = hook["id"].as_str().expect("id");
    app.incident(&t.admin, "Flaky receiver").await;

    let d = delivery_in(&app, &t.admin, id, "succeeded").await;
    assert_eq!(d["attempts"], 3, "{d:#}");
    let log = d["attempt_log"].as_array().expect("attempt log");
    let codes: Vec<i64> = log
        .iter()
        .filter_map(|a| a["status_code"].as_i64())
        .collect();
    assert_eq!(codes, [500, 500, 200]);
    let outcomes: Vec<&str> = log.iter().filter_map(|a| a["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["failed", "failed", "succeeded"]);
    assert_eq!(d["last_status_code"], 200);
    // Backoff: each retry waited (base 100 ms, doubling, ±25 % jitter).
    let at: Vec<chrono::DateTime<chrono::Utc>> = log
        .iter()
        .map(|a| a["at"].as_str().expect("at").parse().expect("time"))
        .collect();
    assert!(
        at[1] - at[0] >= chrono::TimeDelta::milliseconds(70),
        "{at:?}"
    );
    assert!(
        at[2] - at[1] >= chrono::TimeDelta::milliseconds(140),
        "{at:?}"
    );
    // One success in the log, three requests with one webhook-id.
    let reqs = received(&server).await;
    assert_eq!(reqs.len(), 3);
    let ids: BTreeSet<String> = reqs.iter().map(|r| header(r, "webhook-id")).collect();
    assert_eq!(ids.len(), 1);
    let all = deliveries(&app, &t.admin, id).await;
    assert_eq!(all.iter().filter(|d| d["status"] == "succeeded").count(), 1);
}

#[tokio::test]
async fn an_always_down_receiver_ends_dead_and_redelivery_succeeds_after_recovery() {
    let app = bus_app(&[("EVENTDESK_BUS_MAX_ATTEMPTS", "3")]).await;
    let t = app.tenant("Acme").await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let hook = create_webhook(
        &app,
        &t.admin,
        &format!("{}/hook", server.uri()),
        &["IncidentCreated"],
    )
    .await;
    let id = hook["id"].as_str().expect("id");
    app.incident(&t.admin, "Receiver down").await;

    let dead = delivery_in(&app, &t.admin, id, "dead").await;
    assert_eq!(dead["attempts"], 3);
    assert_eq!(dead["last_status_code"], 503);
    assert!(dead["completed_at"].is_string());
    assert!(dead["next_attempt_at"].is_null());
    // Dead means no more attempts.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(received(&server).await.len(), 3);

    // The receiver recovers; the admin redelivers.
    server.reset().await;
    mount_ok(&server).await;
    let did = dead["id"].as_str().expect("id");
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/deliveries/{did}/redeliver"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["status"], "pending");
    let ok = delivery_in(&app, &t.admin, id, "succeeded").await;
    assert_eq!(ok["id"], dead["id"]);
    assert_eq!(ok["attempts"], 4);
    assert_eq!(ok["attempt_log"][3]["status_code"], 200);
    let reqs = received(&server).await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        header(&reqs[0], "webhook-id"),
        did,
        "same webhook-id on redelivery"
    );

    // A pending or unknown delivery is not redeliverable; another webhook's id is 404.
    let r = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/webhooks/{id}/deliveries/{}/redeliver",
                uuid::Uuid::now_v7()
            ),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Starts a full node (bus on) on the app's database and data directory.
async fn node(
    config: &Config,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut config = config.clone();
    config.run_bus = true;
    let app = Application::build(config).await.expect("build node");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = app
            .run_until(async {
                let _ = rx.await;
            })
            .await;
    });
    (tx, task)
}

#[tokio::test]
async fn a_restart_mid_delivery_delivers_every_event_at_least_once() {
    // The API server runs without the bus; bus nodes come and go beside it.
    let app = bus_app(&[("EVENTDESK_INTEGRATION_BUS", "false")]).await;
    let t = app.tenant("Acme").await;
    let server = MockServer::start().await;
    // The first four requests hang (the first node is stopped while they do), then the
    // receiver answers at once.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(20)))
        .up_to_n_times(4)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_ok(&server).await;
    let hook = create_webhook(
        &app,
        &t.admin,
        &format!("{}/hook", server.uri()),
        &["IncidentCreated"],
    )
    .await;
    let id = hook["id"].as_str().expect("id");
    let mut incidents = BTreeSet::new();
    for i in 0..6 {
        let inc = app.incident(&t.admin, &format!("Incident {i}")).await;
        incidents.insert(inc["id"].as_str().expect("id").to_owned());
    }

    let (stop, task) = node(&app.config).await;
    wait_for("requests in flight", || async {
        (received(&server).await.len() >= 4).then_some(())
    })
    .await;
    // Stop mid-delivery: the four requests are still waiting for their answers.
    let _ = stop.send(());
    task.await.expect("node stopped");
    let before = received(&server).await.len();
    assert_eq!(before, 4, "the stopped node sent nothing more");

    // A new node on the same database finishes the job.
    let (stop, task) = node(&app.config).await;
    wait_for("every delivery to succeed", || async {
        let all = deliveries(&app, &t.admin, id).await;
        (all.len() == 6 && all.iter().all(|d| d["status"] == "succeeded")).then_some(())
    })
    .await;
    let _ = stop.send(());
    task.await.expect("node stopped");

    // Every event arrived at least once; receivers deduplicate on webhook-id.
    let reqs = received(&server).await;
    assert!(reqs.len() >= 6 + 4, "{} requests", reqs.len());
    let mut by_id: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &reqs {
        assert!(signed_by(r, hook["secret"].as_str().expect("secret")));
        let body: Value = r.body_json().expect("json");
        by_id.entry(header(r, "webhook-id")).or_default().insert(
            body["data"]["event_id"]
                .as_str()
                .expect("event id")
                .to_owned(),
        );
    }
    assert_eq!(by_id.len(), 6, "one webhook-id per event");
    assert!(
        by_id.values().all(|events| events.len() == 1),
        "a webhook-id is one event"
    );
    let delivered: BTreeSet<String> = reqs
        .iter()
        .map(|r| {
            let body: Value = r.body_json().expect("json");
            body["data"]["incident_id"]
                .as_str()
                .expect("incident")
                .to_owned()
        })
        .collect();
    assert_eq!(delivered, incidents);
    let duplicates = reqs.len() - by_id.len();
    assert!(
        duplicates >= 4,
        "the interrupted deliveries were sent again"
    );
}

#[tokio::test]
async fn a_test_mode_key_records_dry_runs_and_the_receiver_gets_nothing() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let server = MockServer::start().await;
    mount_ok(&server).await;
    let hook = create_webhook(&app, &t.admin, &format!("{}/hook", server.uri()), &["*"]).await;
    let id = hook["id"].as_str().expect("id");
    let r = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&t.admin),
            Some(json!({ "name": "sandbox", "mode": "test" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let test_key = r.body["api_key"].as_str().expect("key").to_owned();
    assert!(test_key.starts_with("qg_test_"));

    let inc = app.incident(&test_key, "Sandbox incident").await;
    let iid = inc["id"].as_str().expect("id");
    // Later events of that incident stay dry runs too, whoever acts.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/incidents/{iid}/start"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let dry = wait_for("dry-run deliveries", || async {
        let all = deliveries(&app, &t.admin, id).await;
        let types: BTreeSet<String> = all
            .iter()
            .filter_map(|d| d["event_type"].as_str().map(str::to_owned))
            .collect();
        (types.contains("IncidentCreated") && types.contains("IncidentWorkStarted")).then_some(all)
    })
    .await;
    assert!(dry.iter().all(|d| d["status"] == "dry_run"), "{dry:#?}");
    assert!(
        dry.iter()
            .all(|d| d["attempts"] == 0 && d["completed_at"].is_string())
    );
    // A dry run is not redeliverable.
    let did = dry[0]["id"].as_str().expect("id");
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/deliveries/{did}/redeliver"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // A live action afterwards is delivered: the receiver then got only that one.
    let live = app.incident(&t.admin, "Real incident").await;
    let reqs = wait_for("the live delivery", || async {
        let r = received(&server).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reqs_after = received(&server).await;
    assert!(reqs_after.len() >= reqs.len());
    for r in &reqs_after {
        let body: Value = r.body_json().expect("json");
        assert_eq!(
            body["data"]["incident_id"], live["id"],
            "a dry run reached the receiver"
        );
    }
    // Nor can the test key make a real delivery go out again.
    let sent = delivery_in(&app, &t.admin, id, "succeeded").await;
    let r = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/webhooks/{id}/deliveries/{}/redeliver",
                sent["id"].as_str().expect("id")
            ),
            Some(&test_key),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "test_mode_key");
    let filtered = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/deliveries?status=dry_run&limit=100"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(filtered.status, StatusCode::OK);
    assert!(
        filtered.body["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|d| d["status"] == "dry_run")
    );
}

#[tokio::test]
async fn secrets_are_shown_once_and_a_rotation_signs_with_both() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let server = MockServer::start().await;
    mount_ok(&server).await;
    let hook = create_webhook(
        &app,
        &t.admin,
        &format!("{}/hook", server.uri()),
        &["IncidentCreated"],
    )
    .await;
    let id = hook["id"].as_str().expect("id");
    let old = hook["secret"].as_str().expect("secret").to_owned();
    assert!(hook["url"].as_str().is_some_and(|u| u.ends_with("/hook")));

    // Never again: list, read, update.
    let list = app
        .call(Method::GET, "/api/v1/webhooks", Some(&t.admin), None)
        .await;
    let one = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{id}"),
            Some(&t.admin),
            None,
        )
        .await;
    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&t.admin),
            Some(json!({ "description": null })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert!(patched.body["description"].is_null());
    for r in [&list, &one, &patched] {
        let text = r.body.to_string();
        assert!(
            !text.contains("whsec_") && !text.contains("secret\""),
            "{text}"
        );
    }
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(1));
    // Nor in the database in clear.
    let stored: String = sqlx::query_scalar("SELECT secret_enc FROM webhooks WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.db.superuser)
        .await
        .expect("row");
    assert!(stored.starts_with("v1:") && !stored.contains(&old[6..]));

    // Rotate with a grace period: both secrets sign.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&t.admin),
            Some(json!({ "grace_period_seconds": 3600 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let new = r.body["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new, old);
    assert!(r.body["previous_secret_expires_at"].is_string());
    app.incident(&t.admin, "After rotation").await;
    let reqs = wait_for("the delivery", || async {
        let r = received(&server).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert!(signed_by(&reqs[0], &new) && signed_by(&reqs[0], &old));
    assert_eq!(header(&reqs[0], "webhook-signature").split(' ').count(), 2);

    // Without a grace period only the new secret signs.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&t.admin),
            Some(json!({ "grace_period_seconds": 0 })),
        )
        .await;
    let newest = r.body["secret"].as_str().expect("secret").to_owned();
    assert!(r.body["previous_secret_expires_at"].is_null());
    app.incident(&t.admin, "After the second rotation").await;
    let reqs = wait_for("the second delivery", || async {
        let r = received(&server).await;
        (r.len() >= 2).then_some(r)
    })
    .await;
    assert!(signed_by(&reqs[1], &newest));
    assert!(!signed_by(&reqs[1], &new) && !signed_by(&reqs[1], &old));
}

#[tokio::test]
async fn webhooks_are_tenant_scoped() {
    let app = bus_app(&[]).await;
    let a = app.tenant("Acme").await;
    let b = app.tenant("Globex").await;
    let server = MockServer::start().await;
    mount_ok(&server).await;
    let hook = create_webhook(&app, &a.admin, &format!("{}/hook", server.uri()), &["*"]).await;
    let id = hook["id"].as_str().expect("id");

    // Another tenant's webhook is 404 everywhere, and not in its list.
    for (m, p, body) in [
        (Method::GET, format!("/api/v1/webhooks/{id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/webhooks/{id}"),
            Some(json!({ "status": "paused" })),
        ),
        (Method::DELETE, format!("/api/v1/webhooks/{id}"), None),
        (
            Method::POST,
            format!("/api/v1/webhooks/{id}/rotate-secret"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/webhooks/{id}/deliveries"),
            None,
        ),
        (
            Method::POST,
            format!(
                "/api/v1/webhooks/{id}/deliveries/{}/redeliver",
                uuid::Uuid::now_v7()
            ),
            None,
        ),
    ] {
        let r = app.call(m.clone(), &p, Some(&b.admin), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {p}: {:?}", r.body);
    }
    let r = app
        .call(Method::GET, "/api/v1/webhooks", Some(&b.admin), None)
        .await;
    assert_eq!(r.body["data"], json!([]));

    // Only the owner's events reach the owner's webhook.
    app.incident(&b.admin, "Globex incident").await;
    let mine = app.incident(&a.admin, "Acme incident").await;
    let reqs = wait_for("Acme's delivery", || async {
        let r = received(&server).await;
        r.iter()
            .any(|r| {
                r.body_json::<Value>()
                    .is_ok_and(|b| b["data"]["incident_id"] == mine["id"])
            })
            .then_some(r)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for r in received(&server).await.iter().chain(&reqs) {
        let body: Value = r.body_json().expect("json");
        assert_eq!(body["data"]["tenant_id"], json!(a.id.0));
    }

    // The owner deletes it: gone, with its log.
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/webhooks/{id}"),
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{id}"),
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn webhook_input_and_permissions_are_checked() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let url = "http://127.0.0.1:9/hook";
    let post = |body: Value| {
        let app = &app;
        let token = t.admin.clone();
        async move {
            app.call(Method::POST, "/api/v1/webhooks", Some(&token), Some(body))
                .await
        }
    };
    let r = post(json!({ "url": url, "event_types": ["*"], "tenant_id": "x" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("tenant_id"));
    let r = post(json!({ "url": url, "event_types": ["IncidentExploded"] })).await;
    assert_eq!(r.error_field(), Some("event_types[0]"));
    let r = post(json!({ "url": url, "event_types": [] })).await;
    assert_eq!(r.error_field(), Some("event_types"));
    let r = post(json!({ "url": url, "event_types": ["*"], "status": "sleeping" })).await;
    assert_eq!(r.error_field(), Some("status"));
    let r = post(json!({ "url": "not a url", "event_types": ["*"] })).await;
    assert_eq!(r.error_field(), Some("url"));
    let r = post(json!({ "url": "https://u:p@example.com/", "event_types": ["*"] })).await;
    assert_eq!(r.error_field(), Some("url"));
    let r = post(json!({ "event_types": ["*"] })).await;
    assert_eq!(r.error_field(), Some("url"));
    let hook = post(json!({ "url": url, "event_types": ["*"] })).await;
    assert_eq!(hook.status, StatusCode::CREATED);
    let id = hook.body["id"].as_str().expect("id");
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&t.admin),
            Some(json!({ "grace_period_seconds": 99_999_999 })),
        )
        .await;
    assert_eq!(r.error_field(), Some("grace_period_seconds"));
    for q in [
        "status=nope",
        "limit=0",
        "limit=101",
        "before=x",
        "color=red",
    ] {
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/webhooks/{id}/deliveries?{q}"),
                Some(&t.admin),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
    }

    // Admin-only: an operator and a manager are refused.
    for role in ["operator", "manager"] {
        let (_, token) = app.user(&t.admin, role).await;
        let r = app
            .call(Method::GET, "/api/v1/webhooks", Some(&token), None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
        let r = app
            .call(
                Method::POST,
                "/api/v1/webhooks",
                Some(&token),
                Some(json!({ "url": url, "event_types": ["*"] })),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
    }
}

#[tokio::test]
async fn forbidden_targets_are_refused_with_422_naming_the_field() {
    // Private targets NOT allowed here.
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    for url in [
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hook",
        "http://2130706433/hook",
        "https://2130706433/hook",
        "https://0x7f000001/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00::1]/hook",
        "https://100.64.0.1/hook",
        "https://localhost/hook",
        "http://example.com/hook",
    ] {
        let r = app
            .call(
                Method::POST,
                "/api/v1/webhooks",
                Some(&t.admin),
                Some(json!({ "url": url, "event_types": ["*"] })),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {:?}",
            r.body
        );
        assert_eq!(r.error_field(), Some("url"), "{url}");
    }
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/slack",
            Some(&t.admin),
            Some(json!({ "enabled": true, "webhook_url": "https://127.0.0.1/services/x" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("webhook_url"));
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/jira",
            Some(&t.admin),
            Some(
                json!({ "enabled": true, "base_url": "https://169.254.169.254",
                         "project_key": "OPS", "email": "a@b.c", "api_token": "t" }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("base_url"));
    let r = app
        .call(Method::GET, "/api/v1/webhooks", Some(&t.admin), None)
        .await;
    assert_eq!(r.body["data"], json!([]), "nothing was stored");
}
