#![allow(clippy::unwrap_used)]
//! Fencing, deterministically: a controller leads (it holds the leader key in a real
//! etcd). The key then changes hands behind its back, as when another controller took
//! over while this one was paused (its lease here is long, so it has not noticed). Its
//! scheduler still believes it leads and tries to place the tasks of a new app: every
//! such write carries the old key's create revision, so etcd refuses it. The refusals
//! are counted in `GET /v1/status/leader`, and no task is stored.

mod common;

use common::fake_agent::FakeAgent;
use common::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use weft_api::ControllersStatus;
use weft_server::{ServerConfig, serve};
use weft_store::{Compare, CompareOp, KvStore, Txn, TxnOp};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test};
use weft_store_etcd::{EtcdOptions, EtcdStore};

const PREFIX: &str = "weft-fence/";
const LEADER_KEY: &str = "/weft/cluster/leader";

async fn status(url: &str) -> ControllersStatus {
    weft_api::Client::new(url, None)
        .controllers()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_loop_writes_are_refused_and_counted() {
    if !etcd_available_for_test("a_deposed_leaders_loop_writes_are_refused_and_counted") {
        return;
    }
    let cluster = EtcdCluster::start(ClusterOptions::single()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(listen, dir.path())
        .with_etcd(cluster.endpoints(), Some(PREFIX.to_string()));
    // Long enough that it cannot notice the takeover during the test.
    config.leader_ttl = Duration::from_secs(60);
    let server = serve(config).await.unwrap();
    let url = server.base_url();
    let before = status(&url).await;
    assert_eq!(
        before.leader.as_deref(),
        Some(before.this.as_str()),
        "{before:?}"
    );
    assert_eq!(before.refused_loop_writes, 0);

    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let _node = FakeAgent::start(&server, "n1", &[]).await;

    // Another controller takes the key: deleted and created anew (a new create
    // revision), holding another id.
    let raw = EtcdStore::connect(
        &cluster.endpoints(),
        PREFIX.as_bytes().to_vec(),
        EtcdOptions::default(),
    )
    .await
    .unwrap();
    let held = raw.get(LEADER_KEY.as_bytes()).await.unwrap().kv.unwrap();
    let taken = raw
        .txn(
            Txn::new()
                .when([Compare::mod_revision(
                    LEADER_KEY,
                    CompareOp::Equal,
                    held.mod_revision,
                )])
                .and_then([TxnOp::delete(LEADER_KEY)]),
        )
        .await
        .unwrap();
    assert!(taken.succeeded);
    raw.put(
        LEADER_KEY.as_bytes(),
        br#"{"id":"c-other","url":"http://192.0.2.1:7070","since_ms":1}"#,
        None,
    )
    .await
    .unwrap();

    // The deposed controller's scheduler wakes for a new app and tries to place it.
    let apps = serde_json::json!({"app": {"web": {
        "instances": 3, "cmd": "sleep 1000", "cpus": 0.1, "mem": 64, "epg": "shop/store/web"
    }}});
    admin.apply_apps(apps).await.unwrap();
    let mut refused = 0;
    for _ in 0..50 {
        refused = status(&url).await.refused_loop_writes;
        if refused > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused > 0, "the stale leader's writes were refused");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        admin.tasks(Some("web")).await.unwrap().is_empty(),
        "no task was written by the deposed leader"
    );
    let after = status(&url).await;
    assert_eq!(after.leader.as_deref(), Some("c-other"), "{after:?}");
    // It stopped believing it leads at its first refused write.
    let refused_then = after.refused_loop_writes;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        status(&url).await.refused_loop_writes,
        refused_then,
        "a controller that learnt it does not lead stops trying"
    );
    eprintln!("refused loop writes: {refused_then}");
    server.shutdown().await;
}
