//! The audit trail over REST: time travel on incidents, the tenant's event log, streams with
//! their chain verification, and the security log.

use super::app::TestApp;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashSet;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn get(app: &TestApp, token: &str, path: &str) -> super::app::Resp {
    app.call(Method::GET, path, Some(token), None).await
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let r = app.call(Method::POST, path, Some(token), Some(body)).await;
    assert!(r.status.is_success(), "{path}: {:?} {:?}", r.status, r.body);
    r.body
}

#[tokio::test]
async fn as_of_shows_the_incident_exactly_as_it_was_after_each_change() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (agent, agent_token) = app.user(&t.admin, "operator").await;
    let inc = app.incident(&t.admin, "Mail server down").await;
    let id = inc["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/incidents/{id}");
    let before_creation = Utc::now() - chrono::TimeDelta::seconds(60);

    // Every change, then a snapshot of GET /incidents/{id} and the instant right after it.
    let changes: Vec<(&str, String, Value)> = vec![
        (
            "PATCH",
            path.clone(),
            json!({"title": "Mail server down (EU)"}),
        ),
        (
            "POST",
            format!("{path}/assign"),
            json!({"assignee_id": agent}),
        ),
        ("POST", format!("{path}/start"), json!({})),
        (
            "POST",
            format!("{path}/work-notes"),
            json!({"content": "looking at the MTA queue", "is_public": false}),
        ),
        (
            "POST",
            format!("{path}/work-notes"),
            json!({"content": "we are on it", "is_public": true}),
        ),
        (
            "POST",
            format!("{path}/hold"),
            json!({"reason": "awaiting_vendor", "comment": "ticket with the ISP"}),
        ),
        ("POST", format!("{path}/resume"), json!({})),
        (
            "PATCH",
            path.clone(),
            json!({"impact": "high", "urgency": "high"}),
        ),
        (
            "POST",
            format!("{path}/resolve"),
            json!({"resolution": "restarted the MTA"}),
        ),
        (
            "POST",
            format!("{path}/reopen"),
            json!({"reason": "still bouncing"}),
        ),
    ];
    let mut snapshots = vec![(get(&app, &t.admin, &path).await.body, Utc::now())];
    for (method, p, body) in &changes {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let r = app
            .call(method, p, Some(&agent_token), Some(body.clone()))
            .await;
        assert!(r.status.is_success(), "{p}: {:?} {:?}", r.status, r.body);
        let now = get(&app, &t.admin, &path).await;
        assert_eq!(now.status, StatusCode::OK);
        snapshots.push((now.body, Utc::now()));
        // The next change is recorded strictly after the snapshot's instant.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(snapshots.len(), changes.len() + 1);
    for (i, (expected, at)) in snapshots.iter().enumerate() {
        let r = get(&app, &t.admin, &format!("{path}?as_of={}", rfc3339(*at))).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(&r.body, expected, "state after change {i}");
        assert_eq!(
            r.header("etag"),
            Some(format!("\"{}\"", expected["version"]).as_str()),
        );
    }
    // Before it existed: 404. A malformed instant or an unknown parameter: 422 naming it.
    let r = get(
        &app,
        &t.admin,
        &format!("{path}?as_of={}", rfc3339(before_creation)),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get(&app, &t.admin, &format!("{path}?as_of=yesterday")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("as_of"));
    let r = get(&app, &t.admin, &format!("{path}?at=2026-01-01T00:00:00Z")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("at"));

    // A requester sees only their own incidents, in the past as now; another tenant nothing.
    let (_, requester) = app.user(&t.admin, "user").await;
    let at = rfc3339(snapshots[3].1);
    let r = get(&app, &requester, &format!("{path}?as_of={at}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let other = app.tenant("Other").await;
    let r = get(&app, &other.admin, &format!("{path}?as_of={at}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Private notes are hidden from a requester's view of their own incident's past too.
    let own = app.incident(&requester, "My laptop").await;
    let own_path = format!("/api/v1/incidents/{}", own["id"].as_str().expect("id"));
    post(
        &app,
        &agent_token,
        &format!("{own_path}/work-notes"),
        json!({"content": "internal only", "is_public": false}),
    )
    .await;
    let r = get(
        &app,
        &requester,
        &format!("{own_path}?as_of={}", rfc3339(Utc::now())),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["work_notes"], json!([]));
    app.stop().await;
}

/// Walks every page of a listing by cursor.
async fn walk(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut url = format!("{path}{sep}limit=3&cursor=");
    loop {
        let r = get(app, token, &url).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {:?}", r.body);
        out.extend(r.body["data"].as_array().expect("data").iter().cloned());
        match r.body["pagination"]["next_cursor"].as_str() {
            Some(c) => url = format!("{path}{sep}limit=3&cursor={c}"),
            None => return out,
        }
    }
}

#[tokio::test]
async fn the_event_log_is_listed_per_tenant_with_filters_and_stable_cursors() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (agent, agent_token) = app.user(&t.admin, "operator").await;
    let a = app.incident(&agent_token, "Printer on fire").await;
    let b = app.incident(&t.admin, "VPN flaps").await;
    let a_id = a["id"].as_str().expect("id");
    post(
        &app,
        &agent_token,
        &format!("/api/v1/incidents/{a_id}/start"),
        json!({}),
    )
    .await;
    app.incident(&other.admin, "Other tenant's incident").await;
    // Listings show events below the horizon only: wait until every event of the tenant has
    // passed it (another test's open transaction can hold it back for a moment).
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1")
        .bind(t.id.0)
        .fetch_one(&app.db.superuser)
        .await
        .expect("count");
    for _ in 0..500 {
        let r = get(&app, &t.admin, "/api/v1/audit/events?limit=1").await;
        if r.body["pagination"]["total_items"].as_i64() == Some(stored) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Everything of the tenant, newest first, no other tenant's event, no duplicates.
    let all = walk(&app, &t.admin, "/api/v1/audit/events").await;
    assert!(all.len() >= 10, "{}", all.len());
    let ids: HashSet<&str> = all
        .iter()
        .map(|e| e["event_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), all.len(), "a cursor walk repeats no event");
    let keys: Vec<(i64, i64)> = all
        .iter()
        .map(|e| {
            (
                e["transaction_id"].as_i64().expect("txid"),
                e["position"].as_i64().expect("pos"),
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert!(all.iter().all(|e| e["stream_id"] != other.id.0.to_string()));
    assert!(
        !all.iter()
            .any(|e| e["data"]["title"] == "Other tenant's incident")
    );
    // Password hashes never leave the server.
    let registered: Vec<&Value> = all
        .iter()
        .filter(|e| e["event_type"] == "UserRegistered")
        .collect();
    assert!(!registered.is_empty());
    for e in &registered {
        assert_eq!(e["data"]["password_hash"], "[redacted]", "{e}");
    }

    // One stream: its events only, newest first, each with actor and request id.
    let stream = walk(
        &app,
        &t.admin,
        &format!("/api/v1/audit/events?stream_id={a_id}"),
    )
    .await;
    let versions: Vec<i64> = stream
        .iter()
        .map(|e| e["version"].as_i64().expect("v"))
        .collect();
    let head = versions[0];
    assert_eq!(versions, (1..=head).rev().collect::<Vec<_>>());
    let created = stream.last().expect("first event");
    assert_eq!(created["event_type"], "IncidentCreated");
    assert_eq!(created["actor"], format!("user:{agent}"));
    assert!(created["request_id"].is_string(), "{created}");

    // By type, by actor (prefixed or bare id), by time.
    let r = get(
        &app,
        &t.admin,
        "/api/v1/audit/events?type=IncidentCreated&limit=100",
    )
    .await;
    let titles: HashSet<&str> = r.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["data"]["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles, HashSet::from(["Printer on fire", "VPN flaps"]));
    assert_eq!(r.body["pagination"]["total_items"], 2);
    for actor in [format!("user:{agent}"), agent.to_string()] {
        let r = get(
            &app,
            &t.admin,
            &format!("/api/v1/audit/events?actor={actor}&type=IncidentCreated"),
        )
        .await;
        assert_eq!(r.body["pagination"]["total_items"], 1, "{actor}");
        assert_eq!(r.body["data"][0]["stream_id"], a_id);
    }
    let b_at: DateTime<Utc> = b["created_at"].as_str().expect("t").parse().expect("t");
    let r = get(
        &app,
        &t.admin,
        &format!(
            "/api/v1/audit/events?type=IncidentCreated&since={}",
            rfc3339(b_at)
        ),
    )
    .await;
    assert_eq!(r.body["data"].as_array().expect("data").len(), 1);
    assert_eq!(r.body["data"][0]["data"]["title"], "VPN flaps");
    let r = get(
        &app,
        &t.admin,
        &format!(
            "/api/v1/audit/events?type=IncidentCreated&until={}",
            rfc3339(b_at)
        ),
    )
    .await;
    assert_eq!(r.body["data"][0]["data"]["title"], "Printer on fire");

    // Bad input names the parameter.
    for (q, field) in [
        ("since=soon", "since"),
        ("stream_id=nope", "stream_id"),
        ("limit=1000", "limit"),
        ("colour=red", "colour"),
        ("cursor=garbage", "cursor"),
    ] {
        let r = get(&app, &t.admin, &format!("/api/v1/audit/events?{q}")).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert_eq!(r.error_field(), Some(field), "{q}");
    }
    // audit:read is an admin's: an operator is refused.
    let r = get(&app, &agent_token, "/api/v1/audit/events").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn a_stream_shows_its_chain_and_tampering_is_reported() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let inc = app.incident(&t.admin, "Disk full").await;
    let id = inc["id"].as_str().expect("id");
    let path = format!("/api/v1/audit/streams/{id}");
    let r = get(&app, &t.admin, &path).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["stream"]["stream_type"], "incident");
    assert_eq!(r.body["chain_verified"], true);
    assert!(r.body["chain_fault"].is_null());
    let head = r.body["stream"]["head_version"].as_i64().expect("head");
    let versions: Vec<i64> = r.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["version"].as_i64().expect("v"))
        .collect();
    assert_eq!(versions, (1..=head).collect::<Vec<_>>());
    assert_eq!(r.body["pagination"]["total_items"], head);
    // Another tenant's stream, or no stream: 404.
    assert_eq!(
        get(&app, &other.admin, &path).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, &t.admin, "/api/v1/audit/streams/not-a-uuid")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // A superuser rewrites the title in the stored event: the chain no longer verifies.
    let su = &app.db.superuser;
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
        .execute(su)
        .await
        .expect("disable");
    sqlx::query(
        "UPDATE events SET data = jsonb_set(data, '{title}', '\"Nothing happened\"') \
         WHERE stream_id = $1::uuid AND version = 1",
    )
    .bind(id)
    .execute(su)
    .await
    .expect("tamper");
    let r = get(&app, &t.admin, &path).await;
    assert_eq!(r.body["chain_verified"], false);
    let fault = r.body["chain_fault"].as_str().expect("fault");
    assert!(fault.contains("version 1"), "{fault}");
    app.stop().await;
}

#[tokio::test]
async fn the_security_log_shows_logins_denials_and_key_changes() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (viewer_id, viewer) = app.user(&t.admin, "viewer").await;
    // A failed login, a denial, a key created.
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "nobody_here", "password": "wrong-password-1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&viewer),
            Some(json!({"title": "x", "impact": "low", "urgency": "low"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let key = post(
        &app,
        &t.admin,
        "/api/v1/api-keys",
        json!({"name": "ci", "permissions": ["incident:read"]}),
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..500 {
        let r = get(&app, &t.admin, "/api/v1/security/events?limit=100").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        seen = r.body["data"].as_array().expect("data").clone();
        // Listings show only events below the horizon: wait until all three are there.
        let has = |t: &str| seen.iter().any(|e| e["event_type"] == t);
        if has("PermissionDenied") && has("ApiKeyCreated") && has("LoginSucceeded") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let types: HashSet<&str> = seen
        .iter()
        .map(|e| e["event_type"].as_str().expect("type"))
        .collect();
    assert!(types.contains("LoginSucceeded"), "{types:?}");
    assert!(types.contains("ApiKeyCreated"), "{types:?}");
    let denied = seen
        .iter()
        .find(|e| e["event_type"] == "PermissionDenied")
        .expect("denial recorded");
    assert_eq!(denied["actor"], format!("user:{viewer_id}"));
    assert_eq!(denied["data"]["permission"], "incident:create");
    assert_eq!(denied["data"]["route"], "/api/v1/incidents");
    assert!(seen.iter().all(|e| e["stream_type"] == "security"));
    assert!(key["id"].is_string());
    // Filters apply; the other tenant's log holds none of this; a viewer may not read it.
    let r = get(
        &app,
        &t.admin,
        "/api/v1/security/events?type=PermissionDenied",
    )
    .await;
    assert_eq!(r.body["pagination"]["total_items"], 1);
    let r = get(&app, &other.admin, "/api/v1/security/events?limit=100").await;
    assert!(
        r.body["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|e| e["event_type"] != "PermissionDenied" && e["event_type"] != "ApiKeyCreated")
    );
    let r = get(&app, &viewer, "/api/v1/security/events").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = get(&app, &t.admin, "/api/v1/security/events?stream_id=x").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("stream_id"));
    app.stop().await;
}

#[tokio::test]
async fn the_server_takes_chained_tenant_checkpoints_periodically() {
    use eventdesk_store::checkpoint::{load_checkpoints, verify_tenant_checkpoints};
    let app = TestApp::spawn_with(&[("EVENTDESK_CHECKPOINT_INTERVAL_SECS", "1")]).await;
    let t = app.tenant("Acme").await;
    app.incident(&t.admin, "First").await;
    let su = app.db.superuser.clone();
    let events = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE tenant_id = $1")
            .bind(t.id.0)
            .fetch_one(&pool)
            .await
            .expect("count")
    };
    // The first pass after the tenant's events covers all of them.
    let covered = |n: i64| {
        let su = su.clone();
        async move {
            for _ in 0..200 {
                let cps = load_checkpoints(&su, Some(t.id)).await.expect("load");
                if cps.last().is_some_and(|c| c.event_count >= n) {
                    return cps;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("no checkpoint covering {n} events");
        }
    };
    let first = covered(events(su.clone()).await).await;
    app.incident(&t.admin, "Second").await;
    let second = covered(events(su.clone()).await).await;
    assert!(second.len() > first.len());
    // Chained: each names its predecessor's digest; all verify against the log.
    for w in second.windows(2) {
        assert_eq!(w[1].previous_digest, w[0].digest);
    }
    assert_eq!(second[0].previous_digest, [0u8; 32]);
    assert!(
        verify_tenant_checkpoints(&su, t.id)
            .await
            .expect("verify")
            .is_empty()
    );
    // A pass with nothing new stores nothing (several nodes may run it).
    let c = eventdesk_workers::Checkpointer::new(su.clone(), std::time::Duration::from_secs(3600));
    let settled = c.run_once().await.expect("pass");
    let again = c.run_once().await.expect("pass");
    assert_eq!(again.taken, 0, "{settled:?} then {again:?}");
    assert!(again.tenants >= 1);
    app.stop().await;
}
