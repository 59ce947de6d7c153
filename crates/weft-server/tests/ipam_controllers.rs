#![allow(clippy::unwrap_used)]
//! Endpoint creates through several controllers over one store at once: every create
//! succeeds (losing a claim to another controller costs a retry, never a refusal), and
//! no IP or MAC is given twice. Each controller's MAC counter catches up with the MACs
//! the others assigned, instead of proposing them again and again.

mod common;

use common::*;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use weft_server::{ServerConfig, ServerHandle, serve};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test};

const CONTROLLERS: usize = 3;
const CLIENTS: usize = 8;
const PER_CLIENT: usize = 80;

async fn controller(cluster: &EtcdCluster, dir: &std::path::Path) -> ServerHandle {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(listen, dir)
        .with_etcd(cluster.endpoints(), Some("weft-ipam/".to_string()));
    config.leader_ttl = Duration::from_secs(1);
    serve(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_spread_over_controllers_all_succeed_with_unique_addresses() {
    if !etcd_available_for_test("creates_spread_over_controllers_all_succeed") {
        return;
    }
    let cluster = EtcdCluster::start(ClusterOptions::single()).await.unwrap();
    let dirs: Vec<_> = (0..CONTROLLERS)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut controllers = Vec::new();
    for dir in &dirs {
        controllers.push(controller(&cluster, dir.path()).await);
    }
    // Room for every endpoint: a /20.
    let shop = model(&tenant_json("shop", "10.8.0.0/20", "10.8.0.1"));
    admin(&controllers[0]).apply(&shop).await.unwrap();
    agent(&controllers[0])
        .register_node(&registration("node-1"))
        .await
        .unwrap();

    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let admin = admin(&controllers[c % CONTROLLERS]);
        clients.push(tokio::spawn(async move {
            let mut refused = Vec::new();
            for i in 0..PER_CLIENT {
                let request = endpoint_request(&format!("e{c}-{i}"), "shop/store/web", "node-1");
                if let Err(err) = admin.create_endpoint(&request).await {
                    refused.push(err.to_string());
                }
            }
            refused
        }));
    }
    let mut refused = Vec::new();
    for client in clients {
        refused.extend(client.await.unwrap());
    }
    assert!(refused.is_empty(), "refused creates: {refused:#?}");

    let endpoints = admin(&controllers[1]).endpoints().await.unwrap();
    assert_eq!(endpoints.len(), CLIENTS * PER_CLIENT);
    let ips: HashSet<_> = endpoints.iter().map(|e| e.ip).collect();
    let macs: HashSet<_> = endpoints.iter().map(|e| e.mac).collect();
    assert_eq!(ips.len(), endpoints.len(), "an IP given twice");
    assert_eq!(macs.len(), endpoints.len(), "a MAC given twice");
    for server in controllers {
        server.shutdown().await;
    }
}
