//! `eventdesk projections rebuild` (issue #6, ADR 0013): built beside the live read models
//! while the service keeps answering, swapped in atomically, resumable — black-box through the
//! built binary, against the real server (`TestApp`) and a fresh database.

use crate::helpers::append_n;
use crate::http::app::{Tenant, TestApp};
use async_trait::async_trait;
use eventdesk_projections::{HandlerError, Projection, ProjectorRuntime, RuntimeConfig};
use eventdesk_store::{PgEventStore, RecordedEvent, Upcasters};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a run of the binary printed.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}): {}\n{}", self.stdout, self.stderr)
        })
    }
}

fn command(url: &str, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_eventdesk"));
    c.args(args)
        .env("DATABASE_URL", url)
        .env("EVENTDESK_LOG_FORMAT", "pretty")
        .env("RUST_LOG", "error")
        .env_remove("EVENTDESK_SYSTEM_DB_ROLE")
        .env_remove("EVENTDESK_DB_ROLE");
    c
}

/// `eventdesk <args>`, run off the async runtime so that the server in this process keeps
/// answering (and its projector keeps running) meanwhile.
async fn cli(url: &str, args: &[&str]) -> Run {
    let mut c = command(url, args);
    let out = tokio::task::spawn_blocking(move || c.output().expect("run eventdesk"))
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The projections the server runs (what `--all` rebuilds).
fn projections() -> Vec<Arc<dyn Projection>> {
    eventdesk_api::app::projections()
}

/// A projection applied into the tables of another schema: the reference "fresh build".
struct InSchema {
    inner: Arc<dyn Projection>,
    name: &'static str,
    schema: &'static str,
}

#[async_trait]
impl Projection for InSchema {
    fn name(&self) -> &'static str {
        self.name
    }
    fn version(&self) -> i32 {
        self.inner.version()
    }
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(self.schema)
            .execute(&mut *tx)
            .await?;
        self.inner.apply(tx, events).await?;
        // The runtime's own bookkeeping (its checkpoint row) is in public.
        sqlx::query("SET LOCAL search_path TO DEFAULT")
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

/// Count cells whose rows are kept when their count drops to zero: such a row means the same as
/// no row (the list totals and the analytics read sums), and whether it exists depends on where
/// batches ended — a cell that filled and emptied inside one batch was never written (the count
/// triggers see each statement's net change, migration 0007: "cells that drop to 0 are kept
/// (harmless)"; the analytics projection writes net deltas per batch). These rows are the only
/// thing the comparison leaves out.
const ZERO_ROWS: &[(&str, &str)] = &[
    ("rm_incident_counts", "count = 0"),
    ("rm_analytics_current", "n = 0"),
    ("rm_analytics_open_age", "n = 0"),
];

/// Builds `p` from zero through the *live* runtime (batches of 2000, every index and trigger
/// maintained as it goes) into copies of its tables in schema `verify`, then compares every one
/// of its tables with the one in `public`, ordered row by row.
///
/// No column is excluded: every column of every read model is derived from the events alone
/// (times are the events' own, positions are the log's), so nothing legitimately depends on
/// when or in which batches the events were applied. Only zero-count rows of the tables in
/// [`ZERO_ROWS`] are left out.
async fn assert_equals_fresh_build(su: &PgPool, p: Arc<dyn Projection>) {
    sqlx::query("CREATE SCHEMA IF NOT EXISTS verify")
        .execute(su)
        .await
        .unwrap();
    for t in p.tables() {
        sqlx::query(&format!("DROP TABLE IF EXISTS verify.{t}"))
            .execute(su)
            .await
            .unwrap();
        sqlx::query(&format!(
            "CREATE TABLE verify.{t} (LIKE public.{t} INCLUDING ALL)"
        ))
        .execute(su)
        .await
        .unwrap();
    }
    if p.tables().contains(&"rm_incidents") {
        // The count triggers of migration 0007 (they write the counts of their own schema).
        for (op, refs) in [
            ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
            (
                "UPDATE",
                "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
            ),
            ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
        ] {
            sqlx::query(&format!(
                "CREATE TRIGGER counts_{op} AFTER {op} ON verify.rm_incidents {refs} \
                 FOR EACH STATEMENT EXECUTE FUNCTION rm_incident_counts_apply()"
            ))
            .execute(su)
            .await
            .unwrap();
        }
    }
    let name: &'static str = Box::leak(format!("verify_{}", p.name()).into_boxed_str());
    let fresh = InSchema {
        inner: p.clone(),
        name,
        schema: "verify",
    };
    let store = PgEventStore::new(su.clone(), Upcasters::new());
    let rt = ProjectorRuntime::new(store, vec![], RuntimeConfig::default());
    rt.catch_up(&fresh).await.unwrap();
    let dead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM projection_dead_letters WHERE projection = $1")
            .bind(name)
            .fetch_one(su)
            .await
            .unwrap();
    assert_eq!(
        dead,
        0,
        "the fresh build of {} dead-lettered events",
        p.name()
    );
    for t in p.tables() {
        let skip = ZERO_ROWS
            .iter()
            .find(|(table, _)| table == t)
            .map(|(_, zero)| format!("WHERE NOT ({zero})"))
            .unwrap_or_default();
        let rows = |schema: &str| {
            let sql = format!("SELECT r::text FROM {schema}.{t} r {skip} ORDER BY 1");
            async move {
                sqlx::query_scalar::<_, String>(&sql)
                    .fetch_all(su)
                    .await
                    .unwrap()
            }
        };
        let (live, reference) = (rows("public").await, rows("verify").await);
        if live != reference {
            let first = live
                .iter()
                .zip(&reference)
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("\n  rebuilt: {a}\n  fresh:   {b}"))
                .unwrap_or_default();
            panic!(
                "{t} differs from a fresh build ({} rows vs {}){first}",
                live.len(),
                reference.len()
            );
        }
    }
}

