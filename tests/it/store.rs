//! The event store's guarantees, against the real PostgreSQL.

use crate::helpers::*;
use eventdesk_domain::{StreamId, TenantId};
use eventdesk_store::hash::ChainFault;
use eventdesk_store::subscription::StopToken;
use eventdesk_store::verify::{verify_all, verify_stream};
use eventdesk_store::{
    Checkpoint, EventStore, ExpectedVersion, IdempotencyKey, PgEventStore, StoreError, StreamRef,
    Subscription, Upcasters,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn key(k: &str, body: &[u8]) -> IdempotencyKey {
    use sha2::Digest;
    IdempotencyKey {
        key: k.to_owned(),
        request_hash: sha2::Sha256::digest(body).into(),
    }
}

#[tokio::test]
async fn twenty_concurrent_appends_with_the_same_expected_version_one_wins() {
    let t = TestDb::new().await;
    let store = t.store();
    let tenant = TenantId::new();
    let stream = StreamRef::new("test", StreamId::new());
    store
        .append(
            tenant,
            &stream,
            ExpectedVersion::NoStream,
            vec![ev("A", 0)],
            &meta(),
            None,
        )
        .await
        .unwrap();

    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let stream = stream.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .append(
                        tenant,
                        &stream,
                        ExpectedVersion::Exact(1),
                        vec![ev("B", i), ev("C", i)],
                        &meta(),
                        None,
                    )
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(o) => {
                ok += 1;
                assert_eq!((o.first_version, o.next_version), (2, 3));
            }
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 19));
    let events = store
        .read_stream(tenant, stream.stream_id, 1)
        .await
        .unwrap();
    let versions: Vec<i64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    // The two events of the winner are one batch: same transaction.
    assert_eq!(events[1].transaction_id, events[2].transaction_id);
}

#[tokio::test]
async fn expected_version_errors_are_typed_conflicts() {
    let t = TestDb::new().await;
    let store = t.store();
    let tenant = TenantId::new();
    let stream = StreamRef::new("test", StreamId::new());
    // Exact on a missing stream.
    let e = store
        .append(
            tenant,
            &stream,
            ExpectedVersion::Exact(3),
            vec![ev("A", 0)],
            &meta(),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Conflict {
                actual: Some(0),
                ..
            }
        ),
        "{e:?}"
    );
    store
        .append(
            tenant,
            &stream,
            ExpectedVersion::NoStream,
            vec![ev("A", 0)],
            &meta(),
            None,
        )
        .await
        .unwrap();
    // NoStream on an existing stream.
    let e = store
        .append(
            tenant,
            &stream,
            ExpectedVersion::NoStream,
            vec![ev("A", 1)],
            &meta(),
            None,
        )
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e:?}");
    // Any appends at the head, even under contention.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let stream = stream.clone();
            tokio::spawn(async move {
                store
                    .append(
                        tenant,
                        &stream,
                        ExpectedVersion::Any,
                        vec![ev("Any", i)],
                        &meta(),
                        None,
                    )
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        store
            .stream_version(tenant, stream.stream_id)
            .await
            .unwrap(),
        11
    );
    // Another tenant does not see the stream at all.
    let other = store
        .read_stream(TenantId::new(), stream.stream_id, 1)
        .await
        .unwrap();
    assert!(other.is_empty());
}

#[tokio::test]
async fn subscriber_never_passes_an_open_transaction_and_delivers_everything_once_in_order() {
    let t = TestDb::new().await;
    let store = t.store();
    let tenant = TenantId::new();
    append_n(&store, tenant, "Z", 1).await;

    // Transaction A appends and stays open.
    let mut tx_a = t.db.pool.begin().await.unwrap();
    let a_stream = StreamRef::new("test", StreamId::new());
    store
        .append_in(
            &mut tx_a,
            tenant,
            &a_stream,
            ExpectedVersion::NoStream,
            &[ev("A", 0)],
            &meta(),
            None,
        )
        .await
        .unwrap();
    // B and C commit after A started.
    append_n(&store, tenant, "B", 1).await;
    append_n(&store, tenant, "C", 1).await;

    let mut sub = Subscription::new(
        Arc::new(store.clone()),
        store.waker(),
        Checkpoint::START,
        100,
    );
    let first = sub.next_batch().await.unwrap();
    assert_eq!(types(&first), vec!["Z"]);
    // Nothing past A's position while A is open, even though B and C are committed.
    let blocked = tokio::time::timeout(Duration::from_millis(1500), sub.next_batch()).await;
    assert!(
        blocked.is_err(),
        "delivered past an open transaction: {blocked:?}"
    );
    let raw: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&t.superuser)
        .await
        .unwrap();
    assert_eq!(raw, 3, "B and C are committed and visible to plain readers");

    tx_a.commit().await.unwrap();
    store.notify_appended();
    let mut got = Vec::new();
    while got.len() < 3 {
        let batch = tokio::time::timeout(Duration::from_secs(5), sub.next_batch())
            .await
            .expect("delivery after commit")
            .unwrap();
        got.extend(batch);
    }
    assert_eq!(types(&got), vec!["A", "B", "C"]);
    let cps: Vec<Checkpoint> = got.iter().map(|e| e.checkpoint()).collect();
    assert!(
        cps.windows(2).all(|w| w[0] < w[1]),
        "checkpoint order: {cps:?}"
    );
    // And nothing more, ever: each exactly once.
    let more = tokio::time::timeout(Duration::from_millis(500), sub.next_batch()).await;
    assert!(more.is_err(), "redelivered: {more:?}");
}

