#![allow(clippy::unwrap_used)]
//! Live explain: intent from the compiled policy, installed from the node's report.

mod common;

use common::*;

#[tokio::test]
async fn explain_compares_intent_with_installed_rules() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = admin(&server);
    let agent = agent(&server);
    admin.apply(&shop()).await.unwrap();
    agent.register_node(&registration("node-1")).await.unwrap();
    agent.register_node(&registration("node-2")).await.unwrap();
    admin
        .create_endpoint(&endpoint_request("web-1", "shop/store/web", "node-1"))
        .await
        .unwrap();
    let app = admin
        .create_endpoint(&endpoint_request("app-1", "shop/store/app", "node-2"))
        .await
        .unwrap();

    // Not reported yet: differs, no installed verdict.
    let live = admin.explain("web-1", "app-1", "tcp", 80).await.unwrap();
    assert!(live.intent.allowed, "{live:?}");
    assert!(live.installed.is_none());
    assert!(live.differs);
    assert_eq!(live.node, "node-2");
    assert!(
        !admin
            .explain("web-1", "app-1", "tcp", 443)
            .await
            .unwrap()
            .intent
            .allowed
    );

    // node-2 installs the compiled rules of the VRF at the current revision: agreement.
    let desired = agent
        .node_desired("node-2", 0, std::time::Duration::from_secs(1))
        .await
        .unwrap();
    let rules = compiled_rules(&desired.value);
    let report = |rules| installed_report(&desired.value, rules);
    agent.report("node-2", &report(rules)).await.unwrap();
    let live = agent.explain("web-1", "app-1", "tcp", 80).await.unwrap();
    assert!(live.installed.as_ref().unwrap().allowed, "{live:?}");
    assert!(!live.differs, "{live:?}");
    // icmp needs no port and is denied both ways.
    let live = admin.explain("web-1", "app-1", "icmp", 0).await.unwrap();
    assert!(!live.intent.allowed && !live.differs, "{live:?}");

    // The node lost its rules: installed denies, intent allows.
    agent.report("node-2", &report(Vec::new())).await.unwrap();
    let live = admin.explain("web-1", "app-1", "tcp", 80).await.unwrap();
    assert!(!live.installed.as_ref().unwrap().allowed);
    assert!(live.differs);

    // Bad protocol → 400 naming it.
    let err = admin
        .explain("web-1", "app-1", "sctp", 80)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, weft_api::ClientError::Api { body, .. } if body.field.as_deref() == Some("proto"))
    );
    let _ = app;
    server.shutdown().await;
}
