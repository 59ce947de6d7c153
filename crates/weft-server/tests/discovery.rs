#![allow(clippy::unwrap_used)]
//! The discovery view agents serve DNS from, against a real controller: it wakes on a
//! Consul registration's health, hides what policy forbids (and `GET /v1/dns` says
//! why), carries a gateway token that acts for its tenant only, and is for agents only.

mod common;

use common::*;
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use weft_server::{ServerConfig, ServerHandle, serve};

async fn start_with_consul(dir: &Path) -> ServerHandle {
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(localhost, dir);
    config.consul.listen = Some(localhost);
    config.consul.anonymous_tenant = Some("shop".into());
    serve(config).await.unwrap()
}

async fn consul_put(
    server: &ServerHandle,
    path: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
) -> u16 {
    let mut r =
        reqwest::Client::new().put(format!("http://{}{path}", server.consul_addr().unwrap()));
    if let Some(b) = body {
        r = r.json(&b);
    }
    if let Some(t) = token {
        r = r.header("X-Consul-Token", t);
    }
    r.send().await.unwrap().status().as_u16()
}

/// shop's web-1 and app-1 on node n1, and two registrations at app-1's address: `http`
/// on port 80 (web may reach it: contract web-to-app) and `ssh` on 22 (it may not).
async fn setup(server: &ServerHandle) -> (std::net::IpAddr, std::net::IpAddr) {
    let admin = admin(server);
    admin.apply(&shop()).await.unwrap();
    agent(server)
        .register_node(&registration("n1"))
        .await
        .unwrap();
    let web = admin
        .create_endpoint(&endpoint_request("web-1", "shop/store/web", "n1"))
        .await
        .unwrap();
    let app = admin
        .create_endpoint(&endpoint_request("app-1", "shop/store/app", "n1"))
        .await
        .unwrap();
    for (name, port) in [("http", 80), ("ssh", 22)] {
        let status = consul_put(
            server,
            "/v1/agent/service/register",
            Some(json!({"Name": name, "Address": app.ip.to_string(), "Port": port})),
            None,
        )
        .await;
        assert_eq!(status, 200);
    }
    (web.ip, app.ip)
}

#[tokio::test]
async fn views_hide_what_policy_forbids_and_dns_queries_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_consul(dir.path()).await;
    let (_, app_ip) = setup(&server).await;
    let view = agent(&server)
        .node_discovery("n1", 0, Duration::ZERO)
        .await
        .unwrap();
    assert_ne!(view.digest, 0);
    assert_eq!(view.consul, server.consul_addr());
    let [vrf] = view.vrfs.as_slice() else {
        panic!("{view:?}")
    };
    assert!(vrf.policy_aware);
    let web = vrf
        .classes
        .iter()
        .position(|c| c == "shop/store/web")
        .unwrap() as u32;
    let app = vrf
        .classes
        .iter()
        .position(|c| c == "shop/store/app")
        .unwrap() as u32;
    let [tenant] = vrf.tenants.as_slice() else {
        panic!()
    };
    let service = |name: &str| tenant.services.iter().find(|s| s.name == name).unwrap();
    // web may reach http (tcp/80 by contract), not ssh; app reaches both (intra-EPG).
    assert_eq!(service("http").instances[0].hidden_from, Vec::<u32>::new());
    assert_eq!(service("ssh").instances[0].hidden_from, vec![web]);
    assert!(!service("ssh").instances[0].hidden_from.contains(&app));
    assert!(
        tenant.services.iter().all(|s| s.name != "consul"),
        "the controller's own service is not served"
    );

    let admin = admin(&server);
    let ok = admin
        .dns_query("http.service.weft", "A", "web-1")
        .await
        .unwrap();
    assert_eq!(ok.rcode, "NOERROR");
    assert!(
        ok.answers.iter().any(|a| a.contains(&app_ip.to_string())),
        "{ok:?}"
    );
    assert!(ok.decisions[0].shown);
    let hidden = admin
        .dns_query("ssh.service.weft", "A", "web-1")
        .await
        .unwrap();
    assert_eq!(hidden.rcode, "NXDOMAIN", "{hidden:?}");
    assert!(hidden.answers.is_empty());
    assert!(!hidden.decisions[0].shown);
    assert!(
        hidden.decisions[0].why.to_lowercase().contains("deny"),
        "{:?}",
        hidden.decisions
    );
    // A bad name is refused naming the field; an unknown endpoint too.
    let bad = admin.dns_query("a..b", "A", "web-1").await.unwrap_err();
    assert!(bad.to_string().contains("name"), "{bad}");
    assert!(
        admin
            .dns_query("x.service.weft", "A", "nope")
            .await
            .is_err()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_registration_turning_healthy_wakes_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_consul(dir.path()).await;
    setup(&server).await;
    let status = consul_put(
        &server,
        "/v1/agent/service/register",
        Some(json!({"Name": "api", "ID": "api-1", "Address": "10.1.0.200", "Port": 80, "Check": {"TTL": "600s"}})),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let agent = agent(&server);
    let first = agent.node_discovery("n1", 0, Duration::ZERO).await.unwrap();
    let has_api = |v: &weft_api::DiscoveryView| {
        v.vrfs[0].tenants[0]
            .services
            .iter()
            .any(|s| s.name == "api")
    };
    assert!(
        !has_api(&first),
        "a TTL check starts critical: not answered"
    );
    let waiting = tokio::spawn({
        let agent = agent.clone();
        async move {
            let start = Instant::now();
            let v = agent
                .node_discovery("n1", first.digest, Duration::from_secs(20))
                .await
                .unwrap();
            (v, start.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        consul_put(&server, "/v1/agent/check/pass/service:api-1", None, None).await,
        200
    );
    let (next, took) = waiting.await.unwrap();
    assert!(has_api(&next), "{next:?}");
    assert!(
        took < Duration::from_secs(5),
        "the view woke after {took:?}, not on the change"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_gateway_token_acts_for_its_tenant_only_and_views_are_for_agents() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_consul(dir.path()).await;
    setup(&server).await;
    let view = agent(&server)
        .node_discovery("n1", 0, Duration::ZERO)
        .await
        .unwrap();
    let token = view.vrfs[0].tenants[0].token.clone().unwrap();
    assert_eq!(
        consul_put(&server, "/v1/kv/from-gateway", None, Some(&token)).await,
        200
    );
    // Another last character (a token ending in 0 would not be forged by a 0).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    assert_ne!(forged, token);
    assert_eq!(
        consul_put(&server, "/v1/kv/x", None, Some(&forged)).await,
        403
    );
    let other = token.replacen("weft-gw.shop.", "weft-gw.blue.", 1);
    assert_eq!(
        consul_put(&server, "/v1/kv/x", None, Some(&other)).await,
        403
    );
    // A tenant's token may not read a node's view (it holds gateway tokens).
    let grant = admin(&server).create_token("shop").await.unwrap();
    let tenant = weft_api::Client::new(&server.base_url(), Some(grant.token));
    assert!(
        tenant
            .node_discovery("n1", 0, Duration::ZERO)
            .await
            .is_err()
    );
    server.shutdown().await;
}
