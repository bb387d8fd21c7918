//! `eventdesk audit …` (issue #6), black-box: the built binary against a fresh database.
//! Tampering happens as the superuser with the immutability triggers disabled.

use crate::helpers::{TestDb, eventually, meta};
use chrono::{DateTime, TimeDelta, Utc};
use eventdesk_commands::{Clock, Executed, Options, execute};
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand};
use eventdesk_domain::values::{
    Description, HoldReason, Impact, IncidentNumber, ReasonText, ResolutionText, Title, Urgency,
    WorkNoteBody, WorkNoteType,
};
use eventdesk_domain::{Actor, IncidentId, PriorityMatrix, StreamId, TenantId, UserId, WorkNoteId};
use eventdesk_store::checkpoint::{
    CheckpointFault, create_tenant_checkpoint, verify_tenant_checkpoints,
};
use eventdesk_store::hash::{DigestInput, GENESIS, canonical_json, chain, event_digest};
use eventdesk_store::{EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamRef};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

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

/// `eventdesk <args>` against the test database.
fn cli(t: &TestDb, args: &[&str]) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventdesk"))
        .args(args)
        .env("DATABASE_URL", &t.url)
        .env("EVENTDESK_LOG_FORMAT", "pretty")
        .env("RUST_LOG", "error")
        .env_remove("EVENTDESK_SYSTEM_DB_ROLE")
        .output()
        .expect("run eventdesk");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[derive(Debug, Clone)]
struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    fn advance(&self) {
        *self.0.lock().unwrap() += TimeDelta::minutes(1);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

fn clock() -> TestClock {
    TestClock(Arc::new(Mutex::new(
        "2026-05-01T08:00:00Z".parse().expect("instant"),
    )))
}

/// The `changes` commands after creation: field updates, a note, and a walk through the
/// status machine.
fn change(i: usize, actor: Actor) -> IncidentCommand {
    match i % 20 {
        15 => IncidentCommand::AddWorkNote {
            note_id: WorkNoteId::new(),
            body: WorkNoteBody::parse("Relay certificate expired").unwrap(),
            note_type: WorkNoteType::WorkNote,
            is_public: false,
            by_agent: true,
            author: actor,
        },
        16 => IncidentCommand::StartWork { actor },
        17 => IncidentCommand::PutOnHold {
            reason: HoldReason::AwaitingVendor,
            comment: Some(ReasonText::parse("waiting for the CA").unwrap()),
            actor,
        },
        18 => IncidentCommand::Resume { actor },
        19 => IncidentCommand::Resolve {
            resolution: ResolutionText::parse("Rotated the certificate").unwrap(),
            actor,
        },
        _ => IncidentCommand::UpdateFields {
            title: Some(Title::parse(format!("メールサーバー接続エラー #{i}")).unwrap()),
            description: i
                .is_multiple_of(3)
                .then(|| Description::parse(format!("step {i}: SMTP relay down")).unwrap()),
            impact: None,
            urgency: Some(if i.is_multiple_of(2) {
                Urgency::High
            } else {
                Urgency::Medium
            }),
            priority: None,
            category_id: None,
            ci_id: None,
            matrix: PriorityMatrix::default(),
            actor,
        },
    }
}

/// One incident stream: created, then `changes` changes. Returns its id and, per version, the
/// recorded instant and the state right after it.
async fn incident(
    store: &PgEventStore,
    tenant: TenantId,
    number: u64,
    changes: usize,
) -> (Uuid, Vec<(DateTime<Utc>, Value, i64)>) {
    let clock = clock();
    let reporter = UserId::new();
    let actor = Actor::User(reporter);
    let id = IncidentId::new();
    let opts = Options {
        metadata: meta(),
        ..Default::default()
    };
    let mut after = Vec::new();
    for i in 0..=changes {
        let cmd = if i == 0 {
            IncidentCommand::Create {
                id,
                number: IncidentNumber::from_sequence(number).unwrap(),
                title: Title::parse("Mail relay down").unwrap(),
                description: Description::parse("").unwrap(),
                impact: Impact::High,
                urgency: Urgency::High,
                priority: None,
                matrix: PriorityMatrix::default(),
                category_id: None,
                team_id: None,
                assignee_id: None,
                reporter_id: reporter,
                ci_id: None,
                actor,
            }
        } else {
            change(i - 1, actor)
        };
        let done: Executed<IncidentAggregate> =
            execute(store, &clock, tenant, StreamId(id.0), cmd, &opts)
                .await
                .unwrap_or_else(|e| panic!("change {i}: {e}"));
        let position = done
            .appended
            .as_ref()
            .and_then(|a| a.last_position)
            .unwrap();
        let recorded_at: DateTime<Utc> =
            sqlx::query_scalar("SELECT recorded_at FROM events WHERE global_position = $1")
                .bind(position)
                .fetch_one(store.pool())
                .await
                .unwrap();
        after.push((
            recorded_at,
            serde_json::to_value(&done.state).unwrap(),
            done.version,
        ));
        clock.advance();
    }
    (id.0, after)
}

/// A few events of a stream type the domain does not decode (chain-checked only).
async fn security_events(store: &PgEventStore, tenant: TenantId, n: usize) {
    let stream = StreamRef::new("security", StreamId::new());
    for i in 0..n {
        store
            .append(
                tenant,
                &stream,
                ExpectedVersion::Any,
                vec![NewEvent::new("LoginSucceeded", 1, json!({ "n": i }))],
                &meta(),
                None,
            )
            .await
            .unwrap();
    }
}

/// The superuser may change events only with the immutability trigger off.
async fn allow_tampering(su: &PgPool) {
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
        .execute(su)
        .await
        .unwrap();
}

/// The global position and event id of a stream's version.
async fn event_at(su: &PgPool, stream: Uuid, version: i64) -> (i64, Uuid) {
    let r = sqlx::query(
        "SELECT global_position, event_id FROM events WHERE stream_id = $1 AND version = $2",
    )
    .bind(stream)
    .bind(version)
    .fetch_one(su)
    .await
    .unwrap();
    (r.get(0), r.get(1))
}

/// Recomputes a stream's whole hash chain from its (tampered) rows: what a careful attacker
/// with superuser rights does so that the chain check alone passes.
async fn rechain(su: &PgPool, tenant: Uuid, stream: Uuid) {
    let rows = sqlx::query(
        "SELECT version, stream_type, event_id, event_type, schema_version, data, metadata, \
         recorded_at FROM events WHERE tenant_id = $1 AND stream_id = $2 ORDER BY version",
    )
    .bind(tenant)
    .bind(stream)
    .fetch_all(su)
    .await
    .unwrap();
    let mut prev = GENESIS;
    for r in rows {
        let version: i64 = r.get(0);
        let stream_type: String = r.get(1);
        let event_type: String = r.get(3);
        let data: Value = r.get::<sqlx::types::Json<Value>, _>(5).0;
        let metadata: Value = r.get::<sqlx::types::Json<Value>, _>(6).0;
        let digest = event_digest(&DigestInput {
            tenant_id: tenant,
            stream_type: &stream_type,
            stream_id: stream,
            event_id: r.get(2),
            event_type: &event_type,
            schema_version: r.get(4),
            data: &canonical_json(&data),
            metadata: &canonical_json(&metadata),
            recorded_at: r.get(7),
        });
        prev = chain(&prev, version, &digest);
        sqlx::query(
            "UPDATE events SET hash = $1 WHERE tenant_id = $2 AND stream_id = $3 AND version = $4",
        )
        .bind(prev.as_slice())
        .bind(tenant)
        .bind(stream)
        .bind(version)
        .execute(su)
        .await
        .unwrap();
    }
}

/// `audit verify --json` → (exit code, report).
fn verify(t: &TestDb, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["audit", "verify", "--json"];
    args.extend_from_slice(extra);
    let r = cli(t, &args);
    (r.code, r.json())
}

/// A tenant with a 6-version incident, a second incident and a chain-only stream.
async fn fixture(t: &TestDb) -> (TenantId, Uuid) {
    let store = t.store();
    let tenant = TenantId::new();
    let (id, _) = incident(&store, tenant, 1, 5).await;
    incident(&store, tenant, 2, 2).await;
    security_events(&store, tenant, 3).await;
    // Another tenant, so that the report spans tenants.
    incident(&store, TenantId::new(), 1, 1).await;
    (tenant, id)
}

// ---------------------------------------------------------------------------------------------
// Tamper detection
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn verify_passes_then_names_an_altered_event_and_exits_non_zero() {
    let t = TestDb::new().await;
    let (tenant, id) = fixture(&t).await;

    let (code, ok) = verify(&t, &[]);
    assert_eq!(code, 0, "{ok}");
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["events"], 6 + 3 + 3 + 2);
    assert_eq!(ok["decoded"], 6 + 3 + 2, "every incident event decodes");
    assert_eq!(ok["tenants"], 2);
    assert_eq!(ok["chain_only_stream_types"], json!(["security"]));
    let (code, one) = verify(&t, &["--tenant", &tenant.0.to_string()]);
    assert_eq!((code, one["events"].clone()), (0, json!(12)));

    allow_tampering(&t.superuser).await;
    sqlx::query(
        "UPDATE events SET data = jsonb_set(data, '{title}', '\"nothing happened\"') \
         WHERE stream_id = $1 AND version = 3",
    )
    .bind(id)
    .execute(&t.superuser)
    .await
    .unwrap();
    let (position, event_id) = event_at(&t.superuser, id, 3).await;

    let (code, report) = verify(&t, &[]);
    assert_ne!(code, 0);
    assert_eq!(report["ok"], false);
    let bad = &report["first_bad_event"];
    assert_eq!(bad["tenant_id"], json!(tenant.0));
    assert_eq!(bad["stream_id"], json!(id));
    assert_eq!(bad["stream_type"], "incident");
    assert_eq!(bad["version"], 3);
    assert_eq!(bad["position"], position);
    assert_eq!(bad["event_id"], json!(event_id));
    assert_eq!(bad["kind"], "hash_mismatch");
    assert_eq!(
        report["bad_events"], 1,
        "the chain resumes after the bad event"
    );

    // The table form names it too.
    let r = cli(&t, &["audit", "verify"]);
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("FAILED"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "stream incident/{id}, version 3, position {position}"
        )),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn verify_reports_an_event_deleted_from_the_middle_of_a_stream() {
    let t = TestDb::new().await;
    let (_, id) = fixture(&t).await;
    allow_tampering(&t.superuser).await;
    let (position, event_id) = event_at(&t.superuser, id, 4).await;
    sqlx::query("DELETE FROM events WHERE stream_id = $1 AND version = 3")
        .bind(id)
        .execute(&t.superuser)
        .await
        .unwrap();

    let (code, report) = verify(&t, &[]);
    assert_ne!(code, 0);
    let bad = &report["first_bad_event"];
    assert_eq!(bad["stream_id"], json!(id));
    assert_eq!(bad["version"], 4, "the event after the hole");
    assert_eq!(bad["position"], position);
    assert_eq!(bad["event_id"], json!(event_id));
    assert_eq!(bad["kind"], "version_gap");
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("version 3 is missing"),
        "{bad}"
    );
}

