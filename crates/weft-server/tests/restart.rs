#![allow(clippy::unwrap_used)]
//! Stop and start on the same data dir: everything comes back the same.

mod common;

use common::*;
use weft_api::Client;

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin_token = server.admin_token().to_string();
    let join_token = server.join_token().to_string();
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    admin
        .apply(&model(&tenant_json("other", "10.7.0.0/24", "10.7.0.1")))
        .await
        .unwrap();
    // Delete and re-add so that the allocation is not simply "first come, first numbered".
    admin.delete_tenant("shop").await.unwrap();
    admin.apply(&shop()).await.unwrap();
    agent(&server)
        .register_node(&registration("node-1"))
        .await
        .unwrap();
    for n in 0..5 {
        admin
            .create_endpoint(&endpoint_request(
                &format!("web-{n}"),
                "shop/store/web",
                "node-1",
            ))
            .await
            .unwrap();
    }
    let tenant_token = admin.create_token("other").await.unwrap().token;
    let tenants = admin.tenants().await.unwrap();
    let shop_tenant = admin.tenant("shop").await.unwrap();
    let endpoints = admin.endpoints().await.unwrap();
    let policy = admin.policy().await.unwrap();
    let nodes = admin.nodes().await.unwrap();
    server.shutdown().await;

    let server = start(dir.path()).await;
    assert_eq!(server.admin_token(), admin_token);
    assert_eq!(server.join_token(), join_token);
    let admin = Client::new(&server.base_url(), Some(admin_token));
    assert_eq!(admin.tenants().await.unwrap(), tenants);
    assert_eq!(admin.tenant("shop").await.unwrap(), shop_tenant);
    assert_eq!(admin.endpoints().await.unwrap(), endpoints);
    let restarted = admin.policy().await.unwrap();
    assert_eq!(restarted.allocation, policy.allocation);
    assert_eq!(restarted, policy);
    let restarted_nodes = admin.nodes().await.unwrap();
    assert_eq!(restarted_nodes[0].registration, nodes[0].registration);
    let other = Client::new(&server.base_url(), Some(tenant_token));
    assert_eq!(other.tenants().await.unwrap().len(), 1);
    // New endpoints continue after the old ones: no address or MAC reused.
    let next = admin
        .create_endpoint(&endpoint_request("web-new", "shop/store/web", "node-1"))
        .await
        .unwrap();
    assert!(
        endpoints
            .iter()
            .all(|e| e.ip != next.ip && e.mac != next.mac)
    );
    server.shutdown().await;
}
