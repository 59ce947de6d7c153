//! CRUD, revisions, ranges and compare-and-swap against the real on-disk store.

// Helpers outside #[test] fns unwrap too: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use weft_store::{Compare, CompareOp, KvStore, RedbStore, StoreError, Txn, TxnOp, TxnOpResponse};

fn open() -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    (dir, store)
}

#[tokio::test]
async fn put_get_delete_track_revisions_and_versions() {
    let (_dir, store) = open();
    assert_eq!(store.current_revision().await.unwrap(), 0);
    assert_eq!(store.get(b"a").await.unwrap().kv, None);

    let first = store.put(b"a", b"1", None).await.unwrap();
    assert_eq!(first.revision, 1);
    assert_eq!(first.prev_kv, None);

    let second = store.put(b"a", b"2", None).await.unwrap();
    assert_eq!(second.revision, 2);
    assert_eq!(second.prev_kv.unwrap().value, b"1");

    store.put(b"b", b"x", None).await.unwrap();
    let got = store.get(b"a").await.unwrap();
    assert_eq!(got.revision, 3);
    let kv = got.kv.unwrap();
    assert_eq!(
        (
            kv.value.as_slice(),
            kv.create_revision,
            kv.mod_revision,
            kv.version
        ),
        (b"2".as_slice(), 1, 2, 2)
    );

    let deleted = store.delete(b"a").await.unwrap();
    assert_eq!(deleted.revision, 4);
    assert_eq!(deleted.deleted(), 1);
    assert_eq!(store.get(b"a").await.unwrap().kv, None);

    // Deleting a missing key commits nothing.
    let noop = store.delete(b"a").await.unwrap();
    assert_eq!((noop.revision, noop.deleted()), (4, 0));

    // Re-creation starts a new life: fresh create_revision, version 1.
    store.put(b"a", b"3", None).await.unwrap();
    let kv = store.get(b"a").await.unwrap().kv.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[tokio::test]
async fn range_and_delete_prefix() {
    let (_dir, store) = open();
    for key in ["apps/a", "apps/b", "apps/c", "appsx", "nodes/1"] {
        store.put(key.as_bytes(), b"v", None).await.unwrap();
    }
    let apps = store.range(b"apps/", None).await.unwrap();
    let keys: Vec<_> = apps.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [b"apps/a".as_slice(), b"apps/b", b"apps/c"]);
    assert!(!apps.more);
    assert_eq!(apps.revision, 5);

    let limited = store.range(b"apps/", Some(2)).await.unwrap();
    assert_eq!(limited.kvs.len(), 2);
    assert!(limited.more);
    assert_eq!(store.range(b"", None).await.unwrap().kvs.len(), 5);

    let deleted = store.delete_prefix(b"apps/").await.unwrap();
    assert_eq!(deleted.deleted(), 3);
    assert_eq!(deleted.revision, 6, "one revision for the whole prefix");
    let left: Vec<_> = store.range(b"", None).await.unwrap().kvs;
    let left: Vec<_> = left.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(left, [b"appsx".as_slice(), b"nodes/1"]);
}

#[tokio::test]
async fn txn_compare_and_swap_success_and_failure() {
    let (_dir, store) = open();
    let created = store.put(b"lock", b"free", None).await.unwrap().revision;

    let swap = Txn::new()
        .when([Compare::mod_revision("lock", CompareOp::Equal, created)])
        .and_then([TxnOp::put("lock", "taken"), TxnOp::get("lock")])
        .or_else([TxnOp::get("lock")]);
    let won = store.txn(swap.clone()).await.unwrap();
    assert!(won.succeeded);
    assert_eq!(won.revision, created + 1);
    match &won.responses[1] {
        TxnOpResponse::Get(get) => assert_eq!(get.kv.as_ref().unwrap().value, b"taken"),
        other => panic!("unexpected {other:?}"),
    }

    // Same guard again: mod_revision moved on, so the failure branch runs and writes nothing.
    let lost = store.txn(swap).await.unwrap();
    assert!(!lost.succeeded);
    assert_eq!(lost.revision, created + 1);
    match &lost.responses[0] {
        TxnOpResponse::Get(get) => assert_eq!(get.kv.as_ref().unwrap().value, b"taken"),
        other => panic!("unexpected {other:?}"),
    }

    // Create-if-absent, value compares and etcd's missing-key rules.
    let create = Txn::new()
        .when([Compare::absent("new")])
        .and_then([TxnOp::put("new", "1")]);
    assert!(store.txn(create.clone()).await.unwrap().succeeded);
    assert!(!store.txn(create).await.unwrap().succeeded);
    let value_guard = Txn::new().when([Compare::value("missing", CompareOp::NotEqual, "x")]);
    assert!(!store.txn(value_guard).await.unwrap().succeeded);
    let ordered = Txn::new().when([
        Compare::version("lock", CompareOp::Greater, 1),
        Compare::create_revision("lock", CompareOp::Less, created + 1),
        Compare::value("lock", CompareOp::Equal, "taken"),
    ]);
    assert!(store.txn(ordered).await.unwrap().succeeded);

    // A key may be written once per txn; a rejected txn leaves no trace.
    let before = store.current_revision().await.unwrap();
    let duplicate = Txn::new().and_then([TxnOp::put("d", "1"), TxnOp::put("d", "2")]);
    assert!(matches!(
        store.txn(duplicate).await,
        Err(StoreError::InvalidArgument(_))
    ));
    assert_eq!(store.current_revision().await.unwrap(), before);
    assert_eq!(store.get(b"d").await.unwrap().kv, None);
}

