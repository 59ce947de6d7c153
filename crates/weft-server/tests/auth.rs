#![allow(clippy::unwrap_used)]
//! Tokens, roles and tenant isolation.

mod common;

use common::*;
use reqwest::Method;
use weft_api::Client;

#[tokio::test]
async fn missing_or_unknown_token_is_401_and_agent_cannot_apply() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;

    // Open routes.
    let anonymous = Client::new(&server.base_url(), None);
    assert_eq!(anonymous.health().await.unwrap()["status"], "ok");
    let (status, _, openapi) = raw(&server, Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(openapi["openapi"], "3.0.3");

    let err = anonymous.tenants().await.unwrap_err();
    assert_eq!(err.status().unwrap(), 401);
    let wrong = Client::new(&server.base_url(), Some("0".repeat(64)));
    assert_eq!(
        wrong.apply(&shop()).await.unwrap_err().status().unwrap(),
        401
    );
    let (status, _, body) = raw(&server, Method::GET, "/v1/nodes", Some("nope"), None).await;
    assert_eq!(status, 401);
    assert!(body["error"].is_string());

    let agent = agent(&server);
    let err = agent.apply(&shop()).await.unwrap_err();
    assert_eq!(err.status().unwrap(), 403);
    assert!(err.is_auth());
    assert_eq!(
        agent
            .create_token("shop")
            .await
            .unwrap_err()
            .status()
            .unwrap(),
        403
    );
    // The agent reads what it needs.
    agent.register_node(&registration("node-1")).await.unwrap();
    agent.heartbeat("node-1").await.unwrap();
    assert_eq!(agent.nodes().await.unwrap().len(), 1);
    agent.policy().await.unwrap();

    // Token files are private.
    use std::os::unix::fs::PermissionsExt;
    for file in ["admin.token", "join.token"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn tenant_tokens_see_and_change_only_their_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = admin(&server);
    admin
        .apply(&model(&tenant_json("alpha", "10.1.0.0/24", "10.1.0.1")))
        .await
        .unwrap();
    admin
        .apply(&model(&tenant_json("beta", "10.1.0.0/24", "10.1.0.1")))
        .await
        .unwrap();
    agent(&server)
        .register_node(&registration("node-1"))
        .await
        .unwrap();
    admin
        .create_endpoint(&endpoint_request("beta-web", "beta/store/web", "node-1"))
        .await
        .unwrap();

    let token = admin.create_token("alpha").await.unwrap().token;
    let alpha = Client::new(&server.base_url(), Some(token.clone()));
    // Listings are filtered.
    let tenants = alpha.tenants().await.unwrap();
    assert_eq!(
        tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["alpha"]
    );
    assert!(
        alpha
            .epgs()
            .await
            .unwrap()
            .iter()
            .all(|e| e.path.tenant == "alpha")
    );
    assert!(
        alpha
            .contracts()
            .await
            .unwrap()
            .iter()
            .all(|c| c.path.as_str().starts_with("alpha/"))
    );
    assert!(alpha.endpoints().await.unwrap().is_empty());
    let policy = alpha.policy().await.unwrap();
    assert!(policy.epgs.keys().all(|e| e.tenant == "alpha"));
    assert!(!policy.epgs.is_empty());

    // Own tenant: read and change.
    let mut own = alpha.tenant("alpha").await.unwrap();
    own.vrfs.get_mut("main").unwrap().enforced = false;
    alpha.put_tenant("alpha", &own).await.unwrap();
    let web = alpha
        .create_endpoint(&endpoint_request("alpha-web", "alpha/store/web", "node-1"))
        .await
        .unwrap();
    assert_eq!(alpha.endpoints().await.unwrap(), vec![web]);

    // The other tenant: 403 everywhere.
    let before = admin.tenants().await.unwrap();
    let forbidden = |err: weft_api::ClientError| assert_eq!(err.status().unwrap(), 403, "{err}");
    forbidden(alpha.tenant("beta").await.unwrap_err());
    let beta = admin.tenant("beta").await.unwrap();
    forbidden(alpha.put_tenant("beta", &beta).await.unwrap_err());
    forbidden(alpha.delete_tenant("beta").await.unwrap_err());
    forbidden(
        alpha
            .apply(&model(&tenant_json("beta", "10.1.0.0/24", "10.1.0.1")))
            .await
            .unwrap_err(),
    );
    forbidden(alpha.endpoint("beta-web").await.unwrap_err());
    forbidden(alpha.delete_endpoint("beta-web").await.unwrap_err());
    forbidden(
        alpha
            .create_endpoint(&endpoint_request("sneaky", "beta/store/web", "node-1"))
            .await
            .unwrap_err(),
    );
    forbidden(alpha.create_token("alpha").await.unwrap_err());
    forbidden(alpha.nodes().await.unwrap_err());
    forbidden(
        alpha
            .explain("alpha-web", "beta-web", "tcp", 80)
            .await
            .unwrap_err(),
    );
    // Nothing of beta changed.
    let after = admin.tenants().await.unwrap();
    assert_eq!(
        before.iter().find(|t| t.name == "beta"),
        after.iter().find(|t| t.name == "beta")
    );
    assert!(admin.endpoint("beta-web").await.is_ok());
    server.shutdown().await;
}
