#![allow(clippy::unwrap_used)]
//! Bad input: every refusal is a 4xx JSON ApiError naming the field, and nothing changes.

mod common;

use common::*;
use reqwest::Method;
use serde_json::Value;

/// (method, path, body, status, field the error must name)
type Case<'a> = (Method, &'a str, Vec<u8>, u16, Option<&'a str>);

async fn revision(server: &weft_server::ServerHandle) -> u64 {
    let (_, headers, _) = raw(
        server,
        Method::GET,
        "/v1/tenants",
        Some(server.admin_token()),
        None,
    )
    .await;
    index_of(&headers)
}

#[tokio::test]
async fn bad_requests_are_refused_without_changing_state() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    agent(&server)
        .register_node(&registration("node-1"))
        .await
        .unwrap();
    let token = server.admin_token().to_string();
    let before = revision(&server).await;
    let policy_before = admin.policy().await.unwrap();

    let apply = |body: &str| body.as_bytes().to_vec();
    let cases: Vec<Case> = vec![
        (Method::POST, "/v1/apply", apply("{\"model\": {"), 400, None),
        (Method::POST, "/v1/apply", apply("not json"), 400, None),
        (
            Method::POST,
            "/v1/apply",
            apply("{\"model\": {}, \"bogus\": 1}"),
            400,
            Some("bogus"),
        ),
        (
            Method::POST,
            "/v1/apply",
            apply(
                r#"{"model": {"tenant": {"shop": {"vrf": {"main": {"enforced": true, "colour": "red"}}}}}}"#,
            ),
            400,
            Some("model.tenant.shop.vrf.main.colour"),
        ),
        (
            Method::POST,
            "/v1/apply",
            apply(r#"{"model": {"tenant": {"shop": {"vrf": {"main": {"enforced": "yes"}}}}}}"#),
            400,
            Some("model.tenant.shop.vrf.main.enforced"),
        ),
        (
            Method::POST,
            "/v1/apply",
            apply(r#"{"model": {"tenant": {}}}"#),
            400,
            Some("model.tenant"),
        ),
        (
            Method::POST,
            "/v1/apply",
            apply(
                r#"{"model": {"tenant": {"shop": {"bridge_domain": {"b": {"vrf": "main", "subnet": {"10.0.0.1/24": {"gateway": "10.0.0.1"}}}}}}}}"#,
            ),
            400,
            Some("model.shop/bridge_domain:b/subnet:10.0.0.1/24"),
        ),
        (
            Method::PUT,
            "/v1/tenants/shop",
            apply(r#"{"vrf": 5}"#),
            400,
            Some("vrf"),
        ),
        (
            Method::POST,
            "/v1/endpoints",
            apply(r#"{"name": "x", "epg": "shop/store/nope", "node": "node-1"}"#),
            422,
            Some("epg"),
        ),
        (
            Method::POST,
            "/v1/endpoints",
            apply(r#"{"name": "x", "epg": "shop/store/web", "node": "ghost"}"#),
            422,
            Some("node"),
        ),
        (
            Method::POST,
            "/v1/endpoints",
            apply(r#"{"name": "x", "epg": "not-a-path", "node": "node-1"}"#),
            400,
            Some("epg"),
        ),
        (
            Method::POST,
            "/v1/endpoints",
            apply(r#"{"name": "Bad_Name", "epg": "shop/store/web", "node": "node-1"}"#),
            400,
            Some("name"),
        ),
        (
            Method::POST,
            "/v1/endpoints",
            apply(r#"{"name": "x", "epg": "shop/store/web", "node": "node-1", "mac": "zz"}"#),
            400,
            Some("mac"),
        ),
        (
            Method::POST,
            "/v1/endpoints",
            apply(r#"{"name": "x", "epg": "shop/store/web", "node": "node-1", "ip": 7}"#),
            400,
            Some("ip"),
        ),
        (
            Method::POST,
            "/v1/tokens",
            apply(r#"{"tenant": "a/b"}"#),
            400,
            Some("tenant"),
        ),
        (
            Method::POST,
            "/v1/nodes",
            apply(r#"{"name": "n"}"#),
            400,
            None,
        ),
        (
            Method::PUT,
            "/v1/nodes/ghost/report",
            apply(r#"{"applied_revision": 1}"#),
            404,
            None,
        ),
        (
            Method::PUT,
            "/v1/nodes/ghost/heartbeat",
            apply("null"),
            404,
            None,
        ),
        (
            Method::GET,
            "/v1/nodes/ghost/desired",
            Vec::new(),
            404,
            None,
        ),
        (Method::GET, "/v1/tenants?index=x", Vec::new(), 400, None),
        (
            Method::GET,
            "/v1/tenants?index=1&wait=forever",
            Vec::new(),
            400,
            Some("wait"),
        ),
        (
            Method::GET,
            "/v1/explain?from=a&to=b&proto=tcp&port=80",
            Vec::new(),
            404,
            Some("from"),
        ),
        (Method::GET, "/v1/explain?from=a", Vec::new(), 400, None),
        (Method::GET, "/v1/no-such-route", Vec::new(), 404, None),
        (Method::PATCH, "/v1/tenants", Vec::new(), 405, None),
        (Method::DELETE, "/v1/tenants/ghost", Vec::new(), 404, None),
        (Method::DELETE, "/v1/endpoints/ghost", Vec::new(), 404, None),
    ];
    for (method, path, body, status, field) in cases {
        let body = (!body.is_empty()).then_some(body);
        let (got, _, error) = raw(&server, method.clone(), path, Some(&token), body).await;
        assert_eq!(got.as_u16(), status, "{method} {path}: {error}");
        assert!(error["error"].is_string(), "{method} {path}: {error}");
        if let Some(field) = field {
            assert_eq!(
                error["field"],
                Value::from(field),
                "{method} {path}: {error}"
            );
        }
    }

    // An invalid model: overlapping subnets in one VRF. Every finding is listed.
    let overlapping = r#"{"model": {"tenant": {"shop": {
        "vrf": {"main": {}},
        "bridge_domain": {
            "a": {"vrf": "main", "subnet": {"10.5.0.0/16": {"gateway": "10.5.0.1"}}},
            "b": {"vrf": "main", "subnet": {"10.5.1.0/24": {"gateway": "10.5.1.1"}}}
        },
        "application_profile": {"p": {"epg": {"e": {"bridge_domain": "missing"}}}}
    }}}}"#;
    let (status, _, error) = raw(
        &server,
        Method::POST,
        "/v1/apply",
        Some(&token),
        Some(overlapping.into()),
    )
    .await;
    assert_eq!(status, 422, "{error}");
    let details = error["details"].as_array().unwrap();
    assert!(details.len() >= 2, "{error}");
    assert!(
        details
            .iter()
            .any(|d| d.as_str().unwrap().contains("overlap")),
        "{error}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.as_str().unwrap().contains("missing")),
        "{error}"
    );

    // Oversize body: 413 with a JSON error.
    let huge = vec![b' '; 2 * 1024 * 1024];
    let (status, _, error) =
        raw(&server, Method::POST, "/v1/apply", Some(&token), Some(huge)).await;
    assert_eq!(status, 413);
    assert!(error["error"].as_str().unwrap().contains("larger"));

    assert_eq!(
        revision(&server).await,
        before,
        "a refused request changed the state"
    );
    assert_eq!(admin.policy().await.unwrap(), policy_before);
    assert!(admin.endpoints().await.unwrap().is_empty());
    server.shutdown().await;
}
