//! `Idempotency-Key` on every POST: a retry replays the first answer, another body with the same
//! key is refused, keys are per tenant, and a failed attempt does not stick.

use super::app::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_retried_post_replays_the_first_answer_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let key = [("idempotency-key", "team-create-1")];
    let body = json!({"name": "Network"});
    let first = app
        .call_with(
            Method::POST,
            "/api/v1/teams",
            Some(&t.admin),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = app
        .call_with(
            Method::POST,
            "/api/v1/teams",
            Some(&t.admin),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let teams = app
        .call(Method::GET, "/api/v1/teams", Some(&t.admin), None)
        .await;
    assert_eq!(teams.body["pagination"]["total_items"], 1);

    // The same key with another body: 422, nothing created.
    let other = app
        .call_with(
            Method::POST,
            "/api/v1/teams",
            Some(&t.admin),
            Some(json!({"name": "Servers"})),
            &key,
        )
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.body["error"]["code"], "idempotency_key_reused");
    // Keys belong to a tenant: another tenant's identical key is a new request.
    let b = app.tenant("Beta").await;
    let theirs = app
        .call_with(
            Method::POST,
            "/api/v1/teams",
            Some(&b.admin),
            Some(body),
            &key,
        )
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_ne!(theirs.body["id"], first.body["id"]);
    assert_eq!(theirs.header("idempotent-replayed"), None);
    // A malformed key is a 422 naming the header.
    let long = "k".repeat(256);
    let bad = app
        .call_with(
            Method::POST,
            "/api/v1/teams",
            Some(&t.admin),
            Some(json!({"name": "Desk"})),
            &[("idempotency-key", long.as_str())],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.error_field(), Some("Idempotency-Key"));
    app.stop().await;
}

#[tokio::test]
async fn retried_actions_and_notes_run_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let inc = app.incident(&t.admin, "Mail down").await;
    let id = inc["id"].as_str().expect("id");
    let start = format!("/api/v1/incidents/{id}/start");
    let key = [("idempotency-key", "start-1")];
    let first = app
        .call_with(Method::POST, &start, Some(&t.admin), None, &key)
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    // Without the key, a second start is an invalid transition; with it, the first answer.
    let again = app
        .call_with(Method::POST, &start, Some(&t.admin), None, &key)
        .await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.body, first.body);
    let plain = app.call(Method::POST, &start, Some(&t.admin), None).await;
    assert_eq!(plain.status, StatusCode::UNPROCESSABLE_ENTITY);

    let notes = format!("/api/v1/incidents/{id}/work-notes");
    let note = json!({"content": "Restarted the relay", "is_public": true});
    for _ in 0..3 {
        let r = app
            .call_with(
                Method::POST,
                &notes,
                Some(&t.admin),
                Some(note.clone()),
                &[("idempotency-key", "note-1")],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let d = app
        .call(
            Method::GET,
            &format!("/api/v1/incidents/{id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(d.body["work_notes"].as_array().map(Vec::len), Some(1));

    // An answer a retry should not repeat (here 412, a stale If-Match) is not kept.
    let patch_key = [("idempotency-key", "patch-1"), ("if-match", "\"1\"")];
    let r = app
        .call_with(
            Method::POST,
            &format!("/api/v1/incidents/{id}/hold"),
            Some(&t.admin),
            Some(json!({"reason": "awaiting_caller"})),
            &patch_key,
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{:?}", r.body);
    let r = app
        .call_with(
            Method::POST,
            &format!("/api/v1/incidents/{id}/hold"),
            Some(&t.admin),
            Some(json!({"reason": "awaiting_caller"})),
            &[("idempotency-key", "patch-1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    app.stop().await;
}
