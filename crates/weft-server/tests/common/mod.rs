//! Shared helpers: a server on 127.0.0.1:0 over a RedbStore in a temp dir, clients, models.
#![allow(dead_code, clippy::unwrap_used)]

pub mod fake_agent;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use weft_api::{Client, NodeRegistration, Resources};
use weft_model::Model;
use weft_server::{ServerConfig, ServerHandle, serve};

pub async fn start(dir: &Path) -> ServerHandle {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    serve(ServerConfig::new(listen, dir)).await.unwrap()
}

pub fn admin(handle: &ServerHandle) -> Client {
    Client::new(&handle.base_url(), Some(handle.admin_token().to_string()))
}

pub fn agent(handle: &ServerHandle) -> Client {
    Client::new(&handle.base_url(), Some(handle.join_token().to_string()))
}

/// A tenant with two EPGs (web consumes http from app) in two bridge domains.
pub fn tenant_json(name: &str, web_subnet: &str, web_gateway: &str) -> String {
    format!(
        r#"{{"tenant": {{"{name}": {{
            "vrf": {{"main": {{}}}},
            "bridge_domain": {{
                "web": {{"vrf": "main", "subnet": {{"{web_subnet}": {{"gateway": "{web_gateway}"}}}}}},
                "app": {{"vrf": "main", "subnet": {{"10.99.0.0/24": {{"gateway": "10.99.0.1"}}}}}}
            }},
            "filter": {{"http": {{"entry": {{"tcp80": {{"protocol": "tcp", "destination_port": 80}}}}}}}},
            "contract": {{"web-to-app": {{"subject": {{"http": {{"filters": ["http"]}}}}}}}},
            "application_profile": {{"store": {{"epg": {{
                "web": {{"bridge_domain": "web", "consumes": ["web-to-app"]}},
                "app": {{"bridge_domain": "app", "provides": ["web-to-app"]}}
            }}}}}}
        }}}}}}"#
    )
}

pub fn model(json: &str) -> Model {
    weft_model::parse_json("test.json", json).unwrap()
}

pub fn shop() -> Model {
    model(&tenant_json("shop", "10.1.0.0/24", "10.1.0.1"))
}

pub fn registration(name: &str) -> NodeRegistration {
    NodeRegistration {
        name: name.to_string(),
        underlay_ip: Ipv4Addr::new(192, 0, 2, 10),
        netns: None,
        netns_prefix: "weft".to_string(),
        api: None,
        resources: Resources {
            cpus: 2.0,
            mem_mb: 2048,
            disk_mb: 10_000,
        },
        labels: BTreeMap::new(),
    }
}

/// The rules the controller compiled for the first VRF of `desired` (what an agent that
/// installed everything would report).
pub fn compiled_rules(desired: &weft_api::NodeDesired) -> Vec<weft_compiler::Rule> {
    desired.policy.vrfs.values().next().unwrap().rules.clone()
}

/// A node's report that it installed `rules` in the first VRF of `desired`, at its
/// revision (what live explain compares the intent with).
pub fn installed_report(
    desired: &weft_api::NodeDesired,
    rules: Vec<weft_compiler::Rule>,
) -> weft_api::NodeReport {
    let vrf = desired.policy.vrfs.values().next().unwrap();
    weft_api::NodeReport {
        applied_revision: desired.revision,
        installed: vec![weft_api::InstalledVrf {
            vrf: vrf.path.clone(),
            rules,
        }],
        endpoints: Default::default(),
        tasks: Default::default(),
        error: None,
    }
}

pub fn endpoint_request(name: &str, epg: &str, node: &str) -> weft_api::EndpointRequest {
    weft_api::EndpointRequest::new(name.to_string(), epg.parse().unwrap(), node.to_string())
}

/// A raw request, for what the typed client cannot send.
pub async fn raw(
    handle: &ServerHandle,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (
    reqwest::StatusCode,
    reqwest::header::HeaderMap,
    serde_json::Value,
) {
    let mut request =
        reqwest::Client::new().request(method, format!("{}{path}", handle.base_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{status} body is not JSON: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, headers, value)
}

pub fn index_of(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get("x-weft-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap()
}
