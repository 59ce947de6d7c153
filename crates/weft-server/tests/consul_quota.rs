#![allow(clippy::unwrap_used)]
//! Per-tenant limits of the Consul API: a write that would create something over the
//! limit is refused with 413 naming the limit and changes nothing; updates and deletes
//! still work, and what a delete frees can be used again. Tenants count apart.

use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use weft_server::{ConsulQuota, ServerConfig, ServerHandle, serve};

async fn start(dir: &std::path::Path) -> ServerHandle {
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(localhost, dir);
    config.consul.listen = Some(localhost);
    config.consul.anonymous_tenant = Some("shop".into());
    config.consul.quota = ConsulQuota {
        kv_keys: 3,
        kv_bytes: 1000,
        services: 2,
        sessions: 2,
    };
    serve(config).await.unwrap()
}

async fn put(server: &ServerHandle, path: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
    let r = reqwest::Client::new()
        .put(format!("http://{}{path}", server.consul_addr().unwrap()))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn delete(server: &ServerHandle, path: &str) -> u16 {
    reqwest::Client::new()
        .delete(format!("http://{}{path}", server.consul_addr().unwrap()))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn get_status(server: &ServerHandle, path: &str) -> u16 {
    reqwest::get(format!("http://{}{path}", server.consul_addr().unwrap()))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn kv_keys_and_bytes_are_bounded_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    for k in ["a", "b", "c"] {
        assert_eq!(put(&server, &format!("/v1/kv/{k}"), "x").await.0, 200);
    }
    let (status, body) = put(&server, "/v1/kv/d", "x").await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("3 keys"), "{body}");
    assert_eq!(
        get_status(&server, "/v1/kv/d").await,
        404,
        "nothing written"
    );
    // Updating a key it has is fine; a delete frees room.
    assert_eq!(put(&server, "/v1/kv/a", "y").await.0, 200);
    assert_eq!(delete(&server, "/v1/kv/b").await, 200);
    assert_eq!(put(&server, "/v1/kv/d", "x").await.0, 200);
    // Bytes: 1000 in all.
    let (status, body) = put(&server, "/v1/kv/a", vec![b'z'; 999]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("limit of 1000"), "{body}");
    // A recursive delete frees everything at once.
    assert_eq!(delete(&server, "/v1/kv/?recurse").await, 200);
    assert_eq!(put(&server, "/v1/kv/a", vec![b'z'; 999]).await.0, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn services_and_sessions_are_bounded_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let reg = |id: &str| json!({"Name": "web", "ID": id, "Port": 80}).to_string();
    assert_eq!(
        put(&server, "/v1/agent/service/register", reg("w1"))
            .await
            .0,
        200
    );
    // The controller's own `consul` service counts as one of the tenant's services
    // only if the tenant registered it; two of the tenant's fit.
    assert_eq!(
        put(&server, "/v1/agent/service/register", reg("w2"))
            .await
            .0,
        200
    );
    let (status, body) = put(&server, "/v1/agent/service/register", reg("w3")).await;
    assert_eq!(status, 413, "{body}");
    // Re-registering one it has is an update.
    assert_eq!(
        put(&server, "/v1/agent/service/register", reg("w1"))
            .await
            .0,
        200
    );
    for _ in 0..2 {
        assert_eq!(put(&server, "/v1/session/create", "{}").await.0, 200);
    }
    let (status, body) = put(&server, "/v1/session/create", "{}").await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("session"), "{body}");
    server.shutdown().await;
}
