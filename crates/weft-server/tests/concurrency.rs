#![allow(clippy::unwrap_used)]
//! 200 endpoints from 8 concurrent clients: no duplicate IP or MAC, all inside the subnet.

mod common;

use common::*;
use std::collections::HashSet;
use std::net::IpAddr;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_endpoint_creation_hands_out_unique_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    agent(&server)
        .register_node(&registration("node-1"))
        .await
        .unwrap();

    let mut clients = Vec::new();
    for client in 0..8 {
        let admin = admin.clone();
        clients.push(tokio::spawn(async move {
            let mut created = Vec::new();
            for n in 0..25 {
                let name = format!("ep-{client}-{n}");
                created.push(
                    admin
                        .create_endpoint(&endpoint_request(&name, "shop/store/web", "node-1"))
                        .await
                        .unwrap(),
                );
            }
            created
        }));
    }
    let mut created = Vec::new();
    for client in clients {
        created.extend(client.await.unwrap());
    }
    assert_eq!(created.len(), 200);
    let subnet: ipnet::IpNet = "10.1.0.0/24".parse().unwrap();
    let ips: HashSet<IpAddr> = created.iter().map(|e| e.ip).collect();
    let macs: HashSet<_> = created.iter().map(|e| e.mac).collect();
    assert_eq!(ips.len(), 200, "duplicate IP");
    assert_eq!(macs.len(), 200, "duplicate MAC");
    for endpoint in &created {
        assert!(subnet.contains(&endpoint.ip), "{} outside", endpoint.ip);
        assert_ne!(endpoint.ip.to_string(), "10.1.0.1");
        assert_ne!(endpoint.ip.to_string(), "10.1.0.0");
        assert_ne!(endpoint.ip.to_string(), "10.1.0.255");
        assert_eq!(
            endpoint.mac.0[0] & 0x03,
            0x02,
            "not locally administered unicast"
        );
    }
    // Lowest free first: exactly .2 to .201.
    let expected: HashSet<IpAddr> = (2..=201u8).map(|n| IpAddr::from([10, 1, 0, n])).collect();
    assert_eq!(ips, expected);
    let listed = admin.endpoints().await.unwrap();
    assert_eq!(listed.len(), 200);

    // 253 usable addresses: the 54th more does not fit.
    for n in 0..53 {
        admin
            .create_endpoint(&endpoint_request(
                &format!("fill-{n}"),
                "shop/store/web",
                "node-1",
            ))
            .await
            .unwrap();
    }
    let err = admin
        .create_endpoint(&endpoint_request(
            "one-too-many",
            "shop/store/web",
            "node-1",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap(), 409);
    server.shutdown().await;
}
