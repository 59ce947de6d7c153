#![allow(clippy::unwrap_used)]
//! Endpoints' port security and security groups through weft's own API: admission,
//! `PATCH /v1/endpoints/{name}`, what agents receive, and live explain, where groups
//! and contracts must both permit.

mod common;

use common::*;
use reqwest::Method;
use weft_api::EndpointUpdate;

/// The shop tenant (web consumes http from app) with two security groups.
fn shop_with_groups() -> weft_model::Model {
    let mut json: serde_json::Value =
        serde_json::from_str(&tenant_json("shop", "10.1.0.0/24", "10.1.0.1")).unwrap();
    json["tenant"]["shop"]["security_group"] = serde_json::json!({
        "default": {"rule": {
            "in": {"direction": "ingress", "remote_group": "default"},
            "out": {"direction": "egress"}
        }},
        "web-only": {"rule": {
            "http": {"direction": "ingress", "protocol": "tcp", "destination_port": 80,
                     "remote_ip_prefix": "10.1.0.0/24"}
        }}
    });
    model(&json.to_string())
}

/// Sends `body` as JSON with the admin token; the status and the JSON answer.
async fn send(
    server: &weft_server::ServerHandle,
    method: Method,
    path: &str,
    body: &impl serde::Serialize,
) -> (reqwest::StatusCode, serde_json::Value) {
    let token = server.admin_token().to_string();
    let body = serde_json::to_vec(body).unwrap();
    let (status, _, answer) = raw(server, method, path, Some(&token), Some(body)).await;
    (status, answer)
}

#[tokio::test]
async fn groups_are_checked_at_admission_and_change_through_patch() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = admin(&server);
    let agent = agent(&server);
    admin.apply(&shop_with_groups()).await.unwrap();
    agent.register_node(&registration("node-1")).await.unwrap();

    // An unknown group is refused, naming the field; nothing is created.
    let mut bad = endpoint_request("web-1", "shop/store/web", "node-1");
    bad.security_groups = Some(vec!["nope".into()]);
    let (status, error) = send(&server, Method::POST, "/v1/endpoints", &bad).await;
    assert_eq!(status, 422, "{error}");
    assert!(
        error.to_string().contains("nope") && error.to_string().contains("security_groups"),
        "{error}"
    );
    // Groups without port security are refused (Neutron's rule).
    bad.security_groups = Some(vec!["default".into()]);
    bad.port_security = false;
    let (status, error) = send(&server, Method::POST, "/v1/endpoints", &bad).await;
    assert_eq!(status, 409, "{error}");
    assert!(
        admin.endpoints().await.unwrap().is_empty(),
        "refusals create nothing"
    );

    let mut web = endpoint_request("web-1", "shop/store/web", "node-1");
    web.security_groups = Some(vec!["default".into()]);
    let web = admin.create_endpoint(&web).await.unwrap();
    assert_eq!(
        web.security_groups.as_deref(),
        Some(&["default".to_string()][..])
    );
    assert!(web.port_security);
    let mut app = endpoint_request("app-1", "shop/store/app", "node-1");
    app.security_groups = Some(vec!["web-only".into()]);
    admin.create_endpoint(&app).await.unwrap();

    // Agents get the groups with the endpoints and the policy.
    let desired = agent
        .node_desired("node-1", 0, std::time::Duration::from_secs(1))
        .await
        .unwrap()
        .value;
    assert!(desired.policy.security_groups["shop"].contains_key("web-only"));
    let seen = desired
        .endpoints
        .iter()
        .find(|e| e.name == "app-1")
        .unwrap();
    assert_eq!(
        seen.security_groups.as_deref(),
        Some(&["web-only".to_string()][..])
    );

    // Explain: web -> app tcp/80 is permitted by the contract and by web-only's rule
    // (web-1 is in 10.1.0.0/24); tcp/443 by neither.
    let live = admin.explain("web-1", "app-1", "tcp", 80).await.unwrap();
    assert!(live.intent.allowed, "{live:?}");
    assert!(
        live.intent.text.contains("web-only/http"),
        "{}",
        live.intent.text
    );

    // PATCH: app-1 leaves web-only for an empty list: closed, though the contract permits.
    let changed = admin
        .update_endpoint(
            "app-1",
            &EndpointUpdate {
                security_groups: Some(Some(vec![])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.security_groups.as_deref(), Some(&[][..]));
    let live = admin.explain("web-1", "app-1", "tcp", 80).await.unwrap();
    assert!(!live.intent.allowed, "{live:?}");
    assert!(
        live.intent.text.contains("in no group"),
        "{}",
        live.intent.text
    );

    // Port security off while groups are set: 409, unchanged.
    let before = admin.endpoints().await.unwrap();
    let (status, error) = send(
        &server,
        Method::PATCH,
        "/v1/endpoints/web-1",
        &serde_json::json!({"port_security": false}),
    )
    .await;
    assert_eq!(status, 409, "{error}");
    // An unknown field is refused.
    let (status, error) = send(
        &server,
        Method::PATCH,
        "/v1/endpoints/web-1",
        &serde_json::json!({"ip": "10.1.0.9"}),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(
        admin.endpoints().await.unwrap(),
        before,
        "refused patches change nothing"
    );

    // A policy change that removes a group in use is refused, naming the endpoint.
    let mut without = shop_with_groups();
    without
        .tenants
        .get_mut("shop")
        .unwrap()
        .security_groups
        .remove("default");
    let refused = admin.apply(&without).await.unwrap_err().to_string();
    assert!(
        refused.contains("removes security groups that 1 endpoints are in"),
        "{refused}"
    );
    assert_eq!(
        admin.endpoints().await.unwrap(),
        before,
        "refused apply changes nothing"
    );

    // `null` takes a port out of groups; then port security may go off.
    let (status, done) = send(
        &server,
        Method::PATCH,
        "/v1/endpoints/web-1",
        &serde_json::json!({"security_groups": null, "port_security": false}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["port_security"], false);
    assert!(done.get("security_groups").is_none(), "{done}");
}