#[tokio::test]
async fn bad_input_is_an_error_not_a_panic() {
    let (_dir, store) = open();
    assert!(matches!(
        store.put(b"", b"v", None).await,
        Err(StoreError::InvalidArgument(_))
    ));
    let huge_key = vec![b'k'; weft_store::MAX_KEY_LEN + 1];
    assert!(matches!(
        store.put(&huge_key, b"v", None).await,
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.put(b"k", b"v", Some(42)).await,
        Err(StoreError::LeaseNotFound(42))
    ));
    assert!(matches!(
        store.compact(10).await,
        Err(StoreError::FutureRevision { .. })
    ));
    // The store still works after rejected requests.
    assert_eq!(store.put(b"k", b"v", None).await.unwrap().revision, 1);
}

/// 8 tasks x 25 optimistic allocations of a shared counter: every value handed out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cas_allocations_are_unique() {
    const TASKS: usize = 8;
    const ALLOCATIONS: usize = 25;
    let (_dir, store) = open();
    store.put(b"ipam/next", b"0", None).await.unwrap();

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut conflicts = 0;
            while mine.len() < ALLOCATIONS {
                let current = store.get(b"ipam/next").await.unwrap().kv.unwrap();
                let value: u64 = std::str::from_utf8(&current.value)
                    .unwrap()
                    .parse()
                    .unwrap();
                let claim = Txn::new()
                    .when([Compare::mod_revision(
                        "ipam/next",
                        CompareOp::Equal,
                        current.mod_revision,
                    )])
                    .and_then([TxnOp::put("ipam/next", (value + 1).to_string())]);
                if store.txn(claim).await.unwrap().succeeded {
                    mine.push(value);
                } else {
                    conflicts += 1;
                }
            }
            (mine, conflicts)
        }));
    }
    let mut all = HashSet::new();
    let mut conflicts = 0;
    for task in tasks {
        let (mine, task_conflicts) = task.await.unwrap();
        conflicts += task_conflicts;
        for value in mine {
            assert!(all.insert(value), "value {value} allocated twice");
        }
    }
    assert_eq!(all.len(), TASKS * ALLOCATIONS);
    assert_eq!(all, (0..(TASKS * ALLOCATIONS) as u64).collect());
    let counter = store.get(b"ipam/next").await.unwrap().kv.unwrap();
    assert_eq!(counter.value, b"200");
    eprintln!("CAS conflicts retried: {conflicts}");
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        store.put(b"a", b"1", None).await.unwrap();
        store.put(b"a", b"2", None).await.unwrap();
    }
    let store = RedbStore::open(dir.path()).unwrap();
    let kv = store.get(b"a").await.unwrap().kv.unwrap();
    assert_eq!((kv.value.as_slice(), kv.version), (b"2".as_slice(), 2));
    assert_eq!(store.put(b"b", b"1", None).await.unwrap().revision, 3);
}

#[tokio::test]
async fn memory_store_has_the_same_semantics() {
    let store = weft_store::memory::open().unwrap();
    assert_eq!(store.put(b"a", b"1", None).await.unwrap().revision, 1);
    let swap = Txn::new()
        .when([Compare::version("a", CompareOp::Equal, 1)])
        .and_then([TxnOp::delete("a")]);
    assert!(store.txn(swap).await.unwrap().succeeded);
    assert_eq!(store.get(b"a").await.unwrap().kv, None);
}
