//! Security over HTTP: tenant isolation, the RBAC matrix, requester visibility, forged and
//! revoked credentials, login and refresh-token rotation, security headers, error hygiene and
//! body limits.

use super::app::{JWT_SECRET, PASSWORD, Resp, TestApp};
use chrono::{TimeDelta, Utc};
use eventdesk_api::routes::{PERMISSIONS, permission_for};
use eventdesk_auth::JwtConfig;
use eventdesk_auth::rbac::PermissionSet;
use eventdesk_domain::values::Role;
use eventdesk_domain::{TenantId, UserId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use uuid::Uuid;

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// The test server, with a generous read-your-writes wait: these tests are about access
/// control, not projection latency, and must not flake on a busy machine.
async fn spawn() -> TestApp {
    TestApp::spawn_with(&[("EVENTDESK_CONSISTENCY_WAIT_MS", "15000")]).await
}

/// base64url without padding (RFC 7515 §2), for hand-made JWTs.
fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A short unique suffix.
fn uniq() -> String {
    Uuid::now_v7().simple().to_string()[20..].to_owned()
}

/// The ids in a list body's `data`.
fn ids(body: &Value) -> BTreeSet<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data array in {body}"))
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect()
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

/// Creates an API key (as `admin`) and returns (id, plaintext key).
async fn api_key(app: &TestApp, admin: &str, body: Value) -> (String, String) {
    let r = app
        .call(Method::POST, "/api/v1/api-keys", Some(admin), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "create key: {:?}", r.body);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["api_key"].as_str().unwrap().to_owned(),
    )
}

/// Creates a paused webhook (as `admin`; a public address that is never called) and returns
/// its id and an id standing for one of its deliveries.
async fn webhook(app: &TestApp, admin: &str) -> (String, String) {
    let r = app
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(admin),
            Some(
                json!({"url": "https://93.184.216.34/hook", "event_types": ["*"],
                        "status": "paused"}),
            ),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "create webhook: {:?}",
        r.body
    );
    (
        r.body["id"].as_str().unwrap().to_owned(),
        Uuid::now_v7().to_string(),
    )
}

/// Calls with `X-API-Key` instead of a bearer token.
async fn call_key(app: &TestApp, method: Method, path: &str, key: &str) -> Resp {
    app.call_with(method, path, None, None, &[("x-api-key", key)])
        .await
}

/// The objects a route template's placeholders name.
struct Targets {
    incident: String,
    attachment: String,
    user: String,
    team: String,
    category: String,
    key: String,
    calendar: String,
    policy: String,
    role: String,
    ci: String,
    ci_type: String,
    ci_rel: String,
    webhook: String,
    delivery: String,
    /// A problem, with `incident` linked to it.
    problem: String,
    /// A change, with a task.
    change: String,
    change_task: String,
}

