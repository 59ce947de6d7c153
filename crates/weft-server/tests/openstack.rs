//! The OpenStack listener in process: a Keystone token is a weft tenant token that
//! expires on both APIs; static tokens act for their tenant; projects stay apart.
#![allow(clippy::unwrap_used)] // tests fail loudly

use serde_json::{Value, json};
use std::time::Duration;
use weft_server::{ServerConfig, serve};

#[tokio::test]
async fn keystone_tokens_expire_on_weft_api_and_static_tokens_act_for_their_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path());
    config.openstack.listen = Some("127.0.0.1:0".parse().unwrap());
    config.openstack.token_ttl = Duration::from_millis(1500);
    config.openstack.static_tokens = vec![("static-shop".into(), "shop".into())];
    config.consul.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = serve(config).await.unwrap();
    let api = server.base_url();
    let os = format!("http://{}", server.openstack_addr().unwrap());
    let http = reqwest::Client::new();

    let created = http
        .post(format!("{api}/v1/openstack/users"))
        .bearer_auth(server.admin_token())
        .json(&json!({"name": "alice", "password": "pw", "project": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // Only the admin creates users.
    let refused = http
        .post(format!("{api}/v1/openstack/users"))
        .bearer_auth(server.join_token())
        .json(&json!({"name": "bob", "password": "pw", "project": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let auth = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "alice", "domain": {"id": "default"}, "password": "pw"}}},
        "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}});
    let issued = http
        .post(format!("{os}/v3/auth/tokens"))
        .json(&auth)
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 201);
    let token = issued.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = issued.json().await.unwrap();
    assert_eq!(body["token"]["project"]["name"], "demo");
    // Another project is refused.
    let mut other = auth.clone();
    other["auth"]["scope"]["project"]["name"] = json!("shop");
    let refused = http
        .post(format!("{os}/v3/auth/tokens"))
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let on_weft = |token: String| {
        let http = http.clone();
        let api = api.clone();
        async move {
            http.get(format!("{api}/v1/tenants"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(on_weft(token.clone()).await, 200);
    let consul = format!("http://{}/v1/kv/x", server.consul_addr().unwrap());
    let on_consul = |token: String| {
        let http = http.clone();
        let consul = consul.clone();
        async move {
            http.get(&consul)
                .header("X-Consul-Token", token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // The token acts for its project on the Consul API too (no key yet: 404, not 403).
    assert_eq!(on_consul(token.clone()).await, 404);
    let networks = |token: &str| {
        http.get(format!("{os}/network/v2.0/networks"))
            .header("x-auth-token", token)
            .send()
    };
    assert_eq!(networks(&token).await.unwrap().status(), 200);

    // Static tokens act for their tenant: a network made with one is in tenant shop.
    let made = http
        .post(format!("{os}/network/v2.0/networks"))
        .header("x-auth-token", "static-shop")
        .json(&json!({"network": {"name": "n"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    assert!(
        made["network"]["weft:epg"]
            .as_str()
            .unwrap()
            .starts_with("shop/openstack/net-")
    );
    // ... and demo's token does not see it.
    let seen: Value = networks(&token).await.unwrap().json().await.unwrap();
    assert_eq!(seen["networks"], json!([]));
    assert_eq!(networks("nonsense").await.unwrap().status(), 401);

    // After the TTL the token is refused everywhere.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(on_weft(token.clone()).await, 401);
    assert_eq!(
        on_consul(token.clone()).await,
        403,
        "an expired token is refused there too"
    );
    assert_eq!(networks(&token).await.unwrap().status(), 401);
    let validate = http
        .get(format!("{os}/v3/auth/tokens"))
        .header("x-auth-token", "static-shop")
        .header("x-subject-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(validate.status(), 404);
    server.shutdown().await;
}
