//! Slack and Jira of the integration bus end to end (issue #7, ADR 0016), against wiremock
//! receivers that check the documented request shapes: Slack incoming-webhook messages with
//! `blocks`; Jira REST v3 issues and comments in the Atlassian Document Format, with Basic
//! auth (email + API token).

use super::app::{ManualClock, TestApp};
use super::webhooks::{BUS_ENV, bus_app, received, wait_for};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const SLACK_PATH: &str = "/services/T0001/B0001/XXXXXXXXXXXX";

/// A Slack incoming-webhook message: `text` and a non-empty `blocks` array of typed blocks
/// whose first one is a `header` with `plain_text`.
struct SlackMessage;

impl Match for SlackMessage {
    fn matches(&self, r: &Request) -> bool {
        let Ok(v) = r.body_json::<Value>() else {
            return false;
        };
        let Some(blocks) = v["blocks"].as_array() else {
            return false;
        };
        v["text"].is_string()
            && !blocks.is_empty()
            && blocks.iter().all(|b| b["type"].is_string())
            && blocks[0]["type"] == "header"
            && blocks[0]["text"]["type"] == "plain_text"
    }
}

async fn slack_receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .and(header("content-type", "application/json"))
        .and(SlackMessage)
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    server
}

async fn put(app: &TestApp, token: &str, kind: &str, body: Value) -> super::app::Resp {
    app.call(
        Method::PUT,
        &format!("/api/v1/integrations/{kind}"),
        Some(token),
        Some(body),
    )
    .await
}

