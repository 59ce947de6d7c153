#![allow(clippy::unwrap_used)]
//! Live explain on any controller: a node's installed rule tables live only at the
//! controller it reports to (the store has its report without them), so another
//! controller forwards the question there and answers with the installed verdict; when
//! that controller is gone, the answer comes without it and says why.

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use weft_api::{Client, LiveExplanation};
use weft_server::{ServerConfig, ServerHandle, serve};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test};

async fn controller(cluster: &EtcdCluster, dir: &std::path::Path) -> ServerHandle {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ServerConfig::new(listen, dir)
        .with_etcd(cluster.endpoints(), Some("weft-explain/".to_string()));
    config.leader_ttl = Duration::from_secs(1);
    // The node's live key outlives its controller for this long.
    config.node_deadline = Duration::from_secs(30);
    serve(config).await.unwrap()
}

/// Asks `client` until `done` holds of the answer (the other controller learns of the
/// report through its watch of the store).
async fn explain_until(
    client: &Client,
    done: impl Fn(&LiveExplanation) -> bool,
) -> LiveExplanation {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = client.explain("web-1", "app-1", "tcp", 80).await.unwrap();
        if done(&live) {
            return live;
        }
        assert!(Instant::now() < deadline, "last answer: {live:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_anywhere_uses_the_rule_tables_of_the_controller_that_hears_the_node() {
    if !etcd_available_for_test("explain_anywhere_uses_the_rule_tables_of_the_controller") {
        return;
    }
    let cluster = EtcdCluster::start(ClusterOptions::single()).await.unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = controller(&cluster, dir_a.path()).await;
    let b = controller(&cluster, dir_b.path()).await;
    let (admin_b, agent_a) = (admin(&b), agent(&a));
    admin_b.apply(&shop()).await.unwrap();
    agent_a
        .register_node(&registration("node-1"))
        .await
        .unwrap();
    agent_a
        .register_node(&registration("node-2"))
        .await
        .unwrap();
    admin_b
        .create_endpoint(&endpoint_request("web-1", "shop/store/web", "node-1"))
        .await
        .unwrap();
    admin_b
        .create_endpoint(&endpoint_request("app-1", "shop/store/app", "node-2"))
        .await
        .unwrap();

    // node-2 reports its installed rules to A only.
    let desired = agent_a
        .node_desired("node-2", 0, Duration::from_secs(1))
        .await
        .unwrap();
    let desired = if desired.value.policy.vrfs.is_empty() {
        agent_a
            .node_desired("node-2", desired.index, Duration::from_secs(5))
            .await
            .unwrap()
    } else {
        desired
    };
    let rules = compiled_rules(&desired.value);
    let report = |rules| installed_report(&desired.value, rules);
    agent_a.report("node-2", &report(rules)).await.unwrap();

    // B answers with A's installed verdict: the contract's permit, as installed.
    let live = explain_until(&admin_b, |l| l.installed.is_some()).await;
    assert!(live.intent.allowed, "{live:?}");
    assert!(live.installed.as_ref().unwrap().allowed, "{live:?}");
    assert!(!live.differs, "{live:?}");
    assert_eq!(
        live,
        admin(&a)
            .explain("web-1", "app-1", "tcp", 80)
            .await
            .unwrap()
    );

    // The node loses its rules: B shows the drift A sees.
    agent_a.report("node-2", &report(Vec::new())).await.unwrap();
    let live = explain_until(&admin_b, |l| {
        l.installed.as_ref().is_some_and(|v| !v.allowed)
    })
    .await;
    assert!(live.differs, "{live:?}");

    // A goes away: B answers at once without the installed side, and says why.
    let a_url = a.base_url();
    a.shutdown().await;
    let started = Instant::now();
    let live = admin_b.explain("web-1", "app-1", "tcp", 80).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "bounded wait");
    assert!(live.installed.is_none(), "{live:?}");
    assert!(live.differs, "{live:?}");
    let note = live.note.unwrap_or_default();
    assert!(
        note.contains("did not answer") && note.contains(&a_url),
        "{note}"
    );
    b.shutdown().await;
}
