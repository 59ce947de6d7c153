//! Leases on real time: grant, keys, keep-alive, revoke, expiry. (Expiry with an injected
//! clock is RedbStore-only: crates/weft-store/tests/lease.rs.)

use std::time::{Duration, Instant};

use weft_store::{EventKind, KvStore, StoreError};

use crate::harness::{TestStore, next};

both_backends!(
    grant_lists_keys_and_keep_alive_restarts_the_countdown,
    revoke_deletes_keys_and_detached_keys_survive,
    lease_expires_by_itself_with_a_real_ttl,
);

const TTL: Duration = Duration::from_secs(10);

async fn grant_lists_keys_and_keep_alive_restarts_the_countdown(t: TestStore) {
    let store = &t.store;
    let lease = store.lease_grant(TTL).await.unwrap();
    assert_ne!(lease.id, 0);
    assert_eq!(lease.ttl, TTL);
    store.put(b"nodes/b", b"up", Some(lease.id)).await.unwrap();
    store.put(b"nodes/a", b"up", Some(lease.id)).await.unwrap();
    store.put(b"config", b"kept", None).await.unwrap();
    let ttl = store.lease_time_to_live(lease.id).await.unwrap().unwrap();
    assert_eq!(ttl.id, lease.id);
    assert_eq!(ttl.granted_ttl, TTL);
    assert!(ttl.remaining <= TTL && ttl.remaining >= TTL - Duration::from_secs(2));
    assert_eq!(
        ttl.keys,
        [b"nodes/a".to_vec(), b"nodes/b".to_vec()],
        "key order"
    );
    assert_eq!(
        store.get(b"nodes/a").await.unwrap().kv.unwrap().lease,
        Some(lease.id)
    );
    assert_eq!(store.lease_keep_alive(lease.id).await.unwrap(), TTL);
    // A second lease gets another id; unknown ids are reported as such.
    let other = store.lease_grant(TTL).await.unwrap();
    assert_ne!(other.id, lease.id);
    let unknown = lease.id.max(other.id) + 1000;
    assert!(matches!(
        store.lease_keep_alive(unknown).await,
        Err(StoreError::LeaseNotFound(id)) if id == unknown
    ));
    assert_eq!(store.lease_time_to_live(unknown).await.unwrap(), None);
    assert!(matches!(
        store.lease_grant(Duration::ZERO).await,
        Err(StoreError::InvalidArgument(_))
    ));
}

async fn revoke_deletes_keys_and_detached_keys_survive(t: TestStore) {
    let store = &t.store;
    let lease = store.lease_grant(TTL).await.unwrap();
    store.put(b"a", b"1", Some(lease.id)).await.unwrap();
    store.put(b"b", b"1", Some(lease.id)).await.unwrap();
    // Re-putting without a lease detaches the key.
    store.put(b"b", b"2", None).await.unwrap();

    let revision = store.lease_revoke(lease.id).await.unwrap();
    assert_eq!(
        revision,
        t.rev(4),
        "the revoke deletes its key in one revision"
    );
    assert_eq!(store.current_revision().await.unwrap(), revision);
    assert_eq!(store.get(b"a").await.unwrap().kv, None);
    assert_eq!(store.get(b"b").await.unwrap().kv.unwrap().value, b"2");
    assert!(matches!(
        store.lease_revoke(lease.id).await,
        Err(StoreError::LeaseNotFound(id)) if id == lease.id
    ));
}

/// A 1 s lease (etcd's shortest with the test cluster's 500 ms election timeout): kept alive
/// it outlives its TTL; left alone it expires without being asked, deleting all its keys in
/// one revision.
async fn lease_expires_by_itself_with_a_real_ttl(t: TestStore) {
    let store = &t.store;
    // etcd rounds up to whole seconds; redb keeps the exact TTL.
    let odd = store
        .lease_grant(Duration::from_millis(1500))
        .await
        .unwrap();
    let expected = if t.is_etcd() {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(1500)
    };
    assert_eq!(odd.ttl, expected);
    store.lease_revoke(odd.id).await.unwrap();

    let lease = store.lease_grant(Duration::from_secs(1)).await.unwrap();
    assert_eq!(lease.ttl, Duration::from_secs(1));
    store.put(b"nodes/a", b"up", Some(lease.id)).await.unwrap();
    store.put(b"nodes/b", b"up", Some(lease.id)).await.unwrap();
    store.put(b"config", b"kept", None).await.unwrap();
    let mut watch = store.watch(b"nodes/", None).await.unwrap();

    // Kept alive for 2.5 TTLs: still there.
    let kept_until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < kept_until {
        assert_eq!(
            store.lease_keep_alive(lease.id).await.unwrap(),
            Duration::from_secs(1)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(store.get(b"nodes/a").await.unwrap().kv.is_some());
    assert!(
        watch.try_next().is_none(),
        "nothing expired while kept alive"
    );

    // Left alone: gone within a few seconds, both keys at one revision.
    let first = next(&mut watch).await;
    let second = next(&mut watch).await;
    assert_eq!(
        (first.kind, second.kind),
        (EventKind::Delete, EventKind::Delete)
    );
    assert_eq!(
        (first.kv.key.as_slice(), second.kv.key.as_slice()),
        (b"nodes/a".as_slice(), b"nodes/b".as_slice())
    );
    assert_eq!(first.revision(), second.revision());
    assert_eq!(store.current_revision().await.unwrap(), first.revision());
    assert!(store.get(b"config").await.unwrap().kv.is_some());
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
