#![allow(clippy::unwrap_used)]
//! A controller on a real three-member etcd cluster: losing one member changes nothing
//! visible; losing two makes writes fail with 503 and `Retry-After` (nothing half
//! written) while reads of the last state go on; when the members come back, writes
//! and the leader come back without any manual step.

mod common;

use common::*;
use reqwest::Method;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use weft_server::{ServerConfig, serve};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test};

async fn leader(url: &str) -> Option<String> {
    weft_api::Client::new(url, None)
        .controllers()
        .await
        .ok()?
        .leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_lost_changes_nothing_two_lost_refuse_writes_and_all_comes_back() {
    if !etcd_available_for_test("one_member_lost_changes_nothing_two_lost_refuse_writes") {
        return;
    }
    let mut cluster = EtcdCluster::start(ClusterOptions::members(3))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(listen, dir.path())
        .with_etcd(cluster.endpoints(), Some("weft-quorum/".to_string()));
    config.leader_ttl = Duration::from_secs(2);
    let server = serve(config).await.unwrap();
    let url = server.base_url();
    let admin = admin(&server);
    let token = server.admin_token().to_string();
    admin.apply(&shop()).await.unwrap();
    assert!(leader(&url).await.is_some());

    // One member down: writes and reads as before.
    cluster.stop_member(0).unwrap();
    let other = model(&tenant_json("other", "10.2.0.0/24", "10.2.0.1"));
    admin.apply(&other).await.unwrap();
    assert!(admin.tenant("other").await.is_ok());

    // Two down: a write fails with 503 and Retry-After, and writes nothing; reads of
    // the last state go on.
    cluster.stop_member(1).unwrap();
    let third = model(&tenant_json("third", "10.3.0.0/24", "10.3.0.1"));
    let started = Instant::now();
    let (status, headers, error) = raw(
        &server,
        Method::PUT,
        "/v1/tenants/third",
        Some(&token),
        Some(serde_json::to_vec(&third.tenants["third"]).unwrap()),
    )
    .await;
    eprintln!(
        "write without quorum: {status} after {:?}: {error}",
        started.elapsed()
    );
    assert_eq!(status, 503, "{error}");
    assert!(headers.get("retry-after").is_some(), "{headers:?}");
    let (status, _, tenants) = raw(&server, Method::GET, "/v1/tenants", Some(&token), None).await;
    assert_eq!(status, 200);
    let names = tenants.to_string();
    assert!(
        names.contains("shop") && names.contains("other") && !names.contains("third"),
        "{names}"
    );

    // The members come back: writes work again, a leader is elected, with no step
    // taken here but restarting etcd.
    cluster.restart_member(0).await.unwrap();
    cluster.restart_member(1).await.unwrap();
    let back = Instant::now();
    loop {
        match admin.apply(&third).await {
            Ok(_) => break,
            Err(err) => {
                assert!(
                    back.elapsed() < Duration::from_secs(30),
                    "writes did not come back: {err}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    eprintln!("writes back {:?} after the members", back.elapsed());
    assert!(admin.tenant("third").await.is_ok());
    let mut led = None;
    for _ in 0..100 {
        led = leader(&url).await;
        if led.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(led.is_some(), "a leader again");
    server.shutdown().await;
}
