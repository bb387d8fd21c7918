//! The performance monitor and `GET /metrics` (issue #5, ADR 0020).
//!
//! The Prometheus recorder is process-wide and several test servers share this process, so
//! the `/metrics` assertions are deltas of counters that only grow (another test's requests can
//! add to them, never take away), plus figures read from this server's own database at scrape
//! time. The per-tenant view (`/api/v1/analytics/performance`) is exact: tenants are fresh.

use super::app::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "metrics-token-for-the-tests-0123456789";

async fn scrape(app: &TestApp, token: Option<&str>) -> (StatusCode, String) {
    let mut req = app.client.get(format!("{}/metrics", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("scrape");
    let status = r.status();
    (status, r.text().await.expect("text"))
}

/// The sum of the samples of `family` whose labels include every `label="value"` of `labels`.
fn sample(text: &str, family: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let (name, rest) = match name_labels.split_once('{') {
                Some((n, r)) => (n, r),
                None => (name_labels, ""),
            };
            (name == family
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

#[tokio::test]
async fn metrics_need_the_token_and_count_requests_appends_and_projections() {
    let app = TestApp::spawn_with(&[("EVENTDESK_METRICS_TOKEN", TOKEN)]).await;
    let t = app.tenant("Metrics Corp").await;

    let (s, _) = scrape(&app, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = scrape(&app, Some("not-the-token")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A tenant's own credentials are not the scrape token either.
    let (s, _) = scrape(&app, Some(&t.admin)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, before) = scrape(&app, Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    let created = [
        (
            "eventdesk_http_requests_total",
            "POST",
            "/api/v1/incidents",
            "201",
        ),
        (
            "eventdesk_http_request_duration_seconds_count",
            "POST",
            "/api/v1/incidents",
            "201",
        ),
    ];
    let at = |text: &str, i: usize| {
        let (f, m, r, st) = created[i];
        sample(text, f, &[("method", m), ("route", r), ("status", st)])
    };
    let appends_before = sample(&before, "eventdesk_event_store_appends_total", &[]);
    for i in 0..3 {
        app.incident(&t.admin, &format!("metrics {i}")).await;
    }
    // A 404 of an unknown incident: counted under its route template, not its URI.
    let r = app
        .call(
            Method::GET,
            "/api/v1/incidents/00000000-0000-7000-8000-000000000000",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let (s, after) = scrape(&app, Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(at(&after, 0) - at(&before, 0) >= 3.0, "{after}");
    assert!(at(&after, 1) - at(&before, 1) >= 3.0);
    assert!(
        sample(
            &after,
            "eventdesk_http_requests_total",
            &[("route", "/api/v1/incidents/{id}"), ("status", "404")]
        ) >= 1.0
    );
    assert!(!after.contains("00000000-0000-7000-8000-000000000000"));
    assert!(sample(&after, "eventdesk_event_store_appends_total", &[]) - appends_before >= 3.0);
    for family in [
        "# TYPE eventdesk_http_requests_total counter",
        "# TYPE eventdesk_http_request_duration_seconds histogram",
        "eventdesk_http_request_duration_seconds_bucket{",
        "# TYPE eventdesk_event_store_appends_total counter",
        "# TYPE eventdesk_projection_lag_events gauge",
        "# TYPE eventdesk_projection_lag_milliseconds gauge",
        "# TYPE eventdesk_dead_letters gauge",
        "# TYPE eventdesk_sla_breaches gauge",
        "eventdesk_metrics_database_up 1",
    ] {
        assert!(after.contains(family), "missing {family}:\n{after}");
    }
    // Per projection, from this server's database.
    assert!(
        after.contains("eventdesk_projection_lag_events{projection=\"incidents\""),
        "{after}"
    );
    assert_eq!(sample(&after, "eventdesk_dead_letters", &[]), 0.0);
    // No tenant names or ids on the scrape.
    assert!(!after.contains("Metrics Corp"));
    assert!(!after.contains(&t.id.0.to_string()));
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_404_without_a_configured_token() {
    let app = TestApp::spawn().await;
    let (s, _) = scrape(&app, Some("anything")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = scrape(&app, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.stop().await;
}

async fn performance(app: &TestApp, token: &str) -> Value {
    let r = app
        .call(
            Method::GET,
            "/api/v1/analytics/performance",
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

/// `n` incident lists as `admin`, each answered 200.
async fn list_incidents(app: &TestApp, admin: &str, n: usize) {
    for _ in 0..n {
        let r = app
            .call(Method::GET, "/api/v1/incidents", Some(admin), None)
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

/// The tenant's performance view once the background flusher has stored an alert.
async fn first_alert(app: &TestApp, admin: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let p = performance(app, admin).await;
        if p["alerts_total"].as_i64().unwrap_or(0) >= 1 {
            return p;
        }
        assert!(Instant::now() < deadline, "no alert recorded: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn category<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["categories"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["category"] == name))
        .unwrap_or_else(|| panic!("no category {name}: {p}"))
}

fn route<'a>(p: &'a Value, name: &str) -> Option<&'a Value> {
    p["routes"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["route"] == name))
}

#[tokio::test]
async fn repeated_violations_raise_an_alert_visible_to_that_tenant_only() {
    // A zero API budget: every request violates; three in a row raise an alert.
    let app = TestApp::spawn_with(&[
        ("EVENTDESK_MONITOR_BUDGETS", "api=0"),
        ("EVENTDESK_MONITOR_ALERT_AFTER", "3"),
        ("EVENTDESK_MONITOR_FLUSH_MS", "100"),
    ])
    .await;
    let a = app.tenant("Slow Corp").await;
    let b = app.tenant("Quiet Corp").await;

    // The quiet tenant has no request recorded yet (logins carry no tenant).
    let quiet = performance(&app, &b.admin).await;
    assert_eq!(quiet["enabled"], true);
    assert_eq!(category(&quiet, "api")["count"], 0);
    assert_eq!(quiet["alerts_total"], 0);

    app.incident(&a.admin, "slow one").await;
    app.incident(&a.admin, "slow two").await;
    list_incidents(&app, &a.admin, 2).await;

    // The alert is written by the background flusher.
    let p = first_alert(&app, &a.admin).await;
    let api = category(&p, "api");
    assert_eq!(api["budget_ms"], 0.0);
    let count = api["count"].as_u64().expect("count");
    // Two creates and two lists, plus the performance reads before this one.
    assert!(count >= 4, "{p}");
    assert_eq!(api["violations"], api["count"]);
    let (p50, p95, p99) = (
        api["p50_ms"].as_f64().expect("p50"),
        api["p95_ms"].as_f64().expect("p95"),
        api["p99_ms"].as_f64().expect("p99"),
    );
    assert!(0.0 < p50 && p50 <= p95 && p95 <= p99, "{api}");
    assert!(api["alerts_raised"].as_u64().expect("alerts") >= 1);
    // Per route template, exactly this tenant's requests.
    assert_eq!(
        route(&p, "POST /api/v1/incidents").expect("creates")["count"],
        2
    );
    assert_eq!(
        route(&p, "GET /api/v1/incidents").expect("lists")["count"],
        2
    );
    // Authentication, authorisation and the database were timed for the tenant too, within
    // their (default) budgets' bookkeeping.
    assert!(category(&p, "auth")["count"].as_u64().expect("auth") >= count);
    assert!(
        category(&p, "security")["count"]
            .as_u64()
            .expect("security")
            >= count
    );
    assert!(category(&p, "db")["count"].as_u64().expect("db") >= 2);
    assert_eq!(category(&p, "db")["budget_ms"], 30.0);
    let alert = &p["alerts"][0];
    assert_eq!(alert["category"], "api");
    assert_eq!(alert["consecutive"], 3);
    // The first alert of the category: nothing held back by a cooldown before it.
    assert_eq!(alert["suppressed"], 0);
    assert_eq!(alert["budget_ms"], 0.0);
    assert!(alert["observed_ms"].as_f64().expect("observed") > 0.0);
    assert!(alert["route"].as_str().expect("route").contains("/api/v1/"));

    // The other tenant sees none of it.
    let quiet = performance(&app, &b.admin).await;
    assert_eq!(quiet["alerts_total"], 0);
    assert!(route(&quiet, "POST /api/v1/incidents").is_none());
    assert_eq!(category(&quiet, "api")["count"], 1, "{quiet}");

    // Strict parameters.
    let r = app
        .call(
            Method::GET,
            "/api/v1/analytics/performance?window=1h",
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("window"));
    app.stop().await;
}

#[tokio::test]
async fn requests_within_budget_raise_nothing_and_the_monitor_can_be_off() {
    let app = TestApp::spawn_with(&[("EVENTDESK_MONITOR_BUDGETS", "api=60000,auth=60000")]).await;
    let t = app.tenant("Fast Corp").await;
    for i in 0..4 {
        app.incident(&t.admin, &format!("fast {i}")).await;
    }
    let p = performance(&app, &t.admin).await;
    assert_eq!(category(&p, "api")["violations"], 0);
    assert_eq!(category(&p, "api")["count"], 4);
    assert_eq!(category(&p, "api")["consecutive_violations"], 0);
    assert_eq!(p["alerts_total"], 0);
    app.stop().await;

    let off = TestApp::spawn_with(&[("EVENTDESK_MONITOR", "off")]).await;
    let t = off.tenant("Unmonitored Corp").await;
    let r = off
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&t.admin),
            Some(json!({"title": "not timed", "impact": "low", "urgency": "low"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let p = performance(&off, &t.admin).await;
    assert_eq!(p["enabled"], false);
    assert_eq!(p["categories"], json!([]));
    off.stop().await;
}

#[tokio::test]
async fn webhook_deliveries_are_counted_and_timed_for_the_tenant() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let app = super::webhooks::bus_app(&[("EVENTDESK_METRICS_TOKEN", TOKEN)]).await;
    let t = app.tenant("Hooked Corp").await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(&t.admin),
            Some(json!({"url": format!("{}/hook", receiver.uri()),
                        "event_types": ["IncidentCreated"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let delivered = |text: &str| {
        sample(
            text,
            "eventdesk_bus_deliveries_total",
            &[("target", "webhook"), ("outcome", "succeeded")],
        )
    };
    let (_, before) = scrape(&app, Some(TOKEN)).await;
    app.incident(&t.admin, "hooked").await;
    let p = super::webhooks::wait_for("the delivery in the tenant's integration figures", || {
        let app = &app;
        let token = t.admin.clone();
        async move {
            let p = performance(app, &token).await;
            (category(&p, "integration")["count"].as_u64() >= Some(1)).then_some(p)
        }
    })
    .await;
    let integration = category(&p, "integration");
    assert_eq!(integration["count"], 1);
    assert_eq!(integration["budget_ms"], 5000.0);
    assert_eq!(integration["violations"], 0);
    assert_eq!(super::webhooks::received(&receiver).await.len(), 1);
    let (_, after) = scrape(&app, Some(TOKEN)).await;
    assert!(delivered(&after) - delivered(&before) >= 1.0, "{after}");
    assert!(after.contains("eventdesk_bus_delivery_duration_seconds_bucket{"));
    app.stop().await;
}

#[tokio::test]
async fn alerts_past_their_retention_are_deleted_and_newer_ones_kept() {
    // A long cooldown and a zero budget: a tenant's steady violations raise one alert, not one
    // per run, and the flusher's sweep deletes only what is older than the retention.
    let app = TestApp::spawn_with(&[
        ("EVENTDESK_MONITOR_BUDGETS", "api=0"),
        ("EVENTDESK_MONITOR_ALERT_AFTER", "2"),
        ("EVENTDESK_MONITOR_ALERT_COOLDOWN_SECS", "3600"),
        ("EVENTDESK_MONITOR_FLUSH_MS", "100"),
    ])
    .await;
    let a = app.tenant("Steadily Slow").await;
    list_incidents(&app, &a.admin, 8).await;
    let p = first_alert(&app, &a.admin).await;
    // Eight or more violations in runs of two, one alert: the others fell in its cooldown.
    let api = category(&p, "api");
    assert!(api["violations"].as_u64().expect("violations") >= 8, "{p}");
    assert_eq!(api["alerts_raised"], 1, "{p}");
    assert_eq!(p["alerts_total"], 1, "{p}");

    // Two more alerts of the tenant, written as an older node would have: 40 and 10 days old.
    let mut cfg = app.config.system_db();
    cfg.max_connections = 2;
    let sys = eventdesk_store::Db::connect(cfg)
        .await
        .expect("system pool");
    for days in [40, 10] {
        sqlx::query(
            "INSERT INTO monitor_alerts (id, tenant_id, category, route, consecutive, budget_ms, \
             observed_ms, node, raised_at) \
             VALUES ($1, $2, 'api', NULL, 2, 0, 1, 'old-node', now() - make_interval(days => $3))",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(a.id.0)
        .bind(days)
        .execute(&sys.pool)
        .await
        .expect("old alert");
    }
    assert_eq!(performance(&app, &a.admin).await["alerts_total"], 3);
    let deleted = eventdesk_api::monitor::prune_alerts(&sys.pool, Duration::from_secs(30 * 86_400))
        .await
        .expect("prune");
    assert_eq!(deleted, 1);
    let p = performance(&app, &a.admin).await;
    assert_eq!(p["alerts_total"], 2, "{p}");
    let nodes: Vec<&str> = p["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["node"].as_str())
        .collect();
    assert_eq!(nodes.iter().filter(|n| **n == "old-node").count(), 1, "{p}");
    // Nothing left to delete: a second sweep (another node's) deletes nothing.
    let again = eventdesk_api::monitor::prune_alerts(&sys.pool, Duration::from_secs(30 * 86_400))
        .await
        .expect("prune again");
    assert_eq!(again, 0);
    sys.pool.close().await;
}
