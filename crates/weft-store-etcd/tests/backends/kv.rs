//! CRUD, revisions, ranges and compare-and-swap.

use std::collections::HashSet;

use weft_store::{Compare, CompareOp, KvStore, StoreError, Txn, TxnOp, TxnOpResponse};

use crate::harness::TestStore;

both_backends!(
    put_get_delete_track_revisions_and_versions,
    range_and_delete_prefix,
    txn_compare_and_swap_success_and_failure,
    txn_ops_map_one_to_one,
    bad_input_is_an_error_not_a_panic,
    concurrent_cas_allocations_are_unique,
    state_survives_reopen,
);

async fn put_get_delete_track_revisions_and_versions(t: TestStore) {
    let store = &t.store;
    assert_eq!(store.current_revision().await.unwrap(), t.rev(0));
    assert_eq!(store.get(b"a").await.unwrap().kv, None);

    let first = store.put(b"a", b"1", None).await.unwrap();
    assert_eq!(first.revision, t.rev(1));
    assert_eq!(first.prev_kv, None);

    let second = store.put(b"a", b"2", None).await.unwrap();
    assert_eq!(second.revision, t.rev(2));
    assert_eq!(second.prev_kv.unwrap().value, b"1");

    store.put(b"b", b"x", None).await.unwrap();
    let got = store.get(b"a").await.unwrap();
    assert_eq!(got.revision, t.rev(3));
    let kv = got.kv.unwrap();
    assert_eq!(
        (
            kv.key.as_slice(),
            kv.value.as_slice(),
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.lease
        ),
        (
            b"a".as_slice(),
            b"2".as_slice(),
            t.rev(1),
            t.rev(2),
            2,
            None
        )
    );

    let deleted = store.delete(b"a").await.unwrap();
    assert_eq!(deleted.revision, t.rev(4));
    assert_eq!(deleted.deleted(), 1);
    assert_eq!(deleted.prev_kvs[0].value, b"2");
    assert_eq!(store.get(b"a").await.unwrap().kv, None);

    // Deleting a missing key commits nothing.
    let noop = store.delete(b"a").await.unwrap();
    assert_eq!((noop.revision, noop.deleted()), (t.rev(4), 0));

    // Re-creation starts a new life: fresh create_revision, version 1.
    store.put(b"a", b"3", None).await.unwrap();
    let kv = store.get(b"a").await.unwrap().kv.unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (t.rev(5), t.rev(5), 1)
    );
}

async fn range_and_delete_prefix(t: TestStore) {
    let store = &t.store;
    for key in ["apps/a", "apps/b", "apps/c", "appsx", "nodes/1"] {
        store.put(key.as_bytes(), b"v", None).await.unwrap();
    }
    let apps = store.range(b"apps/", None).await.unwrap();
    let keys: Vec<_> = apps.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [b"apps/a".as_slice(), b"apps/b", b"apps/c"]);
    assert!(!apps.more);
    assert_eq!(apps.revision, t.rev(5));

    let limited = store.range(b"apps/", Some(2)).await.unwrap();
    let keys: Vec<_> = limited.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [b"apps/a".as_slice(), b"apps/b"]);
    assert!(limited.more);
    assert!(!store.range(b"apps/", Some(3)).await.unwrap().more);
    assert_eq!(store.range(b"apps/", Some(0)).await.unwrap().kvs.len(), 3);
    assert_eq!(store.range(b"", None).await.unwrap().kvs.len(), 5);

    let deleted = store.delete_prefix(b"apps/").await.unwrap();
    assert_eq!(deleted.deleted(), 3);
    assert_eq!(
        deleted.revision,
        t.rev(6),
        "one revision for the whole prefix"
    );
    let left: Vec<_> = store.range(b"", None).await.unwrap().kvs;
    let left: Vec<_> = left.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(left, [b"appsx".as_slice(), b"nodes/1"]);
}

