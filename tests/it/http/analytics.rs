//! Analytics end to end (issue #5): one known scenario on a manual clock — incidents across
//! priorities, teams and categories, with responses, a hold, resolutions, closures, a reopen,
//! a cancellation and breaches, under a business-hours policy and the built-in 24x7 one — and
//! every figure of every endpoint checked against values computed by hand (the arithmetic is
//! in the comments). Also: another tenant's incidents are never counted, the filters, the 422s
//! and the 403 of a role without `analytics:read`.
//!
//! The timeline (UTC; T0 = Monday 2026-03-02 09:00). Team A has a policy on the "Office"
//! calendar (Mon–Fri 09:00–17:00 UTC): critical 30 min / 4 h, high 60 min / 8 h, medium 2 h /
//! 16 h, low 4 h / 24 h. Everything else gets the built-in 24x7 policy (critical 15 min / 4 h,
//! high 1 h / 8 h, medium 4 h / 24 h, low 8 h / 72 h).
//!
//! | incident | priority | team | category | created | then |
//! |---|---|---|---|---|---|
//! | I1 | critical | A | X | Mon 09:00 | assign 09:10, start 09:20, hold 10:00–11:00, resolve 12:00, close 13:00 |
//! | I7 | medium | A | Y | Mon 09:30 | cancelled 09:45 |
//! | I3 | medium | B | X | Mon 10:00 | public agent note 10:30 (response), start 11:00, resolve Tue 09:00 |
//! | I4 | low | B | Y | Mon 11:00 | assign 12:00, on hold from 13:00 (still) |
//! | I2 | high | A | Y | Mon 16:00 | assign Tue 09:30, start 10:00, resolve 15:00, reopen 19:00, resolve Wed 10:00, close 11:00 |
//! | I8 | low | B | X | Tue 14:00 | untouched |
//! | I5 | high | — | — | Wed 09:00 | untouched |
//! | I6 | critical | A | X | Wed 10:00 | assign 10:05, start 10:10 |
//!
//! The other tenant: O1 (critical) created Mon 09:00, started 09:05, resolved 09:30.
//! At Wed 13:30 (= now for every query) the SLA scheduler records the thresholds crossed.

use super::app::{ManualClock, Resp, TestApp};
use chrono::{DateTime, TimeDelta, Utc};
use eventdesk_commands::Clock;
use eventdesk_store::{PgEventStore, Upcasters};
use eventdesk_workers::{SchedulerConfig, SlaRulesCache, SlaScheduler};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

const T0: &str = "2026-03-02T09:00:00Z";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(T0)
        .expect("T0")
        .with_timezone(&Utc)
}

/// Moves the clock to T0 + `d` + `h` hours + `m` minutes (`d` = 0 is Monday).
fn set(clock: &ManualClock, d: i64, h: i64, m: i64) {
    let target = t0() + TimeDelta::days(d) + TimeDelta::hours(h - 9) + TimeDelta::minutes(m);
    clock.advance(target - clock.now());
}

struct Ctx {
    app: TestApp,
    admin: String,
}

impl Ctx {
    async fn post(&self, path: &str, body: Value) -> Value {
        post_as(&self.app, &self.admin, path, body).await
    }

    async fn get(&self, path: &str) -> Resp {
        self.app
            .call(Method::GET, path, Some(&self.admin), None)
            .await
    }

    async fn ok(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
        r.body
    }

    async fn incident(&self, priority: &str, team: Option<&str>, category: Option<&str>) -> String {
        incident_as(&self.app, &self.admin, priority, team, category).await
    }

    async fn act(&self, id: &str, action: &str, body: Value) {
        self.post(&format!("/api/v1/incidents/{id}/{action}"), body)
            .await;
    }
}

async fn post_as(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let r = app.call(Method::POST, path, Some(token), Some(body)).await;
    assert!(r.status.is_success(), "POST {path}: {:?}", r.body);
    r.body
}

