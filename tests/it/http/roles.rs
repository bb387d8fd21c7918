//! Custom roles over HTTP (ADR 0011): CRUD with ETags, validation, holders getting exactly the
//! role's permissions (live, within the cache TTL), deactivation, tenant isolation, scoping by
//! base role, the security log, and the rule that nobody grants what they do not hold.

use super::app::{PASSWORD, Resp, TestApp};
use eventdesk_api::auth::ROLE_CACHE_TTL;
use eventdesk_domain::TenantId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

fn uniq() -> String {
    Uuid::now_v7().simple().to_string()[20..].to_owned()
}

/// How long a change may take to reach a holder's token: the cache TTL plus a margin.
fn propagation() -> Duration {
    ROLE_CACHE_TTL + Duration::from_secs(3)
}

/// Creates a user with a known username; returns (id, username, token).
async fn named_user(app: &TestApp, admin: &str, role: &str) -> (Uuid, String, String) {
    let username = format!("{role}_{}", uniq());
    let r = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(admin),
            Some(json!({
                "username": username, "email": format!("{username}@example.com"),
                "password": PASSWORD, "first_name": "Test", "last_name": role, "role": role,
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "create user: {:?}", r.body);
    let id = r.body["id"].as_str().unwrap().parse().unwrap();
    let token = app.login_eventually(&username).await;
    (id, username, token)
}

/// Defines a role (as `token`), asserting 201; returns its body.
async fn create_role(app: &TestApp, token: &str, name: &str, permissions: &[&str]) -> Value {
    let r = app
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(token),
            Some(json!({"name": name, "permissions": permissions})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "create role: {:?}", r.body);
    r.body
}

/// Assigns (or with `None` removes) a custom role.
async fn assign(app: &TestApp, token: &str, user: Uuid, role: Option<&str>) -> Resp {
    app.call(
        Method::PATCH,
        &format!("/api/v1/users/{user}"),
        Some(token),
        Some(json!({ "custom_role_id": role })),
    )
    .await
}

/// The status of creating an incident as `token`.
async fn create_incident_status(app: &TestApp, token: &str) -> StatusCode {
    app.call(
        Method::POST,
        "/api/v1/incidents",
        Some(token),
        Some(json!({"title": "Printer jam", "impact": "low", "urgency": "low"})),
    )
    .await
    .status
}

/// Polls `f` until it returns `want` or the propagation time passes; the last status.
async fn eventually_status<F, Fut>(want: StatusCode, mut f: F) -> StatusCode
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StatusCode>,
{
    let deadline = Instant::now() + propagation();
    loop {
        let got = f().await;
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Security events of `tenant` of `event_type`.
async fn security_events(app: &TestApp, tenant: TenantId, event_type: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT data FROM events WHERE tenant_id = $1 AND stream_type = 'security' \
         AND event_type = $2 ORDER BY global_position",
    )
    .bind(tenant.0)
    .bind(event_type)
    .fetch_all(&app.db.superuser)
    .await
    .unwrap()
}

fn ids(body: &Value) -> BTreeSet<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect()
}

// ------------------------------------------------------------------------------------------
// CRUD, ETags, names
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn roles_are_created_listed_read_updated_and_deactivated_with_etags() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;

    // Create: 201, Location, ETag, the permissions sorted and deduplicated.
    let r = app
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(&t.admin),
            Some(json!({
                "name": "Triage desk",
                "description": "First line",
                "permissions": ["incident:read", "incident:create", "incident:read"],
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/roles/{id}").as_str())
    );
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["name"], "Triage desk");
    assert_eq!(r.body["description"], "First line");
    assert_eq!(
        r.body["permissions"],
        json!(["incident:create", "incident:read"])
    );
    assert_eq!(r.body["is_active"], true);
    assert_eq!(r.body["version"], 1);
    let path = format!("/api/v1/roles/{id}");

    // Read: the same object with its ETag (the write was visible at once).
    let got = app.call(Method::GET, &path, Some(&t.admin), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("etag"), Some("\"1\""));
    assert_eq!(got.body, r.body);

    // Duplicate names are refused in any letter case; built-in names are reserved.
    for name in ["Triage desk", "TRIAGE DESK", "  triage desk "] {
        let dup = app
            .call(
                Method::POST,
                "/api/v1/roles",
                Some(&t.admin),
                Some(json!({"name": name, "permissions": []})),
            )
            .await;
        assert_eq!(dup.status, StatusCode::CONFLICT, "{name:?}: {:?}", dup.body);
        assert_eq!(dup.body["error"]["code"], "conflict");
    }
    let builtin = app
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(&t.admin),
            Some(json!({"name": "Manager", "permissions": []})),
        )
        .await;
    assert_eq!(builtin.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(builtin.error_field(), Some("name"));

    // A second role, then the list: paged like the other directory lists.
    let other = create_role(&app, &t.admin, "Auditors", &["audit:read"]).await;
    let list = app
        .call(Method::GET, "/api/v1/roles", Some(&t.admin), None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    let names: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Auditors", "Triage desk"]);
    assert_eq!(
        list.body["pagination"],
        json!({"current_page": 1, "total_pages": 1, "page_size": 20, "total_items": 2,
               "has_next": false, "has_prev": false})
    );
    let first = app
        .call(Method::GET, "/api/v1/roles?limit=1", Some(&t.admin), None)
        .await;
    assert_eq!(first.body["data"][0]["id"], other["id"]);
    assert_eq!(first.body["pagination"]["has_next"], true);
    assert_eq!(first.body["pagination"]["total_pages"], 2);
    let cursor = app
        .call(
            Method::GET,
            "/api/v1/roles?cursor=&limit=1",
            Some(&t.admin),
            None,
        )
        .await;
    let next = cursor.body["pagination"]["next_cursor"].as_str().unwrap();
    let second = app
        .call(
            Method::GET,
            &format!("/api/v1/roles?cursor={next}&limit=1"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(second.body["data"][0]["id"], id.as_str());
    assert_eq!(second.body["pagination"]["has_next"], false);
    let bad = app
        .call(Method::GET, "/api/v1/roles?limit=0", Some(&t.admin), None)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.error_field(), Some("limit"));

    // Update: a stale If-Match is 412 and changes nothing; the right one is 200 and bumps.
    let stale = app
        .call_with(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"name": "Renamed"})),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{:?}",
        stale.body
    );
    let upd = app
        .call_with(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({
                "name": "Triage", "description": null,
                "permissions": ["incident:read", "incident:comment"],
            })),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(upd.status, StatusCode::OK, "{:?}", upd.body);
    assert_eq!(upd.header("etag"), Some("\"2\""));
    assert_eq!(upd.body["name"], "Triage");
    assert!(upd.body["description"].is_null());
    assert_eq!(
        upd.body["permissions"],
        json!(["incident:comment", "incident:read"])
    );
    // A rename into another active role's name (any case) is 409.
    let clash = app
        .call(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"name": "auditors"})),
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{:?}", clash.body);
    // The old name was released by the rename.
    create_role(&app, &t.admin, "TRIAGE DESK", &[]).await;
    // An empty change is 200 and keeps the version.
    let same = app
        .call(Method::PATCH, &path, Some(&t.admin), Some(json!({})))
        .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.header("etag"), Some("\"2\""));

    // Deactivate (the directory's convention): stale If-Match 412, then 200; idempotent.
    let deact = format!("{path}/deactivate");
    let stale = app
        .call_with(
            Method::POST,
            &deact,
            Some(&t.admin),
            None,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let d = app
        .call_with(
            Method::POST,
            &deact,
            Some(&t.admin),
            None,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(d.status, StatusCode::OK, "{:?}", d.body);
    assert_eq!(d.body["is_active"], false);
    assert_eq!(d.header("etag"), Some("\"3\""));
    let again = app.call(Method::POST, &deact, Some(&t.admin), None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.header("etag"), Some("\"3\""));
    // Still readable; no longer editable; its name is free again.
    let got = app.call(Method::GET, &path, Some(&t.admin), None).await;
    assert_eq!(got.body["is_active"], false);
    let edit = app
        .call(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"description": "x"})),
        )
        .await;
    assert_eq!(edit.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(edit.body["error"]["code"], "deactivated");
    create_role(&app, &t.admin, "triage", &[]).await;

    // Unknown ids and non-UUIDs are 404.
    for p in [
        format!("/api/v1/roles/{}", Uuid::now_v7()),
        "/api/v1/roles/not-a-uuid".to_owned(),
    ] {
        let r = app.call(Method::GET, &p, Some(&t.admin), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
        let r = app
            .call(Method::PATCH, &p, Some(&t.admin), Some(json!({})))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
    }
    // An id of another kind of object of the tenant is no role either.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/roles/{}/deactivate", t.admin_id),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);

    // The built-in permissions: a manager reads roles but cannot define them.
    let (_, _, manager) = named_user(&app, &t.admin, "manager").await;
    let r = app
        .call(Method::GET, "/api/v1/roles", Some(&manager), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(&manager),
            Some(json!({"name": "Mine", "permissions": []})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Every write is in the security log.
    assert_eq!(
        security_events(&app, t.id, "CustomRoleCreated").await.len(),
        4
    );
    let updated = security_events(&app, t.id, "CustomRoleUpdated").await;
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!(updated[0]["role_id"], id.as_str());
    assert_eq!(
        security_events(&app, t.id, "CustomRoleDeactivated").await,
        vec![json!({"role_id": id, "name": "Triage"})]
    );
    app.stop().await;
}

#[tokio::test]
async fn permissions_and_fields_are_validated() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let post = |body: Value| {
        let app = &app;
        let admin = t.admin.clone();
        async move {
            app.call(Method::POST, "/api/v1/roles", Some(&admin), Some(body))
                .await
        }
    };
    let cases = [
        (
            json!({"name": "R", "permissions": ["incident:read", "incident:fly"]}),
            "permissions[1]",
        ),
        (
            json!({"name": "R", "permissions": ["spaceship:read"]}),
            "permissions[0]",
        ),
        (
            json!({"name": "R", "permissions": ["incident:read", "audit:delete"]}),
            "permissions[1]",
        ),
        (
            json!({"name": "R", "permissions": ["Incident:Read"]}),
            "permissions[0]",
        ),
        (
            json!({"name": "R", "permissions": ["tenant:manage"]}),
            "permissions[0]",
        ),
        (
            json!({"name": "R", "permissions": "incident:read"}),
            "permissions",
        ),
        (json!({"name": "R"}), "permissions"),
        (json!({"permissions": []}), "name"),
        (json!({"name": "", "permissions": []}), "name"),
        (json!({"name": "a\nb", "permissions": []}), "name"),
        (json!({"name": "x".repeat(101), "permissions": []}), "name"),
        (
            json!({"name": "R", "permissions": [], "tenant_id": Uuid::nil()}),
            "tenant_id",
        ),
        (
            json!({"name": "R", "permissions": [], "is_active": false}),
            "is_active",
        ),
        (
            json!({"name": "R", "permissions": [], "id": Uuid::nil()}),
            "id",
        ),
    ];
    for (body, field) in cases {
        let r = post(body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.body["error"]["code"], "validation_error", "{body}");
        assert_eq!(r.error_field(), Some(field), "{body}: {:?}", r.body);
    }
    // Every error is reported at once.
    let r = post(json!({"name": "admin", "permissions": ["nope", "incident:read", "x:y"]})).await;
    let fields: Vec<&str> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "permissions[0]", "permissions[2]"]);
    // Nothing was created.
    let list = app
        .call(Method::GET, "/api/v1/roles", Some(&t.admin), None)
        .await;
    assert_eq!(list.body["pagination"]["total_items"], 0);

    // The same rules on update.
    let role = create_role(&app, &t.admin, "Readers", &["incident:read"]).await;
    let path = format!("/api/v1/roles/{}", role["id"].as_str().unwrap());
    for (body, field) in [
        (
            json!({"permissions": ["incident:read", "tenant:manage"]}),
            "permissions[1]",
        ),
        (json!({"permissions": ["bogus"]}), "permissions[0]"),
        (json!({"permissions": null}), "permissions"),
        (json!({"name": "viewer"}), "name"),
        (json!({"version": 9}), "version"),
        (json!({"tenant_id": Uuid::nil()}), "tenant_id"),
    ] {
        let r = app
            .call(Method::PATCH, &path, Some(&t.admin), Some(body.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.error_field(), Some(field), "{body}: {:?}", r.body);
    }
    let got = app.call(Method::GET, &path, Some(&t.admin), None).await;
    assert_eq!(got.body["version"], 1, "a refused update changed the role");
    // The user update refuses unknown fields and non-UUID role ids too.
    let (user, _, _) = named_user(&app, &t.admin, "operator").await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{user}"),
            Some(&t.admin),
            Some(json!({"custom_role_id": "not-a-uuid"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), Some("custom_role_id"));
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// Holders
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_holder_can_do_exactly_what_the_role_grants_and_changes_apply_live() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let role = create_role(&app, &t.admin, "Read only", &["incident:read"]).await;
    let role_id = role["id"].as_str().unwrap().to_owned();
    let role_path = format!("/api/v1/roles/{role_id}");
    app.incident(&t.admin, "Visible to readers").await;

    // An operator (who could create incidents and read users) is given the role.
    let (user, username, operator_token) = named_user(&app, &t.admin, "operator").await;
    let r = assign(&app, &t.admin, user, Some(&role_id)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["custom_role_id"], role_id.as_str());
    assert_eq!(
        r.body["role"], "operator",
        "the built-in role stays as the base role"
    );
    assert_eq!(
        security_events(&app, t.id, "CustomRoleAssigned").await,
        vec![json!({"user_id": user, "custom_role_id": role_id, "previous_custom_role_id": null})]
    );
    // Assigning the same role again changes nothing and records nothing.
    let r = assign(&app, &t.admin, user, Some(&role_id)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        security_events(&app, t.id, "CustomRoleAssigned")
            .await
            .len(),
        1
    );
    // The token issued before the assignment is still an operator's (it applies from the next
    // login or refresh).
    assert_eq!(
        create_incident_status(&app, &operator_token).await,
        StatusCode::CREATED
    );

    // Logged in again: exactly the role's permissions.
    let token = app.login_eventually(&username).await;
    let profile = app
        .call(Method::GET, "/api/v1/auth/profile", Some(&token), None)
        .await;
    assert_eq!(profile.status, StatusCode::OK, "{:?}", profile.body);
    assert_eq!(profile.body["custom_role_id"], role_id.as_str());
    let r = app
        .call(Method::GET, "/api/v1/incidents", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(
        r.body["pagination"]["total_items"].as_u64().unwrap() >= 1,
        "an operator-based holder sees every incident"
    );
    assert_eq!(
        create_incident_status(&app, &token).await,
        StatusCode::FORBIDDEN
    );
    for path in ["/api/v1/users", "/api/v1/teams", "/api/v1/roles"] {
        let r = app.call(Method::GET, path, Some(&token), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(r.body["error"]["code"], "forbidden");
    }
    // The refresh token issues the same kind of token.
    let login = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": username, "password": PASSWORD})),
        )
        .await;
    let refreshed = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": login.body["refresh_token"]})),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    let refreshed = refreshed.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        create_incident_status(&app, &refreshed).await,
        StatusCode::FORBIDDEN
    );

    // The role gains incident:create: the same token may create within the cache TTL.
    let r = app
        .call(
            Method::PATCH,
            &role_path,
            Some(&t.admin),
            Some(json!({"permissions": ["incident:read", "incident:create"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let changed_at = Instant::now();
    let status =
        eventually_status(StatusCode::CREATED, || create_incident_status(&app, &token)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(changed_at.elapsed() <= propagation());

    // Deactivating the role takes every permission away from its holders.
    let r = app
        .call(
            Method::POST,
            &format!("{role_path}/deactivate"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let status = eventually_status(StatusCode::FORBIDDEN, || {
        create_incident_status(&app, &token)
    })
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = app
        .call(Method::GET, "/api/v1/incidents", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A deactivated role cannot be assigned (to anyone).
    let (other, _, _) = named_user(&app, &t.admin, "viewer").await;
    let r = assign(&app, &t.admin, other, Some(&role_id)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.error_field(), Some("custom_role_id"));
    app.stop().await;
}

#[tokio::test]
async fn removing_a_users_custom_role_disables_their_custom_token() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let role = create_role(
        &app,
        &t.admin,
        "Creators",
        &["incident:read", "incident:create"],
    )
    .await;
    let role_id = role["id"].as_str().unwrap().to_owned();
    let (user, username, _) = named_user(&app, &t.admin, "viewer").await;
    assert_eq!(
        assign(&app, &t.admin, user, Some(&role_id)).await.status,
        StatusCode::OK
    );
    let token = app.login_eventually(&username).await;
    assert_eq!(
        create_incident_status(&app, &token).await,
        StatusCode::CREATED
    );

    let r = assign(&app, &t.admin, user, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["custom_role_id"].is_null());
    // The token names a role the user no longer holds: it grants nothing.
    let status = eventually_status(StatusCode::FORBIDDEN, || {
        create_incident_status(&app, &token)
    })
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A new login is a viewer's again.
    let token = app.login_eventually(&username).await;
    let r = app
        .call(Method::GET, "/api/v1/incidents", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        create_incident_status(&app, &token).await,
        StatusCode::FORBIDDEN
    );
    let assigned = security_events(&app, t.id, "CustomRoleAssigned").await;
    assert_eq!(assigned.len(), 2);
    assert_eq!(
        assigned[1],
        json!({"user_id": user, "custom_role_id": null, "previous_custom_role_id": role_id})
    );
    app.stop().await;
}

#[tokio::test]
async fn a_custom_role_on_base_role_user_sees_only_their_own_incidents() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let role = create_role(
        &app,
        &t.admin,
        "Requester plus",
        &["incident:read", "incident:create", "category:read"],
    )
    .await;
    let role_id = role["id"].as_str().unwrap().to_owned();
    let theirs = app.incident(&t.admin, "The admin's incident").await;
    let theirs_id = theirs["id"].as_str().unwrap().to_owned();

    let (requester, username, _) = named_user(&app, &t.admin, "user").await;
    assert_eq!(
        assign(&app, &t.admin, requester, Some(&role_id))
            .await
            .status,
        StatusCode::OK
    );
    let token = app.login_eventually(&username).await;
    let own = app.incident(&token, "My laptop").await;
    let own_id = own["id"].as_str().unwrap().to_owned();

    let list = app
        .call(Method::GET, "/api/v1/incidents", Some(&token), None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert_eq!(ids(&list.body), BTreeSet::from([own_id.clone()]));
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/incidents/{theirs_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/incidents/{own_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // The same role on an operator base sees both.
    let (agent, agent_name, _) = named_user(&app, &t.admin, "operator").await;
    assert_eq!(
        assign(&app, &t.admin, agent, Some(&role_id)).await.status,
        StatusCode::OK
    );
    let agent_token = app.login_eventually(&agent_name).await;
    let list = app
        .call(Method::GET, "/api/v1/incidents", Some(&agent_token), None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(ids(&list.body), BTreeSet::from([own_id, theirs_id]));
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// Tenants
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn another_tenants_role_is_not_found() {
    let app = TestApp::spawn().await;
    let a = app.tenant("Tenant A").await;
    let b = app.tenant("Tenant B").await;
    let role = create_role(&app, &a.admin, "A's auditors", &["incident:read"]).await;
    let role_id = role["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/roles/{role_id}");

    for (method, p, body) in [
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"name": "Stolen"}))),
        (Method::POST, format!("{path}/deactivate"), None),
    ] {
        let r = app.call(method.clone(), &p, Some(&b.admin), body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {p}: {:?}",
            r.body
        );
        assert_eq!(r.body["error"]["code"], "not_found");
    }
    let list = app
        .call(Method::GET, "/api/v1/roles", Some(&b.admin), None)
        .await;
    assert_eq!(list.body["data"], json!([]));

    // B cannot give B's user A's role.
    let (b_user, _, _) = named_user(&app, &b.admin, "operator").await;
    let r = assign(&app, &b.admin, b_user, Some(&role_id)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "not_found");
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/users/{b_user}"),
            Some(&b.admin),
            None,
        )
        .await;
    assert!(r.body["custom_role_id"].is_null());
    // Nor A's user B's role (or any role: the user is not B's).
    let (a_user, _, _) = named_user(&app, &a.admin, "operator").await;
    let b_role = create_role(&app, &b.admin, "B's role", &["incident:read"]).await;
    let r = assign(&app, &b.admin, a_user, b_role["id"].as_str()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    // Unknown role ids are 404 too.
    let r = assign(&app, &a.admin, a_user, Some(&Uuid::now_v7().to_string())).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A's role is untouched.
    let r = app.call(Method::GET, &path, Some(&a.admin), None).await;
    assert_eq!(r.body, role);
    // The same name is free in another tenant.
    create_role(&app, &b.admin, "A's auditors", &[]).await;
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// Escalation
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn nobody_grants_what_they_do_not_hold() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    // A delegated role administrator: a manager's desk work plus role and user management,
    // but no API keys and no audit.
    let delegate_perms = [
        "incident:read",
        "incident:create",
        "user:read",
        "user:write",
        "role:read",
        "role:create",
        "role:write",
        "role:delete",
    ];
    let delegate_role = create_role(&app, &t.admin, "Role admins", &delegate_perms).await;
    let (delegate, delegate_name, _) = named_user(&app, &t.admin, "manager").await;
    let r = assign(&app, &t.admin, delegate, delegate_role["id"].as_str()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let token = app.login_eventually(&delegate_name).await;

    // Creating a role with a permission they lack: 422 naming it, nothing created.
    let r = app
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(&token),
            Some(json!({"name": "Keys", "permissions": ["incident:read", "api_key:create"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.error_field(), Some("permissions[1]"));
    assert!(
        r.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("api_key:create")
    );
    // Within what they hold: fine.
    let own = create_role(&app, &token, "Desk", &["incident:read", "incident:create"]).await;
    let own_path = format!("/api/v1/roles/{}", own["id"].as_str().unwrap());
    // Adding a permission they lack to it: refused; adding one they hold: fine.
    let r = app
        .call(
            Method::PATCH,
            &own_path,
            Some(&token),
            Some(json!({"permissions": ["incident:read", "audit:read"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.error_field(), Some("permissions[1]"));
    let r = app
        .call(
            Method::PATCH,
            &own_path,
            Some(&token),
            Some(json!({"permissions": ["incident:read", "user:read"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Nor may they add to the role they hold themselves what they lack.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/roles/{}", delegate_role["id"].as_str().unwrap()),
            Some(&token),
            Some(json!({"permissions": ["api_key:create"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    // A role the admin made with more than they hold: they can edit it without granting (a
    // permission already there is no grant), but not assign it.
    let keys = create_role(
        &app,
        &t.admin,
        "Key managers",
        &["api_key:create", "api_key:read"],
    )
    .await;
    let keys_id = keys["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/roles/{keys_id}"),
            Some(&token),
            Some(json!({"description": "Integrations", "permissions": ["api_key:create"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let (victim, victim_name, _) = named_user(&app, &t.admin, "operator").await;
    for target in [victim, delegate] {
        let r = assign(&app, &token, target, Some(&keys_id)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.error_field(), Some("custom_role_id"));
    }
    // Nor a built-in role holding more than they do, to anyone (themselves included).
    for target in [victim, delegate] {
        let r = app
            .call(
                Method::PATCH,
                &format!("/api/v1/users/{target}"),
                Some(&token),
                Some(json!({"role": "admin"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.error_field(), Some("role"));
    }
    // Removing their own custom role would make them a manager again, which they are not
    // entitled to grant (managers hold sla:write, team:create, …).
    let r = assign(&app, &token, delegate, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.error_field(), Some("custom_role_id"));
    // What they hold, they may give.
    let r = assign(&app, &token, victim, own["id"].as_str()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let victim_token = app.login_eventually(&victim_name).await;
    let r = app
        .call(Method::GET, "/api/v1/users", Some(&victim_token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        create_incident_status(&app, &victim_token).await,
        StatusCode::FORBIDDEN
    );
    // Re-sending the current roles (a full-form edit) grants nothing and passes.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{victim}"),
            Some(&token),
            Some(json!({"first_name": "Renamed", "role": "operator", "custom_role_id": own["id"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["first_name"], "Renamed");

    // Nothing was changed by the refused requests.
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/users/{victim}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.body["role"], "operator");
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/users/{delegate}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.body["role"], "manager");
    assert_eq!(r.body["custom_role_id"], delegate_role["id"]);
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/roles/{}", delegate_role["id"].as_str().unwrap()),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.body["version"], 1);
    // Every refusal is in the security log.
    let refused = security_events(&app, t.id, "PrivilegeEscalationRefused").await;
    assert_eq!(refused.len(), 8, "{refused:#?}");
    assert!(refused.iter().any(|e| e["permission"] == "api_key:create"));

    // An admin holds everything: the same requests succeed.
    let r = assign(&app, &t.admin, victim, Some(&keys_id)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = assign(&app, &t.admin, delegate, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    app.stop().await;
}
