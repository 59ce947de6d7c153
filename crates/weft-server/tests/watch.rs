#![allow(clippy::unwrap_used)]
//! Blocking queries and server-sent events.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn blocking_query_returns_at_once_blocks_and_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = admin(&server);
    let agent = agent(&server);
    agent.register_node(&registration("node-1")).await.unwrap();
    let applied = admin.apply(&shop()).await.unwrap();

    // An old index returns right away.
    let started = Instant::now();
    let view = agent
        .node_desired("node-1", 0, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(view.index, applied.revision);
    assert_eq!(view.value.revision, applied.revision);
    assert_eq!(view.value.policy.epgs.len(), 2);

    // The current index blocks until a concurrent change, then returns a larger index.
    let current = view.index;
    let waiter = {
        let agent = agent.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let view = agent
                .node_desired("node-1", current, Duration::from_secs(30))
                .await
                .unwrap();
            (view, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "a blocking query returned without a change"
    );
    let changed = admin
        .apply(&model(&tenant_json("other", "10.7.0.0/24", "10.7.0.1")))
        .await
        .unwrap();
    let (view, waited) = waiter.await.unwrap();
    assert!(waited >= Duration::from_millis(300));
    assert!(view.index > current);
    assert_eq!(view.index, changed.revision);
    assert!(
        view.value
            .policy
            .epgs
            .keys()
            .any(|epg| epg.tenant == "other")
    );

    // No change: the wait runs out and the same index comes back.
    let started = Instant::now();
    let view = agent
        .node_desired("node-1", view.index, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(view.index, changed.revision);

    // Heartbeats and reports do not wake blocking queries.
    let (status, headers, _) = raw(
        &server,
        reqwest::Method::GET,
        &format!("/v1/tenants?index={}&wait=500ms", view.index),
        Some(server.admin_token()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(index_of(&headers), view.index);
    server.shutdown().await;
}

#[tokio::test]
async fn events_stream_delivers_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = admin(&server);
    let mut response = reqwest::Client::new()
        .get(format!("{}/v1/events", server.base_url()))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let applied = admin.apply(&shop()).await.unwrap();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("policy/tenants/shop") {
        assert!(Instant::now() < deadline, "no event in {text:?}");
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find(|d| d.contains("policy/tenants/shop"))
        .unwrap();
    let event: weft_api::ChangeEvent = serde_json::from_str(data).unwrap();
    assert_eq!(event.revision, applied.revision);
    assert_eq!(event.kind, weft_api::ChangeKind::Put);
    assert!(text.contains("event: change"));
    drop(response);
    server.shutdown().await;
}
