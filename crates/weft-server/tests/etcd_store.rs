#![allow(clippy::unwrap_used)]
//! The controller on etcd (`weft server --store etcd`): a real single-member etcd, a tenant
//! and an endpoint created through the API, the controller restarted on the same etcd; and
//! an unreachable etcd failing startup with an error that names it.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use weft_api::Client;
use weft_server::{ServerConfig, ServerHandle, serve};
use weft_store::KvStore;
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test};
use weft_store_etcd::{EtcdOptions, EtcdStore};

const PREFIX: &str = "weft-test/";

fn config(dir: &Path, endpoints: Vec<String>) -> ServerConfig {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    ServerConfig::new(listen, dir).with_etcd(endpoints, Some(PREFIX.to_string()))
}

async fn start_on_etcd(dir: &Path, endpoints: Vec<String>) -> ServerHandle {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    serve(config(dir, endpoints)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_state_lives_in_etcd_and_survives_a_restart() {
    if !etcd_available_for_test("controller_state_lives_in_etcd_and_survives_a_restart") {
        return;
    }
    let cluster = EtcdCluster::start(ClusterOptions::single()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start_on_etcd(dir.path(), cluster.endpoints()).await;
    let admin_token = server.admin_token().to_string();
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    agent(&server)
        .register_node(&registration("node-1"))
        .await
        .unwrap();
    let created = admin
        .create_endpoint(&endpoint_request("web-1", "shop/store/web", "node-1"))
        .await
        .unwrap();
    let tenant = admin.tenant("shop").await.unwrap();
    assert_eq!(admin.endpoint("web-1").await.unwrap(), created);
    let endpoints = admin.endpoints().await.unwrap();
    let policy = admin.policy().await.unwrap();
    server.shutdown().await;

    // The state is in etcd, under the prefix, not in a redb file.
    assert!(!dir.path().join(weft_store::DATA_FILE_NAME).exists());
    let raw = EtcdStore::connect(&cluster.endpoints(), Vec::new(), EtcdOptions::default())
        .await
        .unwrap();
    let stored = raw.range(PREFIX.as_bytes(), None).await.unwrap();
    assert!(!stored.kvs.is_empty());
    assert_eq!(
        raw.range(b"", None).await.unwrap().kvs.len(),
        stored.kvs.len(),
        "every key is under the prefix"
    );

    let server = start_on_etcd(dir.path(), cluster.endpoints()).await;
    let admin = Client::new(&server.base_url(), Some(admin_token));
    assert_eq!(admin.tenant("shop").await.unwrap(), tenant);
    assert_eq!(admin.endpoint("web-1").await.unwrap(), created);
    assert_eq!(admin.endpoints().await.unwrap(), endpoints);
    assert_eq!(admin.policy().await.unwrap(), policy);
    // Writes go on from where they were: no address reused.
    let next = admin
        .create_endpoint(&endpoint_request("web-2", "shop/store/web", "node-1"))
        .await
        .unwrap();
    assert_ne!(next.ip, created.ip);
    server.shutdown().await;
}

/// Needs no etcd: nothing listens on the port.
#[tokio::test]
async fn unreachable_etcd_fails_startup_naming_the_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), vec![endpoint.clone()]);
    config.store_connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = serve(config).await.expect_err("startup fails");
    let message = err.to_string();
    assert!(
        matches!(
            &err,
            weft_server::ServerError::Store(weft_store::StoreError::Unavailable { .. })
        ),
        "{message}"
    );
    assert!(message.contains(&endpoint), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded retry");
}
