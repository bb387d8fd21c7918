//! SLA configuration over HTTP: business-hours calendars and SLA policies — create, list, read,
//! update, deactivate; validation naming fields; `If-Match`; tenant isolation; RBAC; holiday
//! import from iCalendar; and `load_sla_config` over what the API wrote.

use super::app::{Resp, TestApp};
use eventdesk_domain::{CalendarId, SlaPolicyId, TenantId};
use eventdesk_projections::queries::sla_config::load_sla_config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use uuid::Uuid;

const CALENDARS: &str = "/api/v1/sla/calendars";
const POLICIES: &str = "/api/v1/sla/policies";

fn office_hours(name: &str) -> Value {
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday"];
    json!({
        "name": name,
        "time_zone": "Europe/Berlin",
        "weekly_hours": days
            .iter()
            .map(|d| json!({"day": d, "start": "08:00", "end": "18:00"}))
            .collect::<Vec<_>>(),
        "holidays": [{"date": "2025-12-25", "name": "Christmas Day"}],
    })
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> Resp {
    app.call(Method::POST, path, Some(token), Some(body)).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> Resp {
    app.call(Method::GET, path, Some(token), None).await
}

/// Creates a calendar and returns its id.
async fn calendar(app: &TestApp, token: &str, name: &str) -> String {
    let r = post(app, CALENDARS, token, office_hours(name)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().expect("id").to_owned()
}

/// Creates a policy and returns its id.
async fn policy(app: &TestApp, token: &str, body: Value) -> String {
    let r = post(app, POLICIES, token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().expect("id").to_owned()
}

fn ids(body: &Value) -> Vec<Value> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .map(|o| o["id"].clone())
        .collect()
}

/// Asserts a 422 naming `field`.
#[track_caller]
fn assert_422(r: &Resp, field: &str) {
    assert_eq!(
        (r.status, r.error_field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn calendars_are_created_listed_updated_and_deactivated() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;

    let r = post(&app, CALENDARS, &t.admin, office_hours("  Office hours ")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("{CALENDARS}/{id}");
    assert_eq!(r.header("location"), Some(path.as_str()));
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["name"], "Office hours");
    assert_eq!(r.body["time_zone"], "Europe/Berlin");
    assert_eq!(r.body["weekly_hours"].as_array().unwrap().len(), 5);
    assert_eq!(r.body["weekly_hours"][0]["start"], "08:00");
    assert_eq!(r.body["holidays"][0]["date"], "2025-12-25");
    assert_eq!(
        (&r.body["active"], &r.body["builtin"], &r.body["version"]),
        (&json!(true), &json!(false), &json!(1))
    );

    let g = get(&app, &path, &t.admin).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(g.header("etag"), Some("\"1\""));
    assert_eq!(g.body, r.body);

    // The list: the built-in 24x7 calendar first, then the tenant's by name.
    let second = calendar(&app, &t.admin, "Around the clock support").await;
    let l = get(&app, CALENDARS, &t.admin).await;
    assert_eq!(l.status, StatusCode::OK, "{:?}", l.body);
    assert_eq!(ids(&l.body), [Value::Null, json!(second), json!(id)]);
    let builtin = &l.body["data"][0];
    assert_eq!(
        (&builtin["name"], &builtin["builtin"], &builtin["time_zone"]),
        (&json!("24x7"), &json!(true), &json!("UTC"))
    );
    assert_eq!(builtin["weekly_hours"].as_array().unwrap().len(), 7);
    assert_eq!(l.body["pagination"]["total_items"], 3);
    // Paging counts the built-in calendar: page 2 of size 2 holds the last stored one.
    let p2 = get(&app, &format!("{CALENDARS}?page=2&limit=2"), &t.admin).await;
    assert_eq!(ids(&p2.body), [json!(id)]);
    assert_eq!(p2.body["pagination"]["total_pages"], 2);
    assert_eq!(p2.body["pagination"]["has_prev"], true);
    // Cursor mode walks the same list one by one.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..5 {
        let r = get(
            &app,
            &format!("{CALENDARS}?limit=1&cursor={cursor}"),
            &t.admin,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        seen.extend(ids(&r.body));
        match r.body["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, [Value::Null, json!(second), json!(id)]);

    // PATCH: one part of the definition replaces the current one; the rest is kept.
    let u = app
        .call(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"name": "Office", "weekly_hours": [
                {"day": "monday", "start": "09:00", "end": "12:00"},
                {"day": "monday", "start": "13:00", "end": "17:00"},
                {"day": "saturday", "start": "22:00", "end": "06:00"},
            ]})),
        )
        .await;
    assert_eq!(u.status, StatusCode::OK, "{:?}", u.body);
    assert_eq!(u.header("etag"), Some("\"2\""));
    assert_eq!(
        (&u.body["name"], &u.body["version"]),
        (&json!("Office"), &json!(2))
    );
    assert_eq!(u.body["weekly_hours"].as_array().unwrap().len(), 3);
    assert_eq!(u.body["time_zone"], "Europe/Berlin");
    assert_eq!(u.body["holidays"], r.body["holidays"]);

    // A change of nothing keeps the version.
    let same = app
        .call(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"name": "Office"})),
        )
        .await;
    assert_eq!(
        (same.status, same.header("etag")),
        (StatusCode::OK, Some("\"2\""))
    );

    // If-Match: stale → 412 (nothing changes), current → applies.
    let stale = app
        .call_with(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"time_zone": "Asia/Tokyo"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{:?}",
        stale.body
    );
    assert_eq!(stale.body["error"]["code"], "precondition_failed");
    assert_eq!(
        get(&app, &path, &t.admin).await.body["time_zone"],
        "Europe/Berlin"
    );
    let ok = app
        .call_with(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"time_zone": "Asia/Tokyo"})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(ok.body["time_zone"], "Asia/Tokyo");

    // DELETE deactivates; the calendar stays readable and listed; changes are refused.
    let stale = app
        .call_with(
            Method::DELETE,
            &path,
            Some(&t.admin),
            None,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let d = app.call(Method::DELETE, &path, Some(&t.admin), None).await;
    assert_eq!(d.status, StatusCode::OK, "{:?}", d.body);
    assert_eq!(
        (&d.body["active"], &d.body["version"]),
        (&json!(false), &json!(4))
    );
    assert_eq!(get(&app, &path, &t.admin).await.body["active"], false);
    let again = app.call(Method::DELETE, &path, Some(&t.admin), None).await;
    assert_eq!(
        (again.status, again.header("etag")),
        (StatusCode::OK, Some("\"4\""))
    );
    let r = app
        .call(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"name": "Back"})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("deactivated"))
    );

    // Unknown ids and non-UUIDs are 404.
    for p in [
        format!("{CALENDARS}/{}", Uuid::now_v7()),
        format!("{CALENDARS}/24x7"),
    ] {
        assert_eq!(
            get(&app, &p, &t.admin).await.status,
            StatusCode::NOT_FOUND,
            "{p}"
        );
        let r = app
            .call(
                Method::PATCH,
                &p,
                Some(&t.admin),
                Some(json!({"name": "x"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
    }
    app.stop().await;
}

#[tokio::test]
async fn calendar_validation_names_the_field() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let with = |patch: Value| {
        let mut body = office_hours("Office");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (with(json!({"time_zone": "Mars/Olympus_Mons"})), "time_zone"),
        (with(json!({"name": "  "})), "name"),
        (with(json!({"name": "x".repeat(201)})), "name"),
        (with(json!({"tenant_id": Uuid::now_v7()})), "tenant_id"),
        (
            with(json!({"weekly_hours": [{"day": "monday", "start": "25:00", "end": "09:00"}]})),
            "weekly_hours[0].start",
        ),
        (
            with(json!({"weekly_hours": [{"day": "someday", "start": "08:00", "end": "09:00"}]})),
            "weekly_hours[0].day",
        ),
        (
            with(
                json!({"weekly_hours": [{"day": "monday", "start": "08:00", "end": "09:00", "x": 1}]}),
            ),
            "weekly_hours[0].x",
        ),
        (
            with(json!({"holidays": [{"date": "2025-02-30"}]})),
            "holidays[0].date",
        ),
    ];
    for (body, field) in cases {
        let r = post(&app, CALENDARS, &t.admin, body).await;
        assert_422(&r, field);
    }
    // Overlapping ranges: the field names the range that overlaps.
    let r = post(
        &app,
        CALENDARS,
        &t.admin,
        with(json!({"weekly_hours": [
            {"day": "monday", "start": "08:00", "end": "12:00"},
            {"day": "monday", "start": "11:00", "end": "14:00"},
        ]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let field = r.error_field().unwrap();
    assert!(field.starts_with("weekly_hours["), "{field}");
    // The same checks apply to PATCH, against the merged definition.
    let id = calendar(&app, &t.admin, "Office").await;
    let r = app
        .call(
            Method::PATCH,
            &format!("{CALENDARS}/{id}"),
            Some(&t.admin),
            Some(json!({"time_zone": "Not/AZone"})),
        )
        .await;
    assert_422(&r, "time_zone");
    let r = app
        .call(
            Method::PATCH,
            &format!("{CALENDARS}/{id}"),
            Some(&t.admin),
            Some(json!({"version": 7})),
        )
        .await;
    assert_422(&r, "version");
    // Nothing was created by the rejected requests.
    let l = get(&app, CALENDARS, &t.admin).await;
    assert_eq!(l.body["pagination"]["total_items"], 2);
    app.stop().await;
}

#[tokio::test]
async fn policies_are_created_listed_updated_deactivated_and_reactivated() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let cal = calendar(&app, &t.admin, "Office").await;
    let team = post(&app, "/api/v1/teams", &t.admin, json!({"name": "Network"})).await;
    assert_eq!(team.status, StatusCode::CREATED);
    let team = team.body["id"].as_str().unwrap().to_owned();

    let body = json!({
        "name": "Network outages",
        "rank": 10,
        "condition": {"team_id": team, "impact": "high"},
        "calendar_id": cal,
        "targets": [
            {"priority": "low", "resolution_minutes": 4320},
            {"priority": "critical", "response_minutes": 15, "resolution_minutes": 240},
        ],
    });
    let r = post(&app, POLICIES, &t.admin, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("{POLICIES}/{id}");
    assert_eq!(r.header("location"), Some(path.as_str()));
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["name"], "Network outages");
    assert_eq!(r.body["rank"], 10);
    assert_eq!(
        r.body["condition"],
        json!({"team_id": team, "impact": "high"})
    );
    assert_eq!(r.body["calendar_id"], json!(cal));
    // Targets come back most urgent first.
    assert_eq!(r.body["targets"][0]["priority"], "critical");
    assert_eq!(
        r.body["targets"][1],
        json!({"priority": "low", "resolution_minutes": 4320})
    );
    assert_eq!(
        (&r.body["active"], &r.body["version"]),
        (&json!(true), &json!(1))
    );

    let g = get(&app, &path, &t.admin).await;
    assert_eq!(
        (g.status, g.header("etag")),
        (StatusCode::OK, Some("\"1\""))
    );
    assert_eq!(g.body, r.body);

    // Defaults: rank 100, empty condition, 24x7 calendar.
    let catch_all = policy(
        &app,
        &t.admin,
        json!({"name": "Everything else", "targets": [{"priority": "medium", "response_minutes": 240}]}),
    )
    .await;
    let c = get(&app, &format!("{POLICIES}/{catch_all}"), &t.admin).await;
    assert_eq!(
        (
            &c.body["rank"],
            &c.body["condition"],
            &c.body["calendar_id"]
        ),
        (&json!(100), &json!({}), &Value::Null)
    );
    let first = policy(
        &app,
        &t.admin,
        json!({"name": "VIP", "rank": 1, "targets": []}),
    )
    .await;
    // Listed in evaluation order: rank, then age.
    let l = get(&app, POLICIES, &t.admin).await;
    assert_eq!(l.status, StatusCode::OK, "{:?}", l.body);
    assert_eq!(ids(&l.body), [json!(first), json!(id), json!(catch_all)]);
    assert_eq!(l.body["pagination"]["total_items"], 3);
    let c1 = get(&app, &format!("{POLICIES}?limit=2&cursor="), &t.admin).await;
    assert_eq!(ids(&c1.body), [json!(first), json!(id)]);
    let next = c1.body["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let c2 = get(&app, &format!("{POLICIES}?limit=2&cursor={next}"), &t.admin).await;
    assert_eq!(ids(&c2.body), [json!(catch_all)]);

    // PATCH: absent fields kept, targets replaced, calendar_id null → 24x7.
    let u = app
        .call_with(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"rank": 200, "calendar_id": null,
                        "targets": [{"priority": "high", "response_minutes": 60, "calendar_id": cal}]})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(u.status, StatusCode::OK, "{:?}", u.body);
    assert_eq!(u.header("etag"), Some("\"2\""));
    assert_eq!(
        (
            &u.body["name"],
            &u.body["rank"],
            &u.body["calendar_id"],
            &u.body["version"]
        ),
        (
            &json!("Network outages"),
            &json!(200),
            &Value::Null,
            &json!(2)
        )
    );
    assert_eq!(
        u.body["targets"],
        json!([{"priority": "high", "response_minutes": 60, "calendar_id": cal}])
    );
    let stale = app
        .call_with(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"name": "Lost update"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{:?}",
        stale.body
    );
    assert_eq!(
        get(&app, &path, &t.admin).await.body["name"],
        "Network outages"
    );

    // DELETE deactivates; a deactivated policy can be edited and reactivated.
    let d = app.call(Method::DELETE, &path, Some(&t.admin), None).await;
    assert_eq!(d.status, StatusCode::OK, "{:?}", d.body);
    assert_eq!(
        (&d.body["active"], &d.body["version"]),
        (&json!(false), &json!(3))
    );
    assert_eq!(d.header("etag"), Some("\"3\""));
    let e = app
        .call(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"name": "Network (old)"})),
        )
        .await;
    assert_eq!(e.status, StatusCode::OK, "{:?}", e.body);
    assert_eq!(
        (&e.body["active"], &e.body["version"]),
        (&json!(false), &json!(4))
    );
    let stale = app
        .call_with(
            Method::POST,
            &format!("{path}/reactivate"),
            Some(&t.admin),
            None,
            &[("if-match", "\"3\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let re = app
        .call(
            Method::POST,
            &format!("{path}/reactivate"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(re.status, StatusCode::OK, "{:?}", re.body);
    assert_eq!(
        (&re.body["active"], &re.body["version"]),
        (&json!(true), &json!(5))
    );

    for p in [
        format!("{POLICIES}/{}", Uuid::now_v7()),
        format!("{POLICIES}/nope"),
    ] {
        assert_eq!(get(&app, &p, &t.admin).await.status, StatusCode::NOT_FOUND);
        let r = app.call(Method::DELETE, &p, Some(&t.admin), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
        let r = app
            .call(
                Method::POST,
                &format!("{p}/reactivate"),
                Some(&t.admin),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
    }
    app.stop().await;
}

#[tokio::test]
async fn policy_validation_names_the_field() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let cal = calendar(&app, &t.admin, "Office").await;
    let with = |patch: Value| {
        let mut body = json!({
            "name": "P",
            "calendar_id": cal,
            "targets": [
                {"priority": "high", "response_minutes": 60},
                {"priority": "low", "resolution_minutes": 600},
            ],
        });
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let unknown = Uuid::now_v7().to_string();
    let cases = [
        (
            with(json!({"targets": [{"priority": "urgent", "response_minutes": 5}]})),
            "targets[0].priority",
        ),
        (
            with(json!({"targets": [{"priority": "high", "response_minutes": 0}]})),
            "targets[0].response_minutes",
        ),
        (
            with(json!({"targets": [{"priority": "high", "resolution_minutes": 525_601}]})),
            "targets[0].resolution_minutes",
        ),
        (
            with(json!({"targets": [{"priority": "high", "response_minutes": -1}]})),
            "targets[0].response_minutes",
        ),
        (
            with(json!({"targets": [
                {"priority": "high", "response_minutes": 60},
                {"priority": "high", "resolution_minutes": 60},
            ]})),
            "targets[1].priority",
        ),
        (
            with(json!({"targets": [{"priority": "high"}]})),
            "targets[0]",
        ),
        (
            with(json!({"targets": [{"priority": "high", "response_minutes": 5, "sla": 1}]})),
            "targets[0].sla",
        ),
        (with(json!({"status": "active"})), "status"),
        (with(json!({"name": ""})), "name"),
        (with(json!({"calendar_id": unknown})), "calendar_id"),
        (
            with(json!({"targets": [
                {"priority": "high", "response_minutes": 60},
                {"priority": "low", "response_minutes": 60, "calendar_id": unknown},
            ]})),
            "targets[1].calendar_id",
        ),
        (
            with(json!({"condition": {"team_id": unknown}})),
            "condition.team_id",
        ),
        (
            with(json!({"condition": {"category_id": unknown}})),
            "condition.category_id",
        ),
        (
            with(json!({"condition": {"impact": "huge"}})),
            "condition.impact",
        ),
        (
            with(json!({"condition": {"priority": "high"}})),
            "condition.priority",
        ),
    ];
    for (body, field) in cases {
        let r = post(&app, POLICIES, &t.admin, body.clone()).await;
        assert_422(&r, field);
    }
    let r = post(&app, POLICIES, &t.admin, json!({"name": "No targets"})).await;
    assert_422(&r, "targets");
    // A deactivated calendar cannot be newly referenced.
    let old = calendar(&app, &t.admin, "Old").await;
    let d = app
        .call(
            Method::DELETE,
            &format!("{CALENDARS}/{old}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(d.status, StatusCode::OK);
    let r = post(&app, POLICIES, &t.admin, with(json!({"calendar_id": old}))).await;
    assert_422(&r, "calendar_id");
    // PATCH validates the same way.
    let id = policy(&app, &t.admin, with(json!({}))).await;
    let path = format!("{POLICIES}/{id}");
    for (body, field) in [
        (
            json!({"targets": [{"priority": "high", "response_minutes": 0}]}),
            "targets[0].response_minutes",
        ),
        (json!({"calendar_id": unknown}), "calendar_id"),
        (json!({"rank": "first"}), "rank"),
        (json!({"id": unknown}), "id"),
    ] {
        let r = app
            .call(Method::PATCH, &path, Some(&t.admin), Some(body))
            .await;
        assert_422(&r, field);
    }
    let l = get(&app, POLICIES, &t.admin).await;
    assert_eq!(ids(&l.body), [json!(id)], "only the valid policy exists");
    app.stop().await;
}

#[tokio::test]
async fn a_calendar_in_use_cannot_be_deactivated() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let direct = calendar(&app, &t.admin, "Direct").await;
    let via_target = calendar(&app, &t.admin, "Via target").await;
    let p = policy(
        &app,
        &t.admin,
        json!({"name": "P", "calendar_id": direct, "targets": [
            {"priority": "low", "resolution_minutes": 60, "calendar_id": via_target},
        ]}),
    )
    .await;
    for cal in [&direct, &via_target] {
        let r = app
            .call(
                Method::DELETE,
                &format!("{CALENDARS}/{cal}"),
                Some(&t.admin),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        assert_eq!(r.body["error"]["code"], "calendar_in_use");
        assert!(r.body["error"]["message"].as_str().unwrap().contains(&p));
        assert_eq!(
            get(&app, &format!("{CALENDARS}/{cal}"), &t.admin)
                .await
                .body["active"],
            true
        );
    }
    // Once the policy is out of force, the calendars can go; the policy cannot come back on
    // them until it is edited.
    let d = app
        .call(
            Method::DELETE,
            &format!("{POLICIES}/{p}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(d.status, StatusCode::OK);
    let r = app
        .call(
            Method::DELETE,
            &format!("{CALENDARS}/{direct}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        (r.status, &r.body["active"]),
        (StatusCode::OK, &json!(false))
    );
    let r = app
        .call(
            Method::POST,
            &format!("{POLICIES}/{p}/reactivate"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "calendar_deactivated");
    let e = app
        .call(
            Method::PATCH,
            &format!("{POLICIES}/{p}"),
            Some(&t.admin),
            Some(json!({"calendar_id": null})),
        )
        .await;
    assert_eq!(e.status, StatusCode::OK, "{:?}", e.body);
    let r = app
        .call(
            Method::POST,
            &format!("{POLICIES}/{p}/reactivate"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        (r.status, &r.body["active"]),
        (StatusCode::OK, &json!(true)),
        "{:?}",
        r.body
    );
    app.stop().await;
}

#[tokio::test]
async fn another_tenants_calendars_and_policies_are_invisible() {
    let app = TestApp::spawn().await;
    let a = app.tenant("Tenant A").await;
    let b = app.tenant("Tenant B").await;
    let cal = calendar(&app, &a.admin, "A's hours").await;
    let pol = policy(
        &app,
        &a.admin,
        json!({"name": "A's policy", "calendar_id": cal, "targets": []}),
    )
    .await;
    let cal_path = format!("{CALENDARS}/{cal}");
    let pol_path = format!("{POLICIES}/{pol}");
    let before = (
        get(&app, &cal_path, &a.admin).await.body,
        get(&app, &pol_path, &a.admin).await.body,
    );

    let ics = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nSUMMARY:x\nEND:VEVENT\nEND:VCALENDAR\n";
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, cal_path.clone(), None),
        (
            Method::PATCH,
            cal_path.clone(),
            Some(json!({"name": "Mine"})),
        ),
        (Method::DELETE, cal_path.clone(), None),
        (
            Method::POST,
            format!("{cal_path}/holidays/import"),
            Some(json!({"ics": ics})),
        ),
        (Method::GET, pol_path.clone(), None),
        (Method::PATCH, pol_path.clone(), Some(json!({"rank": 1}))),
        (Method::DELETE, pol_path.clone(), None),
        (Method::POST, format!("{pol_path}/reactivate"), None),
    ];
    for (method, path, body) in attempts {
        let r = app.call(method.clone(), &path, Some(&b.admin), body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "B {method} {path}: {:?}",
            r.body
        );
        assert_eq!(r.body["error"]["code"], "not_found");
    }
    // B's lists show only the built-in calendar and nothing of A's.
    let l = get(&app, CALENDARS, &b.admin).await;
    assert_eq!(ids(&l.body), [Value::Null]);
    let l = get(&app, POLICIES, &b.admin).await;
    assert_eq!(ids(&l.body), Vec::<Value>::new());
    // B cannot reference A's calendar.
    let r = post(
        &app,
        POLICIES,
        &b.admin,
        json!({"name": "B", "calendar_id": cal, "targets": []}),
    )
    .await;
    assert_422(&r, "calendar_id");
    // A's objects are unchanged.
    assert_eq!(get(&app, &cal_path, &a.admin).await.body, before.0);
    assert_eq!(get(&app, &pol_path, &a.admin).await.body, before.1);
    app.stop().await;
}

#[tokio::test]
async fn only_admins_and_managers_manage_sla_configuration() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let cal = calendar(&app, &t.admin, "Office").await;
    let pol = policy(&app, &t.admin, json!({"name": "P", "targets": []})).await;
    let (_, manager) = app.user(&t.admin, "manager").await;
    let writes = |n: &str| -> Vec<(Method, String, Option<Value>)> {
        vec![
            (Method::POST, CALENDARS.to_owned(), Some(office_hours(n))),
            (
                Method::PATCH,
                format!("{CALENDARS}/{cal}"),
                Some(json!({"name": n})),
            ),
            (
                Method::POST,
                format!("{CALENDARS}/{cal}/holidays/import"),
                Some(json!({"ics": "BEGIN:VCALENDAR\nEND:VCALENDAR\n"})),
            ),
            (
                Method::POST,
                POLICIES.to_owned(),
                Some(json!({"name": n, "targets": []})),
            ),
            (
                Method::PATCH,
                format!("{POLICIES}/{pol}"),
                Some(json!({"name": n})),
            ),
            (Method::DELETE, format!("{POLICIES}/{pol}"), None),
            (Method::POST, format!("{POLICIES}/{pol}/reactivate"), None),
        ]
    };
    for role in ["operator", "user", "viewer"] {
        let (_, token) = app.user(&t.admin, role).await;
        let mut attempts = writes(role);
        attempts.push((Method::DELETE, format!("{CALENDARS}/{cal}"), None));
        attempts.push((Method::GET, CALENDARS.to_owned(), None));
        attempts.push((Method::GET, format!("{POLICIES}/{pol}"), None));
        for (method, path, body) in attempts {
            let r = app.call(method.clone(), &path, Some(&token), body).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{role} {method} {path}: {:?}",
                r.body
            );
            assert_eq!(r.body["error"]["code"], "forbidden");
        }
    }
    // Nothing changed.
    let c = get(&app, &format!("{CALENDARS}/{cal}"), &t.admin).await;
    assert_eq!(
        (&c.body["name"], &c.body["version"]),
        (&json!("Office"), &json!(1))
    );
    // A manager may do all of it.
    for (method, path, body) in writes("Manager's") {
        let r = app.call(method.clone(), &path, Some(&manager), body).await;
        assert!(
            r.status.is_success(),
            "manager {method} {path}: {:?}",
            r.body
        );
    }
    assert_eq!(get(&app, CALENDARS, &manager).await.status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn holidays_are_imported_from_icalendar() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let id = calendar(&app, &t.admin, "Office").await;
    let import = format!("{CALENDARS}/{id}/holidays/import");
    let ics = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Test//Holidays//EN",
        "BEGIN:VEVENT",
        "UID:newyear@example.com",
        "DTSTART;VALUE=DATE:20250101",
        "RRULE:FREQ=YEARLY",
        "SUMMARY:New Year's Day",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:xmas@example.com",
        "DTSTART;VALUE=DATE:20251225",
        "SUMMARY:Weihnachten",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    .join("\r\n");
    let r = post(
        &app,
        &import,
        &t.admin,
        json!({"ics": ics, "from_year": 2026, "to_year": 2027}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.header("etag"), Some("\"2\""));
    let holidays: Vec<(String, String)> = r.body["holidays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["date"].as_str().unwrap().to_owned(),
                h["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Merged: the imported Christmas replaces the existing one; the yearly event is expanded
    // over 2026–2027.
    assert_eq!(
        holidays,
        [
            ("2025-12-25".to_owned(), "Weihnachten".to_owned()),
            ("2026-01-01".to_owned(), "New Year's Day".to_owned()),
            ("2027-01-01".to_owned(), "New Year's Day".to_owned()),
        ]
    );
    // The same import again changes nothing.
    let again = post(
        &app,
        &import,
        &t.admin,
        json!({"ics": ics, "from_year": 2026, "to_year": 2027}),
    )
    .await;
    assert_eq!(
        (again.status, again.header("etag")),
        (StatusCode::OK, Some("\"2\""))
    );
    // replace: only the imported ones remain.
    let one = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260501\nSUMMARY:Labour Day\nEND:VEVENT\nEND:VCALENDAR\n";
    let r = post(
        &app,
        &import,
        &t.admin,
        json!({"ics": one, "replace": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["holidays"],
        json!([{"date": "2026-05-01", "name": "Labour Day"}])
    );

    // A line the parser rejects: 422 on `ics`, naming the line; nothing changes.
    let bad = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nRRULE:FREQ=MONTHLY\nSUMMARY:x\nEND:VEVENT\nEND:VCALENDAR\n";
    let r = post(&app, &import, &t.admin, json!({"ics": bad})).await;
    assert_422(&r, "ics");
    let message = r.body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("line 4:"), "{message}");
    let unclosed = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\n";
    let r = post(&app, &import, &t.admin, json!({"ics": unclosed})).await;
    assert_422(&r, "ics");
    let r = post(
        &app,
        &import,
        &t.admin,
        json!({"ics": one, "from_year": 2026, "to_year": 2040}),
    )
    .await;
    assert_422(&r, "to_year");
    let r = post(&app, &import, &t.admin, json!({"ics": one, "merge": true})).await;
    assert_422(&r, "merge");
    let g = get(&app, &format!("{CALENDARS}/{id}"), &t.admin).await;
    assert_eq!(g.header("etag"), Some("\"3\""));
    // If-Match applies to imports too.
    let r = app
        .call_with(
            Method::POST,
            &import,
            Some(&t.admin),
            Some(json!({"ics": ics})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{:?}", r.body);
    app.stop().await;
}

#[tokio::test]
async fn load_sla_config_reads_what_the_api_wrote() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let cal = calendar(&app, &t.admin, "Office").await;
    let retired = calendar(&app, &t.admin, "Retired").await;
    let r = app
        .call(
            Method::PATCH,
            &format!("{CALENDARS}/{cal}"),
            Some(&t.admin),
            Some(json!({"name": "Office 2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Method::DELETE,
            &format!("{CALENDARS}/{retired}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let late = policy(
        &app,
        &t.admin,
        json!({"name": "Late", "rank": 5, "targets": []}),
    )
    .await;
    let early = policy(
        &app,
        &t.admin,
        json!({"name": "Early", "rank": 1, "calendar_id": cal,
               "targets": [{"priority": "high", "response_minutes": 30}]}),
    )
    .await;
    let off = policy(
        &app,
        &t.admin,
        json!({"name": "Off", "rank": 0, "targets": []}),
    )
    .await;
    let r = app
        .call(
            Method::DELETE,
            &format!("{POLICIES}/{off}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    calendar(&app, &other.admin, "Not Acme's").await;
    policy(
        &app,
        &other.admin,
        json!({"name": "Not Acme's", "rank": 0, "targets": []}),
    )
    .await;

    // As the API reads: eventdesk_app in a transaction scoped to the tenant.
    let mut tx = app.db.superuser.begin().await.expect("tx");
    sqlx::query("SET LOCAL ROLE eventdesk_app")
        .execute(&mut *tx)
        .await
        .expect("role");
    eventdesk_projections::queries::scope_to_tenant(&mut tx, t.id)
        .await
        .expect("scope");
    let config = load_sla_config(&mut tx, t.id).await.expect("load");
    tx.commit().await.expect("commit");

    let policies: Vec<(Option<SlaPolicyId>, u32)> =
        config.policies.iter().map(|p| (p.id, p.version)).collect();
    let pid = |s: &str| Some(SlaPolicyId(s.parse().unwrap()));
    assert_eq!(
        policies,
        [(pid(&early), 1), (pid(&late), 1)],
        "active only, by rank"
    );
    let early_policy = &config.policies[0];
    assert_eq!(
        early_policy.calendar_id,
        Some(CalendarId(cal.parse().unwrap()))
    );
    assert_eq!(early_policy.targets[0].response_minutes, Some(30));
    assert!(early_policy.active);
    let calendars: BTreeSet<(String, u32)> = config
        .calendars
        .iter()
        .map(|(id, (v, _))| (id.to_string(), *v))
        .collect();
    assert_eq!(
        calendars,
        BTreeSet::from([(cal.clone(), 2), (retired.clone(), 2)]),
        "deactivated calendars included, other tenants' not"
    );
    let (_, def) = &config.calendars[&CalendarId(cal.parse().unwrap())];
    assert_eq!(def.time_zone, "Europe/Berlin");
    assert_eq!(def.weekly_hours.len(), 5);

    // A tenant without configuration: empty.
    let mut conn = app.db.superuser.acquire().await.expect("conn");
    let empty = load_sla_config(&mut conn, TenantId(Uuid::now_v7()))
        .await
        .expect("load");
    assert!(empty.policies.is_empty() && empty.calendars.is_empty());
    app.stop().await;
}