fn types(events: &[eventdesk_store::RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

#[tokio::test]
async fn events_cannot_be_updated_deleted_or_truncated() {
    let t = TestDb::new().await;
    let store = t.store();
    append_n(&store, TenantId::new(), "A", 2).await;
    // Through the application's own pool (no grant, and the trigger).
    for sql in [
        "UPDATE events SET data = '{}'::jsonb",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let e = sqlx::query(sql).execute(&t.db.pool).await.unwrap_err();
        let code = e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.to_string());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {e}");
    }
    // Even the superuser is refused by the trigger.
    for sql in [
        "UPDATE events SET data = '{}'::jsonb",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let e = sqlx::query(sql).execute(&t.superuser).await.unwrap_err();
        assert!(e.to_string().contains("immutable"), "{sql}: {e}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&t.superuser)
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn idempotent_appends_replay_the_first_result() {
    let t = TestDb::new().await;
    let store = t.store();
    let tenant = TenantId::new();
    let stream = StreamRef::new("test", StreamId::new());
    let k = key("create-1", b"body-1");
    let first = store
        .append(
            tenant,
            &stream,
            ExpectedVersion::NoStream,
            vec![ev("A", 0)],
            &meta(),
            Some(&k),
        )
        .await
        .unwrap();
    assert!(!first.replayed);
    let again = store
        .append(
            tenant,
            &stream,
            ExpectedVersion::NoStream,
            vec![ev("A", 0)],
            &meta(),
            Some(&k),
        )
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.first_position, again.next_version),
        (first.first_position, first.next_version)
    );
    assert_eq!(
        store
            .stream_version(tenant, stream.stream_id)
            .await
            .unwrap(),
        1
    );

    // Same key, different request.
    let e = store
        .append(
            tenant,
            &stream,
            ExpectedVersion::Any,
            vec![ev("A", 1)],
            &meta(),
            Some(&key("create-1", b"other")),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::IdempotencyMismatch), "{e:?}");
    // The same key in another tenant is independent.
    let o = store
        .append(
            TenantId::new(),
            &StreamRef::new("test", StreamId::new()),
            ExpectedVersion::NoStream,
            vec![ev("A", 0)],
            &meta(),
            Some(&k),
        )
        .await
        .unwrap();
    assert!(!o.replayed);

    // Concurrent appends with one key: exactly one append happens.
    let k2 = key("create-2", b"body-2");
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (store, k2, barrier) = (store.clone(), k2.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                // Each racer targets its own new stream: only the key can stop duplicates.
                let s = StreamRef::new("test", StreamId::new());
                store
                    .append(
                        tenant,
                        &s,
                        ExpectedVersion::NoStream,
                        vec![ev("K", 2)],
                        &meta(),
                        Some(&k2),
                    )
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| !o.replayed).count(), 1);
    assert!(
        outcomes
            .windows(2)
            .all(|w| w[0].first_position == w[1].first_position)
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'K'")
        .fetch_one(&t.superuser)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn hash_chain_links_events_and_detects_tampering() {
    let t = TestDb::new().await;
    let store = t.store();
    let tenant = TenantId::new();
    let stream = StreamRef::new("test", StreamId::new());
    store
        .append(
            tenant,
            &stream,
            ExpectedVersion::NoStream,
            vec![ev("A", 1), ev("B", 2)],
            &meta(),
            None,
        )
        .await
        .unwrap();
    store
        .append(
            tenant,
            &stream,
            ExpectedVersion::Exact(2),
            vec![ev("C", 3)],
            &meta(),
            None,
        )
        .await
        .unwrap();
    append_n(&store, tenant, "Other", 3).await;
    let events = store
        .read_stream(tenant, stream.stream_id, 1)
        .await
        .unwrap();
    // Each hash links to the previous one.
    let mut prev = eventdesk_store::hash::GENESIS.to_vec();
    for e in &events {
        let digest = eventdesk_store::hash::event_digest(&eventdesk_store::hash::DigestInput {
            tenant_id: tenant.0,
            stream_type: &e.stream_type,
            stream_id: e.stream_id.0,
            event_id: e.event_id,
            event_type: &e.event_type,
            schema_version: e.stored_schema_version,
            data: &eventdesk_store::hash::canonical_json(&e.data),
            metadata: &eventdesk_store::hash::canonical_json(
                &serde_json::to_value(&e.metadata).unwrap(),
            ),
            recorded_at: e.recorded_at,
        });
        let h = eventdesk_store::hash::chain(&prev, e.version, &digest);
        assert_eq!(h.to_vec(), e.hash, "version {}", e.version);
        prev = e.hash.clone();
    }
    assert_eq!(
        verify_stream(&t.db.pool, tenant, stream.stream_id)
            .await
            .unwrap(),
        Ok(3)
    );
    assert_eq!(verify_all(&t.db.pool, Some(tenant)).await.unwrap(), Ok(6));

    // Tamper behind the store's back, as the superuser.
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
        .execute(&t.superuser)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE events SET data = jsonb_set(data, '{n}', '99') WHERE stream_id = $1 AND version = 2",
    )
    .bind(stream.stream_id.0)
    .execute(&t.superuser)
    .await
    .unwrap();
    sqlx::query("ALTER TABLE events ENABLE TRIGGER events_no_update_delete")
        .execute(&t.superuser)
        .await
        .unwrap();
    let bad = verify_stream(&t.db.pool, tenant, stream.stream_id)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(bad.fault, ChainFault::HashMismatch { version: 2 });
    assert_eq!(bad.event_id, events[1].event_id);
    let bad_all = verify_all(&t.db.pool, None).await.unwrap().unwrap_err();
    assert_eq!(bad_all.global_position, events[1].global_position);
}

#[tokio::test]
async fn old_schema_versions_are_upcast_on_read() {
    let t = TestDb::new().await;
    let mut upc = Upcasters::new();
    upc.register("Renamed", 2, |from, mut data| {
        assert_eq!(from, 1);
        let title = data.get("name").cloned().ok_or("missing name")?;
        data.as_object_mut()
            .ok_or("not an object")?
            .insert("title".into(), title);
        Ok(data)
    });
    let store = PgEventStore::new(t.db.pool.clone(), upc);
    let tenant = TenantId::new();
    let stream = StreamRef::new("test", StreamId::new());
    store
        .append(
            tenant,
            &stream,
            ExpectedVersion::NoStream,
            vec![eventdesk_store::NewEvent::new(
                "Renamed",
                1,
                json!({"name": "x"}),
            )],
            &meta(),
            None,
        )
        .await
        .unwrap();
    let e = &store
        .read_stream(tenant, stream.stream_id, 1)
        .await
        .unwrap()[0];
    assert_eq!((e.schema_version, e.stored_schema_version), (2, 1));
    assert_eq!(e.data["title"], "x");
    // read_all is bounded by the cluster-wide horizon (other tests may hold it back briefly).
    let mut sub = Subscription::new(
        Arc::new(store.clone()),
        store.waker(),
        Checkpoint::START,
        10,
    );
    let all = tokio::time::timeout(Duration::from_secs(10), sub.next_batch())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all[0].data["title"], "x");
    // The stored row is untouched, so the chain still verifies.
    assert_eq!(
        verify_stream(&t.db.pool, tenant, stream.stream_id)
            .await
            .unwrap(),
        Ok(1)
    );
}

