#![allow(clippy::unwrap_used)]
//! Create, read, update and delete of tenants and endpoints; revisions and X-Weft-Index.

mod common;

use common::*;
use reqwest::Method;

#[tokio::test]
async fn tenants_and_endpoints_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = admin(&server);
    let agent = agent(&server);

    // Create by apply.
    let applied = admin.apply(&shop()).await.unwrap();
    assert_eq!(applied.tenants, vec!["shop".to_string()]);
    let first = applied.revision;
    assert!(first > 0);
    let tenants = admin.tenants().await.unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].name, "shop");
    assert_eq!(tenants[0].epgs, 2);
    assert_eq!(tenants[0].revision, first);

    // Read, with X-Weft-Index.
    let (status, headers, body) = raw(
        &server,
        Method::GET,
        "/v1/tenants/shop",
        Some(server.admin_token()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(index_of(&headers), first);
    assert!(body["bridge_domain"]["web"]["subnet"]["10.1.0.0/24"].is_object());
    let shop_tenant = admin.tenant("shop").await.unwrap();
    assert_eq!(shop_tenant.app_profiles["store"].epgs.len(), 2);

    // Re-applying the same model changes nothing, not even the revision.
    assert_eq!(admin.apply(&shop()).await.unwrap().revision, first);

    // Update by PUT: add an EPG.
    let mut tenant = shop_tenant.clone();
    let mut db = tenant.app_profiles["store"].epgs["app"].clone();
    db.provides.clear();
    tenant
        .app_profiles
        .get_mut("store")
        .unwrap()
        .epgs
        .insert("db".into(), db);
    let updated = admin.put_tenant("shop", &tenant).await.unwrap();
    assert!(updated.revision > first);
    let epgs = admin.epgs().await.unwrap();
    assert_eq!(epgs.len(), 3);
    let contracts = admin.contracts().await.unwrap();
    assert_eq!(contracts[0].providers, vec!["shop/store/app".to_string()]);
    assert_eq!(contracts[0].consumers, vec!["shop/store/web".to_string()]);
    let policy = admin.policy().await.unwrap();
    assert_eq!(policy.epgs.len(), 3);

    // Endpoints: create, read, delete.
    agent.register_node(&registration("node-1")).await.unwrap();
    let web1 = admin
        .create_endpoint(&endpoint_request("web-1", "shop/store/web", "node-1"))
        .await
        .unwrap();
    assert_eq!(web1.ip.to_string(), "10.1.0.2");
    assert_eq!(web1.gateway.to_string(), "10.1.0.1");
    assert_eq!(web1.prefix_len, 24);
    assert_eq!(web1.netns, "weft-ep-web-1");
    assert!(web1.revision > updated.revision);
    assert_eq!(web1.status.state, weft_api::EndpointState::Pending);
    let web2 = admin
        .create_endpoint(&endpoint_request("web-2", "shop/store/web", "node-1"))
        .await
        .unwrap();
    assert_eq!(web2.ip.to_string(), "10.1.0.3");
    assert_ne!(web1.mac, web2.mac);
    assert!(web2.revision > web1.revision);
    assert_eq!(admin.endpoint("web-1").await.unwrap(), web1);
    assert_eq!(admin.endpoints().await.unwrap().len(), 2);

    // A tenant with endpoints cannot lose their EPG.
    let err = admin.delete_tenant("shop").await.unwrap_err();
    assert_eq!(err.status().unwrap(), 409);

    admin.delete_endpoint("web-1").await.unwrap();
    assert_eq!(
        admin.endpoint("web-1").await.unwrap_err().status().unwrap(),
        404
    );
    // The freed address is handed out again.
    let web3 = admin
        .create_endpoint(&endpoint_request("web-3", "shop/store/web", "node-1"))
        .await
        .unwrap();
    assert_eq!(web3.ip.to_string(), "10.1.0.2");

    // The node reports web-3 ready: its status follows.
    agent
        .report(
            "node-1",
            &weft_api::NodeReport {
                applied_revision: web3.revision,
                installed: Vec::new(),
                endpoints: [(
                    "web-3".to_string(),
                    weft_api::EndpointStatus {
                        state: weft_api::EndpointState::Ready,
                        message: None,
                    },
                )]
                .into(),
                tasks: Default::default(),
                error: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        admin.endpoint("web-3").await.unwrap().status.state,
        weft_api::EndpointState::Ready
    );
    let nodes = admin.nodes().await.unwrap();
    assert!(nodes[0].ready);

    // Delete the tenant once it has no endpoints.
    admin.delete_endpoint("web-2").await.unwrap();
    admin.delete_endpoint("web-3").await.unwrap();
    admin.delete_tenant("shop").await.unwrap();
    assert!(admin.tenants().await.unwrap().is_empty());
    assert_eq!(
        admin.tenant("shop").await.unwrap_err().status().unwrap(),
        404
    );
    assert!(admin.policy().await.unwrap().epgs.is_empty());

    server.shutdown().await;
}

#[tokio::test]
async fn requested_addresses_are_checked_and_unique() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    agent(&server)
        .register_node(&registration("node-1"))
        .await
        .unwrap();

    let mut request = endpoint_request("a", "shop/store/web", "node-1");
    request.ip = Some("10.1.0.50".parse().unwrap());
    request.mac = Some("02:00:00:00:00:50".parse().unwrap());
    let a = admin.create_endpoint(&request).await.unwrap();
    assert_eq!(a.ip.to_string(), "10.1.0.50");
    assert_eq!(a.mac.to_string(), "02:00:00:00:00:50");

    request.name = "b".into();
    let err = admin.create_endpoint(&request).await.unwrap_err();
    assert_eq!(err.status().unwrap(), 409);
    assert!(
        matches!(&err, weft_api::ClientError::Api { body, .. } if body.field.as_deref() == Some("ip"))
    );

    request.ip = Some("10.1.0.51".parse().unwrap());
    let err = admin.create_endpoint(&request).await.unwrap_err();
    assert!(
        matches!(&err, weft_api::ClientError::Api { body, .. } if body.field.as_deref() == Some("mac"))
    );

    for (ip, why) in [
        ("10.1.0.1", "gateway"),
        ("10.1.0.255", "broadcast"),
        ("10.2.0.5", "outside"),
    ] {
        request.ip = Some(ip.parse().unwrap());
        request.mac = None;
        let err = admin.create_endpoint(&request).await.unwrap_err();
        assert_eq!(err.status().unwrap(), 422, "{why}");
    }
    server.shutdown().await;
}
