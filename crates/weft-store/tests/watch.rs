//! Watches: history replay, live delivery, compaction.

// Helpers outside #[test] fns unwrap too: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use weft_store::{EventKind, KvStore, RedbStore, StoreError, WatchEvent, WatchStream};

fn open() -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    (dir, store)
}

async fn next(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("watch event within 5s")
        .expect("watch still open")
        .expect("watch event, not an error")
}

fn summary(event: &WatchEvent) -> (EventKind, String, i64) {
    (
        event.kind,
        String::from_utf8_lossy(&event.kv.key).into_owned(),
        event.revision(),
    )
}

#[tokio::test]
async fn watch_replays_history_in_order_then_follows_live() {
    let (_dir, store) = open();
    store.put(b"apps/a", b"1", None).await.unwrap(); // 1
    store.put(b"nodes/x", b"1", None).await.unwrap(); // 2, other prefix
    store.put(b"apps/b", b"1", None).await.unwrap(); // 3
    store.put(b"apps/a", b"2", None).await.unwrap(); // 4
    store.delete(b"apps/b").await.unwrap(); // 5

    let mut watch = store.watch(b"apps/", Some(1)).await.unwrap();
    let replayed: Vec<_> = [
        next(&mut watch).await,
        next(&mut watch).await,
        next(&mut watch).await,
        next(&mut watch).await,
    ]
    .to_vec();
    let replayed: Vec<_> = replayed.iter().map(summary).collect();
    assert_eq!(
        replayed,
        [
            (EventKind::Put, "apps/a".into(), 1),
            (EventKind::Put, "apps/b".into(), 3),
            (EventKind::Put, "apps/a".into(), 4),
            (EventKind::Delete, "apps/b".into(), 5),
        ]
    );

    // Live: a txn-free delete_prefix yields one event per key, all at one revision.
    store.put(b"apps/c", b"1", None).await.unwrap(); // 6
    let live = next(&mut watch).await;
    assert_eq!(summary(&live), (EventKind::Put, "apps/c".into(), 6));
    assert_eq!(live.kv.value, b"1");
    store.put(b"apps/a", b"3", None).await.unwrap(); // 7
    let update = next(&mut watch).await;
    assert_eq!(update.prev_kv.as_ref().unwrap().value, b"2");
    assert_eq!(update.kv.version, 3);
    store.delete_prefix(b"apps/").await.unwrap(); // 8
    let first = next(&mut watch).await;
    let second = next(&mut watch).await;
    assert_eq!(summary(&first), (EventKind::Delete, "apps/a".into(), 8));
    assert_eq!(summary(&second), (EventKind::Delete, "apps/c".into(), 8));
    assert_eq!(first.prev_kv.unwrap().value, b"3");
    assert!(watch.try_next().is_none(), "no duplicates");
}

#[tokio::test]
async fn watch_without_start_sees_only_new_events_without_gaps() {
    let (_dir, store) = open();
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
    let mut last_revision = 1;
    for i in 0..100 {
        let event = next(&mut watch).await;
        assert_eq!(event.kv.key, format!("k/{i:03}").as_bytes());
        assert_eq!(event.revision(), last_revision + 1, "gap or duplicate");
        last_revision = event.revision();
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn watch_from_a_compacted_revision_fails() {
    let (_dir, store) = open();
    for i in 0..10 {
        store
            .put(b"k", i.to_string().as_bytes(), None)
            .await
            .unwrap();
    }
    store.compact(6).await.unwrap();

    match store.watch(b"k", Some(3)).await {
        Err(StoreError::Compacted {
            requested,
            compact_revision,
        }) => assert_eq!((requested, compact_revision), (3, 6)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    // From the compaction point on, history is still there.
    let mut watch = store.watch(b"k", Some(6)).await.unwrap();
    assert_eq!(next(&mut watch).await.revision(), 6);
    assert!(matches!(
        store.compact(5).await,
        Err(StoreError::Compacted { .. })
    ));
}

#[tokio::test]
async fn history_and_compaction_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        for i in 0..5 {
            store
                .put(b"k", i.to_string().as_bytes(), None)
                .await
                .unwrap();
        }
        store.compact(3).await.unwrap();
    }
    let store = RedbStore::open(dir.path()).unwrap();
    assert!(matches!(
        store.watch(b"", Some(2)).await,
        Err(StoreError::Compacted { .. })
    ));
    let mut watch = store.watch(b"", Some(3)).await.unwrap();
    let revisions = [
        next(&mut watch).await.revision(),
        next(&mut watch).await.revision(),
        next(&mut watch).await.revision(),
    ];
    assert_eq!(revisions, [3, 4, 5]);
}

#[tokio::test]
async fn lagging_watch_ends_with_compacted_error() {
    let (_dir, store) = open();
    for i in 0..600 {
        store
            .put(b"k", i.to_string().as_bytes(), None)
            .await
            .unwrap();
    }
    let mut watch = store.watch(b"k", Some(1)).await.unwrap();
    // The first event proves the watcher read its first history chunk (revisions 1..=512)
    // before the compaction; it is still that far behind when the history goes away.
    assert_eq!(next(&mut watch).await.revision(), 1);
    store.compact(600).await.unwrap();
    for expected in 2..=512 {
        assert_eq!(next(&mut watch).await.revision(), expected);
    }
    let last = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap();
    match last {
        Some(Err(StoreError::Compacted {
            requested,
            compact_revision,
        })) => assert_eq!((requested, compact_revision), (513, 600)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(watch.next().await.is_none(), "an error ends the watch");
}
