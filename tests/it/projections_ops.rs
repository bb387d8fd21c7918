//! `eventdesk projections …` (issue #6): status, dead letters and their replay, black-box
//! through the built binary against a fresh database.

use crate::helpers::{TestDb, append_n};
use eventdesk_domain::TenantId;
use eventdesk_projections::event_counts::EventCounts;
use eventdesk_projections::{ProjectorRuntime, RuntimeConfig};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// What a run of the binary printed.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}): {}\n{}", self.stdout, self.stderr)
        })
    }
}

/// `eventdesk <args>` against the test database.
pub(crate) fn cli(t: &TestDb, args: &[&str]) -> Run {
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

fn status_of<'a>(status: &'a Value, name: &str) -> &'a Value {
    status
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no status row for {name}: {status}"))
}

async fn poison_count(t: &TestDb, tenant: TenantId) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce((SELECT count FROM event_counts \
         WHERE tenant_id = $1 AND event_type = 'Poison'), 0)",
    )
    .bind(tenant.0)
    .fetch_one(&t.superuser)
    .await
    .unwrap()
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_once_fixed_and_the_projection_recovers() {
    let t = TestDb::new().await;
    let store = t.store();
    let tenant = TenantId::new();
    // The "bug": the read model refuses Poison events.
    for sql in [
        "CREATE FUNCTION test_refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.event_type = 'Poison' THEN RAISE EXCEPTION 'poison refused'; END IF; \
         RETURN NEW; END $$",
        "CREATE TRIGGER test_refuse_poison BEFORE INSERT OR UPDATE ON event_counts \
         FOR EACH ROW EXECUTE FUNCTION test_refuse_poison()",
    ] {
        sqlx::query(sql).execute(&t.superuser).await.unwrap();
    }
    append_n(&store, tenant, "Good", 3).await;
    append_n(&store, tenant, "Poison", 2).await;
    let runtime = ProjectorRuntime::new(
        store.clone(),
        vec![Arc::new(EventCounts)],
        RuntimeConfig {
            max_retries: 1,
            retry_backoff: Duration::from_millis(1),
            ..RuntimeConfig::default()
        },
    );
    let done = runtime.catch_up(&EventCounts).await.unwrap();
    assert_eq!(done.events, 5);

    // Status: degraded, two dead letters, caught up.
    let r = cli(&t, &["projections", "status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = r.json();
    let ec = status_of(&s, "event_counts");
    assert_eq!(ec["state"], "degraded");
    assert_eq!(ec["dead_letters"], 2);
    assert_eq!(ec["lag_events"], 0);
    assert!(
        ec["last_error"]
            .as_str()
            .unwrap()
            .contains("poison refused")
    );
    let r = cli(&t, &["projections", "status"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("event_counts"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.contains("degraded"), "{line}");
    assert!(r.stdout.starts_with("PROJECTION"), "{}", r.stdout);

    // The list.
    let r = cli(&t, &["projections", "dead-letters", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list = r.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|d| d["event_type"] == "Poison"));
    let first = list[0]["id"].as_i64().unwrap();
    let attempts = list[0]["attempts"].as_i64().unwrap();
    let r = cli(
        &t,
        &[
            "projections",
            "dead-letters",
            "--projection",
            "nope",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json(), serde_json::json!([]));

    // Not fixed yet: the retry fails, exits non-zero, and counts the attempt.
    let r = cli(
        &t,
        &[
            "projections",
            "dead-letters",
            "--retry",
            &first.to_string(),
            "--json",
        ],
    );
    assert_ne!(r.code, 0);
    let out = r.json();
    assert_eq!(out[0]["applied"], false);
    assert!(out[0]["error"].as_str().unwrap().contains("poison refused"));
    let again: i32 = sqlx::query_scalar(
        "SELECT attempts FROM projection_dead_letters WHERE id = $1 AND resolved_at IS NULL",
    )
    .bind(first)
    .fetch_one(&t.superuser)
    .await
    .unwrap();
    assert_eq!(i64::from(again), attempts + 1);
    assert_eq!(poison_count(&t, tenant).await, 0);

    // Fixed: one retried, then the rest; the projection is running again.
    sqlx::query("DROP TRIGGER test_refuse_poison ON event_counts")
        .execute(&t.superuser)
        .await
        .unwrap();
    let r = cli(
        &t,
        &[
            "projections",
            "dead-letters",
            "--retry",
            &first.to_string(),
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = r.json();
    assert_eq!(out[0]["applied"], true);
    assert_eq!(out[0]["projection_recovered"], false, "one is still open");
    assert_eq!(poison_count(&t, tenant).await, 1);
    let r = cli(&t, &["projections", "status", "--json"]);
    assert_eq!(status_of(&r.json(), "event_counts")["state"], "degraded");

    let r = cli(
        &t,
        &[
            "projections",
            "dead-letters",
            "--all",
            "--projection",
            "event_counts",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("applied"), "{}", r.stdout);
    assert_eq!(poison_count(&t, tenant).await, 2);
    let r = cli(&t, &["projections", "status", "--json"]);
    let s = r.json();
    let ec = status_of(&s, "event_counts");
    assert_eq!(ec["state"], "running");
    assert_eq!(ec["dead_letters"], 0);
    assert!(ec["last_error"].is_null());

    // Replayed exactly once: a second retry of the same one is refused.
    let r = cli(
        &t,
        &["projections", "dead-letters", "--retry", &first.to_string()],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("already resolved"), "{}", r.stderr);
    assert_eq!(poison_count(&t, tenant).await, 2);
    let r = cli(&t, &["projections", "dead-letters", "--all", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json(), serde_json::json!([]));
    let r = cli(
        &t,
        &[
            "projections",
            "dead-letters",
            "--include-resolved",
            "--json",
        ],
    );
    let all = r.json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|d| !d["resolved_at"].is_null())
    );
}
