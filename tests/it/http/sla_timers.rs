//! SLA timers end to end: timers started with the incident, the timer endpoints, the
//! scheduler's exactly-once warnings and breaches (several schedulers, a restart after a
//! missed threshold), pause over HTTP, and the timer projection rebuilt from zero.

use super::app::{ManualClock, TestApp};
use chrono::{DateTime, TimeDelta, Utc};
use eventdesk_commands::Clock;
use eventdesk_store::{EventStore, PgEventStore, Upcasters};
use eventdesk_workers::{SchedulerConfig, SlaRulesCache, SlaScheduler};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

/// An app whose own scheduler is off (the test drives schedulers itself), on a manual clock.
async fn app(clock: &ManualClock) -> TestApp {
    TestApp::spawn_with_clock(
        &[("EVENTDESK_SLA_SCHEDULER", "false")],
        Arc::new(clock.clone()),
    )
    .await
}

/// A scheduler on the test database (superuser pool: it bypasses RLS as the system role does).
fn scheduler(app: &TestApp, clock: &ManualClock) -> SlaScheduler {
    let pool = app.db.superuser.clone();
    SlaScheduler::new(
        pool.clone(),
        PgEventStore::new(pool, Upcasters::new()),
        Arc::new(clock.clone()),
        SlaRulesCache::default(),
        SchedulerConfig::default(),
    )
}

/// Now, to the millisecond (the read models keep microseconds; events keep nanoseconds).
fn now() -> DateTime<Utc> {
    chrono::SubsecRound::trunc_subsecs(Utc::now(), 3)
}

fn ts(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
}

