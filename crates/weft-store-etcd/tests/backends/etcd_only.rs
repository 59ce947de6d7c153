//! What only the etcd backend has: connection failures, key prefixes, and watches that
//! survive their member going away (on a real 3-member cluster).

use std::time::{Duration, Instant};

use weft_store::{Compare, KvStore, StoreError, Txn, TxnOp, TxnOpResponse};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test};
use weft_store_etcd::{EtcdOptions, EtcdStore, OpenOptions, StoreBackend};

use crate::harness::{connect, next};

/// Needs no etcd: nothing listens on the port.
#[tokio::test]
async fn unreachable_etcd_fails_with_a_clear_error_naming_the_endpoints() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let backend = StoreBackend::etcd([endpoint.clone()]);
    let options = OpenOptions::default().with_connect_timeout(Duration::from_millis(1500));
    let err = weft_store_etcd::open(&backend, std::path::Path::new("/nonexistent"), options)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    match &err {
        StoreError::Unavailable { endpoints, .. } => assert_eq!(endpoints, &vec![endpoint.clone()]),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&endpoint), "{message}");
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(10),
        "retried for the connect timeout, then gave up: {elapsed:?}"
    );
    // No endpoints at all is the caller's mistake, not an outage.
    let none = EtcdStore::connect(&[], Vec::new(), EtcdOptions::default()).await;
    assert!(matches!(none, Err(StoreError::InvalidArgument(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_keep_installations_apart_on_one_cluster() {
    if !etcd_available_for_test("prefixes_keep_installations_apart_on_one_cluster") {
        return;
    }
    let cluster = EtcdCluster::start(ClusterOptions::single()).await.unwrap();
    let options = EtcdOptions::default();
    let blue = EtcdStore::connect(&cluster.endpoints(), b"blue/".to_vec(), options.clone())
        .await
        .unwrap();
    let green = EtcdStore::connect(&cluster.endpoints(), b"green/".to_vec(), options)
        .await
        .unwrap();
    let raw = connect(&cluster.endpoints()).await;
    let mut blue_watch = blue.watch(b"", None).await.unwrap();

    let lease = blue.lease_grant(Duration::from_secs(30)).await.unwrap();
    blue.put(b"a", b"1", Some(lease.id)).await.unwrap();
    green.put(b"a", b"2", None).await.unwrap();
    blue.put(b"b", b"3", None).await.unwrap();

    let kv = blue.get(b"a").await.unwrap().kv.unwrap();
    assert_eq!(
        (kv.key.as_slice(), kv.value.as_slice()),
        (b"a".as_slice(), b"1".as_slice())
    );
    let keys: Vec<_> = blue
        .range(b"", None)
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, [b"a".to_vec(), b"b".to_vec()]);
    let raw_keys: Vec<_> = raw
        .range(b"", None)
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(
        raw_keys,
        [b"blue/a".to_vec(), b"blue/b".to_vec(), b"green/a".to_vec()]
    );
    let ttl = blue.lease_time_to_live(lease.id).await.unwrap().unwrap();
    assert_eq!(ttl.keys, [b"a".to_vec()]);

    // Blue's watch sees blue's writes only, under blue's key names.
    let first = next(&mut blue_watch).await;
    let second = next(&mut blue_watch).await;
    assert_eq!(
        (first.kv.key.as_slice(), second.kv.key.as_slice()),
        (b"a".as_slice(), b"b".as_slice())
    );
    // Revisions are the cluster's: green's write in between moved them too.
    assert_eq!(second.revision(), first.revision() + 2);

    assert_eq!(blue.delete_prefix(b"").await.unwrap().deleted(), 2);
    assert_eq!(green.range(b"", None).await.unwrap().kvs.len(), 1);
}

/// A watch connected to one member of three: the member is killed while others keep writing,
/// then restarted; the watch resumes from the next undelivered revision (no gap, no
/// duplicate). Killed again, with the history it missed compacted meanwhile, the watch ends
/// with `Compacted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_its_member_restarts_without_gap_or_duplicate() {
    let test = "watch_resumes_after_its_member_restarts_without_gap_or_duplicate";
    if !etcd_available_for_test(test) {
        return;
    }
    let mut cluster = EtcdCluster::start(ClusterOptions::members(3))
        .await
        .unwrap();
    let watcher = connect(&[cluster.endpoint(0).unwrap()]).await;
    let writer = connect(&[cluster.endpoint(1).unwrap(), cluster.endpoint(2).unwrap()]).await;
    let mut watch = watcher.watch(b"w/", None).await.unwrap();
    // Killing a member may cost the cluster its leader for an election: writes then fail
    // with Unavailable, and a timed-out one may still commit. Create-if-absent makes the
    // retry idempotent, so each key is written exactly once.
    let put = |i: usize| {
        let writer = writer.clone();
        async move {
            let key = format!("w/{i:02}");
            let create = Txn::new()
                .when([Compare::absent(key.clone())])
                .and_then([TxnOp::put(key.clone(), "v")])
                .or_else([TxnOp::get(key.clone())]);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match writer.txn(create.clone()).await {
                    Ok(done) if done.succeeded => return done.revision,
                    Ok(done) => match &done.responses[..] {
                        [TxnOpResponse::Get(get)] => return get.kv.as_ref().unwrap().mod_revision,
                        other => panic!("unexpected {other:?}"),
                    },
                    Err(StoreError::Unavailable { .. }) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(err) => panic!("writing {key}: {err}"),
                }
            }
        }
    };

    let mut last = 0;
    for i in 0..5 {
        last = put(i).await;
    }
    for i in 0..5 {
        let event = next(&mut watch).await;
        assert_eq!(event.kv.key, format!("w/{i:02}").as_bytes());
    }

    cluster.stop_member(0).unwrap();
    for i in 5..10 {
        put(i).await;
    }
    cluster.restart_member(0).await.unwrap();
    for i in 10..15 {
        put(i).await;
    }
    for i in 5..15 {
        let event = next(&mut watch).await;
        assert_eq!(event.kv.key, format!("w/{i:02}").as_bytes());
        assert_eq!(event.revision(), last + 1, "gap or duplicate");
        last = event.revision();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(watch.try_next().is_none(), "no duplicates");

    cluster.stop_member(0).unwrap();
    let missed = put(15).await;
    for i in 16..20 {
        put(i).await;
    }
    let current = writer.current_revision().await.unwrap();
    writer.compact(current).await.unwrap();
    cluster.restart_member(0).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("the watch reports the compaction");
    match ended {
        Some(Err(StoreError::Compacted {
            requested,
            compact_revision,
        })) => assert_eq!((requested, compact_revision), (missed, current)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(watch.next().await.is_none(), "an error ends the watch");
}
