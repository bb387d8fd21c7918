//! Changes over HTTP (issue #8, ADR 0022): the three state machines, CAB votes with the quorum
//! rules and rejection policies, tasks, the calendar, and a conflict scenario on dependent CIs
//! whose override is recorded in the audit trail.

use super::app::{Resp, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn code(r: &Resp) -> (StatusCode, Option<&str>) {
    (r.status, r.body["error"]["code"].as_str())
}

fn assert_422(r: &Resp, field: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let fields: Vec<&str> = r.body["error"]["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        fields.contains(&field),
        "expected 422 on {field}: {:?}",
        r.body
    );
}

async fn change(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app
        .call(Method::POST, "/api/v1/changes", Some(token), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

async fn act(app: &TestApp, token: &str, cid: &str, what: &str, body: Option<Value>) -> Resp {
    app.call(
        Method::POST,
        &format!("/api/v1/changes/{cid}/{what}"),
        Some(token),
        body,
    )
    .await
}

async fn ok(app: &TestApp, token: &str, cid: &str, what: &str, body: Option<Value>) -> Value {
    let r = act(app, token, cid, what, body).await;
    assert!(r.status.is_success(), "{what}: {} {:?}", r.status, r.body);
    r.body
}

async fn vote(app: &TestApp, token: &str, cid: &str, decision: &str) -> Resp {
    act(
        app,
        token,
        cid,
        "approvals",
        Some(json!({"decision": decision, "comment": format!("{decision}: reviewed the plan")})),
    )
    .await
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let r = app.call(Method::GET, path, Some(token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
    r.body
}

async fn ci(app: &TestApp, token: &str, name: &str) -> String {
    let r = app
        .call(
            Method::POST,
            "/api/v1/cis",
            Some(token),
            Some(json!({"type": "application", "name": name})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    id(&r.body)
}

const T0: &str = "2030-03-01T22:00:00Z";
const T1: &str = "2030-03-01T23:00:00Z";
const T2: &str = "2030-03-02T00:00:00Z";
const T3: &str = "2030-03-02T01:00:00Z";

#[tokio::test]
async fn a_normal_change_goes_through_assessment_the_cab_and_implementation() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (m1, m1_token) = app.user(&t.admin, "manager").await;
    let (m2, m2_token) = app.user(&t.admin, "manager").await;
    let (m3, m3_token) = app.user(&t.admin, "manager").await;
    let db = ci(&app, &t.admin, "orders-db").await;
    let inc = app.incident(&t.admin, "Slow orders").await;

    // Validation.
    let r = app
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&t.admin),
            Some(json!({"title": "x", "change_type": "normal", "planned_start": T1, "planned_end": T0})),
        )
        .await;
    assert_422(&r, "planned_end");
    let r = app
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&t.admin),
            Some(
                json!({"title": "x", "change_type": "normal", "approvers": [uuid::Uuid::now_v7()]}),
            ),
        )
        .await;
    assert_422(&r, "approvers");
    let r = app
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&t.admin),
            Some(json!({"title": "x", "change_type": "weird"})),
        )
        .await;
    assert_422(&r, "change_type");
    let r = app
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&t.admin),
            Some(json!({"title": "x", "change_type": "normal", "ci_ids": [uuid::Uuid::now_v7()]})),
        )
        .await;
    assert_422(&r, "ci_ids");

    let r = app
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&t.admin),
            Some(json!({
                "title": "PostgreSQL 16 へのアップグレード", "change_type": "normal", "risk": "high",
                "planned_start": T0, "planned_end": T1, "ci_ids": [db], "incident_ids": [id(&inc)],
                "approvers": [m1, m2, m3], "quorum": "majority",
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let cid = id(&r.body);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/changes/{cid}").as_str())
    );
    let c = &r.body;
    assert_eq!(
        (c["status"].as_str(), c["risk"].as_str()),
        (Some("draft"), Some("high"))
    );
    assert_eq!(c["on_rejection"], "reassess");
    assert_eq!(c["approval_round"], 1);
    assert_eq!(
        c["allowed_actions"],
        json!(["update", "submit", "cancel", "edit_tasks"])
    );

    // PATCH with If-Match; an end before the start is refused.
    let r = app
        .call_with(
            Method::PATCH,
            &format!("/api/v1/changes/{cid}"),
            Some(&t.admin),
            Some(json!({"planned_end": T0})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_422(&r, "planned_end");
    let r = app
        .call_with(
            Method::PATCH,
            &format!("/api/v1/changes/{cid}"),
            Some(&t.admin),
            Some(json!({"description": "pg_upgrade --link"})),
            &[("if-match", "\"9\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);

    // Tasks, in order; reorder; assign.
    let mut tasks = Vec::new();
    for title in ["Back up", "Upgrade", "Verify"] {
        let r = act(&app, &t.admin, &cid, "tasks", Some(json!({"title": title}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        tasks.push(
            r.body["tasks"].as_array().unwrap().last().unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let b = ok(
        &app,
        &t.admin,
        &cid,
        "tasks/reorder",
        Some(json!({"order": [tasks[1], tasks[0], tasks[2]]})),
    )
    .await;
    let order: Vec<&str> = b["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["Upgrade", "Back up", "Verify"]);
    assert_422(
        &act(
            &app,
            &t.admin,
            &cid,
            "tasks/reorder",
            Some(json!({"order": [tasks[0]]})),
        )
        .await,
        "order",
    );
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/changes/{cid}/tasks/{}", tasks[0]),
            Some(&t.admin),
            Some(json!({"assignee_id": m1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let l = get(&app, &t.admin, &format!("/api/v1/changes/{cid}/tasks")).await;
    assert_eq!(l["data"][1]["assignee_id"], m1.to_string());
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/changes/{cid}/tasks/{}", uuid::Uuid::now_v7()),
            Some(&t.admin),
            Some(json!({"status": "closed"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // draft → assess; no vote there; schedule refused.
    assert_eq!(
        code(&act(&app, &t.admin, &cid, "assess", None).await),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_transition"))
    );
    let b = ok(&app, &t.admin, &cid, "submit", None).await;
    assert_eq!(b["status"], "assess");
    assert_eq!(
        code(&vote(&app, &m1_token, &cid, "approve").await),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("action_not_allowed"))
    );
    assert_eq!(
        code(&act(&app, &t.admin, &cid, "schedule", None).await),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_transition"))
    );
    let b = ok(&app, &t.admin, &cid, "assess", None).await;
    assert_eq!(b["status"], "authorize");
    assert_eq!(
        code(&act(&app, &t.admin, &cid, "schedule", None).await),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("not_approved"))
    );

    // The CAB: the admin is no approver; m1 approves once; m3 rejects; m2 decides.
    assert_eq!(
        code(&vote(&app, &t.admin, &cid, "approve").await),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("not_an_approver"))
    );
    let r = vote(&app, &m1_token, &cid, "approve").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["votes"].as_array().unwrap().len(), 1);
    assert!(r.body["approved_at"].is_null());
    assert_eq!(
        code(&vote(&app, &m1_token, &cid, "reject").await),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("already_voted"))
    );
    // The CAB is fixed once voting started.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/changes/{cid}"),
            Some(&t.admin),
            Some(json!({"quorum": "any"})),
        )
        .await;
    assert_eq!(
        code(&r),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("approval_in_progress")
        )
    );
    let r = vote(&app, &m3_token, &cid, "reject").await;
    assert!(r.body["approved_at"].is_null(), "{:?}", r.body);
    let r = vote(&app, &m2_token, &cid, "approve").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["approved_at"].is_string(), "{:?}", r.body);
    assert_eq!(r.body["votes"][2]["comment"], "approve: reviewed the plan");
    let a = get(&app, &t.admin, &format!("/api/v1/changes/{cid}/approvals")).await;
    assert_eq!(
        (a["quorum"].as_str(), a["round"].as_u64()),
        (Some("majority"), Some(1))
    );
    assert_eq!(a["status"], "authorize");

    // Scheduled, then implemented: completion waits for the tasks.
    let b = ok(&app, &t.admin, &cid, "schedule", None).await;
    assert_eq!(b["status"], "scheduled");
    assert_eq!(b["overridden_conflicts"], json!([]));
    let b = ok(&app, &t.admin, &cid, "implement", None).await;
    assert_eq!(b["status"], "implement");
    assert_eq!(
        code(&act(&app, &t.admin, &cid, "complete", None).await),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("open_tasks"))
    );
    for task in &tasks {
        let r = app
            .call(
                Method::PATCH,
                &format!("/api/v1/changes/{cid}/tasks/{task}"),
                Some(&t.admin),
                Some(json!({"status": "closed"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    assert_eq!(
        code(
            &app.call(
                Method::PATCH,
                &format!("/api/v1/changes/{cid}/tasks/{}", tasks[0]),
                Some(&t.admin),
                Some(json!({"assignee_id": m2})),
            )
            .await
        ),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("task_closed"))
    );
    assert_eq!(
        ok(&app, &t.admin, &cid, "complete", None).await["status"],
        "review"
    );
    assert_eq!(
        code(
            &act(
                &app,
                &t.admin,
                &cid,
                "cancel",
                Some(json!({"reason": "late"}))
            )
            .await
        ),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_transition"))
    );
    let b = ok(&app, &t.admin, &cid, "close", None).await;
    assert_eq!(b["status"], "closed");
    assert!(b["closed_at"].is_string());
    assert_eq!(b["allowed_actions"], json!([]));
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/changes/{cid}"),
            Some(&t.admin),
            Some(json!({"title": "again"})),
        )
        .await;
    assert_eq!(
        code(&r),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("action_not_allowed"))
    );

    // Standard: straight to scheduled. Emergency: straight to authorize.
    let s = change(
        &app,
        &t.admin,
        json!({"title": "Rotate logs", "change_type": "standard", "planned_start": T2, "planned_end": T3}),
    )
    .await;
    assert_eq!(
        code(&act(&app, &t.admin, &id(&s), "submit", None).await),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_transition"))
    );
    assert_eq!(
        ok(&app, &t.admin, &id(&s), "schedule", None).await["status"],
        "scheduled"
    );
    let e = change(
        &app,
        &t.admin,
        json!({"title": "Hotfix", "change_type": "emergency", "approvers": [m1]}),
    )
    .await;
    assert_eq!(
        ok(&app, &t.admin, &id(&e), "submit", None).await["status"],
        "authorize"
    );
    // Approved by the only approver, but it has no window yet.
    assert!(vote(&app, &m1_token, &id(&e), "approve").await.body["approved_at"].is_string());
    assert_eq!(
        code(&act(&app, &t.admin, &id(&e), "schedule", None).await),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("window_required"))
    );

    // The list: filters and the pagination object.
    let l = get(
        &app,
        &t.admin,
        "/api/v1/changes?change_type=normal&change_type=emergency",
    )
    .await;
    assert_eq!(l["pagination"]["total_items"], 2);
    let l = get(&app, &t.admin, &format!("/api/v1/changes?ci_id={db}")).await;
    assert_eq!(l["data"][0]["id"], cid.as_str());
    let l = get(&app, &t.admin, "/api/v1/changes?status=scheduled").await;
    assert_eq!(l["data"][0]["id"], id(&s).as_str());
    assert_422(
        &app.call(
            Method::GET,
            "/api/v1/changes?status=open",
            Some(&t.admin),
            None,
        )
        .await,
        "status",
    );
    app.stop().await;
}

#[tokio::test]
async fn a_rejection_reassesses_or_cancels_by_policy() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (m1, m1_token) = app.user(&t.admin, "manager").await;
    let (m2, m2_token) = app.user(&t.admin, "manager").await;
    // quorum all, reassess: one rejection sends it back to assess, a new round.
    let c = change(
        &app,
        &t.admin,
        json!({"title": "Firewall rule", "change_type": "normal", "approvers": [m1, m2], "quorum": "all"}),
    )
    .await;
    let cid = id(&c);
    ok(&app, &t.admin, &cid, "submit", None).await;
    ok(&app, &t.admin, &cid, "assess", None).await;
    vote(&app, &m1_token, &cid, "approve").await;
    let r = vote(&app, &m2_token, &cid, "reject").await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["round"].as_u64()),
        (Some("assess"), Some(2))
    );
    assert_eq!(r.body["votes"], json!([]));
    ok(&app, &t.admin, &cid, "assess", None).await;
    // In the new round m2 may vote again; quorum "all" needs both.
    vote(&app, &m2_token, &cid, "approve").await;
    let r = vote(&app, &m1_token, &cid, "approve").await;
    assert!(r.body["approved_at"].is_string(), "{:?}", r.body);

    // quorum any, cancel: every approver rejects → cancelled.
    let c = change(
        &app,
        &t.admin,
        json!({"title": "Risky", "change_type": "emergency", "approvers": [m1, m2],
               "quorum": "any", "on_rejection": "cancel"}),
    )
    .await;
    let cid = id(&c);
    ok(&app, &t.admin, &cid, "submit", None).await;
    let r = vote(&app, &m1_token, &cid, "reject").await;
    assert_eq!(r.body["status"], "authorize");
    let r = vote(&app, &m2_token, &cid, "reject").await;
    assert_eq!(r.body["status"], "cancelled");
    let b = get(&app, &t.admin, &format!("/api/v1/changes/{cid}")).await;
    assert!(b["cancelled_at"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn overlapping_changes_on_dependent_cis_conflict_and_an_override_is_audited() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let db = ci(&app, &t.admin, "db").await;
    let api = ci(&app, &t.admin, "api").await;
    let web = ci(&app, &t.admin, "web").await;
    let other = ci(&app, &t.admin, "printer").await;
    // web depends on api, api runs on db.
    for (s, target, ty) in [(&web, &api, "depends_on"), (&api, &db, "runs_on")] {
        let r = app
            .call(
                Method::POST,
                &format!("/api/v1/cis/{s}/relationships"),
                Some(&t.admin),
                Some(json!({"target_id": target, "type": ty})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let std_change = |title: &str, ci: &str, start: &str, end: &str| {
        json!({"title": title, "change_type": "standard", "ci_ids": [ci],
               "planned_start": start, "planned_end": end})
    };
    // A: the database, scheduled first.
    let a = id(&change(&app, &t.admin, std_change("Patch db", &db, T0, T2)).await);
    ok(&app, &t.admin, &a, "schedule", None).await;
    // B: the web tier (depends on db transitively), overlapping: a conflict.
    let b = id(&change(&app, &t.admin, std_change("Deploy web", &web, T1, T3)).await);
    // C: an unrelated CI, overlapping: none. D: the db, after A: none.
    let c = id(&change(&app, &t.admin, std_change("Printer driver", &other, T1, T3)).await);
    let d = id(&change(&app, &t.admin, std_change("Vacuum db", &db, T2, T3)).await);

    let conflicts = get(&app, &t.admin, "/api/v1/changes/conflicts").await;
    let flagged: Vec<&str> = conflicts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["change"]["id"].as_str().unwrap())
        .collect();
    // Only B is flagged: C's CI is unrelated, D starts when A ends, A is the scheduled one.
    assert_eq!(flagged, [b.as_str()], "{conflicts}");
    let with: Vec<&str> = conflicts["data"][0]["conflicts_with"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(with, [a.as_str()]);

    // Scheduling B without an override: 409 naming A.
    let r = act(&app, &t.admin, &b, "schedule", None).await;
    assert_eq!(
        code(&r),
        (StatusCode::CONFLICT, Some("conflict")),
        "{:?}",
        r.body
    );
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains(&a),
        "{:?}",
        r.body
    );
    assert_422(
        &act(
            &app,
            &t.admin,
            &b,
            "schedule",
            Some(json!({"override_conflicts": true})),
        )
        .await,
        "reason",
    );
    // C and D schedule without trouble.
    ok(&app, &t.admin, &c, "schedule", None).await;
    ok(&app, &t.admin, &d, "schedule", None).await;
    // With the override: scheduled, and the event says why, and over what.
    let r = ok(
        &app,
        &t.admin,
        &b,
        "schedule",
        Some(json!({"override_conflicts": true, "reason": "CAB agreed: db patch is online"})),
    )
    .await;
    assert_eq!(r["status"], "scheduled");
    // D (the db, scheduled meanwhile) overlaps B too.
    assert_eq!(r["overridden_conflicts"], json!([a, d]));
    let (data, actor): (Value, String) = sqlx::query_as(
        "SELECT data, metadata->>'actor' FROM events WHERE stream_id = $1 AND event_type = 'ChangeScheduled'",
    )
    .bind(b.parse::<uuid::Uuid>().unwrap())
    .fetch_one(&app.db.superuser)
    .await
    .unwrap();
    assert_eq!(data["conflicts"], json!([a, d]));
    assert_eq!(data["override_reason"], "CAB agreed: db patch is online");
    assert_eq!(actor, format!("user:{}", t.admin_id));
    let audit = get(&app, &t.admin, &format!("/api/v1/audit/streams/{b}")).await;
    assert!(audit.to_string().contains("CAB agreed: db patch is online"));

    // The impact analysis of the db shows its scheduled changes and those of its dependents.
    let i = get(&app, &t.admin, &format!("/api/v1/cis/{db}/impact")).await;
    let own: Vec<&str> = i["scheduled_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(own, [a.as_str(), d.as_str()]);
    assert_eq!(i["summary"]["scheduled_changes"], 3, "{i}");

    // The calendar.
    let cal = get(
        &app,
        &t.admin,
        "/api/v1/changes/calendar?from=2030-03-01T23:30:00Z&to=2030-03-02T00:30:00Z",
    )
    .await;
    let ids: Vec<&str> = cal["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str(), b.as_str(), c.as_str(), d.as_str()]);
    let cal = get(
        &app,
        &t.admin,
        "/api/v1/changes/calendar?from=2030-03-01T00:00:00Z&to=2030-03-01T22:30:00Z",
    )
    .await;
    assert_eq!(cal["data"].as_array().unwrap().len(), 1);
    for (q, field) in [
        ("from=2030-03-02T00:00:00Z", "to"),
        ("from=2030-03-02T00:00:00Z&to=2030-03-01T00:00:00Z", "to"),
        ("from=yesterday&to=2030-03-01T00:00:00Z", "from"),
        ("from=2030-01-01T00:00:00Z&to=2031-06-01T00:00:00Z", "to"),
    ] {
        assert_422(
            &app.call(
                Method::GET,
                &format!("/api/v1/changes/calendar?{q}"),
                Some(&t.admin),
                None,
            )
            .await,
            field,
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn changes_respect_roles_and_tenants() {
    let app = TestApp::spawn().await;
    let a = app.tenant("A").await;
    let b = app.tenant("B").await;
    let c = change(
        &app,
        &a.admin,
        json!({"title": "A's change", "change_type": "standard", "planned_start": T0, "planned_end": T1}),
    )
    .await;
    let cid = id(&c);
    let r = act(
        &app,
        &a.admin,
        &cid,
        "tasks",
        Some(json!({"title": "step"})),
    )
    .await;
    let task = r.body["tasks"][0]["id"].as_str().unwrap().to_owned();
    ok(&app, &a.admin, &cid, "schedule", None).await;
    for (m, path, body) in [
        (Method::GET, format!("/api/v1/changes/{cid}"), None),
        (
            Method::PATCH,
            format!("/api/v1/changes/{cid}"),
            Some(json!({"title": "mine"})),
        ),
        (
            Method::POST,
            format!("/api/v1/changes/{cid}/implement"),
            None,
        ),
        (Method::GET, format!("/api/v1/changes/{cid}/tasks"), None),
        (
            Method::POST,
            format!("/api/v1/changes/{cid}/tasks"),
            Some(json!({"title": "x"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/changes/{cid}/tasks/{task}"),
            Some(json!({"status": "closed"})),
        ),
        (
            Method::GET,
            format!("/api/v1/changes/{cid}/approvals"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/changes/{cid}/approvals"),
            Some(json!({"decision": "approve", "comment": "x"})),
        ),
    ] {
        let r = app.call(m.clone(), &path, Some(&b.admin), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {path}: {:?}", r.body);
    }
    for path in [
        "/api/v1/changes",
        "/api/v1/changes/conflicts",
        "/api/v1/changes/calendar?from=2030-01-01T00:00:00Z&to=2030-12-01T00:00:00Z",
    ] {
        assert_eq!(get(&app, &b.admin, path).await["data"], json!([]), "{path}");
    }
    let (_, operator) = app.user(&a.admin, "operator").await;
    let (_, requester) = app.user(&a.admin, "user").await;
    assert_eq!(
        get(&app, &operator, "/api/v1/changes").await["data"][0]["id"],
        cid.as_str()
    );
    let r = app
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&operator),
            Some(json!({"title": "t", "change_type": "standard"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = act(&app, &operator, &cid, "implement", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(Method::GET, "/api/v1/changes", Some(&requester), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    app.stop().await;
}