#[tokio::test]
async fn another_nodes_append_wakes_listeners_through_notify() {
    let t = TestDb::new().await;
    let writer = t.store();
    let reader = t.node().await;
    let stop = StopToken::new();
    let bg_w = writer
        .waker()
        .spawn_background(writer.pool().clone(), stop.clone());
    let bg_r = reader
        .waker()
        .spawn_background(reader.pool().clone(), stop.clone());
    let mut rx = reader.waker().subscribe();
    // Let the listener connect, then drain its initial wake.
    tokio::time::sleep(Duration::from_millis(300)).await;
    rx.borrow_and_update();
    append_n(&writer, TenantId::new(), "A", 1).await;
    let woke = tokio::time::timeout(Duration::from_secs(3), rx.changed()).await;
    assert!(woke.is_ok(), "the other node was not notified");
    stop.cancel();
    let _ = tokio::join!(bg_w, bg_r);
}

/// The batched append of new streams (ADR 0023) writes what one `append_in(NoStream)` per
/// stream would: versions from 1, each stream's metadata, hash chains that verify, and
/// outcomes whose positions and transaction are those of the stored rows. A stream that
/// exists already fails the whole statement and leaves nothing behind.
#[tokio::test]
async fn batched_new_streams_write_verifiable_chains_and_conflict_as_a_whole() {
    let t = TestDb::new().await;
    let store = t.store();
    let tenant = TenantId::new();
    let streams = [StreamId::new(), StreamId::new(), StreamId::new()];
    let events = [
        vec![ev("A", 1), ev("B", 2)],
        vec![ev("A", 3)],
        vec![ev("A", 4), ev("B", 5), ev("C", 6)],
    ];
    let metas: Vec<_> = (0..3)
        .map(|i| {
            let mut m = meta();
            m.actor = format!("user:batch-{i}");
            m
        })
        .collect();
    let batch: Vec<eventdesk_store::NewStream<'_>> = (0..3)
        .map(|i| eventdesk_store::NewStream {
            stream_id: streams[i],
            events: &events[i],
            metadata: &metas[i],
        })
        .collect();
    let mut tx = t.db.pool.begin().await.unwrap();
    let outcomes = store
        .append_new_streams_in(&mut tx, tenant, "test", &batch)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(outcomes.len(), 3);
    for (i, out) in outcomes.iter().enumerate() {
        let stored = store.read_stream(tenant, streams[i], 1).await.unwrap();
        assert_eq!(stored.len(), events[i].len());
        assert_eq!(out.stream_id, Some(streams[i].0));
        assert_eq!(out.first_version, 1);
        assert_eq!(out.next_version, events[i].len() as i64);
        assert_eq!(out.count, events[i].len() as i64);
        assert!(!out.replayed);
        assert_eq!(
            out.first_position,
            stored.iter().map(|e| e.global_position).min()
        );
        assert_eq!(
            out.last_position,
            stored.iter().map(|e| e.global_position).max()
        );
        assert_eq!(
            out.checkpoint(),
            stored.iter().map(|e| e.checkpoint()).max(),
            "the outcome's checkpoint is its last stored event's"
        );
        for (j, e) in stored.iter().enumerate() {
            assert_eq!(e.version, j as i64 + 1);
            assert_eq!(e.event_id, events[i][j].event_id);
            assert_eq!(e.event_type, events[i][j].event_type);
            assert_eq!(e.data, events[i][j].data);
            assert_eq!(e.metadata.actor, metas[i].actor);
        }
        assert_eq!(
            verify_stream(&t.db.pool, tenant, streams[i]).await.unwrap(),
            Ok(events[i].len() as u64)
        );
    }
    assert_eq!(verify_all(&t.db.pool, Some(tenant)).await.unwrap(), Ok(6));
    // One transaction for the whole batch.
    let txids: std::collections::HashSet<_> =
        outcomes.iter().map(|o| o.transaction_id.clone()).collect();
    assert_eq!(txids.len(), 1, "{txids:?}");

    // A batch naming an existing stream fails as a whole: the new stream beside it is not
    // written either.
    let fresh = StreamId::new();
    let again = [ev("D", 7)];
    let conflicting = [
        eventdesk_store::NewStream {
            stream_id: fresh,
            events: &again,
            metadata: &metas[0],
        },
        eventdesk_store::NewStream {
            stream_id: streams[1],
            events: &again,
            metadata: &metas[0],
        },
    ];
    let mut tx = t.db.pool.begin().await.unwrap();
    let err = store
        .append_new_streams_in(&mut tx, tenant, "test", &conflicting)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    tx.rollback().await.unwrap();
    assert!(
        store
            .read_stream(tenant, fresh, 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .read_stream(tenant, streams[1], 1)
            .await
            .unwrap()
            .len(),
        1
    );
}
