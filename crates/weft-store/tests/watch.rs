//! RedbStore-only watch behaviour: a watcher that lags behind a compaction by its history
//! read chunks. Replay, live delivery and compaction run on redb and etcd alike in
//! crates/weft-store-etcd/tests/backends/watch.rs.

// Helpers outside #[test] fns unwrap too: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use weft_store::{KvStore, RedbStore, StoreError, WatchEvent, WatchStream};

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