/// Waits until every live projection has applied the whole log.
async fn live_caught_up(app: &TestApp) {
    let su = &app.db.superuser;
    let store = PgEventStore::new(su.clone(), Upcasters::new());
    let head = store.head_checkpoint().await.unwrap();
    let names: Vec<String> = projections().iter().map(|p| p.name().to_owned()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM projection_checkpoints WHERE name = ANY($1) \
             AND (last_txid, last_position) < ($2::int8::text::xid8, $3)",
        )
        .bind(&names)
        .bind(head.transaction_id as i64)
        .bind(head.position)
        .fetch_one(su)
        .await
        .unwrap();
        if behind == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the live projections never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn leftover_schemas(su: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace \
         WHERE nspname LIKE 'rebuild\\_%' OR nspname LIKE 'retired\\_%'",
    )
    .fetch_all(su)
    .await
    .unwrap()
}

fn etag_version(r: &crate::http::app::Resp) -> i64 {
    r.header("etag")
        .and_then(|e| e.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no version ETag: {:?}", r.headers))
}

/// What the readers saw.
#[derive(Default)]
struct Seen {
    reads: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Seen {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

/// Lists (exact total: no filter) and gets incidents in a loop until `stop`, checking that
/// every answer is a 200, that the total never decreases (incidents are only ever created)
/// and that no incident's version (ETag) ever decreases.
async fn reader(
    app: Arc<TestApp>,
    t: Tenant,
    ids: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
) {
    let mut total = 0i64;
    let mut versions: HashMap<String, i64> = HashMap::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let r = app
            .call(
                Method::GET,
                "/api/v1/incidents?limit=5",
                Some(&t.admin),
                None,
            )
            .await;
        seen.reads.fetch_add(1, Ordering::Relaxed);
        if r.status != StatusCode::OK {
            seen.fail(format!("list: {} {:?}", r.status, r.body));
            continue;
        }
        let n = r.body["pagination"]["total_items"].as_i64().unwrap_or(-1);
        if n < total {
            seen.fail(format!("list total went back from {total} to {n}"));
        }
        total = total.max(n);
        let id = &ids[i % ids.len()];
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/incidents/{id}"),
                Some(&t.admin),
                None,
            )
            .await;
        seen.reads.fetch_add(1, Ordering::Relaxed);
        if r.status != StatusCode::OK {
            seen.fail(format!("get {id}: {} {:?}", r.status, r.body));
            continue;
        }
        let v = etag_version(&r);
        let before = versions.entry(id.clone()).or_insert(v);
        if v < *before {
            seen.fail(format!(
                "incident {id} went back from version {before} to {v}"
            ));
        }
        *before = (*before).max(v);
        if i.is_multiple_of(5) {
            // The search path: the SECURITY DEFINER function over the trigram index.
            let r = app
                .call(
                    Method::GET,
                    "/api/v1/incidents?q=printer",
                    Some(&t.admin),
                    None,
                )
                .await;
            seen.reads.fetch_add(1, Ordering::Relaxed);
            if r.status != StatusCode::OK {
                seen.fail(format!("search: {} {:?}", r.status, r.body));
            }
        }
    }
}

/// Creates incidents, edits and annotates existing ones, adds teams, until `stop`.
async fn writer(
    app: Arc<TestApp>,
    t: Tenant,
    ids: Arc<Vec<String>>,
    w: usize,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = &ids[(n as usize * 7 + w) % ids.len()];
        let path = format!("/api/v1/incidents/{id}");
        match n % 4 {
            0 => {
                let r = app
                    .call(
                        Method::PATCH,
                        &path,
                        Some(&t.admin),
                        Some(json!({"title": format!("Printer {w}/{n} jammed again")})),
                    )
                    .await;
                assert!(
                    r.status == StatusCode::OK || r.status == StatusCode::CONFLICT,
                    "{:?}",
                    r.body
                );
            }
            1 => {
                let r = app
                    .call(
                        Method::POST,
                        &format!("{path}/work-notes"),
                        Some(&t.admin),
                        Some(json!({"content": format!("note {w}/{n}"), "is_public": "N"})),
                    )
                    .await;
                assert!(
                    r.status.is_success() || r.status == StatusCode::CONFLICT,
                    "{:?}",
                    r.body
                );
            }
            2 if n % 20 == 2 => {
                let r = app
                    .call(
                        Method::POST,
                        "/api/v1/teams",
                        Some(&t.admin),
                        Some(json!({"name": format!("Team {w}/{n}")})),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            }
            _ => {
                app.incident(&t.admin, &format!("Printer {w}/{n} out of toner"))
                    .await;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_all_under_load_never_fails_a_reader_and_equals_a_fresh_build() {
    // The SLA scheduler consumes sla_deadlines and sla_refresh_queue (work lists: it deletes
    // the rows it handled), so with it running those two tables would equal a fresh build
    // only up to handled rows. Off here, every table is compared exactly.
    let app = Arc::new(TestApp::spawn_with(&[("EVENTDESK_SLA_SCHEDULER", "false")]).await);
    let t = app.tenant("Acme").await;
    let (_, _) = app.user(&t.admin, "operator").await;
    // A policy: sla_config has rows, and its creation queues the incidents with active timers
    // (sla_refresh_queue), so every table of every projection holds something.
    let mut ids = Vec::new();
    for i in 0..40 {
        let inc = app.incident(&t.admin, &format!("Printer {i} jammed")).await;
        ids.push(inc["id"].as_str().unwrap().to_owned());
    }
    let r = app
        .call(
            Method::POST,
            "/api/v1/sla/policies",
            Some(&t.admin),
            Some(json!({"name": "Office", "rank": 1, "condition": {},
                        "targets": [{"priority": "high", "response_minutes": 30,
                                     "resolution_minutes": 240}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    for i in 40..80 {
        let inc = app.incident(&t.admin, &format!("Printer {i} jammed")).await;
        ids.push(inc["id"].as_str().unwrap().to_owned());
    }
    // Reopened incidents: a second resolution cycle retires the first cycle's timer row.
    for id in &ids[..4] {
        for (action, body) in [
            ("start", None),
            ("resolve", Some(json!({"resolution": "Replaced the toner"}))),
            ("reopen", Some(json!({"reason": "Jammed again"}))),
            (
                "resolve",
                Some(json!({"resolution": "Replaced the roller"})),
            ),
        ] {
            let r = app
                .call(
                    Method::POST,
                    &format!("/api/v1/incidents/{id}/{action}"),
                    Some(&t.admin),
                    body,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{action}: {:?}", r.body);
        }
    }
    let ids = Arc::new(ids);

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(tokio::spawn(reader(
            app.clone(),
            t.clone(),
            ids.clone(),
            stop.clone(),
            seen.clone(),
        )));
    }
    let mut writers = Vec::new();
    for w in 0..2 {
        writers.push(tokio::spawn(writer(
            app.clone(),
            t.clone(),
            ids.clone(),
            w,
            stop.clone(),
        )));
    }
    // And a fast stream of events no read model but event_counts cares about, straight into
    // the log (no read-your-writes wait): events keep committing between a catch-up and its
    // swap, so the swaps apply a tail of their own.
    let noise = {
        let (store, tenant, stop) = (app.db.store(), t.id, stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                append_n(&store, tenant, "LoadNoise", 1).await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Small batches: the bulk phase of each projection takes many transactions, so the load
    // overlaps every phase, the swaps included.
    let r = cli(
        &app.db.url,
        &["projections", "rebuild", "--all", "--batch", "25", "--json"],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let outcomes = r.json();
    let outcomes = outcomes.as_array().unwrap();
    assert_eq!(outcomes.len(), projections().len(), "{outcomes:?}");
    let tails: u64 = outcomes
        .iter()
        .map(|o| o["swap_tail_events"].as_u64().unwrap())
        .sum();
    assert!(tails > 0, "no swap applied a tail: {outcomes:?}");
    for o in outcomes {
        assert_eq!(o["completed"], true, "{o}");
        assert_eq!(o["resumed"], false, "{o}");
        assert!(o["bulk_events"].as_u64().unwrap() > 0, "{o}");
        assert_eq!(o["dead_letters"], 0, "{o}");
    }
    // The load goes on against the swapped-in tables for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let mut writes = noise.await.unwrap();
    for w in writers {
        writes += w.await.unwrap();
    }
    let failures = seen.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "readers saw: {failures:#?}");
    let reads = seen.reads.load(Ordering::Relaxed);
    eprintln!("{reads} reads, {writes} writes; rebuilds: {outcomes:#?}");
    assert!(
        reads > 50 && writes > 20,
        "too little load: {reads} reads, {writes} writes"
    );

    live_caught_up(&app).await;
    let su = &app.db.superuser;
    assert_eq!(leftover_schemas(su).await, Vec::<String>::new());
    let rebuilds: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_rebuilds")
        .fetch_one(su)
        .await
        .unwrap();
    assert_eq!(rebuilds, 0);
    let status = cli(&app.db.url, &["projections", "status", "--json"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    for s in status.json().as_array().unwrap() {
        assert_eq!(s["state"], "running", "{s}");
        assert!(s.get("rebuild").is_none(), "{s}");
    }
    for p in projections() {
        assert_equals_fresh_build(su, p).await;
    }
    match Arc::try_unwrap(app) {
        Ok(app) => app.stop().await,
        Err(_) => panic!("the load still holds the app"),
    }
}

/// `n` incidents of tenant `t`, every third with a public work note.
async fn seed_incidents_with_notes(app: &TestApp, t: &Tenant, n: usize) {
    for i in 0..n {
        let inc = app.incident(&t.admin, &format!("Printer {i} jammed")).await;
        if i % 3 == 0 {
            let id = inc["id"].as_str().unwrap();
            let r = app
                .call(
                    Method::POST,
                    &format!("/api/v1/incidents/{id}/work-notes"),
                    Some(&t.admin),
                    Some(json!({"content": "looked at it", "is_public": "Y"})),
                )
                .await;
            assert!(r.status.is_success(), "{:?}", r.body);
        }
    }
}

/// The rebuild's own checkpoint: (events applied, position, phase), if one is in progress.
async fn rebuild_row(su: &PgPool, name: &str) -> Option<(i64, i64, String)> {
    sqlx::query_as(
        "SELECT events_processed, last_position, phase FROM projection_rebuilds WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(su)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rebuild_resumes_where_it_stopped_and_ends_equal_to_a_fresh_build() {
    let app = TestApp::spawn_with(&[("EVENTDESK_SLA_SCHEDULER", "false")]).await;
    let t = app.tenant("Acme").await;
    seed_incidents_with_notes(&app, &t, 60).await;
    let su = &app.db.superuser;
    let url = app.db.url.clone();

    // 1. Stopped by the test hook after ~40 events: the shadow and its checkpoint stay.
    let r = cli(
        &url,
        &[
            "projections",
            "rebuild",
            "incidents",
            "--batch",
            "10",
            "--stop-after",
            "40",
            "--json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let first = r.json()[0].clone();
    assert_eq!(first["completed"], false, "{first}");
    assert_eq!(first["resumed"], false, "{first}");
    let (done1, pos1, phase) = rebuild_row(su, "incidents").await.expect("rebuild row");
    assert!(done1 >= 40 && pos1 > 0, "{done1} {pos1}");
    assert_eq!(phase, "bulk");
    assert_eq!(first["events"].as_i64().unwrap(), done1);

    // `projections status` shows it.
    let s = cli(&url, &["projections", "status", "--json"]).await;
    assert_eq!(s.code, 0, "{}", s.stderr);
    let s = s.json();
    let inc = s
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "incidents")
        .unwrap()
        .clone();
    assert_eq!(inc["state"], "rebuilding", "{inc}");
    assert_eq!(inc["rebuild"]["phase"], "bulk", "{inc}");
    assert_eq!(inc["rebuild"]["events_processed"].as_i64(), Some(done1));
    assert_eq!(inc["rebuild"]["position"].as_i64(), Some(pos1));
    assert!(inc["rebuild"]["lag_events"].as_i64().unwrap() > 0, "{inc}");
    let table = cli(&url, &["projections", "status"]).await;
    let line = table
        .stdout
        .lines()
        .find(|l| l.starts_with("incidents"))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    assert!(line.contains("rebuilding"), "{line}");
    // The live read model still answers.
    let l = app
        .call(Method::GET, "/api/v1/incidents", Some(&t.admin), None)
        .await;
    assert_eq!(l.body["pagination"]["total_items"], 60);

    // 2. Run again: it resumes from the checkpoint (not from zero).
    let r = cli(
        &url,
        &[
            "projections",
            "rebuild",
            "incidents",
            "--batch",
            "10",
            "--stop-after",
            "40",
            "--json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let second = r.json()[0].clone();
    assert_eq!(second["resumed"], true, "{second}");
    assert_eq!(
        second["resumed_at_events"].as_i64(),
        Some(done1),
        "{second}"
    );
    let (done2, pos2, _) = rebuild_row(su, "incidents").await.expect("rebuild row");
    assert!(pos2 > pos1, "{pos1} → {pos2}");
    assert_eq!(done2, done1 + second["events"].as_i64().unwrap());

    // 3. Killed (SIGKILL) in the middle of its work: nothing is lost but the batch in flight.
    let mut child = command(
        &url,
        &["projections", "rebuild", "incidents", "--batch", "1"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawn eventdesk");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = rebuild_row(su, "incidents").await;
        if row.as_ref().is_some_and(|r| r.0 >= done2 + 5) {
            break;
        }
        assert!(
            row.is_some(),
            "the rebuild finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "the rebuild made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let (done3, pos3, _) = rebuild_row(su, "incidents").await.expect("rebuild row");
    assert!(done3 >= done2 + 5 && pos3 > pos2, "{done2} → {done3}");

    // Writes go on meanwhile.
    app.incident(&t.admin, "Printer on fire").await;

    // 4. To the end: resumes once more, catches up and swaps in.
    let r = cli(&url, &["projections", "rebuild", "incidents", "--json"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let last = r.json()[0].clone();
    assert_eq!(last["completed"], true, "{last}");
    assert_eq!(last["resumed"], true, "{last}");
    assert!(
        last["resumed_at_events"].as_i64().unwrap() >= done3,
        "{last}"
    );
    assert!(rebuild_row(su, "incidents").await.is_none());
    assert_eq!(leftover_schemas(su).await, Vec::<String>::new());
    let l = app
        .call(
            Method::GET,
            "/api/v1/incidents?q=fire",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(l.status, StatusCode::OK);
    assert_eq!(
        l.body["data"][0]["title"], "Printer on fire",
        "{:?}",
        l.body
    );

    live_caught_up(&app).await;
    let incidents = projections()
        .into_iter()
        .find(|p| p.name() == "incidents")
        .unwrap();
    assert_equals_fresh_build(su, incidents).await;

    // Unknown names are refused; --all and a name are exclusive.
    let r = cli(&url, &["projections", "rebuild", "nope"]).await;
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no projection nope"), "{}", r.stderr);
    app.stop().await;
}

/// Every key, constraint and index definition of `tables` in `public`, for comparing the
/// catalog before and after a swap.
async fn catalog_of(su: &PgPool, tables: &[&str]) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text || ' constraint ' || k.conname::text || ' ' \
           || pg_get_constraintdef(k.oid) \
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1) \
         UNION ALL \
         SELECT c.relname::text || ' index ' || pg_get_indexdef(x.indexrelid) \
           || CASE WHEN x.indisvalid THEN '' ELSE ' INVALID' END \
           || CASE WHEN x.indisprimary THEN ' primary' ELSE '' END \
         FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1) \
         ORDER BY 1",
    )
    .bind(tables)
    .fetch_all(su)
    .await
    .unwrap()
}

/// The index phase (its tables on two connections) interrupted half-way resumes: some
/// indexes and keys are built, one key's build failed and left an invalid index behind (as a
/// kill during `CREATE INDEX CONCURRENTLY` does), another key's index is built but not yet
/// made the key (a kill between the two), an index of the other table is invalid. The next
/// run drops what is invalid, attaches what is built, builds the rest, and swaps in tables
/// with exactly the live tables' keys and indexes, equal to a fresh build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_phase_interrupted_half_way_resumes_and_swaps_in_the_live_keys_and_indexes() {
    use eventdesk_projections::rebuild::{RebuildOptions, rebuild};
    use eventdesk_store::subscription::StopToken;

    let app = TestApp::spawn_with(&[("EVENTDESK_SLA_SCHEDULER", "false")]).await;
    let t = app.tenant("Acme").await;
    seed_incidents_with_notes(&app, &t, 30).await;
    let su = &app.db.superuser;
    let incidents = projections()
        .into_iter()
        .find(|p| p.name() == "incidents")
        .unwrap();
    assert!(!incidents.keys_after_bulk().is_empty());
    let before = catalog_of(su, incidents.tables()).await;
    let store = PgEventStore::new(su.clone(), Upcasters::new());

    // 1. Stopped after three index builds: the bulk is done, the phase is still `bulk`.
    let opts = RebuildOptions {
        stop_after_indexes: Some(3),
        ..RebuildOptions::default()
    };
    let first = rebuild(&store, incidents.clone(), &opts, &StopToken::new(), &|_| {})
        .await
        .unwrap();
    assert!(!first.completed, "{first:?}");
    assert!(first.bulk_events > 0, "{first:?}");
    let (_, _, phase) = rebuild_row(su, "incidents").await.expect("rebuild row");
    assert_eq!(phase, "bulk");
    let shadow_indexes = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE i.relnamespace = 'rebuild_incidents'::regnamespace",
        )
        .fetch_one(su)
        .await
        .unwrap()
    };
    let live_indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1)",
    )
    .bind(incidents.tables())
    .fetch_one(su)
    .await
    .unwrap();
    let built = shadow_indexes().await;
    assert!(
        built < live_indexes,
        "the stopped run built every index ({built})"
    );

    // 2. What kills at other moments leave behind.
    for sql in [
        // A key whose concurrent build died: an invalid unique index under the key's name.
        "ALTER TABLE rebuild_incidents.rm_incident_history \
         DROP CONSTRAINT IF EXISTS rm_incident_history_pkey",
        "DROP INDEX IF EXISTS rebuild_incidents.rm_incident_history_pkey",
        // A key whose index was built, but not yet made the key.
        "ALTER TABLE rebuild_incidents.rm_incident_work_notes \
         DROP CONSTRAINT IF EXISTS rm_incident_work_notes_pkey",
        "DROP INDEX IF EXISTS rebuild_incidents.rm_incident_work_notes_pkey",
        "CREATE UNIQUE INDEX rm_incident_work_notes_pkey \
         ON rebuild_incidents.rm_incident_work_notes (tenant_id, incident_id, id)",
        "DROP INDEX IF EXISTS rebuild_incidents.rm_incidents_search",
    ] {
        sqlx::query(sql).execute(su).await.unwrap();
    }
    // Concurrent builds that fail half-way (here: on a division by zero) leave invalid
    // indexes behind.
    for (table, kind, index) in [
        (
            "rm_incident_history",
            "UNIQUE INDEX",
            "rm_incident_history_pkey",
        ),
        ("rm_incidents", "INDEX", "rm_incidents_search"),
    ] {
        let rows: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM rebuild_incidents.{table}"))
                .fetch_one(su)
                .await
                .unwrap();
        assert!(rows > 0, "{table} is empty");
        let failed = sqlx::query(&format!(
            "CREATE {kind} CONCURRENTLY {index} ON rebuild_incidents.{table} \
             ((1 / (version - version)))"
        ))
        .execute(su)
        .await;
        assert!(failed.is_err(), "{index}");
    }
    let invalid: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         WHERE i.relnamespace = 'rebuild_incidents'::regnamespace AND NOT x.indisvalid",
    )
    .fetch_one(su)
    .await
    .unwrap();
    assert_eq!(invalid, 2);

    // Writes go on meanwhile.
    app.incident(&t.admin, "Printer on fire").await;

    // 3. The next run resumes: the rest of the bulk, the index phase, the catch-up, the swap.
    let last = rebuild(
        &store,
        incidents.clone(),
        &RebuildOptions::default(),
        &StopToken::new(),
        &|_| {},
    )
    .await
    .unwrap();
    assert!(last.completed, "{last:?}");
    assert!(last.resumed, "{last:?}");
    assert!(rebuild_row(su, "incidents").await.is_none());
    assert_eq!(leftover_schemas(su).await, Vec::<String>::new());
    assert_eq!(catalog_of(su, incidents.tables()).await, before);
    let l = app
        .call(
            Method::GET,
            "/api/v1/incidents?q=fire",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(l.status, StatusCode::OK);
    assert_eq!(
        l.body["data"][0]["title"], "Printer on fire",
        "{:?}",
        l.body
    );
    live_caught_up(&app).await;
    assert_equals_fresh_build(su, incidents).await;
    app.stop().await;
}
