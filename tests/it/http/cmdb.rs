//! The CMDB over HTTP (issue #8, ADR 0017): configuration items, custom CI types,
//! relationships (cycles refused, also under concurrency), impact analysis on a hand-built
//! graph, and incidents that reference CIs.

use super::app::{Resp, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Creates a CI; returns its JSON.
async fn ci(app: &TestApp, token: &str, ty: &str, name: &str, attributes: Value) -> Value {
    let r = app
        .call(
            Method::POST,
            "/api/v1/cis",
            Some(token),
            Some(json!({"type": ty, "name": name, "attributes": attributes})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{ty} {name}: {:?}", r.body);
    r.body
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn relate(app: &TestApp, token: &str, source: &str, target: &str, ty: &str) -> Resp {
    app.call(
        Method::POST,
        &format!("/api/v1/cis/{source}/relationships"),
        Some(token),
        Some(json!({"target_id": target, "type": ty})),
    )
    .await
}

async fn related(app: &TestApp, token: &str, source: &str, target: &str, ty: &str) -> String {
    let r = relate(app, token, source, target, ty).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{source} {ty} {target}: {:?}",
        r.body
    );
    id(&r.body)
}

fn fields(r: &Resp) -> Vec<String> {
    r.body["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|x| x["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_422(r: &Resp, field: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(
        fields(r).iter().any(|f| f == field),
        "expected a 422 on {field}: {:?}",
        r.body
    );
}

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .map(id)
        .collect()
}

// ------------------------------------------------------------------------------------------
// Configuration items
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn configuration_items_create_read_update_retire() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let team = app
        .call(
            Method::POST,
            "/api/v1/teams",
            Some(&t.admin),
            Some(json!({"name": "Platform"})),
        )
        .await;
    let team = id(&team.body);

    // Create: 201, Location, ETag; attributes validated and normalised.
    let r = app
        .call(
            Method::POST,
            "/api/v1/cis",
            Some(&t.admin),
            Some(json!({
                "type": "server", "name": "  web-01 ", "description": "Front web server",
                "attributes": {"ip_address": "2001:DB8:0:0:0:0:0:1", "cpu_cores": 8,
                               "is_virtual": true, "environment": "production"},
                "owner_team_id": team,
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let web = id(&r.body);
    let path = format!("/api/v1/cis/{web}");
    assert_eq!(r.header("location"), Some(path.as_str()));
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["name"], "web-01");
    assert_eq!(r.body["type"], "server");
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["attributes"]["ip_address"], "2001:db8::1");
    assert_eq!(
        r.body["owner_team"],
        json!({"id": team, "name": "Platform"})
    );
    assert_eq!(r.body["retired_at"], Value::Null);
    assert_eq!(r.body["version"], 1);

    let got = app.call(Method::GET, &path, Some(&t.admin), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("etag"), Some("\"1\""));
    assert_eq!(got.body, r.body);

    // Create errors, each field named.
    for (body, field) in [
        (
            json!({"type": "server", "name": "x", "tenant_id": t.id.0}),
            "tenant_id",
        ),
        (json!({"type": "server", "name": "  "}), "name"),
        (json!({"type": "spaceship", "name": "x"}), "type"),
        (json!({"type": "Bad Type", "name": "x"}), "type"),
        (json!({"name": "x"}), "type"),
        (
            json!({"type": "server", "name": "x", "status": "retired"}),
            "status",
        ),
        (
            json!({"type": "server", "name": "x", "status": "broken"}),
            "status",
        ),
        (
            json!({"type": "server", "name": "x", "owner_team_id": uuid::Uuid::now_v7()}),
            "owner_team_id",
        ),
        (
            json!({"type": "server", "name": "x", "attributes": {"ip_address": "999.1.1.1"}}),
            "attributes.ip_address",
        ),
        (
            json!({"type": "server", "name": "x", "attributes": {"colour": "red"}}),
            "attributes.colour",
        ),
        (
            json!({"type": "server", "name": "x", "attributes": {"cpu_cores": 2.5}}),
            "attributes.cpu_cores",
        ),
        (
            json!({"type": "server", "name": "x", "attributes": {"environment": "prod"}}),
            "attributes.environment",
        ),
        (
            json!({"type": "application", "name": "x", "attributes": {"url": "ftp://x"}}),
            "attributes.url",
        ),
        (
            json!({"type": "database", "name": "x"}),
            "attributes.engine",
        ),
        (
            json!({"type": "server", "name": "x", "attributes": [1]}),
            "attributes",
        ),
    ] {
        let r = app
            .call(
                Method::POST,
                "/api/v1/cis",
                Some(&t.admin),
                Some(body.clone()),
            )
            .await;
        assert_422(&r, field);
    }
    // Every bad attribute is named at once.
    let r = app
        .call(
            Method::POST,
            "/api/v1/cis",
            Some(&t.admin),
            Some(json!({"type": "server", "name": "x",
                        "attributes": {"ip_address": "nope", "memory_gb": "lots"}})),
        )
        .await;
    assert_eq!(
        fields(&r),
        vec!["attributes.ip_address", "attributes.memory_gb"]
    );

    // Update with If-Match; a stale one is 412.
    let r = app
        .call_with(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(
                json!({"name": "web-01a", "status": "maintenance", "description": null,
                        "attributes": {"hostname": "web01a"}, "owner_team_id": null}),
            ),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(r.body["name"], "web-01a");
    assert_eq!(r.body["status"], "maintenance");
    assert_eq!(r.body["description"], Value::Null);
    assert_eq!(r.body["owner_team"], Value::Null);
    assert_eq!(r.body["attributes"], json!({"hostname": "web01a"}));
    let stale = app
        .call_with(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"name": "lost update"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{:?}",
        stale.body
    );
    // Nothing to change: 200 with the same version.
    let same = app
        .call(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"name": "web-01a"})),
        )
        .await;
    assert_eq!(
        (same.status, same.body["version"].clone()),
        (StatusCode::OK, json!(2))
    );
    for (body, field) in [
        (
            json!({"attributes": {"cpu_cores": "four"}}),
            "attributes.cpu_cores",
        ),
        (json!({"status": "retired"}), "status"),
        (json!({"type": "database"}), "type"),
        (json!({"name": ""}), "name"),
        (
            json!({"owner_team_id": uuid::Uuid::now_v7()}),
            "owner_team_id",
        ),
    ] {
        let r = app
            .call(Method::PATCH, &path, Some(&t.admin), Some(body))
            .await;
        assert_422(&r, field);
    }

    // Retire: final; changes are refused afterwards; retiring again changes nothing.
    let r = app
        .call(
            Method::POST,
            &format!("{path}/retire"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "retired");
    assert!(r.body["retired_at"].is_string());
    assert_eq!(r.header("etag"), Some("\"3\""));
    let again = app
        .call(
            Method::POST,
            &format!("{path}/retire"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        (again.status, again.body["version"].clone()),
        (StatusCode::OK, json!(3))
    );
    let r = app
        .call(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"name": "zombie"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "ci_retired");
    let r = app
        .call(
            Method::POST,
            &format!("{path}/retire"),
            Some(&t.admin),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_422(&r, "reason");

    // Unknown ids, and ids that are not UUIDs, are 404.
    for p in [
        format!("/api/v1/cis/{}", uuid::Uuid::now_v7()),
        "/api/v1/cis/not-a-uuid".to_owned(),
    ] {
        let r = app.call(Method::GET, &p, Some(&t.admin), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
        let r = app
            .call(
                Method::PATCH,
                &p,
                Some(&t.admin),
                Some(json!({"name": "x"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
        let r = app
            .call(Method::POST, &format!("{p}/retire"), Some(&t.admin), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
    }
    // An id that names another kind of object (an incident) is no CI either.
    let inc = app.incident(&t.admin, "Not a CI").await;
    let p = format!("/api/v1/cis/{}", id(&inc));
    let r = app
        .call(
            Method::PATCH,
            &p,
            Some(&t.admin),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);

    // Another tenant sees nothing of it.
    let b = app.tenant("Beta").await;
    let r = app.call(Method::GET, &path, Some(&b.admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(Method::GET, "/api/v1/cis", Some(&b.admin), None)
        .await;
    assert_eq!(r.body["pagination"]["total_items"], 0, "{:?}", r.body);
    app.stop().await;
}

#[tokio::test]
async fn configuration_item_list_filters_search_and_pages() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let team = app
        .call(
            Method::POST,
            "/api/v1/teams",
            Some(&t.admin),
            Some(json!({"name": "DBA"})),
        )
        .await;
    let team = id(&team.body);
    let mut all = BTreeMap::new();
    for (ty, name, attrs) in [
        ("server", "srv-alpha", json!({})),
        ("server", "srv-beta", json!({})),
        ("server", "SRV_gamma%", json!({})),
        ("database", "db-orders", json!({"engine": "postgresql"})),
        ("database", "db-users", json!({"engine": "mysql"})),
        ("application", "shop", json!({})),
        ("service", "Checkout", json!({})),
    ] {
        let c = ci(&app, &t.admin, ty, name, attrs).await;
        all.insert(name.to_owned(), id(&c));
    }
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/cis/{}", all["db-users"]),
            Some(&t.admin),
            Some(json!({"owner_team_id": team, "status": "planned"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let names = |b: &Value| -> Vec<String> {
        b["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let get = |q: String| {
        let app = &app;
        let token = t.admin.clone();
        async move {
            let r = app
                .call(Method::GET, &format!("/api/v1/cis{q}"), Some(&token), None)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {:?}", r.body);
            r.body
        }
    };
    // Sorted by name (byte order), with exact totals.
    let b = get(String::new()).await;
    assert_eq!(
        names(&b),
        [
            "Checkout",
            "SRV_gamma%",
            "db-orders",
            "db-users",
            "shop",
            "srv-alpha",
            "srv-beta"
        ]
    );
    assert_eq!(b["pagination"]["total_items"], 7);
    // Type (repeated = OR), status, owner team.
    let b = get("?type=database&type=service".into()).await;
    assert_eq!(names(&b), ["Checkout", "db-orders", "db-users"]);
    let b = get("?status=planned".into()).await;
    assert_eq!(names(&b), ["db-users"]);
    let b = get(format!("?owner_team_id={team}")).await;
    assert_eq!(names(&b), ["db-users"]);
    let b = get("?type=server&status=active&status=planned".into()).await;
    assert_eq!(b["pagination"]["total_items"], 3);
    // q: case-insensitive substring; % and _ are literal.
    let b = get("?q=SRV".into()).await;
    assert_eq!(names(&b), ["SRV_gamma%", "srv-alpha", "srv-beta"]);
    let b = get("?q=%25".into()).await;
    assert_eq!(names(&b), ["SRV_gamma%"]);
    let b = get("?q=v_g".into()).await;
    assert_eq!(names(&b), ["SRV_gamma%"]);
    // Pages and cursors.
    let b = get("?limit=3&page=2".into()).await;
    assert_eq!(names(&b), ["db-users", "shop", "srv-alpha"]);
    assert_eq!(
        b["pagination"],
        json!({"current_page": 2, "total_pages": 3, "page_size": 3, "total_items": 7,
               "has_next": true, "has_prev": true})
    );
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let b = get(format!("?limit=2&cursor={cursor}")).await;
        seen.extend(names(&b));
        if b["pagination"]["has_next"] != true {
            break;
        }
        cursor = b["pagination"]["next_cursor"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen, names(&get("?limit=100".into()).await));
    // Bad parameters are 422 naming them.
    for (q, field) in [
        ("?status=broken", "status"),
        ("?type=Not A Key", "type"),
        ("?owner_team_id=nope", "owner_team_id"),
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?page=0", "page"),
        ("?cursor=garbage", "cursor"),
        ("?sort=name", "sort"),
    ] {
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/cis{q}"),
                Some(&t.admin),
                None,
            )
            .await;
        assert_422(&r, field);
    }
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// Custom CI types
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn custom_ci_types_define_schemas_that_cis_must_follow() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let b = app.tenant("Beta").await;

    let list = app
        .call(Method::GET, "/api/v1/ci-types", Some(&t.admin), None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    let keys: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "application",
            "database",
            "network_device",
            "server",
            "service"
        ]
    );
    assert!(
        list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["builtin"] == true && x["id"].is_null())
    );
    assert_eq!(
        list.body["data"][1]["attributes"]["engine"],
        json!({"type": "enum", "required": true, "values": ["postgresql", "mysql", "mariadb",
               "oracle", "sqlserver", "mongodb", "redis", "other"]})
    );

    let r = app
        .call(
            Method::POST,
            "/api/v1/ci-types",
            Some(&t.admin),
            Some(json!({
                "key": "load_balancer", "name": "Load balancer",
                "description": "L4/L7 load balancers",
                "attributes": {
                    "vip": {"type": "ip", "required": true},
                    "tier": {"type": "enum[gold, silver]"},
                    "pool_size": {"type": "integer"},
                    "console": {"type": "url"},
                },
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let lb = id(&r.body);
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/ci-types/{lb}").as_str())
    );
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["builtin"], false);
    assert_eq!(
        r.body["attributes"]["tier"],
        json!({"type": "enum", "required": false, "values": ["gold", "silver"]})
    );
    let got = app
        .call(
            Method::GET,
            &format!("/api/v1/ci-types/{lb}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!((got.status, &got.body), (StatusCode::OK, &r.body));
    assert_eq!(got.header("etag"), Some("\"1\""));
    let list = app
        .call(
            Method::GET,
            "/api/v1/ci-types?limit=100",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(list.body["pagination"]["total_items"], 6);
    assert_eq!(list.body["data"][2]["key"], "load_balancer");
    // Paging walks built-in and custom types alike.
    let p = app
        .call(
            Method::GET,
            "/api/v1/ci-types?limit=2&page=2",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(p.body["data"][0]["key"], "load_balancer");
    let c1 = app
        .call(
            Method::GET,
            "/api/v1/ci-types?limit=4&cursor=",
            Some(&t.admin),
            None,
        )
        .await;
    let next = c1.body["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let c2 = app
        .call(
            Method::GET,
            &format!("/api/v1/ci-types?limit=4&cursor={next}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        c2.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["key"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["server", "service"]
    );

    // The key is unique in the tenant (409), built-in keys are reserved (422); another tenant
    // may use the same key.
    let dup = app
        .call(
            Method::POST,
            "/api/v1/ci-types",
            Some(&t.admin),
            Some(json!({"key": "load_balancer", "name": "Again"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{:?}", dup.body);
    let r = app
        .call(
            Method::POST,
            "/api/v1/ci-types",
            Some(&t.admin),
            Some(json!({"key": "server", "name": "My server"})),
        )
        .await;
    assert_422(&r, "key");
    let r = app
        .call(
            Method::POST,
            "/api/v1/ci-types",
            Some(&b.admin),
            Some(json!({"key": "load_balancer", "name": "Beta's LB"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let b_lb = id(&r.body);
    // Schema errors are named by path.
    let r = app
        .call(
            Method::POST,
            "/api/v1/ci-types",
            Some(&t.admin),
            Some(json!({"key": "rack", "name": "Rack", "attributes": {
                "units": {"type": "int"},
                "colour": {"type": "enum"},
                "Bad Name": {"type": "string"},
                "slot": {"type": "string", "optional": true},
            }})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let f: BTreeSet<String> = fields(&r).into_iter().collect();
    assert_eq!(
        f,
        [
            "attributes.Bad Name",
            "attributes.colour.values",
            "attributes.slot.optional",
            "attributes.units.type",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect()
    );
    for (body, field) in [
        (json!({"key": "Rack", "name": "Rack"}), "key"),
        (json!({"key": "rack", "name": ""}), "name"),
        (
            json!({"key": "rack", "name": "Rack", "attributes": []}),
            "attributes",
        ),
        (
            json!({"key": "rack", "name": "Rack", "builtin": true}),
            "builtin",
        ),
    ] {
        let r = app
            .call(Method::POST, "/api/v1/ci-types", Some(&t.admin), Some(body))
            .await;
        assert_422(&r, field);
    }

    // CIs of the custom type follow its schema.
    let r = app
        .call(
            Method::POST,
            "/api/v1/cis",
            Some(&t.admin),
            Some(json!({"type": "load_balancer", "name": "lb-1",
                        "attributes": {"tier": "bronze", "pool_size": "8"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        fields(&r),
        vec!["attributes.pool_size", "attributes.tier", "attributes.vip"]
    );
    let lb1 = ci(
        &app,
        &t.admin,
        "load_balancer",
        "lb-1",
        json!({"vip": "10.0.0.10", "tier": "gold", "console": "HTTPS://lb-1.example.com/ui"}),
    )
    .await;
    assert_eq!(lb1["type"], "load_balancer");
    assert_eq!(lb1["attributes"]["console"], "https://lb-1.example.com/ui");
    // Updates are validated against the type's schema too.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/cis/{}", id(&lb1)),
            Some(&t.admin),
            Some(json!({"attributes": {"tier": "gold"}})),
        )
        .await;
    assert_422(&r, "attributes.vip");
    let r = app
        .call(
            Method::GET,
            "/api/v1/cis?type=load_balancer",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(ids(&r.body), vec![id(&lb1)]);

    // Another tenant's type is 404, by id; its key names their own type, not ours.
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/ci-types/{b_lb}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            Method::POST,
            "/api/v1/cis",
            Some(&b.admin),
            Some(json!({"type": "load_balancer", "name": "no vip needed here"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = app
        .call(
            Method::POST,
            "/api/v1/cis",
            Some(&b.admin),
            Some(json!({"type": "rack", "name": "unknown"})),
        )
        .await;
    assert_422(&r, "type");
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// Relationships
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn relationships_both_directions_duplicates_and_deletion() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let b = app.tenant("Beta").await;
    let app_ci = id(&ci(&app, &t.admin, "application", "shop", json!({})).await);
    let db = id(&ci(
        &app,
        &t.admin,
        "database",
        "orders",
        json!({"engine": "postgresql"}),
    )
    .await);
    let srv = id(&ci(&app, &t.admin, "server", "srv-1", json!({})).await);
    let other = id(&ci(&app, &b.admin, "server", "beta-srv", json!({})).await);

    let r = relate(&app, &t.admin, &app_ci, &db, "depends_on").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let dep = id(&r.body);
    assert_eq!(r.body["type"], "depends_on");
    assert_eq!(r.body["direction"], "outgoing");
    assert_eq!(r.body["source_id"], app_ci.as_str());
    assert_eq!(r.body["target_id"], db.as_str());
    assert_eq!(
        r.body["related"],
        json!({"id": db, "name": "orders", "type": "database", "status": "active"})
    );
    let runs = related(&app, &t.admin, &app_ci, &srv, "runs_on").await;
    let backs = related(&app, &t.admin, &srv, &db, "backs_up").await;

    // Both directions, oldest first; filters.
    let list = |ci: String, q: &'static str| {
        let app = &app;
        let token = t.admin.clone();
        async move {
            let r = app
                .call(
                    Method::GET,
                    &format!("/api/v1/cis/{ci}/relationships{q}"),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {:?}", r.body);
            r.body
        }
    };
    let b_db = list(db.clone(), "").await;
    assert_eq!(ids(&b_db), vec![dep.clone(), backs.clone()]);
    assert!(
        b_db["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["direction"] == "incoming")
    );
    assert_eq!(b_db["data"][0]["related"]["id"], app_ci.as_str());
    assert_eq!(b_db["pagination"]["total_items"], 2);
    let b_srv = list(srv.clone(), "").await;
    assert_eq!(ids(&b_srv), vec![runs.clone(), backs.clone()]);
    assert_eq!(b_srv["data"][0]["direction"], "incoming");
    assert_eq!(b_srv["data"][1]["direction"], "outgoing");
    assert_eq!(
        ids(&list(srv.clone(), "?direction=outgoing").await),
        vec![backs.clone()]
    );
    assert_eq!(
        ids(&list(srv.clone(), "?direction=incoming").await),
        vec![runs.clone()]
    );
    assert_eq!(
        ids(&list(app_ci.clone(), "?type=runs_on&type=depends_on").await),
        vec![dep.clone(), runs.clone()]
    );
    assert_eq!(
        ids(&list(app_ci.clone(), "?limit=1&page=2").await),
        vec![runs.clone()]
    );
    for (q, field) in [
        ("?direction=up", "direction"),
        ("?type=Bad", "type"),
        ("?nope=1", "nope"),
    ] {
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/cis/{srv}/relationships{q}"),
                Some(&t.admin),
                None,
            )
            .await;
        assert_422(&r, field);
    }

    // Errors: duplicate 409, self 422, bad type 422, unknown or foreign CIs 404.
    let r = relate(&app, &t.admin, &app_ci, &db, "depends_on").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    let r = relate(&app, &t.admin, &app_ci, &app_ci, "connected_to").await;
    assert_422(&r, "target_id");
    let r = relate(&app, &t.admin, &app_ci, &db, "Depends On").await;
    assert_422(&r, "type");
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/cis/{app_ci}/relationships"),
            Some(&t.admin),
            Some(json!({"target_id": db, "type": "depends_on", "weight": 1})),
        )
        .await;
    assert_422(&r, "weight");
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/cis/{app_ci}/relationships"),
            Some(&t.admin),
            Some(json!({"target_id": "nope", "type": "depends_on"})),
        )
        .await;
    assert_422(&r, "target_id");
    for (source, target) in [
        (app_ci.clone(), other.clone()),
        (other.clone(), app_ci.clone()),
        (app_ci.clone(), uuid::Uuid::now_v7().to_string()),
        (uuid::Uuid::now_v7().to_string(), app_ci.clone()),
    ] {
        let r = relate(&app, &t.admin, &source, &target, "connected_to").await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{source} → {target}: {:?}",
            r.body
        );
    }
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/cis/{other}/relationships"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Nothing was written by the refused requests.
    assert_eq!(
        list(app_ci.clone(), "").await["pagination"]["total_items"],
        2
    );

    // A retired CI takes no new relationship; its existing ones stay.
    let old = id(&ci(&app, &t.admin, "server", "srv-old", json!({})).await);
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/cis/{old}/retire"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = relate(&app, &t.admin, &app_ci, &old, "runs_on").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "ci_retired");

    // Delete: through either end; a relationship not at {id} is 404; twice is 404.
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/cis/{srv}/relationships/{dep}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "not srv's: {:?}", r.body);
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/cis/{db}/relationships/{dep}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/cis/{db}/relationships/{dep}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/cis/{db}/relationships/not-a-uuid"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Another tenant cannot delete ours.
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/cis/{srv}/relationships/{runs}"),
            Some(&b.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(ids(&list(db.clone(), "").await), vec![backs.clone()]);
    assert_eq!(ids(&list(app_ci.clone(), "").await), vec![runs.clone()]);
    // After deletion the same edge may be created again.
    let r = relate(&app, &t.admin, &app_ci, &db, "depends_on").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    app.stop().await;
}

#[tokio::test]
async fn dependency_cycles_are_refused_direct_and_longer() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let mut c = Vec::new();
    for i in 0..5 {
        c.push(id(&ci(
            &app,
            &t.admin,
            "application",
            &format!("app-{i}"),
            json!({}),
        )
        .await));
    }
    // Direct: 0 → 1, then 1 → 0.
    related(&app, &t.admin, &c[0], &c[1], "depends_on").await;
    let r = relate(&app, &t.admin, &c[1], &c[0], "depends_on").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "dependency_cycle");
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("{} → {} → {}", c[1], c[0], c[1])),
        "{msg}"
    );
    // Longer, through runs_on: 1 → 2 (runs_on) → 3 → 4, then 4 → 0 closes 4→0→1→2→3→4.
    related(&app, &t.admin, &c[1], &c[2], "runs_on").await;
    related(&app, &t.admin, &c[2], &c[3], "depends_on").await;
    related(&app, &t.admin, &c[3], &c[4], "depends_on").await;
    for ty in ["depends_on", "runs_on"] {
        let r = relate(&app, &t.admin, &c[4], &c[0], ty).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{ty}: {:?}",
            r.body
        );
        assert_eq!(r.body["error"]["code"], "dependency_cycle");
        let msg = r.body["error"]["message"].as_str().unwrap();
        let cycle = format!(
            "{} → {} → {} → {} → {} → {}",
            c[4], c[0], c[1], c[2], c[3], c[4]
        );
        assert!(msg.contains(&cycle), "{msg}");
    }
    let r = relate(&app, &t.admin, &c[3], &c[1], "depends_on").await;
    assert_eq!(r.body["error"]["code"], "dependency_cycle", "{:?}", r.body);
    // Types that carry no dependency may go back; a shortcut in the same direction is fine.
    related(&app, &t.admin, &c[4], &c[0], "connected_to").await;
    related(&app, &t.admin, &c[4], &c[0], "mirrors").await;
    related(&app, &t.admin, &c[0], &c[4], "depends_on").await;
    // Nothing was written by the refused requests.
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/cis/{}/relationships?direction=outgoing", c[4]),
            Some(&t.admin),
            None,
        )
        .await;
    let types: BTreeSet<String> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["connected_to", "mirrors"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
    // Deleting a link of the chain makes the edge acceptable.
    let chain = app
        .call(
            Method::GET,
            &format!("/api/v1/cis/{}/relationships?direction=outgoing", c[2]),
            Some(&t.admin),
            None,
        )
        .await;
    let link = id(&chain.body["data"][0]);
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/cis/{}/relationships/{link}", c[2]),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    related(&app, &t.admin, &c[3], &c[1], "depends_on").await;
    app.stop().await;
}

#[tokio::test]
async fn concurrent_edges_that_close_a_cycle_cannot_both_succeed() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    for round in 0..8 {
        // Two CIs, each side asks for the opposite edge at the same moment.
        let x = id(&ci(&app, &t.admin, "server", &format!("x-{round}"), json!({})).await);
        let y = id(&ci(&app, &t.admin, "server", &format!("y-{round}"), json!({})).await);
        let (a, b) = tokio::join!(
            relate(&app, &t.admin, &x, &y, "depends_on"),
            relate(&app, &t.admin, &y, &x, "runs_on"),
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY],
            "round {round}: {:?} / {:?}",
            a.body,
            b.body
        );
        // A three-cycle closed by two concurrent edges: p → q exists; q → r and r → p race.
        let p = id(&ci(
            &app,
            &t.admin,
            "application",
            &format!("p-{round}"),
            json!({}),
        )
        .await);
        let q = id(&ci(
            &app,
            &t.admin,
            "application",
            &format!("q-{round}"),
            json!({}),
        )
        .await);
        let r = id(&ci(
            &app,
            &t.admin,
            "application",
            &format!("r-{round}"),
            json!({}),
        )
        .await);
        related(&app, &t.admin, &p, &q, "depends_on").await;
        let (a, b) = tokio::join!(
            relate(&app, &t.admin, &q, &r, "depends_on"),
            relate(&app, &t.admin, &r, &p, "depends_on"),
        );
        let ok = [&a, &b]
            .iter()
            .filter(|x| x.status == StatusCode::CREATED)
            .count();
        assert_eq!(ok, 1, "round {round}: {:?} / {:?}", a.body, b.body);
        let refused = if a.status == StatusCode::CREATED {
            &b
        } else {
            &a
        };
        assert_eq!(refused.body["error"]["code"], "dependency_cycle");
    }
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// Impact analysis
// ------------------------------------------------------------------------------------------

/// The graph (arrows: `source —type→ target`, i.e. the source needs the target):
///
/// ```text
/// svc ─depends_on→ app1 ─runs_on→ srv1 ─depends_on→ net ←connected_to─ lb
///  │                 └─depends_on→ db ─runs_on→ srv1
///  └─depends_on→ app2 ─runs_on→ srv2 ─depends_on→ net
/// ```
///
/// If `net` fails: srv1, srv2 (depth 1); db, app1, app2 (depth 2: app1 via srv1, not via db
/// at 3); svc (depth 3, through whichever of app1/app2 has the lower id). `lb` is only
/// connected to it: not affected.
#[tokio::test]
async fn impact_analysis_on_a_known_graph() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let b = app.tenant("Beta").await;
    let mk = |ty: &'static str, name: &'static str, attrs: Value| {
        let app = &app;
        let token = t.admin.clone();
        async move { id(&ci(app, &token, ty, name, attrs).await) }
    };
    let net = mk("network_device", "core-switch", json!({})).await;
    let srv1 = mk("server", "srv1", json!({})).await;
    let srv2 = mk("server", "srv2", json!({})).await;
    let db = mk("database", "db", json!({"engine": "postgresql"})).await;
    let app1 = mk("application", "app1", json!({})).await;
    let app2 = mk("application", "app2", json!({})).await;
    let svc = mk("service", "checkout", json!({})).await;
    let lb = mk("network_device", "lb", json!({})).await;
    for (s, target, ty) in [
        (&srv1, &net, "depends_on"),
        (&srv2, &net, "depends_on"),
        (&db, &srv1, "runs_on"),
        (&app1, &srv1, "runs_on"),
        (&app1, &db, "depends_on"),
        (&app2, &srv2, "runs_on"),
        (&svc, &app1, "depends_on"),
        (&svc, &app2, "depends_on"),
        (&lb, &net, "connected_to"),
    ] {
        related(&app, &t.admin, s, target, ty).await;
    }
    // Incidents: one open on app1, one open on net itself, one resolved on srv2.
    let inc = |title: &'static str, ci: String| {
        let app = &app;
        let token = t.admin.clone();
        async move {
            let r = app
                .call(
                    Method::POST,
                    "/api/v1/incidents",
                    Some(&token),
                    Some(json!({"title": title, "impact": "high", "urgency": "high", "ci_id": ci})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            r.body
        }
    };
    let on_app1 = inc("Shop is slow", app1.clone()).await;
    let on_net = inc("Switch port flapping", net.clone()).await;
    let closed = inc("Disk full", srv2.clone()).await;
    let cpath = format!("/api/v1/incidents/{}", id(&closed));
    for (action, body) in [
        ("start", json!({})),
        ("resolve", json!({"resolution": "Cleaned up"})),
    ] {
        let r = app
            .call(
                Method::POST,
                &format!("{cpath}/{action}"),
                Some(&t.admin),
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {:?}", r.body);
    }

    let impact = |ci: String, q: &'static str, token: String| {
        let app = &app;
        async move {
            let r = app
                .call(
                    Method::GET,
                    &format!("/api/v1/cis/{ci}/impact{q}"),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {:?}", r.body);
            r.body
        }
    };
    let affected = |body: &Value| -> BTreeMap<String, (u64, Vec<String>, String)> {
        body["affected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap().to_owned(),
                    (
                        a["depth"].as_u64().unwrap(),
                        a["path"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|p| p.as_str().unwrap().to_owned())
                            .collect(),
                        a["relationship"].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect()
    };
    let s = |x: &String| x.clone();
    let via = if app1 < app2 { &app1 } else { &app2 };
    let expected: BTreeMap<String, (u64, Vec<String>, String)> = [
        ("srv1", (1, vec![s(&net), s(&srv1)], "depends_on")),
        ("srv2", (1, vec![s(&net), s(&srv2)], "depends_on")),
        ("db", (2, vec![s(&net), s(&srv1), s(&db)], "runs_on")),
        ("app1", (2, vec![s(&net), s(&srv1), s(&app1)], "runs_on")),
        ("app2", (2, vec![s(&net), s(&srv2), s(&app2)], "runs_on")),
        (
            "checkout",
            (
                3,
                vec![
                    s(&net),
                    if via == &app1 { s(&srv1) } else { s(&srv2) },
                    s(via),
                    s(&svc),
                ],
                "depends_on",
            ),
        ),
    ]
    .into_iter()
    .map(|(n, (d, p, r))| (n.to_owned(), (d, p, r.to_owned())))
    .collect();

    // Default depth (5): everything, each once, nearest first.
    let full = impact(net.clone(), "", t.admin.clone()).await;
    assert_eq!(full["ci"]["id"], net.as_str());
    assert_eq!(full["ci"]["name"], "core-switch");
    assert_eq!(full["depth"], 5);
    assert_eq!(full["more_beyond_depth"], false);
    assert_eq!(affected(&full), expected);
    let depths: Vec<u64> = full["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["depth"].as_u64().unwrap())
        .collect();
    assert_eq!(depths, [1, 1, 2, 2, 2, 3]);
    assert_eq!(
        full["summary"],
        json!({"affected_cis": 6, "affected_services": 1, "open_incidents": 2,
               "scheduled_changes": 0})
    );
    assert_eq!(full["scheduled_changes"], json!([]));
    // Open incidents: on the failed CI itself and on app1; the resolved one is not shown.
    assert_eq!(full["open_incidents"][0]["id"], on_net["id"]);
    assert_eq!(
        full["open_incidents"][0]["incident_number"],
        on_net["incident_number"]
    );
    assert_eq!(full["open_incidents"][0]["status"], "new");
    for a in full["affected"].as_array().unwrap() {
        assert_eq!(a["scheduled_changes"], json!([]));
        let want: Vec<Value> = if a["name"] == "app1" {
            vec![on_app1["id"].clone()]
        } else {
            vec![]
        };
        let got: Vec<Value> = a["open_incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        assert_eq!(got, want, "{}", a["name"]);
    }
    // Depth limits.
    let d1 = impact(net.clone(), "?depth=1", t.admin.clone()).await;
    assert_eq!(
        affected(&d1).keys().cloned().collect::<Vec<_>>(),
        ["srv1", "srv2"]
    );
    assert_eq!(d1["more_beyond_depth"], true);
    let d2 = impact(net.clone(), "?depth=2", t.admin.clone()).await;
    assert_eq!(affected(&d2).len(), 5);
    assert_eq!(d2["more_beyond_depth"], true);
    let d3 = impact(net.clone(), "?depth=3", t.admin.clone()).await;
    assert_eq!(affected(&d3), expected);
    assert_eq!(d3["more_beyond_depth"], false);
    let d10 = impact(net.clone(), "?depth=10", t.admin.clone()).await;
    assert_eq!(affected(&d10), expected);
    // From the middle: db fails → app1 (depends on it) → checkout.
    let mid = impact(db.clone(), "", t.admin.clone()).await;
    let m = affected(&mid);
    assert_eq!(m.keys().cloned().collect::<Vec<_>>(), ["app1", "checkout"]);
    assert_eq!(m["checkout"].1, vec![s(&db), s(&app1), s(&svc)]);
    // The top of the graph and a merely connected CI affect nothing.
    for top in [&svc, &lb] {
        let r = impact(top.clone(), "", t.admin.clone()).await;
        assert_eq!(r["affected"], json!([]));
        assert_eq!(r["more_beyond_depth"], false);
    }
    // Bad parameters and unknown or foreign CIs.
    for q in ["?depth=0", "?depth=11", "?depth=x", "?deep=2"] {
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/cis/{net}/impact{q}"),
                Some(&t.admin),
                None,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{q}: {:?}",
            r.body
        );
    }
    for (p, token) in [
        (
            format!("/api/v1/cis/{}/impact", uuid::Uuid::now_v7()),
            &t.admin,
        ),
        (format!("/api/v1/cis/{net}/impact"), &b.admin),
    ] {
        let r = app.call(Method::GET, &p, Some(token), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
    }
    // Requesters see only their own incidents in it; viewers see them all.
    let (_, requester) = app.user(&t.admin, "user").await;
    let (_, viewer) = app.user(&t.admin, "viewer").await;
    let mine = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&requester),
            Some(json!({"title": "Cannot check out", "ci_id": svc})),
        )
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{:?}", mine.body);
    let r = impact(net.clone(), "", requester).await;
    assert_eq!(r["open_incidents"], json!([]));
    assert_eq!(r["summary"]["open_incidents"], 1);
    let r = impact(net.clone(), "", viewer).await;
    assert_eq!(r["summary"]["open_incidents"], 3);
    // A deleted relationship no longer carries impact.
    let rels = app
        .call(
            Method::GET,
            &format!("/api/v1/cis/{srv2}/relationships?direction=outgoing"),
            Some(&t.admin),
            None,
        )
        .await;
    let link = id(&rels.body["data"][0]);
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/cis/{srv2}/relationships/{link}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let after = impact(net.clone(), "", t.admin.clone()).await;
    let a = affected(&after);
    assert_eq!(
        a.keys().cloned().collect::<Vec<_>>(),
        ["app1", "checkout", "db", "srv1"]
    );
    assert_eq!(a["checkout"].1, vec![s(&net), s(&srv1), s(&app1), s(&svc)]);
    app.stop().await;
}

// ------------------------------------------------------------------------------------------
// Incidents referencing CIs
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn incidents_reference_configuration_items_and_filter_by_them() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let b = app.tenant("Beta").await;
    let mail = id(&ci(&app, &t.admin, "service", "mail", json!({})).await);
    let vpn = id(&ci(&app, &t.admin, "service", "vpn", json!({})).await);
    let foreign = id(&ci(&app, &b.admin, "service", "beta-mail", json!({})).await);

    let r = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&t.admin),
            Some(json!({"title": "Mail bounces", "ci_id": mail})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["ci_id"], mail.as_str());
    let first = id(&r.body);
    let second = id(&app.incident(&t.admin, "No CI").await);
    let r = app
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(&t.admin),
            Some(json!({"title": "VPN drops", "ci_id": vpn})),
        )
        .await;
    let third = id(&r.body);

    let list = |q: String| {
        let app = &app;
        let token = t.admin.clone();
        async move {
            let r = app
                .call(
                    Method::GET,
                    &format!("/api/v1/incidents{q}"),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {:?}", r.body);
            r.body
        }
    };
    let r = list(format!("?ci_id={mail}")).await;
    assert_eq!(ids(&r), vec![first.clone()]);
    assert_eq!(r["pagination"]["total_items"], 1);
    assert_eq!(
        ids(&list(format!("?ci_id={vpn}&status=new")).await),
        vec![third.clone()]
    );
    assert_eq!(
        list(format!("?ci_id={foreign}")).await["pagination"]["total_items"],
        0
    );
    let all = list(String::new()).await;
    assert_eq!(all["pagination"]["total_items"], 3);
    let no_ci = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == second.as_str())
        .unwrap();
    assert_eq!(no_ci["ci_id"], Value::Null);
    let r = app
        .call(
            Method::GET,
            "/api/v1/incidents?ci_id=nope",
            Some(&t.admin),
            None,
        )
        .await;
    assert_422(&r, "ci_id");

    // Update: set, move and clear; the history records it.
    let path = format!("/api/v1/incidents/{second}");
    let r = app
        .call(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"ci_id": vpn})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["ci_id"].clone()),
        (StatusCode::OK, json!(vpn))
    );
    assert_eq!(
        ids(&list(format!("?ci_id={vpn}&sort=created_at")).await),
        vec![second.clone(), third.clone()]
    );
    let r = app
        .call(
            Method::PATCH,
            &path,
            Some(&t.admin),
            Some(json!({"ci_id": null})),
        )
        .await;
    assert_eq!(r.body["ci_id"], Value::Null);
    let history: Vec<&Value> = r.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["field_name"] == "ci_id")
        .collect();
    assert_eq!(history.len(), 2, "{:?}", r.body["history"]);
    assert_eq!(history[0]["new_value"], vpn.as_str());
    assert_eq!(history[1]["old_value"], vpn.as_str());

    // Unknown and foreign CIs are 422 on ci_id.
    for ci in [foreign.clone(), uuid::Uuid::now_v7().to_string()] {
        let r = app
            .call(
                Method::POST,
                "/api/v1/incidents",
                Some(&t.admin),
                Some(json!({"title": "x", "ci_id": ci})),
            )
            .await;
        assert_422(&r, "ci_id");
        let r = app
            .call(
                Method::PATCH,
                &path,
                Some(&t.admin),
                Some(json!({"ci_id": ci})),
            )
            .await;
        assert_422(&r, "ci_id");
    }
    app.stop().await;
}