async fn txn_compare_and_swap_success_and_failure(t: TestStore) {
    let store = &t.store;
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

/// Every op kind of a txn, and the lease compare, in one branch: one revision, per-op results.
async fn txn_ops_map_one_to_one(t: TestStore) {
    let store = &t.store;
    let lease = store
        .lease_grant(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    store.put(b"r/1", b"a", None).await.unwrap();
    store.put(b"r/2", b"b", None).await.unwrap();
    store.put(b"r/3", b"c", None).await.unwrap();
    store.put(b"x", b"old", Some(lease.id)).await.unwrap();
    let before = store.current_revision().await.unwrap();

    let txn = Txn::new()
        .when([
            Compare::new(
                "x",
                CompareOp::Equal,
                weft_store::CompareTarget::Lease(lease.id),
            ),
            Compare::new("r/1", CompareOp::Equal, weft_store::CompareTarget::Lease(0)),
        ])
        .and_then([
            TxnOp::put("y", "new"),
            TxnOp::put_with_lease("x", "leased", lease.id),
            TxnOp::delete("r/1"),
            TxnOp::range("r/", Some(1)),
            TxnOp::delete_prefix("r/"),
            TxnOp::get("y"),
        ]);
    let done = store.txn(txn).await.unwrap();
    assert!(done.succeeded);
    assert_eq!(done.revision, before + 1);
    assert_eq!(done.responses.len(), 6);
    match &done.responses[..] {
        [
            TxnOpResponse::Put(put_y),
            TxnOpResponse::Put(put_x),
            TxnOpResponse::Delete(del_one),
            TxnOpResponse::Range(range),
            TxnOpResponse::Delete(del_prefix),
            TxnOpResponse::Get(get_y),
        ] => {
            assert_eq!(put_y.prev_kv, None);
            assert_eq!(put_x.prev_kv.as_ref().unwrap().value, b"old");
            assert_eq!(put_x.revision, before + 1);
            assert_eq!(del_one.prev_kvs.len(), 1);
            // Reads see the branch's earlier writes: r/1 is gone, r/2 is first.
            assert_eq!(range.kvs.len(), 1);
            assert_eq!(range.kvs[0].key, b"r/2");
            assert!(range.more);
            let deleted: Vec<_> = del_prefix
                .prev_kvs
                .iter()
                .map(|kv| kv.key.clone())
                .collect();
            assert_eq!(deleted, [b"r/2".to_vec(), b"r/3".to_vec()]);
            let y = get_y.kv.as_ref().unwrap();
            assert_eq!(
                (y.value.as_slice(), y.mod_revision),
                (b"new".as_slice(), before + 1)
            );
        }
        other => panic!("unexpected responses {other:?}"),
    }
    let x = store.get(b"x").await.unwrap().kv.unwrap();
    assert_eq!((x.lease, x.version), (Some(lease.id), 2));
    assert!(store.range(b"r/", None).await.unwrap().kvs.is_empty());

    // A guard on another lease fails; the failure branch runs.
    let other = Txn::new()
        .when([Compare::new(
            "x",
            CompareOp::Equal,
            weft_store::CompareTarget::Lease(lease.id + 1),
        )])
        .or_else([TxnOp::get("missing")]);
    let failed = store.txn(other).await.unwrap();
    assert!(!failed.succeeded);
    assert_eq!(failed.revision, before + 1);
    assert!(matches!(&failed.responses[..], [TxnOpResponse::Get(g)] if g.kv.is_none()));
}

async fn bad_input_is_an_error_not_a_panic(t: TestStore) {
    let store = &t.store;
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
        store.compact(t.rev(10)).await,
        Err(StoreError::FutureRevision { .. })
    ));
    // The store still works after rejected requests.
    assert_eq!(
        store.put(b"k", b"v", None).await.unwrap().revision,
        t.rev(1)
    );
}

/// 8 tasks x 25 optimistic allocations of a shared counter: every value handed out once.
async fn concurrent_cas_allocations_are_unique(t: TestStore) {
    const TASKS: usize = 8;
    const ALLOCATIONS: usize = 25;
    let store = &t.store;
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

async fn state_survives_reopen(mut t: TestStore) {
    t.store.put(b"a", b"1", None).await.unwrap();
    t.store.put(b"a", b"2", None).await.unwrap();
    t.reopen().await;
    let kv = t.store.get(b"a").await.unwrap().kv.unwrap();
    assert_eq!((kv.value.as_slice(), kv.version), (b"2".as_slice(), 2));
    assert_eq!(
        t.store.put(b"b", b"1", None).await.unwrap().revision,
        t.rev(3)
    );
}
