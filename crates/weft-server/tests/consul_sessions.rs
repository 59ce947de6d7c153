#![allow(clippy::unwrap_used)]
//! A session bound to a service's check (Consul's `ServiceChecks`) ends when that check
//! turns critical, and its lock is released: how an app ties leadership to its health.

use serde_json::{Value, json};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use weft_server::{ServerConfig, serve};

#[tokio::test]
async fn a_critical_service_check_ends_the_session_and_frees_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(localhost, dir.path());
    config.consul.listen = Some(localhost);
    config.consul.anonymous_tenant = Some("shop".into());
    let server = serve(config).await.unwrap();
    let base = format!("http://{}", server.consul_addr().unwrap());
    let http = reqwest::Client::new();
    let put = |path: &str, body: Value| {
        let r = http.put(format!("{base}{path}")).json(&body);
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let reg = json!({"Name": "leader", "ID": "leader-1", "Port": 1, "Check": {"TTL": "60s"}});
    assert_eq!(put("/v1/agent/service/register", reg).await.0, 200);
    // A session bound to a critical check cannot be made.
    let bound = json!({"ServiceChecks": [{"ID": "service:leader-1", "Namespace": ""}]});
    let (status, _) = put("/v1/session/create", bound.clone()).await;
    assert_eq!(status, 500, "the check starts critical");
    assert_eq!(
        put("/v1/agent/check/pass/service:leader-1", Value::Null)
            .await
            .0,
        200
    );
    let (status, created) = put("/v1/session/create", bound).await;
    assert_eq!(status, 200, "{created}");
    let id = created["ID"].as_str().unwrap().to_string();
    let (status, got) = put(&format!("/v1/kv/lead?acquire={id}"), json!("me")).await;
    assert_eq!((status, got), (200, json!(true)));
    assert_eq!(
        put("/v1/agent/check/fail/service:leader-1", Value::Null)
            .await
            .0,
        200
    );
    let start = Instant::now();
    loop {
        let entry: Value = http
            .get(format!("{base}/v1/kv/lead"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if entry[0].get("Session").is_none() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "lock still held: {entry}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let info: Value = http
        .get(format!("{base}/v1/session/info/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info.as_array().is_none_or(Vec::is_empty), "{info}");
    server.shutdown().await;
}
