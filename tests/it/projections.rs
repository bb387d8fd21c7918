//! The projector runtime's guarantees, against the real PostgreSQL.

use crate::helpers::*;
use async_trait::async_trait;
use eventdesk_domain::TenantId;
use eventdesk_projections::event_counts::EventCounts;
use eventdesk_projections::{
    HandlerError, Projection, ProjectionState, ProjectorRuntime, RuntimeConfig, projection_status,
};
use eventdesk_store::RecordedEvent;
use eventdesk_store::subscription::StopToken;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A deliberately non-idempotent projection: it *adds* one per event to a counter and logs each
/// event id, so any double application or partial commit shows up in the numbers.
struct Counter {
    name: &'static str,
    calls: Arc<AtomicUsize>,
    /// Fail this many batch attempts, after writing part of the batch.
    fail_first: AtomicUsize,
    /// Reject every event of this type (poison).
    poison: Option<&'static str>,
}

impl Counter {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            calls: Arc::new(AtomicUsize::new(0)),
            fail_first: AtomicUsize::new(0),
            poison: None,
        }
    }
}

async fn counter_tables(pool: &PgPool) {
    for sql in [
        "CREATE TABLE test_counter (name text PRIMARY KEY, n bigint NOT NULL)",
        "CREATE TABLE test_seen (name text, event_id uuid, PRIMARY KEY (name, event_id))",
        "GRANT ALL ON test_counter, test_seen TO eventdesk_app",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
}

async fn counter(pool: &PgPool, name: &str) -> i64 {
    sqlx::query_scalar("SELECT coalesce((SELECT n FROM test_counter WHERE name = $1), 0)")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[async_trait]
impl Projection for Counter {
    fn name(&self) -> &'static str {
        self.name
    }
    fn version(&self) -> i32 {
        1
    }
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(p) = self.poison
            && events.iter().any(|e| e.event_type == p)
        {
            return Err(format!("cannot handle {p}").into());
        }
        let half = events.len().div_ceil(2);
        for (i, e) in events.iter().enumerate() {
            // Row by row on purpose (this is a test probe, not a model handler).
            sqlx::query(
                "INSERT INTO test_counter (name, n) VALUES ($1, 1) \
                 ON CONFLICT (name) DO UPDATE SET n = test_counter.n + 1",
            )
            .bind(self.name)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO test_seen (name, event_id) VALUES ($1, $2)")
                .bind(self.name)
                .bind(e.event_id)
                .execute(&mut *tx)
                .await?;
            if i + 1 == half
                && self
                    .fail_first
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                return Err("injected failure after writing half the batch".into());
            }
        }
        Ok(())
    }
}

fn fast_config() -> RuntimeConfig {
    RuntimeConfig {
        batch_size: 50,
        max_retries: 3,
        retry_backoff: Duration::from_millis(5),
        leader_retry: Duration::from_millis(200),
        max_poll: Duration::from_millis(100),
        lock_check: Duration::from_millis(200),
    }
}