#[tokio::test]
async fn verify_reports_reordered_events() {
    let t = TestDb::new().await;
    let (_, id) = fixture(&t).await;
    allow_tampering(&t.superuser).await;
    // Swap versions 2 and 4 (through a free version: the unique key is checked per row).
    for (from, to) in [(2, 1000), (4, 2), (1000, 4)] {
        sqlx::query("UPDATE events SET version = $3 WHERE stream_id = $1 AND version = $2")
            .bind(id)
            .bind(from)
            .bind(to)
            .execute(&t.superuser)
            .await
            .unwrap();
    }
    let (position, event_id) = event_at(&t.superuser, id, 2).await;

    let (code, report) = verify(&t, &[]);
    assert_ne!(code, 0);
    let bad = &report["first_bad_event"];
    assert_eq!(bad["stream_id"], json!(id));
    assert_eq!(
        bad["version"], 2,
        "the first version holding the wrong event"
    );
    assert_eq!(bad["position"], position);
    assert_eq!(bad["event_id"], json!(event_id));
    assert_eq!(bad["kind"], "hash_mismatch");
}

#[tokio::test]
async fn verify_reports_events_the_domain_cannot_decode() {
    let t = TestDb::new().await;
    let store = t.store();
    let tenant = TenantId::new();
    let (id, versions) = incident(&store, tenant, 1, 2).await;
    // Appended through the store, so their chain is valid: only decoding can catch them.
    store
        .append(
            tenant,
            &StreamRef::new("incident", StreamId(id)),
            ExpectedVersion::Exact(versions.len() as i64),
            vec![
                NewEvent::new("IncidentExploded", 1, json!({ "boom": true })),
                NewEvent::new("IncidentClosed", 7, json!({})),
            ],
            &meta(),
            None,
        )
        .await
        .unwrap();
    let (code, report) = verify(&t, &[]);
    assert_ne!(code, 0);
    let bad = &report["first_bad_event"];
    assert_eq!(bad["version"], 4);
    assert_eq!(bad["kind"], "decode");
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("IncidentExploded"),
        "{bad}"
    );
    assert_eq!(
        report["bad_events"], 2,
        "the unknown schema version too: {report}"
    );
}

