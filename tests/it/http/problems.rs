//! Problems and the known-error database over HTTP (issue #8, ADR 0021): the lifecycle and its
//! refusals, linked incidents (one problem per incident), the known-error search with Japanese
//! substrings, the workaround suggested on matching incidents, and the work note the problem
//! reactor adds to each linked incident when the problem is resolved — once, even when the
//! reactor's work is replayed.

use super::app::{Resp, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
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

fn assert_rule(r: &Resp, code: &str) {
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
        "{:?}",
        r.body
    );
}

async fn problem(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app
        .call(Method::POST, "/api/v1/problems", Some(token), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

async fn action(app: &TestApp, token: &str, pid: &str, what: &str, body: Option<Value>) -> Resp {
    app.call(
        Method::POST,
        &format!("/api/v1/problems/{pid}/{what}"),
        Some(token),
        body,
    )
    .await
}

async fn ok(app: &TestApp, token: &str, pid: &str, what: &str, body: Option<Value>) -> Value {
    let r = action(app, token, pid, what, body).await;
    assert_eq!(r.status, StatusCode::OK, "{what}: {:?}", r.body);
    r.body
}

async fn category(app: &TestApp, admin: &str, name: &str) -> String {
    let r = app
        .call(
            Method::POST,
            "/api/v1/categories",
            Some(admin),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    id(&r.body)
}

async fn incident_with(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app
        .call(Method::POST, "/api/v1/incidents", Some(token), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let r = app.call(Method::GET, path, Some(token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
    r.body
}

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .map(|x| {
            x["id"]
                .as_str()
                .or(x["problem_id"].as_str())
                .expect("id")
                .to_owned()
        })
        .collect()
}

/// The work notes of an incident written by the problem reactor (the system).
async fn system_notes(app: &TestApp, token: &str, incident: &str) -> Vec<Value> {
    get(app, token, &format!("/api/v1/incidents/{incident}")).await["work_notes"]
        .as_array()
        .expect("work_notes")
        .iter()
        .filter(|n| n["created_by"]["actor"] == "system")
        .cloned()
        .collect()
}

/// Waits until the incident has `n` system notes (the reactor works asynchronously).
async fn wait_for_notes(app: &TestApp, token: &str, incident: &str, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let notes = system_notes(app, token, incident).await;
        if notes.len() >= n {
            return notes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("incident {incident} never got {n} system note(s)");
}

// ------------------------------------------------------------------------------------------
// Lifecycle
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_problem_goes_through_its_lifecycle_and_refuses_what_the_table_refuses() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;

    // Validation: unknown fields, bad values, references of nothing.
    let r = app
        .call(
            Method::POST,
            "/api/v1/problems",
            Some(&t.admin),
            Some(json!({"title": "x", "status": "resolved"})),
        )
        .await;
    assert_422(&r, "status");
    let r = app
        .call(
            Method::POST,
            "/api/v1/problems",
            Some(&t.admin),
            Some(json!({"title": "  "})),
        )
        .await;
    assert_422(&r, "title");
    let r = app
        .call(
            Method::POST,
            "/api/v1/problems",
            Some(&t.admin),
            Some(json!({"title": "x", "category_id": uuid::Uuid::now_v7()})),
        )
        .await;
    assert_422(&r, "category_id");

    // Create: 201 with Location and ETag, status new, default priority.
    let r = app
        .call(
            Method::POST,
            "/api/v1/problems",
            Some(&t.admin),
            Some(json!({"title": "メールサーバーが断続的に停止する", "description": "SMTP relay"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let pid = id(&r.body);
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/problems/{pid}").as_str())
    );
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["status"], "new");
    assert_eq!(r.body["priority"], "medium");
    assert_eq!(r.body["known_error"], false);
    assert_eq!(r.body["incident_ids"], json!([]));
    assert_eq!(
        r.body["allowed_actions"],
        json!([
            "update",
            "start_investigation",
            "link_incident",
            "unlink_incident"
        ])
    );

    // Get with ETag; PATCH honours If-Match.
    let g = app
        .call(
            Method::GET,
            &format!("/api/v1/problems/{pid}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        (g.status, g.header("etag")),
        (StatusCode::OK, Some("\"1\""))
    );
    let stale = app
        .call_with(
            Method::PATCH,
            &format!("/api/v1/problems/{pid}"),
            Some(&t.admin),
            Some(json!({"priority": "high"})),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let p = app
        .call_with(
            Method::PATCH,
            &format!("/api/v1/problems/{pid}"),
            Some(&t.admin),
            Some(json!({"priority": "high", "root_cause": "証明書の期限切れ"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{:?}", p.body);
    assert_eq!(p.header("etag"), Some("\"2\""));
    assert_eq!(p.body["priority"], "high");
    assert_eq!(p.body["root_cause"], "証明書の期限切れ");
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/problems/{pid}"),
            Some(&t.admin),
            Some(json!({"incident_ids": []})),
        )
        .await;
    assert_422(&r, "incident_ids");

    // Rejected transitions from new.
    assert_rule(
        &action(
            &app,
            &t.admin,
            &pid,
            "known-error",
            Some(json!({"workaround": "w"})),
        )
        .await,
        "invalid_transition",
    );
    assert_rule(
        &action(
            &app,
            &t.admin,
            &pid,
            "resolve",
            Some(json!({"resolution": "r"})),
        )
        .await,
        "invalid_transition",
    );
    assert_rule(
        &action(&app, &t.admin, &pid, "close", None).await,
        "invalid_transition",
    );

    // new → investigating; again is refused.
    let b = ok(&app, &t.admin, &pid, "investigate", None).await;
    assert_eq!(b["status"], "investigating");
    assert_rule(
        &action(&app, &t.admin, &pid, "investigate", None).await,
        "invalid_transition",
    );

    // A known error needs a workaround.
    assert_422(
        &action(&app, &t.admin, &pid, "known-error", None).await,
        "workaround",
    );
    let b = ok(
        &app,
        &t.admin,
        &pid,
        "known-error",
        Some(json!({"workaround": "リレーを再起動する"})),
    )
    .await;
    assert_eq!(b["status"], "known_error");
    assert_eq!(b["known_error"], true);
    assert_eq!(b["workaround"], "リレーを再起動する");
    assert_eq!(b["root_cause"], "証明書の期限切れ");
    assert!(b["known_error_at"].is_string());
    // Once published, the workaround cannot be cleared.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/problems/{pid}"),
            Some(&t.admin),
            Some(json!({"workaround": null})),
        )
        .await;
    assert_422(&r, "workaround");
    assert_rule(
        &action(&app, &t.admin, &pid, "close", None).await,
        "invalid_transition",
    );

    // known_error → resolved → closed, then final.
    assert_422(
        &action(&app, &t.admin, &pid, "resolve", Some(json!({}))).await,
        "resolution",
    );
    let b = ok(
        &app,
        &t.admin,
        &pid,
        "resolve",
        Some(json!({"resolution": "証明書を更新し自動化した"})),
    )
    .await;
    assert_eq!(b["status"], "resolved");
    assert!(b["resolved_at"].is_string());
    let b = ok(&app, &t.admin, &pid, "close", None).await;
    assert_eq!(b["status"], "closed");
    assert_eq!(b["known_error"], false);
    assert_eq!(b["allowed_actions"], json!([]));
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/problems/{pid}"),
            Some(&t.admin),
            Some(json!({"title": "again"})),
        )
        .await;
    assert_rule(&r, "action_not_allowed");

    // A second problem resolved straight from investigating (known_error is optional).
    let q = problem(&app, &t.admin, json!({"title": "Disk fills up"})).await;
    let qid = id(&q);
    ok(&app, &t.admin, &qid, "investigate", None).await;
    let b = ok(
        &app,
        &t.admin,
        &qid,
        "resolve",
        Some(json!({"resolution": "Log rotation"})),
    )
    .await;
    assert_eq!(
        (b["status"].as_str(), b["known_error"].as_bool()),
        (Some("resolved"), Some(false))
    );

    // The list: newest first, filters, Japanese search, pagination object.
    let l = get(&app, &t.admin, "/api/v1/problems").await;
    assert_eq!(ids(&l), vec![qid.clone(), pid.clone()]);
    assert_eq!(l["pagination"]["total_items"], 2);
    assert_eq!(l["pagination"]["current_page"], 1);
    assert_eq!(l["pagination"]["has_next"], false);
    let l = get(&app, &t.admin, "/api/v1/problems?status=closed").await;
    assert_eq!(ids(&l), vec![pid.clone()]);
    let l = get(
        &app,
        &t.admin,
        "/api/v1/problems?status=closed&status=resolved",
    )
    .await;
    assert_eq!(ids(&l).len(), 2);
    let l = get(&app, &t.admin, "/api/v1/problems?q=%E6%96%AD%E7%B6%9A").await; // 断続
    assert_eq!(ids(&l), vec![pid.clone()]);
    let l = get(&app, &t.admin, "/api/v1/problems?q=rotation").await; // in the resolution? no
    assert_eq!(ids(&l), Vec::<String>::new());
    let l = get(&app, &t.admin, "/api/v1/problems?limit=1").await;
    assert_eq!(
        (
            l["pagination"]["total_pages"].as_u64(),
            l["pagination"]["has_next"].as_bool()
        ),
        (Some(2), Some(true))
    );
    let l = get(&app, &t.admin, "/api/v1/problems?limit=1&cursor=").await;
    let next = l["pagination"]["next_cursor"].as_str().unwrap().to_owned();
    let l2 = get(
        &app,
        &t.admin,
        &format!("/api/v1/problems?limit=1&cursor={next}"),
    )
    .await;
    assert_eq!(ids(&l2), vec![pid.clone()]);
    assert_422(
        &app.call(
            Method::GET,
            "/api/v1/problems?colour=red",
            Some(&t.admin),
            None,
        )
        .await,
        "colour",
    );
    assert_422(
        &app.call(
            Method::GET,
            "/api/v1/problems?status=open",
            Some(&t.admin),
            None,
        )
        .await,
        "status",
    );
    // An id that is not a UUID, or no such problem: 404.
    for path in [
        "/api/v1/problems/nope",
        &format!("/api/v1/problems/{}", uuid::Uuid::now_v7()),
    ] {
        let r = app.call(Method::GET, path, Some(&t.admin), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    // An incident's id is not a problem's.
    let inc = app.incident(&t.admin, "not a problem").await;
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/problems/{}", id(&inc)),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// Links, known errors and the incident side
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn linked_incidents_show_their_problem_and_get_one_note_when_it_is_resolved() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let p = problem(&app, &t.admin, json!({"title": "Relay drops mail"})).await;
    let pid = id(&p);
    let other = problem(&app, &t.admin, json!({"title": "Another"})).await;
    let oid = id(&other);
    let i1 = id(&app.incident(&t.admin, "Mail bounced").await);
    let i2 = id(&app.incident(&t.admin, "Mail late").await);
    let i3 = id(&app.incident(&t.admin, "Unrelated").await);

    // Link two (an If-Match is honoured), the same one again changes nothing.
    let link = |pid: String, inc: String| {
        let app = &app;
        let token = t.admin.clone();
        async move {
            app.call(
                Method::POST,
                &format!("/api/v1/problems/{pid}/incidents"),
                Some(&token),
                Some(json!({"incident_id": inc})),
            )
            .await
        }
    };
    let r = link(pid.clone(), i1.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["incident_ids"], json!([i1]));
    assert_eq!(r.header("etag"), Some("\"2\""));
    let stale = app
        .call_with(
            Method::POST,
            &format!("/api/v1/problems/{pid}/incidents"),
            Some(&t.admin),
            Some(json!({"incident_id": i2})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let r = link(pid.clone(), i2.clone()).await;
    assert_eq!(r.body["incident_ids"], json!([i1, i2]));
    let r = link(pid.clone(), i1.clone()).await;
    assert_eq!(
        (r.status, r.header("etag")),
        (StatusCode::OK, Some("\"3\""))
    );

    // One problem per incident: 409 naming the holder. Not an incident: 422. Not linked: 404.
    let r = link(oid.clone(), i1.clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains(&pid),
        "{:?}",
        r.body
    );
    let r = link(pid.clone(), pid.clone()).await;
    assert_422(&r, "incident_id");
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/problems/{pid}/incidents/{i3}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = link(uuid::Uuid::now_v7().to_string(), i3.clone()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The incident detail shows its problem; the list of linked incidents shows them.
    let d = get(&app, &t.admin, &format!("/api/v1/incidents/{i1}")).await;
    assert_eq!(d["problem_id"], pid.as_str());
    let d = get(&app, &t.admin, &format!("/api/v1/incidents/{i3}")).await;
    assert!(d["problem_id"].is_null());
    let l = get(&app, &t.admin, &format!("/api/v1/problems/{pid}/incidents")).await;
    assert_eq!(ids(&l), vec![i1.clone(), i2.clone()]);
    assert_eq!(l["data"][0]["title"], "Mail bounced");
    assert_eq!(l["data"][0]["incident_number"], "INC000001");
    let l = get(
        &app,
        &t.admin,
        &format!("/api/v1/problems?incident_id={i2}"),
    )
    .await;
    assert_eq!(ids(&l), vec![pid.clone()]);

    // Unlink frees the incident for another problem.
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/problems/{pid}/incidents/{i2}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["incident_ids"], json!([i1]));
    let d = get(&app, &t.admin, &format!("/api/v1/incidents/{i2}")).await;
    assert!(d["problem_id"].is_null());
    let r = link(oid.clone(), i2.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = link(pid.clone(), i3.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // Resolve: each incident linked at that moment (i1, i3) gets exactly one internal note by
    // the system; i2 (now the other problem's) none.
    ok(&app, &t.admin, &pid, "investigate", None).await;
    ok(
        &app,
        &t.admin,
        &pid,
        "resolve",
        Some(json!({"resolution": "Renewed the certificate"})),
    )
    .await;
    for inc in [&i1, &i3] {
        let notes = wait_for_notes(&app, &t.admin, inc, 1).await;
        assert_eq!(notes.len(), 1, "{notes:?}");
        let body = notes[0]["content"].as_str().unwrap();
        assert!(
            body.contains("Relay drops mail") && body.contains("Renewed the certificate"),
            "{body}"
        );
        assert_eq!(notes[0]["is_public"], false);
    }
    // The reactor's work is done: every row is marked.
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM problem_incident_notes WHERE done_at IS NULL")
            .fetch_one(&app.db.superuser)
            .await
            .unwrap();
    assert_eq!(pending, 0);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM problem_incident_notes")
        .fetch_one(&app.db.superuser)
        .await
        .unwrap();
    assert_eq!(rows, 2);

    // A retry (as after a crash between the append and the marking) adds nothing.
    sqlx::query("UPDATE problem_incident_notes SET done_at = NULL")
        .execute(&app.db.superuser)
        .await
        .unwrap();
    for _ in 0..300 {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM problem_incident_notes WHERE done_at IS NULL")
                .fetch_one(&app.db.superuser)
                .await
                .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for inc in [&i1, &i3] {
        assert_eq!(system_notes(&app, &t.admin, inc).await.len(), 1, "{inc}");
    }
    assert!(system_notes(&app, &t.admin, &i2).await.is_empty());
    let notes_in_log: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'IncidentWorkNoteAdded' \
         AND metadata->>'actor' = 'system:problem-reactor'",
    )
    .fetch_one(&app.db.superuser)
    .await
    .unwrap();
    assert_eq!(notes_in_log, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_published_known_error_is_searchable_and_suggested_to_matching_incidents() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let mail = category(&app, &t.admin, "メール").await;
    let net = category(&app, &t.admin, "Network").await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/cis",
            Some(&t.admin),
            Some(json!({"type": "server", "name": "smtp-01"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let ci = id(&r.body);

    // By category.
    let p = problem(
        &app,
        &t.admin,
        json!({"title": "メールサーバー接続エラー", "category_id": mail,
               "workaround": "送信キューを再起動する"}),
    )
    .await;
    let pid = id(&p);
    // By CI.
    let q = problem(
        &app,
        &t.admin,
        json!({"title": "Relay CPU spikes", "ci_id": ci, "root_cause": "regex backtracking"}),
    )
    .await;
    let qid = id(&q);
    // Not published: never suggested.
    problem(
        &app,
        &t.admin,
        json!({"title": "Draft about mail", "category_id": mail, "workaround": "nothing yet"}),
    )
    .await;

    // Nothing is in the known-error database before publication.
    let k = get(&app, &t.admin, "/api/v1/known-errors").await;
    assert_eq!(k["data"], json!([]));
    assert_eq!(k["pagination"]["total_items"], 0);
    let before = incident_with(
        &app,
        &t.admin,
        json!({"title": "メールが送れない", "category_id": mail}),
    )
    .await;
    assert_eq!(before["suggested_known_errors"], json!([]));

    for (pid, body) in [
        (&pid, json!({})),
        (&qid, json!({"workaround": "Fail over to smtp-02"})),
    ] {
        ok(&app, &t.admin, pid, "investigate", None).await;
        ok(&app, &t.admin, pid, "known-error", Some(body)).await;
    }

    // The known-error database, searched with Japanese substrings and in the workaround.
    let k = get(&app, &t.admin, "/api/v1/known-errors").await;
    assert_eq!(ids(&k), vec![qid.clone(), pid.clone()]);
    assert_eq!(k["pagination"]["total_items"], 2);
    let k = get(&app, &t.admin, "/api/v1/known-errors?q=%E6%8E%A5%E7%B6%9A").await; // 接続
    assert_eq!(ids(&k), vec![pid.clone()]);
    assert_eq!(k["data"][0]["workaround"], "送信キューを再起動する");
    let k = get(
        &app,
        &t.admin,
        "/api/v1/known-errors?q=%E3%82%AD%E3%83%A5%E3%83%BC",
    )
    .await; // キュー
    assert_eq!(ids(&k), vec![pid.clone()]);
    let k = get(&app, &t.admin, "/api/v1/known-errors?q=SMTP-02").await;
    assert_eq!(ids(&k), vec![qid.clone()]);
    let k = get(&app, &t.admin, "/api/v1/known-errors?q=100%25").await;
    assert_eq!(k["data"], json!([]));
    assert_422(
        &app.call(
            Method::GET,
            "/api/v1/known-errors?status=x",
            Some(&t.admin),
            None,
        )
        .await,
        "status",
    );

    // The incidents: by category, by CI, both, neither; the one logged before publication
    // shows it too (a read-model join).
    let by_cat = incident_with(
        &app,
        &t.admin,
        json!({"title": "メール遅延", "category_id": mail}),
    )
    .await;
    let s = &by_cat["suggested_known_errors"];
    assert_eq!(s.as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s[0]["problem_id"], pid.as_str());
    assert_eq!(s[0]["workaround"], "送信キューを再起動する");
    let by_ci = incident_with(
        &app,
        &t.admin,
        json!({"title": "Slow relay", "category_id": net, "ci_id": ci}),
    )
    .await;
    assert_eq!(
        by_ci["suggested_known_errors"][0]["workaround"],
        "Fail over to smtp-02"
    );
    assert_eq!(by_ci["suggested_known_errors"].as_array().unwrap().len(), 1);
    let both = incident_with(
        &app,
        &t.admin,
        json!({"title": "Both", "category_id": mail, "ci_id": ci}),
    )
    .await;
    assert_eq!(
        ids(&json!({"data": both["suggested_known_errors"]})),
        vec![qid.clone(), pid.clone()]
    );
    let neither = incident_with(
        &app,
        &t.admin,
        json!({"title": "Printer", "category_id": net}),
    )
    .await;
    assert_eq!(neither["suggested_known_errors"], json!([]));
    let d = get(
        &app,
        &t.admin,
        &format!("/api/v1/incidents/{}", id(&before)),
    )
    .await;
    assert_eq!(d["suggested_known_errors"][0]["problem_id"], pid.as_str());

    // A requester sees no problem data on their own incident.
    let (_, user) = app.user(&t.admin, "user").await;
    let mine = incident_with(
        &app,
        &user,
        json!({"title": "My mail", "category_id": mail}),
    )
    .await;
    assert_eq!(mine["suggested_known_errors"], json!([]));

    // A resolved known error stays suggested; a closed one leaves the database.
    ok(
        &app,
        &t.admin,
        &pid,
        "resolve",
        Some(json!({"resolution": "Patched"})),
    )
    .await;
    let k = get(&app, &t.admin, "/api/v1/known-errors").await;
    assert_eq!(ids(&k).len(), 2);
    assert_eq!(k["data"][1]["status"], "resolved");
    ok(&app, &t.admin, &pid, "close", None).await;
    let k = get(&app, &t.admin, "/api/v1/known-errors").await;
    assert_eq!(ids(&k), vec![qid.clone()]);
    let d = get(
        &app,
        &t.admin,
        &format!("/api/v1/incidents/{}", id(&by_cat)),
    )
    .await;
    assert_eq!(d["suggested_known_errors"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn problems_respect_roles_and_tenants() {
    let app = TestApp::spawn().await;
    let a = app.tenant("A").await;
    let b = app.tenant("B").await;
    let p = problem(
        &app,
        &a.admin,
        json!({"title": "A's problem", "workaround": "w"}),
    )
    .await;
    let pid = id(&p);
    let inc = id(&app.incident(&a.admin, "A's incident").await);
    ok(&app, &a.admin, &pid, "investigate", None).await;
    ok(&app, &a.admin, &pid, "known-error", None).await;

    // Another tenant: 404 on every problem route, nothing in its lists, and it cannot link
    // its problem to A's incident.
    for (m, path, body) in [
        (Method::GET, format!("/api/v1/problems/{pid}"), None),
        (
            Method::PATCH,
            format!("/api/v1/problems/{pid}"),
            Some(json!({"title": "mine"})),
        ),
        (
            Method::POST,
            format!("/api/v1/problems/{pid}/resolve"),
            Some(json!({"resolution": "x"})),
        ),
        (
            Method::GET,
            format!("/api/v1/problems/{pid}/incidents"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/problems/{pid}/incidents"),
            Some(json!({"incident_id": inc})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/problems/{pid}/incidents/{inc}"),
            None,
        ),
    ] {
        let r = app.call(m.clone(), &path, Some(&b.admin), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {path}: {:?}", r.body);
    }
    for path in [
        "/api/v1/problems",
        "/api/v1/known-errors",
        "/api/v1/known-errors?q=A",
    ] {
        let r = get(&app, &b.admin, path).await;
        assert_eq!(r["data"], json!([]), "{path}");
    }
    let bp = problem(&app, &b.admin, json!({"title": "B's"})).await;
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/problems/{}/incidents", id(&bp)),
            Some(&b.admin),
            Some(json!({"incident_id": inc})),
        )
        .await;
    assert_422(&r, "incident_id");

    // Roles: operators and viewers read, only admins and managers write; requesters neither.
    let (_, operator) = app.user(&a.admin, "operator").await;
    let (_, viewer) = app.user(&a.admin, "viewer").await;
    let (_, manager) = app.user(&a.admin, "manager").await;
    let (_, requester) = app.user(&a.admin, "user").await;
    for token in [&operator, &viewer, &manager] {
        assert_eq!(
            get(&app, token, "/api/v1/known-errors").await["data"][0]["problem_id"],
            pid.as_str()
        );
        get(&app, token, &format!("/api/v1/problems/{pid}")).await;
    }
    for (token, who) in [
        (&operator, "operator"),
        (&viewer, "viewer"),
        (&requester, "user"),
    ] {
        let r = app
            .call(
                Method::POST,
                "/api/v1/problems",
                Some(token),
                Some(json!({"title": "t"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who} creates");
        let r = action(
            &app,
            token,
            &pid,
            "resolve",
            Some(json!({"resolution": "x"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who} resolves");
    }
    for path in ["/api/v1/problems", "/api/v1/known-errors"] {
        let r = app.call(Method::GET, path, Some(&requester), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "requester {path}");
    }
    let r = app
        .call(
            Method::POST,
            "/api/v1/problems",
            Some(&manager),
            Some(json!({"title": "by a manager"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    app.stop().await;
}

/// `projections rebuild` of `problems` and `changes` builds the same read models beside the
/// live ones; the reactor's work rows, written again by the rebuild, add no second note.
#[tokio::test]
async fn the_problem_and_change_read_models_rebuild_to_the_same_answers() {
    use eventdesk_projections::Projection;
    use eventdesk_projections::rebuild::{RebuildOptions, rebuild};
    use eventdesk_store::subscription::StopToken;
    use std::sync::Arc;

    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let inc = id(&app.incident(&t.admin, "Mail bounced").await);
    let p = problem(
        &app,
        &t.admin,
        json!({"title": "Relay", "workaround": "restart"}),
    )
    .await;
    let pid = id(&p);
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/problems/{pid}/incidents"),
            Some(&t.admin),
            Some(json!({"incident_id": inc})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    ok(&app, &t.admin, &pid, "investigate", None).await;
    ok(&app, &t.admin, &pid, "known-error", None).await;
    ok(
        &app,
        &t.admin,
        &pid,
        "resolve",
        Some(json!({"resolution": "fixed"})),
    )
    .await;
    wait_for_notes(&app, &t.admin, &inc, 1).await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&t.admin),
            Some(json!({"title": "Patch", "change_type": "standard",
                        "planned_start": "2030-01-01T00:00:00Z", "planned_end": "2030-01-01T01:00:00Z"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let cid = id(&r.body);
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/changes/{cid}/tasks"),
            Some(&t.admin),
            Some(json!({"title": "Step"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    let paths = [
        format!("/api/v1/problems/{pid}"),
        "/api/v1/known-errors".to_owned(),
        format!("/api/v1/changes/{cid}"),
        format!("/api/v1/incidents/{inc}"),
    ];
    let mut before = Vec::new();
    for p in &paths {
        before.push(get(&app, &t.admin, p).await);
    }
    let store = eventdesk_store::PgEventStore::new(app.db.superuser.clone(), Default::default());
    let projections: [Arc<dyn Projection>; 2] = [
        Arc::new(eventdesk_projections::ProblemProjection),
        Arc::new(eventdesk_projections::ChangeProjection),
    ];
    for p in projections {
        let out = rebuild(
            &store,
            p.clone(),
            &RebuildOptions::default(),
            &StopToken::new(),
            &|_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("rebuild {}: {e}", p.name()));
        assert!(out.completed, "{}", p.name());
    }
    for (p, was) in paths.iter().zip(&before) {
        assert_eq!(
            &get(&app, &t.admin, p).await,
            was,
            "{p} changed by the rebuild"
        );
    }
    // The rebuilt work rows are pending again; the reactor finds the note already there.
    for _ in 0..300 {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM problem_incident_notes WHERE done_at IS NULL")
                .fetch_one(&app.db.superuser)
                .await
                .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM problem_incident_notes")
        .fetch_one(&app.db.superuser)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(system_notes(&app, &t.admin, &inc).await.len(), 1);
    app.stop().await;
}