#[tokio::test]
async fn a_failed_batch_rolls_back_with_its_checkpoint_and_each_event_counts_once() {
    let t = TestDb::new().await;
    counter_tables(&t.superuser).await;
    let store = t.store();
    append_n(&store, TenantId::new(), "A", 40).await;

    let p = Counter::new("flaky");
    p.fail_first.store(2, Ordering::SeqCst); // two attempts fail midway, the third succeeds
    let rt = ProjectorRuntime::new(store.clone(), vec![], fast_config());
    let out = rt.catch_up(&p).await.unwrap();
    assert_eq!(out.events, 40);
    // Two failed attempts of the first batch, then one call per committed batch (usually one;
    // two when another database's open transaction held the cluster-wide horizon inside the
    // 40 events at the first read).
    assert_eq!(p.calls.load(Ordering::SeqCst) as u64, 2 + out.batches);
    assert_eq!(
        counter(&t.db.pool, "flaky").await,
        40,
        "partial writes leaked"
    );
    let seen: i64 = sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM test_seen")
        .fetch_one(&t.db.pool)
        .await
        .unwrap();
    assert_eq!(seen, 40);
    let st = projection_status(&t.db.pool).await.unwrap();
    let flaky = st.iter().find(|s| s.name == "flaky").unwrap();
    assert_eq!(
        (flaky.lag_events, flaky.state),
        (0, ProjectionState::Running)
    );

    // While a batch keeps failing, the checkpoint does not move and nothing is visible.
    append_n(&store, TenantId::new(), "A", 10).await;
    let stuck = Counter::new("flaky");
    stuck.fail_first.store(usize::MAX, Ordering::SeqCst);
    let before = projection_status(&t.db.pool).await.unwrap();
    let store2 = store.clone();
    let rt2 = ProjectorRuntime::new(store2, vec![], fast_config());
    let handle = tokio::spawn(async move { rt2.catch_up(&stuck).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mid = projection_status(&t.db.pool).await.unwrap();
    assert_eq!(
        before.iter().find(|s| s.name == "flaky").unwrap().position,
        mid.iter().find(|s| s.name == "flaky").unwrap().position
    );
    // It eventually dead-letters every event (each fails after writing), and the count of the
    // successful run is still exactly 40: failed attempts left no trace.
    let _ = handle.await;
    assert_eq!(counter(&t.db.pool, "flaky").await, 40);
}

#[tokio::test]
async fn one_leader_per_projection_and_a_standby_takes_over() {
    let t = TestDb::new().await;
    counter_tables(&t.superuser).await;
    let store = t.store();
    let node_a = t.node().await;
    let node_b = t.node().await;
    let pa = Arc::new(Counter::new("led"));
    let pb = Arc::new(Counter::new("led"));
    let (calls_a, calls_b) = (pa.calls.clone(), pb.calls.clone());
    let ha = ProjectorRuntime::new(node_a.clone(), vec![pa], fast_config()).spawn();
    let hb = ProjectorRuntime::new(node_b.clone(), vec![pb], fast_config()).spawn();
    let stop = StopToken::new();
    let _bg = [
        node_a
            .waker()
            .spawn_background(node_a.pool().clone(), stop.clone()),
        node_b
            .waker()
            .spawn_background(node_b.pool().clone(), stop.clone()),
    ];

    append_n(&store, TenantId::new(), "A", 30).await;
    assert!(eventually(10, || async { counter(&t.db.pool, "led").await == 30 }).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(counter(&t.db.pool, "led").await, 30, "applied twice");
    let (a, b) = (
        calls_a.load(Ordering::SeqCst),
        calls_b.load(Ordering::SeqCst),
    );
    assert!(a == 0 || b == 0, "both nodes ran the projection: {a} / {b}");

    // Drop the leader (its whole runtime, releasing its lock connection).
    let (leader, follower_calls) = if a > 0 {
        (ha, calls_b.clone())
    } else {
        (hb, calls_a.clone())
    };
    let other = if a > 0 { "b" } else { "a" };
    leader.shutdown().await;
    let dropped_at = Instant::now();
    append_n(&store, TenantId::new(), "A", 20).await;
    assert!(
        eventually(10, || async { counter(&t.db.pool, "led").await == 50 }).await,
        "node {other} did not take over"
    );
    let took = dropped_at.elapsed();
    assert!(follower_calls.load(Ordering::SeqCst) > 0);
    assert!(took < Duration::from_secs(5), "takeover took {took:?}");
    stop.cancel();
}

#[tokio::test]
async fn a_killed_lock_connection_hands_leadership_over_without_double_application() {
    let t = TestDb::new().await;
    counter_tables(&t.superuser).await;
    let store = t.store();
    let node_a = t.node().await;
    let node_b = t.node().await;
    let _ha =
        ProjectorRuntime::new(node_a, vec![Arc::new(Counter::new("led"))], fast_config()).spawn();
    let _hb =
        ProjectorRuntime::new(node_b, vec![Arc::new(Counter::new("led"))], fast_config()).spawn();
    append_n(&store, TenantId::new(), "A", 10).await;
    assert!(eventually(10, || async { counter(&t.db.pool, "led").await == 10 }).await);
    // Kill whoever holds the advisory lock, as a crashed node would lose its connection.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&t.superuser)
    .await
    .unwrap();
    assert_eq!(killed, vec![true]);
    append_n(&store, TenantId::new(), "A", 10).await;
    assert!(eventually(10, || async { counter(&t.db.pool, "led").await == 20 }).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counter(&t.db.pool, "led").await, 20);
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_and_other_projections_keep_going() {
    let t = TestDb::new().await;
    counter_tables(&t.superuser).await;
    let store = t.store();
    let tenant = TenantId::new();
    append_n(&store, tenant, "A", 5).await;
    append_n(&store, tenant, "Poison", 1).await;
    append_n(&store, tenant, "A", 5).await;

    let mut poisoned = Counter::new("picky");
    poisoned.poison = Some("Poison");
    let calls = poisoned.calls.clone();
    let node = t.node().await;
    let h = ProjectorRuntime::new(
        node,
        vec![Arc::new(poisoned), Arc::new(EventCounts)],
        fast_config(),
    )
    .spawn();
    let pool = t.db.pool.clone();
    // Caught up = at the last event. Not "no lag": the lag counts events below the horizon,
    // and a transaction open elsewhere on the cluster (tests run in parallel) holds the
    // horizon back, so the lag can read 0 while the poison event is still ahead.
    let head: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&t.superuser)
        .await
        .unwrap();
    assert!(
        eventually(15, || async {
            let st = projection_status(&pool).await.unwrap();
            st.len() == 2 && st.iter().all(|s| s.position == head)
        })
        .await
    );
    let st = projection_status(&t.db.pool).await.unwrap();
    let picky = st.iter().find(|s| s.name == "picky").unwrap();
    let counts = st.iter().find(|s| s.name == "event_counts").unwrap();
    assert_eq!(picky.state, ProjectionState::Degraded);
    assert_eq!(picky.dead_letters, 1);
    assert!(
        picky
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("cannot handle Poison")
    );
    assert_eq!(counts.state, ProjectionState::Running);
    // The events after the poison one were applied by the degraded projection too.
    assert_eq!(counter(&t.db.pool, "picky").await, 10);
    let total: i64 = sqlx::query_scalar("SELECT sum(count)::int8 FROM event_counts")
        .fetch_one(&t.db.pool)
        .await
        .unwrap();
    assert_eq!(total, 11);
    let (ty, attempts): (String, i32) = sqlx::query_as(
        "SELECT event_type, attempts FROM projection_dead_letters WHERE projection = 'picky'",
    )
    .fetch_one(&t.db.pool)
    .await
    .unwrap();
    assert_eq!((ty.as_str(), attempts), ("Poison", 3));
    // Batch attempts (3) + isolation of each event of the batch + poison retries: bounded.
    assert!(calls.load(Ordering::SeqCst) < 40);
    h.shutdown().await;
}

/// Migration 0024 converted the stored histograms with `eventdesk_hist_encode`: it must agree
/// byte for byte with the projection's encoder, which writes every histogram since.
#[tokio::test]
async fn the_migrations_histogram_encoder_agrees_with_the_projections() {
    use eventdesk_projections::analytics::{decode_hist, encode_hist};
    let t = TestDb::new().await;
    let mut cases: Vec<Vec<i64>> = vec![
        vec![],
        vec![0, 0, 0],
        vec![1],
        vec![0, 0, 5, 0, 127, 128, 300, 0, 0],
        vec![
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            i64::from(i32::MAX),
            0,
            1,
        ],
    ];
    // A long one: 900 bins (durations of decades), a few thousand per bin, zero runs.
    cases.push(
        (0..900i64)
            .map(|i| (i * i * 7919) % 5000 * i64::from(i % 7 != 0))
            .collect(),
    );
    for dense in cases {
        let arr: Vec<i32> = dense
            .iter()
            .map(|c| i32::try_from(*c).expect("int4"))
            .collect();
        let sql: Vec<u8> = sqlx::query_scalar("SELECT eventdesk_hist_encode($1::int4[])")
            .bind(&arr)
            .fetch_one(&t.superuser)
            .await
            .expect("encode");
        assert_eq!(sql, encode_hist(&dense), "{dense:?}");
        let mut back = vec![0; dense.len()];
        decode_hist(&sql, |b, c| back[b] = c).expect("decode");
        assert_eq!(back, dense);
    }
}
