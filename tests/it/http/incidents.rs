//! Incidents over HTTP: lifecycle, read-your-writes, concurrency, idempotency, errors.

use super::app::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeSet;

#[tokio::test]
async fn incident_lifecycle_end_to_end() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let created = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&t.admin),
            Some(
                json!({"title": "メールサーバー接続エラー", "description": "SMTP relay down",
                        "impact": "extensive", "urgency": "critical"}),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/incidents/{id}").as_str())
    );
    // The creation and the start of its two SLA timers: version 3.
    assert_eq!(created.header("etag"), Some("\"3\""));
    assert_eq!(created.body["incident_number"], "INC000001");
    assert_eq!(created.body["status"], "new");
    // Derived from the ITIL matrix: extensive × critical.
    assert_eq!(created.body["priority"], "critical");

    // Read-your-writes: the list shows it at once, and a Japanese substring finds it.
    let list = app
        .call(
            Method::GET,
            "/api/v1/incidents?q=%E3%82%B5%E3%83%BC%E3%83%90%E3%83%BC",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["data"][0]["id"], id.as_str());
    assert_eq!(
        list.body["pagination"],
        json!({"current_page": 1, "total_pages": 1, "page_size": 20, "total_items": 1,
               "has_next": false, "has_prev": false})
    );

    let (agent, _) = app.user(&t.admin, "operator").await;
    let path = format!("/api/v1/incidents/{id}");
    let r = app
        .call(
            Method::POST,
            &format!("{path}/assign"),
            Some(&t.admin),
            Some(json!({"assignee_id": agent})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("assigned")),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["assignee"]["id"], agent.to_string());
    for (action, body, status) in [
        ("start", None, "in_progress"),
        (
            "hold",
            Some(json!({"reason": "awaiting_vendor"})),
            "on_hold",
        ),
        ("resume", None, "in_progress"),
        (
            "resolve",
            Some(json!({"resolution": "Rotated the relay certificate"})),
            "resolved",
        ),
        (
            "reopen",
            Some(json!({"reason": "Still failing for one domain"})),
            "in_progress",
        ),
        (
            "resolve",
            Some(json!({"resolution": "Fixed DNS for that domain"})),
            "resolved",
        ),
        ("close", None, "closed"),
    ] {
        let r = app
            .call(
                Method::POST,
                &format!("{path}/{action}"),
                Some(&t.admin),
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {:?}", r.body);
        assert_eq!(r.body["status"], status, "{action}");
    }
    // Closed is final: a typed error naming both states.
    let r = app
        .call(
            Method::POST,
            &format!("{path}/reopen"),
            Some(&t.admin),
            Some(json!({"reason": "again"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body["error"]["code"], "invalid_transition",
        "{:?}",
        r.body
    );

    let detail = app.call(Method::GET, &path, Some(&t.admin), None).await;
    let fields: Vec<&str> = detail.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["field_name"].as_str())
        .collect();
    assert!(
        fields.contains(&"status") && fields.contains(&"assignee_id"),
        "{fields:?}"
    );
    assert_eq!(detail.body["reopen_count"], 1);
    assert!(detail.body["closed_at"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn etag_if_match_and_concurrent_updates() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let inc = app.incident(&t.admin, "Printer on fire").await;
    let path = format!("/api/v1/incidents/{}", inc["id"].as_str().unwrap());
    let first = format!("\"{}\"", inc["version"]);
    // A matching If-Match succeeds and moves the ETag.
    let r = app
        .call_with(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"title": "Printer smoking"})),
            &[("if-match", first.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let next = format!("\"{}\"", inc["version"].as_i64().unwrap() + 1);
    assert_eq!(r.header("etag"), Some(next.as_str()));
    // The old ETag is now stale: 412, and nothing changes.
    let r = app
        .call_with(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"title": "Overwrite"})),
            &[("if-match", first.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let d = app.call(Method::GET, &path, Some(&t.admin), None).await;
    assert_eq!(d.body["title"], "Printer smoking");

    // Concurrent conflicting updates without If-Match: each either wins or gets 409.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (client, url, tok) = (
            app.client.clone(),
            format!("{}{path}", app.base),
            t.admin.clone(),
        );
        tasks.push(tokio::spawn(async move {
            client
                .patch(url)
                .bearer_auth(tok)
                .json(&json!({"title": format!("title {i}")}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::OK));
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_creates_get_gap_free_numbers() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (client, url, tok) = (
            app.client.clone(),
            format!("{}/api/v1/incidents", app.base),
            t.admin.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(tok)
                .json(&json!({"title": format!("incident {i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            let v: serde_json::Value = r.json().await.unwrap();
            v["incident_number"].as_str().unwrap().to_owned()
        }));
    }
    let mut numbers = BTreeSet::new();
    for t in tasks {
        numbers.insert(t.await.unwrap());
    }
    let expected: BTreeSet<String> = (1..=50).map(|n| format!("INC{n:06}")).collect();
    assert_eq!(numbers, expected);
    app.stop().await;
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let body = json!({"title": "VPN down"});
    let first = app
        .call_with(
            Method::POST,
            "/api/v1/incidents",
            Some(&t.admin),
            Some(body.clone()),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = app
        .call_with(
            Method::POST,
            "/api/v1/incidents",
            Some(&t.admin),
            Some(body),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.body["incident_number"], "INC000001");
    let other = app
        .call_with(
            Method::POST,
            "/api/v1/incidents",
            Some(&t.admin),
            Some(json!({"title": "other"})),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.body["error"]["code"], "idempotency_key_reused");
    let list = app
        .call(Method::GET, "/api/v1/incidents", Some(&t.admin), None)
        .await;
    assert_eq!(list.body["pagination"]["total_items"], 1);
    // The next create gets the next number: the replay consumed none.
    let next = app.incident(&t.admin, "next").await;
    assert_eq!(next["incident_number"], "INC000002");
    app.stop().await;
}

#[tokio::test]
async fn validation_errors_name_the_field_and_mass_assignment_is_refused() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    for (body, field) in [
        (json!({"title": ""}), "title"),
        (json!({"title": "x".repeat(501)}), "title"),
        (json!({"title": "ok", "impact": "galactic"}), "impact"),
        (json!({"title": "ok", "tenant_id": t.id.0}), "tenant_id"),
        (
            json!({"title": "ok", "reporter_id": t.admin_id}),
            "reporter_id",
        ),
        (json!({"title": "ok", "status": "closed"}), "status"),
        (
            json!({"title": "ok", "incident_number": "INC999999"}),
            "incident_number",
        ),
        (json!({"description": "no title"}), "title"),
    ] {
        let r = app
            .call(
                Method::POST,
                "/api/v1/incidents",
                Some(&t.admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.error_field(), Some(field), "{body}: {:?}", r.body);
    }
    let list = app
        .call(Method::GET, "/api/v1/incidents", Some(&t.admin), None)
        .await;
    assert_eq!(
        list.body["pagination"]["total_items"], 0,
        "a refused create had an effect"
    );
    let inc = app.incident(&t.admin, "Disk full").await;
    let path = format!("/api/v1/incidents/{}", inc["id"].as_str().unwrap());
    for (body, field) in [
        (json!({"tenant_id": t.id.0}), "tenant_id"),
        (json!({"reporter_id": t.admin_id}), "reporter_id"),
        (json!({"incident_number": "INC000777"}), "incident_number"),
    ] {
        let r = app
            .call(Method::PATCH, &path, Some(&t.admin), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.error_field(), Some(field));
    }
    let d = app.call(Method::GET, &path, Some(&t.admin), None).await;
    assert_eq!(
        (
            d.body["incident_number"].as_str(),
            d.body["version"].as_i64()
        ),
        (Some("INC000001"), Some(3))
    );
    // Lists: limit over the maximum, unknown parameters and bad enums are 422 naming the field.
    for (q, field) in [
        ("limit=101", "limit"),
        ("status=open", "status"),
        ("colour=red", "colour"),
        ("sort=name", "sort"),
    ] {
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/incidents?{q}"),
                Some(&t.admin),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert_eq!(r.error_field(), Some(field), "{q}");
    }
    // Text that merely looks like SQL or HTML is data, not an attack.
    let r = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&t.admin),
            Some(json!({"title": "DROP TABLE users; <script>x</script>"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["title"], "DROP TABLE users; <script>x</script>");
    app.stop().await;
}

#[tokio::test]
async fn attachments_are_stored_by_content_and_downloaded_as_attachments() {
    let app = TestApp::spawn_with(&[("EVENTDESK_ATTACHMENT_MAX_BYTES", "4096")]).await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Globex").await;
    let inc = app.incident(&t.admin, "Screenshot attached").await;
    let id = inc["id"].as_str().unwrap();
    let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let upload = |token: String, data: Vec<u8>| {
        let url = format!("{}/api/v1/incidents/{id}/attachments", app.base);
        let client = app.client.clone();
        async move {
            let part = reqwest::multipart::Part::bytes(data)
                .file_name("報告書.png")
                .mime_str("image/png")
                .unwrap();
            client
                .post(url)
                .bearer_auth(token)
                .multipart(reqwest::multipart::Form::new().part("file", part))
                .send()
                .await
                .unwrap()
        }
    };
    let r = upload(t.admin.clone(), bytes.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let detail: serde_json::Value = r.json().await.unwrap();
    let att = &detail["attachments"][0];
    assert_eq!(att["file_name"], "報告書.png");
    assert_eq!(att["file_size"], 3000);
    use sha2::Digest;
    assert_eq!(att["sha256"], hex_of(&sha2::Sha256::digest(&bytes)));

    let aid = att["id"].as_str().unwrap();
    let url = format!("{}/api/v1/incidents/{id}/attachments/{aid}", app.base);
    let dl = app
        .client
        .get(&url)
        .bearer_auth(&t.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(dl.status(), StatusCode::OK);
    assert_eq!(dl.headers()["content-type"], "image/png");
    let cd = dl.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cd.starts_with("attachment;") && cd.contains("filename*=UTF-8''"),
        "{cd}"
    );
    assert_eq!(dl.bytes().await.unwrap().to_vec(), bytes);

    // Another tenant can neither download nor upload: 404.
    let dl = app
        .client
        .get(&url)
        .bearer_auth(&other.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(dl.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        upload(other.admin.clone(), vec![1, 2, 3]).await.status(),
        StatusCode::NOT_FOUND
    );
    // Over the configured limit: 413, and nothing recorded.
    assert_eq!(
        upload(t.admin.clone(), vec![0u8; 5000]).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let d = app
        .call(
            Method::GET,
            &format!("/api/v1/incidents/{id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(d.body["attachments"].as_array().unwrap().len(), 1);
    app.stop().await;
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The create answers from its own events, before the projector has applied them (ADR 0024):
/// with the incident read model stalled (its batch lock held), `POST` still answers 201 with
/// `X-Consistency-Token` while the read model does not have the incident; the next requests
/// of the tenant on the same node, and a request presenting the token on another node, wait
/// for the read model and then see exactly what the create answered.
#[tokio::test]
async fn create_answers_from_its_events_and_later_reads_wait_for_its_token() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (agent, agent_token) = app.user(&t.admin, "operator").await;
    let (_, other_admin) = app.user(&t.admin, "admin").await;
    let post = |path: &'static str, body: serde_json::Value| {
        let app = &app;
        let token = t.admin.clone();
        async move {
            let r = app.call(Method::POST, path, Some(&token), Some(body)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{path}: {:?}", r.body);
            r.body["id"].as_str().expect("id").to_owned()
        }
    };
    let team = post("/api/v1/teams", json!({"name": "Messaging"})).await;
    let category = post("/api/v1/categories", json!({"name": "Mail"})).await;
    // Stall the incident projector of this database (not the cluster's other tests).
    let mut stall = app.db.superuser.begin().await.expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind("eventdesk:projection-batch:incidents")
        .execute(&mut *stall)
        .await
        .expect("take the batch lock");

    let created = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&agent_token),
            Some(json!({
                "title": "メールサーバー接続エラー", "description": "relay down",
                "impact": "high", "urgency": "high",
                "team_id": team, "category_id": category, "assignee_id": agent,
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let token = created
        .header("x-consistency-token")
        .expect("X-Consistency-Token")
        .to_owned();
    assert_eq!(created.body["team"]["name"], "Messaging");
    assert_eq!(created.body["category"]["name"], "Mail");
    assert_eq!(created.body["assignee"]["id"], agent.to_string());
    assert!(created.body["resolution_due_at"].is_string());
    let path = format!("/api/v1/incidents/{id}");

    // Not in the read model yet.
    let in_read_model = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rm_incidents WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.db.superuser)
            .await
            .expect("count")
    };
    assert_eq!(in_read_model().await, 0);

    // A malformed token is refused, naming the header.
    let r = app
        .call_with(
            Method::GET,
            &path,
            Some(&other_admin),
            None,
            &[("x-consistency-token", "yesterday")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("X-Consistency-Token"));

    // The creator and another user of the tenant on this node, and another user presenting
    // the token on another node, wait.
    let sibling = app.sibling().await;
    // The other node knows nothing of the create: without the token it answers from its read
    // model at once (404).
    let r = sibling
        .client
        .get(format!("{}{path}", sibling.base))
        .bearer_auth(&other_admin)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let creator_reads = app.call(Method::GET, &path, Some(&agent_token), None);
    let other_lists = app.call(Method::GET, "/api/v1/incidents", Some(&other_admin), None);
    let with_token = async {
        let r = sibling
            .client
            .get(format!("{}{path}", sibling.base))
            .bearer_auth(&other_admin)
            .header("x-consistency-token", &token)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json::<serde_json::Value>().await.expect("json"))
    };
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stall.commit().await.expect("release the batch lock");
    };
    let (own, listed, (status, by_token), ()) =
        tokio::join!(creator_reads, other_lists, with_token, release);
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
    assert_eq!(
        own.body, created.body,
        "the create's answer is the read model's"
    );
    assert_eq!(own.header("etag"), created.header("etag"));
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(
        listed.body["data"][0]["id"],
        id.as_str(),
        "{:?}",
        listed.body
    );
    assert_eq!(status, StatusCode::OK, "{by_token:?}");
    assert_eq!(by_token, created.body);
    sibling.stop().await;
}
