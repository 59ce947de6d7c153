//! Watches: history replay, live delivery, compaction.

use weft_store::{EventKind, KvStore, StoreError};

use crate::harness::{TestStore, next, summary};

both_backends!(
    watch_replays_history_in_order_then_follows_live,
    watch_without_start_sees_only_new_events_without_gaps,
    watch_from_a_compacted_revision_fails,
    history_and_compaction_survive_reopen,
);

async fn watch_replays_history_in_order_then_follows_live(t: TestStore) {
    let store = &t.store;
    store.put(b"apps/a", b"1", None).await.unwrap(); // 1
    store.put(b"nodes/x", b"1", None).await.unwrap(); // 2, other prefix
    store.put(b"apps/b", b"1", None).await.unwrap(); // 3
    store.put(b"apps/a", b"2", None).await.unwrap(); // 4
    store.delete(b"apps/b").await.unwrap(); // 5

    let mut watch = store.watch(b"apps/", Some(t.rev(1))).await.unwrap();
    let replayed = [
        next(&mut watch).await,
        next(&mut watch).await,
        next(&mut watch).await,
        next(&mut watch).await,
    ];
    let summaries: Vec<_> = replayed.iter().map(summary).collect();
    assert_eq!(
        summaries,
        [
            (EventKind::Put, "apps/a".into(), t.rev(1)),
            (EventKind::Put, "apps/b".into(), t.rev(3)),
            (EventKind::Put, "apps/a".into(), t.rev(4)),
            (EventKind::Delete, "apps/b".into(), t.rev(5)),
        ]
    );
    // A delete event is etcd's tombstone: empty value, version 0, the deleting revision.
    let tombstone = &replayed[3].kv;
    assert_eq!(
        (
            tombstone.value.as_slice(),
            tombstone.version,
            tombstone.create_revision
        ),
        (b"".as_slice(), 0, 0)
    );
    assert_eq!(replayed[3].prev_kv.as_ref().unwrap().value, b"1");

    // Live: a txn-free delete_prefix yields one event per key, all at one revision.
    store.put(b"apps/c", b"1", None).await.unwrap(); // 6
    let live = next(&mut watch).await;
    assert_eq!(summary(&live), (EventKind::Put, "apps/c".into(), t.rev(6)));
    assert_eq!(live.kv.value, b"1");
    store.put(b"apps/a", b"3", None).await.unwrap(); // 7
    let update = next(&mut watch).await;
    assert_eq!(update.prev_kv.as_ref().unwrap().value, b"2");
    assert_eq!(update.kv.version, 3);
    store.delete_prefix(b"apps/").await.unwrap(); // 8
    let first = next(&mut watch).await;
    let second = next(&mut watch).await;
    assert_eq!(
        summary(&first),
        (EventKind::Delete, "apps/a".into(), t.rev(8))
    );
    assert_eq!(
        summary(&second),
        (EventKind::Delete, "apps/c".into(), t.rev(8))
    );
    assert_eq!(first.prev_kv.unwrap().value, b"3");
    // Give a stray duplicate time to arrive before checking there is none.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(watch.try_next().is_none(), "no duplicates");
}

async fn watch_without_start_sees_only_new_events_without_gaps(t: TestStore) {
    let store = &t.store;
    store.put(b"k/old", b"1", None).await.unwrap();
    let mut watch = store.watch(b"k/", None).await.unwrap();

    // A burst from a concurrent writer must arrive complete and in order.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                store
                    .put(format!("k/{i:03}").as_bytes(), b"v", None)
                    .await
                    .unwrap();
            }
        })
    };
    let mut last_revision = t.rev(1);
    for i in 0..100 {
        let event = next(&mut watch).await;
        assert_eq!(event.kv.key, format!("k/{i:03}").as_bytes());
        assert_eq!(event.revision(), last_revision + 1, "gap or duplicate");
        last_revision = event.revision();
    }
    writer.await.unwrap();
}

async fn watch_from_a_compacted_revision_fails(t: TestStore) {
    let store = &t.store;
    for i in 0..10 {
        store
            .put(b"k", i.to_string().as_bytes(), None)
            .await
            .unwrap();
    }
    store.compact(t.rev(6)).await.unwrap();

    match store.watch(b"k", Some(t.rev(3))).await {
        Err(StoreError::Compacted {
            requested,
            compact_revision,
        }) => assert_eq!((requested, compact_revision), (t.rev(3), t.rev(6))),
        other => panic!("expected Compacted, got {other:?}"),
    }
    // From the compaction point on, history is still there.
    let mut watch = store.watch(b"k", Some(t.rev(6))).await.unwrap();
    assert_eq!(next(&mut watch).await.revision(), t.rev(6));
    match store.compact(t.rev(5)).await {
        Err(StoreError::Compacted {
            requested,
            compact_revision,
        }) => assert_eq!((requested, compact_revision), (t.rev(5), t.rev(6))),
        other => panic!("expected Compacted, got {other:?}"),
    }
}

async fn history_and_compaction_survive_reopen(mut t: TestStore) {
    for i in 0..5 {
        t.store
            .put(b"k", i.to_string().as_bytes(), None)
            .await
            .unwrap();
    }
    t.store.compact(t.rev(3)).await.unwrap();
    t.reopen().await;
    assert!(matches!(
        t.store.watch(b"", Some(t.rev(2))).await,
        Err(StoreError::Compacted { .. })
    ));
    let mut watch = t.store.watch(b"", Some(t.rev(3))).await.unwrap();
    let revisions = [
        next(&mut watch).await.revision(),
        next(&mut watch).await.revision(),
        next(&mut watch).await.revision(),
    ];
    assert_eq!(revisions, [t.rev(3), t.rev(4), t.rev(5)]);
}