impl Targets {
    /// The path of `route` with every placeholder filled, or None if one is not known.
    fn path(&self, route: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = route;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = start + rest[start..].find('}')?;
            let value = match &rest[start + 1..end] {
                "id" if route.starts_with("/api/v1/incidents/") => &self.incident,
                "id" if route.starts_with("/api/v1/users/") => &self.user,
                "id" if route.starts_with("/api/v1/teams/") => &self.team,
                "id" if route.starts_with("/api/v1/categories/") => &self.category,
                "id" if route.starts_with("/api/v1/api-keys/") => &self.key,
                "id" if route.starts_with("/api/v1/sla/calendars/") => &self.calendar,
                "id" if route.starts_with("/api/v1/sla/policies/") => &self.policy,
                "id" if route.starts_with("/api/v1/roles/") => &self.role,
                "id" if route.starts_with("/api/v1/cis/") => &self.ci,
                "id" if route.starts_with("/api/v1/ci-types/") => &self.ci_type,
                "rel_id" if route.starts_with("/api/v1/cis/") => &self.ci_rel,
                "id" if route.starts_with("/api/v1/webhooks/") => &self.webhook,
                "id" if route.starts_with("/api/v1/problems/") => &self.problem,
                "id" if route.starts_with("/api/v1/changes/") => &self.change,
                "task_id" if route.starts_with("/api/v1/changes/") => &self.change_task,
                "incident_id" if route.starts_with("/api/v1/problems/") => &self.incident,
                "delivery_id" if route.starts_with("/api/v1/webhooks/") => &self.delivery,
                "aid" if route.starts_with("/api/v1/incidents/") => &self.attachment,
                // The incident's stream in the audit trail.
                "stream_id" if route.starts_with("/api/v1/audit/streams/") => &self.incident,
                _ => return None,
            };
            out.push_str(value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }
}

/// Uploads `data` as the `file` part of a multipart body.
async fn upload(app: &TestApp, path: &str, token: &str, data: Vec<u8>) -> Resp {
    let part = reqwest::multipart::Part::bytes(data)
        .file_name("evidence.txt")
        .mime_str("text/plain")
        .unwrap();
    let resp = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    Resp {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// Sends a representative request for `method route` at `path`.
async fn send(
    app: &TestApp,
    method: &Method,
    route: &str,
    path: &str,
    token: &str,
    ctx: &BodyCtx,
) -> Resp {
    if method == Method::POST && route.ends_with("/attachments") {
        upload(app, path, token, b"stack trace".to_vec()).await
    } else {
        app.call(
            method.clone(),
            path,
            Some(token),
            body_for(method, route, ctx),
        )
        .await
    }
}

/// Creates a team and a category (as `admin`); returns their ids.
async fn team_and_category(app: &TestApp, admin: &str) -> (String, String) {
    let mut out = Vec::new();
    for (path, name) in [
        ("/api/v1/teams", format!("Team {}", uniq())),
        ("/api/v1/categories", format!("Category {}", uniq())),
    ] {
        let r = app
            .call(Method::POST, path, Some(admin), Some(json!({"name": name})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {:?}", r.body);
        out.push(r.body["id"].as_str().unwrap().to_owned());
    }
    (out[0].clone(), out[1].clone())
}

/// Creates a custom role (as `admin`); returns its id.
async fn custom_role(app: &TestApp, admin: &str) -> String {
    let ctx = BodyCtx {
        assignee: Uuid::nil(),
        ci: Uuid::nil(),
    };
    let r = app
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(admin),
            body_for(&Method::POST, "/api/v1/roles", &ctx),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "role: {:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// Creates an SLA calendar and an SLA policy (as `admin`); returns their ids.
async fn sla_config(app: &TestApp, admin: &str) -> (String, String) {
    let ctx = BodyCtx {
        assignee: Uuid::nil(),
        ci: Uuid::nil(),
    };
    let mut out = Vec::new();
    for (route, path) in [
        ("/api/v1/sla/calendars", "/api/v1/sla/calendars"),
        ("/api/v1/sla/policies", "/api/v1/sla/policies"),
    ] {
        let r = app
            .call(
                Method::POST,
                path,
                Some(admin),
                body_for(&Method::POST, route, &ctx),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {:?}", r.body);
        out.push(r.body["id"].as_str().unwrap().to_owned());
    }
    (out[0].clone(), out[1].clone())
}

/// A CI with a relationship (`depends_on` another CI, which is returned too) and a custom CI
/// type, as `admin`; returns (ci, relationship, target ci, ci type).
async fn cmdb_objects(app: &TestApp, admin: &str) -> (String, String, String, String) {
    let mut cis = Vec::new();
    for name in ["app", "db"] {
        let r = app
            .call(
                Method::POST,
                "/api/v1/cis",
                Some(admin),
                Some(json!({"type": "application", "name": format!("{name} {}", uniq())})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "ci: {:?}", r.body);
        cis.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/cis/{}/relationships", cis[0]),
            Some(admin),
            Some(json!({"target_id": cis[1], "type": "depends_on"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "relationship: {:?}", r.body);
    let rel = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::POST,
            "/api/v1/ci-types",
            Some(admin),
            Some(json!({"key": format!("t_{}", uniq()), "name": "Rack"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "ci type: {:?}", r.body);
    let ty = r.body["id"].as_str().unwrap().to_owned();
    (cis[0].clone(), rel, cis[1].clone(), ty)
}

/// A problem with `incident` linked to it, as `admin`; returns its id.
async fn problem_objects(app: &TestApp, admin: &str, incident: &str) -> String {
    let r = app
        .call(
            Method::POST,
            "/api/v1/problems",
            Some(admin),
            Some(json!({"title": format!("Problem {}", uniq()), "workaround": "Reboot"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "problem: {:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/problems/{id}/incidents"),
            Some(admin),
            Some(json!({"incident_id": incident})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "link: {:?}", r.body);
    id
}

/// A standard change with a task, as `admin`; returns (change, task).
async fn change_objects(app: &TestApp, admin: &str) -> (String, String) {
    let r = app
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(admin),
            Some(json!({"title": format!("Change {}", uniq()), "change_type": "standard"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "change: {:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/changes/{id}/tasks"),
            Some(admin),
            Some(json!({"title": "Step"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "task: {:?}", r.body);
    let task = r.body["tasks"][0]["id"].as_str().unwrap().to_owned();
    (id, task)
}

/// A plausible body for a protected route (None for bodiless requests).
fn body_for(method: &Method, route: &str, ctx: &BodyCtx) -> Option<Value> {
    let action = route
        .strip_prefix("/api/v1/incidents/{id}/")
        .unwrap_or_default();
    match (method.as_str(), route) {
        ("GET" | "DELETE", _) => None,
        ("POST", "/api/v1/incidents") => Some(
            json!({"title": "Laptop will not boot", "description": "d", "impact": "low", "urgency": "low"}),
        ),
        ("PATCH", "/api/v1/incidents/{id}") => Some(json!({"title": "Retitled"})),
        ("PATCH", "/api/v1/users/{id}") => Some(json!({"first_name": "Renamed"})),
        ("PATCH", "/api/v1/teams/{id}" | "/api/v1/categories/{id}") => {
            Some(json!({"description": "Renamed"}))
        }
        ("POST", "/api/v1/users") => {
            let u = format!("rbac_{}", uniq());
            Some(json!({
                "username": u, "email": format!("{u}@example.com"), "password": PASSWORD,
                "first_name": "R", "last_name": "Bac", "role": "viewer",
            }))
        }
        ("POST", "/api/v1/teams") => Some(json!({"name": format!("Team {}", uniq())})),
        ("POST", "/api/v1/categories") => Some(json!({"name": format!("Cat {}", uniq())})),
        ("POST", "/api/v1/roles") => {
            Some(json!({"name": format!("Role {}", uniq()), "permissions": ["incident:read"]}))
        }
        ("PATCH", "/api/v1/roles/{id}") => Some(json!({"description": "Renamed"})),
        ("POST", "/api/v1/cis") => {
            Some(json!({"type": "server", "name": format!("srv {}", uniq())}))
        }
        ("PATCH", "/api/v1/cis/{id}") => Some(json!({"description": "Renamed"})),
        ("POST", "/api/v1/cis/{id}/relationships") => {
            Some(json!({"target_id": ctx.ci, "type": "connected_to"}))
        }
        ("POST", "/api/v1/ci-types") => {
            Some(json!({"key": format!("t_{}", uniq()), "name": "Rack"}))
        }
        ("POST", "/api/v1/problems") => Some(json!({"title": format!("Problem {}", uniq())})),
        ("PATCH", "/api/v1/problems/{id}") => Some(json!({"description": "Renamed"})),
        ("POST", "/api/v1/problems/{id}/known-error") => Some(json!({"workaround": "Reboot"})),
        ("POST", "/api/v1/problems/{id}/resolve") => Some(json!({"resolution": "Patched"})),
        // A CI's id: not an incident (422 for those allowed to link).
        ("POST", "/api/v1/problems/{id}/incidents") => Some(json!({"incident_id": ctx.ci})),
        ("POST", "/api/v1/changes") => {
            Some(json!({"title": format!("Change {}", uniq()), "change_type": "standard"}))
        }
        ("PATCH", "/api/v1/changes/{id}") => Some(json!({"description": "Renamed"})),
        ("POST", "/api/v1/changes/{id}/cancel") => Some(json!({"reason": "Not needed"})),
        ("POST", "/api/v1/changes/{id}/tasks") => Some(json!({"title": "Another step"})),
        ("POST", "/api/v1/changes/{id}/tasks/reorder") => Some(json!({"order": [ctx.ci]})),
        ("PATCH", "/api/v1/changes/{id}/tasks/{task_id}") => Some(json!({"status": "closed"})),
        ("POST", "/api/v1/changes/{id}/approvals") => {
            Some(json!({"decision": "approve", "comment": "Fine"}))
        }
        ("POST", "/api/v1/api-keys") => Some(json!({"name": format!("key {}", uniq())})),
        ("POST", "/api/v1/tenants") => Some(json!({"name": format!("Evil {}", uniq())})),
        ("POST", "/api/v1/sla/calendars") => Some(json!({
            "name": format!("Hours {}", uniq()), "time_zone": "Europe/Berlin",
            "weekly_hours": [{"day": "monday", "start": "08:00", "end": "18:00"}],
        })),
        // A condition no test incident meets, so it changes no incident's SLA.
        ("POST", "/api/v1/sla/policies") => Some(json!({
            "name": format!("Policy {}", uniq()), "condition": {"impact": "extensive"},
            "targets": [{"priority": "critical", "response_minutes": 5}],
        })),
        ("POST", "/api/v1/sla/calendars/{id}/holidays/import") => {
            Some(json!({"ics": "BEGIN:VCALENDAR\nEND:VCALENDAR\n"}))
        }
        ("PATCH", "/api/v1/sla/calendars/{id}" | "/api/v1/sla/policies/{id}") => {
            Some(json!({"name": "Renamed"}))
        }
        ("POST", _) if route.ends_with("/deactivate") || route.ends_with("/reactivate") => None,
        ("POST", _) => Some(match action {
            "assign" => json!({"assignee_id": ctx.assignee}),
            "hold" => json!({"reason": "awaiting_vendor"}),
            "resolve" => json!({"resolution": "Replaced the disk"}),
            "reopen" | "cancel" => json!({"reason": "Not what was asked"}),
            "work-notes" => json!({"content": "Looked into it", "is_public": true}),
            _ => json!({}),
        }),
        _ => Some(json!({})),
    }
}

struct BodyCtx {
    assignee: Uuid,
    /// A CI of the tenant, the target of new relationships.
    ci: Uuid,
}

fn assert_security_headers(r: &Resp, what: &str) {
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains"),
        "{what}: HSTS"
    );
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert!(
        r.header("content-security-policy")
            .is_some_and(|v| v.contains("frame-ancestors 'none'")),
        "{what}: CSP {:?}",
        r.header("content-security-policy")
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert!(
        r.header("x-request-id").is_some_and(|v| !v.is_empty()),
        "{what}: x-request-id"
    );
}

/// A 5xx body says nothing about the internals.
fn assert_generic_500(r: &Resp, what: &str) {
    assert_eq!(
        r.body,
        json!({"error": {"code": "internal_error", "message": "internal error", "details": []}}),
        "{what}"
    );
    let text = r.body.to_string().to_lowercase();
    for leak in [
        "sqlx", "postgres", "relation", "select", "rm_", "panicked", ".rs",
    ] {
        assert!(!text.contains(leak), "{what}: leaks {leak:?}: {text}");
    }
}

// ------------------------------------------------------------------------------------------
// 1. Tenant isolation
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn another_tenants_objects_are_invisible_and_untouchable() {
    let app = spawn().await;
    let a = app.tenant("Tenant A").await;
    let b = app.tenant("Tenant B").await;

    // A's objects. (The SLA configuration first: a policy change re-evaluates the timers of
    // open incidents, which would move the incident's version during the test.)
    let (a_calendar, a_policy) = sla_config(&app, &a.admin).await;
    let a_role = custom_role(&app, &a.admin).await;
    let inc = app.incident(&a.admin, "A's secret incident").await;
    let inc_id = inc["id"].as_str().unwrap().to_owned();
    let inc_path = format!("/api/v1/incidents/{inc_id}");
    let up = upload(
        &app,
        &format!("{inc_path}/attachments"),
        &a.admin,
        b"A's confidential log".to_vec(),
    )
    .await;
    assert_eq!(up.status, StatusCode::CREATED, "{:?}", up.body);
    let (a_user, _) = app.user(&a.admin, "operator").await;
    let (team_id, cat_id) = team_and_category(&app, &a.admin).await;
    let (a_key_id, a_key) = api_key(&app, &a.admin, json!({"name": "A integration"})).await;
    let (a_ci, a_rel, a_ci_target, a_ci_type) = cmdb_objects(&app, &a.admin).await;
    let (a_webhook, a_delivery) = webhook(&app, &a.admin).await;
    let a_problem = problem_objects(&app, &a.admin, &inc_id).await;
    let (a_change, a_task) = change_objects(&app, &a.admin).await;
    let a_objects = Targets {
        incident: inc_id.clone(),
        attachment: up.body["attachments"][0]["id"].as_str().unwrap().to_owned(),
        user: a_user.to_string(),
        team: team_id.clone(),
        category: cat_id.clone(),
        key: a_key_id.clone(),
        calendar: a_calendar.clone(),
        policy: a_policy.clone(),
        role: a_role.clone(),
        ci: a_ci.clone(),
        ci_type: a_ci_type.clone(),
        ci_rel: a_rel.clone(),
        webhook: a_webhook.clone(),
        delivery: a_delivery,
        problem: a_problem.clone(),
        change: a_change.clone(),
        change_task: a_task,
    };
    // A's view of each object, before B tries anything.
    let readable = [
        inc_path.clone(),
        format!("/api/v1/users/{a_user}"),
        format!("/api/v1/teams/{team_id}"),
        format!("/api/v1/categories/{cat_id}"),
        format!("/api/v1/roles/{a_role}"),
        format!("/api/v1/cis/{a_ci}"),
        format!("/api/v1/cis/{a_ci_target}"),
        format!("/api/v1/ci-types/{a_ci_type}"),
        format!("/api/v1/cis/{a_ci}/relationships"),
        format!("/api/v1/webhooks/{a_webhook}"),
        format!("/api/v1/problems/{a_problem}"),
        format!("/api/v1/problems/{a_problem}/incidents"),
        format!("/api/v1/changes/{a_change}"),
    ];
    let mut before = Vec::new();
    for p in &readable {
        let r = app.call(Method::GET, p, Some(&a.admin), None).await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {:?}", r.body);
        before.push(r.body);
    }

    // Every route with an id, as B's admin, on A's object: 404.
    let ctx = BodyCtx {
        assignee: b.admin_id,
        ci: Uuid::nil(),
    };
    let mut covered = 0;
    for (method, route, needed) in PERMISSIONS {
        // Platform routes (`/api/v1/tenants/{id}/…`) are no tenant's: every tenant caller
        // gets 403 there, its own tenant's id included (tests/it/http/rate_limit.rs).
        if !route.contains('{') || *needed == eventdesk_auth::rbac::PLATFORM {
            continue;
        }
        let path = a_objects
            .path(route)
            .unwrap_or_else(|| panic!("{method} {route}: add the cross-tenant case of this route"));
        let r = send(&app, method, route, &path, &b.admin, &ctx).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "B {method} {path}: {:?}",
            r.body
        );
        assert_eq!(r.body["error"]["code"], "not_found", "{method} {route}");
        covered += 1;
    }
    assert!(covered >= 16, "only {covered} id routes");

    // A's objects are unchanged.
    for (p, was) in readable.iter().zip(&before) {
        let r = app.call(Method::GET, p, Some(&a.admin), None).await;
        assert_eq!(r.status, StatusCode::OK, "{p}");
        assert_eq!(&r.body, was, "{p} changed");
    }
    let keys = app
        .call(Method::GET, "/api/v1/api-keys", Some(&a.admin), None)
        .await;
    let k = keys.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == a_key_id.as_str())
        .expect("A's key listed");
    assert!(k["revoked_at"].is_null(), "B revoked A's key: {k}");
    assert_eq!(
        call_key(&app, Method::GET, "/api/v1/incidents", &a_key)
            .await
            .status,
        StatusCode::OK
    );
    let dl = app
        .call(
            Method::GET,
            &a_objects
                .path("/api/v1/incidents/{id}/attachments/{aid}")
                .unwrap(),
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(dl.status, StatusCode::OK, "A still downloads its file");

    // B's lists never show A's ids (a filter naming A's objects included).
    let a_ids: BTreeSet<String> = [
        inc_id.clone(),
        a_user.to_string(),
        a.admin_id.to_string(),
        team_id.clone(),
        cat_id.clone(),
        a_key_id.clone(),
        a_calendar.clone(),
        a_policy.clone(),
        a_ci.clone(),
        a_ci_target.clone(),
        a_ci_type.clone(),
        a_problem.clone(),
        a_change.clone(),
    ]
    .into();
    for path in [
        "/api/v1/incidents?limit=100".to_owned(),
        format!("/api/v1/incidents?reporter_id={}", a.admin_id),
        format!("/api/v1/incidents?team_id={team_id}"),
        format!("/api/v1/incidents?category_id={cat_id}"),
        "/api/v1/incidents?q=secret".to_owned(),
        "/api/v1/users?limit=100".to_owned(),
        "/api/v1/teams?limit=100".to_owned(),
        "/api/v1/categories?limit=100".to_owned(),
        "/api/v1/api-keys".to_owned(),
        "/api/v1/sla/calendars?limit=100".to_owned(),
        "/api/v1/sla/policies?limit=100".to_owned(),
        "/api/v1/cis?limit=100".to_owned(),
        "/api/v1/ci-types?limit=100".to_owned(),
        format!("/api/v1/cis?q=app&owner_team_id={team_id}"),
        format!("/api/v1/incidents?ci_id={a_ci}"),
        "/api/v1/problems?limit=100".to_owned(),
        format!("/api/v1/problems?incident_id={inc_id}"),
        "/api/v1/known-errors?q=Problem".to_owned(),
        "/api/v1/changes?limit=100".to_owned(),
        "/api/v1/changes/conflicts".to_owned(),
    ] {
        let r = app.call(Method::GET, &path, Some(&b.admin), None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
        let seen = ids(&r.body);
        assert!(seen.is_disjoint(&a_ids), "{path} shows A's ids: {seen:?}");
    }
    let r = app
        .call(
            Method::GET,
            "/api/v1/incidents?q=secret",
            Some(&b.admin),
            None,
        )
        .await;
    assert_eq!(r.body["pagination"]["total_items"], 0);

    // B cannot reference A's users, teams or categories.
    for (field, value) in [
        ("category_id", cat_id.clone()),
        ("team_id", team_id.clone()),
        ("assignee_id", a_user.to_string()),
    ] {
        let r = app
            .call(
                Method::POST,
                "/api/v1/incidents",
                Some(&b.admin),
                Some(json!({"title": "t", field: value})),
            )
            .await;
        assert_eq!(
            (r.status, r.error_field()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{field}: {:?}",
            r.body
        );
    }
    let (b_team, _) = team_and_category(&app, &b.admin).await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/teams/{b_team}"),
            Some(&b.admin),
            Some(json!({"add_members": [a_user]})),
        )
        .await;
    assert_eq!(
        (r.status, r.error_field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("add_members")),
        "{:?}",
        r.body
    );

    // An API key of B sees only B.
    let (_, b_key) = api_key(&app, &b.admin, json!({"name": "B integration"})).await;
    let b_inc = app.incident(&b.admin, "B's own incident").await;
    for auth in ["bearer", "x-api-key"] {
        let list = if auth == "bearer" {
            app.call(Method::GET, "/api/v1/incidents", Some(&b_key), None)
                .await
        } else {
            call_key(&app, Method::GET, "/api/v1/incidents", &b_key).await
        };
        assert_eq!(list.status, StatusCode::OK);
        assert_eq!(
            ids(&list.body),
            BTreeSet::from([b_inc["id"].as_str().unwrap().to_owned()]),
            "{auth}"
        );
    }
    for (method, route, _) in PERMISSIONS {
        if !route.starts_with("/api/v1/incidents/{id}") {
            continue;
        }
        let path = a_objects.path(route).unwrap();
        let r = send(&app, method, route, &path, &b_key, &ctx).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "B's key {method} {path}: {:?}",
            r.body
        );
    }
    let r = call_key(
        &app,
        Method::GET,
        &format!("/api/v1/users/{a_user}"),
        &b_key,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let after = app.call(Method::GET, &inc_path, Some(&a.admin), None).await;
    assert_eq!(after.body, before[0]);
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// 2. RBAC matrix
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_role_gets_exactly_the_routes_its_permissions_allow() {
    let app = spawn().await;
    let t = app.tenant("Acme").await;
    // The target of every new relationship, and a custom CI type to read.
    let (_, _, ci_target, ci_type) = cmdb_objects(&app, &t.admin).await;
    let ctx = BodyCtx {
        assignee: t.admin_id,
        ci: ci_target.parse().unwrap(),
    };
    let roles = ["admin", "manager", "operator", "user", "viewer"];
    let mut tokens = Vec::new();
    for role in roles {
        let token = if role == "admin" {
            t.admin.clone()
        } else {
            app.user(&t.admin, role).await.1
        };
        tokens.push((role, token));
    }
    // Someone for the admin to edit, deactivate and reactivate (not themselves).
    let victim = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&t.admin),
            body_for(&Method::POST, "/api/v1/users", &ctx),
        )
        .await;
    assert_eq!(victim.status, StatusCode::CREATED, "{:?}", victim.body);
    let victim = victim.body["id"].as_str().unwrap().to_owned();

    let mut failures = Vec::new();
    let mut checked = 0;
    for (role_name, token) in &tokens {
        let role: Role = role_name.parse().unwrap();
        let perms = PermissionSet::from_role(role);
        // The objects this role's requests target: its own incident for a requester (who
        // sees only theirs), the admin's otherwise; fresh ones for every role.
        let inc = app
            .incident(
                if *role_name == "user" {
                    token
                } else {
                    &t.admin
                },
                &format!("RBAC target for {role_name}"),
            )
            .await;
        let inc_id = inc["id"].as_str().unwrap().to_owned();
        let up = upload(
            &app,
            &format!("/api/v1/incidents/{inc_id}/attachments"),
            &t.admin,
            b"log".to_vec(),
        )
        .await;
        assert_eq!(up.status, StatusCode::CREATED, "{:?}", up.body);
        let (team, category) = team_and_category(&app, &t.admin).await;
        let (calendar, policy) = sla_config(&app, &t.admin).await;
        let role = custom_role(&app, &t.admin).await;
        let (key, _) = api_key(&app, &t.admin, json!({"name": format!("k {role_name}")})).await;
        let (ci, ci_rel, _, _) = cmdb_objects(&app, &t.admin).await;
        let (webhook, delivery) = webhook(&app, &t.admin).await;
        let problem = problem_objects(&app, &t.admin, &inc_id).await;
        let (change, change_task) = change_objects(&app, &t.admin).await;
        let targets = Targets {
            incident: inc_id,
            attachment: up.body["attachments"][0]["id"].as_str().unwrap().to_owned(),
            user: victim.clone(),
            team,
            category,
            key,
            calendar,
            policy,
            role,
            ci,
            ci_type: ci_type.clone(),
            ci_rel,
            webhook,
            delivery,
            problem,
            change,
            change_task,
        };
        for (method, route, needed) in PERMISSIONS {
            assert_eq!(permission_for(method, route), Some(*needed));
            // A route whose placeholder we cannot fill still gets its permission checked.
            let path = targets.path(route).unwrap_or_else(|| {
                let mut p = (*route).to_owned();
                while let (Some(s), Some(e)) = (p.find('{'), p.find('}')) {
                    p.replace_range(s..=e, &Uuid::now_v7().to_string());
                }
                p
            });
            let allowed = perms.contains(*needed);
            let r = send(&app, method, route, &path, token, &ctx).await;
            let ok = if allowed {
                r.status.is_success()
                    || (r.status.is_client_error()
                        && r.status != StatusCode::UNAUTHORIZED
                        && r.status != StatusCode::FORBIDDEN)
            } else {
                r.status == StatusCode::FORBIDDEN && r.body["error"]["code"] == "forbidden"
            };
            if !ok {
                failures.push(format!(
                    "{role_name} {method} {path} (needs {needed}, allowed={allowed}): {} {}",
                    r.status, r.body
                ));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(checked, PERMISSIONS.len() * roles.len());

    // Spot checks, independent of the table.
    let token = |role: &str| {
        tokens
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    let new_incident = json!({"title": "Spot check", "impact": "low", "urgency": "low"});
    let r = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&token("viewer")),
            Some(new_incident.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "viewer creates");
    let r = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&token("user")),
            Some(new_incident.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "requester creates");
    let r = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&token("operator")),
            body_for(&Method::POST, "/api/v1/users", &ctx),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "operator creates a user");
    let r = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&token("manager")),
            body_for(&Method::POST, "/api/v1/users", &ctx),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "manager creates a user");
    let r = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&t.admin),
            Some(json!({"name": "spot"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "admin creates a key");
    for role in roles {
        let r = app
            .call(Method::GET, "/api/v1/tenants", Some(&token(role)), None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role} lists tenants");
        let r = app
            .call(
                Method::POST,
                "/api/v1/tenants",
                Some(&token(role)),
                Some(json!({"name": "Mine now"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role} creates a tenant");
    }

    // No escalation through API keys: a key cannot hold more than its creator, and a
    // restricted key is held to its own permissions.
    let r = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&t.admin),
            Some(json!({"name": "platform?", "permissions": ["tenant:manage"]})),
        )
        .await;
    assert_eq!(
        (r.status, r.error_field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("permissions")),
        "{:?}",
        r.body
    );
    let (_, ro_key) = api_key(
        &app,
        &t.admin,
        json!({"name": "read only", "permissions": ["incident:read"]}),
    )
    .await;
    assert_eq!(
        call_key(&app, Method::GET, "/api/v1/incidents", &ro_key)
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .call_with(
            Method::POST,
            "/api/v1/incidents",
            None,
            Some(new_incident),
            &[("x-api-key", &ro_key)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "read-only key creates");
    for path in ["/api/v1/users", "/api/v1/api-keys"] {
        assert_eq!(
            call_key(&app, Method::GET, path, &ro_key).await.status,
            StatusCode::FORBIDDEN,
            "read-only key {path}"
        );
    }

    // Undeclared routes and methods are never served.
    for (method, path) in [
        (Method::GET, "/api/v1/nope"),
        (Method::GET, "/api/v1/admin"),
        (Method::DELETE, "/api/v1/incidents"),
        (Method::PUT, "/api/v1/users"),
        (Method::GET, "/api/v1/incidents/../tenants"),
    ] {
        for tok in [Some(t.admin.as_str()), None] {
            let r = app.call(method.clone(), path, tok, None).await;
            assert!(
                [
                    StatusCode::NOT_FOUND,
                    StatusCode::FORBIDDEN,
                    StatusCode::METHOD_NOT_ALLOWED,
                    StatusCode::UNAUTHORIZED
                ]
                .contains(&r.status),
                "{method} {path} (token: {}): {} {:?}",
                tok.is_some(),
                r.status,
                r.body
            );
        }
    }
    let r = app
        .call(Method::GET, "/api/v1/nope", Some(&t.admin), None)
        .await;
    assert!(
        [StatusCode::NOT_FOUND, StatusCode::FORBIDDEN].contains(&r.status),
        "{}",
        r.status
    );
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// 3. Requester visibility
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn requesters_see_only_their_incidents_and_public_notes() {
    let app = spawn().await;
    let t = app.tenant("Acme").await;
    let (r1_id, r1) = app.user(&t.admin, "user").await;
    let (r2_id, r2) = app.user(&t.admin, "user").await;
    let (_, agent) = app.user(&t.admin, "operator").await;

    let mine1 = app.incident(&r1, "My mouse is broken").await;
    let mine2 = app.incident(&r1, "My screen flickers").await;
    let theirs = app.incident(&r2, "Their VPN is down").await;
    let admins = app.incident(&t.admin, "Server room too warm").await;
    let mine: BTreeSet<String> = [&mine1, &mine2]
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(mine1["reporter"]["id"], r1_id.to_string());

    let list = app
        .call(Method::GET, "/api/v1/incidents", Some(&r1), None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(ids(&list.body), mine);
    assert_eq!(list.body["pagination"]["total_items"], 2);
    // Filters cannot widen the view.
    for q in [
        format!("reporter_id={r2_id}"),
        format!("reporter_id={}", t.admin_id),
        "q=VPN".to_owned(),
        "q=Server".to_owned(),
    ] {
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/incidents?{q}"),
                Some(&r1),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
        assert_eq!(r.body["pagination"]["total_items"], 0, "{q}: {:?}", r.body);
    }
    let r = app
        .call(
            Method::GET,
            "/api/v1/incidents?limit=100",
            Some(&agent),
            None,
        )
        .await;
    assert_eq!(r.body["pagination"]["total_items"], 4, "agents see all");

    for other in [&theirs, &admins] {
        let path = format!("/api/v1/incidents/{}", other["id"].as_str().unwrap());
        let r = app.call(Method::GET, &path, Some(&r1), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
        let r = app
            .call(
                Method::POST,
                &format!("{path}/work-notes"),
                Some(&r1),
                Some(json!({"content": "Let me in"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
        let r = app.call(Method::GET, &path, Some(&t.admin), None).await;
        assert_eq!(r.body["work_notes"], json!([]), "nothing was added");
    }

    // Private and public notes.
    let path = format!("/api/v1/incidents/{}", mine1["id"].as_str().unwrap());
    for (content, public) in [
        ("INTERNAL: user is a VIP, handle with care", false),
        ("We are ordering you a new mouse", true),
    ] {
        let r = app
            .call(
                Method::POST,
                &format!("{path}/work-notes"),
                Some(&agent),
                Some(json!({"content": content, "is_public": public})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    // A requester's own note is public whatever they ask for.
    let r = app
        .call(
            Method::POST,
            &format!("{path}/work-notes"),
            Some(&r1),
            Some(json!({"content": "Thanks!", "is_public": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let contents = |b: &Value| -> Vec<String> {
        b["work_notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["content"].as_str().unwrap().to_owned())
            .collect()
    };
    // The work-note response a requester gets must not leak the private note either.
    assert!(
        !contents(&r.body).iter().any(|c| c.starts_with("INTERNAL")),
        "{:?}",
        r.body
    );
    let seen = app.call(Method::GET, &path, Some(&r1), None).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(
        contents(&seen.body),
        ["We are ordering you a new mouse", "Thanks!"]
    );
    assert!(
        !seen.body.to_string().contains("VIP"),
        "private note leaked: {}",
        seen.body
    );
    let agent_view = app.call(Method::GET, &path, Some(&agent), None).await;
    assert_eq!(contents(&agent_view.body).len(), 3);
    // The second requester cannot see the first one's incident either.
    let r = app.call(Method::GET, &path, Some(&r2), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// 4. Forged, expired and revoked credentials
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn forged_expired_and_revoked_credentials_are_refused() {
    let app = spawn().await;
    let t = app.tenant("Acme").await;
    let (user, tenant): (UserId, TenantId) = (UserId(t.admin_id), t.id);
    let real = JwtConfig::hs256(JWT_SECRET.as_bytes()).unwrap();
    let now = Utc::now();
    let mint = |cfg: &JwtConfig, role: &str, at| {
        eventdesk_auth::jwt::issue(cfg, user, tenant, role, at)
            .unwrap()
            .0
    };

    // Control: a token minted with the real secret works.
    let good = mint(&real, "admin", now);
    let r = app
        .call(Method::GET, "/api/v1/incidents", Some(&good), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // The hand-made encoder is right (RFC 4648 §5 alphabet, no padding).
    assert_eq!(b64url(b"hello?>"), "aGVsbG8_Pg");
    assert_eq!(b64url(b"\xfb\xff"), "-_8");
    let ts = now.timestamp();
    let claims = |role: &str| {
        json!({
            "sub": t.admin_id, "tid": t.id.0, "role": role, "exp": ts + 600, "nbf": ts,
            "iat": ts, "iss": "eventdesk", "aud": "eventdesk-api", "jti": Uuid::new_v4(),
        })
    };
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(claims("admin").to_string().as_bytes());
    let good_parts: Vec<&str> = good.split('.').collect();
    let viewer = mint(&real, "viewer", now);
    let viewer_parts: Vec<&str> = viewer.split('.').collect();
    let other = JwtConfig::hs256(b"another-secret-another-secret-0123456789").unwrap();

    let forged: Vec<(&str, String)> = vec![
        ("garbage", "garbage".to_owned()),
        ("three dots", "a.b.c".to_owned()),
        (
            "alg none, no signature",
            format!("{none_header}.{payload}."),
        ),
        ("alg none, two parts", format!("{none_header}.{payload}")),
        (
            "alg none, genuine signature",
            format!("{none_header}.{payload}.{}", good_parts[2]),
        ),
        (
            "alg NONE",
            format!("{}.{payload}.", b64url(br#"{"alg":"NONE","typ":"JWT"}"#)),
        ),
        (
            "role changed after signing",
            format!(
                "{}.{}.{}",
                viewer_parts[0],
                b64url(claims("admin").to_string().as_bytes()),
                viewer_parts[2]
            ),
        ),
        ("another secret", mint(&other, "admin", now)),
        (
            "expired 2 h ago",
            mint(&real, "admin", now - TimeDelta::hours(2)),
        ),
        (
            "expired a minute ago",
            mint(&real, "admin", now - TimeDelta::minutes(16)),
        ),
        (
            "not valid for 10 min",
            mint(&real, "admin", now + TimeDelta::minutes(10)),
        ),
        (
            "wrong audience",
            mint(&real.clone().with_audience("other-api"), "admin", now),
        ),
        (
            "wrong issuer",
            mint(&real.clone().with_issuer("evil"), "admin", now),
        ),
        ("unknown role", mint(&real, "superadmin", now)),
        ("platform role", mint(&real, "platform", now)),
        ("empty bearer", String::new()),
    ];
    for (what, token) in &forged {
        let r = app
            .call(Method::GET, "/api/v1/incidents", Some(token), None)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {:?}", r.body);
        assert_eq!(r.body["error"]["code"], "unauthorized", "{what}");
    }
    // Every failure looks the same.
    let r = app.call(Method::GET, "/api/v1/incidents", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "no token");
    let no_token_body = r.body;
    let r = app
        .call(Method::GET, "/api/v1/incidents", Some("garbage"), None)
        .await;
    assert_eq!(r.body, no_token_body);
    // Other schemes are not credentials.
    for header in [
        format!("Basic {}", b64url(format!("admin:{PASSWORD}").as_bytes())),
        format!("Token {good}"),
        good.clone(),
    ] {
        let r = app
            .call_with(
                Method::GET,
                "/api/v1/incidents",
                None,
                None,
                &[("authorization", &header)],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{header:.12}");
    }
    // A JWT in X-API-Key works like a bearer token (one credential, whichever header).
    let r = app
        .call_with(
            Method::GET,
            "/api/v1/incidents",
            None,
            None,
            &[("x-api-key", &good)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // API keys: works with both headers; wrong random part, wrong mode, revoked: 401.
    let (key_id, key) = api_key(&app, &t.admin, json!({"name": "CI"})).await;
    assert!(key.starts_with("qg_live_"), "{key}");
    let r = app
        .call(Method::GET, "/api/v1/incidents", Some(&key), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "bearer key: {:?}", r.body);
    let r = call_key(&app, Method::GET, "/api/v1/incidents", &key).await;
    assert_eq!(r.status, StatusCode::OK, "x-api-key: {:?}", r.body);
    // Same lookup prefix (qg_live_ + 8 chars), a different secret in the middle.
    let mut tampered = key.clone().into_bytes();
    let i = 8 + 20;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(&tampered[..16], &key[..16]);
    let wrong_mode = key.replacen("qg_live_", "qg_test_", 1);
    let truncated = key[..key.len() - 1].to_owned();
    for (what, k) in [
        ("tampered", &tampered),
        ("wrong mode", &wrong_mode),
        ("truncated", &truncated),
    ] {
        let r = call_key(&app, Method::GET, "/api/v1/incidents", k).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {:?}", r.body);
        let r = app
            .call(Method::GET, "/api/v1/incidents", Some(k), None)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {:?}", r.body);
    }
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{key_id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .call(Method::GET, "/api/v1/incidents", Some(&key), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "revoked (bearer)");
    let r = call_key(&app, Method::GET, "/api/v1/incidents", &key).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "revoked (x-api-key)");
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{key_id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "revoked twice");
    // A revoked key cannot revoke or create keys either.
    let r = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&key),
            Some(json!({"name": "phoenix"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// 5. Login, refresh rotation, profile
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_failures_are_uniform_and_logged_and_refresh_tokens_rotate() {
    let app = spawn().await;
    let t = app.tenant("Acme").await;
    let (id, username, token) = named_user(&app, &t.admin, "operator").await;
    let count = |event_type: &'static str| {
        let pool = app.db.superuser.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM events WHERE stream_type = 'security' AND event_type = $1",
            )
            .bind(event_type)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let failed_before = count("LoginFailed").await;

    let appr = &app;
    let login = |u: String, p: &'static str| async move {
        appr.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": u, "password": p})),
        )
        .await
    };
    let wrong_password = login(username.clone(), "not the password at all").await;
    let unknown_user = login(format!("ghost_{}", uniq()), PASSWORD).await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_user.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong_password.body, unknown_user.body,
        "the answer reveals whether the user exists"
    );
    assert_eq!(wrong_password.body["error"]["code"], "invalid_credentials");
    assert!(wrong_password.header("set-cookie").is_none());
    assert_eq!(count("LoginFailed").await - failed_before, 2);
    // The recorded failure names the reason (for the security log, not the client).
    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT data->>'reason' FROM events WHERE stream_type = 'security' \
         AND event_type = 'LoginFailed' ORDER BY global_position",
    )
    .fetch_all(&app.db.superuser)
    .await
    .unwrap();
    assert!(
        reasons.ends_with(&["bad_password".to_owned(), "unknown_user".to_owned()]),
        "{reasons:?}"
    );

    // Profile.
    let r = app
        .call(Method::GET, "/api/v1/auth/profile", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["id"], id.to_string());
    assert_eq!(r.body["username"], username.as_str());
    assert_eq!(r.body["role"], "operator");
    assert!(r.body.get("password_hash").is_none(), "{:?}", r.body);
    assert!(!r.body.to_string().contains("$argon2"), "{:?}", r.body);

    // Refresh rotation with reuse detection.
    let ok = login(username.clone(), PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK);
    let r1 = ok.body["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |tok: String| async move {
        appr.call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": tok})),
        )
        .await
    };
    let rot = refresh(r1.clone()).await;
    assert_eq!(rot.status, StatusCode::OK, "{:?}", rot.body);
    let r2 = rot.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r2, r1);
    let access = rot.body["access_token"].as_str().unwrap().to_owned();
    let r = app
        .call(Method::GET, "/api/v1/auth/profile", Some(&access), None)
        .await;
    assert_eq!(r.body["username"], username.as_str());
    let reused_before = count("RefreshTokenReused").await;
    let again = refresh(r1).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "reuse of the old");
    assert_eq!(count("RefreshTokenReused").await - reused_before, 1);
    let revoked = refresh(r2).await;
    assert_eq!(
        revoked.status,
        StatusCode::UNAUTHORIZED,
        "the family is revoked after a reuse: {:?}",
        revoked.body
    );
    for bogus in ["", "nope", "qg_live_x"] {
        let r = refresh(bogus.to_owned()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bogus:?}");
    }
    // A refresh token is not an access token.
    let fresh = login(username.clone(), PASSWORD).await;
    let rt = fresh.body["refresh_token"].as_str().unwrap().to_owned();
    let r = app
        .call(Method::GET, "/api/v1/incidents", Some(&rt), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // A deactivated user can neither log in (same answer as a wrong password) nor refresh.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/users/{id}/deactivate"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = login(username.clone(), PASSWORD).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    assert_eq!(r.body, wrong_password.body);
    let r = refresh(rt).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// 6. Security headers
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn().await;
    let t = app.tenant("Acme").await;
    let (_, viewer) = app.user(&t.admin, "viewer").await;
    let cases = [
        ("200", Method::GET, "/healthz", None, StatusCode::OK),
        (
            "200 api",
            Method::GET,
            "/api/v1/incidents",
            Some(t.admin.as_str()),
            StatusCode::OK,
        ),
        (
            "401",
            Method::GET,
            "/api/v1/incidents",
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "403",
            Method::GET,
            "/api/v1/users",
            Some(viewer.as_str()),
            StatusCode::FORBIDDEN,
        ),
        (
            "404",
            Method::GET,
            "/api/v1/nope",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "404 api",
            Method::GET,
            "/api/v1/incidents/00000000-0000-0000-0000-000000000000",
            Some(t.admin.as_str()),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (what, method, path, token, status) in cases {
        let r = app.call(method.clone(), path, token, None).await;
        assert_eq!(r.status, status, "{what}");
        assert_security_headers(&r, what);
        // A request id is generated when none is sent, and an incoming one is echoed.
        let mine = format!("sec-test-{}", uniq());
        let r = app
            .call_with(method, path, token, None, &[("x-request-id", &mine)])
            .await;
        assert_eq!(r.status, status, "{what}");
        assert_eq!(r.header("x-request-id"), Some(mine.as_str()), "{what}");
        assert_security_headers(&r, what);
    }
    let a = app.call(Method::GET, "/healthz", None, None).await;
    let b = app.call(Method::GET, "/healthz", None, None).await;
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// 7. 5xx hygiene
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_internal_error_leaks_nothing() {
    let app = spawn().await;
    let t = app.tenant("Acme").await;
    app.incident(&t.admin, "Before the outage").await;
    // Break the read model under the server's feet (this test's database only).
    sqlx::query("ALTER TABLE rm_incidents RENAME TO rm_incidents_gone")
        .execute(&app.db.superuser)
        .await
        .unwrap();
    let r = app
        .call(Method::GET, "/api/v1/incidents", Some(&t.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{:?}", r.body);
    assert_generic_500(&r, "list");
    assert_security_headers(&r, "500");
    sqlx::query("ALTER TABLE rm_incidents_gone RENAME TO rm_incidents")
        .execute(&app.db.superuser)
        .await
        .unwrap();
    app.stop().await;
}

/// Hostile text (NUL bytes, which PostgreSQL refuses in `text`) is a client error, never a 500.
#[tokio::test]
async fn nul_bytes_in_input_are_client_errors() {
    let app = spawn().await;
    let t = app.tenant("Acme").await;
    let inc = app.incident(&t.admin, "Target").await;
    let path = format!("/api/v1/incidents/{}", inc["id"].as_str().unwrap());
    let mut failures = Vec::new();
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/v1/incidents?q=a%00b".into(), None),
        (
            Method::POST,
            "/api/v1/incidents".into(),
            Some(json!({"title": "a\u{0}b"})),
        ),
        (
            Method::POST,
            "/api/v1/incidents".into(),
            Some(json!({"title": "t", "description": "a\u{0}b"})),
        ),
        (
            Method::POST,
            format!("{path}/work-notes"),
            Some(json!({"content": "a\u{0}b"})),
        ),
        (
            Method::POST,
            "/api/v1/api-keys".into(),
            Some(json!({"name": "a\u{0}b"})),
        ),
        (
            Method::POST,
            "/api/v1/teams".into(),
            Some(json!({"name": "a\u{0}b"})),
        ),
        (
            Method::POST,
            "/api/v1/auth/login".into(),
            Some(json!({"username": "a\u{0}b", "password": "x"})),
        ),
        (
            Method::POST,
            "/api/v1/auth/refresh".into(),
            Some(json!({"refresh_token": "a\u{0}b"})),
        ),
    ];
    for (method, p, body) in cases {
        let r = app.call(method.clone(), &p, Some(&t.admin), body).await;
        if r.status.is_server_error() {
            assert_generic_500(&r, &p);
        }
        if !r.status.is_client_error() {
            failures.push(format!("{method} {p}: {} {}", r.status, r.body));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// 8. Body limits
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_json_bodies_are_refused_with_413() {
    let app = spawn().await;
    let t = app.tenant("Acme").await;
    let inc = app.incident(&t.admin, "Target").await;
    let big = "x".repeat(1024 * 1024 + 1);
    let r = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&t.admin),
            Some(json!({"title": "big", "description": big})),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "payload_too_large");
    assert_security_headers(&r, "413");
    let path = format!("/api/v1/incidents/{}", inc["id"].as_str().unwrap());
    for p in [path.clone(), format!("{path}/resolve")] {
        let method = if p == path {
            Method::PATCH
        } else {
            Method::POST
        };
        let r = app
            .call(
                method,
                &p,
                Some(&t.admin),
                Some(json!({"resolution": big.clone()})),
            )
            .await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{p}: {:?}", r.body);
    }
    // Nothing was written, and a body just under the limit is not refused for its size.
    let r = app.call(Method::GET, &path, Some(&t.admin), None).await;
    // Created with its two SLA timers: version 3.
    assert_eq!(r.body["version"], 3);
    let r = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&t.admin),
            Some(json!({"title": "almost big", "description": "x".repeat(900 * 1024)})),
        )
        .await;
    assert_ne!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Unauthenticated big bodies are refused before anything else.
    let r = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            None,
            Some(json!({"title": "big", "description": big})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// A verified API key is cached for at most `API_KEY_CACHE_TTL` (2 s, ADR 0024): revoked
/// through one node, it is refused there at once, and on another node that had it cached
/// within that bound.
#[tokio::test]
async fn a_key_revoked_on_one_node_is_refused_on_another_within_the_cache_bound() {
    let app = spawn().await;
    let t = app.tenant("Acme").await;
    let (key_id, key) = api_key(&app, &t.admin, json!({"name": "ci"})).await;
    let other = app.sibling().await;
    let on_other = |key: String| {
        let (client, base) = (other.client.clone(), other.base.clone());
        async move {
            client
                .get(format!("{base}/api/v1/incidents"))
                .bearer_auth(key)
                .send()
                .await
                .expect("request")
                .status()
        }
    };
    // Both nodes have verified (and cached) the key.
    assert_eq!(on_other(key.clone()).await, StatusCode::OK);
    let r = app
        .call(Method::GET, "/api/v1/incidents", Some(&key), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{key_id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let revoked_at = std::time::Instant::now();
    let r = app
        .call(Method::GET, "/api/v1/incidents", Some(&key), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "this node: at once");
    loop {
        let status = on_other(key.clone()).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(10),
            "the other node still accepts the revoked key after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    other.stop().await;
    app.stop().await;
}