async fn incident_as(
    app: &TestApp,
    token: &str,
    priority: &str,
    team: Option<&str>,
    category: Option<&str>,
) -> String {
    let mut body = json!({"title": format!("{priority} incident"), "priority": priority});
    if let Some(t) = team {
        body["team_id"] = json!(t);
    }
    if let Some(c) = category {
        body["category_id"] = json!(c);
    }
    let b = post_as(app, token, "/api/v1/incidents", body).await;
    b["id"].as_str().expect("id").to_owned()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Waits until the `analytics` projection has applied every event in the log.
async fn wait_analytics(app: &TestApp) {
    for _ in 0..750 {
        let done: Option<bool> = sqlx::query_scalar(
            "SELECT c.last_position IS NOT NULL AND NOT EXISTS (SELECT 1 FROM events e \
               WHERE (e.transaction_id, e.global_position) > (c.last_txid, c.last_position)) \
             FROM (SELECT 1) x LEFT JOIN projection_checkpoints c ON c.name = 'analytics'",
        )
        .fetch_one(&app.db.superuser)
        .await
        .expect("checkpoint");
        if done == Some(true) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the analytics projection never caught up");
}

/// Sorts `(id, …)` pairs by id the way the API does (ids ascending, `null` last).
fn by_id(mut v: Vec<(Option<String>, Value)>) -> Vec<Value> {
    v.sort_by(|a, b| match (&a.0, &b.0) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    v.into_iter().map(|x| x.1).collect()
}

fn stats(count: i64, mean: Option<f64>, median: Option<f64>) -> Value {
    json!({"count": count, "mean_seconds": mean, "median_seconds": median})
}

fn none() -> Value {
    stats(0, None, None)
}

/// The same figures for wall and business time.
fn both(count: i64, mean: f64, median: f64) -> Value {
    json!({"wall": stats(count, Some(mean), Some(median)), "business": stats(count, Some(mean), Some(median))})
}

fn comp(completed: i64, breached: i64) -> Value {
    let met = completed - breached;
    let pct = (completed > 0).then(|| met as f64 * 100.0 / completed as f64);
    json!({"completed": completed, "met": met, "breached": breached, "compliance_percent": pct})
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

#[tokio::test]
async fn every_figure_of_a_known_scenario_is_exact() {
    let clock = ManualClock::at(chrono::SubsecRound::trunc_subsecs(Utc::now(), 0));
    let app = TestApp::spawn_with_clock(
        &[("EVENTDESK_SLA_SCHEDULER", "false")],
        Arc::new(clock.clone()),
    )
    .await;
    // Everyone logs in at the real time (tokens are checked against it); the clock moves
    // afterwards.
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (agent1, operator) = app.user(&t.admin, "operator").await;
    let (agent2, _) = app.user(&t.admin, "operator").await;
    let (_, viewer) = app.user(&t.admin, "viewer").await;
    let (agent1, agent2) = (agent1.to_string(), agent2.to_string());
    let c = Ctx {
        app,
        admin: t.admin.clone(),
    };
    let a = id(&c.post("/api/v1/teams", json!({"name": "Network"})).await);
    let b = id(&c.post("/api/v1/teams", json!({"name": "Desk"})).await);
    let x = id(&c
        .post("/api/v1/categories", json!({"name": "Hardware"}))
        .await);
    let y = id(&c
        .post("/api/v1/categories", json!({"name": "Software"}))
        .await);
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday"];
    let cal = id(&c
        .post(
            "/api/v1/sla/calendars",
            json!({
                "name": "Office",
                "time_zone": "UTC",
                "weekly_hours": days.iter().map(|d| json!({"day": d, "start": "09:00", "end": "17:00"})).collect::<Vec<_>>(),
            }),
        )
        .await);
    c.post(
        "/api/v1/sla/policies",
        json!({
            "name": "Network hours",
            "rank": 10,
            "condition": {"team_id": a},
            "calendar_id": cal,
            "targets": [
                {"priority": "critical", "response_minutes": 30, "resolution_minutes": 240},
                {"priority": "high", "response_minutes": 60, "resolution_minutes": 480},
                {"priority": "medium", "response_minutes": 120, "resolution_minutes": 960},
                {"priority": "low", "response_minutes": 240, "resolution_minutes": 1440},
            ],
        }),
    )
    .await;
    let (a_, b_, x_, y_) = (
        Some(a.as_str()),
        Some(b.as_str()),
        Some(x.as_str()),
        Some(y.as_str()),
    );
    let assign = |who: &str| json!({"assignee_id": who});
    let empty = json!({});

    // ---- Monday -------------------------------------------------------------------------
    set(&clock, 0, 9, 0);
    let i1 = c.incident("critical", a_, x_).await;
    let o1 = incident_as(&c.app, &other.admin, "critical", None, None).await;
    set(&clock, 0, 9, 5);
    post_as(
        &c.app,
        &other.admin,
        &format!("/api/v1/incidents/{o1}/start"),
        json!({}),
    )
    .await;
    set(&clock, 0, 9, 10);
    c.act(&i1, "assign", assign(&agent1)).await;
    set(&clock, 0, 9, 20);
    c.act(&i1, "start", empty.clone()).await;
    set(&clock, 0, 9, 30);
    let i7 = c.incident("medium", a_, y_).await;
    post_as(
        &c.app,
        &other.admin,
        &format!("/api/v1/incidents/{o1}/resolve"),
        json!({"resolution": "fixed"}),
    )
    .await;
    set(&clock, 0, 9, 45);
    c.act(&i7, "cancel", json!({"reason": "duplicate"})).await;
    set(&clock, 0, 10, 0);
    c.act(&i1, "hold", json!({"reason": "awaiting_vendor"}))
        .await;
    let i3 = c.incident("medium", b_, x_).await;
    set(&clock, 0, 10, 30);
    c.act(
        &i3,
        "work-notes",
        json!({"content": "on it", "is_public": true}),
    )
    .await;
    set(&clock, 0, 11, 0);
    c.act(&i1, "resume", empty.clone()).await;
    c.act(&i3, "start", empty.clone()).await;
    let i4 = c.incident("low", b_, y_).await;
    set(&clock, 0, 12, 0);
    c.act(&i1, "resolve", json!({"resolution": "replaced"}))
        .await;
    c.act(&i4, "assign", assign(&agent1)).await;
    set(&clock, 0, 13, 0);
    c.act(&i1, "close", empty.clone()).await;
    c.act(&i4, "hold", json!({"reason": "awaiting_caller"}))
        .await;
    set(&clock, 0, 16, 0);
    let i2 = c.incident("high", a_, y_).await;
    // ---- Tuesday ------------------------------------------------------------------------
    set(&clock, 1, 9, 0);
    c.act(&i3, "resolve", json!({"resolution": "patched"}))
        .await;
    set(&clock, 1, 9, 30);
    c.act(&i2, "assign", assign(&agent2)).await;
    set(&clock, 1, 10, 0);
    c.act(&i2, "start", empty.clone()).await;
    set(&clock, 1, 14, 0);
    let i8 = c.incident("low", b_, x_).await;
    set(&clock, 1, 15, 0);
    c.act(&i2, "resolve", json!({"resolution": "restarted"}))
        .await;
    set(&clock, 1, 19, 0);
    c.act(&i2, "reopen", json!({"reason": "back again"})).await;
    // ---- Wednesday ----------------------------------------------------------------------
    set(&clock, 2, 9, 0);
    let i5 = c.incident("high", None, None).await;
    set(&clock, 2, 10, 0);
    c.act(&i2, "resolve", json!({"resolution": "replaced the switch"}))
        .await;
    let i6 = c.incident("critical", a_, x_).await;
    set(&clock, 2, 10, 5);
    c.act(&i6, "assign", assign(&agent2)).await;
    set(&clock, 2, 10, 10);
    c.act(&i6, "start", empty.clone()).await;
    set(&clock, 2, 11, 0);
    c.act(&i2, "close", empty.clone()).await;
    // ---- Wednesday 13:30: the scheduler records what has crossed ----------------------------
    set(&clock, 2, 13, 30);
    let pool = c.app.db.superuser.clone();
    let scheduler = SlaScheduler::new(
        pool.clone(),
        PgEventStore::new(pool, Upcasters::new()),
        Arc::new(clock.clone()),
        SlaRulesCache::default(),
        SchedulerConfig::default(),
    );
    // I5 response (high, 24x7 1 h from Wed 09:00): 50, 75, 90, 100 % → breached.
    // I5 resolution (8 h): 4.5 h = 56 % → 50 %. I8 response (low, 8 h from Tue 14:00): all
    // four → breached; I8 resolution (72 h): 23.5 h = 32 % → nothing. I6 resolution (critical,
    // A: 4 business hours from Wed 10:00): 50 % at 12:00, 75 % at 13:00 → at risk (90 % is at
    // 13:36). I4's timers are paused (on hold), the others stopped.
    let mut recorded = 0;
    loop {
        let r = scheduler.sweep().await.expect("sweep");
        if r.recorded == 0 {
            break;
        }
        recorded += r.recorded;
    }
    assert_eq!(recorded, 4 + 1 + 4 + 2, "thresholds recorded");
    let _ = (i5, i8, i4, i3, i7);
    wait_analytics(&c.app).await;

    // ---- summary ------------------------------------------------------------------------
    // Open now: I4 (on hold, low, B, Y, agent1), I5 (new, high, no team/category,
    // unassigned), I6 (in progress, critical, A, X, agent2), I8 (new, low, B, X, unassigned).
    // I1, I2 closed, I3 resolved, I7 cancelled; the other tenant's O1 is not counted.
    let summary = c.ok("/api/v1/analytics/summary").await;
    let mut teams = by_id(vec![
        (Some(a.clone()), json!({"team_id": a, "count": 1})),
        (None, json!({"team_id": null, "count": 1})),
    ]);
    teams.insert(0, json!({"team_id": b, "count": 2})); // B: I4, I8 — the largest first
    let mut cats = by_id(vec![
        (Some(y.clone()), json!({"category_id": y, "count": 1})),
        (None, json!({"category_id": null, "count": 1})),
    ]);
    cats.insert(0, json!({"category_id": x, "count": 2})); // X: I6, I8
    assert_eq!(
        summary,
        json!({
            "total_open": 4,
            "critical_open": 1,          // I6
            "unassigned": 2,             // I5, I8
            "by_status": [
                {"status": "new", "count": 2},          // I5, I8
                {"status": "assigned", "count": 0},
                {"status": "in_progress", "count": 1},  // I6
                {"status": "on_hold", "count": 1},      // I4
            ],
            "by_priority": [
                {"priority": "critical", "count": 1},   // I6
                {"priority": "high", "count": 1},       // I5
                {"priority": "medium", "count": 0},
                {"priority": "low", "count": 2},        // I4, I8
            ],
            "by_team": teams,
            "by_category": cats,
        })
    );
    // Team A: I6 only.
    assert_eq!(
        c.ok(&format!("/api/v1/analytics/summary?team_id={a}"))
            .await,
        json!({
            "total_open": 1, "critical_open": 1, "unassigned": 0,
            "by_status": [
                {"status": "new", "count": 0}, {"status": "assigned", "count": 0},
                {"status": "in_progress", "count": 1}, {"status": "on_hold", "count": 0},
            ],
            "by_priority": [
                {"priority": "critical", "count": 1}, {"priority": "high", "count": 0},
                {"priority": "medium", "count": 0}, {"priority": "low", "count": 0},
            ],
            "by_team": [{"team_id": a, "count": 1}],
            "by_category": [{"category_id": x, "count": 1}],
        })
    );
    // Category Y: I4 only (on hold, low, team B).
    let s = c
        .ok(&format!("/api/v1/analytics/summary?category_id={y}"))
        .await;
    assert_eq!(
        (&s["total_open"], &s["unassigned"], &s["critical_open"]),
        (&json!(1), &json!(0), &json!(0))
    );
    assert_eq!(s["by_status"][3], json!({"status": "on_hold", "count": 1}));
    assert_eq!(s["by_priority"][3], json!({"priority": "low", "count": 1}));
    assert_eq!(s["by_team"], json!([{"team_id": b, "count": 1}]));
    assert_eq!(s["by_category"], json!([{"category_id": y, "count": 1}]));
    // Team A and category Y together: nothing open (I7 cancelled, I2 closed).
    let s = c
        .ok(&format!(
            "/api/v1/analytics/summary?team_id={a}&category_id={y}"
        ))
        .await;
    assert_eq!(
        (&s["total_open"], &s["by_team"], &s["by_category"]),
        (&json!(0), &json!([]), &json!([]))
    );

    // ---- backlog ------------------------------------------------------------------------
    // Ages at Wed 13:30: I5 4 h 30, I6 3 h 30, I8 23 h 30 → < 1 d; I4 2 d 2 h 30 → 1–3 d.
    // (Tuesday is cut by the 1-day boundary, Tue 13:30, so I8 is classified one by one.)
    // Reopen: resolved at least once I1, I2, I3; reopened I2 → 1 / 3.
    // Workload: agent1 I4, agent2 I6 (I1 is closed).
    let aging = |counts: [i64; 5]| {
        json!([
            {"bucket": "lt_1d", "min_age_days": 0, "max_age_days": 1, "count": counts[0]},
            {"bucket": "1d_3d", "min_age_days": 1, "max_age_days": 3, "count": counts[1]},
            {"bucket": "3d_7d", "min_age_days": 3, "max_age_days": 7, "count": counts[2]},
            {"bucket": "7d_30d", "min_age_days": 7, "max_age_days": 30, "count": counts[3]},
            {"bucket": "gt_30d", "min_age_days": 30, "max_age_days": null, "count": counts[4]},
        ])
    };
    let workload = by_id(vec![
        (
            Some(agent1.clone()),
            json!({"assignee_id": agent1, "open": 1}),
        ),
        (
            Some(agent2.clone()),
            json!({"assignee_id": agent2, "open": 1}),
        ),
    ]);
    assert_eq!(
        c.ok("/api/v1/analytics/backlog").await,
        json!({
            "as_of": "2026-03-04T13:30:00Z",
            "open_total": 4,
            "aging": aging([3, 1, 0, 0, 0]),
            "reopen": {"resolved_incidents": 3, "reopened_incidents": 1, "rate_percent": 100.0 / 3.0},
            "workload": workload,
        })
    );
    // Team A (now): open I6; resolved I1, I2, reopened I2 → 1 / 2; workload agent2.
    assert_eq!(
        c.ok(&format!("/api/v1/analytics/backlog?team_id={a}"))
            .await,
        json!({
            "as_of": "2026-03-04T13:30:00Z",
            "open_total": 1,
            "aging": aging([1, 0, 0, 0, 0]),
            "reopen": {"resolved_incidents": 2, "reopened_incidents": 1, "rate_percent": 50.0},
            "workload": [{"assignee_id": agent2, "open": 1}],
        })
    );
    // Team B: I8 < 1 d, I4 1–3 d; resolved I3, none reopened → 0 %; workload agent1.
    assert_eq!(
        c.ok(&format!("/api/v1/analytics/backlog?team_id={b}"))
            .await,
        json!({
            "as_of": "2026-03-04T13:30:00Z",
            "open_total": 2,
            "aging": aging([1, 1, 0, 0, 0]),
            "reopen": {"resolved_incidents": 1, "reopened_incidents": 0, "rate_percent": 0.0},
            "workload": [{"assignee_id": agent1, "open": 1}],
        })
    );
    // Category X: I6, I8 (< 1 d); resolved I1, I3 → 0 %; agent2 (I6).
    let bx = c
        .ok(&format!("/api/v1/analytics/backlog?category_id={x}"))
        .await;
    assert_eq!(bx["aging"], aging([2, 0, 0, 0, 0]));
    assert_eq!(
        bx["reopen"],
        json!({"resolved_incidents": 2, "reopened_incidents": 0, "rate_percent": 0.0})
    );
    assert_eq!(bx["workload"], json!([{"assignee_id": agent2, "open": 1}]));

    // ---- trends -------------------------------------------------------------------------
    // Default: UTC days of [Wed 13:30 − 30 d, Wed 13:30) = 2026-02-02 … 2026-03-04 (31 whole
    // days). Mon: created I1, I7, I3, I4, I2 = 5, resolved I1, closed I1. Tue: created I8,
    // resolved I3 and I2 (cycle 1), reopened I2 (19:00). Wed: created I5, I6, resolved I2
    // (cycle 2), closed I2. The other tenant's O1 (created and resolved Mon) is not counted.
    let tr = c.ok("/api/v1/analytics/trends").await;
    assert_eq!((&tr["bucket"], &tr["tz"]), (&json!("day"), &json!("UTC")));
    assert_eq!(
        (&tr["from"], &tr["to"]),
        (
            &json!("2026-02-02T13:30:00Z"),
            &json!("2026-03-04T13:30:00Z")
        )
    );
    let data = tr["data"].as_array().expect("data");
    assert_eq!(data.len(), 31);
    assert_eq!(data[0]["start"], "2026-02-02T00:00:00+00:00");
    assert_eq!(data[30]["end"], "2026-03-05T00:00:00+00:00");
    let point = |start: &str, end: &str, c: [i64; 4]| json!({"start": start, "end": end, "created": c[0], "resolved": c[1], "closed": c[2], "reopened": c[3]});
    for (i, p) in data.iter().enumerate() {
        match i {
            28 => assert_eq!(
                *p,
                point(
                    "2026-03-02T00:00:00+00:00",
                    "2026-03-03T00:00:00+00:00",
                    [5, 1, 1, 0]
                )
            ),
            29 => assert_eq!(
                *p,
                point(
                    "2026-03-03T00:00:00+00:00",
                    "2026-03-04T00:00:00+00:00",
                    [1, 2, 0, 1]
                )
            ),
            30 => assert_eq!(
                *p,
                point(
                    "2026-03-04T00:00:00+00:00",
                    "2026-03-05T00:00:00+00:00",
                    [2, 1, 1, 0]
                )
            ),
            _ => assert_eq!(
                (&p["created"], &p["resolved"], &p["closed"], &p["reopened"]),
                (&json!(0), &json!(0), &json!(0), &json!(0)),
                "{p}"
            ),
        }
    }
    assert_eq!(
        tr["totals"],
        json!({"created": 8, "resolved": 4, "closed": 2, "reopened": 1})
    );

    // India (+05:30): days start at 18:30 UTC. Every event above falls on the same local
    // day except the reopen: Tue 19:00 UTC = Wed 00:30 IST.
    let tr = c
        .ok("/api/v1/analytics/trends?tz=Asia/Kolkata&from=2026-03-02T00:00:00%2B05:30&to=2026-03-05T00:00:00%2B05:30")
        .await;
    assert_eq!(
        tr["data"],
        json!([
            point(
                "2026-03-02T00:00:00+05:30",
                "2026-03-03T00:00:00+05:30",
                [5, 1, 1, 0]
            ),
            point(
                "2026-03-03T00:00:00+05:30",
                "2026-03-04T00:00:00+05:30",
                [1, 2, 0, 0]
            ),
            point(
                "2026-03-04T00:00:00+05:30",
                "2026-03-05T00:00:00+05:30",
                [2, 1, 1, 1]
            ),
        ])
    );
    // Nepal (+05:45), hours of Monday 09:00–12:00 UTC: local hours start at :15 UTC.
    // [08:15, 09:15) I1 created 09:00; [09:15, 10:15) I7 09:30, I3 10:00; [10:15, 11:15) I4
    // 11:00; [11:15, 12:15) I1 resolved 12:00.
    let tr = c
        .ok("/api/v1/analytics/trends?tz=Asia/Kathmandu&bucket=hour&from=2026-03-02T09:00:00Z&to=2026-03-02T12:00:00Z")
        .await;
    assert_eq!(
        tr["data"],
        json!([
            point(
                "2026-03-02T14:00:00+05:45",
                "2026-03-02T15:00:00+05:45",
                [1, 0, 0, 0]
            ),
            point(
                "2026-03-02T15:00:00+05:45",
                "2026-03-02T16:00:00+05:45",
                [2, 0, 0, 0]
            ),
            point(
                "2026-03-02T16:00:00+05:45",
                "2026-03-02T17:00:00+05:45",
                [1, 0, 0, 0]
            ),
            point(
                "2026-03-02T17:00:00+05:45",
                "2026-03-02T18:00:00+05:45",
                [0, 1, 0, 0]
            ),
        ])
    );
    // ISO weeks: Mon 2026-03-02 … holds all eight creations.
    let tr = c
        .ok("/api/v1/analytics/trends?bucket=week&from=2026-03-02T00:00:00Z&to=2026-03-09T00:00:00Z")
        .await;
    assert_eq!(
        tr["data"],
        json!([point(
            "2026-03-02T00:00:00+00:00",
            "2026-03-09T00:00:00+00:00",
            [8, 4, 2, 1]
        )])
    );
    // Team A: I1, I7, I2 created Mon, I1 resolved and closed Mon; I2 resolved and reopened
    // Tue; I6 created, I2 resolved and closed Wed.
    let tr = c
        .ok(&format!(
            "/api/v1/analytics/trends?team_id={a}&from=2026-03-02T00:00:00Z&to=2026-03-05T00:00:00Z"
        ))
        .await;
    assert_eq!(
        tr["data"],
        json!([
            point(
                "2026-03-02T00:00:00+00:00",
                "2026-03-03T00:00:00+00:00",
                [3, 1, 1, 0]
            ),
            point(
                "2026-03-03T00:00:00+00:00",
                "2026-03-04T00:00:00+00:00",
                [0, 1, 0, 1]
            ),
            point(
                "2026-03-04T00:00:00+00:00",
                "2026-03-05T00:00:00+00:00",
                [1, 1, 1, 0]
            ),
        ])
    );
    // Category Y: I7, I4, I2 created Mon; I2 resolved and reopened Tue, resolved and closed Wed.
    let tr = c
        .ok(&format!("/api/v1/analytics/trends?category_id={y}&from=2026-03-02T00:00:00Z&to=2026-03-05T00:00:00Z"))
        .await;
    assert_eq!(
        tr["totals"],
        json!({"created": 3, "resolved": 2, "closed": 1, "reopened": 1})
    );

    // ---- mtta ---------------------------------------------------------------------------
    // Responses (wall = responded − created; business on the timer's calendar):
    //   I1 crit A  Mon 09:10   600 /   600 (Office 09:00–09:10)        met (30 min)
    //   I3 med  B  Mon 10:30  1800 /  1800 (24x7)                      met (4 h)
    //   I4 low  B  Mon 12:00  3600 /  3600 (24x7)                      met (8 h)
    //   I2 high A  Tue 09:30 63000 /  5400 (Mon 16–17 + Tue 09–09:30)  breached (1 h)
    //   I6 crit A  Wed 10:05   300 /   300                             met (30 min)
    // I5, I8 never responded; I7 was cancelled while new (not a response).
    // Wall: 300 600 1800 3600 63000 → mean 69300 / 5 = 13860, median 1800.
    // Business: 300 600 1800 3600 5400 → mean 11700 / 5 = 2340, median 1800.
    // Critical: 300, 600 → 450 / 450. Team A: wall 300 600 63000 → 63900 / 3 = 21300, median
    // 600; business 300 600 5400 → 6300 / 3 = 2100, median 600. Team B: 1800 3600 → 2700.
    let teams = by_id(vec![
        (
            Some(a.clone()),
            json!({"team_id": a,
                   "wall": stats(3, Some(21300.0), Some(600.0)),
                   "business": stats(3, Some(2100.0), Some(600.0))}),
        ),
        (
            Some(b.clone()),
            with(both(2, 2700.0, 2700.0), "team_id", json!(b)),
        ),
    ]);
    assert_eq!(
        c.ok("/api/v1/analytics/mtta").await,
        json!({
            "metric": "response",
            "from": "2026-02-02T13:30:00Z",
            "to": "2026-03-04T13:30:00Z",
            "overall": {
                "wall": stats(5, Some(13860.0), Some(1800.0)),
                "business": stats(5, Some(2340.0), Some(1800.0)),
            },
            "by_priority": [
                with(both(2, 450.0, 450.0), "priority", json!("critical")),
                json!({"priority": "high",
                       "wall": stats(1, Some(63000.0), Some(63000.0)),
                       "business": stats(1, Some(5400.0), Some(5400.0))}),
                with(both(1, 1800.0, 1800.0), "priority", json!("medium")),
                with(both(1, 3600.0, 3600.0), "priority", json!("low")),
            ],
            "by_team": teams,
        })
    );

    // ---- mttr ---------------------------------------------------------------------------
    // Resolutions (wall from the start of the cycle; business on the timer's calendar):
    //   I1    crit A X Mon 12:00 10800 /  7200 (Office 09–12 minus the 10–11 hold)  met (4 h)
    //   I3    med  B X Tue 09:00 82800 / 82800 (24x7, Mon 10:00 → Tue 09:00)        met (24 h)
    //   I2 c1 high A Y Tue 15:00 82800 / 25200 (Mon 16–17 + Tue 09–15)              met (8 h)
    //   I2 c2 high A Y Wed 10:00 54000 /  3600 (from the reopen Tue 19:00: Wed 09–10) met
    // Wall: 10800 54000 82800 82800 → 230400 / 4 = 57600, median (54000 + 82800) / 2 = 68400.
    // Business: 3600 7200 25200 82800 → 118800 / 4 = 29700, median (7200 + 25200) / 2 = 16200.
    // High: wall 54000 82800 → 68400 / 68400; business 3600 25200 → 14400 / 14400.
    // Team A: wall 10800 54000 82800 → 147600 / 3 = 49200, median 54000; business 3600 7200
    // 25200 → 36000 / 3 = 12000, median 7200. Team B: I3.
    let mttr_a = json!({"wall": stats(3, Some(49200.0), Some(54000.0)), "business": stats(3, Some(12000.0), Some(7200.0))});
    let high = json!({"priority": "high", "wall": stats(2, Some(68400.0), Some(68400.0)), "business": stats(2, Some(14400.0), Some(14400.0))});
    let critical = json!({"priority": "critical", "wall": stats(1, Some(10800.0), Some(10800.0)), "business": stats(1, Some(7200.0), Some(7200.0))});
    let teams = by_id(vec![
        (Some(a.clone()), with(mttr_a.clone(), "team_id", json!(a))),
        (
            Some(b.clone()),
            with(both(1, 82800.0, 82800.0), "team_id", json!(b)),
        ),
    ]);
    assert_eq!(
        c.ok("/api/v1/analytics/mttr").await,
        json!({
            "metric": "resolution",
            "from": "2026-02-02T13:30:00Z",
            "to": "2026-03-04T13:30:00Z",
            "overall": {
                "wall": stats(4, Some(57600.0), Some(68400.0)),
                "business": stats(4, Some(29700.0), Some(16200.0)),
            },
            "by_priority": [
                critical,
                high,
                with(both(1, 82800.0, 82800.0), "priority", json!("medium")),
                json!({"priority": "low", "wall": none(), "business": none()}),
            ],
            "by_team": teams,
        })
    );
    // Team A (histograms of team A's cells): as team A above, by priority critical (I1) and
    // high (I2 ×2).
    let m = c.ok(&format!("/api/v1/analytics/mttr?team_id={a}")).await;
    assert_eq!(m["overall"], mttr_a);
    assert_eq!(m["by_priority"][0], critical);
    assert_eq!(m["by_priority"][1], high);
    assert_eq!(m["by_priority"][2]["wall"], none());
    assert_eq!(
        m["by_team"],
        json!([with(mttr_a.clone(), "team_id", json!(a))])
    );
    // Category X (read sample by sample): I1, I3 → wall 10800 82800 → 46800 / 46800; business
    // 7200 82800 → 45000 / 45000.
    let m = c
        .ok(&format!("/api/v1/analytics/mttr?category_id={x}"))
        .await;
    assert_eq!(
        m["overall"],
        json!({"wall": stats(2, Some(46800.0), Some(46800.0)), "business": stats(2, Some(45000.0), Some(45000.0))})
    );
    assert_eq!(m["by_priority"][0], critical);
    assert_eq!(
        m["by_priority"][2],
        with(both(1, 82800.0, 82800.0), "priority", json!("medium"))
    );
    assert_eq!(
        m["by_team"],
        json!(by_id(vec![
            (
                Some(a.clone()),
                json!({"team_id": a, "wall": stats(1, Some(10800.0), Some(10800.0)), "business": stats(1, Some(7200.0), Some(7200.0))})
            ),
            (
                Some(b.clone()),
                with(both(1, 82800.0, 82800.0), "team_id", json!(b))
            ),
        ]))
    );
    // Tuesday alone (one whole day, no partial edge): I3 and I2 cycle 1 → wall 82800 82800;
    // business 25200 82800 → 54000 / 54000.
    let m = c
        .ok("/api/v1/analytics/mttr?from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z")
        .await;
    assert_eq!(
        m["overall"],
        json!({"wall": stats(2, Some(82800.0), Some(82800.0)), "business": stats(2, Some(54000.0), Some(54000.0))})
    );
    // Mon 11:00 – Wed 10:00 (partial edges; `to` is exclusive, so I2's second resolution at
    // Wed 10:00 is out): I1, I3, I2 c1 → wall 10800 82800 82800 → 176400 / 3 = 58800, median
    // 82800; business 7200 25200 82800 → 115200 / 3 = 38400, median 25200.
    let m = c
        .ok("/api/v1/analytics/mttr?from=2026-03-02T11:00:00Z&to=2026-03-04T10:00:00Z")
        .await;
    assert_eq!(
        m["overall"],
        json!({"wall": stats(3, Some(58800.0), Some(82800.0)), "business": stats(3, Some(38400.0), Some(25200.0))})
    );

    // Tue 00:00 – Wed 10:30: I3, I2 c1 (whole 6-hour blocks) and I2 c2 (Wed 10:00, read from
    // the partial block [Wed 06:00, 10:30)) → wall 54000 82800 82800 → 219600 / 3 = 73200,
    // median 82800; business 3600 25200 82800 → 111600 / 3 = 37200, median 25200.
    let m = c
        .ok("/api/v1/analytics/mttr?from=2026-03-03T00:00:00Z&to=2026-03-04T10:30:00Z")
        .await;
    assert_eq!(
        m["overall"],
        json!({"wall": stats(3, Some(73200.0), Some(82800.0)), "business": stats(3, Some(37200.0), Some(25200.0))})
    );
    assert_eq!(
        m["by_team"],
        json!(by_id(vec![
            (
                Some(a.clone()),
                json!({"team_id": a, "wall": stats(2, Some(68400.0), Some(68400.0)), "business": stats(2, Some(14400.0), Some(14400.0))})
            ),
            (
                Some(b.clone()),
                with(both(1, 82800.0, 82800.0), "team_id", json!(b))
            ),
        ]))
    );
    // Wed 00:00 – 10:30: only I6's response (10:05), in the partial block → 300 / 300.
    let m = c
        .ok("/api/v1/analytics/mtta?from=2026-03-04T00:00:00Z&to=2026-03-04T10:30:00Z")
        .await;
    assert_eq!(m["overall"], both(1, 300.0, 300.0));
    assert_eq!(
        m["by_priority"][0],
        with(both(1, 300.0, 300.0), "priority", json!("critical"))
    );

    // ---- sla ----------------------------------------------------------------------------
    // Response timers completed: I1 met, I3 met, I4 met, I2 breached, I6 met → 5, 4, 1.
    // Resolution timers completed: I1, I3, I2 c1, I2 c2, all met. Running now (Wed 13:30):
    // response breached I5 (high), I8 (low); resolution at risk I6 (75 % at 13:00).
    let response = json!({
        "overall": comp(5, 1),
        "by_priority": [
            with(comp(2, 0), "priority", json!("critical")),
            with(comp(1, 1), "priority", json!("high")),
            with(comp(1, 0), "priority", json!("medium")),
            with(comp(1, 0), "priority", json!("low")),
        ],
        "by_team": by_id(vec![
            (Some(a.clone()), with(comp(3, 1), "team_id", json!(a))),
            (Some(b.clone()), with(comp(2, 0), "team_id", json!(b))),
        ]),
    });
    let resolution = json!({
        "overall": comp(4, 0),
        "by_priority": [
            with(comp(1, 0), "priority", json!("critical")),
            with(comp(2, 0), "priority", json!("high")),
            with(comp(1, 0), "priority", json!("medium")),
            with(comp(0, 0), "priority", json!("low")),
        ],
        "by_team": by_id(vec![
            (Some(a.clone()), with(comp(3, 0), "team_id", json!(a))),
            (Some(b.clone()), with(comp(1, 0), "team_id", json!(b))),
        ]),
    });
    assert_eq!(
        c.ok("/api/v1/analytics/sla").await,
        json!({
            "from": "2026-02-02T13:30:00Z",
            "to": "2026-03-04T13:30:00Z",
            "response": response,
            "resolution": resolution,
            "breaches_by_priority": [
                {"priority": "critical", "response": 0, "resolution": 0},
                {"priority": "high", "response": 1, "resolution": 0},
                {"priority": "medium", "response": 0, "resolution": 0},
                {"priority": "low", "response": 0, "resolution": 0},
            ],
            "current": {
                "response": {"at_risk": 0, "breached": 2},
                "resolution": {"at_risk": 1, "breached": 0},
            },
        })
    );
    // Team A: responses I1, I2 (breached), I6 → 3, 2, 1 (66.7 %); resolutions I1, I2 ×2; now
    // only I6 (resolution at risk).
    let s = c.ok(&format!("/api/v1/analytics/sla?team_id={a}")).await;
    assert_eq!(s["response"]["overall"], comp(3, 1));
    assert_eq!(s["resolution"]["overall"], comp(3, 0));
    assert_eq!(
        s["response"]["by_team"],
        json!([with(comp(3, 1), "team_id", json!(a))])
    );
    assert_eq!(
        s["current"],
        json!({"response": {"at_risk": 0, "breached": 0}, "resolution": {"at_risk": 1, "breached": 0}})
    );
    // Category X: responses I1, I3, I6 → 3 met; resolutions I1, I3; now I8's response is
    // breached and I6's resolution at risk.
    let s = c
        .ok(&format!("/api/v1/analytics/sla?category_id={x}"))
        .await;
    assert_eq!(s["response"]["overall"], comp(3, 0));
    assert_eq!(s["resolution"]["overall"], comp(2, 0));
    assert_eq!(
        s["current"],
        json!({"response": {"at_risk": 0, "breached": 1}, "resolution": {"at_risk": 1, "breached": 0}})
    );

    // ---- tenant isolation -----------------------------------------------------------------
    // The other tenant sees only O1: responded 09:05 (300 s), resolved 09:30 (1800 s).
    let o = |path: &str| {
        let (app, token) = (&c.app, other.admin.clone());
        let path = path.to_owned();
        async move {
            let r = app.call(Method::GET, &path, Some(&token), None).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            r.body
        }
    };
    let s = o("/api/v1/analytics/summary").await;
    assert_eq!((&s["total_open"], &s["by_team"]), (&json!(0), &json!([])));
    let m = o("/api/v1/analytics/mttr").await;
    assert_eq!(m["overall"], both(1, 1800.0, 1800.0));
    let m = o("/api/v1/analytics/mtta").await;
    assert_eq!(m["overall"], both(1, 300.0, 300.0));
    let tr = o("/api/v1/analytics/trends").await;
    assert_eq!(
        tr["totals"],
        json!({"created": 1, "resolved": 1, "closed": 0, "reopened": 0})
    );
    let bl = o("/api/v1/analytics/backlog").await;
    assert_eq!(
        bl["reopen"],
        json!({"resolved_incidents": 1, "reopened_incidents": 0, "rate_percent": 0.0})
    );
    // Our team id as the other tenant's filter: nothing (404 semantics are not needed: a filter
    // that matches nothing is simply empty).
    let s = o(&format!("/api/v1/analytics/summary?team_id={a}")).await;
    assert_eq!(s["total_open"], 0);

    // ---- permissions and validation ------------------------------------------------------
    for ep in ["summary", "trends", "mttr", "mtta", "sla", "backlog"] {
        let path = format!("/api/v1/analytics/{ep}");
        // Operators do not hold analytics:read; viewers do.
        let r = c.app.call(Method::GET, &path, Some(&operator), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        let r = c.app.call(Method::GET, &path, Some(&viewer), None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let r = c.app.call(Method::GET, &path, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        // Unknown and malformed parameters name the field.
        let r = c.get(&format!("{path}?foo=1")).await;
        assert_eq!(
            (r.status, r.error_field()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("foo")),
            "{path}"
        );
        let r = c.get(&format!("{path}?team_id=nope")).await;
        assert_eq!(
            (r.status, r.error_field()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("team_id")),
            "{path}"
        );
        let r = c.get(&format!("{path}?category_id=1")).await;
        assert_eq!(
            (r.status, r.error_field()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("category_id")),
            "{path}"
        );
        // A snapshot takes no range at all; a range endpoint refuses from > to.
        let snapshot = ep == "summary" || ep == "backlog";
        let r = c
            .get(&format!(
                "{path}?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z"
            ))
            .await;
        assert_eq!(
            (r.status, r.error_field()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("from")),
            "{path}"
        );
        let r = c.get(&format!("{path}?to=tomorrow")).await;
        assert_eq!(
            (r.status, r.error_field()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("to")),
            "{path}"
        );
        let r = c.get(&format!("{path}?bucket=day")).await;
        if ep == "trends" {
            assert_eq!(r.status, StatusCode::OK);
        } else {
            assert_eq!(
                (r.status, r.error_field()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("bucket")),
                "{path}"
            );
        }
        if snapshot {
            let r = c.get(&format!("{path}?from=2026-03-01T00:00:00Z")).await;
            assert_eq!(
                (r.status, r.error_field()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("from"))
            );
        }
    }
    for (q, field) in [
        ("bucket=month", "bucket"),
        ("tz=Mars/Olympus", "tz"),
        (
            "bucket=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            "bucket",
        ),
        (
            "from=2026-03-01T00:00:00Z&from=2026-03-02T00:00:00Z",
            "from",
        ),
    ] {
        let r = c.get(&format!("/api/v1/analytics/trends?{q}")).await;
        assert_eq!(
            (r.status, r.error_field()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{q}"
        );
    }
    c.app.stop().await;
}

/// Replaying the log into the analytics tables from zero, one event per batch and each batch
/// twice, gives the same rows as the live projection.
#[tokio::test]
async fn replayed_event_by_event_the_projection_equals_the_live_one() {
    let clock = ManualClock::at(chrono::SubsecRound::trunc_subsecs(Utc::now(), 0));
    let app = TestApp::spawn_with_clock(
        &[("EVENTDESK_SLA_SCHEDULER", "false")],
        Arc::new(clock.clone()),
    )
    .await;
    let t = app.tenant("Acme").await;
    let team = post_as(&app, &t.admin, "/api/v1/teams", json!({"name": "Ops"})).await;
    let team = id(&team);
    set(&clock, 0, 9, 0);
    let mut ids = Vec::new();
    for (i, p) in ["critical", "high", "medium", "low"].iter().enumerate() {
        let team = (i % 2 == 0).then_some(team.as_str());
        ids.push(incident_as(&app, &t.admin, p, team, None).await);
    }
    set(&clock, 0, 10, 0);
    for i in &ids[..3] {
        post_as(
            &app,
            &t.admin,
            &format!("/api/v1/incidents/{i}/start"),
            json!({}),
        )
        .await;
    }
    set(&clock, 0, 11, 0);
    for i in &ids[..2] {
        post_as(
            &app,
            &t.admin,
            &format!("/api/v1/incidents/{i}/resolve"),
            json!({"resolution": "x"}),
        )
        .await;
    }
    set(&clock, 0, 12, 0);
    post_as(
        &app,
        &t.admin,
        &format!("/api/v1/incidents/{}/reopen", ids[0]),
        json!({"reason": "x"}),
    )
    .await;
    wait_analytics(&app).await;

    let tables = [
        "rm_analytics_incidents",
        "rm_analytics_current",
        "rm_analytics_open_age",
        "rm_analytics_flows",
        "rm_analytics_samples",
        "rm_analytics_hist",
    ];
    let dump = |pool: sqlx::PgPool| async move {
        let mut out = Vec::new();
        for table in tables {
            let rows: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT t::text FROM {table} t WHERE NOT EXISTS \
                 (SELECT 1 FROM (SELECT to_jsonb(t) AS j) z WHERE j ? 'n' AND (j->>'n')::int8 = 0) \
                 ORDER BY 1"
            ))
            .fetch_all(&pool)
            .await
            .expect("dump");
            out.push(rows);
        }
        out
    };
    let live = dump(app.db.superuser.clone()).await;
    assert!(live[4].len() >= 5, "samples: {:?}", live[4]);
    // Rebuild from zero in single-event batches, into the same (emptied) tables, with the
    // projection's own code.
    for table in tables {
        sqlx::query(&format!("TRUNCATE {table}"))
            .execute(&app.db.superuser)
            .await
            .expect("truncate");
    }
    let events: Vec<eventdesk_store::RecordedEvent> = {
        let store = PgEventStore::new(app.db.superuser.clone(), Upcasters::new());
        let mut all = Vec::new();
        let mut cp = eventdesk_store::Checkpoint::START;
        loop {
            let batch = eventdesk_store::EventStore::read_all(&store, cp, 1000)
                .await
                .expect("read");
            let Some(last) = batch.last() else { break };
            cp = last.checkpoint();
            all.extend(batch);
        }
        all
    };
    use eventdesk_projections::Projection;
    let p = eventdesk_projections::AnalyticsProjection;
    for chunk in events.chunks(1) {
        let mut tx = app.db.superuser.begin().await.expect("tx");
        p.apply(&mut tx, chunk).await.expect("apply");
        // Replaying the same batch changes nothing.
        p.apply(&mut tx, chunk).await.expect("apply twice");
        tx.commit().await.expect("commit");
    }
    let rebuilt = dump(app.db.superuser.clone()).await;
    for (i, table) in tables.iter().enumerate() {
        assert_eq!(live[i], rebuilt[i], "{table}");
    }
    app.stop().await;
}

/// The exact median of `v` as the API reports it (the mean of the two middle values for an
/// even count), with the count and the mean.
fn expected_stats(mut v: Vec<i64>) -> Value {
    v.sort_unstable();
    let n = v.len();
    if n == 0 {
        return none();
    }
    let mean = v.iter().sum::<i64>() as f64 / n as f64;
    let median = if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    };
    // Through JSON text and back, as the API's figure reaches the test: serde_json's default
    // float parser may land one unit in the last place away from the nearest double.
    let reparse = |x: f64| -> Value {
        serde_json::from_str(&serde_json::to_string(&x).expect("f64 to JSON")).expect("JSON")
    };
    json!({"count": n, "mean_seconds": reparse(mean), "median_seconds": reparse(median)})
}

/// Medians over many ranges, for every group, equal the ones computed from the durations
/// themselves — whichever way the reader finds them (ADR 0026, ADR 0028): most durations sit in
/// one histogram bin (as a busy tenant's do), so the median look-ups read that bin in time
/// order and sort it (narrow ranges), in value order checking each sample's time (wide ranges,
/// from the bin's nearer end: forwards or backwards), or in value order without a range
/// ("all time").
#[tokio::test]
async fn medians_over_many_ranges_equal_the_durations_own() {
    let clock = ManualClock::at(chrono::SubsecRound::trunc_subsecs(Utc::now(), 0));
    let app = TestApp::spawn_with_clock(
        &[("EVENTDESK_SLA_SCHEDULER", "false")],
        Arc::new(clock.clone()),
    )
    .await;
    let t = app.tenant("Busy").await;
    let c = Ctx {
        app,
        admin: t.admin.clone(),
    };
    let teams = [
        None,
        Some(id(&c
            .post("/api/v1/teams", json!({"name": "Network"}))
            .await)),
        Some(id(&c.post("/api/v1/teams", json!({"name": "Desk"})).await)),
    ];
    let priorities = ["low", "medium", "high", "critical"];
    // 12 days, an incident every 2 hours; responses mostly in the bin [976, 992) s (every
    // seventh elsewhere), resolutions mostly in [2048, 2112) s. Every timer runs on the
    // built-in 24x7 calendar, so business time equals wall time.
    struct Case {
        priority: usize,
        team: usize,
        responded: DateTime<Utc>,
        response: i64,
        resolved: DateTime<Utc>,
        resolution: i64,
    }
    let mut cases = Vec::new();
    for i in 0..144i64 {
        let created = t0() + TimeDelta::hours(2 * i);
        let response = if i % 7 == 3 {
            300 + 11 * i
        } else {
            976 + (i * 7) % 16
        };
        let resolution = if i % 7 == 5 {
            5000 + 13 * i
        } else {
            2048 + (i * 13) % 64
        };
        let (p, tm) = ((i % 4) as usize, ((i / 4) % 3) as usize);
        clock.advance(created - clock.now());
        let mut body = json!({"title": format!("disk {i}"), "priority": priorities[p]});
        if let Some(team) = &teams[tm] {
            body["team_id"] = json!(team);
        }
        let inc = id(&c.post("/api/v1/incidents", body).await);
        clock.advance(TimeDelta::seconds(response));
        c.act(&inc, "start", json!({})).await;
        clock.advance(TimeDelta::seconds(resolution - response));
        c.act(&inc, "resolve", json!({"resolution": "replaced"}))
            .await;
        cases.push(Case {
            priority: p,
            team: tm,
            responded: created + TimeDelta::seconds(response),
            response,
            resolved: created + TimeDelta::seconds(resolution),
            resolution,
        });
    }
    wait_analytics(&c.app).await;

    let day = |d: i64, h: i64| t0() + TimeDelta::days(d) + TimeDelta::hours(h);
    let ranges = [
        (day(-1, 0), day(20, 0)),  // holds every sample
        (day(0, 0), day(12, 0)),   // the same, aligned
        (day(1, 0), day(11, 0)),   // wide: value order
        (day(1, 5), day(10, 19)),  // wide, partial edges
        (day(3, 0), day(4, 0)),    // one day: time order
        (day(2, 13), day(4, 2)),   // narrow, partial edges
        (day(0, 0), day(6, 0)),    // half
        (day(6, 0), day(12, 0)),   // the other half
        (day(11, 20), day(12, 0)), // a few samples, one partial block
    ];
    for (from, to) in ranges {
        for (path, metric) in [("mtta", 0), ("mttr", 1)] {
            let pick = |keep: &dyn Fn(&Case) -> bool| {
                let v: Vec<i64> = cases
                    .iter()
                    .filter(|x| {
                        let at = if metric == 0 { x.responded } else { x.resolved };
                        at >= from && at < to && keep(x)
                    })
                    .map(|x| {
                        if metric == 0 {
                            x.response
                        } else {
                            x.resolution
                        }
                    })
                    .collect();
                let s = expected_stats(v);
                json!({"wall": s, "business": s})
            };
            let q = format!(
                "/api/v1/analytics/{path}?from={}&to={}",
                from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
            .replace('+', "%2B");
            let m = c.ok(&q).await;
            assert_eq!(m["overall"], pick(&|_| true), "{q} overall");
            for (k, p) in priorities.iter().enumerate() {
                let want = with(pick(&|x| x.priority == k), "priority", json!(p));
                let got = m["by_priority"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["priority"] == json!(p)))
                    .cloned();
                assert_eq!(got, Some(want), "{q} priority {p}");
            }
            for (k, team) in teams.iter().enumerate() {
                let want = pick(&|x| x.team == k);
                let got = m["by_team"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["team_id"] == json!(team)))
                    .cloned()
                    .map(|mut x| {
                        if let Some(o) = x.as_object_mut() {
                            o.remove("team_id");
                        }
                        x
                    });
                if want["wall"]["count"] == json!(0) {
                    assert!(
                        got.is_none() || got == Some(want.clone()),
                        "{q} team {team:?}: {got:?}"
                    );
                } else {
                    assert_eq!(got, Some(want), "{q} team {team:?}");
                }
            }
            // One team's figures through its own cells.
            if let Some(team) = &teams[1] {
                let m = c.ok(&format!("{q}&team_id={team}")).await;
                assert_eq!(m["overall"], pick(&|x| x.team == 1), "{q} team_id={team}");
            }
        }
    }
}