async fn critical(app: &TestApp, token: &str, title: &str) -> Value {
    let r = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(token),
            Some(
                json!({ "title": title, "description": "All mail queues are stuck",
                         "impact": "extensive", "urgency": "critical", "priority": "critical" }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

fn header_text(v: &Value) -> String {
    v["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn slack_gets_block_messages_for_new_critical_incidents_only() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let slack = slack_receiver().await;
    let r = put(
        &app,
        &t.admin,
        "slack",
        json!({ "enabled": true, "webhook_url": format!("{}{SLACK_PATH}", slack.uri()) }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["configured"], true);

    app.incident(&t.admin, "Printer jam").await; // medium × high: not critical
    let inc = critical(&app, &t.admin, "Mail <down> & out").await;
    let reqs = wait_for("the Slack message", || async {
        let r = received(&slack).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    let msg: Value = reqs[0].body_json().expect("json");
    assert!(
        header_text(&msg).contains(inc["incident_number"].as_str().expect("number")),
        "{msg:#}"
    );
    let section = msg["blocks"][1]["text"]["text"].as_str().expect("section");
    assert!(
        section.contains("&lt;down&gt; &amp; out"),
        "mrkdwn escaped: {section}"
    );
    assert_eq!(msg["blocks"][2]["fields"][0]["type"], "mrkdwn");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        received(&slack).await.len(),
        1,
        "only the critical incident"
    );
}

#[tokio::test]
async fn slack_429_is_retried_after_retry_after() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_string("rate_limited"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .and(SlackMessage)
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    put(
        &app,
        &t.admin,
        "slack",
        json!({ "enabled": true, "webhook_url": format!("{}{SLACK_PATH}", slack.uri()) }),
    )
    .await;
    critical(&app, &t.admin, "Core switch down").await;
    let rows = wait_for("the delivered Slack message", || async {
        let rows = sqlx::query(
            "SELECT a.outcome, a.started_at, a.status_code FROM bus_delivery_attempts a \
             JOIN bus_deliveries d ON d.id = a.delivery_id \
             WHERE d.target = 'slack' AND d.status = 'succeeded' ORDER BY a.attempt",
        )
        .fetch_all(&app.db.superuser)
        .await
        .expect("attempts");
        (rows.len() == 2).then_some(rows)
    })
    .await;
    let outcome = |i: usize| rows[i].get::<String, _>(0);
    assert_eq!(
        (outcome(0).as_str(), outcome(1).as_str()),
        ("rate_limited", "succeeded")
    );
    assert_eq!(rows[0].get::<Option<i32>, _>(2), Some(429));
    let at = |i: usize| rows[i].get::<chrono::DateTime<Utc>, _>(1);
    assert!(
        at(1) - at(0) >= TimeDelta::milliseconds(1900),
        "Retry-After honoured: {:?}",
        at(1) - at(0)
    );
    assert_eq!(received(&slack).await.len(), 2);
}

#[tokio::test]
async fn slack_daily_summary_at_the_local_time_once_a_day() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let slack = slack_receiver().await;
    app.incident(&t.admin, "Open one").await;
    critical(&app, &t.admin, "Open critical").await;
    // 00:00 in Tokyo has always passed today (Tokyo time): the summary is due at once.
    let body = json!({
        "enabled": true,
        "webhook_url": format!("{}{SLACK_PATH}", slack.uri()),
        "notify_critical_incidents": false,
        "daily_summary_time": "00:00",
        "time_zone": "Asia/Tokyo",
    });
    let r = put(&app, &t.admin, "slack", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["daily_summary_time"], "00:00");
    assert_eq!(r.body["time_zone"], "Asia/Tokyo");
    let reqs = wait_for("the daily summary", || async {
        let r = received(&slack).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    let msg: Value = reqs[0].body_json().expect("json");
    let tokyo: chrono_tz::Tz = "Asia/Tokyo".parse().expect("tz");
    let today = Utc::now().with_timezone(&tokyo).date_naive().to_string();
    assert!(header_text(&msg).contains(&today), "{msg:#}");
    let fields = msg["blocks"][1]["fields"].as_array().expect("fields");
    let open = fields[0]["text"].as_str().expect("open");
    assert!(open.contains("*Open*") && open.ends_with('2'), "{open}");
    // Once a day: another change of the settings does not send it again.
    put(&app, &t.admin, "slack", body).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(received(&slack).await.len(), 1);
}

#[tokio::test]
async fn slack_sla_breach_alerts() {
    let clock = ManualClock::at(Utc::now());
    let mut env = BUS_ENV.to_vec();
    env.push(("EVENTDESK_CONSISTENCY_WAIT_MS", "15000"));
    let app = TestApp::spawn_with_clock(&env, Arc::new(clock.clone())).await;
    let t = app.tenant("Acme").await;
    let slack = slack_receiver().await;
    put(
        &app,
        &t.admin,
        "slack",
        json!({ "enabled": true, "webhook_url": format!("{}{SLACK_PATH}", slack.uri()),
                "notify_critical_incidents": false, "notify_sla_warnings": false }),
    )
    .await;
    // Critical, built-in policy: response due in 15 minutes.
    let inc = critical(&app, &t.admin, "Datacenter on fire").await;
    clock.advance(TimeDelta::minutes(16));
    let reqs = wait_for("the breach alert", || async {
        let r = received(&slack).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    let msg: Value = reqs[0].body_json().expect("json");
    let head = header_text(&msg);
    assert!(head.contains("SLA breached"), "{msg:#}");
    assert!(head.contains(inc["incident_number"].as_str().expect("number")));
    assert!(
        msg["blocks"][1]["text"]["text"]
            .as_str()
            .is_some_and(|s| s.contains("response"))
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        received(&slack).await.len(),
        1,
        "no warnings (off), one breach"
    );
}

#[tokio::test]
async fn jira_issue_with_adf_and_basic_auth_is_linked_on_the_incident_and_commented() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let jira = MockServer::start().await;
    let basic = format!("Basic {}", B64.encode("bot@acme.example:jira-token-123"));
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .and(header("authorization", basic.as_str()))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(body_partial_json(json!({
            "fields": {
                "project": { "key": "OPS" },
                "issuetype": { "name": "Bug" },
                "description": { "type": "doc", "version": 1 },
            }
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "10001", "key": "OPS-17", "self": format!("{}/rest/api/3/issue/10001", jira.uri())
        })))
        .expect(1)
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue/OPS-17/comment"))
        .and(header("authorization", basic.as_str()))
        .and(body_partial_json(
            json!({ "body": { "type": "doc", "version": 1 } }),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": "1" })))
        .mount(&jira)
        .await;
    let r = put(
        &app,
        &t.admin,
        "jira",
        json!({
            "enabled": true, "base_url": jira.uri(), "project_key": "OPS",
            "email": "bot@acme.example", "api_token": "jira-token-123",
            "issue_type": "Bug", "triggers": ["critical_incident"],
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["configured"], true);

    app.incident(&t.admin, "Not critical").await;
    let inc = critical(&app, &t.admin, "Payments failing").await;
    let id = inc["id"].as_str().expect("id");

    // The issue: ADF description, summary with the number, labels.
    let created = wait_for("the Jira issue", || async {
        received(&jira)
            .await
            .into_iter()
            .find(|r| r.url.path() == "/rest/api/3/issue")
    })
    .await;
    let body: Value = created.body_json().expect("json");
    let fields = &body["fields"];
    assert_eq!(
        fields["summary"],
        format!(
            "[{}] Payments failing",
            inc["incident_number"].as_str().expect("n")
        )
    );
    let doc = &fields["description"];
    assert_eq!(
        (doc["type"].as_str(), doc["version"].as_i64()),
        (Some("doc"), Some(1))
    );
    assert_eq!(doc["content"][0]["type"], "paragraph");
    assert_eq!(doc["content"][0]["content"][0]["type"], "text");
    assert!(
        doc.to_string().contains("All mail queues are stuck"),
        "the description is in the ADF: {doc}"
    );

    // The link is an event of the incident, shown in its history.
    let linked = wait_for("the link on the incident", || async {
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/incidents/{id}"),
                Some(&t.admin),
                None,
            )
            .await;
        r.body["history"]
            .as_array()
            .and_then(|h| h.iter().find(|e| e["field_name"] == "jira_issue").cloned())
    })
    .await;
    assert_eq!(linked["new_value"], "OPS-17");
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE stream_id = $1::uuid AND event_type = 'IncidentExternalLinked' \
         AND data->>'key' = 'OPS-17' AND metadata->>'actor' = 'system:integration-bus'",
    )
    .bind(id)
    .fetch_one(&app.db.superuser)
    .await
    .expect("count");
    assert_eq!(n, 1);

    // Updates are comments on the issue, in ADF.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/incidents/{id}/start"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let comment = wait_for("the Jira comment", || async {
        received(&jira)
            .await
            .into_iter()
            .find(|r| r.url.path() == "/rest/api/3/issue/OPS-17/comment")
    })
    .await;
    let c: Value = comment.body_json().expect("json");
    assert_eq!(c["body"]["type"], "doc");
    assert!(c.to_string().contains("Work started."), "{c}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let issues = received(&jira)
        .await
        .iter()
        .filter(|r| r.url.path() == "/rest/api/3/issue")
        .count();
    assert_eq!(issues, 1, "one issue, for the critical incident only");
    jira.verify().await;
}

#[tokio::test]
async fn credentials_are_encrypted_at_rest_and_never_returned() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let slack_url = "http://127.0.0.1:9/services/T9/B9/very-secret-slack-token";
    let token = "very-secret-jira-token";
    // Before anything is configured.
    let r = app
        .call(Method::GET, "/api/v1/integrations", Some(&t.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"][0]["kind"], "slack");
    assert_eq!(r.body["data"][0]["configured"], false);
    assert_eq!(r.body["data"][1]["kind"], "jira");
    assert!(r.body["data"][1]["base_url"].is_null());

    let s = put(
        &app,
        &t.admin,
        "slack",
        json!({ "enabled": true, "webhook_url": slack_url }),
    )
    .await;
    let j = put(
        &app,
        &t.admin,
        "jira",
        json!({ "enabled": false, "base_url": "http://127.0.0.1:9", "project_key": "OPS",
                "email": "secret-bot@acme.example", "api_token": token }),
    )
    .await;
    assert_eq!(
        (s.status, j.status),
        (StatusCode::OK, StatusCode::OK),
        "{:?} {:?}",
        s.body,
        j.body
    );
    let list = app
        .call(Method::GET, "/api/v1/integrations", Some(&t.admin), None)
        .await;
    let gs = app
        .call(
            Method::GET,
            "/api/v1/integrations/slack",
            Some(&t.admin),
            None,
        )
        .await;
    let gj = app
        .call(
            Method::GET,
            "/api/v1/integrations/jira",
            Some(&t.admin),
            None,
        )
        .await;
    for r in [&s, &j, &list, &gs, &gj] {
        let text = r.body.to_string();
        for secret in [
            "very-secret",
            "secret-bot",
            "webhook_url",
            "api_token",
            "email",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    assert_eq!(gs.body["configured"], true);
    assert_eq!(gj.body["configured"], true);
    assert_eq!(gj.body["base_url"], "http://127.0.0.1:9");

    // At rest: sealed (AES-256-GCM), nothing in clear.
    let rows =
        sqlx::query("SELECT kind, credentials_enc, settings::text FROM integration_settings")
            .fetch_all(&app.db.superuser)
            .await
            .expect("rows");
    assert_eq!(rows.len(), 2);
    for r in rows {
        let sealed: String = r.get(1);
        let settings: String = r.get(2);
        assert!(sealed.starts_with("v1:"));
        for secret in ["very-secret", "secret-bot"] {
            assert!(!sealed.contains(secret) && !settings.contains(secret));
        }
    }
    // Omitting the credentials keeps them; a new Jira site needs them again.
    let r = put(
        &app,
        &t.admin,
        "slack",
        json!({ "enabled": true, "time_zone": "Europe/Berlin" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["configured"], true);
    let r = put(
        &app,
        &t.admin,
        "jira",
        json!({ "enabled": true, "base_url": "http://127.0.0.2:9", "project_key": "OPS" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("api_token"));
}

#[tokio::test]
async fn integrations_are_tenant_scoped_and_validated() {
    let app = bus_app(&[]).await;
    let a = app.tenant("Acme").await;
    let b = app.tenant("Globex").await;
    let slack = slack_receiver().await;
    put(
        &app,
        &a.admin,
        "slack",
        json!({ "enabled": true, "webhook_url": format!("{}{SLACK_PATH}", slack.uri()) }),
    )
    .await;
    let r = app
        .call(
            Method::GET,
            "/api/v1/integrations/slack",
            Some(&b.admin),
            None,
        )
        .await;
    assert_eq!(
        r.body["configured"], false,
        "another tenant's settings are not visible"
    );
    // Globex's critical incident does not reach Acme's Slack; Acme's does.
    critical(&app, &b.admin, "Globex outage").await;
    let mine = critical(&app, &a.admin, "Acme outage").await;
    wait_for("Acme's message", || async {
        let r = received(&slack).await;
        (!r.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reqs = received(&slack).await;
    assert_eq!(reqs.len(), 1);
    let msg: Value = reqs[0].body_json().expect("json");
    assert!(header_text(&msg).contains(mine["incident_number"].as_str().expect("n")));

    // Validation names the field.
    for (kind, body, field) in [
        (
            "slack",
            json!({ "enabled": true, "time_zone": "Mars/Olympus" }),
            "time_zone",
        ),
        ("slack", json!({ "enabled": true }), "webhook_url"),
        (
            "slack",
            json!({ "enabled": true, "daily_summary_time": "25:00" }),
            "daily_summary_time",
        ),
        (
            "slack",
            json!({ "enabled": true, "daily_summary_time": "9:00" }),
            "daily_summary_time",
        ),
        (
            "slack",
            json!({ "enabled": true, "channel": "#ops" }),
            "channel",
        ),
        (
            "slack",
            json!({ "webhook_url": "https://hooks.slack.com/x" }),
            "enabled",
        ),
        (
            "jira",
            json!({ "enabled": false, "base_url": "http://127.0.0.1:9", "project_key": "ops" }),
            "project_key",
        ),
        (
            "jira",
            json!({ "enabled": false, "base_url": "http://127.0.0.1:9", "project_key": "OPS",
                         "triggers": ["always"] }),
            "triggers[0]",
        ),
        (
            "jira",
            json!({ "enabled": false, "base_url": "http://127.0.0.1:9", "project_key": "OPS",
                         "email": "a@b.c" }),
            "api_token",
        ),
        (
            "jira",
            json!({ "enabled": true, "base_url": "http://127.0.0.1:9", "project_key": "OPS" }),
            "api_token",
        ),
        (
            "jira",
            json!({ "enabled": false, "base_url": "ftp://x", "project_key": "OPS" }),
            "base_url",
        ),
    ] {
        let r = put(&app, &b.admin, kind, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.error_field(), Some(field), "{body}");
    }
    // Admin-only.
    let (_, manager) = app.user(&a.admin, "manager").await;
    let r = app
        .call(Method::GET, "/api/v1/integrations", Some(&manager), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = put(&app, &manager, "slack", json!({ "enabled": false })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_test_mode_key_never_reaches_slack_or_jira() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let slack = slack_receiver().await;
    let jira = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "key": "OPS-1" })))
        .mount(&jira)
        .await;
    put(
        &app,
        &t.admin,
        "slack",
        json!({ "enabled": true, "webhook_url": format!("{}{SLACK_PATH}", slack.uri()) }),
    )
    .await;
    put(
        &app,
        &t.admin,
        "jira",
        json!({ "enabled": true, "base_url": jira.uri(), "project_key": "OPS",
                "email": "a@b.c", "api_token": "t" }),
    )
    .await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&t.admin),
            Some(json!({ "name": "sandbox", "mode": "test" })),
        )
        .await;
    let key = r.body["api_key"].as_str().expect("key").to_owned();
    critical(&app, &key, "Sandbox outage").await;
    let statuses = wait_for("the dry runs", || async {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT target, status FROM bus_deliveries WHERE target IN ('slack', 'jira') ORDER BY target",
        )
        .fetch_all(&app.db.superuser)
        .await
        .expect("rows");
        (rows.len() == 2).then_some(rows)
    })
    .await;
    assert_eq!(
        statuses,
        [
            ("jira".to_owned(), "dry_run".to_owned()),
            ("slack".to_owned(), "dry_run".to_owned())
        ]
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(received(&slack).await.is_empty());
    assert!(received(&jira).await.is_empty());
}

#[tokio::test]
async fn the_notifications_of_one_event_run_concurrently_within_the_5s_budget() {
    let app = bus_app(&[]).await;
    let t = app.tenant("Acme").await;
    let slow = |secs| ResponseTemplate::new(200).set_delay(Duration::from_secs(secs));
    // A webhook receiver that hangs past the budget, Slack and Jira that take 2 s each.
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(slow(30))
        .mount(&hooks)
        .await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(slow(2))
        .mount(&slack)
        .await;
    let jira = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({ "key": "OPS-5" }))
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&jira)
        .await;
    super::webhooks::create_webhook(
        &app,
        &t.admin,
        &format!("{}/hook", hooks.uri()),
        &["IncidentCreated"],
    )
    .await;
    put(
        &app,
        &t.admin,
        "slack",
        json!({ "enabled": true, "webhook_url": format!("{}{SLACK_PATH}", slack.uri()) }),
    )
    .await;
    put(
        &app,
        &t.admin,
        "jira",
        json!({ "enabled": true, "base_url": jira.uri(), "project_key": "OPS",
                "email": "a@b.c", "api_token": "t" }),
    )
    .await;
    let inc = critical(&app, &t.admin, "Everything at once").await;
    let event_id: uuid::Uuid = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE stream_id = $1::uuid AND event_type = 'IncidentCreated'",
    )
    .bind(inc["id"].as_str().expect("id"))
    .fetch_one(&app.db.superuser)
    .await
    .expect("event");
    let rows = wait_for("one attempt per integration", || async {
        let rows = sqlx::query(
            "SELECT d.target, a.started_at, a.latency_ms, a.outcome, a.error \
             FROM bus_delivery_attempts a JOIN bus_deliveries d ON d.id = a.delivery_id \
             WHERE d.event_id = $1 ORDER BY d.target",
        )
        .bind(event_id)
        .fetch_all(&app.db.superuser)
        .await
        .expect("attempts");
        (rows.len() == 3).then_some(rows)
    })
    .await;
    let targets: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(targets, ["jira", "slack", "webhook"]);
    let started: Vec<chrono::DateTime<Utc>> = rows.iter().map(|r| r.get(1)).collect();
    let first = started.iter().min().copied().expect("min");
    let last = started.iter().max().copied().expect("max");
    assert!(
        last - first < TimeDelta::milliseconds(1500),
        "sent concurrently, not one after the other: {started:?}"
    );
    for r in &rows[..2] {
        assert_eq!(r.get::<String, _>(3), "succeeded");
        assert!(
            r.get::<i32, _>(2) >= 1900,
            "the 2 s receivers were waited for"
        );
    }
    // The hanging receiver is cut off at the 5 s budget.
    let hook = &rows[2];
    assert_eq!(hook.get::<String, _>(3), "failed");
    let latency = hook.get::<i32, _>(2);
    assert!(
        (4900..6500).contains(&latency),
        "timed out at 5 s: {latency} ms"
    );
    assert!(
        hook.get::<Option<String>, _>(4)
            .is_some_and(|e| e.contains("timed out")),
        "{:?}",
        hook.get::<Option<String>, _>(4)
    );
}