/// Creates a high-priority incident (built-in policy: response 1 h, resolution 8 h, 24x7).
async fn high_incident(app: &TestApp, token: &str) -> Value {
    let r = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(token),
            Some(json!({"title": "VPN down", "priority": "high"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

/// Waits until the `sla_timers` projection has the incident's deadlines.
async fn wait_for_deadlines(app: &TestApp, incident: Uuid, n: i64) {
    for _ in 0..300 {
        let c: i64 =
            sqlx::query_scalar("SELECT count(*) FROM sla_deadlines WHERE incident_id = $1")
                .bind(incident)
                .fetch_one(&app.db.superuser)
                .await
                .expect("count");
        if c == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("deadlines of {incident} never reached {n}");
}

/// The SLA events of an incident: (type, metric, threshold, crossed_at).
async fn sla_events(app: &TestApp, incident: Uuid) -> Vec<(String, String, i64, DateTime<Utc>)> {
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_type, data FROM events WHERE stream_id = $1 \
         AND event_type IN ('SlaWarningIssued', 'SlaBreached') ORDER BY global_position",
    )
    .bind(incident)
    .fetch_all(&app.db.superuser)
    .await
    .expect("events");
    rows.into_iter()
        .map(|(t, d)| {
            let threshold = d["threshold"].as_i64().unwrap_or(100);
            (
                t,
                d["metric"].as_str().unwrap_or_default().to_owned(),
                threshold,
                ts(&d["crossed_at"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn creation_starts_timers_and_the_endpoints_show_them() {
    let clock = ManualClock::at(now());
    let app = app(&clock).await;
    let t = app.tenant("Acme").await;
    // Log everyone in before the clock moves (tokens are checked against the real time).
    let other = app.tenant("Other").await;
    let (_, operator) = app.user(&t.admin, "operator").await;
    let created = clock.now();
    let inc = high_incident(&app, &t.admin).await;
    let id = inc["id"].as_str().expect("id");
    // The incident itself carries the due times.
    let due_response = ts(&inc["response_due_at"]);
    let due_resolution = ts(&inc["resolution_due_at"]);
    assert_eq!(due_response, created + TimeDelta::hours(1));
    assert_eq!(due_resolution, created + TimeDelta::hours(8));

    // 30 minutes later: half of the response target.
    clock.advance(TimeDelta::minutes(30));
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/incidents/{id}/sla"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let resp = &r.body["response"];
    assert_eq!(resp["stage"], "in_progress");
    assert_eq!(resp["cycle"], 1);
    assert_eq!(resp["target_seconds"], 3600);
    assert_eq!(resp["business_elapsed_seconds"], 1800);
    assert_eq!(resp["business_remaining_seconds"], 1800);
    assert_eq!(resp["percent"], 50);
    assert_eq!(resp["breached"], false);
    assert_eq!(ts(&resp["due_at"]), due_response);
    assert_eq!(ts(&r.body["resolution"]["due_at"]), due_resolution);

    // Another tenant: 404, and its timer list is empty.
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/incidents/{id}/sla"),
            Some(&other.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(Method::GET, "/api/v1/sla/timers", Some(&other.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(0));

    // The list: both timers active; none at risk yet.
    let r = app
        .call(
            Method::GET,
            "/api/v1/sla/timers?state=active",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["pagination"]["total_items"], 2);
    assert_eq!(r.body["data"][0]["metric"], "response");
    assert_eq!(r.body["data"][0]["incident_number"], inc["incident_number"]);
    let r = app
        .call(
            Method::GET,
            "/api/v1/sla/timers?state=soon",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("state"));
    // Operators do not manage SLAs, but see their incidents' SLA.
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/incidents/{id}/sla"),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn warnings_and_breaches_fire_exactly_once_with_several_schedulers() {
    let clock = ManualClock::at(now());
    let app = app(&clock).await;
    let t = app.tenant("Acme").await;
    let created = clock.now();
    let inc = high_incident(&app, &t.admin).await;
    let id: Uuid = inc["id"].as_str().expect("id").parse().expect("uuid");
    wait_for_deadlines(&app, id, 8).await;

    // Past the response breach (1 h) and 50 % of the resolution (4 h) at once.
    clock.advance(TimeDelta::hours(4) + TimeDelta::seconds(1));
    let schedulers: Vec<SlaScheduler> = (0..3).map(|_| scheduler(&app, &clock)).collect();
    let sweeps = schedulers.iter().map(|s| s.sweep());
    for r in futures::future::join_all(sweeps).await {
        r.expect("sweep");
    }
    // And again, sequentially: nothing new.
    for s in &schedulers {
        s.sweep().await.expect("sweep");
    }
    let events = sla_events(&app, id).await;
    let expect = |ty: &str, metric: &str, th: i64, secs: i64| {
        (
            ty.to_owned(),
            metric.to_owned(),
            th,
            created + TimeDelta::seconds(secs),
        )
    };
    let mut got = events.clone();
    got.sort_by_key(|e| (e.1.clone(), e.2));
    assert_eq!(
        got,
        vec![
            expect("SlaWarningIssued", "resolution", 50, 4 * 3600),
            expect("SlaWarningIssued", "response", 50, 1800),
            expect("SlaWarningIssued", "response", 75, 2700),
            expect("SlaWarningIssued", "response", 90, 3240),
            expect("SlaBreached", "response", 100, 3600),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_scheduler_that_was_down_catches_up_once_with_the_real_crossing_times() {
    let clock = ManualClock::at(now());
    let app = app(&clock).await;
    let t = app.tenant("Acme").await;
    let created = clock.now();
    let inc = high_incident(&app, &t.admin).await;
    let id: Uuid = inc["id"].as_str().expect("id").parse().expect("uuid");
    let token = t.admin.clone();
    // Respond at once so that only the resolution timer runs.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/incidents/{id}/start"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    wait_for_deadlines(&app, id, 4).await;

    // A scheduler runs, finds nothing due, and dies.
    let first = scheduler(&app, &clock);
    assert_eq!(first.sweep().await.expect("sweep").recorded, 0);
    drop(first);
    // While no scheduler runs, the clock passes 50 %, 75 % and 90 % (7 h 12 min).
    clock.advance(TimeDelta::hours(7) + TimeDelta::minutes(30));
    // Restart: each crossing is recorded once, stamped when it really happened.
    let second = scheduler(&app, &clock);
    assert_eq!(second.sweep().await.expect("sweep").recorded, 3);
    assert_eq!(second.sweep().await.expect("sweep").recorded, 0);
    let events = sla_events(&app, id).await;
    let mut crossings: Vec<(i64, DateTime<Utc>)> = events.iter().map(|e| (e.2, e.3)).collect();
    crossings.sort();
    assert_eq!(
        crossings,
        vec![
            (50, created + TimeDelta::hours(4)),
            (75, created + TimeDelta::hours(6)),
            (90, created + TimeDelta::minutes(7 * 60 + 12)),
        ]
    );
    // The list shows it at risk once the projection has applied all three crossings (it may
    // apply them in more than one batch: at 75 % the timer is already at risk).
    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        let r = app
            .call(
                Method::GET,
                "/api/v1/sla/timers?state=at_risk",
                Some(&token),
                None,
            )
            .await;
        if r.body["pagination"]["total_items"] == 1 && r.body["data"][0]["last_threshold"] == 90 {
            assert_eq!(r.body["data"][0]["metric"], "resolution");
            app.stop().await;
            return;
        }
        last = r.body;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the timer never showed as at risk past 90 %: {last}");
}

#[tokio::test]
async fn a_hold_pauses_the_timer_and_moves_the_due_time() {
    let clock = ManualClock::at(now());
    let app = app(&clock).await;
    let t = app.tenant("Acme").await;
    let created = clock.now();
    let inc = high_incident(&app, &t.admin).await;
    let id = inc["id"].as_str().expect("id").to_owned();
    let call = |path: String, body: Option<Value>| {
        let app = &app;
        let token = t.admin.clone();
        async move { app.call(Method::POST, &path, Some(&token), body).await }
    };
    let r = call(format!("/api/v1/incidents/{id}/start"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    clock.advance(TimeDelta::hours(1));
    let r = call(
        format!("/api/v1/incidents/{id}/hold"),
        Some(json!({"reason": "awaiting_vendor"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    clock.advance(TimeDelta::hours(3));
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/incidents/{id}/sla"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.body["resolution"]["stage"], "paused");
    assert_eq!(r.body["resolution"]["business_elapsed_seconds"], 3600);
    assert_eq!(r.body["resolution"]["pause_duration_seconds"], 3 * 3600);
    // Nothing fires while paused, even past the original 50 %.
    clock.advance(TimeDelta::hours(1));
    let s = scheduler(&app, &clock);
    s.sweep().await.expect("sweep");
    let r = call(format!("/api/v1/incidents/{id}/resume"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Paused 4 h on 24x7: due moves from +8 h to +12 h.
    assert_eq!(
        ts(&r.body["resolution_due_at"]),
        created + TimeDelta::hours(12)
    );
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/incidents/{id}/sla"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.body["resolution"]["stage"], "in_progress");
    assert_eq!(
        ts(&r.body["resolution"]["original_due_at"]),
        created + TimeDelta::hours(8)
    );
    assert_eq!(r.body["resolution"]["paused_business_seconds"], 4 * 3600);
    let uuid: Uuid = id.parse().expect("uuid");
    assert!(
        sla_events(&app, uuid)
            .await
            .iter()
            .all(|e| e.1 == "response"),
        "no resolution threshold fired while paused"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_timer_projection_rebuilt_from_zero_equals_the_live_one() {
    let clock = ManualClock::at(now());
    let app = app(&clock).await;
    let t = app.tenant("Acme").await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let inc = high_incident(&app, &t.admin).await;
        let id = inc["id"].as_str().expect("id").to_owned();
        if i % 2 == 0 {
            let r = app
                .call(
                    Method::POST,
                    &format!("/api/v1/incidents/{id}/start"),
                    Some(&t.admin),
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK);
        }
        if i % 2 == 0 && i % 3 == 0 {
            let r = app
                .call(
                    Method::POST,
                    &format!("/api/v1/incidents/{id}/resolve"),
                    Some(&t.admin),
                    Some(json!({"resolution": "fixed"})),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
        ids.push(id);
        clock.advance(TimeDelta::minutes(45));
    }
    let s = scheduler(&app, &clock);
    s.sweep().await.expect("sweep");
    // Let the live projection catch up with everything.
    let snapshot = |pool: sqlx::PgPool| async move {
        let rows: Vec<(Uuid, String, i32, String, Value, i64)> = sqlx::query_as(
            "SELECT incident_id, metric, cycle, stage, state, version FROM rm_sla_timers \
             ORDER BY incident_id, metric, cycle",
        )
        .fetch_all(&pool)
        .await
        .expect("timers");
        let deadlines: Vec<(Uuid, String, i16, DateTime<Utc>)> = sqlx::query_as(
            "SELECT incident_id, metric, threshold, due_at FROM sla_deadlines \
             ORDER BY incident_id, metric, threshold",
        )
        .fetch_all(&pool)
        .await
        .expect("deadlines");
        (rows, deadlines)
    };
    let head: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&app.db.superuser)
        .await
        .expect("head");
    for _ in 0..500 {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT last_position FROM projection_checkpoints WHERE name = 'sla_timers'",
        )
        .fetch_optional(&app.db.superuser)
        .await
        .expect("checkpoint");
        if at >= Some(head) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let live = snapshot(app.db.superuser.clone()).await;
    assert!(!live.0.is_empty());
    // Rebuild from zero into the (emptied) tables with the projection alone.
    let pool = app.db.superuser.clone();
    sqlx::query("TRUNCATE rm_sla_timers, sla_deadlines, sla_refresh_queue")
        .execute(&pool)
        .await
        .expect("truncate");
    let store = PgEventStore::new(pool.clone(), Upcasters::new());
    let events = store
        .read_all(eventdesk_store::Checkpoint::START, 100_000)
        .await
        .expect("read all");
    let projection = eventdesk_projections::SlaTimerProjection;
    // In small batches, to cross batch boundaries mid-stream.
    for chunk in events.chunks(3) {
        let mut tx = pool.begin().await.expect("tx");
        eventdesk_projections::Projection::apply(&projection, &mut tx, chunk)
            .await
            .expect("apply");
        tx.commit().await.expect("commit");
    }
    let rebuilt = snapshot(pool).await;
    assert_eq!(live, rebuilt);
    app.stop().await;
}

#[tokio::test]
async fn a_new_policy_recomputes_the_open_incidents_from_their_start() {
    // The app's own scheduler runs here: it applies the policy change.
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let inc = high_incident(&app, &t.admin).await;
    let id = inc["id"].as_str().expect("id").to_owned();
    let created = ts(&inc["created_at"]);
    assert_eq!(ts(&inc["resolution_due_at"]), created + TimeDelta::hours(8));
    let r = app
        .call(
            Method::POST,
            "/api/v1/sla/policies",
            Some(&t.admin),
            Some(json!({
                "name": "Fast desk",
                "rank": 1,
                "targets": [{"priority": "high", "response_minutes": 20, "resolution_minutes": 120}]
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let policy = r.body["id"].clone();
    for _ in 0..500 {
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/incidents/{id}/sla"),
                Some(&t.admin),
                None,
            )
            .await;
        if r.body["resolution"]["policy_id"] == policy {
            // From the timer's start, not from the change: created + 2 h.
            assert_eq!(
                ts(&r.body["resolution"]["due_at"]),
                created + TimeDelta::hours(2)
            );
            assert_eq!(r.body["resolution"]["target_seconds"], 7200);
            assert_eq!(
                ts(&r.body["resolution"]["original_due_at"]),
                created + TimeDelta::hours(8)
            );
            assert_eq!(
                ts(&r.body["response"]["due_at"]),
                created + TimeDelta::minutes(20)
            );
            // The incidents projection applies the same events on its own schedule.
            let mut due = None;
            for _ in 0..500 {
                let d = app
                    .call(
                        Method::GET,
                        &format!("/api/v1/incidents/{id}"),
                        Some(&t.admin),
                        None,
                    )
                    .await;
                due = Some(ts(&d.body["resolution_due_at"]));
                if due == Some(created + TimeDelta::hours(2)) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            assert_eq!(due, Some(created + TimeDelta::hours(2)));
            app.stop().await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the open incident was never recomputed under the new policy");
}