// ---------------------------------------------------------------------------------------------
// Time travel
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn show_at_equals_the_state_right_after_each_of_20_changes() {
    let t = TestDb::new().await;
    let store = t.store();
    let tenant = TenantId::new();
    let (id, after) = incident(&store, tenant, 7, 20).await;
    assert_eq!(after.len(), 21);
    let (tenant_s, id_s) = (tenant.0.to_string(), id.to_string());

    for (i, (recorded_at, state, version)) in after.iter().enumerate() {
        let at = recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let r = cli(
            &t,
            &[
                "audit", "show", "--tenant", &tenant_s, "--stream", &id_s, "--at", &at, "--json",
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let shown = r.json();
        assert_eq!(&shown["state"], state, "state after change {i}");
        assert_eq!(shown["version"], *version);
        assert_eq!(shown["stream_type"], "incident");
        assert_eq!(shown["chain_verified"], true);
        // Just before the next change, still the same state.
        if let Some((next, _, _)) = after.get(i + 1) {
            let before = (*next - TimeDelta::microseconds(1))
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let r = cli(
                &t,
                &[
                    "audit", "show", "--tenant", &tenant_s, "--stream", &id_s, "--at", &before,
                    "--json",
                ],
            );
            assert_eq!(&r.json()["state"], state, "just before change {}", i + 1);
        }
    }
    let last = after.last().unwrap();
    assert_eq!(last.1["state"]["status"], "resolved", "{}", last.1);

    // Pretty by default; before the incident existed, and an unknown stream, fail.
    let r = cli(
        &t,
        &["audit", "show", "--tenant", &tenant_s, "--stream", &id_s],
    );
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("\n  \"state\": {"), "{}", r.stdout);
    let r = cli(
        &t,
        &[
            "audit",
            "show",
            "--tenant",
            &tenant_s,
            "--stream",
            &id_s,
            "--at",
            "2020-01-01T00:00:00Z",
        ],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("did not exist yet"), "{}", r.stderr);
    let r = cli(
        &t,
        &[
            "audit",
            "show",
            "--tenant",
            &tenant_s,
            "--stream",
            &Uuid::now_v7().to_string(),
        ],
    );
    assert_ne!(r.code, 0);
    // A stream type the domain does not know is refused with a clear error.
    let security = StreamId::new();
    t.store()
        .append(
            tenant,
            &StreamRef::new("security", security),
            ExpectedVersion::NoStream,
            vec![NewEvent::new("LoginSucceeded", 1, json!({}))],
            &meta(),
            None,
        )
        .await
        .unwrap();
    let r = cli(
        &t,
        &[
            "audit",
            "show",
            "--tenant",
            &tenant_s,
            "--stream",
            &security.0.to_string(),
        ],
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("\"security\" is not an aggregate"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Log
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn log_lists_events_with_actor_request_and_correlation_filtered() {
    let t = TestDb::new().await;
    let (tenant, id) = fixture(&t).await;
    let tenant_s = tenant.0.to_string();
    let lines = |args: &[&str]| -> Vec<Value> {
        let mut a = vec!["audit", "log", "--tenant", &tenant_s, "--json"];
        a.extend_from_slice(args);
        let r = cli(&t, &a);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let all = lines(&[]);
    assert_eq!(all.len(), 12);
    assert_eq!(all[0]["event_type"], "IncidentCreated");
    assert_eq!(all[0]["actor"], "user:test");
    assert_eq!(all[0]["request_id"], "req-1");
    assert!(all[0]["correlation_id"].is_string());
    let mut positions: Vec<i64> = all
        .iter()
        .map(|l| l["position"].as_i64().unwrap())
        .collect();
    positions.dedup();
    assert_eq!(positions.len(), 12);

    let stream = lines(&["--stream", &id.to_string()]);
    assert_eq!(stream.len(), 6);
    assert!(
        stream
            .iter()
            .enumerate()
            .all(|(i, l)| l["version"] == i as i64 + 1)
    );
    assert_eq!(lines(&["--type", "IncidentUpdated"]).len(), 5 + 2);
    assert_eq!(lines(&["--actor", "user:test"]).len(), 12);
    assert_eq!(lines(&["--actor", "user:nobody"]).len(), 0);
    assert_eq!(lines(&["--limit", "4"]).len(), 4);
    let third = all[2]["recorded_at"].as_str().unwrap().to_owned();
    assert_eq!(lines(&["--until", &third]).len(), 2);
    assert_eq!(lines(&["--since", &third]).len(), 10);

    let r = cli(
        &t,
        &[
            "audit",
            "log",
            "--tenant",
            &tenant_s,
            "--stream",
            &id.to_string(),
        ],
    );
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout.lines().count(),
        7,
        "header and 6 rows:\n{}",
        r.stdout
    );
    assert!(r.stdout.lines().next().unwrap().contains("CORRELATION_ID"));
    assert!(r.stdout.contains("IncidentUpdated") && r.stdout.contains("req-1"));
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "eventdesk-audit-{}-{name}",
        Uuid::now_v7().simple()
    ))
}

#[tokio::test]
async fn export_round_trip_verifies_offline_and_any_altered_line_fails() {
    let t = TestDb::new().await;
    let (tenant, id) = fixture(&t).await;
    let tenant_s = tenant.0.to_string();
    wait_for_checkpoint(&t, tenant, 12).await;
    let file = temp_file("export.jsonl");
    let file_s = file.to_str().unwrap().to_owned();

    let checkpoints: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_checkpoints")
        .fetch_one(&t.superuser)
        .await
        .unwrap();
    let cps = checkpoints as usize;

    let r = cli(
        &t,
        &[
            "audit", "export", "--tenant", &tenant_s, "--format", "jsonl", "--out", &file_s,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        1 + cps + 12 + 1,
        "header, checkpoints, events, trailer"
    );
    assert!(lines[0].starts_with("{\"export\":"));
    assert!(
        lines[1..=cps]
            .iter()
            .all(|l| l.starts_with("{\"checkpoint\":"))
    );
    assert!(lines[cps + 13].starts_with("{\"trailer\":"));

    // Offline: no database needed.
    let offline = |path: &str, extra: &[&str]| -> (i32, Value) {
        let mut args = vec!["audit", "verify", "--json", "--file", path];
        args.extend_from_slice(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventdesk"))
            .args(&args)
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        // A file that is not an export of the tenant asked for fails before any report.
        let v = if out.stdout.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
        };
        (out.status.code().unwrap_or(-1), v)
    };
    let (code, ok) = offline(&file_s, &[]);
    assert_eq!(code, 0, "{ok}");
    assert_eq!(ok["events"], 12);
    assert_eq!(ok["decoded"], 9);
    assert_eq!(
        ok["checkpoints_verified"], checkpoints,
        "recomputed from the file"
    );
    let (code, _) = offline(&file_s, &["--tenant", &Uuid::now_v7().to_string()]);
    assert_ne!(code, 0, "another tenant's file");

    // Alter one event line: the chain names it, the trailer digest no longer matches.
    let n = lines
        .iter()
        .position(|l| l.contains(&format!("\"stream_id\":\"{id}\",\"version\":2,")))
        .unwrap();
    let mut altered: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    altered[n] = altered[n].replacen("\"actor\":\"user:test\"", "\"actor\":\"user:evil\"", 1);
    assert_ne!(altered[n], lines[n]);
    let bad = temp_file("altered.jsonl");
    std::fs::write(&bad, altered.join("\n") + "\n").unwrap();
    let (code, report) = offline(bad.to_str().unwrap(), &[]);
    assert_ne!(code, 0);
    assert_eq!(report["first_bad_event"]["line"], n as u64 + 1);
    assert_eq!(report["first_bad_event"]["version"], 2);
    assert!(
        report["file_problems"].to_string().contains("sha256"),
        "{report}"
    );

    // Any other line altered (here the header) is caught by the trailer's digest.
    let mut altered: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    altered[0] = altered[0].replacen("\"complete\":true", "\"complete\":false", 1);
    std::fs::write(&bad, altered.join("\n") + "\n").unwrap();
    let (code, report) = offline(bad.to_str().unwrap(), &[]);
    assert_ne!(code, 0, "{report}");
    assert!(report["first_bad_event"].is_null());

    // Truncated: no trailer.
    std::fs::write(&bad, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let (code, report) = offline(bad.to_str().unwrap(), &[]);
    assert_ne!(code, 0);
    assert!(
        report["file_problems"].to_string().contains("truncated"),
        "{report}"
    );

    // An event line removed from the middle of a stream.
    let mut removed: Vec<&str> = lines.clone();
    removed.remove(n);
    std::fs::write(&bad, removed.join("\n") + "\n").unwrap();
    let (code, report) = offline(bad.to_str().unwrap(), &[]);
    assert_ne!(code, 0);
    assert_eq!(report["first_bad_event"]["kind"], "version_gap");

    // A window that starts mid-stream still verifies: each stream's first exported event
    // carries the hash of the version before it.
    let since: DateTime<Utc> = serde_json::from_str::<Value>(lines[n + 1]).unwrap()["recorded_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let since_s = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let part = temp_file("since.jsonl");
    let r = cli(
        &t,
        &[
            "audit",
            "export",
            "--tenant",
            &tenant_s,
            "--since",
            &since_s,
            "--out",
            part.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let part_text = std::fs::read_to_string(&part).unwrap();
    assert!(part_text.contains("\"previous_hash\":"), "{part_text}");
    let (code, report) = offline(part.to_str().unwrap(), &[]);
    assert_eq!(code, 0, "{report}");
    assert!(report["events"].as_u64().unwrap() < 12);

    // CSV: the same columns.
    let csv = temp_file("export.csv");
    let r = cli(
        &t,
        &[
            "audit",
            "export",
            "--tenant",
            &tenant_s,
            "--format",
            "csv",
            "--out",
            csv.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    // The 12 events, plus the two exports before this one: each export is recorded in the
    // tenant's security log.
    assert_eq!(csv_text.lines().count(), 1 + 12 + 2);
    assert_eq!(csv_text.matches(",AuditExported,").count(), 2, "{csv_text}");
    assert!(csv_text.starts_with("tenant_id,stream_type,stream_id,version,global_position,"));

    for f in [file, bad, part, csv] {
        let _ = std::fs::remove_file(f);
    }
}

// ---------------------------------------------------------------------------------------------
// Tenant checkpoints
// ---------------------------------------------------------------------------------------------

/// Takes checkpoints until one covers `events` events (the horizon is cluster-wide: another
/// test's open transaction can hold it back for a moment).
async fn wait_for_checkpoint(t: &TestDb, tenant: TenantId, events: i64) {
    let covered = eventually(20, || async {
        // Before any event of the tenant passed the horizon there is nothing to checkpoint.
        create_tenant_checkpoint(&t.superuser, tenant)
            .await
            .is_ok_and(|c| c.event_count == events)
    })
    .await;
    assert!(covered, "no checkpoint covering {events} events");
}

#[tokio::test]
async fn checkpoints_chain_stay_below_the_horizon_and_catch_a_rewritten_stream() {
    let t = TestDb::new().await;
    let store = t.store();
    let tenant = TenantId::new();
    let tenant_s = tenant.0.to_string();
    let (a, _) = incident(&store, tenant, 1, 3).await;
    let (b, _) = incident(&store, tenant, 2, 1).await;
    wait_for_checkpoint(&t, tenant, 6).await;

    // An append whose transaction is still open is not covered, however long we wait.
    let mut tx = store.pool().begin().await.unwrap();
    store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new("incident", StreamId(b)),
            ExpectedVersion::Exact(2),
            &[NewEvent::new("IncidentUpdated", 1, json!({}))],
            &meta(),
            None,
        )
        .await
        .unwrap();
    for _ in 0..3 {
        let c = create_tenant_checkpoint(&t.superuser, tenant)
            .await
            .unwrap();
        assert_eq!(
            c.event_count, 6,
            "an open transaction's event is never covered"
        );
    }
    tx.rollback().await.unwrap();

    // More events, and a checkpoint through the CLI.
    incident(&store, tenant, 3, 1).await;
    let covered = eventually(20, || async {
        let r = cli(
            &t,
            &["audit", "checkpoint", "--tenant", &tenant_s, "--json"],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json()["event_count"] == 8
    })
    .await;
    assert!(covered);
    assert!(
        verify_tenant_checkpoints(&t.superuser, tenant)
            .await
            .unwrap()
            .is_empty()
    );
    let (code, report) = verify(&t, &[]);
    assert_eq!(code, 0, "{report}");
    let checkpoints: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_checkpoints")
        .fetch_one(&t.superuser)
        .await
        .unwrap();
    assert!(checkpoints >= 2);
    assert_eq!(report["checkpoints_verified"], checkpoints);
    let r = cli(&t, &["audit", "checkpoint", "--tenant", &tenant_s]);
    assert!(r.stdout.contains("digest"), "{}", r.stdout);

    // Checkpoints are insert-only, even for the superuser.
    for sql in [
        "UPDATE tenant_checkpoints SET stream_count = 0",
        "DELETE FROM tenant_checkpoints",
        "TRUNCATE tenant_checkpoints",
    ] {
        assert!(
            sqlx::query(sql).execute(&t.superuser).await.is_err(),
            "{sql}"
        );
    }

    // Rewrite an early event and recompute its stream's chain: the chains verify, the
    // checkpoints do not.
    let first: (i64, Vec<u8>) = sqlx::query_as(
        "SELECT position, digest FROM tenant_checkpoints WHERE tenant_id = $1 \
         ORDER BY txid, position LIMIT 1",
    )
    .bind(tenant.0)
    .fetch_one(&t.superuser)
    .await
    .unwrap();
    allow_tampering(&t.superuser).await;
    sqlx::query(
        "UPDATE events SET data = jsonb_set(data, '{title}', '\"nothing happened\"') \
         WHERE stream_id = $1 AND version = 1",
    )
    .bind(a)
    .execute(&t.superuser)
    .await
    .unwrap();
    rechain(&t.superuser, tenant.0, a).await;

    let problems = verify_tenant_checkpoints(&t.superuser, tenant)
        .await
        .unwrap();
    assert_eq!(
        problems.len() as i64,
        checkpoints,
        "every checkpoint covers that event"
    );
    assert_eq!(problems[0].checkpoint.position, first.0);
    assert!(matches!(
        problems[0].fault,
        CheckpointFault::DigestMismatch { .. }
    ));

    let (code, report) = verify(&t, &[]);
    assert_ne!(code, 0);
    assert!(
        report["first_bad_event"].is_null(),
        "the chains were recomputed: {report}"
    );
    let named = &report["checkpoint_problems"][0];
    assert_eq!(named["tenant_id"], json!(tenant.0));
    assert_eq!(named["position"], first.0);
    assert_eq!(named["digest"], json!(hex(&first.1)));
    let r = cli(&t, &["audit", "verify"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stdout.contains(&format!(
            "CHECKPOINT: checkpoint of tenant {} at position {}",
            tenant.0, first.0
        )),
        "{}",
        r.stdout
    );

    // Removing the first checkpoint breaks the link of the second.
    sqlx::query(
        "ALTER TABLE tenant_checkpoints DISABLE TRIGGER tenant_checkpoints_no_update_delete",
    )
    .execute(&t.superuser)
    .await
    .unwrap();
    sqlx::query("DELETE FROM tenant_checkpoints WHERE tenant_id = $1 AND position = $2")
        .bind(tenant.0)
        .bind(first.0)
        .execute(&t.superuser)
        .await
        .unwrap();
    let problems = verify_tenant_checkpoints(&t.superuser, tenant)
        .await
        .unwrap();
    assert_eq!(problems[0].fault, CheckpointFault::BrokenLink);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
