//! Leases with an injected clock (RedbStore only): expiry, keep-alive, persistence.
//! Lease behaviour on real time (grant, keys, revoke, expiry) runs on redb and etcd alike in
//! crates/weft-store-etcd/tests/backends/lease.rs.

use std::sync::Arc;
use std::time::Duration;

use weft_store::{KvStore, ManualClock, RedbStore, StoreError, StoreOptions};

fn options(clock: &ManualClock) -> StoreOptions {
    StoreOptions {
        clock: Arc::new(clock.clone()),
        // Expiry runs only when the test asks, so the test is deterministic.
        lease_check_interval: None,
        ..StoreOptions::default()
    }
}

const TTL: Duration = Duration::from_secs(10);

#[tokio::test]
async fn expired_lease_deletes_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = RedbStore::open_with(dir.path(), options(&clock)).unwrap();

    let lease = store.lease_grant(TTL).await.unwrap();
    store.put(b"nodes/a", b"up", Some(lease.id)).await.unwrap();
    store.put(b"nodes/b", b"up", Some(lease.id)).await.unwrap();
    store.put(b"config", b"kept", None).await.unwrap();
    let ttl = store.lease_time_to_live(lease.id).await.unwrap().unwrap();
    assert_eq!(ttl.keys, [b"nodes/a".to_vec(), b"nodes/b".to_vec()]);
    assert_eq!(
        store.get(b"nodes/a").await.unwrap().kv.unwrap().lease,
        Some(lease.id)
    );

    // Keep-alives hold it past its first deadline.
    clock.advance(Duration::from_secs(8));
    assert_eq!(store.lease_keep_alive(lease.id).await.unwrap(), TTL);
    clock.advance(Duration::from_secs(8));
    assert!(store.expire_leases().await.unwrap().is_empty());
    assert!(store.get(b"nodes/a").await.unwrap().kv.is_some());

    let before = store.current_revision().await.unwrap();
    clock.advance(Duration::from_secs(3));
    assert_eq!(store.expire_leases().await.unwrap(), [lease.id]);
    assert_eq!(store.get(b"nodes/a").await.unwrap().kv, None);
    assert_eq!(store.get(b"nodes/b").await.unwrap().kv, None);
    assert!(store.get(b"config").await.unwrap().kv.is_some());
    assert_eq!(
        store.current_revision().await.unwrap(),
        before + 1,
        "all of a lease's keys go in one revision"
    );
    assert!(matches!(
        store.lease_keep_alive(lease.id).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    assert_eq!(store.lease_time_to_live(lease.id).await.unwrap(), None);
    assert!(matches!(
        store.put(b"nodes/a", b"up", Some(lease.id)).await,
        Err(StoreError::LeaseNotFound(_))
    ));
}

#[tokio::test]
async fn leases_survive_restart_with_a_fresh_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let lease = {
        let store = RedbStore::open_with(dir.path(), options(&clock)).unwrap();
        let lease = store.lease_grant(TTL).await.unwrap();
        store.put(b"a", b"1", Some(lease.id)).await.unwrap();
        lease
    };
    // Down for most of the TTL: the countdown restarts at open, as in etcd.
    clock.advance(Duration::from_secs(9));
    let store = RedbStore::open_with(dir.path(), options(&clock)).unwrap();
    clock.advance(Duration::from_secs(9));
    assert!(store.expire_leases().await.unwrap().is_empty());
    let ttl = store.lease_time_to_live(lease.id).await.unwrap().unwrap();
    assert_eq!(ttl.remaining, Duration::from_secs(1));
    assert_eq!(ttl.keys, [b"a".to_vec()]);

    clock.advance(Duration::from_secs(1));
    assert_eq!(store.expire_leases().await.unwrap(), [lease.id]);
    assert_eq!(store.get(b"a").await.unwrap().kv, None);
    // Ids are not reused after a restart.
    assert!(store.lease_grant(TTL).await.unwrap().id > lease.id);
}

#[tokio::test]
async fn background_expiry_runs_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = RedbStore::open_with(
        dir.path(),
        StoreOptions {
            lease_check_interval: Some(Duration::from_millis(20)),
            ..options(&clock)
        },
    )
    .unwrap();
    let lease = store.lease_grant(TTL).await.unwrap();
    store.put(b"a", b"1", Some(lease.id)).await.unwrap();
    let mut watch = store.watch(b"a", None).await.unwrap();
    clock.advance(TTL);
    let event = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("expiry within 5s")
        .unwrap()
        .unwrap();
    assert_eq!(event.kind, weft_store::EventKind::Delete);
}
